//! RS603: every Service selector matches some workload's pod labels.

use super::{
    Applies, Input, Report, Rule, RuleId, RuleMeta, ServiceContext, ServiceRule, rule_params,
};
use crate::rule::Action;
use crate::selector::map_text;
use crate::view::ServiceView;

pub struct ServiceSelects;

rule_params! {}

impl Rule for ServiceSelects {
    const META: RuleMeta = RuleMeta {
        id: RuleId::RS603,
        title: "Service selector matches a workload",
        default_action: Action::Warn,
        applies_to: Applies::Services,
        summary: "every Service selector matches some workload's pod labels (audit, across the files)",
        why: "A selector that matches no workload's pod labels (a typo, a label renamed in one file but not the other) gives the Service no endpoints: it is broken from the first apply.",
        fix: "make the selector a subset of a workload's pod template labels",
        mutation: None,
        input: Input::Surroundings("the workloads audited with the Service"),
        exemptable: true,
    };
    type Params = Params;
}

impl ServiceRule for ServiceSelects {
    fn check(s: &ServiceView, _: &Params, cx: &ServiceContext<'_>, out: &mut Report<'_>) {
        let Some(workloads) = cx.workloads else {
            return;
        };
        if s.selector.is_empty() {
            return;
        }
        let seen = workloads(&s.selector);
        // With no workload in view, the Service's pods are simply elsewhere.
        if seen.count == 0 || seen.any_selected {
            return;
        }
        out.object(
            "spec.selector",
            format!(
                "selector {} matches the pods of none of the {} workload(s) audited with it, so it has no endpoints",
                map_text(&s.selector),
                seen.count
            ),
            Self::META.fix,
        );
    }
}
