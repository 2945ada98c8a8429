use std::io::IsTerminal;

use clap::{CommandFactory, Parser};
use kubectl_rollout_safe::commands::app::{self, App};
use kubectl_rollout_safe::commands::completion;
use kubectl_rollout_safe::error::Error;

fn main() -> std::process::ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // kubectl's plugin completion (`kubectl_complete-rollout_safe`, or `__complete`): answered
    // before clap parses anything, and with no logging (its stderr reaches the terminal).
    if let Some(words) = completion::protocol_words(&argv) {
        return completion::serve(App::command(), &words);
    }
    let cli = App::parse_from(argv);
    init_logging(cli.verbose);
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Error::Runtime)
        .and_then(|runtime| runtime.block_on(app::run(cli)));
    std::process::ExitCode::from(kubectl_rollout_safe::conclude(&result) as u8)
}

/// Library log lines (kube's, hyper's) are for debugging: off unless `-v` or `ROLLOUT_SAFE_LOG`
/// asks for them, since every error the user needs is reported by the command itself, with the
/// server's URL. Colour only on a terminal, and never with `NO_COLOR`.
fn init_logging(verbose: u8) {
    let filter = match tracing_subscriber::EnvFilter::try_from_env("ROLLOUT_SAFE_LOG") {
        Ok(filter) => filter,
        Err(_) => match verbose {
            0 => "off",
            1 => "warn",
            2 => "info",
            _ => "debug",
        }
        .into(),
    };
    let stderr = std::io::stderr();
    let colour = stderr.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .init();
}
