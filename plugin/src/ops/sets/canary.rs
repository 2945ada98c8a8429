//! `canary sts/NAME --image … --steps 1,2,100%`: a canary by partition (the step arithmetic and
//! state are `rollout_safe_policy::strategy::partition`). The new template goes in with the
//! partition at the first step's, so only the highest ordinals move to the new revision; each
//! step is watched with the judge (and the metric gates) until the partitioned rollout is
//! complete, then the partition is lowered for the next. A failing step, a timeout, or `canary
//! abort` puts back the old template and the partition, and deletes the pods on the new revision
//! (`recover`), which the controller would otherwise leave stuck. Each write is guarded by the
//! resourceVersion. The state is in the StatefulSet's annotations and its partition, so a re-run
//! resumes with the steps still to go.

use crate::ops::gitops::refuse_gitops_owned;
use kube::Resource as _;
use rollout_safe_policy::gitops::Settings as GitopsSettings;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use rollout_safe_policy::RolloutPolicy;
use rollout_safe_policy::check::CHANGE_CAUSE_ANNOTATION;
use rollout_safe_policy::judge::{equal_ignore_hash, normalized_template};
use rollout_safe_policy::strategy::edit::{
    ImageSet, edit_template, images_key, images_text, template_images,
};
use rollout_safe_policy::strategy::partition::{
    canary_of, ended, mark_started, partition_of, plan_steps, remaining, with_partition,
};

use super::recover::{Replace, replace_pods_off_revision};
use super::update::refuse_on_delete;
use crate::cluster::facts::facts_for;
use crate::cluster::patch::write_object;
use crate::cluster::refs::WorkloadRef;
use crate::cluster::sets::{RolledSet, get_set, owned_pods, owned_revisions, set_revisions};
use crate::cluster::watch::{Ending, GateSource};
use crate::error::Error;
use crate::exit::Outcome;
use crate::ops::gates::{GateSettings, Subject, waiting_text};
use crate::ops::preflight::Preflight;
use crate::ops::session::{Session, WatchSettings, step_outcome};
use crate::text::{failure_report, secs};

/// `canary sts/NAME --image … --steps …`, typed.
#[derive(Debug, Clone)]
pub struct PartitionCanary {
    /// The StatefulSet.
    pub name: String,
    pub images: Vec<ImageSet>,
    /// Pod counts (`2`) or shares (`50%`) of each step, as given.
    pub steps: Vec<String>,
    /// Run the canary even when the new spec violates enforced rules.
    pub force: bool,
    pub watch: WatchSettings,
    pub policy: RolloutPolicy,
    /// Metric gates: each step completes only once every gate passed since it began; a
    /// failing one aborts the canary.
    pub gates: GateSettings,
    /// Argo CD's tracking, and whether a GitOps-owned StatefulSet may be changed.
    pub gitops: GitopsSettings,
}

fn target(name: &str) -> WorkloadRef {
    WorkloadRef {
        kind: rollout_safe_policy::WorkloadKind::StatefulSet,
        name: name.to_owned(),
    }
}

impl PartitionCanary {
    pub async fn run(&self, s: &Session<'_>) -> Result<Outcome, Error> {
        let cluster = &s.cluster;
        let target = target(&self.name);
        let wl = target.to_string();
        let current: StatefulSet = get_set(cluster, &self.name).await?;
        refuse_gitops_owned(&self.gitops, "canary", &wl, current.meta())?;
        refuse_on_delete(&current, cluster, "canary")?;
        let replicas = current.spec.replicas.unwrap_or(1);
        let steps = plan_steps(&self.name, &self.steps, replicas)
            .map_err(|e| Error::usage(e.to_string()))?;
        let key = images_key(&self.images);
        let under_way = canary_of(&current);
        if let Some(c) = under_way.as_ref().filter(|c| c.images != key) {
            return Err(Error::usage(format!(
                "a canary of {wl} with {} is under way: finish it (re-run it) or abort it first ({})",
                c.images,
                cluster.suggest("canary abort", &wl, "")
            )));
        }
        let new_template = edit_template(&wl, current.template(), &self.images, &[])?;
        if under_way.is_none() && equal_ignore_hash(&new_template, current.template()) {
            println!(
                "{wl} already runs {}: nothing to canary",
                images_text(&template_images(current.template()))
            );
            return Ok(Outcome::Succeeded);
        }
        let cause = format!(
            "{}: canary of {wl} with {key} (steps {})",
            cluster.username,
            self.steps.join(",")
        );
        // The pre-flight, before anything is written: the template every step rolls out.
        let mut wanted = current.clone();
        wanted.spec.template = new_template.clone();
        Preflight::new(
            self.policy.for_namespace(Some(&cluster.namespace)),
            facts_for(cluster, &current.workload()).await,
            self.force,
        )
        .check(
            &format!("start a canary of {wl}"),
            &wanted.workload(),
            Some(&current.workload()),
        )?;
        let gates = self.gates.gates_for(
            &self.policy,
            &cluster.namespace,
            &current.metadata.labels.clone().unwrap_or_default(),
        )?;
        let mut gates = self
            .gates
            .runner(cluster, gates, Subject::default(), &self.name)?;
        if let Some(g) = gates.as_mut() {
            g.annotate_on(rollout_safe_policy::WorkloadKind::StatefulSet);
            g.preflight(&target, &Subject::default()).await?;
        }
        // Nothing moved yet: every pod is above the first step's partition.
        let reached = match under_way {
            Some(_) => partition_of(&current),
            None => replicas,
        };
        if under_way.is_some() {
            eprintln!("resuming the canary of {wl} at partition {reached}");
        }
        let deadline = tokio::time::Instant::now() + self.watch.timeout;
        for step in remaining(&steps, reached) {
            if s.interrupted() {
                return Ok(self.interrupted(s));
            }
            eprintln!(
                "step {}: partition {} ({} of {replicas} pod(s) on the new revision: the highest ordinals)",
                step.text, step.partition, step.pods
            );
            let first = get_set::<StatefulSet>(cluster, &self.name).await?;
            write_object(cluster, first, false, true, |cur: &StatefulSet, _| {
                let mut o = with_partition(&mark_started(cur, &key), step.partition);
                if !equal_ignore_hash(&o.spec.template, &new_template) {
                    o.spec.template = new_template.clone();
                    o.metadata
                        .annotations
                        .get_or_insert_default()
                        .insert(CHANGE_CAUSE_ANNOTATION.to_owned(), cause.clone());
                }
                Ok((o != *cur).then_some(o))
            })
            .await?;
            if let Some(g) = gates.as_mut() {
                g.begin_step(&step.text);
            }
            let opts = self.watch.until(deadline, None, &s.interrupt);
            let ending = s
                .watch_gated(
                    &target,
                    format!("{wl} (step {})", step.text),
                    &opts,
                    gates.as_mut().map(|g| g as _),
                )
                .await?;
            match ending {
                Ending::Complete(_) => match &gates {
                    Some(g) => eprintln!(
                        "step {} passed (metric gates: {})",
                        step.text,
                        g.summary().join("; ")
                    ),
                    None => eprintln!("step {} passed", step.text),
                },
                Ending::Interrupted(_) => return Ok(self.interrupted(s)),
                other => {
                    let outcome = step_outcome(&other, &wl, " during the canary")?;
                    let why = match other {
                        Ending::Failed { failure, .. } => {
                            eprintln!("{}", failure_report(&failure));
                            format!("step {} failed: {}", step.text, failure.message)
                        }
                        other => {
                            if let Some(p) = other.progress() {
                                eprintln!("{wl}: {}", p.message);
                            }
                            match gates.as_ref().and_then(|g| waiting_text(&g.decision())) {
                                Some(why) => format!("step {} timed out: {why}", step.text),
                                None => format!("step {} timed out", step.text),
                            }
                        }
                    };
                    eprintln!("canary failed: {why}; aborting");
                    abort(
                        s,
                        &self.name,
                        self.watch.timeout.max(Duration::from_secs(60)),
                        &why,
                    )
                    .await?;
                    return Ok(outcome);
                }
            }
        }
        // Every pod runs the new revision: the partition goes back to what it was.
        let last = get_set::<StatefulSet>(cluster, &self.name).await?;
        write_object(cluster, last, false, false, |cur: &StatefulSet, _| {
            let o = ended(cur);
            Ok((o != *cur).then_some(o))
        })
        .await?;
        println!("canary promoted: {wl} runs {key} on {replicas} pod(s)");
        Ok(Outcome::Succeeded)
    }

    fn interrupted(&self, s: &Session<'_>) -> Outcome {
        let wl = target(&self.name).to_string();
        eprintln!(
            "interrupted: the canary of {wl} stays as it is (its partition and annotations say how far it got)"
        );
        eprintln!("  resume: re-run the same command");
        eprintln!("  abort:  {}", s.cluster.suggest("canary abort", &wl, ""));
        Outcome::Interrupted
    }
}

/// How an abort ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aborted {
    /// Back on the stable revision, every pod ready.
    Restored,
    /// Written back, but the StatefulSet was not healthy again in time.
    NotRestored,
    Interrupted,
    /// There was no canary to abort.
    NoCanary,
}

/// Puts back the stable template (the StatefulSet's `currentRevision`) and the partition it had,
/// deletes the pods on the canary's revision, and waits (up to `timeout`) for every pod to be
/// ready on the stable one.
pub async fn abort(
    s: &Session<'_>,
    name: &str,
    timeout: Duration,
    why: &str,
) -> Result<Aborted, Error> {
    let cluster = &s.cluster;
    let target = target(name);
    let wl = target.to_string();
    let current: StatefulSet = get_set(cluster, name).await?;
    let Some(canary) = canary_of(&current) else {
        return Ok(Aborted::NoCanary);
    };
    let stable_name = current
        .status
        .as_ref()
        .and_then(|st| st.current_revision.clone())
        .unwrap_or_default();
    let revisions = set_revisions(
        &current,
        &owned_revisions(cluster, &current).await?,
        &owned_pods(cluster, &current).await?,
    );
    let stable = revisions
        .iter()
        .find(|r| r.replica_set == stable_name)
        .ok_or_else(|| {
            Error::RolloutFailed(format!(
                "cannot abort the canary of {wl}: its current revision {stable_name:?} is not among its ControllerRevisions; \
                 put the template back yourself ({})",
                cluster.suggest("undo", &wl, "")
            ))
        })?;
    let cause = format!(
        "{}: canary of {wl} with {} aborted ({why}): back to revision {} ({})",
        cluster.username,
        canary.images,
        stable.number,
        stable.describe()
    );
    let template = normalized_template(&stable.template);
    // The canary's revision, as the controller named it: its pods go after the write.
    let abandoned = current.observed_update_revision();
    write_object(cluster, current, false, false, |cur: &StatefulSet, _| {
        let mut o = ended(cur);
        if !equal_ignore_hash(&o.spec.template, &template) {
            o.spec.template = template.clone();
            o.metadata
                .annotations
                .get_or_insert_default()
                .insert(CHANGE_CAUSE_ANNOTATION.to_owned(), cause.clone());
        }
        Ok((o != *cur).then_some(o))
    })
    .await?;
    eprintln!(
        "{wl}: back to revision {} and partition {}",
        stable.number, canary.original_partition
    );
    replace_pods_off_revision(
        cluster,
        name,
        timeout.min(Duration::from_secs(60)),
        Replace::Abandoned(abandoned),
    )
    .await?;
    let started = std::time::Instant::now();
    let opts = WatchSettings {
        timeout,
        ..WatchSettings::default()
    }
    .options(&s.interrupt);
    let ending = s.watch(&target, format!("{wl} (abort)"), &opts).await?;
    Ok(match ending {
        Ending::Complete(_) => {
            eprintln!(
                "canary aborted: {wl} runs revision {} on every pod again ({})",
                stable.number,
                secs(started.elapsed())
            );
            Aborted::Restored
        }
        Ending::Interrupted(_) => {
            eprintln!(
                "interrupted: the abort of the canary of {wl} was written and goes on in the cluster"
            );
            Aborted::Interrupted
        }
        other => {
            eprintln!(
                "canary aborted, but {wl} is not healthy again: {}",
                other
                    .into_verdict()
                    .map(|v| v.to_string())
                    .unwrap_or_default()
            );
            Aborted::NotRestored
        }
    })
}

/// `canary abort sts/NAME`, typed.
#[derive(Debug, Clone)]
pub struct PartitionCanaryAbort {
    pub name: String,
    /// How long to wait for the stable pods.
    pub timeout: Duration,
}

impl PartitionCanaryAbort {
    pub async fn run(&self, s: &Session<'_>) -> Result<Outcome, Error> {
        Ok(
            match abort(s, &self.name, self.timeout, "canary abort").await? {
                Aborted::Restored => {
                    println!("canary of statefulset/{} aborted", self.name);
                    Outcome::Succeeded
                }
                Aborted::NotRestored => {
                    println!("canary of statefulset/{} aborted", self.name);
                    Outcome::RolloutFailed
                }
                Aborted::Interrupted => Outcome::Interrupted,
                Aborted::NoCanary => {
                    println!("no canary of statefulset/{} to abort", self.name);
                    Outcome::Succeeded
                }
            },
        )
    }
}
