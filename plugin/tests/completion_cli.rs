//! Shell completion, as shells and kubectl use it: the generated bash script run in a real bash
//! (`complete -p`, then the completion function called with simulated `COMP_WORDS`), and
//! kubectl's plugin completion protocol (`kubectl_complete-rollout_safe ARGS… WORD`, Cobra's
//! `__complete` answer) with workload names served by the stand-in API server, and within the
//! 1 s budget against a server that accepts connections and never answers.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{PLUGIN, TestResult, good_with};
use rollout_safe_standin::Plugin;
use rollout_safe_standin::scenarios::NAMESPACE;
use serde_json::json;

/// Runs `script` in a non-interactive bash after sourcing the generated bash completion.
fn bash_with_completion(dir: &Path, script: &str) -> (String, String, i32) {
    let generated = dir.join("kubectl-rollout_safe.bash");
    let out = Command::new(PLUGIN)
        .args(["completion", "bash"])
        .output()
        .expect("the plugin runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&generated, &out.stdout).unwrap();
    let out = Command::new("bash")
        .arg("--norc")
        .arg("--noprofile")
        .arg("-c")
        .arg(format!("set -u\nsource {}\n{script}", generated.display()))
        .output()
        .expect("bash runs");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// What the completion function offers for the command line `words` (the last one being
/// completed), as bash would call it.
fn bash_complete(dir: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "COMP_WORDS=(kubectl-rollout_safe {words})\n\
         COMP_CWORD={cword}\n\
         COMP_LINE=\"${{COMP_WORDS[*]}}\"\n\
         COMP_POINT=${{#COMP_LINE}}\n\
         fn=$(complete -p kubectl-rollout_safe | sed -E 's/.*-F ([^ ]+) .*/\\1/')\n\
         prev=${{COMP_WORDS[COMP_CWORD-1]}}\n\
         \"$fn\" kubectl-rollout_safe \"${{COMP_WORDS[COMP_CWORD]}}\" \"$prev\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        words = quoted.join(" "),
        cword = words.len(),
    );
    let (stdout, stderr, code) = bash_with_completion(dir, &script);
    assert_eq!(code, 0, "bash failed for {words:?}: {stderr}");
    stdout
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn generated_bash_script_completes_subcommands_flags_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, stderr, code) =
        bash_with_completion(dir.path(), "complete -p kubectl-rollout_safe");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("-F _kubectl__rollout_safe")
            && stdout.trim_end().ends_with("kubectl-rollout_safe"),
        "{stdout}"
    );

    assert_eq!(bash_complete(dir.path(), &["st"]), vec!["status"]);
    let all = bash_complete(dir.path(), &[""]);
    for sub in [
        "audit",
        "plan",
        "update",
        "status",
        "history",
        "undo",
        "blue-green",
        "canary",
        "completion",
    ] {
        assert!(all.iter().any(|c| c == sub), "{sub} missing from {all:?}");
    }
    assert_eq!(
        bash_complete(dir.path(), &["update", "deploy/web", "--ima"]),
        vec!["--image"]
    );
    // A global flag after the subcommand.
    assert_eq!(
        bash_complete(dir.path(), &["status", "--kubecon"]),
        vec!["--kubeconfig"]
    );
    assert_eq!(
        bash_complete(dir.path(), &["history", "deploy/web", "-o", ""]),
        vec!["table", "json", "yaml"]
    );
    // clap's script offers the flags beside a positional's values.
    let shells = bash_complete(dir.path(), &["completion", ""]);
    for shell in ["bash", "zsh", "fish"] {
        assert!(
            shells.iter().any(|c| c == shell),
            "{shell} missing from {shells:?}"
        );
    }
    assert!(!shells.iter().any(|c| c == "audit"), "{shells:?}");
    // A nested subcommand.
    let bg = bash_complete(dir.path(), &["blue-green", "f"]);
    assert_eq!(bg, vec!["finish"]);
}

/// A directory holding `kubectl_complete-rollout_safe`, a symlink to the plugin, as the README
/// says to install it.
fn completion_executable(dir: &Path) -> PathBuf {
    let link = dir.join("kubectl_complete-rollout_safe");
    std::os::unix::fs::symlink(PLUGIN, &link).unwrap();
    link
}

/// Runs the completion executable as kubectl does: the words after the plugin name, the user's
/// environment (here `KUBECONFIG` naming `kubeconfig`).
fn kubectl_completes(program: &Path, kubeconfig: &Path, words: &[&str]) -> (Vec<String>, String) {
    let run = Plugin::new(program)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("ROLLOUT_SAFE_LOG")
        .timeout(Duration::from_secs(20))
        .run(words)
        .expect("the completion executable runs");
    run.assert_code(0);
    assert_eq!(
        run.stderr, "",
        "nothing on stderr: kubectl shows it on the terminal"
    );
    let mut lines: Vec<String> = run.stdout.lines().map(str::to_owned).collect();
    let directive = lines.pop().unwrap_or_default();
    (lines, directive)
}

#[test]
fn kubectl_plugin_completion_lists_workloads_from_the_cluster() -> TestResult {
    let (standin, _) = good_with(|mut b| {
        b.store()
            .put(
                "daemonsets",
                json!({"metadata": {"name": "agent", "generation": 1},
                    "spec": {"selector": {"matchLabels": {"app": "agent"}},
                        "template": {"metadata": {"labels": {"app": "agent"}},
                            "spec": {"containers": [{"name": "agent", "image": "agent:1.0"}]}}}}),
            )
            .expect("the DaemonSet is stored");
        b
    })?;
    let dir = tempfile::tempdir()?;
    let program = completion_executable(dir.path());
    let kubeconfig = standin.kubeconfig();

    let (lines, directive) = kubectl_completes(&program, kubeconfig, &["status", ""]);
    assert_eq!(directive, ":4", "{lines:?}");
    let in_ns = format!("in {NAMESPACE}");
    assert!(
        lines.contains(&format!("deploy/good\tDeployment {in_ns}")),
        "{lines:?}"
    );
    assert!(
        lines.contains(&format!("sts/db\tStatefulSet {in_ns}")),
        "{lines:?}"
    );
    assert!(
        lines.contains(&format!("ds/agent\tDaemonSet {in_ns}")),
        "{lines:?}"
    );

    // The typed kind limits the lists, in the user's spelling.
    let (lines, _) = kubectl_completes(&program, kubeconfig, &["undo", "statefulset/"]);
    assert_eq!(lines, vec![format!("statefulset/db\tStatefulSet {in_ns}")]);
    let (lines, _) = kubectl_completes(&program, kubeconfig, &["update", "deploy/go"]);
    assert_eq!(lines, vec![format!("deploy/good\tDeployment {in_ns}")]);
    // Another namespace: nothing there.
    let (lines, directive) =
        kubectl_completes(&program, kubeconfig, &["-n", "elsewhere", "status", ""]);
    assert_eq!((lines.len(), directive.as_str()), (0, ":4"), "{lines:?}");
    // The requests were lists of the namespace asked for, nothing written.
    assert!(standin.writes().is_empty());
    assert!(
        standin
            .requests()
            .iter()
            .any(|r| r.uri().contains("/namespaces/elsewhere/deployments")),
        "{:?}",
        standin
            .requests()
            .iter()
            .map(|r| r.uri())
            .collect::<Vec<_>>()
    );

    // Subcommands and flags need no cluster; `-f` leaves file names to the shell (directive 0).
    let (lines, directive) = kubectl_completes(&program, kubeconfig, &["bl"]);
    assert_eq!(
        lines,
        vec!["blue-green\tBlue-green on a plain Deployment and Service"]
    );
    assert_eq!(directive, ":4");
    let (lines, _) = kubectl_completes(&program, kubeconfig, &["update", "deploy/good", "--dry"]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("--dry-run"), "{lines:?}");
    let (lines, directive) = kubectl_completes(&program, kubeconfig, &["audit", "-f", ""]);
    assert_eq!((lines.len(), directive.as_str()), (0, ":0"), "{lines:?}");
    // Contexts come from the kubeconfig.
    let (lines, _) = kubectl_completes(&program, kubeconfig, &["status", "--context", ""]);
    assert_eq!(lines, vec!["standin\tcontext"]);

    // The same protocol through the plugin itself (`__complete`).
    let (lines, directive) = kubectl_completes(
        Path::new(PLUGIN),
        kubeconfig,
        &["__complete", "history", "deploy/"],
    );
    assert_eq!(lines, vec![format!("deploy/good\tDeployment {in_ns}")]);
    assert_eq!(directive, ":4");
    Ok(())
}

#[test]
fn kubectl_plugin_completion_keeps_to_its_budget_when_the_server_stalls() -> TestResult {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let held = std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().take(16) {
            match conn {
                Ok(c) => held.push(c),
                Err(_) => break,
            }
        }
        held
    });
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        rollout_safe_standin::kubeconfig_text(&format!("http://127.0.0.1:{port}"), "shop"),
    )?;
    let program = completion_executable(dir.path());
    let started = Instant::now();
    let (lines, directive) = kubectl_completes(&program, &kubeconfig, &["status", ""]);
    let took = started.elapsed();
    assert_eq!((lines.len(), directive.as_str()), (0, ":4"), "{lines:?}");
    assert!(
        took >= Duration::from_millis(900),
        "it answered in {took:?}: did it ask the server at all?"
    );
    assert!(
        took < Duration::from_millis(2500),
        "the 1 s budget was not kept: {took:?}"
    );
    drop(held);
    Ok(())
}
