//! RS103: the livenessProbe is not identical to the readinessProbe.

use k8s_openapi::api::core::v1::Probe;

use super::{
    ALL_WORKLOADS, Applies, Input, Report, Rule, RuleId, RuleMeta, WorkloadContext, WorkloadRule,
    rule_params,
};
use crate::rule::Action;
use crate::view::WorkloadView;
use crate::workload::defaults;

pub struct LivenessDiffers;

rule_params! {}

impl Rule for LivenessDiffers {
    const META: RuleMeta = RuleMeta {
        id: RuleId::RS103,
        title: "livenessProbe differs from readinessProbe",
        default_action: Action::Warn,
        applies_to: Applies::Workloads(ALL_WORKLOADS),
        summary: "livenessProbe is not identical to readinessProbe (whole probe, defaults filled in: a higher failureThreshold is *not* identical)",
        why: "When liveness is the same check as readiness, a pod that is merely busy (and rightly taken out of the Service) is also restarted, which turns load into a crash loop.",
        fix: "make liveness more tolerant than readiness (higher failureThreshold or periodSeconds) or check a cheaper endpoint",
        mutation: None,
        input: Input::Object,
        exemptable: true,
    };
    type Params = Params;
}

/// A probe with Kubernetes' defaults filled in, so that spelled-out defaults compare equal.
fn normalized(p: &Probe) -> Probe {
    let mut p = p.clone();
    p.initial_delay_seconds
        .get_or_insert(defaults::PROBE_INITIAL_DELAY_SECONDS);
    p.timeout_seconds
        .get_or_insert(defaults::PROBE_TIMEOUT_SECONDS);
    p.period_seconds
        .get_or_insert(defaults::PROBE_PERIOD_SECONDS);
    p.success_threshold
        .get_or_insert(defaults::PROBE_SUCCESS_THRESHOLD);
    p.failure_threshold
        .get_or_insert(defaults::PROBE_FAILURE_THRESHOLD);
    if let Some(h) = p.http_get.as_mut() {
        h.scheme.get_or_insert_with(|| "HTTP".into());
        h.path.get_or_insert_with(|| "/".into());
    }
    p
}

impl WorkloadRule for LivenessDiffers {
    fn check(w: &WorkloadView<'_>, _: &Params, _: &WorkloadContext<'_>, out: &mut Report<'_>) {
        for ac in &w.app_containers {
            let (Some(l), Some(r)) = (&ac.container.liveness_probe, &ac.container.readiness_probe)
            else {
                continue;
            };
            if normalized(l) == normalized(r) {
                out.container(
                    &ac.container.name,
                    format!("{}.livenessProbe", ac.field_path()),
                    "has a livenessProbe identical to its readinessProbe, so a pod that is merely busy gets restarted instead of just taken out of the Service",
                    Self::META.fix,
                );
            }
        }
    }
}
