//! What a rule reports ([`Finding`]) and what a fix did ([`Mutation`]).

use serde::Serialize;

use crate::rule::{Action, RuleId, Severity};
use crate::workload::ObjectRef;

/// One violated rule on one object (and container, where it is about one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: RuleId,
    /// The action in force for this object's namespace.
    pub action: Action,
    pub severity: Severity,
    pub object: ObjectRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The field the finding is about, as a path: `spec.template.spec.containers[0].readinessProbe`.
    pub field: String,
    /// A sentence naming the object, the container and the field.
    pub message: String,
    /// What to change.
    pub fix: String,
}

impl Finding {
    /// `RS101 Deployment shop/web: ... Fix: ...`: one line, for deny messages and warnings.
    pub fn one_line(&self) -> String {
        format!("{} {} Fix: {}", self.rule, self.message, self.fix)
    }
}

/// One fix that was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mutation {
    pub rule: RuleId,
    /// The field written, e.g. `spec.template.spec.containers[0].lifecycle.preStop`.
    pub field: String,
    pub description: String,
}
