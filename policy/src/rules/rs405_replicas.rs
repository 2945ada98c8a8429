//! RS405: at least `minReplicas` replicas, unless a HorizontalPodAutoscaler manages them.

use super::{
    Applies, Input, Report, Rule, RuleId, RuleMeta, WorkloadContext, WorkloadRule, rule_params,
};
use crate::rule::{Action, WorkloadKind};
use crate::view::WorkloadView;

pub struct Replicas;

rule_params! {
    /// The least replica count that passes
    min_replicas: i32 = 2 => "minReplicas", min 0;
}

impl Rule for Replicas {
    const META: RuleMeta = RuleMeta {
        id: RuleId::RS405,
        title: "at least 2 replicas",
        default_action: Action::Warn,
        applies_to: Applies::Workloads(&[WorkloadKind::Deployment, WorkloadKind::StatefulSet]),
        summary: "replicas ≥ `minReplicas`, skipped when an HPA targets the workload",
        why: "A single replica means every node drain, eviction or crash is an outage, and a rolling update has nothing to fall back on.",
        fix: "run at least minReplicas replicas, or target the workload with a HorizontalPodAutoscaler",
        mutation: None,
        input: Input::Surroundings(
            "the HorizontalPodAutoscalers that target the workload (for the exemption)",
        ),
        exemptable: true,
    };
    type Params = Params;
}

impl WorkloadRule for Replicas {
    fn check(w: &WorkloadView<'_>, p: &Params, cx: &WorkloadContext<'_>, out: &mut Report<'_>) {
        if cx.facts.autoscaled {
            return;
        }
        let Some(replicas) = w.replicas() else {
            return;
        };
        let min = p.min_replicas;
        // 0 is a deliberate scale-down, not an availability choice.
        if replicas > 0 && replicas < min {
            out.object(
                "spec.replicas",
                format!("runs {replicas} replica(s), so a node failure or eviction is an outage"),
                format!(
                    "run at least {min} replicas (or target it with a HorizontalPodAutoscaler)"
                ),
            );
        }
    }
}
