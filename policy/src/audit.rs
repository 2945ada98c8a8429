//! The offline audit: every rule over a set of documents, plus the rules that look across
//! objects (RS601 PodDisruptionBudget coverage, RS603 Service selectors, RS405's HPA exemption).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Serialize;
use serde_json::Value;

use crate::check::{Facts, Skip, check};
use crate::config::RolloutPolicy;
use crate::documents::{Document, DocumentError};
use crate::finding::Finding;
use crate::rule::{Action, RuleId, Severity, WorkloadKind};
use crate::selector::{map_selects, map_text};
use crate::workload::{ObjectRef, Workload};

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
    object: ObjectRef,
    selector: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
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
            ("v1", "Service") => {
                let selector: BTreeMap<String, String> = v
                    .pointer("/spec/selector")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| {
                                (
                                    k.clone(),
                                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let annotations = v
                    .pointer("/metadata/annotations")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                            .collect()
                    })
                    .unwrap_or_default();
                services.push(Service {
                    doc,
                    object: ObjectRef {
                        kind: "Service".into(),
                        namespace,
                        name: meta_str(v, "name").unwrap_or("<unnamed>").into(),
                    },
                    selector,
                    annotations,
                });
            }
            _ => {}
        }
    }

    report.workloads = workloads.len();
    for (doc, w) in &workloads {
        let ns = w.namespace().map(str::to_string);
        let facts = Facts::gather(
            w,
            pdbs.iter()
                .filter(|p| p.namespace == ns)
                .map(|p| &p.selector),
            hpas.iter()
                .filter(|h| h.namespace == ns)
                .map(|h| (h.kind.as_str(), h.name.as_str())),
        );
        let eff = policy.for_namespace(w.namespace());
        for finding in check(w, None, &eff, &facts) {
            report.findings.push(LocatedFinding {
                file: doc.source.clone(),
                line: doc.line,
                finding,
            });
        }
    }

    for svc in &services {
        let eff = policy.for_namespace(svc.object.namespace.as_deref());
        let action = eff.action(RuleId::RS603);
        let skipped = Skip::read(|k| svc.annotations.get(k).map(String::as_str))
            .is_some_and(|s| s.exempts(RuleId::RS603));
        if action == Action::Off || skipped || svc.selector.is_empty() {
            continue;
        }
        let same_ns: Vec<&Workload> = workloads
            .iter()
            .map(|(_, w)| w)
            .filter(|w| w.namespace() == svc.object.namespace.as_deref())
            .collect();
        // With no workload in view, the Service's pods are simply elsewhere.
        if same_ns.is_empty()
            || same_ns
                .iter()
                .any(|w| map_selects(&svc.selector, &w.pod_labels()))
        {
            continue;
        }
        let field = "spec.selector".to_string();
        report.findings.push(LocatedFinding {
            file: svc.doc.source.clone(),
            line: svc.doc.line,
            finding: Finding {
                rule: RuleId::RS603,
                action,
                severity: action.severity().unwrap_or(Severity::Warning),
                object: svc.object.clone(),
                container: None,
                message: format!(
                    "{}: selector {} matches the pods of none of the {} workload(s) audited with it, so it has no endpoints ({field})",
                    svc.object,
                    map_text(&svc.selector),
                    same_ns.len()
                ),
                field,
                fix: "make the selector a subset of a workload's pod template labels".into(),
            },
        });
    }

    report
        .findings
        .sort_by(|a, b| (&a.file, a.line, a.finding.rule).cmp(&(&b.file, b.line, b.finding.rule)));
    report
}
