//! Files generated from the rule registry are up to date: the README rule table,
//! `docs/rules.md`, the chart's `values.yaml` rules and `values.schema.json` rule sections, and
//! the rules' admission-policy pieces the chart's `admission.mode: policies` templates read
//! (`charts/rollout-safe/files/admission-policies.json`).
//! `UPDATE_GENERATED=1 cargo test -p rollout-safe-policy --test generated` rewrites them.

use std::path::PathBuf;

use rollout_safe_policy::rules::catalogue::{
    MD_BEGIN, MD_END, YAML_BEGIN, YAML_END, admission_policy_data, readme_table, rules_doc,
    rules_schema, splice_json_member, splice_lines, values_comment, values_rules_comment,
};

fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

/// Compares the file with what `generate` makes of it; rewrites it under `UPDATE_GENERATED`.
fn check(rel: &str, generate: impl Fn(&str) -> Result<String, String>) {
    let path = repo(rel);
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    let wanted = generate(&current).unwrap_or_else(|e| panic!("{rel}: {e}"));
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        if wanted != current {
            std::fs::write(&path, &wanted).unwrap_or_else(|e| panic!("{rel}: {e}"));
        }
        return;
    }
    if wanted != current {
        let first = wanted
            .lines()
            .zip(current.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| wanted.lines().count().min(current.lines().count()));
        panic!(
            "{rel} is stale (first difference at line {}): run UPDATE_GENERATED=1 cargo test -p rollout-safe-policy --test generated",
            first + 1
        );
    }
}

#[test]
fn readme_rule_table_is_current() {
    check("README.md", |text| {
        splice_lines(text, MD_BEGIN, MD_END, &readme_table())
    });
}

#[test]
fn rules_doc_is_current() {
    check("docs/rules.md", |_| Ok(rules_doc()));
}

#[test]
fn chart_values_are_current() {
    check("charts/rollout-safe/values.yaml", |text| {
        // Two regions: the catalogue comment, then the defaults above `policy.spec.rules`.
        let first = splice_lines(text, YAML_BEGIN, YAML_END, &values_comment())?;
        let at = first
            .find(YAML_END)
            .ok_or("the first generated region vanished")?
            + YAML_END.len();
        let (head, tail) = first.split_at(at);
        Ok(format!(
            "{head}{}",
            splice_lines(tail, YAML_BEGIN, YAML_END, &values_rules_comment("    "))?
        ))
    });
}

#[test]
fn chart_schema_is_current() {
    check("charts/rollout-safe/values.schema.json", |text| {
        splice_json_member(text, "rules", &rules_schema(), 2)
    });
}

#[test]
fn chart_admission_policy_data_is_current() {
    check("charts/rollout-safe/files/admission-policies.json", |_| {
        Ok(admission_policy_data())
    });
}
