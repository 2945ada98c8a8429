//! What a rule does when violated ([`Action`]), how bad a finding is ([`Severity`]), and the
//! workload kinds the rules understand. The rules themselves are in `crate::rules`.

pub use crate::rules::{RuleId, UnknownRule};

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What happens when a rule is violated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The rule is not checked.
    Off,
    /// Reported (admission warning, audit warning); never blocks.
    Warn,
    /// The mutating webhook fixes the object; whatever it cannot fix is reported as a warning.
    Mutate,
    /// Denied by the validating webhook; an audit failure.
    Enforce,
}

impl Action {
    /// How a violation of a rule in this mode is reported when the rule could not be (or was not) fixed.
    pub fn severity(self) -> Option<Severity> {
        match self {
            Action::Off => None,
            Action::Warn | Action::Mutate => Some(Severity::Warning),
            Action::Enforce => Some(Severity::Error),
        }
    }
}

impl FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Action::Off),
            "warn" => Ok(Action::Warn),
            "mutate" => Ok(Action::Mutate),
            "enforce" => Ok(Action::Enforce),
            other => Err(format!(
                "unknown action {other:?}: expected enforce, warn, mutate or off"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Action;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an action: enforce, warn, mutate or off")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Action, E> {
                s.parse().map_err(E::custom)
            }
            // YAML 1.1 reads a bare `off` as the boolean false.
            fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Action, E> {
                if b {
                    Err(E::custom(
                        "`true`/`on` is not an action: use enforce, warn or mutate",
                    ))
                } else {
                    Ok(Action::Off)
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Off => "off",
            Action::Warn => "warn",
            Action::Mutate => "mutate",
            Action::Enforce => "enforce",
        })
    }
}

/// How bad a finding is. Ordered: `Warning < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// The workload kinds the rules understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl WorkloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
        }
    }

    pub fn from_kind(kind: &str) -> Option<Self> {
        match kind {
            "Deployment" => Some(WorkloadKind::Deployment),
            "StatefulSet" => Some(WorkloadKind::StatefulSet),
            "DaemonSet" => Some(WorkloadKind::DaemonSet),
            _ => None,
        }
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
