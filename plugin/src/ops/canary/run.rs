//! `canary deployment/NAME --image … --steps …`: the steps, then the promotion.

use std::time::Duration;

use rollout_safe_policy::RolloutPolicy;
use rollout_safe_policy::check::CHANGE_CAUSE_ANNOTATION;
use rollout_safe_policy::gitops::Settings as GitopsSettings;
use rollout_safe_policy::strategy::canary::{
    CanaryPhase, CanaryPlan, CanaryRefusal, CanaryState, blue_green_guard, canary_name,
    canary_split, plan_canary, remaining_steps,
};
use rollout_safe_policy::strategy::edit::{
    ImageSet, edit, images_key, images_text, template_images,
};
use rollout_safe_policy::strategy::schema::{CANARY_TRACK, TRACK_LABEL, ann, annotation};
use rollout_safe_policy::strategy::siblings::{
    derived_template, refreshed_deployment, sibling_deployment,
};

use super::abort::abort;
use crate::cluster::deployments::{
    annotate, create_or_refresh, delete_deployment, get_deployment, set_replicas,
};
use crate::cluster::facts::facts_for;
use crate::cluster::refs::WorkloadRef;
use crate::cluster::watch::GateSource;
use crate::cluster::watch::{Ending, WatchOptions};
use crate::error::{Error, chain};
use crate::exit::Outcome;
use crate::ops::gates::{GateRunner, GateSettings, Subject, waiting_text};
use crate::ops::gitops::refuse_gitops_owned;
use crate::ops::preflight::Preflight;
use crate::ops::session::{Session, WatchSettings, step_outcome};
use crate::ops::update::{SafeUpdate, as_workload};
use crate::text::{failure_report, secs};

/// `canary deployment/NAME --image … --steps … --interval …`, typed.
#[derive(Debug, Clone)]
pub struct Canary {
    /// The stable Deployment.
    pub stable: String,
    pub images: Vec<ImageSet>,
    /// Percentages of the replicas the canary holds at each step (validated:
    /// `strategy::canary::validate_steps`).
    pub steps: Vec<u32>,
    /// How long every canary pod must stay ready at each step before the next.
    pub interval: Duration,
    /// Run (and promote) the canary even when the new spec violates enforced rules.
    pub force: bool,
    pub watch: WatchSettings,
    pub policy: RolloutPolicy,
    /// Metric gates (with the policy file's): each step completes only after every gate passed
    /// since it began; a failing one aborts the canary.
    pub gates: GateSettings,
    /// Argo CD's tracking (never copied onto the canary), and whether a GitOps-owned
    /// Deployment may get a canary.
    pub gitops: GitopsSettings,
}

fn canary_subject() -> Subject {
    Subject {
        color: String::new(),
        track: CANARY_TRACK.to_owned(),
    }
}

impl Canary {
    pub async fn run(&self, s: &Session<'_>) -> Result<Outcome, Error> {
        let cluster = &s.cluster;
        let stable_name = self.stable.clone();
        let key = images_key(&self.images);
        let stable = get_deployment(cluster, &stable_name).await?;
        refuse_gitops_owned(
            &self.gitops,
            "canary",
            &format!("deployment/{stable_name}"),
            &stable.metadata,
        )?;
        // Not the idle colour of a blue-green, nor while one is under way.
        let bg_service = match annotation(&stable, ann::SERVICE) {
            Some(name) => cluster.services().get(name).await.ok(),
            None => None,
        };
        blue_green_guard(&stable, bg_service.as_ref())?;
        let abort_hint =
            || cluster.suggest("canary abort", &format!("deployment/{stable_name}"), "");
        let plan = plan_canary(&stable, &self.images).map_err(|refusal| {
            let hint =
                matches!(refusal, CanaryRefusal::OtherCanaryUnderWay { .. }).then(abort_hint);
            Error::canary(refusal, hint)
        })?;
        let CanaryPlan::Run {
            total,
            reached,
            resuming,
        } = plan
        else {
            println!(
                "deployment/{stable_name} already runs {}: nothing to canary",
                images_text(&template_images(&stable.spec.template))
            );
            return Ok(Outcome::Succeeded);
        };
        let cname = canary_name(&stable_name);
        let deadline = tokio::time::Instant::now() + self.watch.timeout;
        // The policy pre-flight, before anything is written: the canary pods run the stable
        // template with the new images, which is also what the promotion writes (and checks
        // again).
        let promoted = {
            let mut d = edit(&stable, &self.images, &[])?;
            d.metadata.annotations.get_or_insert_default().insert(
                CHANGE_CAUSE_ANNOTATION.to_owned(),
                format!(
                    "{}: canary of deployment/{stable_name} with {key}",
                    cluster.username
                ),
            );
            as_workload(&d)
        };
        Preflight::new(
            self.policy.for_namespace(Some(&cluster.namespace)),
            facts_for(cluster, &as_workload(&stable)).await,
            self.force,
        )
        .check(
            &format!("start a canary of deployment/{stable_name}"),
            &promoted,
            Some(&as_workload(&stable)),
        )?;
        // The gates' pre-flight, before any write: each query once, on the stable version.
        let gates = self.gates.gates_for(
            &self.policy,
            &cluster.namespace,
            &stable.metadata.labels.clone().unwrap_or_default(),
        )?;
        let mut gates = self
            .gates
            .runner(cluster, gates, canary_subject(), &stable_name)?;
        if let Some(g) = &gates {
            g.preflight(
                &WorkloadRef::deployment(&stable_name),
                &Subject {
                    color: String::new(),
                    track: "stable".into(),
                },
            )
            .await?;
        }
        match resuming {
            None => annotate(cluster, &stable_name, &CanaryState::started(total, &key)).await?,
            Some(phase) => eprintln!(
                "resuming the canary of deployment/{stable_name} ({}{})",
                phase.as_str(),
                reached
                    .map(|r| format!(", step {r}% passed"))
                    .unwrap_or_default()
            ),
        }

        if resuming != Some(CanaryPhase::Promoting) {
            let template = derived_template(&stable, &self.images, TRACK_LABEL, CANARY_TRACK)?;
            let cause = format!(
                "{}: canary of deployment/{stable_name} with {}",
                cluster.username,
                images_text(&template_images(&template))
            );
            for p in remaining_steps(&self.steps, reached) {
                if s.interrupted() {
                    return Ok(self.interrupted(s));
                }
                let (c, st) = canary_split(total, p);
                eprintln!("step {p}%: canary {c}, stable {st} (of {total})");
                if let Some(g) = gates.as_mut() {
                    g.begin_step(&format!("{p}%"));
                }
                let wanted = sibling_deployment(
                    &stable,
                    &cname,
                    template.clone(),
                    (TRACK_LABEL, CANARY_TRACK),
                    c,
                    &[
                        (ann::CANARY_OF, &stable_name),
                        (CHANGE_CAUSE_ANNOTATION, &cause),
                    ],
                    &self.gitops.tracking,
                );
                // Canary up first, stable down after: never below the total.
                create_or_refresh(cluster, wanted, |cur| {
                    Ok(refreshed_deployment(
                        cur,
                        &template,
                        c,
                        &[(ann::CANARY_OF, Some(&stable_name))],
                        &cause,
                    )?)
                })
                .await?;
                let opts = self.watch.until(deadline, None, &s.interrupt);
                if let Some(outcome) = self
                    .step(
                        s,
                        p,
                        format!("deployment/{cname} ({p}%)"),
                        &opts,
                        gates.as_mut(),
                    )
                    .await?
                {
                    return Ok(outcome);
                }
                set_replicas(cluster, &stable_name, st).await?;
                eprintln!(
                    "step {p}%: {c} canary pod(s) ready; holding for {} (at most {} restarts)",
                    secs(self.interval),
                    self.watch.max_restarts
                );
                let opts = self
                    .watch
                    .until(deadline, Some(self.interval), &s.interrupt);
                if let Some(outcome) = self
                    .step(
                        s,
                        p,
                        format!("deployment/{cname} ({p}%, holding)"),
                        &opts,
                        gates.as_mut(),
                    )
                    .await?
                {
                    return Ok(outcome);
                }
                annotate(cluster, &stable_name, &CanaryState::step_passed(p)).await?;
                match &gates {
                    Some(g) => eprintln!(
                        "step {p}% passed (metric gates: {})",
                        g.summary().join("; ")
                    ),
                    None => eprintln!("step {p}% passed"),
                }
            }
            annotate(cluster, &stable_name, &CanaryState::promoting()).await?;
        }

        if s.interrupted() {
            return Ok(self.interrupted(s));
        }
        self.promote(s, total, &key, deadline).await
    }

    /// The normal safe update of the stable Deployment, then back to full strength and the
    /// canary deleted.
    async fn promote(
        &self,
        s: &Session<'_>,
        total: i32,
        key: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Outcome, Error> {
        let cluster = &s.cluster;
        let stable_name = &self.stable;
        let cname = canary_name(stable_name);
        eprintln!("promoting: rolling deployment/{stable_name} to {key} with the safe update");
        let update = SafeUpdate {
            name: stable_name.clone(),
            images: self.images.clone(),
            env: Vec::new(),
            cause: Some(format!(
                "{}: canary promoted after steps {}: {}",
                cluster.username,
                self.steps
                    .iter()
                    .map(|s| format!("{s}%"))
                    .collect::<Vec<_>>()
                    .join(","),
                key
            )),
            no_rollback: false,
            force: self.force,
            dry_run: None,
            watch: WatchSettings {
                timeout: deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .max(Duration::from_secs(1)),
                ..self.watch
            },
            policy: self.policy.clone(),
            bake: None,
            // The canary steps judged this version with the gates; the promotion rolls the
            // stable Deployment (scaled down meanwhile) to it and scales it back up.
            gates: None,
            gitops: self.gitops.clone(),
            pause_before_write: false,
        };
        match update.run(s).await {
            Ok(Outcome::Succeeded) => {}
            _ if s.interrupted() => return Ok(self.interrupted(s)),
            Ok(outcome) => {
                return self
                    .failed(
                        s,
                        "the update of the stable Deployment did not complete",
                        outcome,
                    )
                    .await;
            }
            Err(e) => {
                // Said before the abort that follows it; it still ends the command.
                eprintln!("error: {}", chain(&e));
                self.abort_because(s, "the update of the stable Deployment was refused")
                    .await?;
                return Err(Error::Reported(Box::new(e)));
            }
        }
        set_replicas(cluster, stable_name, total).await?;
        let opts = self.watch.until(
            deadline.max(tokio::time::Instant::now() + Duration::from_secs(60)),
            None,
            &s.interrupt,
        );
        let ending = s
            .watch(
                &WorkloadRef::deployment(stable_name),
                format!("deployment/{stable_name} (back to {total})"),
                &opts,
            )
            .await?;
        if !matches!(ending, Ending::Complete(_)) {
            eprintln!(
                "deployment/{stable_name} did not come back to {total} ready replicas ({}); the canary is kept for capacity",
                ending
                    .progress()
                    .map(|p| p.message.clone())
                    .unwrap_or_default()
            );
            return step_outcome(&ending, &format!("deployment/{stable_name}"), "");
        }
        delete_deployment(cluster, &cname).await?;
        annotate(cluster, stable_name, &CanaryState::ended(CanaryPhase::Done)).await?;
        println!(
            "canary promoted: deployment/{stable_name} runs {key} on {total} replica(s); deployment/{cname} deleted"
        );
        Ok(Outcome::Succeeded)
    }

    /// One watch of step `percent`: the canary until complete, or (with a hold) until its pods
    /// stayed Ready for `--interval`. `Some(outcome)`: the canary ends there (aborted when the
    /// step failed or stalled).
    async fn step(
        &self,
        s: &Session<'_>,
        percent: u32,
        title: String,
        opts: &WatchOptions,
        mut gates: Option<&mut GateRunner>,
    ) -> Result<Option<Outcome>, Error> {
        let cname = canary_name(&self.stable);
        let ending = s
            .watch_gated(
                &WorkloadRef::deployment(&cname),
                title,
                opts,
                gates.as_deref_mut().map(|g| g as _),
            )
            .await?;
        if let Ending::Complete(_) = ending {
            return Ok(None);
        }
        if let Ending::Interrupted(_) = ending {
            return Ok(Some(self.interrupted(s)));
        }
        let outcome = step_outcome(
            &ending,
            &format!("deployment/{cname}"),
            " (aborted elsewhere?)",
        )?;
        let why = match ending {
            Ending::Failed { failure, .. } => {
                eprintln!("{}", failure_report(&failure));
                format!("step {percent}% failed: {}", failure.message)
            }
            other => {
                if let Some(p) = other.progress() {
                    eprintln!("deployment/{cname}: {}", p.message);
                }
                match gates.as_deref().and_then(|g| waiting_text(&g.decision())) {
                    Some(why) => {
                        eprintln!("deployment/{cname}: {why}");
                        format!("step {percent}% timed out: {why}")
                    }
                    None => format!("step {percent}% timed out"),
                }
            }
        };
        self.failed(s, &why, outcome).await.map(Some)
    }

    fn interrupted(&self, s: &Session<'_>) -> Outcome {
        let stable = &self.stable;
        eprintln!(
            "interrupted: the canary of deployment/{stable} stays as it is (state kept in its annotations)"
        );
        eprintln!("  resume: re-run the same command");
        eprintln!(
            "  abort:  {}",
            s.cluster
                .suggest("canary abort", &format!("deployment/{stable}"), "")
        );
        Outcome::Interrupted
    }

    /// A failed canary: abort it (stable back to its total, canary deleted), ending as
    /// `outcome`.
    async fn failed(&self, s: &Session<'_>, why: &str, outcome: Outcome) -> Result<Outcome, Error> {
        self.abort_because(s, why).await?;
        Ok(outcome)
    }

    async fn abort_because(&self, s: &Session<'_>, why: &str) -> Result<(), Error> {
        eprintln!("canary failed: {why}; aborting");
        abort(
            s,
            &self.stable,
            self.watch.timeout.max(Duration::from_secs(60)),
        )
        .await?;
        Ok(())
    }
}
