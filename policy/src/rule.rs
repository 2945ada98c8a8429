//! The words every rule shares: its id ([`RuleId`]), what happens when it is violated
//! ([`Action`]), how bad a finding is ([`Severity`]), and the workload kinds. The rules
//! themselves are in `crate::rules`, whose registry list also generates [`RuleId`] here (the
//! lowest layer, so everything can name a rule without depending on the rules).

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

/// The registered rules, in catalogue order: the one list the registry is generated from.
/// It hands the list to `$callback`, with `$extra` appended to the workload rules (the unit
/// tests register an example rule that way). The paths are relative to `crate::rules`, where
/// the registry is expanded; here only the ids are used.
macro_rules! with_registered_rules {
    ($callback:ident $($extra:tt)*) => {
        $callback! {
            workload {
                RS001 => rs001_skip_has_reason::SkipHasReason,
                RS101 => rs101_readiness_probe::ReadinessProbe,
                RS102 => rs102_liveness_probe::LivenessProbe,
                RS103 => rs103_liveness_differs::LivenessDiffers,
                RS104 => rs104_startup_time::StartupTime,
                RS105 => rs105_probe_port_named::ProbePortNamed,
                RS201 => rs201_prestop_hook::PreStopHook,
                RS202 => rs202_grace_period::GracePeriod,
                RS301 => rs301_change_cause::ChangeCause,
                RS401 => rs401_max_unavailable::MaxUnavailable,
                RS402 => rs402_no_recreate::NoRecreate,
                RS403 => rs403_revision_history::RevisionHistory,
                RS404 => rs404_progress_deadline::ProgressDeadline,
                RS405 => rs405_replicas::Replicas,
                RS501 => rs501_image_pinned::ImagePinned,
                RS601 => rs601_pdb_covers::PdbCovers,
                $($extra)*
            }
            service {
                RS602 => rs602_selector_switch::SelectorSwitch,
                RS603 => rs603_service_selects::ServiceSelects,
            }
        }
    };
}
pub(crate) use with_registered_rules;

/// The part of the registry that needs only the ids.
macro_rules! rule_ids {
    (
        workload { $( $wid:ident => $wty:ty, )* }
        service { $( $sid:ident => $sty:ty, )* }
    ) => {
        /// A rule's stable identifier, e.g. `RS101`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum RuleId { $( $wid, )* $( $sid, )* }

        impl RuleId {
            /// Every rule, in catalogue order.
            pub const ALL: &'static [RuleId] = &[ $( RuleId::$wid, )* $( RuleId::$sid, )* ];
            /// The rules about workloads, in the order they run.
            pub const WORKLOAD_RULES: &'static [RuleId] = &[ $( RuleId::$wid, )* ];
            /// The rules about Services.
            pub const SERVICE_RULES: &'static [RuleId] = &[ $( RuleId::$sid, )* ];

            pub fn as_str(self) -> &'static str {
                match self { $( RuleId::$wid => stringify!($wid), )* $( RuleId::$sid => stringify!($sid), )* }
            }
        }

        impl FromStr for RuleId {
            type Err = UnknownRule;
            fn from_str(s: &str) -> Result<Self, UnknownRule> {
                match s.trim().to_ascii_uppercase().as_str() {
                    $( stringify!($wid) => Ok(RuleId::$wid), )*
                    $( stringify!($sid) => Ok(RuleId::$sid), )*
                    _ => Err(UnknownRule(s.to_string())),
                }
            }
        }
    };
}

#[cfg(not(test))]
with_registered_rules!(rule_ids);
#[cfg(test)]
with_registered_rules!(rule_ids RS900 => rs900_example::NameLength,);

impl RuleId {
    /// How many rules there are.
    pub const COUNT: usize = RuleId::ALL.len();
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

/// A rule ID that is not in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownRule(pub String);

impl fmt::Display for UnknownRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known: Vec<&str> = RuleId::ALL.iter().map(|r| r.as_str()).collect();
        write!(
            f,
            "unknown rule ID {:?} (known: {})",
            self.0,
            known.join(", ")
        )
    }
}

impl std::error::Error for UnknownRule {}
