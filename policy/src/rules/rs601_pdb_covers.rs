//! RS601: a PodDisruptionBudget selects the workload's pods.

use super::{
    Applies, Input, Report, Rule, RuleId, RuleMeta, WorkloadContext, WorkloadRule, rule_params,
};
use crate::rule::{Action, WorkloadKind};
use crate::view::WorkloadView;

pub struct PdbCovers;

rule_params! {}

impl Rule for PdbCovers {
    const META: RuleMeta = RuleMeta {
        id: RuleId::RS601,
        title: "a PodDisruptionBudget covers the workload",
        default_action: Action::Warn,
        applies_to: Applies::Workloads(&[WorkloadKind::Deployment, WorkloadKind::StatefulSet]),
        summary: "a PodDisruptionBudget selects the pods of a workload with ≥ 2 replicas or an HPA (audit: across the files; webhook: with cluster lookups)",
        why: "Without a PodDisruptionBudget a node drain or cluster upgrade may evict every pod of the workload at once, however carefully its rollouts are paced.",
        fix: "add a PodDisruptionBudget (e.g. maxUnavailable: 1) whose selector matches the pod labels",
        mutation: None,
        input: Input::Surroundings("the PodDisruptionBudgets in the namespace"),
        exemptable: true,
    };
    type Params = Params;
}

impl WorkloadRule for PdbCovers {
    fn check(_: &WorkloadView<'_>, _: &Params, cx: &WorkloadContext<'_>, out: &mut Report<'_>) {
        // Unknown coverage (no lookups, a single replica) is not reported.
        if cx.facts.pdb_covered == Some(false) {
            out.object(
                "spec.selector",
                "no PodDisruptionBudget selects its pods, so a node drain can evict them all at once",
                Self::META.fix,
            );
        }
    }
}
