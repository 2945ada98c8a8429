//! `blue-green rollback` and `blue-green finish`: acting within the rollback window.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use rollout_safe_policy::selector::map_text;
use rollout_safe_policy::strategy::bluegreen::{
    BgState, Color, Phase, Refusal, RollbackPlan, colored_selector, plan_rollback,
    restore_replicas, selector_color, service_selector,
};
use rollout_safe_policy::strategy::endpoints::endpoints_switched;
use rollout_safe_policy::strategy::gates::{GATES_ANNOTATION, GateDecision, GatesRecord};
use rollout_safe_policy::strategy::schema::{annotation, replicas};
use rollout_safe_policy::strategy::switch;

use super::common::{Bg, abandon, colour_subject, finish_window, with_seen};
use crate::cluster::deployments::scale;
use crate::cluster::services::{wait_endpoints, write_service};
use crate::cluster::watch::Ending;
use crate::error::Error;
use crate::exit::Outcome;
use crate::ops::gates::GateSettings;
use crate::ops::session::{Session, WatchSettings, step_outcome};
use crate::text::{failure_report, secs};

/// `blue-green finish deployment/NAME`: scale the old colour down now — unless a metric gate
/// fails on the colour with traffic (no process may have watched the window).
#[derive(Debug, Clone)]
pub struct BlueGreenFinish {
    /// The original Deployment (or either colour's).
    pub name: String,
    /// `--gate` flags (added to the gates the run recorded on the base Deployment), and how to
    /// reach Prometheus (default: the URL the run recorded).
    pub gates: GateSettings,
    /// Finish even when a gate has no answer (a failing gate still refuses).
    pub ignore_inconclusive_gates: bool,
}

impl BlueGreenFinish {
    pub async fn run(&self, s: &Session<'_>) -> Result<Outcome, Error> {
        let (bg, base_dep) = Bg::locate(s, &self.name, None).await?;
        let svc = bg.service().await?;
        if BgState::of(&svc).phase == Some(Phase::Switched)
            && let Some(live) = selector_color(&service_selector(&svc)?)
        {
            self.check_gates(&bg, &base_dep, live).await?;
        }
        let (prev, phase) = finish_window(&bg).await?;
        let live = selector_color(&service_selector(&bg.service().await?)?);
        let live_text = live.map_or("no colour".to_owned(), |c| bg.show(c));
        match (phase, prev) {
            (Phase::Abandoned, _) => println!(
                "nothing to finish: the last blue-green was abandoned; service/{} selects {live_text}",
                bg.service,
            ),
            (_, Some(p)) => println!(
                "blue-green finished: service/{} sends traffic to {live_text}; {} is scaled to 0",
                bg.service,
                bg.show(p)
            ),
            (_, None) => println!("blue-green finished: service/{}", bg.service),
        }
        Ok(Outcome::Succeeded)
    }

    /// The gates recorded on the base Deployment (and `--gate`'s), checked once on `live`'s
    /// pods: a failing gate refuses (exit 1, `rollback` suggested); one without an answer
    /// refuses too (exit 4) unless `--ignore-inconclusive-gates`.
    async fn check_gates(
        &self,
        bg: &Bg<'_>,
        base_dep: &k8s_openapi::api::apps::v1::Deployment,
        live: Color,
    ) -> Result<(), Error> {
        let workload = format!("deployment/{}", bg.base);
        let record = match annotation(base_dep, GATES_ANNOTATION) {
            Some(text) => {
                Some(
                    GatesRecord::from_json(text).map_err(|source| Error::GateRecord {
                        workload: workload.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let mut gates = match &record {
            Some(r) => r.gates().map_err(|source| Error::GateRecord {
                workload: workload.clone(),
                source,
            })?,
            None => Vec::new(),
        };
        // A flag's gate replaces the recorded one of the same name.
        gates.retain(|g| !self.gates.gates.iter().any(|f| f.name == g.name));
        gates.extend(self.gates.gates.iter().cloned());
        let mut settings = self.gates.clone();
        if settings.prometheus.url.is_empty()
            && let Some(r) = &record
        {
            settings.prometheus.url = r.prometheus.clone();
        }
        if let Some(r) = &record {
            settings.failures = r.gate_failures;
        }
        let Some(mut runner) =
            settings.runner(bg.cluster(), gates, colour_subject(live), &bg.base)?
        else {
            return Ok(());
        };
        runner.begin_step("finish");
        runner.check_now(&bg.wref(live)).await?;
        for line in runner.summary() {
            eprintln!("{}: {line}", bg.show(live));
        }
        let action = format!("blue-green finish of {workload}");
        match runner.last_check() {
            GateDecision::Pass => Ok(()),
            GateDecision::Fail(f) => Err(Error::GateRefused {
                action,
                why: format!(
                    "{} on {} (query sent: {}); {} is kept scaled",
                    f.summary(),
                    bg.show(live),
                    f.query_sent,
                    previous_text(bg, live)
                ),
                hint: Some(format!("to switch back: {}", bg.suggest("rollback"))),
                inconclusive: false,
            }),
            GateDecision::Wait(why) if self.ignore_inconclusive_gates => {
                eprintln!("warning: {why}; finishing anyway (--ignore-inconclusive-gates)");
                Ok(())
            }
            GateDecision::Wait(why) => Err(Error::GateRefused {
                action,
                why: format!("the metric gates cannot be judged: {why}"),
                hint: Some(format!(
                    "retry, pass --ignore-inconclusive-gates, or switch back: {}",
                    bg.suggest("rollback")
                )),
                inconclusive: true,
            }),
        }
    }
}

fn previous_text(bg: &Bg<'_>, live: Color) -> String {
    bg.show(live.other())
}

/// `blue-green rollback deployment/NAME`: switch the Service back to the old colour (scaling it
/// back up first if it was scaled down).
#[derive(Debug, Clone)]
pub struct BlueGreenRollback {
    /// The original Deployment (or either colour's).
    pub name: String,
    /// How long the old colour may take to come back.
    pub timeout: Duration,
    /// How long the Service's EndpointSlices may take to show the old colour.
    pub verify_timeout: Duration,
}

impl BlueGreenRollback {
    pub async fn run(&self, s: &Session<'_>) -> Result<Outcome, Error> {
        let (bg, _) = Bg::locate(s, &self.name, None).await?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let svc = bg.service().await?;
        let state = BgState::of(&svc);
        let Some(live) = selector_color(&service_selector(&svc)?) else {
            return Err(Refusal::NoColorSelected {
                service: bg.service.clone(),
            }
            .into());
        };
        let back = match plan_rollback(&state, live) {
            RollbackPlan::Abandon { target } => {
                return abandon(
                    &bg,
                    live,
                    target,
                    "the rollback abandoned it before the switch",
                    Outcome::Succeeded,
                )
                .await;
            }
            RollbackPlan::AlreadyRolledBack { bad } => {
                if bg
                    .try_deployment(bad)
                    .await?
                    .is_some_and(|d| replicas(&d) > 0)
                {
                    scale(bg.cluster(), &bg.name(bad), 0).await?;
                }
                println!(
                    "already rolled back: service/{} sends traffic to {}",
                    bg.service,
                    bg.show(live)
                );
                return Ok(Outcome::Succeeded);
            }
            RollbackPlan::NothingToRollBack { abandoned } => {
                println!(
                    "nothing to roll back: no switch happened{}; service/{} sends traffic to {}",
                    if abandoned {
                        " (the last blue-green was abandoned)"
                    } else {
                        ""
                    },
                    bg.service,
                    bg.show(live)
                );
                return Ok(Outcome::Succeeded);
            }
            RollbackPlan::SwitchBack { back } => back,
        };
        let Some(back_dep) = bg.try_deployment(back).await? else {
            return Err(Refusal::PreviousGone {
                deployment: bg.show(back),
                service: bg.service.clone(),
                live: bg.show(live),
            }
            .into());
        };

        // 1. Claim the rollback (a concurrent finish loses, or we see it won).
        write_service(bg.cluster(), svc, |cur, _| {
            with_seen(&bg.service, cur, |seen| {
                Ok(Some(switch::claim_rollback(seen, live)?))
            })
        })
        .await?;

        // 2. Bring the old colour back to strength.
        let live_dep = bg.deployment(live).await?;
        let want = restore_replicas(&back_dep, &live_dep);
        if replicas(&back_dep) < want {
            eprintln!("{}: scaling back up to {want}", bg.show(back));
            scale(bg.cluster(), &bg.name(back), want).await?;
        }
        let watch = WatchSettings {
            timeout: self.timeout,
            ..WatchSettings::default()
        };
        // Until the judge calls it complete and every one of its pods is Ready.
        let ending = s
            .watch(
                &bg.wref(back),
                format!("{} (rollback)", bg.show(back)),
                &watch.until(deadline, Some(Duration::ZERO), &s.interrupt),
            )
            .await?;
        if let Some(outcome) = self.came_back(&bg, back, live, ending)? {
            return Ok(outcome);
        }

        // 3. Switch back, in one guarded write.
        let svc = bg.service().await?;
        let written = write_service(bg.cluster(), svc, |cur, _| {
            with_seen(&bg.service, cur, |seen| {
                Ok(switch::switch_back(seen, live, back, Timestamp::now())?)
            })
        })
        .await?;
        if let Some(w) = &written {
            eprintln!(
                "service/{}: switched back {} → {} (one write guarded by resourceVersion {}): selector {}",
                bg.service,
                bg.show(live),
                bg.show(back),
                w.before.metadata.resource_version.as_deref().unwrap_or("?"),
                map_text(&service_selector(&w.after)?)
            );
        }

        // 4. Verify, then scale the bad colour down.
        let back_sel = colored_selector(&service_selector(&bg.service().await?)?, back);
        let (report, ok) = wait_endpoints(
            bg.cluster(),
            &bg.service,
            &back_sel,
            self.verify_timeout,
            endpoints_switched,
        )
        .await?;
        if !ok {
            eprintln!(
                "service/{}: endpoints after the rollback: {}",
                bg.service,
                report.summary(back.as_str())
            );
            eprintln!(
                "{} is left scaled so that nothing is lost; check the Service's EndpointSlices",
                bg.show(live)
            );
            return Ok(Outcome::RolloutFailed);
        }
        eprintln!(
            "service/{}: endpoints verified: {}",
            bg.service,
            report.summary(back.as_str())
        );
        scale(bg.cluster(), &bg.name(live), 0).await?;
        println!(
            "rolled back: service/{} sends traffic to {}; {} scaled to 0",
            bg.service,
            bg.show(back),
            bg.show(live)
        );
        Ok(Outcome::Succeeded)
    }

    /// Whether the colour coming back is complete and Ready; `Some(outcome)`: the rollback
    /// stops there, traffic still on `live`.
    fn came_back(
        &self,
        bg: &Bg<'_>,
        back: Color,
        live: Color,
        ending: Ending,
    ) -> Result<Option<Outcome>, Error> {
        if let Ending::Complete(_) = ending {
            return Ok(None);
        }
        if let Ending::Interrupted(_) = ending {
            return Ok(Some(bg.interrupted(&format!(
                "while {} was scaling back up; traffic is still on {live}",
                bg.show(back)
            ))));
        }
        let outcome = step_outcome(&ending, &bg.show(back), "")?;
        match ending {
            Ending::Failed { failure, .. } => {
                eprintln!("{}", failure_report(&failure));
                eprintln!(
                    "cannot roll back: {} does not come back healthy; service/{} stays on {}",
                    bg.show(back),
                    bg.service,
                    bg.show(live)
                );
            }
            other => {
                eprintln!(
                    "cannot roll back yet: {} not ready within {} ({}); service/{} stays on {}",
                    bg.show(back),
                    secs(self.timeout),
                    other
                        .progress()
                        .map(|p| p.message.clone())
                        .unwrap_or_default(),
                    bg.service,
                    bg.show(live)
                );
            }
        }
        Ok(Some(outcome))
    }
}
