use clap::Parser;
use kubectl_rollout_safe::commands::app::{self, App};
use kubectl_rollout_safe::error::Error;

fn main() -> std::process::ExitCode {
    let cli = App::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ROLLOUT_SAFE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(Error::Runtime)
        .and_then(|runtime| runtime.block_on(app::run(cli)));
    std::process::ExitCode::from(kubectl_rollout_safe::conclude(&result) as u8)
}
