//! Logging: `--log-format` and the `ROLLOUT_SAFE_LOG` filter.

use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log format; the filter comes from ROLLOUT_SAFE_LOG (default `info`), as for the plugin.
    #[arg(long, env = "ROLLOUT_SAFE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

/// Sets up logging. `ROLLOUT_SAFE_LOG` filters (EnvFilter syntax, default `info`); the chart
/// sets it from `logLevel`.
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("ROLLOUT_SAFE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init: a second call (tests) keeps the first subscriber instead of panicking.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}
