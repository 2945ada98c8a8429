//! RS900 (registered in unit tests only): an example rule, and the proof that a rule file plus
//! its line in the registry is all a new rule needs. The test below finds RS900 in the
//! catalogue, the policy-file parsing (with its typed parameter), the chart's schema and
//! values, the README table, `docs/rules.md` and the engine's findings. CONTRIBUTING.md uses
//! this file as the template.

use super::{
    Applies, Input, Report, Rule, RuleId, RuleMeta, WorkloadContext, WorkloadRule, rule_params,
};
use crate::rule::{Action, WorkloadKind};
use crate::view::WorkloadView;

pub struct NameLength;

rule_params! {
    /// The longest name that passes
    max_length: i32 = 40 => "maxLength", min 1;
}

impl Rule for NameLength {
    const META: RuleMeta = RuleMeta {
        id: RuleId::RS900,
        title: "Deployment name is short",
        default_action: Action::Warn,
        applies_to: Applies::Workloads(&[WorkloadKind::Deployment]),
        summary: "a Deployment's name has at most `maxLength` characters",
        why: "ReplicaSet and pod names append hashes to the Deployment's name and are cut at 63 characters, which makes them hard to tell apart.",
        fix: "shorten the name",
        mutation: None,
        input: Input::Object,
        exemptable: true,
    };
    type Params = Params;
}

impl WorkloadRule for NameLength {
    fn check(w: &WorkloadView<'_>, p: &Params, _: &WorkloadContext<'_>, out: &mut Report<'_>) {
        let len = w.name().chars().count();
        if len > p.max_length as usize {
            out.object(
                "metadata.name",
                format!("has a name of {len} characters, more than {}", p.max_length),
                Self::META.fix,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::rules::RuleId;
    use crate::rules::catalogue::{
        readme_table, rules_doc, rules_schema, values_comment, values_rules,
    };
    use crate::{Facts, RolloutPolicy, Workload, check};

    #[test]
    fn one_file_and_one_registry_line_make_a_rule_everywhere() {
        // The catalogue.
        assert!(RuleId::ALL.contains(&RuleId::RS900));
        assert_eq!("rs900".parse::<RuleId>(), Ok(RuleId::RS900));
        assert_eq!(RuleId::RS900.title(), "Deployment name is short");
        // The generated files.
        assert!(readme_table().contains("| [RS900](docs/rules.md#rs900) | a Deployment's name has at most `maxLength` characters | Deploy | `maxLength` (40) | warn |"));
        assert!(rules_doc().contains("## RS900"));
        assert!(values_comment().contains("RS900 Deployment name is short"));
        assert!(values_rules("  ").contains("  RS900: {action: warn, maxLength: 40}\n"));
        let schema = rules_schema();
        assert_eq!(
            schema["properties"]["RS900"]["oneOf"][1]["properties"]["maxLength"]["minimum"],
            json!(1)
        );
        // The policy file: the typed parameter is read, bounded, and misplaced keys are refused.
        let head = "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\nspec:\n  rules:\n";
        let p = RolloutPolicy::from_yaml(&format!(
            "{head}    RS900: {{action: enforce, maxLength: 8}}\n"
        ))
        .unwrap();
        let eff = p.for_namespace(Some("shop"));
        assert_eq!(eff.params.RS900.max_length, 8);
        let e = RolloutPolicy::from_yaml(&format!("{head}    RS900: {{maxLength: 0}}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("spec.rules.RS900.maxLength") && e.contains("line 5"),
            "{e}"
        );
        let e = RolloutPolicy::from_yaml(&format!("{head}    RS900: {{minReplicas: 3}}\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("minReplicas") && e.contains("line 5"), "{e}");
        // The engine.
        let w = Workload::from_value(&json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a-rather-long-name", "namespace": "shop"},
            "spec": {"selector": {}, "template": {}}
        }))
        .unwrap()
        .unwrap();
        let found: Vec<_> = check(&w, None, &eff, &Facts::default())
            .into_iter()
            .filter(|f| f.rule == RuleId::RS900)
            .collect();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            found[0].message,
            "Deployment shop/a-rather-long-name: has a name of 18 characters, more than 8 (metadata.name)"
        );
    }
}
