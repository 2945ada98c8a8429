//! `kind: RolloutPolicy`: per-rule actions and parameters, namespace overrides, excluded namespaces.
//!
//! ```yaml
//! apiVersion: rollout-safe.dev/v1alpha1
//! kind: RolloutPolicy
//! metadata: {name: default}
//! spec:
//!   rules:
//!     RS101: enforce
//!     RS104: {action: warn, minStartupSeconds: 30}
//!     RS201: {action: mutate, sleepSeconds: 5, handler: auto, allowExec: false}
//!   namespaceOverrides:
//!     - namespaces: ["dev-*"]
//!       rules: {RS101: warn}
//!   excludedNamespaces: ["kube-system"]
//! ```
//!
//! Each rule's parameters are typed per rule, so a misspelt or misplaced parameter is a
//! parse error with its line and column rather than a silently ignored key.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use wildmatch::WildMatch;

use crate::rule::{Action, RuleId};

pub const API_VERSION: &str = "rollout-safe.dev/v1alpha1";
pub const KIND: &str = "RolloutPolicy";

/// How RS201 writes the preStop hook it injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PreStopHandler {
    /// Native `sleep` action when the server supports it (Kubernetes >= 1.30), else `exec sleep`
    /// if `allowExec`, else only a warning.
    #[default]
    Auto,
    /// Always the native `lifecycle.preStop.sleep` action.
    Sleep,
    /// Always `exec: [sleep, N]` (needs a `sleep` binary in the image).
    Exec,
}

/// Parameters of every rule, resolved for one namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Params {
    /// RS104: seconds liveness must leave before the first restart can happen.
    pub min_startup_seconds: i32,
    /// RS201: how long the injected preStop hook sleeps.
    pub prestop_sleep_seconds: i32,
    pub prestop_handler: PreStopHandler,
    pub prestop_allow_exec: bool,
    /// RS202: seconds the app gets to shut down after preStop finishes.
    pub grace_margin_seconds: i32,
    /// RS403: the least revisionHistoryLimit that passes, and the value the mutation writes.
    pub history_minimum: i32,
    pub history_default: i32,
    /// RS405: the least replica count that passes.
    pub min_replicas: i32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            min_startup_seconds: 30,
            prestop_sleep_seconds: 5,
            prestop_handler: PreStopHandler::Auto,
            prestop_allow_exec: false,
            grace_margin_seconds: 10,
            history_minimum: 2,
            history_default: 5,
            min_replicas: 2,
        }
    }
}

/// The actions and parameters in force for one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectivePolicy {
    actions: Vec<Action>,
    pub params: Params,
    /// The namespace is excluded: nothing is checked or mutated.
    pub excluded: bool,
}

impl EffectivePolicy {
    pub fn action(&self, rule: RuleId) -> Action {
        if self.excluded {
            return Action::Off;
        }
        self.actions[rule as usize]
    }

    pub fn set_action(&mut self, rule: RuleId, action: Action) {
        self.actions[rule as usize] = action;
    }
}

impl Default for EffectivePolicy {
    fn default() -> Self {
        EffectivePolicy {
            actions: RuleId::ALL.iter().map(|r| r.default_action()).collect(),
            params: Params::default(),
            excluded: false,
        }
    }
}

/// A loaded policy file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutPolicy {
    pub name: String,
    rules: RulesSection,
    overrides: Vec<NamespaceOverride>,
    /// Globs, compiled once at load (they are matched on every admission request).
    excluded: Vec<WildMatch>,
}

#[derive(Debug, Clone, PartialEq)]
struct NamespaceOverride {
    namespaces: Vec<WildMatch>,
    rules: RulesSection,
}

/// A bad policy file. `Display` names the line and column when the YAML parser knows them.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy: {0}")]
    Parse(String),
    #[error("policy: {}{field}: {message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
    Invalid {
        field: String,
        message: String,
        /// Where `field` is written, when it can be found in the source.
        line: Option<usize>,
    },
}

impl RolloutPolicy {
    /// Parses a policy document. Errors carry the line and column of the offending node.
    pub fn from_yaml(src: &str) -> Result<Self, PolicyError> {
        let doc: PolicyDocument =
            serde_saphyr::from_str(src).map_err(|e| PolicyError::Parse(e.to_string()))?;
        let invalid = |field: String, message: String| PolicyError::Invalid {
            line: locate(src, &field),
            field,
            message,
        };
        if doc.api_version != API_VERSION {
            return Err(invalid(
                "apiVersion".into(),
                format!("expected {API_VERSION:?}, found {:?}", doc.api_version),
            ));
        }
        if doc.kind != KIND {
            return Err(invalid(
                "kind".into(),
                format!("expected {KIND:?}, found {:?}", doc.kind),
            ));
        }
        let spec = doc.spec.unwrap_or_default();
        let policy = RolloutPolicy {
            name: doc.metadata.and_then(|m| m.name).unwrap_or_default(),
            rules: spec.rules,
            overrides: spec
                .namespace_overrides
                .into_iter()
                .map(|o| NamespaceOverride {
                    namespaces: o.namespaces.iter().map(|g| WildMatch::new(g)).collect(),
                    rules: o.rules,
                })
                .collect(),
            excluded: spec
                .excluded_namespaces
                .iter()
                .map(|g| WildMatch::new(g))
                .collect(),
        };
        policy
            .check()
            .map_err(|(field, message)| invalid(field, message))?;
        Ok(policy)
    }

    /// Semantic checks, as `(field, message)`. Parameters are checked as they combine: the
    /// base rules, then the base with each namespace override applied.
    fn check(&self) -> Result<(), (String, String)> {
        self.rules.check_actions("spec.rules")?;
        let mut base = EffectivePolicy::default();
        self.rules.apply(&mut base);
        check_params(&base.params, "spec.rules")?;
        for (i, o) in self.overrides.iter().enumerate() {
            let field = format!("spec.namespaceOverrides[{i}]");
            if o.namespaces.is_empty() {
                return Err((
                    format!("{field}.namespaces"),
                    "must name at least one namespace or glob".into(),
                ));
            }
            o.rules.check_actions(&format!("{field}.rules"))?;
            let mut merged = base.clone();
            o.rules.apply(&mut merged);
            check_params(&merged.params, &format!("{field}.rules"))?;
        }
        Ok(())
    }

    /// The actions and parameters for objects in `namespace` (cluster-scoped or unknown: `None`).
    pub fn for_namespace(&self, namespace: Option<&str>) -> EffectivePolicy {
        let mut eff = EffectivePolicy::default();
        self.rules.apply(&mut eff);
        if let Some(ns) = namespace {
            eff.excluded = self.excluded.iter().any(|g| g.matches(ns));
            for o in &self.overrides {
                if o.namespaces.iter().any(|g| g.matches(ns)) {
                    o.rules.apply(&mut eff);
                }
            }
        }
        eff
    }
}

// ---- the document as written -------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyDocument {
    api_version: String,
    kind: String,
    #[serde(default)]
    metadata: Option<PolicyMetadata>,
    #[serde(default)]
    spec: Option<PolicySpec>,
}

#[derive(Deserialize)]
struct PolicyMetadata {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicySpec {
    #[serde(default)]
    rules: RulesSection,
    #[serde(default)]
    namespace_overrides: Vec<OverrideDoc>,
    #[serde(default)]
    excluded_namespaces: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideDoc {
    namespaces: Vec<String>,
    #[serde(default)]
    rules: RulesSection,
}

/// A rule entry: either just an action (`RS101: warn`) or a map with the action and the
/// rule's own parameters.
#[derive(Debug, Clone, PartialEq)]
struct Entry<P>(P);

trait HasAction: Default {
    fn action_mut(&mut self) -> &mut Option<Action>;
}

impl<'de, P: Deserialize<'de> + HasAction> Deserialize<'de> for Entry<P> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<P>(std::marker::PhantomData<P>);
        impl<'de, P: Deserialize<'de> + HasAction> Visitor<'de> for V<P> {
            type Value = Entry<P>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an action (enforce, warn, mutate, off) or a map with `action` and the rule's parameters")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Entry<P>, E> {
                let action = Action::deserialize(de::value::StrDeserializer::<E>::new(s))?;
                let mut p = P::default();
                *p.action_mut() = Some(action);
                Ok(Entry(p))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Entry<P>, E> {
                let action = Action::deserialize(de::value::BoolDeserializer::<E>::new(b))?;
                let mut p = P::default();
                *p.action_mut() = Some(action);
                Ok(Entry(p))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Entry<P>, A::Error> {
                P::deserialize(de::value::MapAccessDeserializer::new(map)).map(Entry)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

macro_rules! param_structs {
    ($( $name:ident { $($field:ident : $ty:ty => $target:ident),* } )*) => {$(
        #[derive(Debug, Clone, Default, PartialEq, Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct $name {
            #[serde(default)]
            action: Option<Action>,
            $( #[serde(default)] $field: Option<$ty>, )*
        }
        impl HasAction for $name {
            fn action_mut(&mut self) -> &mut Option<Action> { &mut self.action }
        }
        impl $name {
            #[allow(unused_variables)]
            fn apply_params(&self, p: &mut Params) {
                $( if let Some(v) = self.$field.clone() { p.$target = v; } )*
            }
        }
    )*};
}

param_structs! {
    Plain {}
    Rs104 { min_startup_seconds: i32 => min_startup_seconds }
    Rs201 { sleep_seconds: i32 => prestop_sleep_seconds, handler: PreStopHandler => prestop_handler, allow_exec: bool => prestop_allow_exec }
    Rs202 { margin_seconds: i32 => grace_margin_seconds }
    Rs403 { minimum: i32 => history_minimum, default: i32 => history_default }
    Rs405 { min_replicas: i32 => min_replicas }
}

macro_rules! rules_section {
    ($( $id:ident : $p:ident ),* $(,)?) => {
        #[derive(Debug, Clone, Default, PartialEq, Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(non_snake_case)]
        struct RulesSection {
            $( #[serde(default)] $id: Option<Entry<$p>>, )*
        }

        impl RulesSection {
            fn apply(&self, eff: &mut EffectivePolicy) {
                $( if let Some(Entry(e)) = &self.$id {
                    if let Some(a) = e.action { eff.set_action(RuleId::$id, a); }
                    e.apply_params(&mut eff.params);
                } )*
            }

            fn check_actions(&self, field: &str) -> Result<(), (String, String)> {
                $( if let Some(Entry(e)) = &self.$id {
                    if e.action == Some(Action::Mutate) && !RuleId::$id.can_mutate() {
                        return Err((
                            format!("{field}.{}.action", stringify!($id)),
                            format!(
                                "{} cannot be fixed automatically; use enforce, warn or off (mutate works for RS201, RS202, RS301, RS403)",
                                stringify!($id)
                            ),
                        ));
                    }
                } )*
                Ok(())
            }
        }
    };
}

/// Parameters that make sense together.
fn check_params(p: &Params, field: &str) -> Result<(), (String, String)> {
    for (name, v) in [
        ("RS104.minStartupSeconds", p.min_startup_seconds),
        ("RS201.sleepSeconds", p.prestop_sleep_seconds),
        ("RS202.marginSeconds", p.grace_margin_seconds),
        ("RS403.minimum", p.history_minimum),
        ("RS405.minReplicas", p.min_replicas),
    ] {
        if v < 0 {
            return Err((
                format!("{field}.{name}"),
                format!("must not be negative, found {v}"),
            ));
        }
    }
    if p.history_default < p.history_minimum {
        return Err((
            format!("{field}.RS403.default"),
            format!(
                "the value written ({}) must be at least the minimum ({}) in force here",
                p.history_default, p.history_minimum
            ),
        ));
    }
    Ok(())
}

/// The 1-based line where a field path such as `spec.namespaceOverrides[1].rules.RS403.default`
/// is written: each key is looked for after the previous one, a `[i]` skips to the i-th list
/// item. Best effort (flow style and odd layouts may not be found).
fn locate(src: &str, field: &str) -> Option<usize> {
    let lines: Vec<&str> = src.lines().collect();
    let mut at = 0usize;
    for seg in field.split('.') {
        let (key, index) = match seg.split_once('[') {
            Some((k, i)) => (k, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (seg, None),
        };
        let is_key = |l: &str| {
            let t = l.trim_start().trim_start_matches("- ");
            t.starts_with(&format!("{key}:"))
                || l.contains(&format!("{{{key}:"))
                || l.contains(&format!(" {key}:"))
        };
        at += lines[at..].iter().position(|l| is_key(l))?;
        if let Some(i) = index {
            let mut seen = 0;
            let start = at;
            at += lines[start..].iter().position(|l| {
                let item = l.trim_start().starts_with("- ");
                if item {
                    seen += 1;
                }
                item && seen == i + 1
            })?;
        }
    }
    Some(at + 1)
}

rules_section! {
    RS001: Plain, RS101: Plain, RS102: Plain, RS103: Plain, RS104: Rs104, RS105: Plain,
    RS201: Rs201, RS202: Rs202, RS301: Plain,
    RS401: Plain, RS402: Plain, RS403: Rs403, RS404: Plain, RS405: Rs405,
    RS501: Plain, RS601: Plain, RS602: Plain, RS603: Plain,
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
apiVersion: rollout-safe.dev/v1alpha1
kind: RolloutPolicy
metadata: {name: strict}
spec:
  rules:
    RS102: enforce
    RS103: off
    RS105: {action: off}
    RS104: {action: warn, minStartupSeconds: 60}
    RS201: {action: mutate, sleepSeconds: 7, handler: exec}
    RS403: {default: 8}
  namespaceOverrides:
    - namespaces: ["dev-*", "sandbox"]
      rules:
        RS101: warn
        RS201: {sleepSeconds: 2}
  excludedNamespaces: ["kube-*"]
"#;

    #[test]
    fn parses_actions_params_overrides() {
        let p = RolloutPolicy::from_yaml(FULL).unwrap();
        assert_eq!(p.name, "strict");
        let prod = p.for_namespace(Some("prod"));
        assert_eq!(prod.action(RuleId::RS102), Action::Enforce);
        assert_eq!(prod.action(RuleId::RS101), Action::Enforce);
        assert_eq!(prod.action(RuleId::RS103), Action::Off);
        assert_eq!(prod.action(RuleId::RS105), Action::Off);
        assert_eq!(prod.params.min_startup_seconds, 60);
        assert_eq!(prod.params.prestop_sleep_seconds, 7);
        assert_eq!(prod.params.prestop_handler, PreStopHandler::Exec);
        assert_eq!(prod.params.history_default, 8);
        let dev = p.for_namespace(Some("dev-alice"));
        assert_eq!(dev.action(RuleId::RS101), Action::Warn);
        assert_eq!(dev.params.prestop_sleep_seconds, 2);
        assert_eq!(dev.params.prestop_handler, PreStopHandler::Exec);
        let sys = p.for_namespace(Some("kube-system"));
        assert!(sys.excluded);
        assert_eq!(sys.action(RuleId::RS101), Action::Off);
    }

    #[test]
    fn errors_name_line_and_column() {
        let bad = "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\nspec:\n  rules:\n    RS101: enforc\n";
        let e = RolloutPolicy::from_yaml(bad).unwrap_err().to_string();
        assert!(e.contains("line 5"), "{e}");
        let misplaced = "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\nspec:\n  rules:\n    RS101: {action: warn, minStartupSeconds: 3}\n";
        let e = RolloutPolicy::from_yaml(misplaced).unwrap_err().to_string();
        assert!(
            e.contains("minStartupSeconds") && e.contains("line 5"),
            "{e}"
        );
        let unknown = "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\nspec:\n  rules:\n    RS999: warn\n";
        let e = RolloutPolicy::from_yaml(unknown).unwrap_err().to_string();
        assert!(e.contains("RS999") && e.contains("line 5"), "{e}");
    }

    #[test]
    fn semantic_errors_name_the_field() {
        let wrong_kind = "apiVersion: rollout-safe.dev/v1alpha1\nkind: Policy\n";
        assert!(
            RolloutPolicy::from_yaml(wrong_kind)
                .unwrap_err()
                .to_string()
                .contains("kind")
        );
        let cannot_mutate = "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\nspec:\n  rules:\n    RS101: mutate\n";
        let e = RolloutPolicy::from_yaml(cannot_mutate)
            .unwrap_err()
            .to_string();
        assert!(e.contains("spec.rules.RS101.action"), "{e}");
        let negative = "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\nspec:\n  rules:\n    RS202: {marginSeconds: -1}\n";
        let e = RolloutPolicy::from_yaml(negative).unwrap_err().to_string();
        assert!(e.contains("RS202.marginSeconds"), "{e}");
        assert!(e.contains("line 5"), "{e}");
    }

    #[test]
    fn parameters_are_checked_as_they_combine() {
        let head = "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\nspec:\n";
        // The override lowers the value written below the base minimum: rejected, at the override.
        let bad = format!(
            "{head}  rules:\n    RS403: {{minimum: 3, default: 3}}\n  namespaceOverrides:\n    - namespaces: [dev]\n      rules:\n        RS403: {{default: 2}}\n"
        );
        let e = RolloutPolicy::from_yaml(&bad).unwrap_err().to_string();
        assert!(
            e.contains("spec.namespaceOverrides[0].rules.RS403.default") && e.contains("line 9"),
            "{e}"
        );
        // Base default 10 with an override raising the minimum to 8 is fine.
        let ok = format!(
            "{head}  rules:\n    RS403: {{default: 10}}\n  namespaceOverrides:\n    - namespaces: [dev]\n      rules:\n        RS403: {{minimum: 8}}\n"
        );
        assert!(RolloutPolicy::from_yaml(&ok).is_ok());
    }

    #[test]
    fn empty_policy_is_the_defaults() {
        let p = RolloutPolicy::from_yaml(
            "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\n",
        )
        .unwrap();
        assert_eq!(p.for_namespace(Some("x")), EffectivePolicy::default());
    }
}
