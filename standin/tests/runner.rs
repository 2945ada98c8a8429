//! The process runner, with `/bin/sh` standing in for the plugin.

use std::time::{Duration, Instant};

use rollout_safe_standin::{Interrupt, Plugin, RunError, RunOptions, Stdin};

fn sh() -> Plugin {
    Plugin::new("/bin/sh").arg("-c").env("GREETING", "hello")
}

/// Whether a process with this pid is still running (not a zombie either: it was reaped).
fn alive(pid: &str) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn runs_with_args_env_and_stdin() -> Result<(), RunError> {
    let r = sh().run(&["echo \"$GREETING $0\"; echo oops >&2; exit 3", "world"])?;
    r.assert_code(3)
        .assert_stdout_has("hello world")
        .assert_stderr_has("oops");
    let options = RunOptions {
        stdin: Stdin::Bytes(b"from stdin\n".to_vec()),
        interrupt: None,
    };
    sh().run_with(&["cat"], options)?
        .assert_code(0)
        .assert_stdout_has("from stdin");
    let r = sh().env_remove("GREETING").run(&["echo \"[$GREETING]\""])?;
    r.assert_stdout_has("[]");
    Ok(())
}

#[test]
fn a_run_past_its_timeout_is_killed_and_reported() {
    let start = Instant::now();
    let err = sh()
        .timeout(Duration::from_millis(300))
        .run(&["echo $$; echo started >&2; exec sleep 30"])
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10));
    let RunError::TimedOut { stdout, stderr, .. } = &err else {
        panic!("not a timeout: {err}");
    };
    assert_eq!(stderr, "started\n");
    assert!(!alive(stdout.trim()), "the process outlived its timeout");
    assert!(
        err.to_string().contains("did not finish within 300ms"),
        "{err}"
    );
}

#[test]
fn interrupt_when_stderr_says_so_and_kill_on_drop() -> Result<(), RunError> {
    let script =
        "trap 'echo interrupted >&2; exit 4' INT; echo ready >&2; while true; do sleep 0.05; done";
    let interrupt = Interrupt::WhenStderr {
        needle: "ready".into(),
        after: Duration::from_millis(50),
    };
    let r = sh().run_with(
        &[script],
        RunOptions {
            stdin: Stdin::Null,
            interrupt: Some(interrupt),
        },
    )?;
    r.assert_code(4).assert_stderr_has("interrupted");

    let mut running = sh().spawn_with(
        &["echo \"pid $$\" >&2; read line; echo \"got $line\" >&2; exec sleep 30"],
        Stdin::Open,
    )?;
    running.write_stdin(b"go\n")?;
    running.wait_stderr("got go", Duration::from_secs(10))?;
    let err = running
        .wait_stderr("never printed", Duration::from_millis(100))
        .unwrap_err();
    assert!(matches!(err, RunError::NotSeen { .. }), "{err}");
    assert!(matches!(
        running.wait_watching(Duration::ZERO),
        Err(RunError::NoStandin { .. })
    ));
    let stderr = running.stderr_so_far();
    let pid = stderr
        .lines()
        .find_map(|l| l.strip_prefix("pid "))
        .expect("the pid line")
        .to_owned();
    assert!(alive(&pid));
    // Dropped while running (as when a test fails): killed and reaped.
    drop(running);
    assert!(!alive(&pid), "the process outlived its handle");
    Ok(())
}

#[test]
fn a_missing_program_is_an_error_naming_it() {
    let err = Plugin::new("/nonexistent/kubectl-rollout_safe")
        .run(&["version"])
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("/nonexistent/kubectl-rollout_safe"),
        "{err}"
    );
}
