//! `blue-green deployment/NAME --service SVC --image …`: what the run does next, the first
//! run's labelling and narrowing, and the new colour's spec.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::Timestamp;
use rollout_safe_policy::check::CHANGE_CAUSE_ANNOTATION;
use rollout_safe_policy::judge::{equal_ignore_hash, normalized_template};
use rollout_safe_policy::selector::{map_selects, map_text};
use rollout_safe_policy::strategy::bluegreen::{
    BgState, Color, Phase, Refusal, StartPlan, base_selector, colored_selector, plan_start,
    selector_color, service_selector,
};
use rollout_safe_policy::strategy::edit::{images_key, images_text, runs_images, template_images};
use rollout_safe_policy::strategy::endpoints::endpoints_switched;
use rollout_safe_policy::strategy::schema::{COLOR_LABEL, ann};
use rollout_safe_policy::strategy::siblings::template_labels;
use rollout_safe_policy::strategy::{bluegreen, switch};

use super::common::{Bg, BlueGreen, Colours, colour_subject, finish_window, new_colour, with_seen};
use super::deploy::{after_switch, deploy};
use crate::cluster::facts::facts_for;
use crate::cluster::patch::write_deployment;
use crate::cluster::rollback::{RollbackPlan, write_rollback};
use crate::cluster::services::{wait_endpoints, write_service};
use crate::cluster::watch::Ending;
use crate::error::Error;
use crate::exit::Outcome;
use crate::ops::gates::GateRunner;
use crate::ops::gitops::refuse_gitops_owned;
use crate::ops::preflight::Preflight;
use crate::ops::session::{Session, WatchSettings, outcome_of};
use crate::ops::update::as_workload;
use crate::text::{failure_report, secs, ts_text};

impl BlueGreen {
    pub async fn run(&self, s: &Session<'_>) -> Result<Outcome, Error> {
        let key = images_key(&self.images);
        let (bg, base_dep) = Bg::locate(s, &self.name, Some(&self.service)).await?;
        bg.refuse_during_canary(&base_dep)?;
        refuse_gitops_owned(
            &self.gitops,
            "blue-green",
            &format!("deployment/{}", bg.base),
            &base_dep.metadata,
        )?;
        let svc = bg.service().await?;
        let sel = service_selector(&svc)?;
        let state = BgState::of(&svc);
        if let Some(w) = state.workload.as_deref().filter(|w| *w != bg.base) {
            return Err(Refusal::ServiceOfOtherWorkload {
                service: bg.service.clone(),
                owner: w.to_owned(),
                base: bg.base.clone(),
            }
            .into());
        }
        let live = selector_color(&sel);
        let live_dep = bg.deployment(live.unwrap_or(Color::Blue)).await?;
        bg.refuse_during_canary(&live_dep)?;
        let live_labels = template_labels(&live_dep.spec.template);
        if !map_selects(&base_selector(&sel), &live_labels) {
            return Err(Refusal::ServiceMissesPods {
                service: bg.service.clone(),
                selector: sel,
                deployment: bg.name(live.unwrap_or(Color::Blue)),
                labels: live_labels,
            }
            .into());
        }
        let mut plan = plan_start(
            &state,
            live,
            &key,
            runs_images(&live_dep.spec.template, &self.images),
            Timestamp::now(),
        )?;
        let mut live_dep = live_dep;
        if let StartPlan::EndWindow { active, previous } = plan {
            // The last blue-green (detached, or interrupted) left the old colour scaled; its
            // window is over: scale it down as `blue-green finish` would, then decide again.
            let ended = state.keep_until.map_or("?".to_owned(), ts_text);
            finish_window(&bg).await?;
            eprintln!(
                "the rollback window of the last blue-green (to {active}, images {}) ended at {ended}: {} scaled to 0 before this one",
                state.images.as_deref().unwrap_or("?"),
                bg.show(previous)
            );
            let state = BgState::of(&bg.service().await?);
            live_dep = bg.deployment(active).await?;
            plan = plan_start(
                &state,
                Some(active),
                &key,
                runs_images(&live_dep.spec.template, &self.images),
                Timestamp::now(),
            )?;
        }
        let live_dep = live_dep;
        let deadline = tokio::time::Instant::now() + self.watch.timeout;
        match plan {
            StartPlan::EndWindow { .. } => Err(Error::RolloutFailed(format!(
                "service/{}: the rollback window of the last blue-green is still recorded as open after `finish`; check its annotations",
                bg.service
            ))),
            StartPlan::AlreadyLive { active } => {
                println!(
                    "service/{} already sends traffic to {}, which runs {}: nothing to do",
                    bg.service,
                    bg.show(active),
                    images_text(&template_images(&live_dep.spec.template))
                );
                Ok(Outcome::Succeeded)
            }
            StartPlan::AfterSwitch { active, previous } => {
                eprintln!(
                    "resuming: service/{} was already switched to {} (from {previous})",
                    bg.service,
                    bg.show(active)
                );
                let mut gates = self.gate_runner(&bg, &base_dep, active)?;
                after_switch(&bg, self, active, previous, false, gates.as_mut()).await
            }
            StartPlan::Deploy {
                active,
                target,
                first,
            } => {
                // The policy pre-flight of the new colour, before anything is written (the
                // first run's labelling and narrowing included). `deploy` checks it again, on
                // the template derived from the active colour as it is then.
                let wanted = new_colour(
                    &bg,
                    &live_dep,
                    &self.images,
                    active,
                    target,
                    &self.gitops.tracking,
                )?;
                let facts = facts_for(bg.cluster(), &as_workload(&wanted)).await;
                let mut preflight = Preflight::new(
                    self.policy.for_namespace(Some(&bg.cluster().namespace)),
                    facts,
                    self.force,
                );
                preflight.check(
                    &format!("bring up {}", bg.show(target)),
                    &as_workload(&wanted),
                    None,
                )?;
                // The gates' pre-flight, before any write: each query once, on the live colour.
                let mut gates = self.gate_runner(&bg, &base_dep, target)?;
                if let Some(g) = &gates {
                    g.preflight(&bg.wref(active), &colour_subject(active))
                        .await?;
                }
                if state.phase == Some(Phase::Deploying) {
                    eprintln!(
                        "resuming: {} was being brought up beside {} (images {})",
                        bg.show(target),
                        bg.show(active),
                        state.images.as_deref().unwrap_or("?")
                    );
                }
                let colours = Colours { active, target };
                if first {
                    if let Some(outcome) = adopt_blue(&bg, live_dep, &self.watch, deadline).await? {
                        return Ok(outcome);
                    }
                    narrow(&bg, target, &key, self.verify_timeout).await?;
                } else {
                    mark_deploying(&bg, colours, &key).await?;
                }
                if s.interrupted() {
                    return Ok(bg.interrupted("before the new colour was brought up"));
                }
                deploy(
                    &bg,
                    self,
                    &mut preflight,
                    &key,
                    colours,
                    deadline,
                    gates.as_mut(),
                )
                .await
            }
        }
    }

    /// The gates for this blue-green (the policy file's for the base Deployment, and the
    /// flags'), judging `subject`'s pods, recorded on the base Deployment.
    fn gate_runner(
        &self,
        bg: &Bg<'_>,
        base_dep: &Deployment,
        subject: Color,
    ) -> Result<Option<GateRunner>, Error> {
        let gates = self.gates.gates_for(
            &self.policy,
            &bg.cluster().namespace,
            &base_dep.metadata.labels.clone().unwrap_or_default(),
        )?;
        self.gates
            .runner(bg.cluster(), gates, colour_subject(subject), &bg.base)
    }
}

/// First run: give the original Deployment's pods `rollout-safe.dev/color: blue` (a rolling
/// update of the template labels, guarded, watched, rolled back on failure) and record the
/// Service on it. `Some(outcome)`: stop there.
async fn adopt_blue(
    bg: &Bg<'_>,
    base_dep: Deployment,
    watch: &WatchSettings,
    deadline: tokio::time::Instant,
) -> Result<Option<Outcome>, Error> {
    bluegreen::check_base_is_blue(&bg.base, &template_labels(&base_dep.spec.template))?;
    let cluster = bg.cluster();
    let user = cluster.username.clone();
    let service = bg.service.clone();
    let base = bg.base.clone();
    let written = write_deployment(cluster, base_dep, false, false, |cur, _| {
        let mut d = cur.clone();
        let labels = d.spec.template.metadata.get_or_insert_default().labels.get_or_insert_default();
        let relabel = labels.get(COLOR_LABEL).map(String::as_str) != Some("blue");
        labels.insert(COLOR_LABEL.to_owned(), "blue".to_owned());
        let a = d.metadata.annotations.get_or_insert_default();
        a.insert(ann::SERVICE.to_owned(), service.clone());
        a.insert(ann::COLOR.to_owned(), "blue".to_owned());
        a.insert(ann::BASE.to_owned(), base.clone());
        if relabel {
            a.insert(
                CHANGE_CAUSE_ANNOTATION.to_owned(),
                format!("{user}: label pods {COLOR_LABEL}=blue for blue-green behind service/{service} (no image change)"),
            );
        }
        Ok((d != *cur).then_some(d))
    })
    .await?;
    let Some(w) = written else { return Ok(None) };
    if equal_ignore_hash(&w.before.spec.template, &w.after.spec.template) {
        return Ok(None);
    }
    eprintln!(
        "deployment/{}: labelling its pods {COLOR_LABEL}=blue (a rolling update; the Service still selects them all)",
        bg.base
    );
    let ending =
        bg.s.watch(
            &bg.wref(Color::Blue),
            format!("{} (labelling blue)", bg.show(Color::Blue)),
            &watch.until(deadline, None, &bg.s.interrupt),
        )
        .await?;
    let outcome = outcome_of(&ending, &format!("deployment/{}", bg.base), "")?;
    let why = match ending {
        // Paused: the labels roll out on resume; the Service selects every pod meanwhile.
        Ending::Complete(_) | Ending::Paused(_) => return Ok(None),
        Ending::Interrupted(_) => {
            return Ok(Some(
                bg.interrupted("while the blue pods were being labelled"),
            ));
        }
        Ending::Failed { failure, .. } => {
            eprintln!("{}", failure_report(&failure));
            "the labelling rollout failed"
        }
        Ending::TimedOut(v) => {
            eprintln!("timed out: {}", v.progress().message);
            "the labelling rollout timed out"
        }
        Ending::Unsupported(_) | Ending::Deleted => return Ok(Some(outcome)),
    };
    let plan = RollbackPlan {
        template: normalized_template(&w.before.spec.template),
        cause: format!("{} : rollback of the blue label ({why})", cluster.username),
        only_if_template: Some(w.after.spec.template.clone()),
    };
    let current = bg.deployment(Color::Blue).await?;
    write_rollback(cluster, current, &plan, false).await?;
    eprintln!(
        "{why}; deployment/{} rolled back to its unlabelled template; the Service was not touched",
        bg.base
    );
    Ok(Some(outcome))
}

/// First run: narrow the Service from its base selector to the blue colour, once every ready
/// endpoint is a blue pod (so the narrowing drops nothing), and verify it.
async fn narrow(bg: &Bg<'_>, target: Color, key: &str, verify: Duration) -> Result<(), Error> {
    let cluster = bg.cluster();
    let svc = bg.service().await?;
    let sel = service_selector(&svc)?;
    let blue_sel = colored_selector(&sel, Color::Blue);
    if selector_color(&sel).is_none() {
        let (report, ok) =
            wait_endpoints(cluster, &bg.service, &blue_sel, verify, endpoints_switched).await?;
        if !ok {
            return Err(Error::RolloutFailed(format!(
                "not narrowing service/{} to the blue pods: its ready endpoints are not all blue pods after {} \
                 ({}); nothing was switched",
                bg.service,
                secs(verify),
                report.summary("blue")
            )));
        }
    }
    let deploying = switch::Deploying {
        active: Color::Blue,
        target,
        images: key,
        base: &bg.base,
    };
    let written = write_service(cluster, svc, |cur, _| {
        with_seen(&bg.service, cur, |seen| {
            Ok(Some(switch::narrow(seen, deploying)?))
        })
    })
    .await?;
    if let Some(w) = &written
        && selector_color(&service_selector(&w.before)?).is_none()
    {
        eprintln!(
            "service/{}: selector narrowed from {} to {} (the same pods)",
            bg.service,
            map_text(&service_selector(&w.before)?),
            map_text(&blue_sel)
        );
    }
    let (report, ok) =
        wait_endpoints(cluster, &bg.service, &blue_sel, verify, endpoints_switched).await?;
    if ok {
        return Ok(());
    }
    eprintln!(
        "service/{}: endpoints after narrowing: {}",
        bg.service,
        report.summary("blue")
    );
    Err(Error::RolloutFailed(format!(
        "service/{}'s endpoints did not settle on the blue pods after narrowing; check `kubectl get endpointslices -l kubernetes.io/service-name={}`",
        bg.service, bg.service
    )))
}

/// Records on the Service that `target` is being brought up beside `active`.
async fn mark_deploying(bg: &Bg<'_>, colours: Colours, key: &str) -> Result<(), Error> {
    let svc = bg.service().await?;
    let deploying = switch::Deploying {
        active: colours.active,
        target: colours.target,
        images: key,
        base: &bg.base,
    };
    write_service(bg.cluster(), svc, |cur, _| {
        with_seen(&bg.service, cur, |seen| {
            Ok(Some(switch::mark_deploying(seen, deploying)?))
        })
    })
    .await?;
    Ok(())
}
