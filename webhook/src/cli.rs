//! Command line: `rollout-safe-webhook serve ...`, every flag also from a `ROLLOUT_SAFE_*`
//! environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

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

/// Everything `serve` needs. Tests build it directly (see [`ServeArgs::new`]).
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// PEM certificate chain (leaf first). Reloaded when it changes.
    #[arg(long, env = "ROLLOUT_SAFE_TLS_CERT", value_name = "FILE")]
    pub tls_cert: PathBuf,
    /// PEM private key of the certificate. Reloaded when it changes.
    #[arg(long, env = "ROLLOUT_SAFE_TLS_KEY", value_name = "FILE")]
    pub tls_key: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// HTTPS address for /mutate, /validate, /healthz and /readyz.
    #[arg(long, env = "ROLLOUT_SAFE_ADDR", default_value = "0.0.0.0:8443")]
    pub addr: SocketAddr,
    /// Plain-HTTP address for /metrics (and /healthz, /readyz).
    #[arg(
        long,
        env = "ROLLOUT_SAFE_METRICS_ADDR",
        default_value = "0.0.0.0:9090"
    )]
    pub metrics_addr: SocketAddr,
    /// Longest time one request may take, body read included, before a 503. Keep it below the
    /// webhook's timeoutSeconds so the log says why; the API server then applies failurePolicy.
    #[arg(long, env = "ROLLOUT_SAFE_REQUEST_TIMEOUT", default_value = "4s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// After SIGTERM, how long in-flight requests may take to finish before the process exits.
    #[arg(long, env = "ROLLOUT_SAFE_DRAIN_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// How often the certificate, key and policy files are checked for changes.
    #[arg(long, env = "ROLLOUT_SAFE_RELOAD_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub reload_interval: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// RolloutPolicy YAML file (default: the built-in policy). Reloaded when it changes; a bad
    /// new version is logged and counted, and the last good one stays in force.
    #[arg(long, env = "ROLLOUT_SAFE_POLICY", value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// When the webhook cannot reach a decision (an internal error), allow the request with a
    /// warning instead of answering 500 (which the API server turns into failurePolicy).
    #[arg(long, env = "ROLLOUT_SAFE_FAIL_OPEN")]
    pub fail_open: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Kubernetes version the mutations target, e.g. `1.29` (decides whether RS201 may use the
    /// native preStop sleep action, Kubernetes >= 1.30). Default: ask the API server when running
    /// in a cluster or with --cluster-lookups, else assume a current version.
    #[arg(long, env = "ROLLOUT_SAFE_KUBERNETES_VERSION", value_name = "VERSION")]
    pub kubernetes_version: Option<String>,
    /// Watch PodDisruptionBudgets, HorizontalPodAutoscalers and Pods for RS601, RS602 and the
    /// RS405 HPA exemption (needs the chart's read-only ClusterRole).
    #[arg(long, env = "ROLLOUT_SAFE_CLUSTER_LOOKUPS")]
    pub cluster_lookups: bool,
}

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

impl ServeArgs {
    /// Defaults for everything but the certificate files, as `serve --tls-cert C --tls-key K`
    /// would give with no environment.
    pub fn new(tls_cert: impl Into<PathBuf>, tls_key: impl Into<PathBuf>) -> Self {
        ServeArgs {
            tls: TlsArgs {
                tls_cert: tls_cert.into(),
                tls_key: tls_key.into(),
            },
            server: ServerArgs {
                addr: SocketAddr::from(([0, 0, 0, 0], 8443)),
                metrics_addr: SocketAddr::from(([0, 0, 0, 0], 9090)),
                request_timeout: Duration::from_secs(4),
                drain_timeout: Duration::from_secs(20),
                reload_interval: Duration::from_secs(2),
            },
            policy: PolicyArgs {
                policy: None,
                fail_open: false,
            },
            cluster: ClusterArgs {
                kubernetes_version: None,
                cluster_lookups: false,
            },
            log: LogArgs {
                log_format: LogFormat::Text,
            },
        }
    }
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
