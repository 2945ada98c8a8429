//! RS402: no Recreate strategy with several replicas.

use super::{
    Applies, Input, Report, Rule, RuleId, RuleMeta, WorkloadContext, WorkloadRule, rule_params,
};
use crate::rule::{Action, WorkloadKind};
use crate::view::WorkloadView;
use crate::workload::defaults;

pub struct NoRecreate;

rule_params! {}

impl Rule for NoRecreate {
    const META: RuleMeta = RuleMeta {
        id: RuleId::RS402,
        title: "no Recreate strategy with several replicas",
        default_action: Action::Warn,
        applies_to: Applies::Workloads(&[WorkloadKind::Deployment]),
        summary: "no Recreate strategy with replicas > 1",
        why: "Recreate stops every pod before starting the new ones: each update is a full outage, and a broken version leaves nothing running.",
        fix: "use RollingUpdate unless the app truly cannot run two versions at once (then skip RS402 with a reason)",
        mutation: None,
        input: Input::Object,
        exemptable: true,
    };
    type Params = Params;
}

impl WorkloadRule for NoRecreate {
    fn check(w: &WorkloadView<'_>, _: &Params, _: &WorkloadContext<'_>, out: &mut Report<'_>) {
        let replicas = w.replicas().unwrap_or(defaults::REPLICAS);
        if w.is_recreate() && replicas > 1 {
            out.object(
                "spec.strategy.type",
                format!("uses the Recreate strategy with {replicas} replicas, so every update is a full outage"),
                Self::META.fix,
            );
        }
    }
}
