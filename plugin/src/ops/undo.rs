//! Undo: kubectl's rollback algorithm (ReplicaSets controlled by the Deployment,
//! `deployment.kubernetes.io/revision`, template copied without `pod-template-hash`), written
//! with a resourceVersion precondition and a fresh change-cause, then watched to the end.

use std::time::Instant;

use rollout_safe_policy::gitops::Settings as GitopsSettings;
use rollout_safe_policy::judge::equal_ignore_hash;

use super::gitops::refuse_gitops_owned;
use super::session::{Session, WatchSettings, outcome_of};
use crate::cluster::deployments::get_deployment;
use crate::cluster::patch::precondition_patch;
use crate::cluster::refs::WorkloadRef;
use crate::cluster::revisions::{owned_replica_sets, revisions, rollback_cause, undo_target};
use crate::cluster::rollback::{RollbackPlan, planned, write_rollback};
use crate::cluster::watch::Ending;
use crate::error::Error;
use crate::exit::Outcome;
use crate::text::{failure_report, secs};

/// `undo deployment/NAME [--to-revision N] [--dry-run]`, typed.
#[derive(Debug, Clone)]
pub struct Undo {
    /// The Deployment.
    pub name: String,
    /// `None`: the previous revision.
    pub to_revision: Option<i64>,
    /// Show what would be rolled back to, change nothing.
    pub dry_run: bool,
    pub watch: WatchSettings,
    /// Argo CD's tracking, and whether a GitOps-owned Deployment may be rolled back.
    pub gitops: GitopsSettings,
}

impl Undo {
    pub async fn run(&self, s: &Session<'_>) -> Result<Outcome, Error> {
        let cluster = &s.cluster;
        let target = WorkloadRef::deployment(&self.name);
        let wl = target.to_string();
        let d = get_deployment(cluster, &self.name).await?;
        refuse_gitops_owned(&self.gitops, "undo", &wl, &d.metadata)?;
        let rss = owned_replica_sets(cluster, &d).await?;
        let revs = revisions(&d, &rss);
        let to = undo_target(&self.name, &revs, self.to_revision)?;
        if equal_ignore_hash(&d.spec.template, &to.template) {
            println!(
                "{wl}: skipped rollback (the current template already matches revision {})",
                to.number
            );
            return Ok(Outcome::Succeeded);
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
        if self.dry_run {
            // The same checks as the write (a paused Deployment is refused).
            let wanted = planned(cluster, &d, &plan)?.unwrap_or_else(|| d.clone());
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
                serde_json::to_string_pretty(&patch)
                    .map_err(|e| Error::encode("the patch as JSON", e))?
            );
            return Ok(Outcome::Succeeded);
        }
        match write_rollback(cluster, d, &plan, false).await? {
            None => {
                println!(
                    "{wl}: skipped rollback (the current template already matches revision {})",
                    to.number
                );
                return Ok(Outcome::Succeeded);
            }
            Some(w) => eprintln!(
                "{wl} rolling back to revision {} (resourceVersion {} → {}): {}",
                to.number,
                w.before.metadata.resource_version.as_deref().unwrap_or("?"),
                w.after.metadata.resource_version.as_deref().unwrap_or("?"),
                plan.cause
            ),
        }
        let started = Instant::now();
        let ending = s
            .watch(
                &target,
                format!("{wl} (undo)"),
                &self.watch.options(&s.interrupt),
            )
            .await?;
        let elapsed = started.elapsed();
        let outcome = outcome_of(&ending, &wl, " during the rollback")?;
        match ending {
            Ending::Complete(_) => {
                eprintln!(
                    "{wl} rolled back to revision {} in {}",
                    to.number,
                    secs(elapsed)
                );
            }
            Ending::Failed { failure, .. } => {
                eprintln!("{}", failure_report(&failure));
                eprintln!(
                    "the rollback to revision {} failed; {wl} is left as it is",
                    to.number
                );
            }
            Ending::TimedOut(v) => {
                eprintln!(
                    "{wl}: the rollback had not completed after {}: {}",
                    secs(self.watch.timeout),
                    v.progress().message
                );
            }
            Ending::Interrupted(_) => {
                eprintln!(
                    "interrupted: stopped watching {wl}; the rollback was written and goes on in the cluster."
                );
                eprintln!(
                    "  watch it again: {}",
                    cluster.suggest("status", &wl, "--watch")
                );
            }
            Ending::Paused(_) | Ending::Unsupported(_) => {
                eprintln!("{wl} was paused meanwhile; the rollback rolls out when it is resumed");
            }
            Ending::Deleted => {}
        }
        Ok(outcome)
    }
}
