//! Every argument of every subcommand has a help text: the test walks clap's command tree (as
//! `--help` shows it) and names each argument without one, with the command it belongs to.

use clap::CommandFactory;
use kubectl_rollout_safe::commands::app::App;

/// `(command path, argument id)` of every argument without help, below `cmd`.
fn missing_help(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
    for arg in cmd.get_arguments() {
        // clap's own `--help` and `--version` carry their text.
        if arg.is_hide_set() {
            continue;
        }
        let has_help = arg
            .get_help()
            .is_some_and(|h| !h.to_string().trim().is_empty())
            || arg
                .get_long_help()
                .is_some_and(|h| !h.to_string().trim().is_empty());
        if !has_help {
            out.push(format!("{path}: {}", arg.get_id()));
        }
    }
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        missing_help(sub, &format!("{path} {}", sub.get_name()), out);
    }
}

#[test]
fn every_argument_has_help_text() {
    let mut cmd = App::command();
    // Builds the tree as `--help` does (global arguments propagated, `--help` added).
    cmd.build();
    let mut missing = Vec::new();
    missing_help(&cmd, "kubectl rollout-safe", &mut missing);
    assert!(
        missing.is_empty(),
        "arguments without help text:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn the_walk_finds_an_argument_without_help() {
    // The check itself can fail: a command with a bare argument is reported.
    let cmd = clap::Command::new("probe")
        .arg(clap::Arg::new("bare").long("bare"))
        .arg(clap::Arg::new("told").long("told").help("has help"));
    let mut missing = Vec::new();
    missing_help(&cmd, "probe", &mut missing);
    assert_eq!(missing, vec!["probe: bare".to_owned()]);
}
