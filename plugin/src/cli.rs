//! Command-line surface, composed from small argument structs.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "kubectl rollout-safe",
    bin_name = "kubectl rollout-safe",
    version,
    about = "Safe Kubernetes rollouts: policy-checked updates that watch the pods and roll back on their own, blue-green, canary, undo, and an offline manifest audit.",
    after_help = "Exit codes: 0 success, 1 rollout failed (rolled back unless --no-rollback), 2 bad input or usage, 3 policy violations (audit; or update, blue-green, canary refusing an unsafe spec before writing it), 4 timed out, 5 cluster/API error."
)]
pub struct Cli {
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Cluster connection flags, as kubectl spells them (kubectl does not parse a plugin's flags).
#[derive(Debug, Clone, Default, Args)]
pub struct KubeArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config).
    #[arg(long, global = true, env = "KUBECONFIG", value_name = "FILE")]
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

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check manifests (offline) or live workloads against the rollout policy.
    Audit(AuditArgs),
    /// Show how a rolling update will proceed, step by step.
    Plan(PlanArgs),
    /// Update images/env under the policy, watch the rollout, roll back on failure.
    Update(UpdateArgs),
    /// Watch a rollout, judging it by its pods (crash loops, image pulls, readiness).
    Status(StatusArgs),
    /// Revisions with their change-causes and images.
    History(HistoryArgs),
    /// Roll back to the previous (or a given) revision, guarded and watched.
    Undo(UndoArgs),
    /// Pause a Deployment's rollout.
    Pause(WorkloadArg),
    /// Resume a paused Deployment's rollout.
    Resume(WorkloadArg),
    /// Blue-green on a plain Deployment and Service.
    #[command(name = "blue-green")]
    BlueGreen(BlueGreenArgs),
    /// Canary by replica ratio behind the same Service.
    Canary(CanaryArgs),
    /// Export the policy for in-cluster use without the webhook (admission-policy).
    Export(crate::commands::export::ExportArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    Table,
    Json,
    Sarif,
    Junit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DataFormat {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Any finding fails the audit.
    Warn,
    /// Only findings of rules in enforce mode fail it.
    Enforce,
}

/// The policy file both halves load.
#[derive(Debug, Clone, Default, Args)]
pub struct PolicyArg {
    /// A RolloutPolicy YAML file (default: the built-in defaults).
    #[arg(long, value_name = "FILE", env = "ROLLOUT_SAFE_POLICY")]
    pub policy: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Files or directories to audit; `-` reads stdin. Repeatable.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "PATH",
        required_unless_present = "cluster"
    )]
    pub files: Vec<PathBuf>,
    /// Recurse into directories.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Audit the live workloads of the cluster instead of files.
    #[arg(long, conflicts_with = "files")]
    pub cluster: bool,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = AuditFormat::Table)]
    pub output: AuditFormat,
    #[command(flatten)]
    pub policy: PolicyArg,
    /// The least severe finding that makes the audit fail (exit 3).
    #[arg(long, value_enum, default_value_t = FailOn::Enforce)]
    pub fail_on: FailOn,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// A Deployment in the cluster (deploy/NAME).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub workload: Option<String>,
    /// A manifest file holding Deployments (`-` for stdin).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = DataFormat::Table)]
    pub output: DataFormat,
}

#[derive(Debug, Clone, Args)]
pub struct WorkloadArg {
    /// deploy/NAME, deployment/NAME, deployment.apps/NAME (also sts/ and ds/ where supported).
    pub workload: String,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DryRun {
    Client,
    Server,
}

/// Exit codes of the watching commands.
const WATCH_EXIT_HELP: &str = "Exit codes: 0 rolled out (or paused: it rolls out on resume); 1 the rollout failed \
(rolled back unless --no-rollback); 2 bad input; 3 refused by the policy; 4 timed out (rolled back unless \
--no-rollback) or interrupted with Ctrl-C (nothing is rolled back; the command to watch again or undo is printed); \
5 cluster/API error.";

#[derive(Debug, Args)]
#[command(after_help = WATCH_EXIT_HELP)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub target: WorkloadArg,
    /// CONTAINER=IMAGE; repeatable.
    #[arg(long = "image", value_name = "C=IMG", required = true)]
    pub images: Vec<String>,
    /// CONTAINER:KEY=VALUE (KEY- to remove); repeatable.
    #[arg(long = "env", value_name = "C:K=V")]
    pub env: Vec<String>,
    /// The change-cause to record (default: who and what changed).
    #[arg(long)]
    pub cause: Option<String>,
    /// Leave a failed rollout as it is instead of rolling back.
    #[arg(long)]
    pub no_rollback: bool,
    /// Apply even when the resulting spec violates enforced rules.
    #[arg(long)]
    pub force: bool,
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "client")]
    pub dry_run: Option<DryRun>,
    #[command(flatten)]
    pub watch: WatchArgs,
    #[command(flatten)]
    pub policy: PolicyArg,
    /// Test hook (the e2e conflict test): after reading the Deployment, wait for a line on stdin
    /// before the first write.
    #[arg(long, hide = true)]
    pub debug_pause_before_write: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 complete (without --watch: also still progressing or paused); 1 failed \
(status never rolls back; `undo` does); 2 bad input, or the workload's strategy has no rollout status (OnDelete); \
4 --watch timed out or was interrupted with Ctrl-C; 5 cluster/API error."
)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: WorkloadArg,
    /// Keep watching until the rollout ends (default: report once).
    #[arg(short = 'w', long)]
    pub watch: bool,
    #[command(flatten)]
    pub watch_args: WatchArgs,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = DataFormat::Table)]
    pub output: DataFormat,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub target: WorkloadArg,
    #[arg(long)]
    pub revision: Option<i64>,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = DataFormat::Table)]
    pub output: DataFormat,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 rolled back (or nothing to do); 1 the rolled-back revision failed too; \
2 bad input, no such revision, or the Deployment is paused (resume first); 4 timed out or interrupted with \
Ctrl-C; 5 cluster/API error."
)]
pub struct UndoArgs {
    #[command(flatten)]
    pub target: WorkloadArg,
    #[arg(long)]
    pub to_revision: Option<i64>,
    /// Show what would be rolled back to, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub watch: WatchArgs,
}

// Not `Option<BlueGreenStart>`: clap 4.6 never fills a flattened `Option<T>` whose `T` flattens
// other structs (no implicit group is made for it), so the start arguments are optional fields
// made required unless a subcommand is given.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BlueGreenArgs {
    #[command(subcommand)]
    pub action: Option<BlueGreenAction>,
    #[command(flatten)]
    pub start: BlueGreenStart,
}

/// `blue-green WORKLOAD --service SVC --image C=IMG…`: the new colour is a second Deployment
/// (`NAME-green`, or the original one when green is live) with a `rollout-safe.dev/color` label;
/// the Service's selector is switched once every new pod stayed ready for `--bake`.
#[derive(Debug, Args)]
pub struct BlueGreenStart {
    /// deploy/NAME: the original Deployment (or either colour's).
    #[arg(required = true, value_name = "WORKLOAD")]
    pub workload: Option<String>,
    /// The Service whose selector is switched.
    #[arg(long, required = true)]
    pub service: Option<String>,
    #[arg(long = "image", value_name = "C=IMG", required = true)]
    pub images: Vec<String>,
    /// How long every new pod must stay ready before the switch.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub bake: Duration,
    /// How long the old colour stays scaled after the switch (rollback window).
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub keep_old: Duration,
    /// How long the Service's EndpointSlices may take to show only the new colour after the
    /// switch (else the switch is undone).
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub verify_timeout: Duration,
    /// Bring up the new colour even when its spec violates enforced rules.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub watch: WatchArgs,
    #[command(flatten)]
    pub policy: PolicyArg,
}

#[derive(Debug, Subcommand)]
pub enum BlueGreenAction {
    /// Switch the Service back to the old colour (scaling it back up first if it was scaled down).
    Rollback(BlueGreenActionArgs),
    /// Scale the old colour down now.
    Finish(BlueGreenActionArgs),
    /// Where the blue-green stands.
    Status(BlueGreenStatusArgs),
}

#[derive(Debug, Clone, Args)]
pub struct BlueGreenActionArgs {
    #[command(flatten)]
    pub target: WorkloadArg,
    /// Give up waiting for pods after this long (e.g. 90s, 5m): exit 4.
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub timeout: Duration,
    /// How long the Service's EndpointSlices may take to show the switched-to colour.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub verify_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct BlueGreenStatusArgs {
    #[command(flatten)]
    pub target: WorkloadArg,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = DataFormat::Table)]
    pub output: DataFormat,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct CanaryArgs {
    #[command(subcommand)]
    pub action: Option<CanaryAction>,
    #[command(flatten)]
    pub start: CanaryStart,
}

#[derive(Debug, Args)]
pub struct CanaryStart {
    /// deploy/NAME: the stable Deployment.
    #[arg(required = true, value_name = "WORKLOAD")]
    pub workload: Option<String>,
    #[arg(long = "image", value_name = "C=IMG", required = true)]
    pub images: Vec<String>,
    /// Percentages of the replicas the canary holds at each step (rounded up, at least 1).
    #[arg(long, value_delimiter = ',', default_value = "10,50,100")]
    pub steps: Vec<u32>,
    /// How long every canary pod must stay ready (without restarting more than --max-restarts)
    /// at each step before the next.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub interval: Duration,
    /// Run (and promote) the canary even when the new spec violates enforced rules.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub watch: WatchArgs,
    #[command(flatten)]
    pub policy: PolicyArg,
}

#[derive(Debug, Subcommand)]
pub enum CanaryAction {
    /// Remove the canary and restore the stable replicas.
    Abort(CanaryAbortArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CanaryAbortArgs {
    #[command(flatten)]
    pub target: WorkloadArg,
    /// Give up waiting for the stable pods after this long: exit 4.
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub timeout: Duration,
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like 90s or 5m: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_anywhere() {
        let c = Cli::try_parse_from([
            "kubectl-rollout_safe",
            "status",
            "deploy/web",
            "-n",
            "shop",
            "--context",
            "prod",
        ])
        .unwrap();
        assert_eq!(c.kube.namespace.as_deref(), Some("shop"));
        assert_eq!(c.kube.context.as_deref(), Some("prod"));
        let c = Cli::try_parse_from([
            "x",
            "update",
            "deploy/web",
            "--image",
            "web=a:1",
            "--dry-run",
        ])
        .unwrap();
        let Command::Update(u) = c.command else {
            panic!()
        };
        assert_eq!(u.dry_run, Some(DryRun::Client));
        assert!(parse_duration("5m").is_ok() && parse_duration("nope").is_err());
    }
}
