//! The blue-green state machine's writes to the Service: each transition is a pure function of
//! the Service as read (its selector and [`BgState`]) that returns the change to write, or why
//! it must not be written. The plugin sends the change guarded by the Service's
//! resourceVersion and, on a conflict, calls the transition again on the fresh Service — so a
//! concurrent `rollback`, `finish` or second blue-green wins or loses cleanly.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::bluegreen::{
    BgState, Color, Phase, Refusal, ServiceChange, colored_selector, phase_text, selector_color,
};
use super::schema::ts_add;

/// Someone else changed the Service while a transition was under way (the plugin's exit 1: the
/// rollout did not happen as asked, and nothing was clobbered).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    #[error("service/{service} now selects {color}; someone else is switching it")]
    SelectsOther { service: String, color: Color },
    #[error("service/{service} no longer selects {color}; someone else is switching it")]
    NoLongerSelects { service: String, color: Color },
    #[error(
        "service/{service} selects {color} already; not abandoning it (use `blue-green rollback`)"
    )]
    AlreadySwitched { service: String, color: Color },
    #[error("not switching: service/{service} now selects {} (expected {expected}); someone else changed it", .selects.map_or("no colour", Color::as_str))]
    SwitchedByOther {
        service: String,
        selects: Option<Color>,
        expected: Color,
    },
    #[error("not switching: the blue-green state on service/{service} changed meanwhile (phase {}); someone ran rollback or another blue-green", phase_text(*.phase))]
    StateChanged {
        service: String,
        phase: Option<Phase>,
    },
    #[error("service/{service} changed meanwhile (phase {}); not rolling back", phase_text(*.phase))]
    RollbackPreempted {
        service: String,
        phase: Option<Phase>,
    },
    #[error("service/{service} changed meanwhile (phase {}); not switching back", phase_text(*.phase))]
    SwitchBackPreempted {
        service: String,
        phase: Option<Phase>,
    },
}

/// The Service as read: its name, selector and blue-green state.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub service: &'a str,
    pub selector: &'a BTreeMap<String, String>,
    pub state: &'a BgState,
}

impl Seen<'_> {
    fn live(&self) -> Option<Color> {
        selector_color(self.selector)
    }
}

/// What a new blue-green is about: `target` brought up beside `active` with `images` (the
/// images key) for the Deployment `base`.
#[derive(Debug, Clone, Copy)]
pub struct Deploying<'a> {
    pub active: Color,
    pub target: Color,
    pub images: &'a str,
    pub base: &'a str,
}

impl Deploying<'_> {
    fn state(&self) -> BgState {
        BgState {
            phase: Some(Phase::Deploying),
            active: Some(self.active),
            target: Some(self.target),
            images: Some(self.images.to_owned()),
            workload: Some(self.base.to_owned()),
            ..BgState::default()
        }
    }
}

/// First run: narrow the base selector to blue (the same pods) and record `deploying`.
pub fn narrow(seen: Seen<'_>, d: Deploying<'_>) -> Result<ServiceChange, Conflict> {
    match seen.live() {
        None | Some(Color::Blue) => {}
        Some(color) => {
            return Err(Conflict::SelectsOther {
                service: seen.service.to_owned(),
                color,
            });
        }
    }
    Ok(ServiceChange {
        selector: Some(colored_selector(seen.selector, Color::Blue)),
        annotations: Deploying {
            active: Color::Blue,
            ..d
        }
        .state()
        .annotations(),
    })
}

/// Later runs: record that `target` is being brought up beside `active`.
pub fn mark_deploying(seen: Seen<'_>, d: Deploying<'_>) -> Result<ServiceChange, Conflict> {
    if seen.live() != Some(d.active) {
        return Err(Conflict::NoLongerSelects {
            service: seen.service.to_owned(),
            color: d.active,
        });
    }
    Ok(ServiceChange::state(&d.state()))
}

/// The target never got the traffic: record `abandoned` (the selector stays on `active`).
pub fn abandon(seen: Seen<'_>, active: Color, target: Color) -> Result<ServiceChange, Conflict> {
    if seen.live() == Some(target) {
        return Err(Conflict::AlreadySwitched {
            service: seen.service.to_owned(),
            color: target,
        });
    }
    Ok(ServiceChange::state(&BgState {
        phase: Some(Phase::Abandoned),
        active: Some(active),
        target: Some(target),
        ..seen.state.clone()
    }))
}

/// The switch from `d.active` to `d.target` at `now`, the old colour kept for `keep_old`.
/// `Ok(None)`: already done (an earlier attempt, or a previous run, went through).
pub fn switch(
    seen: Seen<'_>,
    d: Deploying<'_>,
    now: Timestamp,
    keep_old: Duration,
) -> Result<Option<ServiceChange>, Conflict> {
    let (from, to) = (d.active, d.target);
    let switched = BgState {
        phase: Some(Phase::Switched),
        active: Some(to),
        previous: Some(from),
        target: None,
        images: Some(d.images.to_owned()),
        switched_at: Some(now),
        keep_until: Some(ts_add(now, keep_old)),
        workload: Some(d.base.to_owned()),
        detached: false,
    };
    match seen.live() {
        Some(c) if c == to => {
            if seen.state.phase == Some(Phase::Switched) && seen.state.active == Some(to) {
                return Ok(None);
            }
            return Ok(Some(ServiceChange::state(&switched)));
        }
        Some(c) if c == from => {}
        other => {
            return Err(Conflict::SwitchedByOther {
                service: seen.service.to_owned(),
                selects: other,
                expected: from,
            });
        }
    }
    if seen.state.phase != Some(Phase::Deploying) || seen.state.target != Some(to) {
        return Err(Conflict::StateChanged {
            service: seen.service.to_owned(),
            phase: seen.state.phase,
        });
    }
    Ok(Some(ServiceChange {
        selector: Some(colored_selector(seen.selector, to)),
        annotations: switched.annotations(),
    }))
}

/// After a switch whose endpoints never settled: back to `from`, `to` abandoned. `None`: the
/// Service no longer selects `to` (nothing to revert).
pub fn revert(seen: Seen<'_>, from: Color, to: Color) -> Option<ServiceChange> {
    if seen.live() != Some(to) {
        return None;
    }
    Some(ServiceChange {
        selector: Some(colored_selector(seen.selector, from)),
        annotations: BgState {
            phase: Some(Phase::Abandoned),
            active: Some(from),
            previous: None,
            target: Some(to),
            keep_until: None,
            ..seen.state.clone()
        }
        .annotations(),
    })
}

/// `blue-green --detach`, after the verified switch to `active`: record that no process watches
/// the rollback window. `Ok(None)`: already recorded. A rollback, finish or another switch
/// meanwhile wins (a conflict: nothing to record).
pub fn detach(seen: Seen<'_>, active: Color) -> Result<Option<ServiceChange>, Conflict> {
    let state = seen.state;
    if seen.live() != Some(active)
        || state.phase != Some(Phase::Switched)
        || state.active != Some(active)
    {
        return Err(Conflict::StateChanged {
            service: seen.service.to_owned(),
            phase: state.phase,
        });
    }
    if state.detached {
        return Ok(None);
    }
    Ok(Some(ServiceChange::state(&BgState {
        detached: true,
        ..state.clone()
    })))
}

/// How ending the rollback window goes: the change to write (if any), the colour to scale down
/// (if any), and the phase the blue-green is in afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    pub change: Option<ServiceChange>,
    pub scale_down: Option<Color>,
    pub phase: Phase,
}

/// Ends the rollback window (`finished`); idempotent. From `rolling-back` (a rollback that could
/// not bring the old colour back) the live colour is kept.
pub fn finish(seen: Seen<'_>) -> Result<Finish, Refusal> {
    let state = seen.state;
    let live = seen.live();
    match state.phase {
        Some(Phase::Switched | Phase::RollingBack) => Ok(Finish {
            change: Some(ServiceChange::state(&BgState {
                phase: Some(Phase::Finished),
                active: live.or(state.active),
                detached: false,
                ..state.clone()
            })),
            scale_down: state.previous.or(live.map(Color::other)),
            phase: Phase::Finished,
        }),
        Some(p @ (Phase::Finished | Phase::RolledBack)) => Ok(Finish {
            change: None,
            scale_down: state.previous,
            phase: p,
        }),
        Some(Phase::Abandoned) => Ok(Finish {
            change: None,
            scale_down: state.target,
            phase: Phase::Abandoned,
        }),
        Some(Phase::Deploying) => Err(Refusal::NothingSwitchedYet {
            target: state.target,
        }),
        None => Err(Refusal::NoState {
            service: seen.service.to_owned(),
        }),
    }
}

/// `blue-green rollback`, first write: claim it (`rolling-back`), so a concurrent `finish` loses
/// or is seen to have won.
pub fn claim_rollback(seen: Seen<'_>, live: Color) -> Result<ServiceChange, Conflict> {
    if seen.live() != Some(live)
        || !matches!(
            seen.state.phase,
            Some(Phase::Switched | Phase::Finished | Phase::RollingBack)
        )
    {
        return Err(Conflict::RollbackPreempted {
            service: seen.service.to_owned(),
            phase: seen.state.phase,
        });
    }
    Ok(ServiceChange::state(&BgState {
        phase: Some(Phase::RollingBack),
        ..seen.state.clone()
    }))
}

/// `blue-green rollback`, the switch back from `live` to `back` at `now`. `Ok(None)`: already
/// switched back.
pub fn switch_back(
    seen: Seen<'_>,
    live: Color,
    back: Color,
    now: Timestamp,
) -> Result<Option<ServiceChange>, Conflict> {
    if seen.live() == Some(back) {
        return Ok(None);
    }
    if seen.live() != Some(live) || seen.state.phase != Some(Phase::RollingBack) {
        return Err(Conflict::SwitchBackPreempted {
            service: seen.service.to_owned(),
            phase: seen.state.phase,
        });
    }
    Ok(Some(ServiceChange {
        selector: Some(colored_selector(seen.selector, back)),
        annotations: BgState {
            phase: Some(Phase::RolledBack),
            active: Some(back),
            previous: Some(live),
            target: None,
            switched_at: Some(now),
            keep_until: None,
            ..seen.state.clone()
        }
        .annotations(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::schema::{COLOR_LABEL, ann};

    fn sel(color: Option<&str>) -> BTreeMap<String, String> {
        let mut s = BTreeMap::from([("app".to_owned(), "shop".to_owned())]);
        if let Some(c) = color {
            s.insert(COLOR_LABEL.to_owned(), c.to_owned());
        }
        s
    }

    fn seen<'a>(selector: &'a BTreeMap<String, String>, state: &'a BgState) -> Seen<'a> {
        Seen {
            service: "shop",
            selector,
            state,
        }
    }

    const D: Deploying<'static> = Deploying {
        active: Color::Blue,
        target: Color::Green,
        images: "app=shop:2",
        base: "shop",
    };

    fn now() -> Timestamp {
        "2026-11-22T23:10:24Z".parse().unwrap()
    }

    #[test]
    fn narrowing_and_marking() {
        let none = BgState::default();
        let base = sel(None);
        let c = narrow(seen(&base, &none), D).unwrap();
        assert_eq!(c.selector, Some(sel(Some("blue"))));
        assert_eq!(c.annotations[ann::PHASE].as_deref(), Some("deploying"));
        assert_eq!(c.annotations[ann::TARGET].as_deref(), Some("green"));
        assert_eq!(c.annotations[ann::WORKLOAD].as_deref(), Some("shop"));
        let green = sel(Some("green"));
        assert_eq!(
            narrow(seen(&green, &none), D).unwrap_err().to_string(),
            "service/shop now selects green; someone else is switching it"
        );
        let blue = sel(Some("blue"));
        let c = mark_deploying(seen(&blue, &none), D).unwrap();
        assert_eq!(c.selector, None);
        assert!(matches!(
            mark_deploying(seen(&green, &none), D),
            Err(Conflict::NoLongerSelects { .. })
        ));
    }

    #[test]
    fn switching_is_guarded_and_idempotent() {
        let blue = sel(Some("blue"));
        let green = sel(Some("green"));
        let deploying = BgState {
            phase: Some(Phase::Deploying),
            active: Some(Color::Blue),
            target: Some(Color::Green),
            ..BgState::default()
        };
        let keep = Duration::from_secs(600);
        let c = switch(seen(&blue, &deploying), D, now(), keep)
            .unwrap()
            .unwrap();
        assert_eq!(c.selector, Some(green.clone()));
        assert_eq!(c.annotations[ann::PHASE].as_deref(), Some("switched"));
        assert_eq!(
            c.annotations[ann::KEEP_UNTIL].as_deref(),
            Some("2026-11-22T23:20:24Z")
        );
        assert_eq!(c.annotations[ann::TARGET], None);
        // The selector already moved but the state did not: only the state is written.
        let c = switch(seen(&green, &deploying), D, now(), keep)
            .unwrap()
            .unwrap();
        assert_eq!(c.selector, None);
        // Both done: nothing to write.
        let switched = BgState::from_annotations(Some(
            &c.annotations
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
                .collect(),
        ));
        assert_eq!(switch(seen(&green, &switched), D, now(), keep), Ok(None));
        // Someone else took the selector, or ran a rollback meanwhile.
        let base = sel(None);
        assert_eq!(
            switch(seen(&base, &deploying), D, now(), keep)
                .unwrap_err()
                .to_string(),
            "not switching: service/shop now selects no colour (expected blue); someone else changed it"
        );
        let rolling = BgState {
            phase: Some(Phase::RollingBack),
            ..deploying.clone()
        };
        assert!(matches!(
            switch(seen(&blue, &rolling), D, now(), keep),
            Err(Conflict::StateChanged {
                phase: Some(Phase::RollingBack),
                ..
            })
        ));
    }

    #[test]
    fn abandon_and_revert() {
        let blue = sel(Some("blue"));
        let green = sel(Some("green"));
        let s = BgState {
            phase: Some(Phase::Deploying),
            images: Some("app=shop:2".into()),
            ..BgState::default()
        };
        let c = abandon(seen(&blue, &s), Color::Blue, Color::Green).unwrap();
        assert_eq!(c.annotations[ann::PHASE].as_deref(), Some("abandoned"));
        assert_eq!(c.annotations[ann::IMAGES].as_deref(), Some("app=shop:2"));
        assert!(abandon(seen(&green, &s), Color::Blue, Color::Green).is_err());
        let c = revert(seen(&green, &s), Color::Blue, Color::Green).unwrap();
        assert_eq!(c.selector, Some(blue.clone()));
        assert_eq!(c.annotations[ann::ACTIVE].as_deref(), Some("blue"));
        assert_eq!(revert(seen(&blue, &s), Color::Blue, Color::Green), None);
    }

    #[test]
    fn detaching() {
        let green = sel(Some("green"));
        let switched = BgState {
            phase: Some(Phase::Switched),
            active: Some(Color::Green),
            previous: Some(Color::Blue),
            keep_until: Some(now()),
            ..BgState::default()
        };
        let c = detach(seen(&green, &switched), Color::Green)
            .unwrap()
            .unwrap();
        assert_eq!(c.selector, None);
        assert_eq!(c.annotations[ann::DETACHED].as_deref(), Some("true"));
        // The window's end stays recorded.
        assert_eq!(
            c.annotations[ann::KEEP_UNTIL].as_deref(),
            Some("2026-11-22T23:10:24Z")
        );
        let detached = BgState {
            detached: true,
            ..switched.clone()
        };
        assert_eq!(detach(seen(&green, &detached), Color::Green), Ok(None));
        // A rollback (or another switch) meanwhile wins.
        let rolling = BgState {
            phase: Some(Phase::RollingBack),
            ..switched.clone()
        };
        assert!(detach(seen(&green, &rolling), Color::Green).is_err());
        assert!(detach(seen(&sel(Some("blue")), &switched), Color::Green).is_err());
        // Finishing clears it.
        let f = finish(seen(&green, &detached)).unwrap();
        assert_eq!(f.change.unwrap().annotations[ann::DETACHED], None);
    }

    #[test]
    fn finishing() {
        let green = sel(Some("green"));
        let switched = BgState {
            phase: Some(Phase::Switched),
            active: Some(Color::Green),
            previous: Some(Color::Blue),
            ..BgState::default()
        };
        let f = finish(seen(&green, &switched)).unwrap();
        assert_eq!(f.scale_down, Some(Color::Blue));
        assert_eq!(f.phase, Phase::Finished);
        assert_eq!(
            f.change.unwrap().annotations[ann::PHASE].as_deref(),
            Some("finished")
        );
        let done = BgState {
            phase: Some(Phase::Finished),
            ..switched.clone()
        };
        assert_eq!(
            finish(seen(&green, &done)).unwrap(),
            Finish {
                change: None,
                scale_down: Some(Color::Blue),
                phase: Phase::Finished
            }
        );
        let abandoned = BgState {
            phase: Some(Phase::Abandoned),
            target: Some(Color::Blue),
            ..BgState::default()
        };
        assert_eq!(
            finish(seen(&green, &abandoned)).unwrap().phase,
            Phase::Abandoned
        );
        let deploying = BgState {
            phase: Some(Phase::Deploying),
            target: Some(Color::Blue),
            ..BgState::default()
        };
        assert_eq!(
            finish(seen(&green, &deploying)).unwrap_err().to_string(),
            "nothing was switched yet (blue is still coming up); `blue-green rollback` abandons it"
        );
        assert_eq!(
            finish(seen(&green, &BgState::default())).unwrap_err(),
            Refusal::NoState {
                service: "shop".into()
            }
        );
    }

    #[test]
    fn rolling_back() {
        let green = sel(Some("green"));
        let blue = sel(Some("blue"));
        let switched = BgState {
            phase: Some(Phase::Switched),
            active: Some(Color::Green),
            previous: Some(Color::Blue),
            keep_until: Some(now()),
            ..BgState::default()
        };
        let c = claim_rollback(seen(&green, &switched), Color::Green).unwrap();
        assert_eq!(c.annotations[ann::PHASE].as_deref(), Some("rolling-back"));
        assert!(matches!(
            claim_rollback(seen(&blue, &switched), Color::Green),
            Err(Conflict::RollbackPreempted { .. })
        ));
        let rolling = BgState {
            phase: Some(Phase::RollingBack),
            ..switched.clone()
        };
        let c = switch_back(seen(&green, &rolling), Color::Green, Color::Blue, now())
            .unwrap()
            .unwrap();
        assert_eq!(c.selector, Some(blue.clone()));
        assert_eq!(c.annotations[ann::PHASE].as_deref(), Some("rolled-back"));
        assert_eq!(c.annotations[ann::PREVIOUS].as_deref(), Some("green"));
        assert_eq!(c.annotations[ann::KEEP_UNTIL], None);
        assert_eq!(
            switch_back(seen(&blue, &rolling), Color::Green, Color::Blue, now()),
            Ok(None)
        );
        assert_eq!(
            switch_back(seen(&green, &switched), Color::Green, Color::Blue, now())
                .unwrap_err()
                .to_string(),
            "service/shop changed meanwhile (phase switched); not switching back"
        );
    }
}
