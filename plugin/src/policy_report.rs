//! The audit as policy reports: one per audited workload, named after its UID and scoped to it
//! (as Kyverno ≥ 1.10 names its own), so Policy Reporter and similar dashboards show
//! rollout-safe's findings next to Kyverno's and Kubewarden's.
//!
//! - `wgpolicyk8s.io/v1alpha2` `PolicyReport`, the API those tools read today;
//! - `openreports.io/v1alpha1` `Report`, its announced successor (`--report-api openreports`).
//!
//! Each rule that ran on the workload is a result: `fail` (enforced) or `warn` for each
//! finding, `pass` when it found nothing. Pure formatting: writing them is `cluster::reports`.

use std::collections::HashMap;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::ValueEnum;
use rollout_safe_policy::{
    Action, AuditResult, AuditedWorkload, LocatedFinding, ObjectRef, RolloutPolicy, RuleId,
    Severity,
};
use serde_json::{Map, Value, json};

/// The label on every report rollout-safe writes; the next run replaces or deletes exactly
/// the reports that carry it.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "rollout-safe");

/// [`MANAGED_BY`] as a label selector.
pub const MANAGED_BY_SELECTOR: &str = "app.kubernetes.io/managed-by=rollout-safe";

/// The `source` of every report and result.
pub const SOURCE: &str = "rollout-safe";

/// Which report API to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportApi {
    /// wgpolicyk8s.io/v1alpha2 PolicyReport (Kyverno, Policy Reporter, Kubewarden).
    #[value(name = "wgpolicyk8s")]
    Wgpolicyk8s,
    /// openreports.io/v1alpha1 Report.
    #[value(name = "openreports")]
    Openreports,
}

impl ReportApi {
    pub fn group(self) -> &'static str {
        match self {
            ReportApi::Wgpolicyk8s => "wgpolicyk8s.io",
            ReportApi::Openreports => "openreports.io",
        }
    }

    pub fn version(self) -> &'static str {
        match self {
            ReportApi::Wgpolicyk8s => "v1alpha2",
            ReportApi::Openreports => "v1alpha1",
        }
    }

    pub fn api_version(self) -> String {
        format!("{}/{}", self.group(), self.version())
    }

    pub fn kind(self) -> &'static str {
        match self {
            ReportApi::Wgpolicyk8s => "PolicyReport",
            ReportApi::Openreports => "Report",
        }
    }

    /// The resource's plural name (the CRD is `<plural>.<group>`).
    pub fn plural(self) -> &'static str {
        match self {
            ReportApi::Wgpolicyk8s => "policyreports",
            ReportApi::Openreports => "reports",
        }
    }

    /// The CustomResourceDefinition's name.
    pub fn crd(self) -> &'static str {
        match self {
            ReportApi::Wgpolicyk8s => "policyreports.wgpolicyk8s.io",
            ReportApi::Openreports => "reports.openreports.io",
        }
    }
}

/// The report's name for a workload's UID. Kyverno names its own report after the bare UID,
/// so ours carries a prefix: both live side by side in the workload's namespace.
pub fn report_name(uid: &str) -> String {
    format!("rollout-safe-{uid}")
}

/// What a rule's findings are about, for dashboards that group by category.
fn category(rule: RuleId) -> &'static str {
    match rule.as_str().as_bytes().get(2) {
        Some(b'0') => "skip annotations",
        Some(b'1') => "probes",
        Some(b'2') => "graceful shutdown",
        Some(b'3') => "change records",
        Some(b'4') => "rollout strategy",
        Some(b'5') => "images",
        _ => "surrounding objects",
    }
}

/// How much a rule's violation matters, from the action the policy gives it.
fn severity(action: Action) -> &'static str {
    match action {
        Action::Enforce => "high",
        _ => "medium",
    }
}

fn result(
    rule: RuleId,
    action: Action,
    outcome: &str,
    message: String,
    properties: Map<String, Value>,
    timestamp: &Value,
) -> Value {
    let mut r = json!({
        "source": SOURCE,
        "policy": SOURCE,
        "rule": rule.as_str(),
        "category": category(rule),
        "severity": severity(action),
        "result": outcome,
        "scored": true,
        "message": message,
        "timestamp": timestamp,
    });
    if !properties.is_empty() {
        r["properties"] = Value::Object(properties);
    }
    r
}

/// The report of one workload, or `None` when it has no UID or namespace (it was not read
/// from a cluster).
fn workload_report(
    w: &AuditedWorkload,
    findings: &[LocatedFinding],
    policy: &RolloutPolicy,
    api: ReportApi,
    timestamp: &Value,
) -> Option<Value> {
    let uid = w.uid.as_deref()?;
    let namespace = w.object.namespace.as_deref()?;
    let eff = policy.for_namespace(Some(namespace));
    let mut results = Vec::new();
    let (mut pass, mut fail, mut warn) = (0, 0, 0);
    for rule in w.checked.iter() {
        let action = eff.action(rule);
        let of_rule: Vec<&LocatedFinding> =
            findings.iter().filter(|f| f.finding.rule == rule).collect();
        if of_rule.is_empty() {
            pass += 1;
            results.push(result(
                rule,
                action,
                "pass",
                format!("{}: passed", rule.title()),
                Map::new(),
                timestamp,
            ));
        }
        for lf in of_rule {
            let f = &lf.finding;
            let outcome = if f.severity == Severity::Error {
                fail += 1;
                "fail"
            } else {
                warn += 1;
                "warn"
            };
            let mut properties = Map::new();
            properties.insert("field".into(), f.field.clone().into());
            properties.insert("fix".into(), f.fix.clone().into());
            properties.insert("action".into(), f.action.to_string().into());
            if let Some(c) = &f.container {
                properties.insert("container".into(), c.clone().into());
            }
            results.push(result(
                rule,
                f.action,
                outcome,
                f.message.clone(),
                properties,
                timestamp,
            ));
        }
    }
    let kind = w.kind.as_str();
    let mut report = json!({
        "apiVersion": api.api_version(),
        "kind": api.kind(),
        "metadata": {
            "name": report_name(uid),
            "namespace": namespace,
            "labels": {MANAGED_BY.0: MANAGED_BY.1},
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": kind,
                "name": w.object.name,
                "uid": uid,
            }],
        },
        "scope": {
            "apiVersion": "apps/v1",
            "kind": kind,
            "name": w.object.name,
            "namespace": namespace,
            "uid": uid,
        },
        "summary": {"pass": pass, "fail": fail, "warn": warn, "error": 0, "skip": 0},
        "results": results,
    });
    if api == ReportApi::Openreports {
        report["source"] = SOURCE.into();
    }
    Some(report)
}

/// A report per audited workload that came from a cluster, in the order they were read.
pub fn reports(
    rep: &AuditResult,
    policy: &RolloutPolicy,
    api: ReportApi,
    now: SystemTime,
) -> Vec<Value> {
    let seconds = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let timestamp = json!({"seconds": seconds, "nanos": 0});
    let mut by_object: HashMap<(String, ObjectRef), Vec<LocatedFinding>> = HashMap::new();
    for lf in rep.findings() {
        by_object
            .entry((lf.file.clone(), lf.finding.object.clone()))
            .or_default()
            .push(lf);
    }
    rep.audited_workloads()
        .iter()
        .filter_map(|w| {
            let findings = by_object
                .get(&(w.file.to_string(), w.object.clone()))
                .map(Vec::as_slice)
                .unwrap_or_default();
            workload_report(w, findings, policy, api, &timestamp)
        })
        .collect()
}

/// The reports as a YAML stream, one document each (what `kubectl apply -f -` reads).
pub fn write_yaml(reports: &[Value], out: &mut impl Write) -> std::io::Result<()> {
    for r in reports {
        let text = serde_saphyr::to_string(r).map_err(std::io::Error::other)?;
        writeln!(out, "---\n{}", text.trim_end())?;
    }
    Ok(())
}
