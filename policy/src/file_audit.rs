//! Checking one source (a file, stdin, or the objects listed from a cluster) on its own.
//!
//! Every finding a workload's own fields decide is final as soon as its source is checked. The
//! rules that look at other objects (RS405's HPA exemption, RS601's PodDisruptionBudget
//! coverage, RS603's Service selectors) can only be settled once every source has been read
//! (`crate::settle`): for those this keeps a compact summary of each object — names, labels,
//! selectors — never the object itself, so an audit's memory does not grow with the documents.
//!
//! The cross-object workload rules still run here, through the registry, once for each
//! answer the other sources can give (an HPA targets the workload or not; a PDB selects its
//! pods or not). Settling then only looks the answers up and picks the findings, so the rules'
//! checks and messages stay in their files.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

use crate::check::{exempted, runs};
use crate::config::{EffectivePolicy, RolloutPolicy};
use crate::documents::{Document, DocumentError};
use crate::facts::Facts;
use crate::finding::Finding;
use crate::located::Notice;
use crate::rule::{RuleId, WorkloadKind};
use crate::rules::{self, Input, Report, WorkloadContext};
use crate::view::{ServiceView, WorkloadView};
use crate::workload::{ObjectRef, Workload};

/// Where an object was read: its source and the line its document starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: Arc<str>,
    pub line: usize,
}

/// A set of rules, by their position in [`RuleId::ALL`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleSet(u64);

impl RuleSet {
    pub fn insert(&mut self, rule: RuleId) {
        self.0 |= 1 << rule as usize;
    }

    pub fn contains(self, rule: RuleId) -> bool {
        self.0 & (1 << rule as usize) != 0
    }

    /// The rules in catalogue order.
    pub fn iter(self) -> impl Iterator<Item = RuleId> {
        RuleId::ALL
            .iter()
            .copied()
            .filter(move |r| self.contains(*r))
    }
}

// A rule set is a bit per rule.
const _: () = assert!(RuleId::COUNT <= 64);

/// The findings of the cross-object workload rules for one answer to "does an HPA target it?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Pending {
    /// The rules did not ask whether a PodDisruptionBudget covers the workload.
    Known(Vec<Finding>),
    /// They did (the workload runs, or may scale to, several replicas).
    ByCoverage {
        uncovered: Vec<Finding>,
        covered: Vec<Finding>,
    },
}

/// What the settling needs of a workload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WorkloadSummary {
    pub location: Location,
    pub object: ObjectRef,
    pub kind: WorkloadKind,
    /// `metadata.uid` (objects listed from a cluster have one).
    pub uid: Option<String>,
    pub pod_labels: BTreeMap<String, String>,
    /// The rules that ran on it (settled ones included).
    pub checked: RuleSet,
    pub not_autoscaled: Pending,
    pub autoscaled: Pending,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ServiceSummary {
    pub location: Location,
    pub view: ServiceView,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PdbSummary {
    pub namespace: Option<String>,
    pub selector: LabelSelector,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct HpaTarget {
    pub namespace: Option<String>,
    pub kind: String,
    pub name: String,
}

/// What one source contributes to an audit.
#[derive(Debug, Default)]
pub struct FileAudit {
    /// Objects read.
    pub objects: usize,
    /// Workloads audited.
    pub workloads: usize,
    /// Final findings, in the order they were found.
    pub(crate) findings: Vec<(Location, Finding)>,
    /// The source, or a document of it, could not be read.
    pub(crate) read_errors: Vec<DocumentError>,
    /// An object could not be read as the kind it claims to be.
    pub(crate) object_errors: Vec<DocumentError>,
    pub(crate) notices: Vec<Notice>,
    pub(crate) workload_summaries: Vec<WorkloadSummary>,
    pub(crate) services: Vec<ServiceSummary>,
    pub(crate) pdbs: Vec<PdbSummary>,
    pub(crate) hpas: Vec<HpaTarget>,
}

impl FileAudit {
    /// A source that could not be read at all (`line` 0) or a document that could not be parsed.
    pub fn read_error(&mut self, e: DocumentError) {
        self.read_errors.push(e);
    }

    /// Inputs that could not be read so far.
    pub fn error_count(&self) -> usize {
        self.read_errors.len() + self.object_errors.len()
    }
}

/// What a document is, as far as the audit cares.
#[derive(Debug)]
pub(crate) enum Object {
    Workload(Box<Workload>),
    /// A workload kind that does not deserialize (the field's path is in the message).
    InvalidWorkload(String),
    /// A workload kind under an API version the API server no longer serves.
    RemovedApi(String),
    Service(ServiceView),
    /// A PodDisruptionBudget whose selector selects something.
    Pdb(PdbSummary),
    Hpa(HpaTarget),
    /// Anything else: counted, not checked.
    Other,
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

fn meta_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get("metadata")
        .and_then(|m| m.get(key))
        .and_then(Value::as_str)
}

/// The notice for a workload under a removed API version.
pub(crate) fn removed_api_notice(
    api_version: &str,
    kind: &str,
    name: Option<&str>,
) -> Option<String> {
    removed_api(api_version, kind).map(|why| {
        format!(
            "{kind} {} uses {api_version}, {why}; not audited (convert it to apps/v1)",
            name.unwrap_or("<unnamed>")
        )
    })
}

/// Whether a PodDisruptionBudget selector selects anything: policy/v1beta1 treated an empty
/// selector as selecting nothing.
pub(crate) fn pdb_selects(api_version: &str, selector: &LabelSelector) -> bool {
    api_version == "policy/v1"
        || selector.match_labels.is_some()
        || selector.match_expressions.is_some()
}

/// Classifies a parsed document.
pub(crate) fn classify(v: &Value) -> Object {
    let api_version = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    if let Some(message) = removed_api_notice(api_version, kind, meta_str(v, "name")) {
        return Object::RemovedApi(message);
    }
    let namespace = || meta_str(v, "namespace").map(str::to_string);
    match (api_version, kind) {
        ("apps/v1", _) if WorkloadKind::from_kind(kind).is_some() => {
            match Workload::from_value(v) {
                Ok(Some(w)) => Object::Workload(Box::new(w)),
                Ok(None) => Object::Other,
                Err(e) => Object::InvalidWorkload(e.to_string()),
            }
        }
        ("policy/v1" | "policy/v1beta1", "PodDisruptionBudget") => v
            .pointer("/spec/selector")
            .cloned()
            .and_then(|s| serde_json::from_value::<LabelSelector>(s).ok())
            .filter(|s| pdb_selects(api_version, s))
            .map_or(Object::Other, |selector| {
                Object::Pdb(PdbSummary {
                    namespace: namespace(),
                    selector,
                })
            }),
        (av, "HorizontalPodAutoscaler") if av.starts_with("autoscaling/") => v
            .pointer("/spec/scaleTargetRef")
            .map_or(Object::Other, |t| {
                Object::Hpa(HpaTarget {
                    namespace: namespace(),
                    kind: t.get("kind").and_then(Value::as_str).unwrap_or("").into(),
                    name: t.get("name").and_then(Value::as_str).unwrap_or("").into(),
                })
            }),
        ("v1", "Service") => Object::Service(ServiceView::from_value(v, None)),
        _ => Object::Other,
    }
}

/// Checks the objects of one source.
pub(crate) struct FileChecker<'p> {
    policy: &'p RolloutPolicy,
    /// The effective policy per namespace, worked out once.
    effective: HashMap<Option<String>, EffectivePolicy>,
    /// The last source name, shared by its objects.
    source: Option<Arc<str>>,
    pub(crate) out: FileAudit,
}

impl<'p> FileChecker<'p> {
    pub(crate) fn new(policy: &'p RolloutPolicy) -> Self {
        FileChecker {
            policy,
            effective: HashMap::new(),
            source: None,
            out: FileAudit::default(),
        }
    }

    /// `name` as a shared string (the same one for every object of a source).
    pub(crate) fn source(&mut self, name: &str) -> Arc<str> {
        match &self.source {
            Some(s) if &**s == name => s.clone(),
            _ => {
                let s: Arc<str> = Arc::from(name);
                self.source = Some(s.clone());
                s
            }
        }
    }

    /// Adds a document as it was read: checked, or its error kept.
    pub(crate) fn add_read(&mut self, doc: Result<Document, DocumentError>) {
        match doc {
            Ok(doc) => self.add_document(&doc),
            Err(e) => self.out.read_error(e),
        }
    }

    /// Adds a parsed document.
    pub(crate) fn add_document(&mut self, doc: &Document) {
        let file = self.source(&doc.source);
        self.add_object(
            Location {
                file,
                line: doc.line,
            },
            classify(&doc.value),
        );
    }

    /// Adds a classified object read at `location`.
    pub(crate) fn add_object(&mut self, location: Location, object: Object) {
        self.out.objects += 1;
        match object {
            Object::Workload(w) => self.add_workload(location, &w),
            Object::InvalidWorkload(message) => self.out.object_errors.push(DocumentError {
                file: location.file.to_string(),
                line: location.line,
                column: None,
                message,
            }),
            Object::RemovedApi(message) => self.out.notices.push(Notice {
                file: location.file.to_string(),
                line: location.line,
                message,
            }),
            Object::Service(view) => self.out.services.push(ServiceSummary { location, view }),
            Object::Pdb(p) => self.out.pdbs.push(p),
            Object::Hpa(h) => self.out.hpas.push(h),
            Object::Other => {}
        }
    }

    /// Runs every workload rule on `w`: the final findings go to the output, the cross-object
    /// rules' findings into its summary, one set per answer the other sources can give.
    pub(crate) fn add_workload(&mut self, location: Location, w: &Workload) {
        self.out.workloads += 1;
        let view = WorkloadView::new(w);
        let exempt = exempted(view.skip.as_ref());
        let no_facts = Facts::default();
        let cx = WorkloadContext {
            facts: &no_facts,
            old: None,
            planned_prestop_seconds: None,
        };
        let policy = self.policy;
        let eff: &EffectivePolicy = self
            .effective
            .entry(w.namespace().map(str::to_string))
            .or_insert_with(|| policy.for_namespace(w.namespace()));
        let mut checked = RuleSet::default();
        let mut settled_later: Vec<(RuleId, crate::rule::Action)> = Vec::new();
        let mut findings = Vec::new();
        for &rule in RuleId::WORKLOAD_RULES {
            let Some(action) = runs(rule, eff, &exempt, |r| r.applies_to(view.kind())) else {
                continue;
            };
            checked.insert(rule);
            if matches!(rule.meta().input, Input::Surroundings(_)) {
                settled_later.push((rule, action));
            } else {
                rules::check_workload(
                    rule,
                    &view,
                    &eff.params,
                    &cx,
                    &mut Report::new(rule, action, &view.object, &mut findings),
                );
            }
        }
        self.out
            .findings
            .extend(findings.into_iter().map(|f| (location.clone(), f)));

        // The cross-object rules, for each answer the other sources may give.
        let run_with = |facts: &Facts| {
            let cx = WorkloadContext {
                facts,
                old: None,
                planned_prestop_seconds: None,
            };
            let mut out = Vec::new();
            for &(rule, action) in &settled_later {
                rules::check_workload(
                    rule,
                    &view,
                    &eff.params,
                    &cx,
                    &mut Report::new(rule, action, &view.object, &mut out),
                );
            }
            out
        };
        let pending = |autoscaled: bool| {
            let asked = Cell::new(false);
            let uncovered = Facts::from_lookups(w, Some(autoscaled), |_| {
                asked.set(true);
                Some(false)
            });
            if asked.get() {
                let covered = Facts::from_lookups(w, Some(autoscaled), |_| Some(true));
                Pending::ByCoverage {
                    uncovered: run_with(&uncovered),
                    covered: run_with(&covered),
                }
            } else {
                Pending::Known(run_with(&uncovered))
            }
        };
        let not_autoscaled = pending(false);
        let autoscaled = pending(true);
        self.out.workload_summaries.push(WorkloadSummary {
            location,
            object: view.object.clone(),
            kind: view.kind(),
            uid: w.metadata().uid.clone(),
            pod_labels: w.pod_labels(),
            checked,
            not_autoscaled,
            autoscaled,
        });
    }
}
