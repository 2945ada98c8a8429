//! The pre-commit hook (`.pre-commit-hooks.yaml`), run by pre-commit itself (from PyPI,
//! installed into `$ROLLOUT_SAFE_TOOLS`, default `.tools/`, on first use) in a temporary git
//! repository: a safe manifest passes, an unsafe one fails the hook with its findings, and a
//! Helm chart's templates and a commit without workloads do not fail it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `pre-commit` from PyPI, in a venv of its own under the tools directory.
fn pre_commit() -> PathBuf {
    let tools = std::env::var_os("ROLLOUT_SAFE_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".tools"));
    let venv = tools.join("pre-commit-venv");
    let exe = venv.join("bin/pre-commit");
    if exe.exists() {
        return exe;
    }
    std::fs::create_dir_all(&tools).unwrap();
    let run = |cmd: &mut Command| {
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{cmd:?} failed:\n{}", text(&o));
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "pre-commit",
    ]));
    exe
}

fn git(dir: &Path, args: &[&str]) {
    let o = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "git {args:?}:\n{}", text(&o));
}

#[test]
fn the_hook_passes_safe_manifests_and_fails_unsafe_ones() {
    let pre_commit = pre_commit();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "--quiet"]);
    git(&repo, &["config", "user.email", "test@example.com"]);
    git(&repo, &["config", "user.name", "test"]);
    let examples = workspace().join("examples");
    std::fs::copy(examples.join("safe/shop.yaml"), repo.join("safe.yaml")).unwrap();
    std::fs::copy(examples.join("unsafe/web.yaml"), repo.join("unsafe.yaml")).unwrap();
    std::fs::write(
        repo.join("config.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n",
    )
    .unwrap();
    let templates = repo.join("chart/templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(
        repo.join("chart/Chart.yaml"),
        "apiVersion: v2\nname: chart\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(
        templates.join("deployment.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n{{- include \"x\" . }}\n",
    )
    .unwrap();
    git(&repo, &["add", "."]);

    // The plugin built for this test run is the one on PATH.
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_kubectl-rollout_safe"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let hook = |files: &[&str]| {
        let mut cmd = Command::new(&pre_commit);
        cmd.current_dir(&repo)
            .env("PATH", &path)
            .env("PRE_COMMIT_HOME", dir.path().join("cache"))
            .env("PRE_COMMIT_COLOR", "never")
            .args(["try-repo"])
            .arg(workspace())
            .args(["rollout-safe-audit", "--verbose", "--files"])
            .args(files);
        cmd.output().unwrap()
    };

    let o = hook(&["safe.yaml"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("Passed"), "{}", text(&o));

    // The unsafe manifest fails the hook with its findings; the chart template is skipped
    // with a note instead of failing to parse.
    let o = hook(&[
        "safe.yaml",
        "unsafe.yaml",
        "config.yaml",
        "chart/templates/deployment.yaml",
    ]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("Failed"), "{t}");
    assert!(t.contains("unsafe.yaml:3") && t.contains("RS401"), "{t}");
    assert!(t.contains("Helm chart"), "{t}");
    assert!(!t.contains("invalid YAML"), "{t}");

    // A commit that touches no workload passes.
    let o = hook(&["config.yaml"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}
