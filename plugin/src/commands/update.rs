//! `kubectl rollout-safe update`: the safe update (`ops::update`).

use std::time::Duration;

use clap::{Args, ValueEnum};
use rollout_safe_policy::WorkloadKind;

use super::args::{
    GateArgs, GitopsArgs, ImageArgs, PolicyArg, WATCH_EXIT_HELP, WatchArgs, WorkloadArg,
    parse_duration, parse_env,
};
use super::context::Context;
use crate::cluster::refs::WorkloadRef;
use crate::error::Error;
use crate::exit::Outcome;
use crate::ops::sets::update::SetUpdate;
use crate::ops::update::{DryRun, SafeUpdate};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DryRunArg {
    Client,
    Server,
}

#[derive(Debug, Args)]
#[command(after_help = WATCH_EXIT_HELP)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub target: WorkloadArg,
    #[command(flatten)]
    pub images: ImageArgs,
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
    /// Show the change without writing it: `client` (local diff, the default) or `server`
    /// (sent with dryRun=All, so the webhook and the API server validate it).
    #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "client")]
    pub dry_run: Option<DryRunArg>,
    /// Keep judging the new pods (and the metric gates) for this long after the rollout
    /// completes; a failure meanwhile rolls it back.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub bake: Option<Duration>,
    #[command(flatten)]
    pub watch: WatchArgs,
    #[command(flatten)]
    pub gates: GateArgs,
    #[command(flatten)]
    pub policy: PolicyArg,
    #[command(flatten)]
    pub gitops: GitopsArgs,
    /// Test hook (the e2e conflict test): after reading the Deployment, wait for a line on stdin
    /// before the first write.
    #[arg(long, hide = true)]
    pub debug_pause_before_write: bool,
}

pub async fn run(ctx: &Context, args: UpdateArgs) -> Result<Outcome, Error> {
    let target = WorkloadRef::parse(&args.target.workload)?;
    if target.kind != WorkloadKind::Deployment {
        return run_set(ctx, args, target).await;
    }
    let update = SafeUpdate {
        name: target.name,
        images: args.images.parse()?,
        env: parse_env(&args.env)?,
        cause: args.cause,
        no_rollback: args.no_rollback,
        force: args.force,
        dry_run: args.dry_run.map(|d| match d {
            DryRunArg::Client => DryRun::Client,
            DryRunArg::Server => DryRun::Server,
        }),
        watch: args.watch.settings(),
        policy: args.policy.load()?,
        bake: args.bake,
        gates: Some(args.gates.settings()?),
        gitops: args.gitops.settings(),
        pause_before_write: args.debug_pause_before_write,
    };
    let cluster = ctx.kube.connect_one_namespace("update").await?;
    update.run(&ctx.session(cluster)).await
}

/// `update sts/NAME` / `update ds/NAME`.
async fn run_set(ctx: &Context, args: UpdateArgs, target: WorkloadRef) -> Result<Outcome, Error> {
    if args.bake.is_some() {
        return Err(Error::usage(format!(
            "--bake holds a Deployment's new ReplicaSet; for {target}, the update completes when every pod \
             runs the new revision and is ready (and the metric gates passed)"
        )));
    }
    if args.debug_pause_before_write {
        return Err(Error::usage(
            "--debug-pause-before-write is a test hook for Deployments",
        ));
    }
    let update = SetUpdate {
        target,
        images: args.images.parse()?,
        env: parse_env(&args.env)?,
        cause: args.cause,
        no_rollback: args.no_rollback,
        force: args.force,
        dry_run: args.dry_run.map(|d| match d {
            DryRunArg::Client => DryRun::Client,
            DryRunArg::Server => DryRun::Server,
        }),
        watch: args.watch.settings(),
        policy: args.policy.load()?,
        gates: Some(args.gates.settings()?),
        gitops: args.gitops.settings(),
    };
    let cluster = ctx.kube.connect_one_namespace("update").await?;
    update.run(&ctx.session(cluster)).await
}
