//! `rollout-safe-webhook`: parse, log, serve until SIGTERM/SIGINT, exit 0 after draining.
//! Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use rollout_safe_webhook::cli::{Cli, Command, init_tracing};

fn main() -> ExitCode {
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
                let shutdown = rollout_safe_webhook::shutdown_signal();
                rollout_safe_webhook::serve(args, shutdown).await
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
