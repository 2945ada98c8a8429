//! Building the objects: per rule, how the policy file sets it across namespaces, then its
//! policies and bindings; then the MutatingAdmissionPolicy of the `mutate` rules.
//!
//! The chart's templates (`charts/rollout-safe/templates/admission-policies.yaml`) follow the
//! same steps over the same generated rule data, and the chart test compares the two.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::namespaces::namespace_matches;
use super::{Export, ExportError, ExportOptions};
use crate::config::RolloutPolicy;
use crate::rule::{Action, RuleId, WorkloadKind};
use crate::rules::cel::{CelReads, CelVariable, exempt, lit, ref_variable};
use crate::rules::{Applies, Input, RulesSection};

/// The prefix of every object's name.
pub const NAME_PREFIX: &str = "rollout-safe";
/// The name of the MutatingAdmissionPolicy and its binding.
pub const MUTATIONS_NAME: &str = "rollout-safe-mutations";
/// What the webhook appends to a finding it does not enforce because the update changes no
/// pod template (`admission::grandfather`).
pub const GRANDFATHERED_NOTE: &str = " [not enforced: already so before this update, which changes no pod template; enforced on the next rollout]";

/// The name of `rule`'s policy and binding for `action` (`enforce` or `warn`).
pub fn policy_name(rule: RuleId, action: &str) -> String {
    format!(
        "{NAME_PREFIX}-{}-{action}",
        rule.as_str().to_ascii_lowercase()
    )
}

/// What the export (and the chart's templates) take from one rule: its CEL forms trimmed to
/// what each policy reads. The same for every policy file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RulePieces {
    pub rule: RuleId,
    pub title: &'static str,
    /// The resources of `matchConstraints` (`deployments`, ...).
    pub resources: Vec<&'static str>,
    /// The `not-skipped` matchCondition, for rules `rollout-safe.dev/skip` can exempt.
    pub not_skipped: Option<String>,
    /// The parameters the validation reads, in the rule's order.
    pub validation_params: Vec<&'static str>,
    /// The form's variables the validation reads, in order.
    pub validation_variables: Vec<CelVariable>,
    pub violation: String,
    pub message: String,
    pub fix: String,
    /// The variable `grandfathered`: an update that changes no pod template and a finding the
    /// object already had; `None` for rules that only fire on a template change.
    pub grandfathered: Option<String>,
    pub mutation: Option<MutationPieces>,
    pub weaker: Option<&'static str>,
}

/// A rule's part of the MutatingAdmissionPolicy, its variables already prefixed with the
/// rule (`rs201_`); the parameters and the action are `variables.<prefix><key>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MutationPieces {
    pub prefix: String,
    pub params: Vec<&'static str>,
    pub variables: Vec<CelVariable>,
    pub patches: String,
    /// Conditions that hold the patches back besides the action (kind, skip annotation).
    pub gates: Vec<String>,
    /// Runs before the other rules' mutations: it compares the pod template with `oldObject`,
    /// and the webhook decides that on the template as submitted, before its own fixes.
    pub first: bool,
}

/// The names read as `variables.<name>` in `expr`.
fn references(expr: &str) -> BTreeSet<String> {
    const ROOT: &str = "variables.";
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find(ROOT) {
        let before_ok = rest[..at].chars().next_back().is_none_or(|c| !is_ident(c));
        let after = &rest[at + ROOT.len()..];
        let end = after.find(|c: char| !is_ident(c)).unwrap_or(after.len());
        if before_ok {
            out.insert(after[..end].to_string());
        }
        rest = &after[end..];
    }
    out
}

/// The variables of `vars` that `roots` read, directly or through each other, in order.
fn reachable(roots: &[&str], vars: &[CelVariable]) -> BTreeSet<String> {
    let mut seen: BTreeSet<String> = roots.iter().flat_map(|r| references(r)).collect();
    loop {
        let more: BTreeSet<String> = vars
            .iter()
            .filter(|v| seen.contains(&v.name))
            .flat_map(|v| references(&v.expression))
            .filter(|n| !seen.contains(n))
            .collect();
        if more.is_empty() {
            return seen;
        }
        seen.extend(more);
    }
}

impl RulePieces {
    /// The pieces of `rule`, or `None` when it has no CEL form or needs other objects.
    pub fn of(rule: RuleId) -> Option<RulePieces> {
        let meta = rule.meta();
        if matches!(meta.input, Input::Surroundings(_)) {
            return None;
        }
        let form = rule.cel()?;
        let kinds = match meta.applies_to {
            Applies::Workloads(k) => k,
            Applies::Services => return None,
        };
        let param_keys: Vec<&'static str> = rule.param_docs().iter().map(|d| d.key).collect();
        let grandfathered = match &form.reads {
            CelReads::TemplateChange => None,
            reads => {
                let mut g = "request.operation == 'UPDATE' && oldObject != null && object.spec.template == oldObject.spec.template".to_string();
                if meta.exemptable {
                    g.push_str(&format!(" && !{}", exempt(rule, "oldObject")));
                }
                if let CelReads::Object { old_same } = reads {
                    g.push_str(&format!(" && ({old_same})"));
                }
                Some(g)
            }
        };
        let mut roots = vec![form.violation.as_str(), &form.message, &form.fix];
        if let Some(g) = &grandfathered {
            roots.push(g);
        }
        let used = reachable(&roots, &form.variables);
        let mutation = form.mutation.as_ref().map(|m| {
            let prefix = format!("{}_", rule.as_str().to_ascii_lowercase());
            let all: Vec<CelVariable> =
                form.variables.iter().chain(&m.variables).cloned().collect();
            let used = reachable(&[m.patches.as_str()], &all);
            let mut names: BTreeSet<String> = all.iter().map(|v| v.name.clone()).collect();
            names.extend(param_keys.iter().map(|k| k.to_string()));
            names.insert("action".into());
            let mut gates = Vec::new();
            if kinds.len() < 3 {
                let k: Vec<String> = kinds.iter().map(|k| lit(k.as_str())).collect();
                gates.push(format!("object.kind in [{}]", k.join(", ")));
            }
            if meta.exemptable {
                gates.push(format!("!{}", exempt(rule, "object")));
            }
            MutationPieces {
                params: param_keys
                    .iter()
                    .copied()
                    .filter(|k| used.contains(*k))
                    .collect(),
                variables: all
                    .iter()
                    .filter(|v| used.contains(&v.name))
                    .map(|v| {
                        CelVariable::new(
                            format!("{prefix}{}", v.name),
                            rename_variables(&v.expression, &names, &prefix),
                        )
                    })
                    .collect(),
                patches: rename_variables(&m.patches, &names, &prefix),
                gates,
                prefix,
                first: matches!(form.reads, CelReads::TemplateChange),
            }
        });
        Some(RulePieces {
            rule,
            title: meta.title,
            resources: resources(kinds),
            not_skipped: meta
                .exemptable
                .then(|| format!("!{}", exempt(rule, "object"))),
            validation_params: param_keys
                .iter()
                .copied()
                .filter(|k| used.contains(*k))
                .collect(),
            validation_variables: form
                .variables
                .iter()
                .filter(|v| used.contains(&v.name))
                .cloned()
                .collect(),
            violation: form.violation,
            message: form.message,
            fix: form.fix,
            grandfathered,
            mutation,
            weaker: form.weaker,
        })
    }
}

/// A value the policy file gives a rule: the same everywhere, or chosen by namespace.
#[derive(Debug, Clone)]
struct Setting {
    /// CEL giving the value in the request's namespace.
    cel: String,
    /// Whether overrides change it somewhere.
    varies: bool,
}

/// How the policy file sets one rule.
struct RulePlan {
    pieces: RulePieces,
    /// The rule's action (a string: `enforce`, `warn`, `mutate`, `off`).
    action: Setting,
    /// The actions it can have, somewhere.
    actions: BTreeSet<Action>,
    /// Each parameter's value, by key.
    params: Vec<(&'static str, String)>,
}

impl RulePlan {
    fn constant_action(&self) -> Option<Action> {
        (self.actions.len() == 1).then(|| *self.actions.iter().next().unwrap_or(&Action::Off))
    }

    fn param_variables(&self, keys: &[&'static str], prefix: &str) -> Vec<CelVariable> {
        self.params
            .iter()
            .filter(|(k, _)| keys.contains(k))
            .map(|(k, cel)| CelVariable::new(format!("{prefix}{k}"), cel.clone()))
            .collect()
    }
}

/// A CEL literal of a parameter value.
fn cel_value(v: &Value) -> String {
    match v {
        Value::String(s) => lit(s),
        other => other.to_string(),
    }
}

fn plan(
    policy: &RolloutPolicy,
    pieces: RulePieces,
    overrides: &[(String, &RulesSection)],
) -> RulePlan {
    let rule = pieces.rule;
    let base = policy.base();
    let base_action = base.action(rule);
    let mut actions = BTreeSet::from([base_action]);
    let mut action_cel = lit(&base_action.to_string());
    for (matches, section) in overrides {
        if let Some(a) = section.action_of(rule) {
            actions.insert(a);
            action_cel = format!("{matches} ? {} : {action_cel}", lit(&a.to_string()));
        }
    }
    let action = if actions.len() == 1 {
        Setting {
            cel: lit(&base_action.to_string()),
            varies: false,
        }
    } else {
        Setting {
            cel: action_cel,
            varies: true,
        }
    };
    let base_params = serde_json::to_value(&base.params)
        .ok()
        .and_then(|v| v.get(rule.as_str()).cloned())
        .unwrap_or(Value::Null);
    let params = rule
        .param_docs()
        .into_iter()
        .map(|doc| {
            let base_value = base_params.get(doc.key).unwrap_or(&doc.default);
            let mut cel = cel_value(base_value);
            for (matches, section) in overrides {
                if let Some((_, v)) = section
                    .params_of(rule)
                    .into_iter()
                    .find(|(k, _)| *k == doc.key)
                {
                    cel = format!("{matches} ? {} : {cel}", cel_value(&v));
                }
            }
            (doc.key, cel)
        })
        .collect();
    RulePlan {
        pieces,
        action,
        actions,
        params,
    }
}

fn resources(kinds: &[WorkloadKind]) -> Vec<&'static str> {
    kinds
        .iter()
        .map(|k| match k {
            WorkloadKind::Deployment => "deployments",
            WorkloadKind::StatefulSet => "statefulsets",
            WorkloadKind::DaemonSet => "daemonsets",
        })
        .collect()
}

fn match_constraints(resources: &[&str]) -> Value {
    json!({"resourceRules": [{
        "apiGroups": ["apps"],
        "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"],
        "resources": resources,
    }]})
}

fn variables_json(vars: &[CelVariable]) -> Value {
    Value::Array(
        vars.iter()
            .map(|v| json!({"name": v.name, "expression": v.expression}))
            .collect(),
    )
}

fn condition(name: &str, expression: String) -> Value {
    json!({"name": name, "expression": expression})
}

fn metadata(name: &str, rule: Option<RuleId>, weaker: Option<&str>) -> Value {
    let mut labels = Map::new();
    labels.insert("app.kubernetes.io/part-of".into(), json!("rollout-safe"));
    let mut annotations = Map::new();
    if let Some(r) = rule {
        labels.insert("rollout-safe.dev/rule".into(), json!(r.as_str()));
        annotations.insert(
            "rollout-safe.dev/title".into(),
            json!(format!("{r} {}", r.title())),
        );
    }
    if let Some(w) = weaker {
        annotations.insert("rollout-safe.dev/weaker".into(), json!(w));
    }
    let mut m = json!({"name": name, "labels": labels});
    if !annotations.is_empty() {
        m["annotations"] = Value::Object(annotations);
    }
    m
}

/// One rule's policy for one action (`enforce` or `warn`), and its binding.
fn validating(plan: &RulePlan, enforce: bool, excluded: Option<&str>) -> [Value; 2] {
    let p = &plan.pieces;
    let rule = p.rule;
    let name = policy_name(rule, if enforce { "enforce" } else { "warn" });
    let grandfathers = p.grandfathered.is_some();
    let constant = plan.constant_action();
    let a = &plan.action.cel;

    let mut conditions = Vec::new();
    if let Some(excluded) = excluded {
        conditions.push(condition("not-excluded-namespace", format!("!{excluded}")));
    }
    if let Some(not_skipped) = &p.not_skipped {
        conditions.push(condition("not-skipped", not_skipped.clone()));
    }
    match (enforce, constant, grandfathers) {
        (true, None, _) => conditions.push(condition(
            "action-enforce",
            format!("({a}) == 'enforce'"),
        )),
        (false, Some(Action::Enforce), _) => conditions.push(condition(
            "update",
            "request.operation == 'UPDATE'".into(),
        )),
        (false, None, true) => conditions.push(condition(
            "action-warn",
            format!("({a}) in (request.operation == 'UPDATE' ? ['warn', 'mutate', 'enforce'] : ['warn', 'mutate'])"),
        )),
        (false, None, false) => conditions.push(condition(
            "action-warn",
            format!("({a}) in ['warn', 'mutate']"),
        )),
        _ => {}
    }

    // The warn policy of a rule whose action varies tells enforced namespaces apart.
    let reads_action = !enforce && constant.is_none();
    let mut variables = vec![ref_variable()];
    variables.extend(plan.param_variables(&p.validation_params, ""));
    if reads_action {
        variables.push(CelVariable::new("action", a.clone()));
    }
    variables.extend(p.validation_variables.iter().cloned());
    if let Some(g) = &p.grandfathered {
        variables.push(CelVariable::new("grandfathered", g.clone()));
    }

    let violation = &p.violation;
    let expression = match (enforce, constant, grandfathers) {
        (true, _, true) => format!("!({violation}) || variables.grandfathered"),
        (true, _, false) => format!("!({violation})"),
        (false, Some(Action::Enforce), _) => {
            format!("!({violation}) || !variables.grandfathered")
        }
        (false, Some(_), _) => format!("!({violation})"),
        (false, None, true) => {
            format!("!({violation}) || (variables.action == 'enforce' && !variables.grandfathered)")
        }
        (false, None, false) => format!("!({violation}) || variables.action == 'enforce'"),
    };
    let note = match (enforce, constant, grandfathers) {
        (false, Some(Action::Enforce), _) => format!(" + {}", lit(GRANDFATHERED_NOTE)),
        (false, None, true) => format!(
            " + (variables.action == 'enforce' ? {} : '')",
            lit(GRANDFATHERED_NOTE)
        ),
        _ => String::new(),
    };
    let message_expression = format!(
        "{} + ({}){note} + ' Fix: ' + ({})",
        lit(&format!("{rule} ")),
        p.message,
        p.fix
    );

    let mut spec = json!({
        "failurePolicy": "Fail",
        "matchConstraints": match_constraints(&p.resources),
    });
    if !conditions.is_empty() {
        spec["matchConditions"] = Value::Array(conditions);
    }
    spec["variables"] = variables_json(&variables);
    spec["validations"] = json!([{
        "expression": expression,
        "messageExpression": message_expression,
        "message": format!("{rule}: {}", p.title),
        "reason": "Invalid",
    }]);
    let policy = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": metadata(&name, Some(rule), p.weaker),
        "spec": spec,
    });
    let actions = if enforce {
        ["Deny", "Audit"]
    } else {
        ["Warn", "Audit"]
    };
    let binding = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": metadata(&name, Some(rule), None),
        "spec": {"policyName": name, "validationActions": actions},
    });
    [policy, binding]
}

/// `variables.<name>` → `variables.<prefix><name>` for the names in `names`, so several rules'
/// variables can share one MutatingAdmissionPolicy.
pub(crate) fn rename_variables(expr: &str, names: &BTreeSet<String>, prefix: &str) -> String {
    const ROOT: &str = "variables.";
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(at) = rest.find(ROOT) {
        let before_ok = rest[..at].chars().next_back().is_none_or(|c| !is_ident(c));
        let after = &rest[at + ROOT.len()..];
        let end = after.find(|c: char| !is_ident(c)).unwrap_or(after.len());
        let name = &after[..end];
        out.push_str(&rest[..at]);
        out.push_str(ROOT);
        if before_ok && names.contains(name) {
            out.push_str(prefix);
        }
        out.push_str(name);
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The MutatingAdmissionPolicy of the rules that mutate somewhere, and its binding.
fn mutating(plans: &[&RulePlan], api_version: &str, excluded: Option<&str>) -> [Value; 2] {
    let mut variables = vec![ref_variable()];
    let mut mutations = Vec::new();
    let mut resources: Vec<&str> = Vec::new();
    let first = |p: &&&RulePlan| p.pieces.mutation.as_ref().is_some_and(|m| m.first);
    let ordered: Vec<&&RulePlan> = plans
        .iter()
        .filter(first)
        .chain(plans.iter().filter(|p| !first(p)))
        .collect();
    for plan in ordered {
        let Some(m) = &plan.pieces.mutation else {
            continue;
        };
        variables.extend(plan.param_variables(&m.params, &m.prefix));
        let mut gates = Vec::new();
        if plan.action.varies {
            variables.push(CelVariable::new(
                format!("{}action", m.prefix),
                plan.action.cel.clone(),
            ));
            gates.push(format!("variables.{}action == 'mutate'", m.prefix));
        }
        gates.extend(m.gates.iter().cloned());
        variables.extend(m.variables.iter().cloned());
        for r in &plan.pieces.resources {
            if !resources.contains(r) {
                resources.push(r);
            }
        }
        let expression = if gates.is_empty() {
            m.patches.clone()
        } else {
            format!("{} ? ({}) : []", gates.join(" && "), m.patches)
        };
        mutations.push(json!({
            "patchType": "JSONPatch",
            "jsonPatch": {"expression": expression},
        }));
    }
    let mut spec = json!({
        "failurePolicy": "Fail",
        "reinvocationPolicy": "IfNeeded",
        "matchConstraints": match_constraints(&resources),
    });
    if let Some(excluded) = excluded {
        spec["matchConditions"] =
            json!([condition("not-excluded-namespace", format!("!{excluded}"))]);
    }
    spec["variables"] = variables_json(&variables);
    spec["mutations"] = Value::Array(mutations);
    let policy = json!({
        "apiVersion": api_version,
        "kind": "MutatingAdmissionPolicy",
        "metadata": metadata(MUTATIONS_NAME, None, None),
        "spec": spec,
    });
    let binding = json!({
        "apiVersion": api_version,
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": metadata(MUTATIONS_NAME, None, None),
        "spec": {"policyName": MUTATIONS_NAME},
    });
    [policy, binding]
}

pub(super) fn compose(
    policy: &RolloutPolicy,
    options: &ExportOptions,
) -> Result<Export, ExportError> {
    let version = options.kubernetes_version;
    let check_globs = |field: String, globs: &[String]| match globs
        .iter()
        .find(|g| g.chars().any(char::is_control))
    {
        Some(g) => Err(ExportError::Glob {
            field,
            glob: g.clone(),
        }),
        None => Ok(()),
    };
    let excluded_globs = policy.excluded_namespaces();
    check_globs("spec.excludedNamespaces".into(), &excluded_globs)?;
    let excluded = (!excluded_globs.is_empty()).then(|| namespace_matches(&excluded_globs));
    let mut overrides = Vec::new();
    for (i, (globs, section)) in policy.namespace_overrides().enumerate() {
        check_globs(format!("spec.namespaceOverrides[{i}].namespaces"), &globs)?;
        overrides.push((namespace_matches(&globs), section));
    }

    let source = if policy.name.is_empty() {
        "the built-in defaults".to_string()
    } else {
        format!("the policy {:?}", policy.name)
    };
    let mut notes = vec![
        format!(
            "rollout-safe's rules as admission policies for Kubernetes {version}, from {source}"
        ),
        "(kubectl rollout-safe export admission-policy). Each rule has a policy and binding per"
            .into(),
        "action it takes: <rule>-enforce (Deny, Audit) and <rule>-warn (Warn, Audit).".into(),
    ];
    let mut left_out = Vec::new();
    let mut weaker = Vec::new();
    let mut objects = Vec::new();
    let mut plans = Vec::new();
    for &rule in RuleId::ALL {
        let meta = rule.meta();
        let Some(pieces) = RulePieces::of(rule) else {
            let why = match meta.input {
                Input::Surroundings(what) => format!(
                    "needs {what}, which an admission policy cannot look up; the webhook checks it with cluster lookups, the audit across files"
                ),
                _ => "has no CEL form".into(),
            };
            left_out.push(format!("  {rule} ({}): {why}.", meta.title));
            continue;
        };
        let plan = plan(policy, pieces, &overrides);
        if plan.constant_action() == Some(Action::Off) {
            left_out.push(format!(
                "  {rule} ({}): off in the policy file.",
                meta.title
            ));
            continue;
        }
        if let Some(w) = plan.pieces.weaker {
            weaker.push(format!("  {rule}: {w}."));
        }
        let has = |a: Action| plan.actions.contains(&a);
        if has(Action::Enforce) {
            objects.extend(validating(&plan, true, excluded.as_deref()));
        }
        if has(Action::Warn)
            || has(Action::Mutate)
            || (has(Action::Enforce) && plan.pieces.grandfathered.is_some())
        {
            objects.extend(validating(&plan, false, excluded.as_deref()));
        }
        plans.push(plan);
    }
    if options.mutating {
        let mutate: Vec<&RulePlan> = plans
            .iter()
            .filter(|p| p.actions.contains(&Action::Mutate) && p.pieces.mutation.is_some())
            .collect();
        let api_version = version
            .mutating_api_version()
            .ok_or(ExportError::MutatingTooOld(version))?;
        if mutate.is_empty() {
            notes.push("No rule has the mutate action: no MutatingAdmissionPolicy.".into());
        } else {
            let ids: Vec<&str> = mutate.iter().map(|p| p.pieces.rule.as_str()).collect();
            notes.push(format!(
                "{MUTATIONS_NAME} ({api_version}) fixes what {} would report, before the validating policies run.",
                ids.join(", ")
            ));
            if version < super::KubeVersion::MUTATING_GA {
                notes.push(format!(
                    "MutatingAdmissionPolicy is beta in Kubernetes {version}: the API server needs --feature-gates=MutatingAdmissionPolicy=true and --runtime-config=admissionregistration.k8s.io/v1beta1=true."
                ));
            }
            objects.extend(mutating(&mutate, api_version, excluded.as_deref()));
        }
    } else if plans.iter().any(|p| p.actions.contains(&Action::Mutate)) {
        notes.push(
            "Rules set to mutate warn here; --mutating (Kubernetes 1.34+) adds their fixes as a MutatingAdmissionPolicy.".into(),
        );
    }
    if !left_out.is_empty() {
        notes.push("Not exported:".into());
        notes.extend(left_out);
    }
    if !weaker.is_empty() {
        notes.push("Weaker than the webhook:".into());
        notes.extend(weaker);
    }
    Ok(Export { notes, objects })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renames_only_the_names_given() {
        let names: BTreeSet<String> = ["first", "containers"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            rename_variables(
                "variables.first.name + variables.firstField + variables.ref + size(variables.containers)",
                &names,
                "rs201_"
            ),
            "variables.rs201_first.name + variables.firstField + variables.ref + size(variables.rs201_containers)"
        );
        assert_eq!(
            rename_variables("myvariables.first", &names, "x_"),
            "myvariables.first"
        );
    }
}
