//! The rule catalogue: stable IDs, titles, default actions and which kinds each rule applies to.

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

macro_rules! rules {
    ($( $id:ident => $title:literal, $default:ident, [$($kind:ident),*]; )*) => {
        /// A rule's stable identifier, e.g. `RS101`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum RuleId { $($id),* }

        impl RuleId {
            /// Every rule, in catalogue order.
            pub const ALL: &'static [RuleId] = &[$(RuleId::$id),*];

            pub fn as_str(self) -> &'static str {
                match self { $(RuleId::$id => stringify!($id)),* }
            }

            /// The one-line title shown in tables and SARIF rule metadata.
            pub fn title(self) -> &'static str {
                match self { $(RuleId::$id => $title),* }
            }

            /// The action a rule has when the policy does not name it.
            pub fn default_action(self) -> Action {
                match self { $(RuleId::$id => Action::$default),* }
            }

            /// Whether the rule has anything to say about this workload kind.
            pub fn applies_to(self, kind: WorkloadKind) -> bool {
                match self { $(RuleId::$id => [$(WorkloadKind::$kind),*].contains(&kind)),* }
            }
        }

        impl FromStr for RuleId {
            type Err = UnknownRule;
            fn from_str(s: &str) -> Result<Self, UnknownRule> {
                match s.trim().to_ascii_uppercase().as_str() {
                    $(stringify!($id) => Ok(RuleId::$id),)*
                    _ => Err(UnknownRule(s.to_string())),
                }
            }
        }
    };
}

rules! {
    RS001 => "skip annotation needs a reason", Warn, [Deployment, StatefulSet, DaemonSet];
    RS101 => "container has a readinessProbe", Enforce, [Deployment, StatefulSet, DaemonSet];
    RS102 => "container has a livenessProbe", Warn, [Deployment, StatefulSet, DaemonSet];
    RS103 => "livenessProbe differs from readinessProbe", Warn, [Deployment, StatefulSet, DaemonSet];
    RS104 => "livenessProbe leaves time to start", Warn, [Deployment, StatefulSet, DaemonSet];
    RS105 => "probe's named port exists", Enforce, [Deployment, StatefulSet, DaemonSet];
    RS201 => "container has a preStop hook", Mutate, [Deployment, StatefulSet, DaemonSet];
    RS202 => "grace period covers preStop plus shutdown", Mutate, [Deployment, StatefulSet, DaemonSet];
    RS301 => "fresh kubernetes.io/change-cause on template change", Mutate, [Deployment, StatefulSet, DaemonSet];
    RS401 => "rolling update keeps pods available", Enforce, [Deployment, StatefulSet, DaemonSet];
    RS402 => "no Recreate strategy with several replicas", Warn, [Deployment];
    RS403 => "revisionHistoryLimit allows undo", Mutate, [Deployment, StatefulSet, DaemonSet];
    RS404 => "progressDeadlineSeconds exceeds minReadySeconds", Warn, [Deployment];
    RS405 => "at least 2 replicas", Warn, [Deployment, StatefulSet];
    RS501 => "image is pinned", Warn, [Deployment, StatefulSet, DaemonSet];
    RS601 => "a PodDisruptionBudget covers the workload", Warn, [Deployment, StatefulSet];
    RS602 => "Service selector switch keeps ready endpoints", Enforce, [];
    RS603 => "Service selector matches a workload", Warn, [];
}

impl RuleId {
    /// Rules that the mutating webhook knows how to fix.
    pub fn can_mutate(self) -> bool {
        matches!(
            self,
            RuleId::RS201 | RuleId::RS202 | RuleId::RS301 | RuleId::RS403
        )
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for RuleId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RuleId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown rule ID {0:?} (known: RS001, RS101-RS105, RS201-RS202, RS301, RS401-RS405, RS501, RS601-RS603)"
)]
pub struct UnknownRule(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for id in RuleId::ALL {
            assert_eq!(id.as_str().parse::<RuleId>().unwrap(), *id);
            assert!(!id.title().is_empty());
        }
        assert_eq!("rs101".parse::<RuleId>().unwrap(), RuleId::RS101);
        assert!("RS999".parse::<RuleId>().is_err());
    }

    #[test]
    fn defaults_follow_the_spec() {
        assert_eq!(RuleId::RS101.default_action(), Action::Enforce);
        assert_eq!(RuleId::RS102.default_action(), Action::Warn);
        assert_eq!(RuleId::RS201.default_action(), Action::Mutate);
        assert_eq!(RuleId::RS401.default_action(), Action::Enforce);
        assert_eq!(RuleId::RS602.default_action(), Action::Enforce);
        assert!(!RuleId::RS404.applies_to(WorkloadKind::DaemonSet));
        assert!(RuleId::RS201.can_mutate() && !RuleId::RS101.can_mutate());
    }
}
