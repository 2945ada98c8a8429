//! RS104: liveness leaves the app time to start.

use super::{
    ALL_WORKLOADS, Applies, Input, Report, Rule, RuleId, RuleMeta, WorkloadContext, WorkloadRule,
    rule_params,
};
use crate::rule::Action;
use crate::view::WorkloadView;
use crate::workload::ProbeTiming;

pub struct StartupTime;

rule_params! {
    /// Seconds liveness must leave before the first restart can happen
    min_startup_seconds: i32 = 30 => "minStartupSeconds", min 0;
}

impl Rule for StartupTime {
    const META: RuleMeta = RuleMeta {
        id: RuleId::RS104,
        title: "livenessProbe leaves time to start",
        default_action: Action::Warn,
        applies_to: Applies::Workloads(ALL_WORKLOADS),
        summary: "liveness leaves time to start: a startupProbe, or initialDelaySeconds + periodSeconds × failureThreshold ≥ `minStartupSeconds`",
        why: "A liveness probe that can fail before a slow start is over restarts the container forever: every rollout of a version that starts a little slower becomes a crash loop.",
        fix: "add a startupProbe, or raise initialDelaySeconds/failureThreshold so the failure budget covers the start",
        mutation: None,
        input: Input::Object,
        exemptable: true,
    };
    type Params = Params;
}

impl WorkloadRule for StartupTime {
    fn check(w: &WorkloadView<'_>, p: &Params, _: &WorkloadContext<'_>, out: &mut Report<'_>) {
        let floor = p.min_startup_seconds;
        for ac in &w.app_containers {
            let Some(l) = &ac.container.liveness_probe else {
                continue;
            };
            if ac.container.startup_probe.is_some() {
                continue;
            }
            let timing = ProbeTiming::of(l);
            let budget = timing.failure_budget();
            if budget < i64::from(floor) {
                let ProbeTiming {
                    initial_delay: delay,
                    period,
                    failure_threshold: failures,
                } = timing;
                out.container(
                    &ac.container.name,
                    format!("{}.livenessProbe", ac.field_path()),
                    format!(
                        "livenessProbe can restart the container {budget}s after it starts (initialDelaySeconds {delay} + periodSeconds {period} × failureThreshold {failures}), less than the {floor}s floor"
                    ),
                    format!("add a startupProbe, or raise initialDelaySeconds/failureThreshold so the budget is at least {floor}s"),
                );
            }
        }
    }
}
