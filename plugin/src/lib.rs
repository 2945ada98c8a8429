//! `kubectl rollout-safe`: the command-line shell around rollout-safe-policy.
//!
//! Layers, each importing only those below it (ARCHITECTURE.md): `commands` (clap args,
//! rendering) → `ops` (the operations, typed inputs, an [`exit::Outcome`]) → `cluster` (API
//! I/O only), and `metrics` (Prometheus's HTTP API only, importing nothing of the plugin).
//! Beside them: `error` and `exit` (every error, and the one mapping to exit
//! codes), `text` and `display` (how things are shown), `interrupt` and `signals` (Ctrl-C),
//! `input` and `report` (files in, audit reports out).

pub mod audit_files;
pub mod cluster;
pub mod commands;
pub mod display;
pub mod error;
pub mod exit;
pub mod input;
pub mod interrupt;
pub mod metrics;
pub mod ops;
pub mod policy_report;
pub mod report;
pub mod signals;
pub mod text;

#[cfg(test)]
mod layering;
#[cfg(test)]
mod tls_causes;

/// Prints how the command ended (an error with its whole cause chain, unless already printed)
/// and returns its exit code.
pub fn conclude(result: &Result<exit::Outcome, error::Error>) -> exit::Exit {
    if let Err(e) = result
        && !e.is_reported()
    {
        eprintln!("error: {}", error::chain(e));
    }
    exit::exit_code(result)
}
