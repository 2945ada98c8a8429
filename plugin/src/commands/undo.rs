//! `kubectl rollout-safe undo`: back to the previous (or a given) revision (`ops::undo`).

use clap::Args;
use rollout_safe_policy::WorkloadKind;

use super::args::{GitopsArgs, WatchArgs, WorkloadArg};
use super::context::Context;
use crate::cluster::refs::WorkloadRef;
use crate::error::Error;
use crate::exit::Outcome;
use crate::ops::sets::undo::SetUndo;
use crate::ops::undo::Undo;

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 rolled back (or nothing to do); 1 the rolled-back revision failed too; \
2 bad input, no such revision, the Deployment is paused (resume first), or the StatefulSet/DaemonSet uses OnDelete; 4 timed out or interrupted with \
Ctrl-C; 5 cluster/API error."
)]
pub struct UndoArgs {
    #[command(flatten)]
    pub target: WorkloadArg,
    /// Roll back to this revision (see `history`; default: the previous one).
    #[arg(long, value_name = "N")]
    pub to_revision: Option<i64>,
    /// Show what would be rolled back to, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub watch: WatchArgs,
    #[command(flatten)]
    pub gitops: GitopsArgs,
}

pub async fn run(ctx: &Context, args: UndoArgs) -> Result<Outcome, Error> {
    let target = WorkloadRef::parse(&args.target.workload)?;
    let cluster = ctx.kube.connect_one_namespace("undo").await?;
    if target.kind != WorkloadKind::Deployment {
        return SetUndo {
            target,
            to_revision: args.to_revision,
            dry_run: args.dry_run,
            watch: args.watch.settings(),
            gitops: args.gitops.settings(),
        }
        .run(&ctx.session(cluster))
        .await;
    }
    Undo {
        name: target.name,
        to_revision: args.to_revision,
        dry_run: args.dry_run,
        watch: args.watch.settings(),
        gitops: args.gitops.settings(),
    }
    .run(&ctx.session(cluster))
    .await
}
