//! RS001: a `rollout-safe.dev/skip` annotation needs a `rollout-safe.dev/skip-reason`.

use super::{
    ALL_WORKLOADS, Applies, Input, Report, Rule, RuleId, RuleMeta, WorkloadContext, WorkloadRule,
    rule_params,
};
use crate::rule::Action;
use crate::skip::{SKIP_ANNOTATION, SKIP_REASON_ANNOTATION};
use crate::view::WorkloadView;

pub struct SkipHasReason;

rule_params! {}

impl Rule for SkipHasReason {
    const META: RuleMeta = RuleMeta {
        id: RuleId::RS001,
        title: "skip annotation needs a reason",
        default_action: Action::Warn,
        applies_to: Applies::Workloads(ALL_WORKLOADS),
        summary: "a `rollout-safe.dev/skip` annotation has a `rollout-safe.dev/skip-reason` (otherwise the skip is ignored), and names only known rule IDs",
        why: "An exemption nobody can explain outlives the reason for it. Without a reason the skip is ignored, so the rules it names still apply; an unknown ID is most likely a typo that exempts nothing.",
        fix: "add rollout-safe.dev/skip-reason saying why the rules do not apply, and use IDs from the catalogue",
        mutation: None,
        input: Input::Object,
        // The rule about skips cannot itself be skipped.
        exemptable: false,
    };
    type Params = Params;
}

impl WorkloadRule for SkipHasReason {
    fn check(w: &WorkloadView<'_>, _: &Params, _: &WorkloadContext<'_>, out: &mut Report<'_>) {
        let Some(skip) = &w.skip else { return };
        let field = format!("metadata.annotations[{SKIP_ANNOTATION}]");
        if !skip.has_reason {
            out.object(
                field.clone(),
                format!(
                    "skips {:?} without a {SKIP_REASON_ANNOTATION} annotation, so the skip is ignored",
                    skip.list
                ),
                "add rollout-safe.dev/skip-reason saying why these rules do not apply",
            );
        }
        if !skip.unknown.is_empty() {
            out.object(
                field,
                format!("skip names unknown rule IDs {}", skip.unknown.join(", ")),
                "use IDs from the catalogue, e.g. RS102,RS501",
            );
        }
    }
}
