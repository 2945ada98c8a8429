//! `undo sts/NAME|ds/NAME [--to-revision N]`: kubectl's rollback from the ControllerRevisions
//! the workload owns (the previous revision, or revision N; its template from `data`), written
//! with a resourceVersion precondition and a fresh change-cause, then watched to the end. For a
//! StatefulSet, pods that are not Ready and not on the restored revision are deleted first: the
//! controller would wait for them forever.

use crate::ops::gitops::refuse_gitops_owned;
use rollout_safe_policy::gitops::Settings as GitopsSettings;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use rollout_safe_policy::WorkloadKind;
use rollout_safe_policy::check::CHANGE_CAUSE_ANNOTATION;
use rollout_safe_policy::judge::equal_ignore_hash;

use super::recover::{Replace, replace_pods_off_revision};
use super::update::refuse_on_delete;
use crate::cluster::patch::{precondition_patch, write_object};
use crate::cluster::refs::WorkloadRef;
use crate::cluster::revisions::rollback_cause;
use crate::cluster::sets::{
    RolledSet, get_set, owned_pods, owned_revisions, set_revisions, set_undo_target,
};
use crate::cluster::watch::Ending;
use crate::error::Error;
use crate::exit::Outcome;
use crate::ops::session::{Session, WatchSettings, outcome_of};
use crate::text::{failure_report, secs};

/// `undo sts/NAME|ds/NAME [--to-revision N] [--dry-run]`, typed.
#[derive(Debug, Clone)]
pub struct SetUndo {
    pub target: WorkloadRef,
    /// `None`: the previous revision.
    pub to_revision: Option<i64>,
    /// Show what would be rolled back to, change nothing.
    pub dry_run: bool,
    pub watch: WatchSettings,
    /// Argo CD's tracking, and whether a GitOps-owned workload may be rolled back.
    pub gitops: GitopsSettings,
}

impl SetUndo {
    pub async fn run(&self, s: &Session<'_>) -> Result<Outcome, Error> {
        match self.target.kind {
            WorkloadKind::StatefulSet => self.run_kind::<StatefulSet>(s).await,
            WorkloadKind::DaemonSet => self.run_kind::<DaemonSet>(s).await,
            WorkloadKind::Deployment => Err(Error::usage(format!(
                "{}: a Deployment takes the Deployment undo",
                self.target
            ))),
        }
    }

    async fn run_kind<K: RolledSet>(&self, s: &Session<'_>) -> Result<Outcome, Error> {
        let cluster = &s.cluster;
        let target = &self.target;
        let wl = target.to_string();
        let current: K = get_set(cluster, &target.name).await?;
        refuse_gitops_owned(&self.gitops, "undo", &wl, current.meta())?;
        let revisions = set_revisions(
            &current,
            &owned_revisions(cluster, &current).await?,
            &owned_pods(cluster, &current).await?,
        );
        let to = set_undo_target(target, &revisions, self.to_revision)?;
        let skipped = || {
            println!(
                "{wl}: skipped rollback (the current template already matches revision {})",
                to.number
            );
            Ok(Outcome::Succeeded)
        };
        if equal_ignore_hash(current.template(), &to.template) {
            return skipped();
        }
        refuse_on_delete(&current, cluster, "undo")?;
        let cause = format!(
            "{} by {}",
            rollback_cause(to.number, &to.describe()),
            cluster.username
        );
        let build = |cur: &K, _: usize| -> Result<Option<K>, Error> {
            if equal_ignore_hash(cur.template(), &to.template) {
                return Ok(None);
            }
            let mut o = cur.clone();
            *o.template_mut() = to.template.clone();
            o.meta_mut()
                .annotations
                .get_or_insert_default()
                .insert(CHANGE_CAUSE_ANNOTATION.to_owned(), cause.clone());
            Ok(Some(o))
        };
        if self.dry_run {
            let wanted = build(&current, 1)?.unwrap_or_else(|| current.clone());
            let patch = precondition_patch(&current, &wanted)?.unwrap_or_default();
            eprintln!(
                "{wl} (dry run, nothing sent): would roll back to revision {} (controllerrevision {}, {})\n  change-cause: {cause}",
                to.number,
                to.replica_set,
                to.images_text(),
            );
            println!(
                "{}",
                serde_json::to_string_pretty(&patch)
                    .map_err(|e| Error::encode("the patch as JSON", e))?
            );
            return Ok(Outcome::Succeeded);
        }
        let Some(w) = write_object(cluster, current, false, true, build).await? else {
            return skipped();
        };
        eprintln!(
            "{wl} rolling back to revision {} (resourceVersion {} → {}): {cause}",
            to.number,
            w.before.meta().resource_version.as_deref().unwrap_or("?"),
            w.after.meta().resource_version.as_deref().unwrap_or("?"),
        );
        if K::KIND == WorkloadKind::StatefulSet {
            replace_pods_off_revision(
                cluster,
                &target.name,
                self.watch.timeout.min(Duration::from_secs(60)),
                Replace::Unready,
            )
            .await?;
        }
        let started = Instant::now();
        let ending = s
            .watch(
                target,
                format!("{wl} (undo)"),
                &self.watch.options(&s.interrupt),
            )
            .await?;
        let outcome = outcome_of(&ending, &wl, " during the rollback")?;
        match ending {
            Ending::Complete(_) => eprintln!(
                "{wl} rolled back to revision {} in {}",
                to.number,
                secs(started.elapsed())
            ),
            Ending::Failed { failure, .. } => {
                eprintln!("{}", failure_report(&failure));
                eprintln!(
                    "the rollback to revision {} failed; {wl} is left as it is",
                    to.number
                );
            }
            Ending::TimedOut(v) => eprintln!(
                "{wl}: the rollback had not completed after {}: {}",
                secs(self.watch.timeout),
                v.progress().message
            ),
            Ending::Interrupted(_) => {
                eprintln!(
                    "interrupted: stopped watching {wl}; the rollback was written and goes on in the cluster."
                );
                eprintln!(
                    "  watch it again: {}",
                    cluster.suggest("status", &wl, "--watch")
                );
            }
            Ending::Paused(_) | Ending::Unsupported(_) | Ending::Deleted => {}
        }
        Ok(outcome)
    }
}
