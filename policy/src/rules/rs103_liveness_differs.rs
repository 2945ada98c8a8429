//! RS103: the livenessProbe is not identical to the readinessProbe.

use k8s_openapi::api::core::v1::Probe;

use super::cel::{AppContainerCheck, lit};
use super::{
    ALL_WORKLOADS, Applies, CelForm, CelReads, Input, Report, Rule, RuleId, RuleMeta,
    WorkloadContext, WorkloadRule, rule_params,
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

    fn cel() -> Option<CelForm> {
        let check = AppContainerCheck::new(format!(
            "has(c.livenessProbe) && has(c.readinessProbe) && {}",
            probes_equal("c.livenessProbe", "c.readinessProbe")
        ));
        Some(CelForm {
            variables: check.variables(),
            violation: check.violation(),
            message: AppContainerCheck::message(&lit(IDENTICAL), &lit(".livenessProbe")),
            fix: lit(Self::META.fix),
            reads: CelReads::Template,
            mutation: None,
            weaker: None,
        })
    }
}

const IDENTICAL: &str = "has a livenessProbe identical to its readinessProbe, so a pod that is merely busy gets restarted instead of just taken out of the Service";

/// The probe fields [`normalized`] fills in, with their defaults.
const PROBE_DEFAULTS: [(&str, i32); 5] = [
    ("initialDelaySeconds", defaults::PROBE_INITIAL_DELAY_SECONDS),
    ("timeoutSeconds", defaults::PROBE_TIMEOUT_SECONDS),
    ("periodSeconds", defaults::PROBE_PERIOD_SECONDS),
    ("successThreshold", defaults::PROBE_SUCCESS_THRESHOLD),
    ("failureThreshold", defaults::PROBE_FAILURE_THRESHOLD),
];
/// The other probe fields, compared as they are.
const PROBE_OTHERS: [&str; 4] = ["exec", "grpc", "tcpSocket", "terminationGracePeriodSeconds"];
/// The httpGet fields compared as they are (`path` and `scheme` have defaults).
const HTTP_GET_OTHERS: [&str; 4] = ["host", "httpHeaders", "port", "protocol"];

/// CEL: the probes `a` and `b` are equal once [`normalized`] (field by field, as no CEL
/// function fills in defaults).
fn probes_equal(a: &str, b: &str) -> String {
    let defaulted = |f: &str, d: &str| {
        format!("(has({a}.{f}) ? {a}.{f} : {d}) == (has({b}.{f}) ? {b}.{f} : {d})")
    };
    let as_is =
        |f: &str| format!("has({a}.{f}) == has({b}.{f}) && (!has({a}.{f}) || {a}.{f} == {b}.{f})");
    let mut parts: Vec<String> = PROBE_DEFAULTS
        .iter()
        .map(|(f, d)| defaulted(f, &d.to_string()))
        .collect();
    parts.extend(PROBE_OTHERS.iter().map(|f| as_is(f)));
    let (ha, hb) = (format!("{a}.httpGet"), format!("{b}.httpGet"));
    let http: Vec<String> = HTTP_GET_OTHERS
        .iter()
        .map(|f| format!("has({ha}.{f}) == has({hb}.{f}) && (!has({ha}.{f}) || {ha}.{f} == {hb}.{f})"))
        .chain([
            format!("(has({ha}.path) ? {ha}.path : '/') == (has({hb}.path) ? {hb}.path : '/')"),
            format!("(has({ha}.scheme) ? {ha}.scheme : 'HTTP') == (has({hb}.scheme) ? {hb}.scheme : 'HTTP')"),
        ])
        .collect();
    parts.push(format!(
        "has({a}.httpGet) == has({b}.httpGet) && (!has({a}.httpGet) || ({}))",
        http.join(" && ")
    ));
    parts.join(" && ")
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
                    IDENTICAL,
                    Self::META.fix,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use k8s_openapi::api::core::v1::{HTTPGetAction, Probe};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use serde_json::Value;

    use super::*;

    fn keys(v: Value) -> BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    }

    /// The CEL form names every field of a probe: a field Kubernetes adds (and the engine's
    /// typed comparison sees) fails this until the CEL compares it too.
    #[test]
    fn the_cel_form_compares_every_probe_field() {
        // Struct literals without `..`: a field k8s-openapi adds breaks the build here.
        let http = HTTPGetAction {
            host: Some(String::new()),
            http_headers: Some(vec![]),
            path: Some(String::new()),
            port: IntOrString::Int(1),
            protocol: Some(String::new()),
            scheme: Some(String::new()),
        };
        let want_http: BTreeSet<String> = HTTP_GET_OTHERS
            .iter()
            .chain(&["path", "scheme"])
            .map(|s| s.to_string())
            .collect();
        assert_eq!(keys(serde_json::to_value(http).unwrap()), want_http);
        let probe = Probe {
            exec: Some(Default::default()),
            failure_threshold: Some(0),
            grpc: Some(Default::default()),
            http_get: Some(Default::default()),
            initial_delay_seconds: Some(0),
            period_seconds: Some(0),
            success_threshold: Some(0),
            tcp_socket: Some(Default::default()),
            termination_grace_period_seconds: Some(0),
            timeout_seconds: Some(0),
        };
        let want: BTreeSet<String> = PROBE_DEFAULTS
            .iter()
            .map(|(f, _)| *f)
            .chain(PROBE_OTHERS)
            .chain(["httpGet"])
            .map(str::to_string)
            .collect();
        assert_eq!(keys(serde_json::to_value(probe).unwrap()), want);
    }
}
