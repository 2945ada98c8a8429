//! `kubectl rollout-safe export admission-policy`, run as a user runs it: the objects it prints
//! parse, hold a policy and binding per rule and action, follow the policy file and the
//! Kubernetes version, and bad input is a usage error (exit 2) naming what is wrong.

use std::io::Write as _;
use std::process::{Command, Output};

use serde_json::Value;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubectl-rollout_safe"))
        .arg("export")
        .arg("admission-policy")
        .args(args)
        .env_remove("ROLLOUT_SAFE_POLICY")
        .output()
        .expect("the plugin runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The YAML stream's objects (comment-only documents are skipped).
fn objects(yaml: &str) -> Vec<Value> {
    yaml.split("\n---\n")
        .map(|doc| doc.trim_start_matches("---\n"))
        .filter(|doc| {
            doc.lines()
                .any(|l| !l.starts_with('#') && !l.trim().is_empty())
        })
        .map(|doc| serde_saphyr::from_str::<Value>(doc).unwrap_or_else(|e| panic!("{e}\n{doc}")))
        .collect()
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

#[test]
fn defaults_export_a_policy_and_binding_per_rule_and_action() {
    let out = run(&[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    // The rules an admission policy cannot check are named, with why.
    for rule in ["RS405", "RS601", "RS602", "RS603"] {
        assert!(
            yaml.lines()
                .any(|l| l.starts_with("#   ") && l.contains(rule) && l.contains("needs")),
            "{rule} not listed as left out:\n{yaml}"
        );
    }
    let objs = objects(&yaml);
    // RS101 is enforced: a Deny binding, and a Warn one for updates that change no template.
    let deny = named(
        &objs,
        "ValidatingAdmissionPolicyBinding",
        "rollout-safe-rs101-enforce",
    );
    assert_eq!(
        deny["spec"]["validationActions"],
        serde_json::json!(["Deny", "Audit"])
    );
    let warn = named(
        &objs,
        "ValidatingAdmissionPolicyBinding",
        "rollout-safe-rs501-warn",
    );
    assert_eq!(
        warn["spec"]["validationActions"],
        serde_json::json!(["Warn", "Audit"])
    );
    // mutate exports as warn, never deny.
    named(
        &objs,
        "ValidatingAdmissionPolicy",
        "rollout-safe-rs201-warn",
    );
    assert!(
        !objs
            .iter()
            .any(|o| o["metadata"]["name"] == "rollout-safe-rs201-enforce")
    );
    for o in &objs {
        assert_eq!(o["apiVersion"], "admissionregistration.k8s.io/v1", "{o}");
        if o["kind"] == "ValidatingAdmissionPolicy" {
            assert_eq!(o["spec"]["failurePolicy"], "Fail", "{o}");
        }
    }
    assert!(!objs.iter().any(|o| o["kind"] == "MutatingAdmissionPolicy"));
    assert!(
        !objs
            .iter()
            .any(|o| o["metadata"]["name"].as_str().unwrap().contains("rs405"))
    );
    // JSON is the same objects, as a List.
    let json = run(&["-o", "json"]);
    assert!(json.status.success());
    let list: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap(), &objs);
    assert!(
        text(&json.stderr).contains("RS601"),
        "notes go to stderr beside JSON"
    );
}

#[test]
fn mutating_follows_the_kubernetes_version() {
    let old = run(&["--mutating"]);
    assert_eq!(old.status.code(), Some(2));
    assert!(text(&old.stderr).contains("1.34"), "{}", text(&old.stderr));
    let beta = run(&["--mutating", "--kubernetes-version", "v1.34.2"]);
    assert!(beta.status.success(), "{}", text(&beta.stderr));
    let yaml = text(&beta.stdout);
    assert!(
        yaml.contains("--runtime-config=admissionregistration.k8s.io/v1beta1=true"),
        "{yaml}"
    );
    let objs = objects(&yaml);
    let map = named(&objs, "MutatingAdmissionPolicy", "rollout-safe-mutations");
    assert_eq!(map["apiVersion"], "admissionregistration.k8s.io/v1beta1");
    assert_eq!(
        map["spec"]["mutations"].as_array().unwrap().len(),
        4,
        "RS201, RS202, RS301, RS403"
    );
    let ga = objects(&text(
        &run(&["--mutating", "--kubernetes-version", "1.36"]).stdout,
    ));
    let map = named(
        &ga,
        "MutatingAdmissionPolicyBinding",
        "rollout-safe-mutations",
    );
    assert_eq!(map["apiVersion"], "admissionregistration.k8s.io/v1");
}

#[test]
fn the_policy_file_decides_actions_parameters_and_namespaces() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    write!(
        f,
        "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\nspec:\n  rules:\n    RS102: off\n    RS104: {{minStartupSeconds: 77}}\n  namespaceOverrides:\n    - namespaces: [\"dev-*\"]\n      rules: {{RS101: warn}}\n  excludedNamespaces: [kube-system]\n"
    )
    .unwrap();
    let out = run(&["--policy", f.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let objs = objects(&text(&out.stdout));
    assert!(
        !objs
            .iter()
            .any(|o| o["metadata"]["name"].as_str().unwrap().contains("rs102"))
    );
    let rs104 = named(
        &objs,
        "ValidatingAdmissionPolicy",
        "rollout-safe-rs104-warn",
    );
    assert!(
        rs104["spec"]["variables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "minStartupSeconds" && v["expression"] == "77"),
        "{rs104}"
    );
    // RS101 enforced except in dev-*: the enforce policy asks the namespace.
    let rs101 = named(
        &objs,
        "ValidatingAdmissionPolicy",
        "rollout-safe-rs101-enforce",
    );
    let conditions = rs101["spec"]["matchConditions"].to_string();
    assert!(
        conditions.contains("dev-.*") && conditions.contains("kube-system"),
        "{conditions}"
    );

    let mut bad = tempfile::NamedTempFile::new().unwrap();
    write!(bad, "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\nspec:\n  rules:\n    RS104: {{minStartupSecs: 3}}\n").unwrap();
    let out = run(&["--policy", bad.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("minStartupSecs") && err.contains("line 5"),
        "{err}"
    );
}

#[test]
fn bad_versions_are_usage_errors() {
    for (v, says) in [("1.29", "1.30"), ("latest", "MAJOR.MINOR")] {
        let out = run(&["--kubernetes-version", v]);
        assert_eq!(out.status.code(), Some(2), "{v}");
        assert!(
            text(&out.stderr).contains(says),
            "{v}: {}",
            text(&out.stderr)
        );
    }
}
