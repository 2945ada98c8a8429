//! The audit and plan commands, run as the real binary: exit codes, formats, stdin, and bad
//! input that is reported with file and line while the rest is still audited.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rollout_safe_testkit::ChildGuard;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_kubectl-rollout_safe"))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(args: &[&str]) -> Output {
    bin().current_dir(repo()).args(args).output().unwrap()
}

fn run_stdin(args: &[&str], input: &str) -> Output {
    // Guarded: a failed write cannot leave the plugin running.
    let mut child = ChildGuard::new(
        bin()
            .current_dir(repo())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    child
        .child_mut()
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.into_inner().wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

const SAFE: &str = include_str!("../../examples/safe/shop.yaml");

#[test]
fn examples_fail_with_violations_and_safe_ones_pass() {
    let o = run(&["audit", "-R", "-f", "examples"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let t = text(&o);
    for rule in [
        "RS101", "RS105", "RS401", "RS403", "RS501", "RS601", "RS603", "RS001",
    ] {
        assert!(t.contains(rule), "{rule} missing:\n{t}");
    }
    assert!(
        t.contains("examples/unsafe/web.yaml:3"),
        "the Deployment starts after two comment lines"
    );
    let o = run(&["audit", "-R", "-f", "examples/safe", "--fail-on", "warn"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("0 error(s), 0 warning(s)"));
}

#[test]
fn directories_without_recursion_read_only_their_own_files() {
    // examples/ itself holds only policy.yaml: no workload, so nothing was audited, which is
    // an error unless --allow-empty; the subdirectories left out are named.
    let o = run(&["audit", "-f", "examples"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("2 subdirectories not read without -R: safe, unsafe"),
        "{t}"
    );
    assert!(t.contains("no workload found (1 object(s) read)"), "{t}");
    let o = run(&["audit", "-f", "examples", "--allow-empty"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn fail_on_warn() {
    let dir = tempfile::tempdir().unwrap();
    let warn_only = SAFE.replace(
        "registry.example.com/shop/web:1.4.2",
        "registry.example.com/shop/web:latest",
    );
    let f = write(dir.path(), "w.yaml", &warn_only);
    let f = f.to_str().unwrap();
    assert_eq!(run(&["audit", "-f", f]).status.code(), Some(0));
    assert_eq!(
        run(&["audit", "-f", f, "--fail-on", "warn"]).status.code(),
        Some(3)
    );
}

#[test]
fn json_sarif_junit() {
    let o = run(&["audit", "-R", "-f", "examples/unsafe", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = &v["findings"][0];
    assert!(
        f["file"].as_str().unwrap().ends_with(".yaml") && f["line"].as_u64().unwrap() >= 1,
        "{f}"
    );
    assert!(
        f["rule"].is_string()
            && f["message"].is_string()
            && f["fix"].is_string()
            && f["field"].is_string()
    );

    let o = run(&["audit", "-R", "-f", "examples/unsafe", "-o", "sarif"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let run0 = &v["runs"][0];
    assert_eq!(run0["tool"]["driver"]["name"], "rollout-safe");
    let rules = run0["tool"]["driver"]["rules"].as_array().unwrap();
    for r in run0["results"].as_array().unwrap() {
        let idx = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[idx]["id"], r["ruleId"]);
        let loc = &r["locations"][0]["physicalLocation"];
        assert!(
            loc["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
                .starts_with("examples/unsafe/")
        );
        assert!(loc["region"]["startLine"].as_u64().unwrap() >= 1);
        assert!(["error", "warning"].contains(&r["level"].as_str().unwrap()));
    }
    // The RS603 result sits on the Service's own document: line 36 of web.yaml, after the `---`.
    assert!(
        run0["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["ruleId"] == "RS603"
                && r["locations"][0]["physicalLocation"]["region"]["startLine"] == 36)
    );

    let o = run(&["audit", "-R", "-f", "examples/unsafe", "-o", "junit"]);
    let x = String::from_utf8(o.stdout).unwrap();
    assert!(
        x.starts_with("<?xml") && x.contains("<testsuites") && x.contains("<failure"),
        "{x}"
    );
    assert!(x.contains("Deployment shop/web"));
}

#[test]
fn stdin_and_json_lists() {
    let o = run_stdin(&["audit", "-f", "-"], SAFE);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let list = r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":{"selector":{},"template":{"spec":{"containers":[{"name":"c","image":"nginx"}]}}}}]}"#;
    let o = run_stdin(&["audit", "-f", "-", "-o", "json"], list);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["findings"][0]["file"], "<stdin>");
}

#[test]
fn malformed_documents_are_reported_and_the_rest_audited() {
    let dir = tempfile::tempdir().unwrap();
    let bad = format!(
        "{SAFE}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: broken\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: typed}}\nspec:\n  replicas: three\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: after}}\nspec:\n  selector: {{}}\n  template:\n    spec:\n      containers: [{{name: c, image: nginx}}]\n"
    );
    let f = write(dir.path(), "mixed.yaml", &bad);
    let o = run(&["audit", "-f", f.to_str().unwrap()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    let lines = SAFE.lines().count();
    // The unclosed flow mapping is reported in mixed.yaml near where it starts…
    assert!(
        t.contains("mixed.yaml:") && t.contains("invalid YAML"),
        "{t}"
    );
    // …the wrong type names the field…
    assert!(t.contains("Deployment typed: field spec.replicas"), "{t}");
    // …and the document after both was still audited.
    assert!(t.contains("Deployment after"), "{t}");
    assert!(lines > 10);
}

#[test]
fn unreadable_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let o = run(&[
        "audit",
        "-f",
        missing.to_str().unwrap(),
        "-f",
        "examples/safe/shop.yaml",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("nope.yaml: cannot read"), "{}", text(&o));
    let bin = dir.path().join("bin.yaml");
    std::fs::write(&bin, [0xff, 0xfe, 0x00, 0x41]).unwrap();
    let o = run(&["audit", "-f", bin.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("not UTF-8"), "{}", text(&o));
    // A 9 MiB document is refused with a message, not parsed.
    let huge = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big}}\ndata:\n  blob: \"{}\"\n",
        "x".repeat(9 << 20)
    );
    let f = write(dir.path(), "huge.yaml", &huge);
    let o = run(&["audit", "-f", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("byte limit"), "{}", text(&o));
}

#[test]
fn recursion_does_not_follow_directory_links() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("apps");
    std::fs::create_dir(&sub).unwrap();
    write(&sub, "shop.yaml", SAFE);
    std::os::unix::fs::symlink(dir.path(), sub.join("loop")).unwrap();
    let o = run(&[
        "audit",
        "-R",
        "-f",
        dir.path().to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["workloads"], 1,
        "the linked directory is not walked again"
    );
}

#[test]
fn empty_and_foreign_documents_are_skipped_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "empty.yaml", "");
    let g = write(
        dir.path(),
        "crd.yaml",
        "---\n# nothing\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    );
    let o = run(&[
        "audit",
        "-f",
        f.to_str().unwrap(),
        "-f",
        g.to_str().unwrap(),
        "--allow-empty",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("0 workload(s) in 2 object(s)"),
        "{}",
        text(&o)
    );
    // Without --allow-empty, an audit that found no workload checked nothing: exit 2.
    let o = run(&[
        "audit",
        "-f",
        f.to_str().unwrap(),
        "-f",
        g.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no workload found"), "{}", text(&o));
}

#[test]
fn bad_policy_file_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "policy.yaml",
        "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\nspec:\n  rules:\n    RS101: enforse\n",
    );
    let o = run(&[
        "audit",
        "-f",
        "examples/safe",
        "--policy",
        p.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(t.contains("policy.yaml") && t.contains("line 5"), "{t}");
    let o = run(&[
        "audit",
        "-R",
        "-f",
        "examples/unsafe",
        "--policy",
        "examples/policy.yaml",
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // The example policy enforces RS102.
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "RS102" && f["severity"] == "error")
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&["audit"]).status.code(), Some(2));
    assert_eq!(
        run(&["audit", "-f", "x", "-o", "html"]).status.code(),
        Some(2)
    );
    assert_eq!(run(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn plan_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "d.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 10\n  strategy: {rollingUpdate: {maxSurge: 25%, maxUnavailable: 25%}}\n  selector: {}\n  template: {spec: {containers: [{name: c, image: a:1}]}}\n",
    );
    let o = run(&["plan", "-f", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("at most 13 pods, at least 8 available"), "{t}");
    assert!(
        t.contains("scale new up to 3") && t.contains("scale old down to 8"),
        "{t}"
    );
    let o = run(&["plan", "-f", f.to_str().unwrap(), "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["plan"]["maxPods"], 13);
    assert_eq!(v[0]["plan"]["minAvailable"], 8);
}

#[test]
fn paths_as_arguments_like_pre_commit_passes_them() {
    let o = run(&[
        "audit",
        "examples/safe/shop.yaml",
        "examples/unsafe/web.yaml",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("examples/unsafe/web.yaml:3"),
        "{}",
        text(&o)
    );
    // Mixed with -f.
    let o = run(&[
        "audit",
        "-f",
        "examples/safe/shop.yaml",
        "examples/unsafe/batch.yaml",
    ]);
    assert!(
        text(&o).contains("examples/unsafe/batch.yaml"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("3 workload(s)") || text(&o).contains("workload(s) in"));
}

#[test]
fn empty_inputs_are_not_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.yaml", "");
    // An empty file, and empty stdin (helm failed before the pipe): exit 2, said clearly.
    for o in [
        run(&["audit", "-f", empty.to_str().unwrap()]),
        run_stdin(&["audit", "-f", "-"], ""),
    ] {
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains("no workload found"), "{}", text(&o));
    }
    let o = run_stdin(&["audit", "-f", "-", "--allow-empty"], "");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn charts_and_kustomizations_are_skipped_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let chart = root.join("charts/web");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    write(
        &chart,
        "Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    );
    write(&chart, "values.yaml", "replicas: 2\n");
    write(
        &chart.join("templates"),
        "deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n{{- include \"x\" . }}\n",
    );
    let base = root.join("base");
    std::fs::create_dir_all(&base).unwrap();
    write(
        &base,
        "kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [shop.yaml]\n",
    );
    write(&base, "shop.yaml", SAFE);
    let o = run(&["audit", "-R", "-f", root.to_str().unwrap(), "-o", "json"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // The kustomization is not counted as an object; the chart is not parsed at all.
    assert_eq!(v["objects"], 4, "{v}");
    assert_eq!(v["errors"].as_array().unwrap().len(), 0, "{v}");
    let notes = v["notices"].to_string();
    assert!(
        notes.contains("a Helm chart") && notes.contains("helm template"),
        "{notes}"
    );
    assert!(
        notes.contains("a kustomization") && notes.contains("kubectl kustomize"),
        "{notes}"
    );
    // Named one by one (as pre-commit does), the template is skipped too.
    let o = run(&[
        "audit",
        chart.join("templates/deployment.yaml").to_str().unwrap(),
        base.join("shop.yaml").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("a Helm chart"), "{}", text(&o));
}

#[test]
fn exclude_globs() {
    let o = run(&[
        "audit",
        "-R",
        "-f",
        "examples",
        "--exclude",
        "examples/unsafe",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(&[
        "audit",
        "-R",
        "-f",
        "examples",
        "--exclude",
        "web.yaml",
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let files: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file"].as_str().unwrap())
        .collect();
    assert!(
        !files.is_empty() && files.iter().all(|f| !f.ends_with("web.yaml")),
        "{files:?}"
    );
    let o = run(&["audit", "-R", "-f", "examples", "--exclude", "*"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "everything excluded: {}",
        text(&o)
    );
}

#[test]
fn junit_has_a_passing_case_per_clean_workload() {
    let o = run(&["audit", "-f", "examples/safe", "-o", "junit"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let x = String::from_utf8(o.stdout).unwrap();
    assert!(
        x.contains("<testsuites name=\"rollout-safe\" tests=\"2\""),
        "{x}"
    );
    assert!(
        x.contains("<testcase name=\"Deployment shop/shop\"")
            && x.contains("<testcase name=\"Deployment shop/worker\""),
        "{x}"
    );
    assert!(!x.contains("<failure"), "{x}");
}

#[test]
fn the_report_is_the_same_whatever_the_thread_count() {
    let one = run(&[
        "audit",
        "-R",
        "-f",
        "examples",
        "-f",
        "tests/fixtures/manifests",
        "-o",
        "json",
        "-j",
        "1",
    ]);
    for jobs in ["2", "4", "16"] {
        let many = run(&[
            "audit",
            "-R",
            "-f",
            "examples",
            "-f",
            "tests/fixtures/manifests",
            "-o",
            "json",
            "-j",
            jobs,
        ]);
        assert_eq!(one.stdout, many.stdout, "-j {jobs}");
        assert_eq!(one.status.code(), many.status.code());
    }
    let v: serde_json::Value = serde_json::from_slice(&one.stdout).unwrap();
    assert!(v["findings"].as_array().unwrap().len() > 20);
}
