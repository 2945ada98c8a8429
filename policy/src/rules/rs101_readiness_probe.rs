//! RS101: every app container has a readinessProbe.

use super::cel::{AppContainerCheck, lit};
use super::{
    ALL_WORKLOADS, Applies, CelForm, CelReads, Input, Report, Rule, RuleId, RuleMeta,
    WorkloadContext, WorkloadRule, rule_params,
};
use crate::rule::Action;
use crate::view::WorkloadView;

pub struct ReadinessProbe;

rule_params! {}

impl Rule for ReadinessProbe {
    const META: RuleMeta = RuleMeta {
        id: RuleId::RS101,
        title: "container has a readinessProbe",
        default_action: Action::Enforce,
        applies_to: Applies::Workloads(ALL_WORKLOADS),
        summary: "every app container has a readinessProbe",
        why: "Without a readiness probe a pod counts as ready the moment its process starts: the Service sends it traffic before it can serve, and a rolling update moves on (and removes old pods) without knowing whether the new version works.",
        fix: "add a readinessProbe so the Service and the rollout only count pods that can serve",
        mutation: None,
        input: Input::Object,
        exemptable: true,
    };
    type Params = Params;

    fn cel() -> Option<CelForm> {
        let check = AppContainerCheck::new("!has(c.readinessProbe)");
        Some(CelForm {
            variables: check.variables(),
            violation: check.violation(),
            message: AppContainerCheck::message(
                &lit("has no readinessProbe"),
                &lit(".readinessProbe"),
            ),
            fix: lit(Self::META.fix),
            reads: CelReads::Template,
            mutation: None,
            weaker: None,
        })
    }
}

impl WorkloadRule for ReadinessProbe {
    fn check(w: &WorkloadView<'_>, _: &Params, _: &WorkloadContext<'_>, out: &mut Report<'_>) {
        for ac in &w.app_containers {
            if ac.container.readiness_probe.is_none() {
                out.container(
                    &ac.container.name,
                    format!("{}.readinessProbe", ac.field_path()),
                    "has no readinessProbe",
                    Self::META.fix,
                );
            }
        }
    }
}
