//! The safe update: change images/env under the policy, write it guarded by a resourceVersion
//! precondition with a fresh change-cause, watch the rollout with the judge, and roll back on
//! failure. `update` runs it; `canary` promotes with it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use rollout_safe_policy::change_cause::{self, Actor};
use rollout_safe_policy::check::CHANGE_CAUSE_ANNOTATION;
use rollout_safe_policy::judge::{REVISION_ANNOTATION, equal_ignore_hash, normalized_template};
use rollout_safe_policy::strategy::edit::{EnvEdit, ImageSet, edit, images_text, template_images};
use rollout_safe_policy::{RolloutPolicy, Workload};

use rollout_safe_policy::gitops::Settings as GitopsSettings;

use super::gates::{GateRunner, GateSettings, Subject, waiting_text};
use super::gitops::refuse_gitops_owned;
use super::preflight::Preflight;
use super::session::{Session, WatchSettings, outcome_of};
use crate::cluster::client::{Cluster, FIELD_MANAGER};
use crate::cluster::deployments::get_deployment;
use crate::cluster::facts::facts_for;
use crate::cluster::patch::{Written, precondition_patch, write_deployment};
use crate::cluster::refs::WorkloadRef;
use crate::cluster::revisions::rollback_cause;
use crate::cluster::rollback::{RollbackPlan, write_rollback};
use crate::cluster::watch::{Ending, GateSource};
use crate::error::Error;
use crate::exit::Outcome;
use crate::text::{failure_report, secs, ts_text, verdict_text};

/// A dry run: `Client` computes and prints the patch; `Server` sends it with `dryRun=All`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRun {
    Client,
    Server,
}

/// `update deployment/NAME --image … --env …`, typed.
#[derive(Debug, Clone)]
pub struct SafeUpdate {
    /// The Deployment.
    pub name: String,
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
    /// Keep judging (pods and gates) this long after the rollout completes (`--bake`).
    pub bake: Option<Duration>,
    /// Metric gates (with the policy file's): they must pass before the update completes,
    /// and a failing one rolls it back. `None`: no gates at all, not even the policy file's
    /// (a canary's promotion, whose version the canary steps judged).
    pub gates: Option<GateSettings>,
    /// Argo CD's tracking, and whether a GitOps-owned Deployment may be updated.
    pub gitops: GitopsSettings,
    /// Test hook (the e2e conflict test): after reading the Deployment, wait for a line on
    /// stdin before the first write.
    pub pause_before_write: bool,
}

pub fn as_workload(d: &Deployment) -> Workload {
    Workload::Deployment(Box::new(d.clone()))
}

impl SafeUpdate {
    pub async fn run(&self, s: &Session<'_>) -> Result<Outcome, Error> {
        let cluster = &s.cluster;
        let target = WorkloadRef::deployment(&self.name);
        let current = get_deployment(cluster, &self.name).await?;
        refuse_gitops_owned(
            &self.gitops,
            "update",
            &target.to_string(),
            &current.metadata,
        )?;
        let facts = facts_for(cluster, &as_workload(&current)).await;
        let mut preflight = Preflight::new(
            self.policy.for_namespace(Some(&cluster.namespace)),
            facts,
            self.force,
        );
        let actor = Actor {
            username: cluster.username.clone(),
            field_manager: Some(FIELD_MANAGER.to_owned()),
        };
        let first_images: BTreeMap<String, String> = template_images(&current.spec.template)
            .into_iter()
            .collect();
        let mut cause_used = String::new();
        let action = format!("update deployment/{}", self.name);

        let mut build = |cur: &Deployment, attempt: usize| -> Result<Option<Deployment>, Error> {
            let mut new = edit(cur, &self.images, &self.env)?;
            if equal_ignore_hash(&new.spec.template, &cur.spec.template) {
                return Ok(None);
            }
            if attempt > 1 {
                for (c, img) in template_images(&cur.spec.template) {
                    if let Some(before) = first_images.get(&c).filter(|b| **b != img)
                        && self
                            .images
                            .iter()
                            .any(|i| i.container == c || i.container == "*")
                    {
                        eprintln!(
                            "note: container {c}'s image was changed meanwhile from {before} to {img}; setting it as asked"
                        );
                    }
                }
            }
            let cause = match &self.cause {
                Some(c) => c.clone(),
                None => change_cause::describe(Some(&as_workload(cur)), &as_workload(&new), &actor),
            };
            new.metadata
                .annotations
                .get_or_insert_default()
                .insert(CHANGE_CAUSE_ANNOTATION.to_owned(), cause.clone());
            cause_used = cause;
            preflight.check(&action, &as_workload(&new), Some(&as_workload(cur)))?;
            Ok(Some(new))
        };

        if self.dry_run == Some(DryRun::Client) {
            let Some(new) = build(&current, 1)? else {
                println!(
                    "deployment/{}: nothing to change (the pod template already has these images and env)",
                    self.name
                );
                return Ok(Outcome::Succeeded);
            };
            let patch = precondition_patch(&current, &new)?.unwrap_or_default();
            eprintln!(
                "deployment/{} (dry run, client side, nothing sent): JSON Patch guarded by resourceVersion {}\n  change-cause: {cause_used}\n  {} → {}",
                self.name,
                current.metadata.resource_version.as_deref().unwrap_or("?"),
                images_text(&template_images(&current.spec.template)),
                images_text(&template_images(&new.spec.template)),
            );
            println!("{}", pretty(&patch)?);
            return Ok(Outcome::Succeeded);
        }

        let server_dry_run = self.dry_run == Some(DryRun::Server);
        // The gates' pre-flight, before any write: each query once, on the current version.
        let mut gates = match &self.gates {
            Some(settings) if !server_dry_run => {
                let labels = current.metadata.labels.clone().unwrap_or_default();
                let gates = settings.gates_for(&self.policy, &cluster.namespace, &labels)?;
                let runner = settings.runner(cluster, gates, Subject::default(), &self.name)?;
                if let Some(r) = &runner {
                    r.preflight(&target, &Subject::default()).await?;
                }
                runner
            }
            _ => None,
        };
        if self.pause_before_write {
            pause_before_write(&current).await;
        }
        let Some(written) =
            write_deployment(cluster, current, server_dry_run, true, &mut build).await?
        else {
            println!(
                "deployment/{}: nothing to change (the pod template already has these images and env)",
                self.name
            );
            return Ok(Outcome::Succeeded);
        };
        let attempts = if written.attempts > 1 {
            format!(" after {} attempts", written.attempts)
        } else {
            String::new()
        };
        if server_dry_run {
            // What the server (and any mutating webhook) would store, against what is stored.
            let result = precondition_patch(&written.before, &written.after)?.unwrap_or_default();
            eprintln!(
                "deployment/{}: the API server accepted the change (dry run: nothing stored){attempts}",
                self.name,
            );
            eprintln!("  change-cause: {cause_used}");
            println!("{}", pretty(&result)?);
            return Ok(Outcome::Succeeded);
        }
        eprintln!(
            "deployment/{} updated (resourceVersion {} → {}{}): {cause_used}",
            self.name,
            written
                .before
                .metadata
                .resource_version
                .as_deref()
                .unwrap_or("?"),
            written
                .after
                .metadata
                .resource_version
                .as_deref()
                .unwrap_or("?"),
            if written.attempts > 1 {
                format!(", after {} attempts", written.attempts)
            } else {
                String::new()
            }
        );
        self.follow(s, &target, &written, gates.as_mut()).await
    }

    /// Watches the update to its end (through `--bake`, and until every gate passed); on
    /// failure or timeout rolls back (unless `no_rollback`).
    async fn follow(
        &self,
        s: &Session<'_>,
        target: &WorkloadRef,
        written: &Written<Deployment>,
        mut gates: Option<&mut GateRunner>,
    ) -> Result<Outcome, Error> {
        let cluster = &s.cluster;
        let started = Instant::now();
        let mut opts = self.watch.options(&s.interrupt);
        opts.hold = self.bake;
        if let Some(g) = gates.as_deref_mut() {
            g.begin_step(if self.bake.is_some() {
                "bake"
            } else {
                "rollout"
            });
        }
        let ending = s
            .watch_gated(
                target,
                target.to_string(),
                &opts,
                gates.as_deref_mut().map(|g| g as _),
            )
            .await?;
        let elapsed = started.elapsed();
        let wl = target.to_string();
        let outcome = outcome_of(&ending, &wl, " while its rollout was watched")?;
        match ending {
            Ending::Complete(v) => {
                eprintln!(
                    "{wl} rolled out in {}: {}",
                    secs(elapsed),
                    v.progress().message
                );
            }
            Ending::Paused(_) => {
                eprintln!(
                    "{wl} is paused: the change is recorded and rolls out when it is resumed ({})",
                    cluster.suggest("resume", &wl, "")
                );
            }
            Ending::Unsupported(v) => eprintln!("{wl}: {}", v.progress().message),
            Ending::Deleted => {}
            Ending::Interrupted(_) => interrupted(cluster, &wl, false),
            Ending::Failed {
                failure: f,
                detected,
            } => {
                eprintln!("{}", failure_report(&f));
                if self.no_rollback {
                    eprintln!(
                        "--no-rollback: {wl} is left as it is. To roll back: {}",
                        cluster.suggest("undo", &wl, "")
                    );
                    return Ok(outcome);
                }
                let first = f.first_seen.unwrap_or(detected);
                self.roll_back(
                    s,
                    target,
                    written,
                    Some((first, detected)),
                    f.reason.as_str(),
                )
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
                    eprintln!(
                        "--no-rollback: {wl} is left as it is. To roll back: {}",
                        cluster.suggest("undo", &wl, "")
                    );
                    return Ok(outcome);
                }
                self.roll_back(s, target, written, None, "timeout").await?;
            }
        }
        Ok(outcome)
    }

    /// Puts back the template the update replaced, guarded so that a later change by someone
    /// else is never undone, then waits until the Deployment is healthy again. `signal`: when
    /// the first failing signal appeared and when this process saw the failure (for the latency
    /// report). The update's outcome stands whatever the rollback's.
    async fn roll_back(
        &self,
        s: &Session<'_>,
        target: &WorkloadRef,
        written: &Written<Deployment>,
        signal: Option<(Timestamp, Timestamp)>,
        why: &str,
    ) -> Result<(), Error> {
        let cluster = &s.cluster;
        let wl = target.to_string();
        let before = &written.before;
        let revision = before
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION_ANNOTATION))
            .and_then(|r| r.parse::<i64>().ok());
        let what = before
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CHANGE_CAUSE_ANNOTATION))
            .filter(|c| !c.trim().is_empty())
            .cloned()
            .unwrap_or_else(|| images_text(&template_images(&before.spec.template)));
        let head = match revision {
            Some(n) => rollback_cause(n, &what),
            None => format!("rollback to the previous template ({what})"),
        };
        let plan = RollbackPlan {
            template: normalized_template(&before.spec.template),
            cause: format!(
                "{head} by {}: automatic, after the update failed ({why})",
                cluster.username
            ),
            only_if_template: Some(written.after.spec.template.clone()),
        };
        let current = get_deployment(cluster, &target.name).await?;
        let started = Timestamp::now();
        let result = write_rollback(cluster, current, &plan, false).await;
        if let Some((first, detected)) = signal {
            let to_start = started.duration_since(first).max(SignedDuration::ZERO);
            let detect = detected.duration_since(first).max(SignedDuration::ZERO);
            let react = started.duration_since(detected).max(SignedDuration::ZERO);
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
            Some(_) => eprintln!("rolling back {wl}: {}", plan.cause),
        }
        let started = Instant::now();
        let ending = s
            .watch(
                target,
                format!("{wl} (rollback)"),
                &self.watch.options(&s.interrupt),
            )
            .await?;
        let elapsed = started.elapsed();
        match ending {
            Ending::Complete(_) => {
                eprintln!(
                    "{wl} rolled back{} and healthy again after {}; the update failed ({why})",
                    revision
                        .map(|n| format!(" to revision {n}"))
                        .unwrap_or_default(),
                    secs(elapsed)
                );
            }
            Ending::Failed { failure, .. } => {
                eprintln!(
                    "the rollback did not recover {wl} either:\n{}",
                    failure_report(&failure)
                );
            }
            Ending::TimedOut(v) => {
                eprintln!(
                    "the rollback of {wl} had not completed after {}: {}",
                    secs(self.watch.timeout),
                    v.progress().message
                );
            }
            Ending::Interrupted(_) => interrupted(cluster, &wl, true),
            Ending::Paused(_) | Ending::Unsupported(_) => {
                eprintln!("{wl} is paused; the rollback rolls out when it is resumed")
            }
            Ending::Deleted => eprintln!("{wl} was deleted during the rollback"),
        }
        Ok(())
    }
}

fn pretty(patch: &json_patch::Patch) -> Result<String, Error> {
    serde_json::to_string_pretty(patch).map_err(|e| Error::encode("the patch as JSON", e))
}

fn interrupted(cluster: &Cluster, wl: &str, rollback_written: bool) {
    if rollback_written {
        eprintln!(
            "interrupted: stopped watching {wl}; the rollback was written and goes on in the cluster."
        );
    } else {
        eprintln!(
            "interrupted: stopped watching {wl}; the rollout goes on in the cluster and nothing was rolled back."
        );
    }
    eprintln!(
        "  watch it again: {}",
        cluster.suggest("status", wl, "--watch")
    );
    if !rollback_written {
        eprintln!("  roll it back:   {}", cluster.suggest("undo", wl, ""));
    }
}

/// `--debug-pause-before-write` (hidden; for the e2e conflict test): says what was read, then
/// waits for a line on stdin (or its end) before the first write, so a test can change the
/// Deployment in between and see the precondition catch it.
async fn pause_before_write(read: &Deployment) {
    eprintln!(
        "debug: read deployment/{} at resourceVersion {}; paused before writing until stdin has a line",
        read.metadata.name.as_deref().unwrap_or_default(),
        read.metadata.resource_version.as_deref().unwrap_or("?")
    );
    let _ = tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new())).await;
}
