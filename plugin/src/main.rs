use clap::Parser;
use kubectl_rollout_safe::commands::app::{self, App};
use kubectl_rollout_safe::exit::Exit;

fn main() -> std::process::ExitCode {
    let cli = App::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ROLLOUT_SAFE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(Exit::Cluster as u8);
        }
    };
    let result = runtime.block_on(app::run(cli));
    std::process::ExitCode::from(kubectl_rollout_safe::conclude(&result) as u8)
}
