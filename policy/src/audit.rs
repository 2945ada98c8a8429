//! The offline audit: every rule over a set of documents, plus the rules that look across
//! objects (RS601 PodDisruptionBudget coverage, RS603 Service selectors, RS405's HPA exemption).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Serialize;
use serde_json::Value;

use crate::check::{Facts, check, check_service};
use crate::config::RolloutPolicy;
use crate::documents::{Document, DocumentError};
use crate::finding::Finding;
use crate::rule::{Severity, WorkloadKind};
use crate::rules::{ServiceContext, WorkloadsInView};
use crate::selector::map_selects;
use crate::view::ServiceView;
use crate::workload::Workload;

/// A finding with the place its object was read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocatedFinding {
    pub file: String,
    pub line: usize,
    #[serde(flatten)]
    pub finding: Finding,
}

/// Something worth telling that is neither a finding nor an unreadable input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    pub file: String,
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditReport {
    pub findings: Vec<LocatedFinding>,
    /// Inputs that could not be read (the rest was still audited).
    pub errors: Vec<DocumentError>,
    pub notices: Vec<Notice>,
    /// Workloads audited.
    pub workloads: usize,
    /// Objects read in all.
    pub objects: usize,
}

impl AuditReport {
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.finding.severity == severity)
            .count()
    }
}

/// Workload kinds under API versions the API server no longer serves.
fn removed_api(api_version: &str, kind: &str) -> Option<&'static str> {
    WorkloadKind::from_kind(kind)?;
    matches!(
        api_version,
        "extensions/v1beta1" | "apps/v1beta1" | "apps/v1beta2"
    )
    .then_some("removed in Kubernetes 1.16")
}

struct Pdb {
    namespace: Option<String>,
    selector: LabelSelector,
}

struct Hpa {
    namespace: Option<String>,
    kind: String,
    name: String,
}

struct Service<'a> {
    doc: &'a Document,
    view: ServiceView,
}

fn meta_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get("metadata")
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
}

/// Audits `docs` (already read, with errors from reading passed in `read_errors`).
pub fn audit(
    policy: &RolloutPolicy,
    docs: &[Document],
    read_errors: Vec<DocumentError>,
) -> AuditReport {
    let mut report = AuditReport {
        errors: read_errors,
        objects: docs.len(),
        ..Default::default()
    };
    let mut workloads: Vec<(&Document, Workload)> = Vec::new();
    let mut pdbs = Vec::new();
    let mut hpas = Vec::new();
    let mut services = Vec::new();

    for doc in docs {
        let v = &doc.value;
        let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
        let namespace = meta_str(v, "namespace").map(str::to_string);
        if let Some(why) = removed_api(api_version, kind) {
            report.notices.push(Notice {
                file: doc.source.clone(),
                line: doc.line,
                message: format!(
                    "{kind} {} uses {api_version}, {why}; not audited (convert it to apps/v1)",
                    meta_str(v, "name").unwrap_or("<unnamed>")
                ),
            });
            continue;
        }
        match (api_version, kind) {
            ("apps/v1", _) if WorkloadKind::from_kind(kind).is_some() => {
                match Workload::from_value(v) {
                    Ok(Some(w)) => workloads.push((doc, w)),
                    Ok(None) => {}
                    Err(e) => report.errors.push(DocumentError {
                        file: doc.source.clone(),
                        line: doc.line,
                        column: None,
                        message: e.to_string(),
                    }),
                }
            }
            ("policy/v1" | "policy/v1beta1", "PodDisruptionBudget") => {
                let selector = v
                    .pointer("/spec/selector")
                    .cloned()
                    .and_then(|s| serde_json::from_value::<LabelSelector>(s).ok());
                // policy/v1beta1 treated an empty selector as selecting nothing.
                if let Some(selector) = selector.filter(|s| {
                    api_version == "policy/v1"
                        || s.match_labels.is_some()
                        || s.match_expressions.is_some()
                }) {
                    pdbs.push(Pdb {
                        namespace,
                        selector,
                    });
                }
            }
            (av, "HorizontalPodAutoscaler") if av.starts_with("autoscaling/") => {
                let target = v.pointer("/spec/scaleTargetRef");
                if let Some(t) = target {
                    hpas.push(Hpa {
                        namespace,
                        kind: t.get("kind").and_then(Value::as_str).unwrap_or("").into(),
                        name: t.get("name").and_then(Value::as_str).unwrap_or("").into(),
                    });
                }
            }
            ("v1", "Service") => services.push(Service {
                doc,
                view: ServiceView::from_value(v, None),
            }),
            _ => {}
        }
    }

    report.workloads = workloads.len();
    // The cross-object rules look things up by namespace.
    let mut pdbs_by_ns: BTreeMap<Option<&str>, Vec<&LabelSelector>> = BTreeMap::new();
    for p in &pdbs {
        pdbs_by_ns
            .entry(p.namespace.as_deref())
            .or_default()
            .push(&p.selector);
    }
    let mut hpas_by_ns: BTreeMap<Option<&str>, Vec<(&str, &str)>> = BTreeMap::new();
    for h in &hpas {
        hpas_by_ns
            .entry(h.namespace.as_deref())
            .or_default()
            .push((h.kind.as_str(), h.name.as_str()));
    }
    let mut pod_labels_by_ns: BTreeMap<Option<&str>, Vec<BTreeMap<String, String>>> =
        BTreeMap::new();
    for (doc, w) in &workloads {
        let ns = w.namespace();
        let facts = Facts::gather(
            w,
            pdbs_by_ns.get(&ns).into_iter().flatten().copied(),
            hpas_by_ns.get(&ns).into_iter().flatten().copied(),
        );
        let eff = policy.for_namespace(ns);
        for finding in check(w, None, &eff, &facts) {
            report.findings.push(LocatedFinding {
                file: doc.source.clone(),
                line: doc.line,
                finding,
            });
        }
        pod_labels_by_ns.entry(ns).or_default().push(w.pod_labels());
    }

    for svc in &services {
        let ns = svc.view.object.namespace.as_deref();
        let eff = policy.for_namespace(ns);
        let in_ns = pod_labels_by_ns
            .get(&ns)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let workloads_seen = |selector: &BTreeMap<String, String>| WorkloadsInView {
            count: in_ns.len(),
            any_selected: in_ns.iter().any(|labels| map_selects(selector, labels)),
        };
        let cx = ServiceContext {
            workloads: Some(&workloads_seen),
            ..Default::default()
        };
        for finding in check_service(&svc.view, &cx, &eff) {
            report.findings.push(LocatedFinding {
                file: svc.doc.source.clone(),
                line: svc.doc.line,
                finding,
            });
        }
    }

    report
        .findings
        .sort_by(|a, b| (&a.file, a.line, a.finding.rule).cmp(&(&b.file, b.line, b.finding.rule)));
    report
}
