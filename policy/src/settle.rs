//! Collecting what every source of an audit contributed, and settling the rules that look
//! across objects over indexes: HPA targets by (namespace, kind, name), PodDisruptionBudget
//! selectors by namespace and label, workloads' pod labels by namespace and label. Each
//! lookup costs about the same however many objects share a namespace, and identical
//! questions (copies of one manifest) are answered once.
//!
//! The findings are kept compactly (strings shared, the object named once) and rendered one
//! at a time in report order, so a report over many thousands of documents stays small.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::check::check_service;
use crate::config::RolloutPolicy;
use crate::documents::DocumentError;
use crate::file_audit::{
    FileAudit, HpaTarget, Location, PdbSummary, Pending, RuleSet, ServiceSummary, WorkloadSummary,
};
use crate::finding::Finding;
use crate::located::{LocatedFinding, Notice};
use crate::rule::{Action, RuleId, Severity, WorkloadKind};
use crate::rules::{ServiceContext, WorkloadsInView};
use crate::selector::{map_selects, selector_matches};
use crate::workload::ObjectRef;

type Labels = BTreeMap<String, String>;

/// Shares equal strings.
#[derive(Debug, Default)]
struct Interner(HashSet<Arc<str>>);

impl Interner {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        self.0.insert(a.clone());
        a
    }
}

/// An object findings are about, stored once for all its findings.
#[derive(Debug)]
struct StoredObject {
    location: Location,
    object: ObjectRef,
}

/// A finding without its object, its strings shared.
#[derive(Debug)]
struct StoredFinding {
    object: u32,
    rule: RuleId,
    action: Action,
    severity: Severity,
    container: Option<Arc<str>>,
    field: Arc<str>,
    /// The message without the object and field it repeats, or the whole message when it is
    /// not in the usual shape.
    what: Arc<str>,
    whole_message: bool,
    fix: Arc<str>,
}

fn message_prefix(object: &ObjectRef, container: Option<&str>) -> String {
    match container {
        Some(c) => format!("{object}: container {c:?} "),
        None => format!("{object}: "),
    }
}

#[derive(Debug, Default)]
struct FindingStore {
    strings: Interner,
    objects: Vec<StoredObject>,
    /// Objects by (file, line, object), for findings that arrive one by one.
    last_object: Option<(Arc<str>, usize, ObjectRef, u32)>,
    findings: Vec<StoredFinding>,
}

impl FindingStore {
    fn object_id(&mut self, location: &Location, object: &ObjectRef) -> u32 {
        if let Some((file, line, o, id)) = &self.last_object
            && Arc::ptr_eq(file, &location.file)
            && *line == location.line
            && o == object
        {
            return *id;
        }
        let file = self.strings.get(&location.file);
        let id = u32::try_from(self.objects.len()).expect("fewer than 2^32 objects");
        self.objects.push(StoredObject {
            location: Location {
                file: file.clone(),
                line: location.line,
            },
            object: object.clone(),
        });
        self.last_object = Some((location.file.clone(), location.line, object.clone(), id));
        id
    }

    fn push(&mut self, location: &Location, f: Finding) {
        let object = self.object_id(location, &f.object);
        let prefix = message_prefix(&f.object, f.container.as_deref());
        let suffix = format!(" ({})", f.field);
        let (what, whole_message) = match f
            .message
            .strip_prefix(&prefix)
            .and_then(|m| m.strip_suffix(&suffix))
        {
            Some(what) => (self.strings.get(what), false),
            None => (self.strings.get(&f.message), true),
        };
        let stored = StoredFinding {
            object,
            rule: f.rule,
            action: f.action,
            severity: f.severity,
            container: f.container.as_deref().map(|c| self.strings.get(c)),
            field: self.strings.get(&f.field),
            what,
            whole_message,
            fix: self.strings.get(&f.fix),
        };
        self.findings.push(stored);
    }

    fn render(&self, id: u32) -> LocatedFinding {
        let s = &self.findings[id as usize];
        let o = &self.objects[s.object as usize];
        let message = if s.whole_message {
            s.what.to_string()
        } else {
            format!(
                "{}{} ({})",
                message_prefix(&o.object, s.container.as_deref()),
                s.what,
                s.field
            )
        };
        LocatedFinding {
            file: o.location.file.to_string(),
            line: o.location.line,
            finding: Finding {
                rule: s.rule,
                action: s.action,
                severity: s.severity,
                object: o.object.clone(),
                container: s.container.as_deref().map(str::to_string),
                field: s.field.to_string(),
                message,
                fix: s.fix.to_string(),
            },
        }
    }
}

/// A workload that was audited, for reports that list every one (JUnit, PolicyReports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditedWorkload {
    pub file: Arc<str>,
    pub line: usize,
    pub object: ObjectRef,
    pub kind: WorkloadKind,
    /// `metadata.uid`, when the workload came from a cluster.
    pub uid: Option<String>,
    /// The rules that ran on it.
    pub checked: RuleSet,
}

/// An audit's result, compact: the findings are rendered one at a time in report order.
#[derive(Debug, Default)]
pub struct AuditResult {
    /// Inputs that could not be read (the rest was still audited).
    pub errors: Vec<DocumentError>,
    pub notices: Vec<Notice>,
    /// Workloads audited.
    pub workloads: usize,
    /// Objects read in all.
    pub objects: usize,
    audited: Vec<AuditedWorkload>,
    store: FindingStore,
    /// Finding ids in report order: by file, line and rule.
    order: Vec<u32>,
    severity_counts: [usize; 2],
}

impl AuditResult {
    /// Every finding, by file, line and rule.
    pub fn findings(&self) -> impl ExactSizeIterator<Item = LocatedFinding> + '_ {
        self.order.iter().map(|&id| self.store.render(id))
    }

    pub fn finding_count(&self) -> usize {
        self.order.len()
    }

    pub fn count(&self, severity: Severity) -> usize {
        match severity {
            Severity::Error => self.severity_counts[0],
            Severity::Warning => self.severity_counts[1],
        }
    }

    /// Whether any finding is at least as severe as `severity`.
    pub fn any_at_least(&self, severity: Severity) -> bool {
        match severity {
            Severity::Warning => self.finding_count() > 0,
            Severity::Error => self.severity_counts[0] > 0,
        }
    }

    /// The workloads audited, in the order they were read.
    pub fn audited_workloads(&self) -> &[AuditedWorkload] {
        &self.audited
    }
}

/// PodDisruptionBudget selectors of one namespace, distinct, by the labels they require.
#[derive(Debug, Default)]
struct PdbIndex {
    selectors: Vec<LabelSelector>,
    /// Selectors requiring `key=value` (matchLabels, or `In` with that value).
    by_label: HashMap<(String, String), Vec<usize>>,
    /// Selectors that require no particular label value (empty, or only NotIn/Exists/…).
    unanchored: Vec<usize>,
    seen: HashSet<String>,
}

impl PdbIndex {
    fn add(&mut self, selector: LabelSelector) {
        // Copies of one budget are one selector.
        let key = format!("{selector:?}");
        if !self.seen.insert(key) {
            return;
        }
        let id = self.selectors.len();
        // One requirement is enough to find it by: any selecting pod must have that label.
        let anchor: Option<Vec<(String, String)>> = selector
            .match_labels
            .iter()
            .flatten()
            .next()
            .map(|(k, v)| vec![(k.clone(), v.clone())])
            .or_else(|| {
                selector
                    .match_expressions
                    .iter()
                    .flatten()
                    .find(|r| r.operator == "In")
                    .map(|r| {
                        r.values
                            .iter()
                            .flatten()
                            .map(|v| (r.key.clone(), v.clone()))
                            .collect()
                    })
            });
        match anchor {
            Some(pairs) => {
                for pair in pairs {
                    self.by_label.entry(pair).or_default().push(id);
                }
            }
            None => self.unanchored.push(id),
        }
        self.selectors.push(selector);
    }

    fn covers(&self, labels: &Labels) -> bool {
        let matches = |id: &usize| selector_matches(&self.selectors[*id], labels);
        self.unanchored.iter().any(matches)
            || labels.iter().any(|(k, v)| {
                self.by_label
                    .get(&(k.clone(), v.clone()))
                    .is_some_and(|ids| ids.iter().any(matches))
            })
    }
}

/// The pod labels of one namespace's workloads, by label.
#[derive(Debug, Default)]
struct WorkloadIndex<'a> {
    labels: Vec<&'a Labels>,
    by_label: HashMap<(&'a str, &'a str), Vec<u32>>,
}

impl<'a> WorkloadIndex<'a> {
    fn add(&mut self, labels: &'a Labels) {
        let id = self.labels.len() as u32;
        for (k, v) in labels {
            self.by_label.entry((k, v)).or_default().push(id);
        }
        self.labels.push(labels);
    }

    /// Whether a Service-style selector selects the pods of one of them.
    fn any_selected(&self, selector: &Labels) -> bool {
        if selector.is_empty() {
            return false;
        }
        // Only workloads with the rarest of the selector's labels can match.
        let mut rarest: Option<&Vec<u32>> = None;
        for (k, v) in selector {
            match self.by_label.get(&(k.as_str(), v.as_str())) {
                None => return false,
                Some(ids) if rarest.is_none_or(|r| ids.len() < r.len()) => rarest = Some(ids),
                Some(_) => {}
            }
        }
        rarest.is_some_and(|ids| {
            ids.iter()
                .any(|&id| map_selects(selector, self.labels[id as usize]))
        })
    }
}

/// Collects the sources of an audit, in any order, and settles the cross-object rules at the
/// end. Sources are numbered by the caller (0, 1, 2, …, in input order) so the result does not
/// depend on the order they were checked in.
pub struct AuditCollector<'p> {
    policy: &'p RolloutPolicy,
    next: usize,
    waiting: BTreeMap<usize, FileAudit>,
    read_errors: Vec<DocumentError>,
    object_errors: Vec<DocumentError>,
    notices: Vec<Notice>,
    objects: usize,
    workloads: usize,
    store: FindingStore,
    summaries: Vec<WorkloadSummary>,
    services: Vec<ServiceSummary>,
    pdbs: HashMap<Option<String>, PdbIndex>,
    hpas: HashSet<HpaTarget>,
}

impl<'p> AuditCollector<'p> {
    pub fn new(policy: &'p RolloutPolicy) -> Self {
        AuditCollector {
            policy,
            next: 0,
            waiting: BTreeMap::new(),
            read_errors: Vec::new(),
            object_errors: Vec::new(),
            notices: Vec::new(),
            objects: 0,
            workloads: 0,
            store: FindingStore::default(),
            summaries: Vec::new(),
            services: Vec::new(),
            pdbs: HashMap::new(),
            hpas: HashSet::new(),
        }
    }

    /// An input that could not be read before any source was (a missing path, say).
    pub fn read_error(&mut self, e: DocumentError) {
        self.read_errors.push(e);
    }

    /// A notice about the input as a whole (what a directory walk skipped, say).
    pub fn notice(&mut self, n: Notice) {
        self.notices.push(n);
    }

    /// Adds source number `index`; sources are absorbed in index order.
    pub fn add(&mut self, index: usize, file: FileAudit) {
        self.waiting.insert(index, file);
        while let Some(file) = self.waiting.remove(&self.next) {
            self.absorb(file);
            self.next += 1;
        }
    }

    fn absorb(&mut self, file: FileAudit) {
        self.objects += file.objects;
        self.workloads += file.workloads;
        self.read_errors.extend(file.read_errors);
        self.object_errors.extend(file.object_errors);
        self.notices.extend(file.notices);
        for (location, f) in file.findings {
            self.store.push(&location, f);
        }
        self.summaries.extend(file.workload_summaries);
        self.services.extend(file.services);
        for PdbSummary {
            namespace,
            selector,
        } in file.pdbs
        {
            self.pdbs.entry(namespace).or_default().add(selector);
        }
        self.hpas.extend(file.hpas);
    }

    /// Settles the cross-object rules and orders the findings.
    pub fn finish(mut self) -> AuditResult {
        // Sources that never arrived (a caller's bug) are absorbed as they are.
        for (_, file) in std::mem::take(&mut self.waiting) {
            self.absorb(file);
        }
        let AuditCollector {
            policy,
            read_errors,
            object_errors,
            notices,
            objects,
            workloads,
            mut store,
            summaries,
            services,
            pdbs,
            hpas,
            ..
        } = self;

        let mut by_namespace: HashMap<Option<&str>, WorkloadIndex<'_>> = HashMap::new();
        for s in &summaries {
            by_namespace
                .entry(s.object.namespace.as_deref())
                .or_default()
                .add(&s.pod_labels);
        }

        // RS405 and RS601: the answers, then the findings given for them.
        let mut coverage: HashMap<(Option<&str>, &Labels), bool> = HashMap::new();
        let mut settled: Vec<(Location, Finding)> = Vec::new();
        for s in &summaries {
            let ns = s.object.namespace.as_deref();
            let autoscaled = hpas.contains(&HpaTarget {
                namespace: s.object.namespace.clone(),
                kind: s.kind.as_str().to_string(),
                name: s.object.name.clone(),
            });
            let pending = if autoscaled {
                &s.autoscaled
            } else {
                &s.not_autoscaled
            };
            let findings = match pending {
                Pending::Known(f) => f,
                Pending::ByCoverage { uncovered, covered } => {
                    let is_covered = *coverage.entry((ns, &s.pod_labels)).or_insert_with(|| {
                        pdbs.get(&s.object.namespace)
                            .is_some_and(|p| p.covers(&s.pod_labels))
                    });
                    if is_covered { covered } else { uncovered }
                }
            };
            settled.extend(findings.iter().map(|f| (s.location.clone(), f.clone())));
        }
        for (location, f) in settled {
            store.push(&location, f);
        }

        // RS603 (and every Service rule): over the workloads of the Service's namespace.
        let empty = WorkloadIndex::default();
        let mut effective = HashMap::new();
        let mut selected: HashMap<(Option<&str>, &Labels), bool> = HashMap::new();
        for svc in &services {
            let ns = svc.view.object.namespace.as_deref();
            let eff = effective
                .entry(ns)
                .or_insert_with(|| policy.for_namespace(ns));
            let index = by_namespace.get(&ns).unwrap_or(&empty);
            let any = *selected
                .entry((ns, &svc.view.selector))
                .or_insert_with(|| index.any_selected(&svc.view.selector));
            let count = index.labels.len();
            let seen = |_: &Labels| WorkloadsInView {
                count,
                any_selected: any,
            };
            let cx = ServiceContext {
                workloads: Some(&seen),
                ..Default::default()
            };
            for f in check_service(&svc.view, &cx, eff) {
                store.push(&svc.location, f);
            }
        }

        // Report order: by file, line and rule; ties keep the order found (a List's objects
        // share a line).
        let mut order: Vec<u32> = (0..store.findings.len() as u32).collect();
        order.sort_by(|&a, &b| {
            let (fa, fb) = (&store.findings[a as usize], &store.findings[b as usize]);
            let (oa, ob) = (
                &store.objects[fa.object as usize],
                &store.objects[fb.object as usize],
            );
            (&*oa.location.file, oa.location.line, fa.rule).cmp(&(
                &*ob.location.file,
                ob.location.line,
                fb.rule,
            ))
        });
        let mut severity_counts = [0, 0];
        for f in &store.findings {
            match f.severity {
                Severity::Error => severity_counts[0] += 1,
                Severity::Warning => severity_counts[1] += 1,
            }
        }
        let audited = summaries
            .into_iter()
            .map(|s| AuditedWorkload {
                file: s.location.file,
                line: s.location.line,
                object: s.object,
                kind: s.kind,
                uid: s.uid,
                checked: s.checked,
            })
            .collect();
        let mut errors = read_errors;
        errors.extend(object_errors);
        AuditResult {
            errors,
            notices,
            workloads,
            objects,
            audited,
            store,
            order,
            severity_counts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use proptest::prelude::*;

    /// Labels over a small alphabet, so that selectors and pods often meet.
    fn labels() -> impl Strategy<Value = Labels> {
        proptest::collection::btree_map("[abc]", "[xyz]", 0..3)
    }

    fn requirement() -> impl Strategy<Value = LabelSelectorRequirement> {
        (
            "[abc]",
            prop_oneof!["In", "NotIn", "Exists", "DoesNotExist", "Bogus"],
            proptest::collection::vec("[xyz]", 0..3),
        )
            .prop_map(|(key, operator, values)| LabelSelectorRequirement {
                key,
                operator: operator.to_string(),
                values: Some(values),
            })
    }

    fn selector() -> impl Strategy<Value = LabelSelector> {
        (
            proptest::option::of(labels()),
            proptest::option::of(proptest::collection::vec(requirement(), 0..3)),
        )
            .prop_map(|(match_labels, match_expressions)| LabelSelector {
                match_labels,
                match_expressions,
            })
    }

    proptest! {
        /// The index answers what trying every budget answers.
        #[test]
        fn pdb_index_is_a_scan(
            selectors in proptest::collection::vec(selector(), 0..6),
            pods in proptest::collection::vec(labels(), 1..6),
        ) {
            let mut index = PdbIndex::default();
            for s in &selectors {
                index.add(s.clone());
            }
            for pod in &pods {
                let scan = selectors.iter().any(|s| selector_matches(s, pod));
                prop_assert_eq!(index.covers(pod), scan, "{:?} {:?}", selectors, pod);
            }
        }

        /// The index answers what trying every workload answers.
        #[test]
        fn workload_index_is_a_scan(
            workloads in proptest::collection::vec(labels(), 0..8),
            selectors in proptest::collection::vec(labels(), 1..6),
        ) {
            let mut index = WorkloadIndex::default();
            for w in &workloads {
                index.add(w);
            }
            for s in &selectors {
                let scan = workloads.iter().any(|w| map_selects(s, w));
                prop_assert_eq!(index.any_selected(s), scan);
            }
        }
    }

    #[test]
    fn copies_of_one_budget_are_one_selector() {
        let mut index = PdbIndex::default();
        let s = LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: None,
        };
        for _ in 0..1000 {
            index.add(s.clone());
        }
        assert_eq!(index.selectors.len(), 1);
    }

    #[test]
    fn messages_round_trip_through_the_store() {
        let object = ObjectRef {
            kind: "Deployment".into(),
            namespace: Some("shop".into()),
            name: "web".into(),
        };
        let location = Location {
            file: Arc::from("f.yaml"),
            line: 3,
        };
        let standard = Finding {
            rule: RuleId::RS101,
            action: Action::Enforce,
            severity: Severity::Error,
            object: object.clone(),
            container: Some("app".into()),
            field: "spec.template.spec.containers[0].readinessProbe".into(),
            message: format!(
                "{object}: container \"app\" has no readiness probe (spec.template.spec.containers[0].readinessProbe)"
            ),
            fix: "add one".into(),
        };
        let odd = Finding {
            message: "a message in no usual shape".into(),
            container: None,
            ..standard.clone()
        };
        let mut store = FindingStore::default();
        store.push(&location, standard.clone());
        store.push(&location, odd.clone());
        assert!(!store.findings[0].whole_message && store.findings[1].whole_message);
        assert_eq!(store.render(0).finding, standard);
        assert_eq!(store.render(1).finding, odd);
        assert_eq!(
            (store.render(0).file.as_str(), store.render(0).line),
            ("f.yaml", 3)
        );
        assert_eq!(store.objects.len(), 1, "one object for both findings");
    }
}
