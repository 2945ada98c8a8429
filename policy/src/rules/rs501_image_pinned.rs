//! RS501: every image is pinned to a version.

use k8s_openapi::api::core::v1::Container;

use super::cel::{CelVariable, SIDECAR, container_lists, debug_quoted, lit};
use super::{
    ALL_WORKLOADS, Applies, CelForm, CelReads, Input, Report, Rule, RuleId, RuleMeta,
    WorkloadContext, WorkloadRule, rule_params,
};
use crate::rule::Action;
use crate::view::WorkloadView;

pub struct ImagePinned;

rule_params! {}

impl Rule for ImagePinned {
    const META: RuleMeta = RuleMeta {
        id: RuleId::RS501,
        title: "image is pinned",
        default_action: Action::Warn,
        applies_to: Applies::Workloads(ALL_WORKLOADS),
        summary: "image pinned: an explicit tag that is not `latest`, or a digest (init containers too)",
        why: "An unpinned image (`latest`, or no tag) can change under the same spec: a reschedule silently runs different code, two pods of one ReplicaSet may differ, and undo cannot bring the old code back.",
        fix: "pin an explicit version tag (not latest) or a digest (@sha256:...)",
        mutation: None,
        input: Input::Object,
        exemptable: true,
    };
    type Params = Params;

    fn cel() -> Option<CelForm> {
        let image = |c: &str| format!("(has({c}.image) ? {c}.image : '')");
        let unpinned = |c: &str| {
            let i = image(c);
            format!(
                "!({i}.contains('@') || ({i}.matches(r':[^:/]+$') && !{i}.endsWith(':latest')))"
            )
        };
        let mut variables = container_lists("object", "");
        variables.extend([
            CelVariable::new("badContainers", format!("variables.containers.filter(c, {})", unpinned("c"))),
            // Every init container: sidecars among the app containers, the others after them.
            CelVariable::new("badInits", format!("variables.initContainers.filter(c, {})", unpinned("c"))),
            CelVariable::new(
                "first",
                format!("size(variables.badContainers) > 0 ? variables.badContainers[0] : (variables.badInits.exists(c, {SIDECAR}) ? variables.badInits.filter(c, {SIDECAR})[0] : variables.badInits[0])"),
            ),
            CelVariable::new(
                "firstField",
                "size(variables.badContainers) > 0 ? 'spec.template.spec.containers[' + string(variables.containers.indexOf(variables.first)) + '].image' : 'spec.template.spec.initContainers[' + string(variables.initContainers.indexOf(variables.first)) + '].image'",
            ),
            CelVariable::new("firstImage", image("variables.first")),
        ]);
        let what = format!(
            "variables.firstImage == '' ? 'has no image' : 'uses image ' + {} + ', which is not pinned to a version, so a reschedule can silently run different code and undo cannot bring the old one back'",
            debug_quoted("variables.firstImage")
        );
        Some(CelForm {
            variables,
            violation: "size(variables.badContainers) + size(variables.badInits) > 0".into(),
            message: format!(
                "variables.ref + ': container ' + {} + ' ' + ({what}) + ' (' + variables.firstField + ')'",
                debug_quoted("variables.first.name")
            ),
            fix: lit(Self::META.fix),
            reads: CelReads::Template,
            mutation: None,
            weaker: None,
        })
    }
}

/// Whether an image reference names a digest or an explicit tag other than `latest`.
pub fn image_is_pinned(image: &str) -> bool {
    if image.contains('@') {
        return true;
    }
    // The tag is after the last ':' of the last path component (a registry port is not a tag).
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) => !tag.is_empty() && tag != "latest",
        None => false,
    }
}

fn check_image(out: &mut Report<'_>, container: &Container, field: String) {
    let image = container.image.as_deref().unwrap_or("");
    if image_is_pinned(image) {
        return;
    }
    let why = if image.is_empty() {
        "has no image".to_string()
    } else {
        format!(
            "uses image {image:?}, which is not pinned to a version, so a reschedule can silently run different code and undo cannot bring the old one back"
        )
    };
    out.container(&container.name, field, why, ImagePinned::META.fix);
}

impl WorkloadRule for ImagePinned {
    fn check(w: &WorkloadView<'_>, _: &Params, _: &WorkloadContext<'_>, out: &mut Report<'_>) {
        for ac in &w.app_containers {
            check_image(out, ac.container, format!("{}.image", ac.field_path()));
        }
        // Plain init containers run on every rollout too, so their images count here.
        let inits = w.pod_spec().and_then(|s| s.init_containers.as_ref());
        for (i, ic) in inits.into_iter().flatten().enumerate() {
            if ic.restart_policy.as_deref() != Some("Always") {
                check_image(
                    out,
                    ic,
                    format!("spec.template.spec.initContainers[{i}].image"),
                );
            }
        }
    }
}
