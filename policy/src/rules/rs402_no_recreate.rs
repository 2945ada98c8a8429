//! RS402: no Recreate strategy with several replicas.

use super::cel::{has_path, lit, object_message, or_default};
use super::{
    Applies, CelForm, CelReads, Input, Report, Rule, RuleId, RuleMeta, WorkloadContext,
    WorkloadRule, rule_params,
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

    fn cel() -> Option<CelForm> {
        let replicas = |root: &str| {
            or_default(
                &format!("{root}.spec.replicas"),
                &defaults::REPLICAS.to_string(),
            )
        };
        let recreate = |root: &str| {
            format!(
                "{} > 1 && {} && {root}.spec.strategy.type == 'Recreate'",
                replicas(root),
                has_path(&format!("{root}.spec.strategy.type"))
            )
        };
        Some(CelForm {
            variables: vec![],
            violation: recreate("object"),
            message: object_message(
                &format!(
                    "'uses the Recreate strategy with ' + string({}) + ' replicas, so every update is a full outage'",
                    replicas("object")
                ),
                "spec.strategy.type",
            ),
            fix: lit(Self::META.fix),
            reads: CelReads::Object {
                old_same: recreate("oldObject"),
            },
            mutation: None,
            weaker: None,
        })
    }
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
