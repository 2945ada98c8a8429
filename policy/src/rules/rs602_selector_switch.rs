//! RS602: a Service selector change leaves the Service with ready endpoints.

use super::{
    Applies, Input, Report, Rule, RuleId, RuleMeta, ServiceContext, ServiceRule, rule_params,
};
use crate::rule::Action;
use crate::selector::map_text;
use crate::view::ServiceView;

pub struct SelectorSwitch;

rule_params! {}

impl Rule for SelectorSwitch {
    const META: RuleMeta = RuleMeta {
        id: RuleId::RS602,
        title: "Service selector switch keeps ready endpoints",
        default_action: Action::Enforce,
        applies_to: Applies::Services,
        summary: "a Service selector change leaves ready endpoints (webhook with cluster lookups)",
        why: "Switching a selector to pods that are not Ready (a blue-green switch too early, a typo in a label) empties the Service's endpoints at once: every request fails until someone notices.",
        fix: "switch only after the target pods are Ready (kubectl rollout-safe blue-green does this)",
        mutation: None,
        input: Input::Surroundings("the ready pods in the namespace (cluster lookups)"),
        exemptable: true,
    };
    type Params = Params;
}

impl ServiceRule for SelectorSwitch {
    fn check(s: &ServiceView, _: &Params, cx: &ServiceContext<'_>, out: &mut Report<'_>) {
        let (Some(old), Some(ready_pods)) = (cx.old_selector, cx.ready_pods) else {
            return;
        };
        if s.selector == *old || s.selector.is_empty() {
            return;
        }
        if ready_pods(&s.selector) == Some(0) {
            out.object(
                "spec.selector",
                format!(
                    "the new selector {} matches no ready pod, so the switch would leave the Service without endpoints",
                    map_text(&s.selector)
                ),
                Self::META.fix,
            );
        }
    }
}
