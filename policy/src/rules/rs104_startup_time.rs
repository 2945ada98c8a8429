//! RS104: liveness leaves the app time to start.

use super::cel::{AppContainerCheck, CelVariable, lit};
use super::{
    ALL_WORKLOADS, Applies, CelForm, CelReads, Input, Report, Rule, RuleId, RuleMeta,
    WorkloadContext, WorkloadRule, rule_params,
};
use crate::rule::Action;
use crate::view::WorkloadView;
use crate::workload::{ProbeTiming, defaults};

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

    fn cel() -> Option<CelForm> {
        let check = AppContainerCheck::new(format!(
            "has(c.livenessProbe) && !has(c.startupProbe) && {} < variables.minStartupSeconds",
            budget("c.livenessProbe")
        ));
        let mut variables = check.variables();
        let timing = [
            (
                "firstDelay",
                "initialDelaySeconds",
                defaults::PROBE_INITIAL_DELAY_SECONDS,
            ),
            (
                "firstPeriod",
                "periodSeconds",
                defaults::PROBE_PERIOD_SECONDS,
            ),
            (
                "firstFailures",
                "failureThreshold",
                defaults::PROBE_FAILURE_THRESHOLD,
            ),
        ];
        for (name, field, default) in timing {
            let at = format!("variables.first.livenessProbe.{field}");
            variables.push(CelVariable::new(
                name,
                format!("has({at}) ? {at} : {default}"),
            ));
        }
        let what = "'livenessProbe can restart the container ' + string(variables.firstDelay + variables.firstPeriod * variables.firstFailures) + 's after it starts (initialDelaySeconds ' + string(variables.firstDelay) + ' + periodSeconds ' + string(variables.firstPeriod) + ' × failureThreshold ' + string(variables.firstFailures) + '), less than the ' + string(variables.minStartupSeconds) + 's floor'";
        Some(CelForm {
            variables,
            violation: check.violation(),
            message: AppContainerCheck::message(what, &lit(".livenessProbe")),
            fix: format!(
                "{} + string(variables.minStartupSeconds) + 's'",
                lit(
                    "add a startupProbe, or raise initialDelaySeconds/failureThreshold so the budget is at least "
                )
            ),
            reads: CelReads::Template,
            mutation: None,
            weaker: None,
        })
    }
}

/// CEL: [`ProbeTiming::failure_budget`] of the probe `p` (int32 fields: no int64 overflow).
fn budget(p: &str) -> String {
    format!(
        "(has({p}.initialDelaySeconds) ? {p}.initialDelaySeconds : {}) + (has({p}.periodSeconds) ? {p}.periodSeconds : {}) * (has({p}.failureThreshold) ? {p}.failureThreshold : {})",
        defaults::PROBE_INITIAL_DELAY_SECONDS,
        defaults::PROBE_PERIOD_SECONDS,
        defaults::PROBE_FAILURE_THRESHOLD
    )
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
