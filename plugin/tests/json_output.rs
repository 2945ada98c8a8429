//! Every command with `-o json` keeps stdout pure JSON — one value and nothing else, so it can
//! be piped into `jq` — and says what people need to read on stderr. One test per command,
//! against the stand-in API server where it needs a cluster.

mod common;

use common::{TestResult, blue_green, good, shop};
use rollout_safe_standin::Run;
use serde_json::Value;

/// stdout is exactly one JSON value (whitespace aside).
fn pure_json(r: &Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| {
        panic!(
            "`{}`: stdout is not one JSON value ({e}):\n--- stdout\n{}--- stderr\n{}",
            r.label, r.stdout, r.stderr
        )
    })
}

fn plugin() -> rollout_safe_standin::Plugin {
    rollout_safe_standin::Plugin::new(env!("CARGO_BIN_EXE_kubectl-rollout_safe"))
}

fn examples(rel: &str) -> String {
    format!("{}/../examples/{rel}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn audit_files_json_and_sarif() -> TestResult {
    for format in ["json", "sarif"] {
        let r = plugin().run(&["audit", "-R", "-o", format, "-f", &examples("")])?;
        r.assert_code(3);
        let v = pure_json(&r);
        assert!(v.is_object());
        // The summary and the notes are for people: on stderr.
        r.assert_stderr_has("workload(s) in");
    }
    // With unreadable input and skipped subdirectories, errors and notes go to stderr too.
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("bad.yaml"), "kind: [unclosed\n")?;
    std::fs::create_dir(dir.path().join("sub"))?;
    let r = plugin().run(&["audit", "-o", "json", "-f", dir.path().to_str().unwrap()])?;
    r.assert_code(2)
        .assert_stderr_has("error: ")
        .assert_stderr_has("subdirectory not read without -R");
    assert_eq!(pure_json(&r)["errors"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[test]
fn audit_cluster_json() -> TestResult {
    let (_standin, plugin) = good()?;
    let r = plugin.run(&["audit", "--cluster", "-o", "json"])?;
    r.assert_code(3).assert_stderr_has("workload(s) in");
    assert!(pure_json(&r)["findings"].is_array());
    Ok(())
}

#[test]
fn plan_json() -> TestResult {
    let r = plugin().run(&["plan", "-f", &examples("safe/shop.yaml"), "-o", "json"])?;
    r.assert_code(0);
    assert!(pure_json(&r)[0]["plan"].is_object());
    let (_standin, plugin) = good()?;
    let r = plugin.run(&["plan", "deploy/good", "-o", "json"])?;
    r.assert_code(0);
    assert_eq!(pure_json(&r)[0]["object"], "Deployment api/good");
    Ok(())
}

#[test]
fn status_json_once_and_watched() -> TestResult {
    let (_standin, plugin) = good()?;
    let r = plugin.run(&["status", "deploy/good", "-o", "json"])?;
    r.assert_code(0);
    assert_eq!(pure_json(&r)["verdict"], "Complete");
    // Watching narrates on stderr; stdout still holds only the final verdict.
    let r = plugin.run(&[
        "status",
        "deploy/good",
        "--watch",
        "-o",
        "json",
        "--timeout",
        "20s",
    ])?;
    r.assert_code(0);
    assert_eq!(pure_json(&r)["workload"], "deployment/good");
    Ok(())
}

#[test]
fn history_json() -> TestResult {
    let (_standin, plugin) = good()?;
    for args in [
        &["history", "deploy/good", "-o", "json"][..],
        &["history", "deploy/good", "--revision", "1", "-o", "json"][..],
    ] {
        let r = plugin.run(args)?;
        r.assert_code(0);
        let v = pure_json(&r);
        assert!(v.is_array() || v.is_object(), "{v}");
    }
    Ok(())
}

#[test]
fn blue_green_status_json() -> TestResult {
    let (_standin, plugin) = shop(3, "registry.example.com/shop:1.0.0")?;
    plugin
        .run(&blue_green(
            "registry.example.com/shop:1.1.0",
            "0s",
            "0s",
            &[],
        ))?
        .assert_code(0);
    let r = plugin.run(&["blue-green", "status", "deploy/shop", "-o", "json"])?;
    r.assert_code(0);
    assert_eq!(pure_json(&r)["phase"], "finished");
    Ok(())
}
