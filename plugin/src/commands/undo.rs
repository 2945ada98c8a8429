//! `kubectl rollout-safe undo`: kubectl's rollback algorithm (ReplicaSets controlled by the
//! Deployment, `deployment.kubernetes.io/revision`, template copied without `pod-template-hash`),
//! written with a resourceVersion precondition and a fresh change-cause, then watched to the end.

use anyhow::anyhow;
use rollout_safe_policy::judge::equal_ignore_hash;

use crate::cli::{KubeArgs, UndoArgs};
use crate::cluster::patch::precondition_patch;
use crate::cluster::revisions::{owned_replica_sets, revisions, rollback_cause, undo_target};
use crate::cluster::rollback::{RollbackPlan, planned, write_rollback};
use crate::cluster::watch::{Ending, watch_rollout};
use crate::cluster::{self, Cluster, WorkloadRef};
use crate::commands::update::watch_options;
use crate::display::{Display, failure_report, secs};
use crate::exit::{CmdResult, Exit, Failure};

pub async fn run(kube: &KubeArgs, args: UndoArgs) -> CmdResult {
    let target = WorkloadRef::parse(&args.target.workload)?;
    target.require_deployment("undo")?;
    let cluster = Cluster::connect(kube).await?;
    cluster.reject_all_namespaces("undo")?;
    let wl = target.to_string();
    let d = cluster::get_deployment(&cluster, &target.name).await?;
    let rss = owned_replica_sets(&cluster, &d).await?;
    let revs = revisions(&d, &rss);
    let to = undo_target(&target.name, &revs, args.to_revision)?;
    if equal_ignore_hash(&d.spec.template, &to.template) {
        println!(
            "{wl}: skipped rollback (the current template already matches revision {})",
            to.number
        );
        return Ok(Exit::Success);
    }
    let plan = RollbackPlan {
        template: to.template.clone(),
        cause: format!(
            "{} by {}",
            rollback_cause(to.number, &to.describe()),
            cluster.username
        ),
        only_if_template: None,
    };
    if args.dry_run {
        // The same checks as the write (a paused Deployment is refused).
        let wanted = planned(&cluster, &d, &plan)?.unwrap_or_else(|| d.clone());
        let patch = precondition_patch(&d, &wanted)?.unwrap_or_default();
        eprintln!(
            "{wl} (dry run, nothing sent): would roll back to revision {} (replicaset {}, {})\n  change-cause: {}",
            to.number,
            to.replica_set,
            to.images_text(),
            plan.cause
        );
        println!(
            "{}",
            serde_json::to_string_pretty(&patch).map_err(anyhow::Error::from)?
        );
        return Ok(Exit::Success);
    }
    match write_rollback(&cluster, d, &plan, false).await? {
        None => {
            println!(
                "{wl}: skipped rollback (the current template already matches revision {})",
                to.number
            );
            return Ok(Exit::Success);
        }
        Some(w) => eprintln!(
            "{wl} rolling back to revision {} (resourceVersion {} → {}): {}",
            to.number,
            w.before.metadata.resource_version.as_deref().unwrap_or("?"),
            w.after.metadata.resource_version.as_deref().unwrap_or("?"),
            plan.cause
        ),
    }
    let mut view = Display::new(format!("{wl} (undo)"));
    let ending = watch_rollout(&cluster, &target, &watch_options(&args.watch), &mut view).await?;
    let elapsed = view.elapsed();
    view.finish();
    drop(view);
    match ending {
        Ending::Complete(_) => {
            eprintln!(
                "{wl} rolled back to revision {} in {}",
                to.number,
                secs(elapsed)
            );
            Ok(Exit::Success)
        }
        Ending::Failed { failure, .. } => {
            eprintln!("{}", failure_report(&failure));
            eprintln!(
                "the rollback to revision {} failed; {wl} is left as it is",
                to.number
            );
            Ok(Exit::RolloutFailed)
        }
        Ending::TimedOut(v) => {
            eprintln!(
                "{wl}: the rollback had not completed after {}: {}",
                secs(args.watch.timeout),
                v.progress().message
            );
            Ok(Exit::Timeout)
        }
        Ending::Interrupted(_) => {
            eprintln!(
                "interrupted: stopped watching {wl}; the rollback was written and goes on in the cluster."
            );
            eprintln!(
                "  watch it again: {}",
                cluster.suggest("status", &wl, "--watch")
            );
            Ok(Exit::Timeout)
        }
        Ending::Paused(_) | Ending::Unsupported(_) => {
            eprintln!("{wl} was paused meanwhile; the rollback rolls out when it is resumed");
            Ok(Exit::Success)
        }
        Ending::Deleted => Err(Failure::new(
            Exit::Cluster,
            anyhow!("{wl} was deleted during the rollback"),
        )),
    }
}
