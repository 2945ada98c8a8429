//! Kubernetes schema validation through PyPI's `kubernetes-validate` (run as a subprocess).

use std::process::Command;

use serde_json::Value;

const INSTALL_HINT: &str = "the `kubernetes-validate` command (PyPI package kubernetes-validate) is not on PATH. \
Install it with `python3 -m venv .venv && .venv/bin/pip install kubernetes-validate && export PATH=$PWD/.venv/bin:$PATH` \
(.ci/run installs it into a venv on PATH), or set ROLLOUT_SAFE_SKIP_SCHEMA=1 to skip the schema check";

/// Outcome of [`validate`].
#[derive(Debug, PartialEq, Eq)]
pub enum SchemaCheck {
    Passed,
    /// `ROLLOUT_SAFE_SKIP_SCHEMA=1` and the tool is missing.
    Skipped,
}

/// Validates each `(name, object)` strictly (unknown fields are errors) against the schema of
/// Kubernetes `version` (e.g. `1.30`; `None`: the tool's newest). Panics with the tool's output
/// on a failure, and with installation instructions when the tool is missing (unless
/// `ROLLOUT_SAFE_SKIP_SCHEMA=1`).
pub fn validate(objects: &[(String, Value)], version: Option<&str>) -> SchemaCheck {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut files = Vec::new();
    for (i, (name, obj)) in objects.iter().enumerate() {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.path().join(format!("{i:02}-{safe}.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(obj).expect("JSON")).expect("write object");
        files.push(path);
    }
    let mut cmd = Command::new("kubernetes-validate");
    cmd.arg("--strict").arg("--no-warn");
    if let Some(v) = version {
        cmd.arg("--kubernetes-version").arg(v);
    }
    cmd.args(&files);
    let output = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::env::var("ROLLOUT_SAFE_SKIP_SCHEMA").is_ok_and(|v| v == "1") {
                eprintln!("schema check SKIPPED (ROLLOUT_SAFE_SKIP_SCHEMA=1): {INSTALL_HINT}");
                return SchemaCheck::Skipped;
            }
            panic!("{INSTALL_HINT}");
        }
        Err(e) => panic!("cannot run kubernetes-validate: {e}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && !stdout.contains("ERROR") && !stderr.contains("ERROR"),
        "kubernetes-validate rejected patched objects:\n{stdout}\n{stderr}"
    );
    // Every file must have been checked against a schema (not silently skipped).
    let passed = stdout.matches(" passed for resource ").count();
    assert_eq!(
        passed,
        files.len(),
        "kubernetes-validate did not confirm every object:\n{stdout}\n{stderr}"
    );
    SchemaCheck::Passed
}
