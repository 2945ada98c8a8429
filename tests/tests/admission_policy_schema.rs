//! The exported admission policies are valid objects for every Kubernetes version they target:
//! `kubernetes-validate --strict` (PyPI; `scripts/test` installs it) against each version's
//! schema, from 1.30 to the newest the tool knows, with `--mutating` from 1.34 on.

use rollout_safe_policy::RolloutPolicy;
use rollout_safe_policy::admission_policy::{ExportOptions, KubeVersion, export};
use rollout_safe_tests::schema::{self, SchemaCheck};

/// Namespace overrides and exclusions, so every kind of matchCondition and variable is there.
const POLICY: &str = r#"apiVersion: rollout-safe.dev/v1alpha1
kind: RolloutPolicy
metadata: {name: overrides}
spec:
  rules:
    RS102: enforce
    RS104: {minStartupSeconds: 45}
  namespaceOverrides:
    - namespaces: ["dev-*", "sandbox"]
      rules: {RS101: warn, RS104: {minStartupSeconds: 10}, RS201: warn}
    - namespaces: ["team-?"]
      rules: {RS201: {handler: exec}, RS403: enforce}
  excludedNamespaces: ["kube-*"]
"#;

/// The newest Kubernetes version `kubernetes-validate` has schemas for ("Defaults to 1.37.0"
/// in its help), or 1.36 when that cannot be read.
fn newest_known() -> KubeVersion {
    let help = std::process::Command::new("kubernetes-validate")
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    flat.split("Defaults to ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.trim_end_matches('.').parse().ok())
        .unwrap_or(KubeVersion::MUTATING_GA)
}

#[test]
fn exports_validate_against_every_supported_version() {
    let policies = [
        RolloutPolicy::default(),
        RolloutPolicy::from_yaml(POLICY).unwrap(),
    ];
    let newest = newest_known();
    assert!(newest >= KubeVersion::MUTATING_GA, "{newest}");
    let versions: Vec<KubeVersion> = (KubeVersion::OLDEST.minor..=newest.minor)
        .map(|minor| KubeVersion::new(1, minor))
        .collect();
    let batches: Vec<(KubeVersion, Vec<(String, serde_json::Value)>)> = versions
        .iter()
        .map(|&version| {
            let mutating = version.mutating_api_version().is_some();
            let mut objects = Vec::new();
            for policy in &policies {
                let e = export(
                    policy,
                    &ExportOptions {
                        kubernetes_version: version,
                        mutating,
                    },
                )
                .unwrap();
                assert_eq!(
                    e.objects
                        .iter()
                        .any(|o| o["kind"] == "MutatingAdmissionPolicy"),
                    mutating,
                    "{version}"
                );
                objects.extend(e.objects.into_iter().map(|o| {
                    let name = format!(
                        "{}-{}",
                        o["kind"].as_str().unwrap_or_default(),
                        o["metadata"]["name"].as_str().unwrap_or_default()
                    );
                    (name, o)
                }));
            }
            (version, objects)
        })
        .collect();
    // One kubernetes-validate per version, two at a time (each spends seconds loading schemas).
    let results: Vec<SchemaCheck> = batches
        .chunks(2)
        .flat_map(|pair| {
            std::thread::scope(|s| {
                let handles: Vec<_> = pair
                    .iter()
                    .map(|(v, objects)| {
                        s.spawn(move || schema::validate(objects, Some(&v.to_string())))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    if results.contains(&SchemaCheck::Skipped) {
        return;
    }
    let names: Vec<String> = versions.iter().map(ToString::to_string).collect();
    eprintln!("validated against Kubernetes {}", names.join(", "));
}
