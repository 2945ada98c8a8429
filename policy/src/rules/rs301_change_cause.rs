//! RS301: a pod-template change carries a fresh `kubernetes.io/change-cause`. Fix: write one
//! that says who changed what.

use serde_json::json;

use super::cel::{CelVariable, container_lists, debug_quoted, has_path, lit, object_message};
use super::{
    ALL_WORKLOADS, Applies, CelForm, CelMutation, CelReads, FixContext, Fixes, Input, Report, Rule,
    RuleId, RuleMeta, WorkloadContext, WorkloadRule, rule_params,
};
use crate::change_cause;
use crate::change_cause::CHANGE_CAUSE_ANNOTATION;
use crate::finding::Finding;
use crate::finding::Mutation;
use crate::rule::Action;
use crate::view::WorkloadView;

pub struct ChangeCause;

rule_params! {}

impl Rule for ChangeCause {
    const META: RuleMeta = RuleMeta {
        id: RuleId::RS301,
        title: "fresh kubernetes.io/change-cause on template change",
        default_action: Action::Mutate,
        applies_to: Applies::Workloads(ALL_WORKLOADS),
        summary: "a pod-template change carries a fresh `kubernetes.io/change-cause`",
        why: "`kubectl rollout history` and `undo --to-revision` are only as good as the causes recorded with each revision; `kubectl --record` is deprecated, and a cause copied from the previous revision makes the history lie.",
        fix: "annotate the change with kubernetes.io/change-cause (kubectl rollout-safe update does it for you)",
        mutation: Some("e.g. `alice: image web=shop/web:1.5.0 (was 1.4.2) via kubectl-set`"),
        input: Input::ObjectAndOld,
        exemptable: true,
    };
    type Params = Params;

    fn cel() -> Option<CelForm> {
        let key = lit(CHANGE_CAUSE_ANNOTATION);
        let has_cause = |o: &str| {
            format!(
                "{} && {key} in {o}.metadata.annotations",
                has_path(&format!("{o}.metadata.annotations"))
            )
        };
        let variables = vec![
            CelVariable::new(
                "templateChanged",
                "request.operation == 'UPDATE' && oldObject != null && object.spec.template != oldObject.spec.template",
            ),
            CelVariable::new("hasCause", has_cause("object")),
            CelVariable::new(
                "staleCause",
                format!(
                    "variables.hasCause && {} && object.metadata.annotations[{key}] == oldObject.metadata.annotations[{key}]",
                    has_cause("oldObject")
                ),
            ),
        ];
        let what = format!(
            "!variables.hasCause ? 'changes the pod template without a kubernetes.io/change-cause' : 'changes the pod template but keeps the previous change-cause ' + {} + ', so rollout history will be wrong'",
            debug_quoted(&format!("object.metadata.annotations[{key}]"))
        );
        Some(CelForm {
            variables,
            violation: "variables.templateChanged && (!variables.hasCause || variables.staleCause)"
                .into(),
            message: object_message(
                &what,
                &format!("metadata.annotations[{CHANGE_CAUSE_ANNOTATION}]"),
            ),
            fix: lit(Self::META.fix),
            reads: CelReads::TemplateChange,
            mutation: Some(mutation()),
            weaker: Some(WEAKER),
        })
    }
}

/// Where RS301's CEL form is weaker than the engine.
pub const WEAKER: &str = "the change-cause the mutating policy writes names image changes only (`alice: image web=shop/web:1.5.0 (was 1.4.2) via kubectl-set`): an update that changes env, adds or removes containers, restarts or changes anything else reads `pod template changed` where the webhook names what changed";

/// CEL: the repository part of the image reference `s` (what `change_cause::was` strips).
fn repo(s: &str) -> String {
    format!(
        "({s}.indexOf('@') >= 0 ? {s}.substring(0, {s}.indexOf('@')) : ({s}.lastIndexOf(':') > {s}.lastIndexOf('/') ? {s}.substring(0, {s}.lastIndexOf(':')) : {s}))"
    )
}

/// The fix: a change-cause saying who changed which images, on creation and on a template
/// change that lacks a fresh one.
fn mutation() -> CelMutation {
    let image = |c: &str| format!("(has({c}.image) ? {c}.image : '')");
    let old = "variables.oldAll[variables.oldNames.lastIndexOf(c.name)]";
    let (old_image, new_image) = (image(old), image("c"));
    let was = format!(
        "({r_old} == {r_new} && size({old_image}) > size({r_old}) ? {old_image}.substring(size({r_old}) + 1) : {old_image})",
        r_old = repo(&old_image),
        r_new = repo(&new_image),
    );
    let mut variables = container_lists("object", "");
    variables.extend(container_lists("oldObject", "old"));
    variables.extend([
        CelVariable::new("oldAll", "variables.oldInitContainers + variables.oldContainers"),
        CelVariable::new("oldNames", "variables.oldAll.map(c, c.name)"),
        CelVariable::new(
            "imageChanges",
            format!(
                "(variables.initContainers + variables.containers).filter(c, c.name in variables.oldNames && {old_image} != {new_image}).map(c, c.name + '=' + {new_image} + ' (was ' + {was} + ')')"
            ),
        ),
        CelVariable::new(
            "who",
            "has(request.userInfo.username) && request.userInfo.username != '' ? request.userInfo.username : 'unknown'",
        ),
        CelVariable::new(
            "via",
            "has(request.options) && has(request.options.fieldManager) && request.options.fieldManager != '' ? ' via ' + request.options.fieldManager : ''",
        ),
        CelVariable::new(
            "newCause",
            format!(
                "variables.who + ': ' + (request.operation == 'CREATE' ? 'create with ' + (size(variables.containers) == 0 ? 'no containers' : 'image ' + variables.containers.map(c, c.name + '=' + {new_image}).join(' ')) : (size(variables.imageChanges) > 0 ? 'image ' + variables.imageChanges.join(' ') : 'pod template changed')) + variables.via"
            ),
        ),
    ]);
    CelMutation {
        variables,
        patches: format!(
            "(request.operation == 'CREATE' && !variables.hasCause) || (variables.templateChanged && (!variables.hasCause || variables.staleCause)) ? [has(object.metadata.annotations) ? JSONPatch{{op: 'add', path: '/metadata/annotations/kubernetes.io~1change-cause', value: variables.newCause}} : JSONPatch{{op: 'add', path: '/metadata/annotations', value: {{{key}: variables.newCause}}}}] : []",
            key = lit(CHANGE_CAUSE_ANNOTATION)
        ),
    }
}

impl WorkloadRule for ChangeCause {
    fn check(w: &WorkloadView<'_>, _: &Params, cx: &WorkloadContext<'_>, out: &mut Report<'_>) {
        let Some(old) = cx.old else { return };
        if !change_cause::template_changed(old, w) {
            return;
        }
        let new_cause = w.annotation(CHANGE_CAUSE_ANNOTATION);
        let old_cause = old.annotation(CHANGE_CAUSE_ANNOTATION);
        let problem = match (new_cause, old_cause) {
            (None, _) => {
                "changes the pod template without a kubernetes.io/change-cause".to_string()
            }
            (Some(n), Some(o)) if n == o => format!(
                "changes the pod template but keeps the previous change-cause {n:?}, so rollout history will be wrong"
            ),
            _ => return,
        };
        out.object(
            format!("metadata.annotations[{CHANGE_CAUSE_ANNOTATION}]"),
            problem,
            Self::META.fix,
        );
    }

    /// A stale or missing cause on a template change, and a first cause on creation.
    fn fix(
        w: &WorkloadView<'_>,
        _: &Params,
        cx: &FixContext<'_>,
        findings: &[Finding],
        fixes: &mut Fixes,
    ) {
        let first_cause = !cx.is_update && w.annotation(CHANGE_CAUSE_ANNOTATION).is_none();
        if findings.is_empty() && !first_cause {
            return;
        }
        let cause = change_cause::describe(cx.old, w, cx.actor);
        if w.metadata().annotations.is_some() {
            fixes.add(
                &["metadata", "annotations", CHANGE_CAUSE_ANNOTATION],
                json!(cause),
            );
        } else {
            fixes.add(
                &["metadata", "annotations"],
                json!({ CHANGE_CAUSE_ANNOTATION: cause }),
            );
        }
        fixes.mutations.push(Mutation {
            rule: RuleId::RS301,
            field: format!("metadata.annotations[{CHANGE_CAUSE_ANNOTATION}]"),
            description: format!("change-cause set to {cause:?}"),
        });
    }
}
