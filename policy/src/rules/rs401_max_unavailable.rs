//! RS401: a rolling update can never take every pod down.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    ALL_WORKLOADS, Applies, Input, Report, Rule, RuleId, RuleMeta, WorkloadContext, WorkloadRule,
    rule_params,
};
use crate::rule::Action;
use crate::view::WorkloadView;
use crate::workload::{Workload, defaults, scaled_value};

pub struct MaxUnavailable;

rule_params! {}

impl Rule for MaxUnavailable {
    const META: RuleMeta = RuleMeta {
        id: RuleId::RS401,
        title: "rolling update keeps pods available",
        default_action: Action::Enforce,
        applies_to: Applies::Workloads(ALL_WORKLOADS),
        summary: "a rolling update can never take every pod down: effective maxUnavailable < replicas when replicas > 1 (DaemonSets: not 100 %), and surge/unavailable values are valid",
        why: "With maxUnavailable at or above the replica count, a rolling update may stop every old pod before a new one is ready: a full outage on every deploy, and a total one when the new version is broken.",
        fix: "set maxUnavailable below the replica count (e.g. 0 with maxSurge 1, or 25%)",
        mutation: None,
        input: Input::Object,
        exemptable: true,
    };
    type Params = Params;
}

/// Reports an invalid value, or one that lets every pod go down at once.
fn judge(
    out: &mut Report<'_>,
    field: &str,
    unavailable: Result<i32, String>,
    replicas: Option<i32>,
) {
    match (unavailable, replicas) {
        (Err(e), _) => out.object(
            field,
            format!("has an invalid value: {e}"),
            "use an integer or a percentage such as 25%",
        ),
        (Ok(u), Some(r)) if r > 1 && u >= r => out.object(
            field,
            format!("lets a rolling update take {u} of {r} pods down at once, so the workload can be fully unavailable"),
            format!("set maxUnavailable below {r} (e.g. 0 with maxSurge 1, or 25%)"),
        ),
        _ => {}
    }
}

impl WorkloadRule for MaxUnavailable {
    fn check(w: &WorkloadView<'_>, _: &Params, _: &WorkloadContext<'_>, out: &mut Report<'_>) {
        match w.workload {
            Workload::Deployment(_) => {
                // Recreate is RS402's business.
                let Some(fence) = w.rolling_fenceposts() else {
                    return;
                };
                match fence {
                    Ok((_, unavailable)) => judge(
                        out,
                        "spec.strategy.rollingUpdate.maxUnavailable",
                        Ok(unavailable),
                        w.replicas(),
                    ),
                    Err((field, e)) => judge(out, field, Err(e), None),
                }
            }
            Workload::StatefulSet(s) => {
                let spec = &s.spec;
                let replicas = spec.replicas.unwrap_or(defaults::REPLICAS);
                let Some(mu) = spec
                    .update_strategy
                    .as_ref()
                    .and_then(|u| u.rolling_update.as_ref())
                    .and_then(|r| r.max_unavailable.as_ref())
                else {
                    return; // default 1
                };
                // The StatefulSet controller rounds this percentage up.
                judge(
                    out,
                    "spec.updateStrategy.rollingUpdate.maxUnavailable",
                    scaled_value(mu, replicas, true),
                    Some(replicas),
                );
            }
            Workload::DaemonSet(d) => {
                let Some(mu) = d
                    .spec
                    .update_strategy
                    .as_ref()
                    .and_then(|u| u.rolling_update.as_ref())
                    .and_then(|r| r.max_unavailable.as_ref())
                else {
                    return;
                };
                // Node count is unknown offline: only 100 % is certainly every pod.
                let field = "spec.updateStrategy.rollingUpdate.maxUnavailable";
                match scaled_value(mu, 100, true) {
                    Ok(v) if matches!(mu, IntOrString::String(_)) && v >= 100 => out.object(
                        field,
                        "is 100%, so a rolling update can take the pod off every node at once",
                        "use 1 or a smaller percentage",
                    ),
                    Err(e) => judge(out, field, Err(e), None),
                    _ => {}
                }
            }
        }
    }
}
