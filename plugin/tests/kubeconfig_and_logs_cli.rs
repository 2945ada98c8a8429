//! How the plugin finds its cluster and what it prints when it cannot reach it, run as a user
//! runs it: `$KUBECONFIG` path lists merged as kubectl merges them (missing files skipped, the
//! first file to set a value wins), one exit code (5) for every kubeconfig problem, and library
//! log lines only on request (`-v`, `ROLLOUT_SAFE_LOG`), never in colour off a terminal, with
//! the server's URL in the connection error.

mod common;

use std::net::TcpListener;
use std::path::Path;

use common::{PLUGIN, TestResult, good};
use rollout_safe_standin::{Plugin, Run};

/// A URL where nothing listens (connection refused).
fn dead_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("its address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// A kubeconfig whose current context is `other`, on a dead server, and which also defines a
/// context `standin` and a cluster `standin` (on the dead server): merged after the stand-in's
/// own kubeconfig, none of it may win.
fn competing_kubeconfig(dead: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: other\n\
         clusters:\n- name: standin\n  cluster: {{server: \"{dead}\"}}\n- name: dead\n  cluster: {{server: \"{dead}\"}}\n\
         contexts:\n- name: standin\n  context: {{cluster: dead, user: bob}}\n- name: other\n  context: {{cluster: dead, user: bob}}\n\
         users:\n- name: bob\n  user: {{token: t}}\n"
    )
}

/// The plugin as a user runs it: no `--kubeconfig`, `$KUBECONFIG` set to `list`, no log filter.
fn with_kubeconfig_env(list: &str) -> Plugin {
    Plugin::new(PLUGIN)
        .env("KUBECONFIG", list)
        .env_remove("ROLLOUT_SAFE_LOG")
        .env("TERM", "dumb")
}

fn path_list(paths: &[&Path]) -> String {
    std::env::join_paths(paths)
        .expect("paths without ':'")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn kubeconfig_list_skips_missing_files_and_the_first_value_wins() -> TestResult {
    let (standin, _) = good()?;
    let dir = tempfile::tempdir()?;
    let dead = dead_server();
    let competing = dir.path().join("competing");
    std::fs::write(&competing, competing_kubeconfig(&dead))?;
    let missing = dir.path().join("not-made-yet");

    // The stand-in's file first: its current-context, context and cluster win.
    let list = path_list(&[&missing, standin.kubeconfig(), &missing, &competing]);
    with_kubeconfig_env(&list)
        .run(&["history", "deploy/good"])?
        .assert_code(0)
        .assert_stdout_has("REVISION");

    // The other way round, the competing file's current-context wins: a dead server, named.
    let list = path_list(&[&competing, standin.kubeconfig()]);
    let run = with_kubeconfig_env(&list).run(&["history", "deploy/good"])?;
    run.assert_code(5).assert_stderr_has(&dead);
    // `--context standin` then takes the competing file's context `standin` (first wins),
    // whose cluster is the dead one, not the stand-in.
    with_kubeconfig_env(&list)
        .run(&["history", "deploy/good", "--context", "standin"])?
        .assert_code(5)
        .assert_stderr_has(&dead);
    Ok(())
}

#[test]
fn every_kubeconfig_problem_exits_5_and_says_what() -> TestResult {
    let (standin, _) = good()?;
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("missing-a");
    let also_missing = dir.path().join("missing-b");

    let run = with_kubeconfig_env(&path_list(&[&missing, &also_missing]))
        .run(&["history", "deploy/good"])?;
    run.assert_code(5)
        .assert_stderr_has("none of the files in $KUBECONFIG exist")
        .assert_stderr_has(&missing.display().to_string())
        .assert_stderr_has(&also_missing.display().to_string());

    // A file named with --kubeconfig must exist, as with kubectl.
    let run = with_kubeconfig_env(&standin.kubeconfig().display().to_string()).run(&[
        "history",
        "deploy/good",
        "--kubeconfig",
        &missing.display().to_string(),
    ])?;
    run.assert_code(5)
        .assert_stderr_has("kubeconfig")
        .assert_stderr_has(&missing.display().to_string());

    // An unknown context: the same code, and the contexts there are.
    let run = with_kubeconfig_env(&standin.kubeconfig().display().to_string()).run(&[
        "history",
        "deploy/good",
        "--context",
        "nope",
    ])?;
    run.assert_code(5)
        .assert_stderr_has("context \"nope\" is not in the kubeconfig (contexts: standin)");
    Ok(())
}

fn assert_no_colour(run: &Run) {
    assert!(
        !run.stderr.contains('\u{1b}'),
        "ANSI escape codes off a terminal:\n{}",
        run.stderr
    );
}

#[test]
fn library_logs_only_on_request_never_coloured_off_a_terminal() -> TestResult {
    let dir = tempfile::tempdir()?;
    let dead = dead_server();
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        rollout_safe_standin::kubeconfig_text(&dead, "shop"),
    )?;
    let plugin = with_kubeconfig_env(&kubeconfig.display().to_string());

    // Plain: the command's own error, naming the server, and no library lines.
    let run = plugin.run(&["history", "deploy/web"])?;
    run.assert_code(5)
        .assert_stderr_has(&format!("(API server {dead}/)"))
        .assert_stderr_has("Connection refused")
        .assert_stderr_lacks("kube_client");
    assert_no_colour(&run);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);

    // -v: kube's own lines too, without colour.
    let run = plugin.run(&["history", "deploy/web", "-v"])?;
    run.assert_code(5)
        .assert_stderr_has("ERROR kube_client")
        .assert_stderr_has(&format!("(API server {dead}/)"));
    assert_no_colour(&run);

    // ROLLOUT_SAFE_LOG, a filter, does the same.
    let run = plugin
        .clone()
        .env("ROLLOUT_SAFE_LOG", "kube_client=error")
        .run(&["history", "deploy/web"])?;
    run.assert_code(5).assert_stderr_has("ERROR kube_client");
    assert_no_colour(&run);
    Ok(())
}
