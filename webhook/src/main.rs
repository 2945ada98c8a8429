//! `rollout-safe-webhook`: everything lives in the library (see `cli::main`).

fn main() -> std::process::ExitCode {
    rollout_safe_webhook::cli::main()
}
