//! RS301: a pod-template change carries a fresh `kubernetes.io/change-cause`. Fix: write one
//! that says who changed what.

use serde_json::json;

use super::{
    ALL_WORKLOADS, Applies, FixContext, Fixes, Input, Report, Rule, RuleId, RuleMeta,
    WorkloadContext, WorkloadRule, rule_params,
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
