//! RS102: every app container has a livenessProbe.

use super::cel::{AppContainerCheck, lit};
use super::{
    ALL_WORKLOADS, Applies, CelForm, CelReads, Input, Report, Rule, RuleId, RuleMeta,
    WorkloadContext, WorkloadRule, rule_params,
};
use crate::rule::Action;
use crate::view::WorkloadView;

pub struct LivenessProbe;

rule_params! {}

impl Rule for LivenessProbe {
    const META: RuleMeta = RuleMeta {
        id: RuleId::RS102,
        title: "container has a livenessProbe",
        default_action: Action::Warn,
        applies_to: Applies::Workloads(ALL_WORKLOADS),
        summary: "every app container has a livenessProbe",
        why: "A process that hangs (deadlock, exhausted pool) without exiting stays in the Service's endpoints or blocks the rollout forever; only a liveness probe gets it restarted.",
        fix: "add a livenessProbe (a cheaper check than readiness, with a higher failureThreshold) so a hung process is restarted",
        mutation: None,
        input: Input::Object,
        exemptable: true,
    };
    type Params = Params;

    fn cel() -> Option<CelForm> {
        let check = AppContainerCheck::new("!has(c.livenessProbe)");
        Some(CelForm {
            variables: check.variables(),
            violation: check.violation(),
            message: AppContainerCheck::message(
                &lit("has no livenessProbe"),
                &lit(".livenessProbe"),
            ),
            fix: lit(Self::META.fix),
            reads: CelReads::Template,
            mutation: None,
            weaker: None,
        })
    }
}

impl WorkloadRule for LivenessProbe {
    fn check(w: &WorkloadView<'_>, _: &Params, _: &WorkloadContext<'_>, out: &mut Report<'_>) {
        for ac in &w.app_containers {
            if ac.container.liveness_probe.is_none() {
                out.container(
                    &ac.container.name,
                    format!("{}.livenessProbe", ac.field_path()),
                    "has no livenessProbe",
                    Self::META.fix,
                );
            }
        }
    }
}
