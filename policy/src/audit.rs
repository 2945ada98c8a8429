//! The offline audit: every rule over a set of documents, plus the rules that look across
//! objects (RS601 PodDisruptionBudget coverage, RS603 Service selectors, RS405's HPA exemption).
//!
//! Sources are checked one by one (`file_audit`, in parallel in the plugin) and collected
//! with the cross-object rules settled at the end (`settle`); [`audit`] does both for
//! documents already read.

use serde::Serialize;

use crate::config::RolloutPolicy;
use crate::documents::{Document, DocumentError, for_each_document, parse_documents};
use crate::file_audit::FileChecker;
use crate::rule::Severity;

pub use crate::file_audit::{FileAudit, RuleSet};
pub use crate::located::{LocatedFinding, Notice};
pub use crate::settle::{AuditCollector, AuditResult, AuditedWorkload};

/// An audit's result with every finding in memory (see [`AuditResult`] for the compact form).
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

impl From<AuditResult> for AuditReport {
    fn from(r: AuditResult) -> Self {
        AuditReport {
            findings: r.findings().collect(),
            errors: r.errors,
            notices: r.notices,
            workloads: r.workloads,
            objects: r.objects,
        }
    }
}

/// Checks the objects of one source's `docs` (objects listed from a cluster, say).
pub fn audit_documents<'a>(
    policy: &RolloutPolicy,
    docs: impl IntoIterator<Item = &'a Document>,
) -> FileAudit {
    let mut checker = FileChecker::new(policy);
    for doc in docs {
        checker.add_document(doc);
    }
    checker.out
}

/// Reads and checks one source's text (`source` names it in messages): malformed documents
/// become errors and the rest is still checked. YAML is read by the fast readers, each
/// document checked as soon as it is read ([`for_each_document`]).
pub fn audit_text(policy: &RolloutPolicy, source: &str, text: &str) -> FileAudit {
    let mut checker = FileChecker::new(policy);
    for_each_document(source, text, |doc| checker.add_read(doc));
    checker.out
}

/// [`audit_text`] with every YAML document read by serde-saphyr ([`parse_documents`]): the
/// reference the fast readers are compared with.
pub fn audit_text_general(policy: &RolloutPolicy, source: &str, text: &str) -> FileAudit {
    let mut checker = FileChecker::new(policy);
    for doc in parse_documents(source, text) {
        checker.add_read(doc);
    }
    checker.out
}

/// Audits `docs` (already read, with errors from reading passed in `read_errors`), compactly.
pub fn audit_result(
    policy: &RolloutPolicy,
    docs: &[Document],
    read_errors: Vec<DocumentError>,
) -> AuditResult {
    let mut collector = AuditCollector::new(policy);
    for e in read_errors {
        collector.read_error(e);
    }
    collector.add(0, audit_documents(policy, docs));
    collector.finish()
}

/// Audits `docs` (already read, with errors from reading passed in `read_errors`).
pub fn audit(
    policy: &RolloutPolicy,
    docs: &[Document],
    read_errors: Vec<DocumentError>,
) -> AuditReport {
    audit_result(policy, docs, read_errors).into()
}
