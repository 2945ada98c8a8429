//! Command line: `rollout-safe-webhook serve ...`, every flag also from a `ROLLOUT_SAFE_*`
//! environment variable.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::log::init_tracing;
use crate::server::{ServeArgs, serve, shutdown_signal};

#[derive(Debug, Parser)]
#[command(
    name = "rollout-safe-webhook",
    version,
    about = "Admission webhook that makes Deployment, StatefulSet and DaemonSet rollouts safe by default"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve /mutate and /validate over HTTPS, and /metrics over plain HTTP.
    Serve(ServeArgs),
}

/// The binary's whole `main`: parse, log, serve until SIGTERM/SIGINT, exit 0 after draining.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            init_tracing(args.log.log_format);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("rollout-safe-webhook: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            // The signal handlers exist before anything slow (certificate loading, version
            // discovery, binding), so an early SIGTERM still ends in a clean exit 0.
            let served = runtime.block_on(async {
                let shutdown = shutdown_signal();
                serve(args, shutdown).await
            });
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "rollout-safe-webhook cannot serve");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
