//! Bringing the new colour up, the switch, its verification, and the rollback window after it.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use rollout_safe_policy::board::age_text;
use rollout_safe_policy::judge::Verdict;
use rollout_safe_policy::selector::map_text;
use rollout_safe_policy::strategy::bluegreen::{
    BgState, Color, Phase, Window, colored_selector, phase_text, rollback_window, service_selector,
};
use rollout_safe_policy::strategy::edit::{images_text, template_images};
use rollout_safe_policy::strategy::endpoints::endpoints_switched;
use rollout_safe_policy::strategy::gates::GateDecision;
use rollout_safe_policy::strategy::hold::pod_ready;
use rollout_safe_policy::strategy::schema::{ann, replicas};
use rollout_safe_policy::strategy::siblings::refreshed_deployment;
use rollout_safe_policy::strategy::switch;

use super::actions::BlueGreenRollback;
use super::common::{
    Bg, BlueGreen, Colours, abandon, colour_cause, colour_subject, finish_window, new_colour,
    with_seen,
};
use crate::cluster::deployments::{create_or_refresh, scale};
use crate::cluster::services::{pods_selected, wait_endpoints, write_service};
use crate::cluster::watch::{Ending, GateSource};
use crate::error::Error;
use crate::exit::Outcome;
use crate::ops::gates::{GateRunner, waiting_text};
use crate::ops::preflight::Preflight;
use crate::ops::session::step_outcome;
use crate::ops::update::as_workload;
use crate::text::{failure_report, secs, ts_text};

/// Brings `target` up beside `active` (created, or the idle colour refreshed), watches it to
/// complete and through the `--bake` hold, then switches and keeps the old colour for the
/// rollback window.
pub async fn deploy(
    bg: &Bg<'_>,
    a: &BlueGreen,
    preflight: &mut Preflight,
    key: &str,
    Colours { active, target }: Colours,
    deadline: tokio::time::Instant,
    mut gates: Option<&mut GateRunner>,
) -> Result<Outcome, Error> {
    let active_dep = bg.deployment(active).await?;
    let n = replicas(&active_dep);
    let tname = bg.name(target);
    let wanted = new_colour(
        bg,
        &active_dep,
        &a.images,
        active,
        target,
        &a.gitops.tracking,
    )?;
    preflight.check(
        &format!("bring up {}", bg.show(target)),
        &as_workload(&wanted),
        None,
    )?;
    let template = wanted.spec.template.clone();
    let shown_images = images_text(&template_images(&template));
    let cause = colour_cause(bg, &shown_images, active, target);
    let (base, service) = (bg.base.clone(), bg.service.clone());
    eprintln!(
        "{}: bringing up {n} pod(s) with {shown_images} beside {} (no traffic until the switch)",
        bg.show(target),
        bg.show(active)
    );
    create_or_refresh(bg.cluster(), wanted, |cur| {
        let mut fresh = refreshed_deployment(
            cur,
            &template,
            n,
            &[
                (ann::BASE, Some(&base)),
                (ann::COLOR, Some(target.as_str())),
                (ann::SERVICE, Some(&service)),
                (ann::RESTORE_REPLICAS, None),
            ],
            &cause,
        )?;
        if cur.spec.paused == Some(true) {
            let d = fresh.get_or_insert_with(|| cur.clone());
            d.spec.paused = None;
        }
        Ok(fresh)
    })
    .await?;

    // One watch: the judge until the new colour is complete, then the hold until every new pod
    // has stayed Ready for --bake (a crash or restart meanwhile fails it) and every metric gate
    // passed since it began (a gate failing meanwhile fails it); then a last look at the pods
    // right before the write.
    let tref = bg.wref(target);
    if let Some(g) = gates.as_deref_mut() {
        g.set_subject(colour_subject(target));
        g.begin_step("bake");
    }
    loop {
        let ending =
            bg.s.watch_gated(
                &tref,
                bg.show(target),
                &a.watch.until(deadline, Some(a.bake), &bg.s.interrupt),
                gates.as_deref_mut().map(|g| g as _),
            )
            .await?;
        let stage = |v: &Verdict| {
            if v.is_complete() {
                "baking"
            } else {
                "coming up"
            }
        };
        if let Ending::Interrupted(v) = &ending {
            return Ok(bg.interrupted(&format!(
                "while {} was {} (it has no traffic)",
                bg.show(target),
                stage(v)
            )));
        }
        if !matches!(ending, Ending::Complete(_)) {
            let outcome = step_outcome(
                &ending,
                &format!("deployment/{tname}"),
                " before the switch",
            )?;
            let why = match ending {
                Ending::Failed { failure, .. } => {
                    eprintln!("{}", failure_report(&failure));
                    format!("it failed before the switch: {}", failure.message)
                }
                other => {
                    let v = other.into_verdict();
                    if let Some(v) = &v {
                        eprintln!("{}: {}", bg.show(target), v.progress().message);
                    }
                    let gates_why = gates.as_deref().and_then(|g| waiting_text(&g.decision()));
                    if let Some(why) =
                        gates_why.filter(|_| v.as_ref().is_some_and(Verdict::is_complete))
                    {
                        format!("{why} within --timeout {}", secs(a.watch.timeout))
                    } else if v.as_ref().is_some_and(Verdict::is_complete) {
                        format!(
                            "its pods did not stay ready for --bake {} within --timeout {}",
                            secs(a.bake),
                            secs(a.watch.timeout)
                        )
                    } else {
                        format!(
                            "it was not ready within --timeout {}",
                            secs(a.watch.timeout)
                        )
                    }
                }
            };
            return abandon(bg, active, target, &why, outcome).await;
        }
        let svc = bg.service().await?;
        let new_sel = colored_selector(&service_selector(&svc)?, target);
        let pods = pods_selected(bg.cluster(), &new_sel).await?;
        let ready = pods.iter().filter(|p| pod_ready(p)).count();
        if ready as i64 >= i64::from(n.max(1)) {
            break;
        }
        eprintln!(
            "{}: only {ready} of {n} pods ready right before the switch; holding again",
            bg.show(target)
        );
        if tokio::time::Instant::now() >= deadline {
            return abandon(
                bg,
                active,
                target,
                "its pods did not stay ready",
                Outcome::TimedOut,
            )
            .await;
        }
    }

    if bg.s.interrupted() {
        return Ok(bg.interrupted(&format!(
            "before the switch ({} is ready, with no traffic)",
            bg.show(target)
        )));
    }
    if let Some(outcome) = switch_to(bg, Colours { active, target }, key, a).await? {
        return Ok(outcome);
    }
    after_switch(bg, a, target, active, true, gates).await
}

/// Switches the Service from `active` to `target` in one guarded write, re-checked on every
/// conflict, then verifies the endpoints; on a failed verification switches back and scales
/// `target` down. `Some(outcome)`: stop there.
async fn switch_to(
    bg: &Bg<'_>,
    Colours { active, target }: Colours,
    key: &str,
    a: &BlueGreen,
) -> Result<Option<Outcome>, Error> {
    let svc = bg.service().await?;
    let deploying = switch::Deploying {
        active,
        target,
        images: key,
        base: &bg.base,
    };
    let written = write_service(bg.cluster(), svc, |cur, _| {
        with_seen(&bg.service, cur, |seen| {
            Ok(switch::switch(
                seen,
                deploying,
                Timestamp::now(),
                a.keep_old,
            )?)
        })
    })
    .await?;
    if let Some(w) = &written {
        eprintln!(
            "service/{}: switched {} → {} (one write guarded by resourceVersion {}{}): selector {}",
            bg.service,
            bg.show(active),
            bg.show(target),
            w.before.metadata.resource_version.as_deref().unwrap_or("?"),
            if w.attempts > 1 {
                format!(", after {} attempts", w.attempts)
            } else {
                String::new()
            },
            map_text(&service_selector(&w.after)?)
        );
    }
    verify_or_revert(bg, active, target, a.verify_timeout).await
}

/// After a switch to `to`: the Service's ready endpoints must be exactly `to`'s ready pods.
/// Otherwise the selector goes back to `from` and `to` is scaled down (exit 1).
async fn verify_or_revert(
    bg: &Bg<'_>,
    from: Color,
    to: Color,
    verify: Duration,
) -> Result<Option<Outcome>, Error> {
    let svc = bg.service().await?;
    let to_sel = colored_selector(&service_selector(&svc)?, to);
    let (report, ok) = wait_endpoints(
        bg.cluster(),
        &bg.service,
        &to_sel,
        verify,
        endpoints_switched,
    )
    .await?;
    if ok {
        eprintln!(
            "service/{}: endpoints verified: {}",
            bg.service,
            report.summary(to.as_str())
        );
        return Ok(None);
    }
    eprintln!(
        "service/{}: after {} its endpoints are still not only {to} pods: {}; switching back to {from}",
        bg.service,
        secs(verify),
        report.summary(to.as_str())
    );
    let svc = bg.service().await?;
    write_service(bg.cluster(), svc, |cur, _| {
        with_seen(&bg.service, cur, |seen| Ok(switch::revert(seen, from, to)))
    })
    .await?;
    scale(bg.cluster(), &bg.name(to), 0).await?;
    eprintln!(
        "service/{} is back on {}; {} was scaled to 0",
        bg.service,
        bg.show(from),
        bg.show(to)
    );
    Ok(Some(Outcome::RolloutFailed))
}

/// After the switch: verify the endpoints (unless just done), keep `previous` for the rollback
/// window, then scale it down. Returns early if someone ends the window meanwhile (rollback,
/// finish).
pub async fn after_switch(
    bg: &Bg<'_>,
    a: &BlueGreen,
    active: Color,
    previous: Color,
    verified: bool,
    mut gates: Option<&mut GateRunner>,
) -> Result<Outcome, Error> {
    if !verified
        && let Some(outcome) = verify_or_revert(bg, previous, active, a.verify_timeout).await?
    {
        return Ok(outcome);
    }
    if a.detach {
        return detach(bg, active, previous).await;
    }
    let svc = bg.service().await?;
    let state = BgState::of(&svc);
    let keep_until = state.keep_until.unwrap_or_else(Timestamp::now);
    if keep_until > Timestamp::now() {
        eprintln!(
            "keeping {} scaled for a rollback until {}; Ctrl-C leaves it so: `blue-green finish` scales it down, `blue-green rollback` switches back",
            bg.show(previous),
            ts_text(keep_until)
        );
    }
    // The gates keep judging the new colour, now with traffic, through the window.
    if let Some(g) = gates.as_deref_mut() {
        g.set_subject(colour_subject(active));
        g.begin_step("rollback window");
    }
    let mut shown = Vec::new();
    loop {
        let now = Timestamp::now();
        if keep_until <= now {
            break;
        }
        if let Some(g) = gates.as_deref_mut()
            && g.next_check() <= tokio::time::Instant::now()
        {
            let decision = g.check_now(&bg.wref(active)).await?;
            let lines = g.summary();
            if lines != shown {
                for line in &lines {
                    eprintln!("{}: {line}", bg.show(active));
                }
                shown = lines;
            }
            if let GateDecision::Fail(f) = decision {
                return gate_switch_back(
                    bg,
                    a,
                    active,
                    previous,
                    &f.clone().into_failure(Default::default()),
                )
                .await;
            }
        }
        let mut left = Duration::try_from(keep_until.duration_since(now)).unwrap_or_default();
        if let Some(g) = gates.as_deref() {
            left = left.min(
                g.next_check()
                    .saturating_duration_since(tokio::time::Instant::now()),
            );
        }
        tokio::select! {
            biased;
            () = bg.s.interrupt.wait() => {
                eprintln!("interrupted: traffic is on {}; {} stays scaled until `blue-green finish` (or re-run this command)", bg.show(active), bg.show(previous));
                eprintln!("  finish:   {}", bg.suggest("finish"));
                eprintln!("  rollback: {}", bg.suggest("rollback"));
                return Ok(Outcome::Interrupted);
            },
            _ = tokio::time::sleep(left.min(Duration::from_secs(5))) => {}
        }
        let st = BgState::of(&bg.service().await?);
        if st.phase != Some(Phase::Switched) || st.active != Some(active) {
            println!(
                "service/{}: the blue-green was ended meanwhile (phase {}); nothing more to do here",
                bg.service,
                phase_text(st.phase)
            );
            return Ok(Outcome::Succeeded);
        }
    }
    finish_window(bg).await?;
    println!(
        "blue-green done: service/{} sends traffic to {}; {} scaled to 0 (rollback: {})",
        bg.service,
        bg.show(active),
        bg.show(previous),
        bg.suggest("rollback")
    );
    Ok(Outcome::Succeeded)
}

/// `--detach`: the switch is verified; record that nothing watches the window and return, the
/// old colour left scaled until `finish` (or the next blue-green once the window is over).
async fn detach(bg: &Bg<'_>, active: Color, previous: Color) -> Result<Outcome, Error> {
    let svc = bg.service().await?;
    write_service(bg.cluster(), svc, |cur, _| {
        with_seen(&bg.service, cur, |seen| Ok(switch::detach(seen, active)?))
    })
    .await?;
    let state = BgState::of(&bg.service().await?);
    let window = rollback_window(&state, Timestamp::now());
    let until = match window {
        Window::Open { until, left } => format!(
            "until {} ({} from now)",
            ts_text(until),
            age_text(left.as_secs())
        ),
        Window::Over { .. } => "no longer: the window (--keep-old) is already over".to_owned(),
        _ => "until `blue-green finish`".to_owned(),
    };
    println!(
        "blue-green switched (detached): service/{} sends traffic to {}; {} stays scaled for a rollback {until}",
        bg.service,
        bg.show(active),
        bg.show(previous)
    );
    eprintln!("  nothing watches the window now (metric gates are not checked after the switch):");
    eprintln!("  finish:   {}", bg.suggest("finish"));
    eprintln!("  rollback: {}", bg.suggest("rollback"));
    eprintln!("  status:   {}", bg.suggest("status"));
    eprintln!(
        "  the next blue-green of deployment/{} scales {} down itself once the window is over",
        bg.base,
        bg.show(previous)
    );
    Ok(Outcome::Succeeded)
}

/// A gate failed while the new colour had traffic and this command still watched the window:
/// switch back by itself (the same guarded steps as `blue-green rollback`), exit 1.
async fn gate_switch_back(
    bg: &Bg<'_>,
    a: &BlueGreen,
    active: Color,
    previous: Color,
    failure: &rollout_safe_policy::judge::Failure,
) -> Result<Outcome, Error> {
    eprintln!("{}", failure_report(failure));
    eprintln!(
        "{} fails a metric gate after the switch; switching service/{} back to {}",
        bg.show(active),
        bg.service,
        bg.show(previous)
    );
    let rollback = BlueGreenRollback {
        name: bg.base.clone(),
        timeout: a.watch.timeout,
        verify_timeout: a.verify_timeout,
    };
    match rollback.run(bg.s).await? {
        Outcome::Succeeded => Ok(Outcome::RolloutFailed),
        other => Ok(other),
    }
}
