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
//!   gates:                      # metric gates for update, canary and blue-green
//!     - name: errors
//!       query: sum(rate(http_requests_total{namespace="{{namespace}}",pod=~"{{pods}}",code=~"5.."}[1m])) / sum(rate(http_requests_total{namespace="{{namespace}}",pod=~"{{pods}}"}[1m]))
//!       op: "<"
//!       threshold: 0.01
//!       namespaces: ["prod-*"]          # default: every namespace
//!       workloadLabels: {tier: web}     # default: every workload
//! ```
//!
//! Each rule's parameters are typed per rule, so a misspelt or misplaced parameter is a
//! parse error with its line and column rather than a silently ignored key.

use std::collections::BTreeMap;

use serde::Deserialize;
use wildmatch::WildMatch;

use crate::gates::{Comparison, Gate, check_name, check_placeholders};

use crate::rule::{Action, RuleId};
use crate::rules::RulesSection;

pub use crate::rules::Params;
pub use crate::rules::rs201_prestop_hook::PreStopHandler;

pub const API_VERSION: &str = "rollout-safe.dev/v1alpha1";
pub const KIND: &str = "RolloutPolicy";

/// The actions and parameters in force for one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectivePolicy {
    actions: [Action; RuleId::COUNT],
    /// Every rule's parameters, a field per rule (`params.RS104.min_startup_seconds`).
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

    /// Overlays what a `rules` section names.
    fn apply(&mut self, section: &RulesSection) {
        for (rule, action) in section.actions() {
            self.set_action(rule, action);
        }
        section.apply_params(&mut self.params);
    }
}

impl Default for EffectivePolicy {
    fn default() -> Self {
        let mut actions = [Action::Off; RuleId::COUNT];
        for rule in RuleId::ALL {
            actions[*rule as usize] = rule.default_action();
        }
        EffectivePolicy {
            actions,
            params: Params::default(),
            excluded: false,
        }
    }
}

/// A loaded policy file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutPolicy {
    pub name: String,
    /// `spec.rules` over the defaults, resolved once at load.
    base: EffectivePolicy,
    overrides: Vec<NamespaceOverride>,
    /// Globs, compiled once at load (they are matched on every admission request).
    excluded: Vec<WildMatch>,
    /// `spec.gates`: metric gates, each for the namespaces and workload labels it names.
    gates: Vec<PolicyGate>,
}

/// A metric gate of the policy file and the workloads it applies to.
#[derive(Debug, Clone, PartialEq)]
struct PolicyGate {
    gate: Gate,
    /// Empty: every namespace.
    namespaces: Vec<WildMatch>,
    /// Every pair must be among the workload's labels (empty: every workload).
    workload_labels: BTreeMap<String, String>,
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
        check_actions(&spec.rules, "spec.rules")
            .map_err(|(field, message)| invalid(field, message))?;
        let gates = spec
            .gates
            .into_iter()
            .enumerate()
            .map(|(i, g)| g.into_gate(i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|(field, message)| invalid(field, message))?;
        let mut base = EffectivePolicy::default();
        base.apply(&spec.rules);
        let policy = RolloutPolicy {
            name: doc.metadata.and_then(|m| m.name).unwrap_or_default(),
            base,
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
            gates,
        };
        policy
            .check()
            .map_err(|(field, message)| invalid(field, message))?;
        Ok(policy)
    }

    /// Semantic checks, as `(field, message)`. Parameters are checked as they combine: the
    /// base rules, then the base with each namespace override applied.
    fn check(&self) -> Result<(), (String, String)> {
        self.base.params.check("spec.rules")?;
        for (i, o) in self.overrides.iter().enumerate() {
            let field = format!("spec.namespaceOverrides[{i}]");
            if o.namespaces.is_empty() {
                return Err((
                    format!("{field}.namespaces"),
                    "must name at least one namespace or glob".into(),
                ));
            }
            check_actions(&o.rules, &format!("{field}.rules"))?;
            let mut merged = self.base.clone();
            merged.apply(&o.rules);
            merged.params.check(&format!("{field}.rules"))?;
        }
        Ok(())
    }

    /// `spec.rules` over the defaults: what applies in a namespace no override or exclusion
    /// names (the admission-policy export builds on it).
    pub fn base(&self) -> &EffectivePolicy {
        &self.base
    }

    /// `spec.namespaceOverrides` in order: each entry's globs and rules.
    pub fn namespace_overrides(&self) -> impl Iterator<Item = (Vec<String>, &RulesSection)> {
        self.overrides.iter().map(|o| {
            let globs = o.namespaces.iter().map(WildMatch::pattern).collect();
            (globs, &o.rules)
        })
    }

    /// `spec.excludedNamespaces`: the globs of namespaces the policy never evaluates.
    pub fn excluded_namespaces(&self) -> Vec<String> {
        self.excluded.iter().map(WildMatch::pattern).collect()
    }

    /// The actions and parameters for objects in `namespace` (cluster-scoped or unknown: `None`).
    pub fn for_namespace(&self, namespace: Option<&str>) -> EffectivePolicy {
        let mut eff = self.base.clone();
        if let Some(ns) = namespace {
            eff.excluded = self.excluded.iter().any(|g| g.matches(ns));
            for o in &self.overrides {
                if o.namespaces.iter().any(|g| g.matches(ns)) {
                    eff.apply(&o.rules);
                }
            }
        }
        eff
    }
}

impl RolloutPolicy {
    /// The metric gates of `spec.gates` for a workload in `namespace` with `labels`, in the
    /// order written. (An excluded namespace excludes rules, not gates: a gate is asked for.)
    pub fn gates_for(&self, namespace: &str, labels: &BTreeMap<String, String>) -> Vec<Gate> {
        self.gates
            .iter()
            .filter(|g| {
                g.namespaces.is_empty() || g.namespaces.iter().any(|w| w.matches(namespace))
            })
            .filter(|g| {
                g.workload_labels
                    .iter()
                    .all(|(k, v)| labels.get(k) == Some(v))
            })
            .map(|g| g.gate.clone())
            .collect()
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
    #[serde(default)]
    gates: Vec<GateDoc>,
}

/// One entry of `spec.gates`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GateDoc {
    name: String,
    query: String,
    op: String,
    threshold: f64,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default)]
    workload_labels: BTreeMap<String, String>,
}

impl GateDoc {
    /// Checked as a `--gate` is: the name, the operator, the threshold, the placeholders.
    fn into_gate(self, i: usize) -> Result<PolicyGate, (String, String)> {
        let field = |f: &str| format!("spec.gates[{i}].{f}");
        check_name(&self.name).map_err(|m| (field("name"), m))?;
        let op = Comparison::parse(self.op.trim()).ok_or_else(|| {
            (
                field("op"),
                format!("{:?} is not an operator; use <, <=, > or >=", self.op),
            )
        })?;
        if !self.threshold.is_finite() {
            return Err((field("threshold"), "must be a finite number".into()));
        }
        if self.query.trim().is_empty() {
            return Err((field("query"), "the query is empty".into()));
        }
        check_placeholders(&self.query)
            .map_err(|(at, m)| (field("query"), format!("at character {at}: {m}")))?;
        if self.namespaces.iter().any(|n| n.trim().is_empty()) {
            return Err((field("namespaces"), "a namespace glob is empty".into()));
        }
        Ok(PolicyGate {
            gate: Gate {
                name: self.name,
                query: self.query.trim().to_owned(),
                op,
                threshold: self.threshold,
            },
            namespaces: self.namespaces.iter().map(|g| WildMatch::new(g)).collect(),
            workload_labels: self.workload_labels,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideDoc {
    namespaces: Vec<String>,
    #[serde(default)]
    rules: RulesSection,
}

/// `mutate` only for rules that have a fix.
fn check_actions(section: &RulesSection, field: &str) -> Result<(), (String, String)> {
    for (rule, action) in section.actions() {
        if action == Action::Mutate && !rule.can_mutate() {
            let fixable: Vec<&str> = RuleId::ALL
                .iter()
                .filter(|r| r.can_mutate())
                .map(|r| r.as_str())
                .collect();
            return Err((
                format!("{field}.{rule}.action"),
                format!(
                    "{rule} cannot be fixed automatically; use enforce, warn or off (mutate works for {})",
                    fixable.join(", ")
                ),
            ));
        }
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
        assert_eq!(prod.params.RS104.min_startup_seconds, 60);
        assert_eq!(prod.params.RS201.sleep_seconds, 7);
        assert_eq!(prod.params.RS201.handler, PreStopHandler::Exec);
        assert_eq!(prod.params.RS403.default, 8);
        let dev = p.for_namespace(Some("dev-alice"));
        assert_eq!(dev.action(RuleId::RS101), Action::Warn);
        assert_eq!(dev.params.RS201.sleep_seconds, 2);
        assert_eq!(dev.params.RS201.handler, PreStopHandler::Exec);
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

    #[test]
    fn gates_are_selected_by_namespace_and_workload_labels() {
        let src = r#"apiVersion: rollout-safe.dev/v1alpha1
kind: RolloutPolicy
spec:
  gates:
    - name: errors
      query: sum(rate(x{namespace="{{namespace}}",pod=~"{{pods}}",code=~"5.."}[1m]))
      op: "<"
      threshold: 0.01
    - name: latency
      query: histogram_quantile(0.99, sum by (le) (rate(d_bucket{pod=~"{{pods}}"}[1m])))
      op: "<="
      threshold: 0.5
      namespaces: ["prod-*"]
      workloadLabels: {tier: web}
"#;
        let p = RolloutPolicy::from_yaml(src).unwrap();
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let names = |ns: &str, l: &BTreeMap<String, String>| -> Vec<String> {
            p.gates_for(ns, l).into_iter().map(|g| g.name).collect()
        };
        assert_eq!(names("dev", &labels(&[("tier", "web")])), ["errors"]);
        assert_eq!(names("prod-eu", &labels(&[("tier", "db")])), ["errors"]);
        assert_eq!(
            names("prod-eu", &labels(&[("tier", "web"), ("app", "shop")])),
            ["errors", "latency"]
        );
        let latency = &p.gates_for("prod-eu", &labels(&[("tier", "web")]))[1];
        assert_eq!((latency.op, latency.threshold), (Comparison::Le, 0.5));
    }

    #[test]
    fn bad_gates_name_the_field_and_line() {
        let head = "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\nspec:\n  gates:\n    - name: errors\n      query: x\n";
        let e = RolloutPolicy::from_yaml(&format!("{head}      op: \"==\"\n      threshold: 1\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("spec.gates[0].op") && e.contains("line 7"),
            "{e}"
        );
        let e = RolloutPolicy::from_yaml(&format!(
            "{head}      op: \"<\"\n      threshold: 1\n      window: 5m\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("window") && e.contains("line 9"), "{e}");
        let e = RolloutPolicy::from_yaml(&format!("{head}      op: \"<\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("threshold"), "{e}");
        let bad_placeholder = "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\nspec:\n  gates:\n    - name: errors\n      query: x{pod=~\"{{pod}}\"}\n      op: \"<\"\n      threshold: 1\n";
        let e = RolloutPolicy::from_yaml(bad_placeholder)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("spec.gates[0].query") && e.contains("line 6") && e.contains("{{pod}}"),
            "{e}"
        );
        let bad_name = "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\nspec:\n  gates:\n    - name: error rate\n      query: x\n      op: \"<\"\n      threshold: 1\n";
        let e = RolloutPolicy::from_yaml(bad_name).unwrap_err().to_string();
        assert!(
            e.contains("spec.gates[0].name") && e.contains("line 5"),
            "{e}"
        );
    }
}
