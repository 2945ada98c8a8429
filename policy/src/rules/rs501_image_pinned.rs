//! RS501: every image is pinned to a version.

use k8s_openapi::api::core::v1::Container;

use super::{
    ALL_WORKLOADS, Applies, Input, Report, Rule, RuleId, RuleMeta, WorkloadContext, WorkloadRule,
    rule_params,
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
