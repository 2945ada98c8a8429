//! `kubectl rollout-safe canary`: a canary by replica ratio behind the same Service for a
//! Deployment (`ops::canary`), by partition for a StatefulSet (`ops::sets::canary`).

use std::time::Duration;

use clap::{Args, Subcommand};
use rollout_safe_policy::WorkloadKind;
use rollout_safe_policy::strategy::canary::validate_steps;

use super::args::{
    GateArgs, GitopsArgs, ImageArgs, PolicyArg, WatchArgs, WorkloadArg, parse_duration,
};
use super::context::Context;
use crate::cluster::refs::WorkloadRef;
use crate::error::Error;
use crate::exit::Outcome;
use crate::ops::canary::abort::CanaryAbort;
use crate::ops::canary::run::Canary;
use crate::ops::sets::canary::{PartitionCanary, PartitionCanaryAbort};

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
    /// deploy/NAME: the stable Deployment; sts/NAME: a StatefulSet (canary by partition).
    #[arg(required = true, value_name = "WORKLOAD")]
    pub workload: Option<String>,
    #[command(flatten)]
    pub images: ImageArgs,
    /// Deployment: percentages of the replicas the canary holds at each step (rounded up, at
    /// least 1). StatefulSet: how many of the highest ordinals run the new revision at each step
    /// (`2`), or a share of the pods (`50%`); the last step must cover every pod.
    #[arg(long, value_delimiter = ',', default_value = "10,50,100")]
    pub steps: Vec<String>,
    /// How long every canary pod must stay ready (without restarting more than --max-restarts)
    /// at each step before the next (Deployments; a StatefulSet's step ends when its pods are
    /// ready and the metric gates passed).
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub interval: Duration,
    /// Run (and promote) the canary even when the new spec violates enforced rules.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub watch: WatchArgs,
    #[command(flatten)]
    pub gates: GateArgs,
    #[command(flatten)]
    pub policy: PolicyArg,
    #[command(flatten)]
    pub gitops: GitopsArgs,
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

pub async fn run(ctx: &Context, args: CanaryArgs) -> Result<Outcome, Error> {
    match (args.action, args.start) {
        (Some(CanaryAction::Abort(a)), _) => abort(ctx, a).await,
        (None, s) => start(ctx, s).await,
    }
}

async fn start(ctx: &Context, a: CanaryStart) -> Result<Outcome, Error> {
    let workload = a.workload.clone().ok_or_else(|| {
        Error::usage("canary needs WORKLOAD --image C=IMG --steps …, or `canary abort WORKLOAD`")
    })?;
    let target = WorkloadRef::parse(&workload)?;
    match target.kind {
        WorkloadKind::Deployment => {}
        WorkloadKind::StatefulSet => {
            let canary = PartitionCanary {
                name: target.name,
                images: a.images.parse()?,
                steps: a.steps,
                force: a.force,
                watch: a.watch.settings(),
                policy: a.policy.load()?,
                gates: a.gates.settings()?,
                gitops: a.gitops.settings(),
            };
            let cluster = ctx.kube.connect_one_namespace("canary").await?;
            return canary.run(&ctx.session(cluster)).await;
        }
        WorkloadKind::DaemonSet => {
            return Err(Error::usage(format!(
                "canary works on Deployments (by replicas) and StatefulSets (by partition); {target} is a \
                 DaemonSet, which has no partition: use `update {target}` (maxUnavailable bounds how many \
                 nodes change at once)"
            )));
        }
    }
    let steps = percent_steps(&a.steps)?;
    validate_steps(&steps)?;
    let canary = Canary {
        stable: target.name,
        images: a.images.parse()?,
        steps,
        interval: a.interval,
        force: a.force,
        watch: a.watch.settings(),
        policy: a.policy.load()?,
        gates: a.gates.settings()?,
        gitops: a.gitops.settings(),
    };
    let cluster = ctx.kube.connect_one_namespace("canary").await?;
    canary.run(&ctx.session(cluster)).await
}

/// A Deployment canary's steps: percentages (`10` or `10%`).
fn percent_steps(steps: &[String]) -> Result<Vec<u32>, Error> {
    steps
        .iter()
        .map(|s| {
            let t = s.trim();
            t.strip_suffix('%')
                .unwrap_or(t)
                .parse::<u32>()
                .map_err(|_| {
                    Error::usage(format!(
                        "--steps: {s:?} is not a percentage of the replicas (10,50,100)"
                    ))
                })
        })
        .collect()
}

async fn abort(ctx: &Context, a: CanaryAbortArgs) -> Result<Outcome, Error> {
    let target = WorkloadRef::parse(&a.target.workload)?;
    if target.kind == WorkloadKind::StatefulSet {
        let cluster = ctx.kube.connect_one_namespace("canary abort").await?;
        return PartitionCanaryAbort {
            name: target.name,
            timeout: a.timeout,
        }
        .run(&ctx.session(cluster))
        .await;
    }
    target.require_deployment("canary abort")?;
    let cluster = ctx.kube.connect_one_namespace("canary abort").await?;
    CanaryAbort {
        name: target.name,
        timeout: a.timeout,
    }
    .run(&ctx.session(cluster))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::app::{App, Command};
    use clap::Parser;

    #[test]
    fn command_lines() {
        let c = App::try_parse_from([
            "x",
            "canary",
            "deploy/shop",
            "--image",
            "app=shop:2",
            "--steps",
            "10,50,100",
            "--interval",
            "2s",
            "--max-restarts",
            "1",
        ])
        .unwrap();
        let Command::Canary(cn) = c.command else {
            panic!()
        };
        let s = cn.start;
        assert_eq!(s.workload.as_deref(), Some("deploy/shop"));
        assert_eq!(percent_steps(&s.steps).unwrap(), [10, 50, 100]);
        assert_eq!(
            percent_steps(&["10%".to_owned(), "100".to_owned()]).unwrap(),
            [10, 100]
        );
        assert!(matches!(
            percent_steps(&["x".to_owned()]),
            Err(Error::Usage(_))
        ));
        assert_eq!(s.watch.max_restarts, 1);
        assert_eq!(s.images.parse().unwrap()[0].image, "shop:2");
        let c = App::try_parse_from(["x", "canary", "abort", "deploy/shop"]).unwrap();
        let Command::Canary(cn) = c.command else {
            panic!()
        };
        assert!(matches!(cn.action, Some(CanaryAction::Abort(_))));
    }
}
