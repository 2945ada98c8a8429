//! `kubectl rollout-safe`: the command-line shell around rollout-safe-policy.

pub mod cli;
pub mod cluster;
pub mod commands;
pub mod display;
pub mod exit;
pub mod input;
pub mod report;
pub mod signals;

pub use exit::{CmdResult, Exit, Failure};

/// Runs a parsed command line.
pub async fn run(cli: cli::Cli) -> CmdResult {
    commands::dispatch(cli).await
}
