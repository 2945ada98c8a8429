//! What is generated from the registry: the README rule table, `docs/rules.md`, and the chart's
//! `values.yaml` rules and `values.schema.json` rule sections. Pure text; the test
//! `policy/tests/generated.rs` compares it with the files (and rewrites them with
//! `UPDATE_GENERATED=1`).

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use super::{Applies, Input, ParamDoc, ParamKind, RuleId};
use crate::rule::{Action, WorkloadKind};

/// The first line of a generated region in a Markdown file.
pub const MD_BEGIN: &str =
    "<!-- generated from the rule registry (policy/src/rules); edit the rules, not this -->";
/// The last line of a generated region in a Markdown file.
pub const MD_END: &str = "<!-- end of generated rule table -->";
/// The first line of a generated region in a YAML file.
pub const YAML_BEGIN: &str =
    "# >>> generated from the rule registry (policy/src/rules); edit the rules, not this";
/// The last line of a generated region in a YAML file.
pub const YAML_END: &str = "# <<< end of generated rules";

fn applies_text(applies: Applies) -> String {
    match applies {
        Applies::Services => "Service".into(),
        Applies::Workloads(kinds) => kinds
            .iter()
            .map(|k| match k {
                WorkloadKind::Deployment => "Deploy",
                WorkloadKind::StatefulSet => "STS",
                WorkloadKind::DaemonSet => "DS",
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn default_text(rule: RuleId) -> String {
    let m = rule.meta();
    match (m.default_action, m.mutation) {
        (Action::Mutate, Some(what)) => format!("mutate: {what}"),
        (action, _) => action.to_string(),
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn params_text(docs: &[ParamDoc]) -> String {
    if docs.is_empty() {
        return "—".into();
    }
    docs.iter()
        .map(|p| format!("`{}` ({})", p.key, value_text(&p.default)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The README's rule table, between [`MD_BEGIN`] and [`MD_END`].
pub fn readme_table() -> String {
    let mut s = String::new();
    s.push_str(
        "| ID | Check | Applies to | Parameters (default) | Default action | Admission policy |\n",
    );
    s.push_str("|---|---|---|---|---|---|\n");
    for &rule in RuleId::ALL {
        let m = rule.meta();
        let _ = writeln!(
            s,
            "| [{rule}](docs/rules.md#{}) | {} | {} | {} | {} | {} |",
            rule.as_str().to_ascii_lowercase(),
            m.summary,
            applies_text(m.applies_to),
            params_text(&rule.param_docs()),
            default_text(rule),
            admission_short(rule),
        );
    }
    s
}

/// The README table's "Admission policy" column: whether `export admission-policy` (and the
/// chart's `admission.mode: policies`) carries the rule, and how.
fn admission_short(rule: RuleId) -> String {
    if matches!(rule.meta().input, Input::Surroundings(_)) {
        return "no: needs other objects".into();
    }
    match rule.cel() {
        None => "no".into(),
        Some(f) => {
            let mut s = String::from("yes");
            if f.mutation.is_some() {
                s.push_str(", fix with `--mutating`");
            }
            if f.weaker.is_some() {
                s.push_str(&format!(
                    ", [weaker](docs/rules.md#{})",
                    rule.as_str().to_ascii_lowercase()
                ));
            }
            s
        }
    }
}

/// `docs/rules.md`'s line on the rule's admission-policy form.
fn admission_long(rule: RuleId) -> String {
    if let Input::Surroundings(what) = rule.meta().input {
        return format!("not exported: an admission policy cannot look up {what}");
    }
    match rule.cel() {
        None => "not exported (no CEL form)".into(),
        Some(f) => {
            let mut s = String::from("exported as ValidatingAdmissionPolicies");
            if f.mutation.is_some() {
                s.push_str(", and with `--mutating` its fix as a JSON Patch mutation of the MutatingAdmissionPolicy");
            }
            if let Some(w) = f.weaker {
                s.push_str(&format!("; **weaker than the webhook**: {w}"));
            }
            s
        }
    }
}

fn input_text(input: Input) -> String {
    match input {
        Input::Object => "the object alone (audit, webhook)".into(),
        Input::ObjectAndOld => {
            "the object and, on an update, the object before it (webhook)".into()
        }
        Input::Surroundings(what) => {
            format!("{what} (audit: across the files; webhook: with cluster lookups)")
        }
    }
}

fn kind_text(p: &ParamDoc) -> String {
    match p.kind {
        ParamKind::Integer => match p.min {
            Some(min) => format!("integer ≥ {min}"),
            None => "integer".into(),
        },
        ParamKind::Boolean => "boolean".into(),
        ParamKind::Choice(choices) => format!("one of {}", choices.join(", ")),
    }
}

/// `docs/rules.md`: every rule with why it exists, how to fix it, and its parameters.
pub fn rules_doc() -> String {
    let mut s = String::from(
        "# Rules\n\n\
         Generated from the rule registry (`policy/src/rules/`, one file per rule) by\n\
         `UPDATE_GENERATED=1 cargo test -p rollout-safe-policy --test generated`; edit the rules,\n\
         not this file.\n\n\
         Every rule's action is set in a `RolloutPolicy` file (`spec.rules.RSxxx: enforce | warn |\n\
         mutate | off`, or a map with `action` and the rule's parameters), per namespace with\n\
         `namespaceOverrides`. An object can skip rules with the annotations\n\
         `rollout-safe.dev/skip: \"RS102,RS501\"` and `rollout-safe.dev/skip-reason: \"...\"`.\n\n",
    );
    for &rule in RuleId::ALL {
        let m = rule.meta();
        let _ = writeln!(s, "## {rule}\n\n*{}*\n", m.title);
        let _ = writeln!(s, "- Check: {}", m.summary);
        let _ = writeln!(s, "- Default action: {}", default_text(rule));
        let _ = writeln!(s, "- Applies to: {}", applies_text(m.applies_to));
        let _ = writeln!(s, "- Reads: {}", input_text(m.input));
        if !m.exemptable {
            s.push_str("- Cannot be skipped with `rollout-safe.dev/skip`.\n");
        }
        let _ = writeln!(
            s,
            "- Admission policy (`export admission-policy`, chart `admission.mode: policies`): {}",
            admission_long(rule)
        );
        let _ = writeln!(
            s,
            "\n**Why.** {}\n\n**Fix.** {}.\n",
            m.why,
            upper_first(m.fix)
        );
        let params = rule.param_docs();
        if !params.is_empty() {
            s.push_str("| Parameter | Type | Default | Meaning |\n|---|---|---|---|\n");
            for p in &params {
                let _ = writeln!(
                    s,
                    "| `{}` | {} | `{}` | {} |",
                    p.key,
                    kind_text(p),
                    value_text(&p.default),
                    p.doc
                );
            }
            s.push('\n');
        }
    }
    s
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The chart's `values.yaml` catalogue comment (each line starting `#   `).
pub fn values_comment() -> String {
    let mut s = String::new();
    for &rule in RuleId::ALL {
        let m = rule.meta();
        let title = format!("{} ", m.title);
        let params: Vec<&str> = rule.param_docs().iter().map(|p| p.key).collect();
        let mut line = format!(
            "#   {rule} {title:.<56} {:<8}",
            m.default_action.to_string()
        );
        if !params.is_empty() {
            line.push_str(&params.join(", "));
        }
        if let Input::Surroundings(what) = m.input {
            if !params.is_empty() {
                line.push_str("; ");
            }
            let _ = write!(line, "needs {what}");
        }
        let _ = writeln!(s, "{}", line.trim_end());
    }
    s
}

/// Every rule with its defaults as `policy.spec.rules` entries, each line starting with
/// `indent`.
pub fn values_rules(indent: &str) -> String {
    let mut s = String::new();
    for &rule in RuleId::ALL {
        let action = rule.default_action();
        let params = rule.param_docs();
        if params.is_empty() {
            let _ = writeln!(s, "{indent}{rule}: {action}");
        } else {
            let fields: Vec<String> = params
                .iter()
                .map(|p| format!("{}: {}", p.key, value_text(&p.default)))
                .collect();
            let _ = writeln!(
                s,
                "{indent}{rule}: {{action: {action}, {}}}",
                fields.join(", ")
            );
        }
    }
    s
}

/// The chart's reference list of the defaults above its `policy.spec.rules` in `values.yaml`:
/// the [`values_rules`] entries as comments. The values themselves stay empty (`rules: {}`), so
/// that `--set policy.spec.rules.RS104=off` (a scalar) and `--set
/// policy.spec.rules.RS104.minStartupSeconds=45` (a table) both merge without helm warning that
/// a table and a non-table collide, which either shape of a default would cause for the other.
pub fn values_rules_comment(indent: &str) -> String {
    values_rules(&format!("{indent}#   "))
}

/// `charts/rollout-safe/files/admission-policies.json`: what the chart's
/// `admission.mode: policies` templates build the policies from (the same pieces
/// `export admission-policy` uses), with each rule's default action and parameters.
pub fn admission_policy_data() -> String {
    use crate::admission_policy::{GRANDFATHERED_NOTE, MUTATIONS_NAME, RulePieces};
    use crate::rules::cel::ref_variable;
    let mut rules = Vec::new();
    let mut not_exported = Vec::new();
    for &rule in RuleId::ALL {
        let Some(pieces) = RulePieces::of(rule) else {
            not_exported.push(json!({"rule": rule.as_str(), "why": admission_long(rule)}));
            continue;
        };
        let mut v = serde_json::to_value(&pieces).unwrap_or_default();
        v["defaultAction"] = json!(rule.default_action().to_string());
        v["params"] = Value::Array(
            rule.param_docs()
                .iter()
                .map(|p| json!({"key": p.key, "default": p.default}))
                .collect(),
        );
        rules.push(v);
    }
    let data = json!({
        "generatedBy": "UPDATE_GENERATED=1 cargo test -p rollout-safe-policy --test generated (from policy/src/rules and policy/src/admission_policy); edit those, not this",
        "ref": ref_variable().expression,
        "grandfatheredNote": GRANDFATHERED_NOTE,
        "mutationsName": MUTATIONS_NAME,
        "rules": rules,
        "notExported": not_exported,
    });
    let mut s = serde_json::to_string_pretty(&data).unwrap_or_default();
    s.push('\n');
    s
}

fn actions_schema(rule: RuleId) -> Value {
    let actions: Vec<&str> = if rule.can_mutate() {
        vec!["enforce", "warn", "mutate", "off"]
    } else {
        vec!["enforce", "warn", "off"]
    };
    json!({"type": "string", "enum": actions})
}

fn param_schema(p: &ParamDoc) -> Value {
    let mut v = match p.kind {
        ParamKind::Integer => match p.min {
            Some(min) => json!({"type": "integer", "minimum": min}),
            None => json!({"type": "integer"}),
        },
        ParamKind::Boolean => json!({"type": "boolean"}),
        ParamKind::Choice(choices) => json!({"type": "string", "enum": choices}),
    };
    v["description"] = json!(format!("{} (default {})", p.doc, value_text(&p.default)));
    v
}

/// The JSON schema of a `rules` section (used twice in `values.schema.json`: `spec.rules` and
/// each namespace override's `rules`).
pub fn rules_schema() -> Value {
    let mut rules = Map::new();
    for &rule in RuleId::ALL {
        let mut props = Map::new();
        props.insert("action".into(), actions_schema(rule));
        for p in rule.param_docs() {
            props.insert(p.key.into(), param_schema(&p));
        }
        rules.insert(
            rule.as_str().into(),
            json!({
                "description": rule.title(),
                "oneOf": [
                    actions_schema(rule),
                    {"type": "object", "additionalProperties": false, "properties": props},
                ],
            }),
        );
    }
    let fixable: Vec<&str> = RuleId::ALL
        .iter()
        .filter(|r| r.can_mutate())
        .map(|r| r.as_str())
        .collect();
    json!({
        "type": "object",
        "additionalProperties": false,
        "description": format!(
            "rule ID -> action or {{action, parameters}}; mutate only for {}",
            fixable.join(", ")
        ),
        "properties": rules,
    })
}

/// Replaces the lines strictly between the line `begin` and the line `end` (compared without
/// leading white space) with `generated`. Errors name the missing marker.
pub fn splice_lines(text: &str, begin: &str, end: &str, generated: &str) -> Result<String, String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let find = |marker: &str, from: usize| {
        lines[from..]
            .iter()
            .position(|l| l.trim() == marker)
            .map(|i| i + from)
    };
    let b = find(begin, 0).ok_or_else(|| format!("no line {begin:?}"))?;
    let e = find(end, b + 1).ok_or_else(|| format!("no line {end:?} after {begin:?}"))?;
    let mut out: String = lines[..=b].concat();
    out.push_str(generated);
    out.push_str(&lines[e..].concat());
    Ok(out)
}

/// Replaces the value of every `"rules": {…}` member in a pretty-printed JSON document with
/// `value`, indented to match. Errors when there are not `expected` of them.
pub fn splice_json_member(
    text: &str,
    key: &str,
    value: &Value,
    expected: usize,
) -> Result<String, String> {
    let needle = format!("\"{key}\": {{");
    let mut out = String::new();
    let mut rest = text;
    let mut found = 0;
    while let Some(at) = rest.find(&needle) {
        let value_start = at + needle.len() - 1;
        let line_start = rest[..at].rfind('\n').map_or(0, |i| i + 1);
        let indent = &rest[line_start..at];
        let mut stream =
            serde_json::Deserializer::from_str(&rest[value_start..]).into_iter::<Value>();
        match stream.next() {
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("the {key:?} member does not parse: {e}")),
            None => return Err(format!("the {key:?} member has no value")),
        }
        let value_end = value_start + stream.byte_offset();
        let pretty = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
        out.push_str(&rest[..value_start]);
        out.push_str(&pretty.replace('\n', &format!("\n{indent}")));
        rest = &rest[value_end..];
        found += 1;
    }
    out.push_str(rest);
    if found != expected {
        return Err(format!(
            "expected {expected} {key:?} members, found {found}"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splices_between_markers_and_json_members() {
        let text = "a\n  # begin\nold\n  # end\nb\n";
        assert_eq!(
            splice_lines(text, "# begin", "# end", "new\n").unwrap(),
            "a\n  # begin\nnew\n  # end\nb\n"
        );
        assert!(splice_lines(text, "# nope", "# end", "").is_err());
        let json_text =
            "{\n  \"x\": {\n    \"rules\": {\n      \"a\": 1\n    },\n    \"y\": 2\n  }\n}\n";
        let spliced = splice_json_member(json_text, "rules", &json!({"b": [1]}), 1).unwrap();
        assert_eq!(
            spliced,
            "{\n  \"x\": {\n    \"rules\": {\n      \"b\": [\n        1\n      ]\n    },\n    \"y\": 2\n  }\n}\n"
        );
        assert!(splice_json_member(json_text, "rules", &json!({}), 2).is_err());
    }

    #[test]
    fn generated_text_names_every_rule() {
        let table = readme_table();
        let comment = values_comment();
        let values = values_rules("  ");
        for rule in RuleId::ALL {
            assert!(
                table.contains(&format!("[{rule}]")),
                "{rule} missing from the table"
            );
            assert!(
                comment.contains(rule.as_str()),
                "{rule} missing from the comment"
            );
            assert!(
                values.contains(&format!("  {rule}: ")),
                "{rule} missing from values"
            );
        }
        assert!(
            values.contains("RS104: {action: warn, minStartupSeconds: 30}"),
            "{values}"
        );
        // The chart lists them as comments above an empty `rules: {}`.
        let listed = values_rules_comment("    ");
        assert!(
            listed.contains("    #   RS104: {action: warn, minStartupSeconds: 30}\n"),
            "{listed}"
        );
        assert!(
            listed.lines().all(|l| l.starts_with("    #   ")),
            "{listed}"
        );
        assert!(
            values.contains(
                "RS201: {action: mutate, sleepSeconds: 5, handler: auto, allowExec: false}"
            ),
            "{values}"
        );
        let schema = rules_schema();
        assert_eq!(
            schema["properties"]["RS104"]["oneOf"][1]["properties"]["minStartupSeconds"]["minimum"],
            json!(0)
        );
        assert_eq!(
            schema["properties"]["RS101"]["oneOf"][0]["enum"],
            json!(["enforce", "warn", "off"])
        );
    }
}
