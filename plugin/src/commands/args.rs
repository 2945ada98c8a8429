//! The small argument structs the commands are composed from (flattened into each command's
//! args, kubert's `ServerArgs` style), and their conversion to the typed inputs of `ops`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use kube::config::KubeConfigOptions;
use rollout_safe_policy::RolloutPolicy;
use rollout_safe_policy::gates::parse_gate;
use rollout_safe_policy::gitops::{self, ARGOCD_DEFAULT_TRACKING_LABEL};
use rollout_safe_policy::strategy::edit::{EnvEdit, ImageSet};

use crate::cluster::client::{Cluster, ConnectOptions};
use crate::error::Error;
use crate::input;
use crate::metrics::PrometheusOptions;
use crate::ops::gates::GateSettings;
use crate::ops::session::WatchSettings;

/// Cluster connection flags, as kubectl spells them (kubectl does not parse a plugin's flags).
#[derive(Debug, Clone, Default, Args)]
pub struct KubeArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, a path list in which missing files are
    /// skipped as kubectl skips them, or ~/.kube/config).
    // Not `env = "KUBECONFIG"`: a file given here must exist, one listed there need not.
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Namespace (default: the context's namespace).
    #[arg(short = 'n', long, global = true, value_name = "NS")]
    pub namespace: Option<String>,
    /// Every namespace (audit --cluster, status).
    #[arg(short = 'A', long = "all-namespaces", global = true)]
    pub all_namespaces: bool,
}

impl KubeArgs {
    pub fn connect_options(&self) -> ConnectOptions {
        ConnectOptions {
            kubeconfig: self.kubeconfig.clone(),
            config: KubeConfigOptions {
                context: self.context.clone(),
                ..KubeConfigOptions::default()
            },
            namespace: self.namespace.clone(),
            all_namespaces: self.all_namespaces,
        }
    }

    /// Connects to the cluster these flags name.
    pub async fn connect(&self) -> Result<Cluster, Error> {
        Cluster::connect(&self.connect_options()).await
    }

    /// Connects for a command that acts on one workload in one namespace (`-A` refused).
    pub async fn connect_one_namespace(&self, command: &str) -> Result<Cluster, Error> {
        let cluster = self.connect().await?;
        cluster.reject_all_namespaces(command)?;
        Ok(cluster)
    }
}

/// `-o table|json|yaml`, for commands whose output is data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum DataFormat {
    #[default]
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Clone, Copy, Default, Args)]
pub struct DataOutput {
    /// Output format: table (for people), json or yaml (data on stdout, messages on stderr).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = DataFormat::Table)]
    pub output: DataFormat,
}

/// The policy file both halves load.
#[derive(Debug, Clone, Default, Args)]
pub struct PolicyArg {
    /// A RolloutPolicy YAML file (default: the built-in defaults).
    #[arg(long, value_name = "FILE", env = "ROLLOUT_SAFE_POLICY")]
    pub policy: Option<PathBuf>,
}

impl PolicyArg {
    pub fn load(&self) -> Result<RolloutPolicy, Error> {
        input::load_policy(self.policy.as_deref())
    }
}

#[derive(Debug, Clone, Args)]
pub struct WorkloadArg {
    /// deploy/NAME, deployment/NAME, deployment.apps/NAME (also sts/ and ds/ where supported).
    pub workload: String,
}

/// Living beside Argo CD and Flux: the commands that write a workload refuse a GitOps-owned one
/// (its next sync would revert them) unless told otherwise.
#[derive(Debug, Clone, Args)]
pub struct GitopsArgs {
    /// Act on a workload that Argo CD or Flux manages, although its next sync may revert it
    /// (not implied by --force, which ignores the policy).
    #[arg(long)]
    pub allow_gitops_owned: bool,
    /// Argo CD's tracking label (its `application.instanceLabelKey`); empty when Argo CD tracks
    /// by annotation only.
    #[arg(
        long,
        env = "ROLLOUT_SAFE_ARGOCD_TRACKING_LABEL",
        value_name = "KEY",
        default_value = ARGOCD_DEFAULT_TRACKING_LABEL
    )]
    pub argocd_tracking_label: String,
}

impl GitopsArgs {
    pub fn settings(&self) -> gitops::Settings {
        gitops::Settings {
            tracking: gitops::Tracking::with_label(&self.argocd_tracking_label),
            allow_owned: self.allow_gitops_owned,
        }
    }
}

/// Watching a rollout to its end.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Give up after this long (e.g. 90s, 5m): exit 4.
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub timeout: Duration,
    /// Restarts of a new pod's container that count as failure.
    #[arg(long, default_value_t = 3)]
    pub max_restarts: i32,
    /// How long a running new pod may stay unready before it counts as failure.
    #[arg(long, value_parser = parse_duration, default_value = "120s")]
    pub readiness_budget: Duration,
}

impl WatchArgs {
    pub fn settings(&self) -> WatchSettings {
        WatchSettings {
            timeout: self.timeout,
            max_restarts: self.max_restarts,
            readiness_budget: self.readiness_budget,
        }
    }
}

/// Metric gates: Prometheus queries that must pass before a rollout advances, and fail it
/// (rolled back, aborted, never switched) after `--gate-failures` failed checks in a row.
#[derive(Debug, Clone, Args)]
pub struct GateArgs {
    /// Prometheus base URL for the metric gates (e.g. http://prometheus.monitoring:9090).
    #[arg(long, env = "ROLLOUT_SAFE_PROMETHEUS", value_name = "URL")]
    pub prometheus: Option<String>,
    /// Bearer token for Prometheus.
    #[arg(
        long,
        env = "ROLLOUT_SAFE_PROMETHEUS_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub prometheus_token: Option<String>,
    /// File holding the bearer token for Prometheus.
    #[arg(long, value_name = "FILE", conflicts_with = "prometheus_token")]
    pub prometheus_token_file: Option<PathBuf>,
    /// PEM CA certificate(s) to trust for an https Prometheus.
    #[arg(long, value_name = "FILE")]
    pub prometheus_certificate_authority: Option<PathBuf>,
    /// Do not verify Prometheus's TLS certificate (insecure).
    #[arg(long)]
    pub prometheus_insecure_skip_tls_verify: bool,
    /// How long one Prometheus query may take; longer is no answer (inconclusive).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub prometheus_timeout: Duration,
    /// 'NAME: QUERY OP THRESHOLD' (OP: < <= > >=); repeatable; added to the policy file's
    /// gates. Placeholders: {{namespace}} {{workload}} {{replicaset}} {{pods}} {{color}} {{track}}.
    #[arg(long = "gate", value_name = "'NAME: QUERY OP THRESHOLD'")]
    pub gates: Vec<String>,
    /// How often each gate is checked.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub gate_interval: Duration,
    /// Consecutive failed checks of a gate that fail the rollout (not a total, unlike Argo
    /// Rollouts' failureLimit).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub gate_failures: u32,
}

impl GateArgs {
    pub fn settings(&self) -> Result<GateSettings, Error> {
        let gates = self
            .gates
            .iter()
            .map(|g| parse_gate(g, "--gate"))
            .collect::<Result<Vec<_>, _>>()?;
        if self.gate_interval.is_zero() {
            return Err(Error::usage("--gate-interval must be longer than 0s"));
        }
        Ok(GateSettings {
            prometheus: PrometheusOptions {
                url: self.prometheus.clone().unwrap_or_default(),
                token: self.prometheus_token.clone(),
                token_file: self.prometheus_token_file.clone(),
                ca_file: self.prometheus_certificate_authority.clone(),
                insecure_skip_tls_verify: self.prometheus_insecure_skip_tls_verify,
                timeout: self.prometheus_timeout.max(Duration::from_millis(100)),
            },
            gates,
            interval: self.gate_interval,
            failures: self.gate_failures,
        })
    }
}

/// `--image C=IMG`, repeatable (`*=IMG`: every container).
#[derive(Debug, Clone, Default, Args)]
pub struct ImageArgs {
    /// CONTAINER=IMAGE; repeatable.
    #[arg(long = "image", value_name = "C=IMG", required = true)]
    pub images: Vec<String>,
}

impl ImageArgs {
    pub fn parse(&self) -> Result<Vec<ImageSet>, Error> {
        parse_images(&self.images)
    }
}

/// Exit codes of the watching commands.
pub const WATCH_EXIT_HELP: &str = "Exit codes: 0 rolled out (or paused: it rolls out on resume); 1 the rollout failed \
(rolled back unless --no-rollback); 2 bad input; 3 refused by the policy; 4 timed out (rolled back unless \
--no-rollback) or interrupted with Ctrl-C (nothing is rolled back; the command to watch again or undo is printed); \
5 cluster/API error.";

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like 90s or 5m: {e}"))
}

pub fn parse_images(args: &[String]) -> Result<Vec<ImageSet>, Error> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((c, i))
                if !c.trim().is_empty()
                    && !i.trim().is_empty()
                    && !i.contains(char::is_whitespace) =>
            {
                Ok(ImageSet {
                    container: c.trim().to_owned(),
                    image: i.trim().to_owned(),
                })
            }
            _ => Err(Error::usage(format!(
                "--image {a:?}: expected CONTAINER=IMAGE, e.g. --image web=shop/web:1.5.0"
            ))),
        })
        .collect()
}

pub fn parse_env(args: &[String]) -> Result<Vec<EnvEdit>, Error> {
    args.iter()
        .map(|a| {
            let bad = || {
                Error::usage(format!(
                    "--env {a:?}: expected CONTAINER:KEY=VALUE or CONTAINER:KEY- (to remove)"
                ))
            };
            let (c, rest) = a.split_once(':').ok_or_else(bad)?;
            if c.is_empty() {
                return Err(bad());
            }
            let (key, value) = match rest.split_once('=') {
                Some((k, v)) => (k, Some(v.to_owned())),
                None => (rest.strip_suffix('-').ok_or_else(bad)?, None),
            };
            if key.is_empty() {
                return Err(bad());
            }
            Ok(EnvEdit {
                container: c.to_owned(),
                key: key.to_owned(),
                value,
            })
        })
        .collect()
}

/// Data as pretty JSON.
pub fn json_text(v: &impl serde::Serialize) -> Result<String, Error> {
    serde_json::to_string_pretty(v).map_err(|e| Error::encode("the output as JSON", e))
}

/// Data as YAML.
pub fn yaml_text(v: &impl serde::Serialize) -> Result<String, Error> {
    serde_saphyr::to_string(v).map_err(|e| Error::encode("the output as YAML", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_flags() {
        assert_eq!(
            parse_images(&["app=web:2".into()]).unwrap()[0].image,
            "web:2"
        );
        for bad in ["app", "=web:2", "app=", "app=a b"] {
            assert!(
                matches!(parse_images(&[bad.into()]), Err(Error::Usage(_))),
                "{bad}"
            );
        }
        let e = parse_env(&["app:K=V".into(), "app:X-".into(), "app:E=".into()]).unwrap();
        assert_eq!(e[0].value.as_deref(), Some("V"));
        assert_eq!(e[1].value, None);
        assert_eq!(e[2].value.as_deref(), Some(""));
        for bad in ["app", "app:K", ":K=V", "app:=V", "app:-"] {
            assert!(
                matches!(parse_env(&[bad.into()]), Err(Error::Usage(_))),
                "{bad}"
            );
        }
        assert!(parse_duration("5m").is_ok() && parse_duration("nope").is_err());
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
    }
}
