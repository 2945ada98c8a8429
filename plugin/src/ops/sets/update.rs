//! `update sts/NAME` and `update ds/NAME`: the safe update of a StatefulSet or DaemonSet. The
//! same steps as a Deployment's (`ops::update`): the policy pre-flight, a JSON Patch guarded by
//! the resourceVersion and recomputed on conflict, a fresh change-cause, the pod-level judge
//! (and metric gates), and on failure or timeout the previous template put back, guarded so a
//! later change by someone else is never undone. A StatefulSet's pods stuck on the broken
//! revision are then deleted so the controller recreates them on the restored one
//! (`recover`). `OnDelete` is refused: there would be no rollout to watch or roll back.

use crate::ops::gitops::refuse_gitops_owned;
use rollout_safe_policy::gitops::Settings as GitopsSettings;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use rollout_safe_policy::change_cause::{self, Actor};
use rollout_safe_policy::check::CHANGE_CAUSE_ANNOTATION;
use rollout_safe_policy::judge::{equal_ignore_hash, normalized_template};
use rollout_safe_policy::strategy::edit::{
    EnvEdit, ImageSet, edit_template, images_text, template_images,
};
use rollout_safe_policy::{RolloutPolicy, WorkloadKind};

use super::recover::{Replace, replace_pods_off_revision};
use crate::cluster::client::{Cluster, FIELD_MANAGER};
use crate::cluster::facts::facts_for;
use crate::cluster::patch::{Written, precondition_patch, write_object};
use crate::cluster::refs::WorkloadRef;
use crate::cluster::revisions::rollback_cause;
use crate::cluster::sets::{
    RolledSet, get_set, owned_pods, owned_revisions, reference, set_revisions,
};
use crate::cluster::watch::{Ending, GateSource};
use crate::error::Error;
use crate::exit::Outcome;
use crate::ops::gates::{GateRunner, GateSettings, Subject, waiting_text};
use crate::ops::preflight::Preflight;
use crate::ops::session::{Session, WatchSettings, outcome_of};
use crate::ops::update::DryRun;
use crate::text::{failure_report, secs, ts_text, verdict_text};

/// `update sts/NAME|ds/NAME --image … --env …`, typed.
#[derive(Debug, Clone)]
pub struct SetUpdate {
    /// A StatefulSet or DaemonSet.
    pub target: WorkloadRef,
    pub images: Vec<ImageSet>,
    pub env: Vec<EnvEdit>,
    /// The change-cause to record (default: who and what changed).
    pub cause: Option<String>,
    /// Leave a failed rollout as it is.
    pub no_rollback: bool,
    /// Apply despite enforced findings.
    pub force: bool,
    pub dry_run: Option<DryRun>,
    pub watch: WatchSettings,
    pub policy: RolloutPolicy,
    /// Metric gates (with the policy file's); `None`: none at all.
    pub gates: Option<GateSettings>,
    /// Argo CD's tracking, and whether a GitOps-owned workload may be updated.
    pub gitops: GitopsSettings,
}

/// Refuses a workload whose update strategy is `OnDelete` (exit 2), saying what to do instead.
pub fn refuse_on_delete<K: RolledSet>(
    o: &K,
    cluster: &Cluster,
    command: &str,
) -> Result<(), Error> {
    if !o.on_delete() {
        return Ok(());
    }
    let wl = reference(o);
    let pods = match K::KIND {
        WorkloadKind::StatefulSet => "its pods one at a time, highest ordinal first",
        _ => "its pods one node at a time",
    };
    Err(Error::usage(format!(
        "{wl} uses the OnDelete update strategy: a new template replaces no pod until someone deletes it, \
         so {command} would have no rollout to watch and nothing to roll back. Instead: switch it to \
         RollingUpdate (kubectl patch {wl}{} -p '{{\"spec\":{{\"updateStrategy\":{{\"type\":\"RollingUpdate\"}}}}}}') \
         and run {command} again; or change the template with kubectl and delete {pods}, checking each \
         new pod before the next",
        if cluster.namespace.is_empty() {
            String::new()
        } else {
            format!(" -n {}", cluster.namespace)
        }
    )))
}

impl SetUpdate {
    pub async fn run(&self, s: &Session<'_>) -> Result<Outcome, Error> {
        match self.target.kind {
            WorkloadKind::StatefulSet => self.run_kind::<StatefulSet>(s).await,
            WorkloadKind::DaemonSet => self.run_kind::<DaemonSet>(s).await,
            WorkloadKind::Deployment => Err(Error::usage(format!(
                "{}: a Deployment takes the Deployment update",
                self.target
            ))),
        }
    }

    async fn run_kind<K: RolledSet>(&self, s: &Session<'_>) -> Result<Outcome, Error> {
        let cluster = &s.cluster;
        let target = &self.target;
        let wl = target.to_string();
        let current: K = get_set(cluster, &target.name).await?;
        refuse_gitops_owned(&self.gitops, "update", &wl, current.meta())?;
        refuse_on_delete(&current, cluster, "update")?;
        let facts = facts_for(cluster, &current.workload()).await;
        let mut preflight = Preflight::new(
            self.policy.for_namespace(Some(&cluster.namespace)),
            facts,
            self.force,
        );
        let actor = Actor {
            username: cluster.username.clone(),
            field_manager: Some(FIELD_MANAGER.to_owned()),
        };
        let action = format!("update {wl}");
        let mut cause_used = String::new();
        let mut build = |cur: &K, _attempt: usize| -> Result<Option<K>, Error> {
            let template = edit_template(&wl, cur.template(), &self.images, &self.env)?;
            if equal_ignore_hash(&template, cur.template()) {
                return Ok(None);
            }
            let mut new = cur.clone();
            *new.template_mut() = template;
            let cause = match &self.cause {
                Some(c) => c.clone(),
                None => change_cause::describe(Some(&cur.workload()), &new.workload(), &actor),
            };
            new.meta_mut()
                .annotations
                .get_or_insert_default()
                .insert(CHANGE_CAUSE_ANNOTATION.to_owned(), cause.clone());
            cause_used = cause;
            preflight.check(&action, &new.workload(), Some(&cur.workload()))?;
            Ok(Some(new))
        };
        let nothing = || {
            println!("{wl}: nothing to change (the pod template already has these images and env)");
            Ok(Outcome::Succeeded)
        };

        if self.dry_run == Some(DryRun::Client) {
            let Some(new) = build(&current, 1)? else {
                return nothing();
            };
            let patch = precondition_patch(&current, &new)?.unwrap_or_default();
            eprintln!(
                "{wl} (dry run, client side, nothing sent): JSON Patch guarded by resourceVersion {}\n  change-cause: {cause_used}\n  {} → {}",
                current.meta().resource_version.as_deref().unwrap_or("?"),
                images_text(&template_images(current.template())),
                images_text(&template_images(new.template())),
            );
            println!("{}", pretty(&patch)?);
            return Ok(Outcome::Succeeded);
        }
        let server_dry_run = self.dry_run == Some(DryRun::Server);
        let mut gates = match &self.gates {
            Some(settings) if !server_dry_run => {
                let labels = current.meta().labels.clone().unwrap_or_default();
                let gates = settings.gates_for(&self.policy, &cluster.namespace, &labels)?;
                let mut runner =
                    settings.runner(cluster, gates, Subject::default(), &target.name)?;
                if let Some(r) = runner.as_mut() {
                    r.annotate_on(K::KIND);
                    r.preflight(target, &Subject::default()).await?;
                }
                runner
            }
            _ => None,
        };
        let Some(written) =
            write_object(cluster, current, server_dry_run, true, &mut build).await?
        else {
            return nothing();
        };
        if server_dry_run {
            let result = precondition_patch(&written.before, &written.after)?.unwrap_or_default();
            eprintln!("{wl}: the API server accepted the change (dry run: nothing stored)");
            eprintln!("  change-cause: {cause_used}");
            println!("{}", pretty(&result)?);
            return Ok(Outcome::Succeeded);
        }
        eprintln!(
            "{wl} updated (resourceVersion {} → {}{}): {cause_used}",
            written
                .before
                .meta()
                .resource_version
                .as_deref()
                .unwrap_or("?"),
            written
                .after
                .meta()
                .resource_version
                .as_deref()
                .unwrap_or("?"),
            if written.attempts > 1 {
                format!(", after {} attempts", written.attempts)
            } else {
                String::new()
            }
        );
        self.follow(s, &written, gates.as_mut()).await
    }

    /// Watches the update to its end; on failure or timeout rolls back (unless `no_rollback`).
    async fn follow<K: RolledSet>(
        &self,
        s: &Session<'_>,
        written: &Written<K>,
        mut gates: Option<&mut GateRunner>,
    ) -> Result<Outcome, Error> {
        let cluster = &s.cluster;
        let target = &self.target;
        let wl = target.to_string();
        let started = Instant::now();
        if let Some(g) = gates.as_deref_mut() {
            g.begin_step("rollout");
        }
        let ending = s
            .watch_gated(
                target,
                wl.clone(),
                &self.watch.options(&s.interrupt),
                gates.as_deref_mut().map(|g| g as _),
            )
            .await?;
        let outcome = outcome_of(&ending, &wl, " while its rollout was watched")?;
        let hint = || {
            eprintln!(
                "--no-rollback: {wl} is left as it is. To roll back: {}",
                cluster.suggest("undo", &wl, "")
            );
        };
        match ending {
            Ending::Complete(v) => eprintln!(
                "{wl} rolled out in {}: {}",
                secs(started.elapsed()),
                v.progress().message
            ),
            Ending::Paused(_) | Ending::Deleted => {}
            Ending::Unsupported(v) => eprintln!("{wl}: {}", v.progress().message),
            Ending::Interrupted(_) => {
                eprintln!(
                    "interrupted: stopped watching {wl}; the rollout goes on in the cluster and nothing was rolled back."
                );
                eprintln!(
                    "  watch it again: {}",
                    cluster.suggest("status", &wl, "--watch")
                );
                eprintln!("  roll it back:   {}", cluster.suggest("undo", &wl, ""));
            }
            Ending::Failed { failure, detected } => {
                eprintln!("{}", failure_report(&failure));
                if self.no_rollback {
                    hint();
                    return Ok(outcome);
                }
                let first = failure.first_seen.unwrap_or(detected);
                self.roll_back(s, written, Some((first, detected)), failure.reason.as_str())
                    .await?;
            }
            Ending::TimedOut(v) => {
                eprintln!(
                    "{wl}: timed out after {} waiting for the rollout: {}",
                    secs(self.watch.timeout),
                    v.progress().message
                );
                if let Some(why) = gates.as_deref().and_then(|g| waiting_text(&g.decision())) {
                    eprintln!("{wl}: {why}");
                }
                eprintln!("{}", verdict_text(&wl, &v));
                if self.no_rollback {
                    hint();
                    return Ok(outcome);
                }
                self.roll_back(s, written, None, "timeout").await?;
            }
        }
        Ok(outcome)
    }

    /// Puts back the template the update replaced (guarded: only while the workload still runs
    /// the one the update wrote), deletes a StatefulSet's pods left on the broken revision, and
    /// waits until it is healthy again. The update's outcome stands whatever the rollback's.
    async fn roll_back<K: RolledSet>(
        &self,
        s: &Session<'_>,
        written: &Written<K>,
        signal: Option<(Timestamp, Timestamp)>,
        why: &str,
    ) -> Result<(), Error> {
        let cluster = &s.cluster;
        let target = &self.target;
        let wl = target.to_string();
        let before = &written.before;
        let restored = normalized_template(before.template());
        let current: K = get_set(cluster, &target.name).await?;
        // The revision the failed update made, as the controller named it: its pods go after.
        let abandoned = current.observed_update_revision();
        // The revision number the restored template had, for the cause and the messages.
        let revisions = set_revisions(
            &current,
            &owned_revisions(cluster, &current).await?,
            &owned_pods(cluster, &current).await?,
        );
        let revision = revisions
            .iter()
            .filter(|r| equal_ignore_hash(&r.template, &restored))
            .map(|r| r.number)
            .max();
        let what = before
            .meta()
            .annotations
            .as_ref()
            .and_then(|a| a.get(CHANGE_CAUSE_ANNOTATION))
            .filter(|c| !c.trim().is_empty())
            .cloned()
            .unwrap_or_else(|| images_text(&template_images(before.template())));
        let head = match revision {
            Some(n) => rollback_cause(n, &what),
            None => format!("rollback to the previous template ({what})"),
        };
        let cause = format!(
            "{head} by {}: automatic, after the update failed ({why})",
            cluster.username
        );
        let broken = written.after.template().clone();
        let sent = Timestamp::now();
        let result = write_object(cluster, current, false, false, |cur: &K, _| {
            if !equal_ignore_hash(&broken, cur.template()) {
                return Err(Error::RolloutFailed(format!(
                    "not rolling back {wl}: its pod template was changed by someone else since the update \
                     (their change is left in place)"
                )));
            }
            let mut o = cur.clone();
            *o.template_mut() = restored.clone();
            o.meta_mut()
                .annotations
                .get_or_insert_default()
                .insert(CHANGE_CAUSE_ANNOTATION.to_owned(), cause.clone());
            Ok(Some(o))
        })
        .await;
        if let Some((first, detected)) = signal {
            let to_start = sent.duration_since(first).max(SignedDuration::ZERO);
            let detect = detected.duration_since(first).max(SignedDuration::ZERO);
            let react = sent.duration_since(detected).max(SignedDuration::ZERO);
            eprintln!(
                "failure → rollback: {:.1}s (first failing signal at {}, seen by the watch {:.1}s later, rollback sent {:.1}s after that; target ≤ 10s)",
                to_start.as_secs_f64(),
                ts_text(first),
                detect.as_secs_f64(),
                react.as_secs_f64()
            );
        }
        match result? {
            None => eprintln!("{wl} already runs the previous template; nothing to roll back"),
            Some(_) => eprintln!("rolling back {wl}: {cause}"),
        }
        let mut replaced = Vec::new();
        if K::KIND == WorkloadKind::StatefulSet {
            replaced = replace_pods_off_revision(
                cluster,
                &target.name,
                self.watch.timeout.min(Duration::from_secs(60)),
                Replace::Abandoned(abandoned),
            )
            .await?;
        }
        let started = Instant::now();
        let ending = s
            .watch(
                target,
                format!("{wl} (rollback)"),
                &self.watch.options(&s.interrupt),
            )
            .await?;
        match ending {
            Ending::Complete(_) => eprintln!(
                "{wl} rolled back{} and healthy again after {}{}; the update failed ({why})",
                revision
                    .map(|n| format!(" to revision {n}"))
                    .unwrap_or_default(),
                secs(started.elapsed()),
                if replaced.is_empty() {
                    String::new()
                } else {
                    format!(" (pods replaced: {})", replaced.join(", "))
                }
            ),
            Ending::Failed { failure, .. } => eprintln!(
                "the rollback did not recover {wl} either:\n{}",
                failure_report(&failure)
            ),
            Ending::TimedOut(v) => eprintln!(
                "the rollback of {wl} had not completed after {}: {}",
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
            Ending::Paused(_) | Ending::Unsupported(_) => {
                eprintln!("{wl}: the rollback was written; its rollout cannot be watched")
            }
            Ending::Deleted => eprintln!("{wl} was deleted during the rollback"),
        }
        Ok(())
    }
}

fn pretty(patch: &json_patch::Patch) -> Result<String, Error> {
    serde_json::to_string_pretty(patch).map_err(|e| Error::encode("the patch as JSON", e))
}
