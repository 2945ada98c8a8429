//! The words of an audit report, below every engine that produces one: a finding with the
//! place its object was read from, and a notice.

use serde::Serialize;

use crate::finding::Finding;

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
