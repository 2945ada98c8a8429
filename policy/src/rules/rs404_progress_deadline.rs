//! RS404: progressDeadlineSeconds exceeds minReadySeconds.

use super::cel::{CelVariable, object_message, or_default};
use super::{
    Applies, CelForm, CelReads, Input, Report, Rule, RuleId, RuleMeta, WorkloadContext,
    WorkloadRule, rule_params,
};
use crate::rule::{Action, WorkloadKind};
use crate::view::WorkloadView;
use crate::workload::{Workload, defaults};

pub struct ProgressDeadline;

rule_params! {}

impl Rule for ProgressDeadline {
    const META: RuleMeta = RuleMeta {
        id: RuleId::RS404,
        title: "progressDeadlineSeconds exceeds minReadySeconds",
        default_action: Action::Warn,
        applies_to: Applies::Workloads(&[WorkloadKind::Deployment]),
        summary: "progressDeadlineSeconds > minReadySeconds",
        why: "A new pod only counts as available after minReadySeconds; a progress deadline that is not longer than that makes the controller report every rollout as failed (ProgressDeadlineExceeded).",
        fix: "set progressDeadlineSeconds well above minReadySeconds",
        mutation: None,
        input: Input::Object,
        exemptable: true,
    };
    type Params = Params;

    fn cel() -> Option<CelForm> {
        let deadline = |root: &str| {
            or_default(
                &format!("{root}.spec.progressDeadlineSeconds"),
                &defaults::PROGRESS_DEADLINE_SECONDS.to_string(),
            )
        };
        let min_ready = |root: &str| or_default(&format!("{root}.spec.minReadySeconds"), "0");
        Some(CelForm {
            variables: vec![
                CelVariable::new("deadline", deadline("object")),
                CelVariable::new("minReady", min_ready("object")),
            ],
            violation: "variables.deadline <= variables.minReady".into(),
            message: object_message(
                "'progressDeadlineSeconds ' + string(variables.deadline) + ' is not greater than minReadySeconds ' + string(variables.minReady) + ', so every rollout is reported as failed'",
                "spec.progressDeadlineSeconds",
            ),
            fix: "'set progressDeadlineSeconds well above ' + string(variables.minReady) + ', e.g. ' + string(variables.minReady + 300 > 600 ? variables.minReady + 300 : 600)".into(),
            reads: CelReads::Object {
                old_same: format!("{} <= {}", deadline("oldObject"), min_ready("oldObject")),
            },
            mutation: None,
            weaker: None,
        })
    }
}

impl WorkloadRule for ProgressDeadline {
    fn check(w: &WorkloadView<'_>, _: &Params, _: &WorkloadContext<'_>, out: &mut Report<'_>) {
        let Workload::Deployment(d) = w.workload else {
            return;
        };
        let spec = &d.spec;
        let deadline = spec
            .progress_deadline_seconds
            .unwrap_or(defaults::PROGRESS_DEADLINE_SECONDS);
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        if deadline <= min_ready {
            out.object(
                "spec.progressDeadlineSeconds",
                format!("progressDeadlineSeconds {deadline} is not greater than minReadySeconds {min_ready}, so every rollout is reported as failed"),
                format!("set progressDeadlineSeconds well above {min_ready}, e.g. {}", (i64::from(min_ready) + 300).max(600)),
            );
        }
    }
}
