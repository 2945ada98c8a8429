//! Blue-green on a plain Deployment and Service: the colours, the phases, the state kept in the
//! Service's annotations, and what `blue-green WORKLOAD` / `blue-green rollback` do next.
//!
//! A Deployment's selector is immutable, so the existing Deployment (`shop`, selector
//! `app: shop`) is never re-selected. It becomes the **blue** colour; **green** is a second
//! Deployment `shop-green` whose selector and pod labels are the blue ones plus
//! `rollout-safe.dev/color: green`. The Service's *base* selector (`app: shop`) matches both;
//! the switch narrows it to one colour. The Service's selector is the truth about traffic; its
//! annotations ([`BgState`]) say where the blue-green stands, so every step is resumable.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;

use super::schema::{COLOR_LABEL, ann, annotation, ts_text};
use crate::selector::map_text;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Color {
    Blue,
    Green,
}

impl Color {
    pub fn other(self) -> Color {
        match self {
            Color::Blue => Color::Green,
            Color::Green => Color::Blue,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Color::Blue => "blue",
            Color::Green => "green",
        }
    }

    pub fn parse(s: &str) -> Option<Color> {
        match s {
            "blue" => Some(Color::Blue),
            "green" => Some(Color::Green),
            _ => None,
        }
    }
}

impl std::fmt::Display for Color {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Deployment of a colour: blue is the original Deployment, green is `BASE-green`.
pub fn color_deployment_name(base: &str, color: Color) -> String {
    match color {
        Color::Blue => base.to_owned(),
        Color::Green => format!("{base}-green"),
    }
}

/// Where a blue-green stands (the Service's `blue-green-phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The target colour is being brought up beside the active one; it has no traffic.
    Deploying,
    /// Traffic is on the active colour; the previous colour is kept for the rollback window.
    Switched,
    /// The previous colour has been scaled down.
    Finished,
    /// A rollback is bringing the previous colour back.
    RollingBack,
    /// Traffic went back to the previous colour, the bad one is scaled down.
    RolledBack,
    /// The target colour never got ready (or was abandoned) and is scaled down; no switch.
    Abandoned,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Deploying => "deploying",
            Phase::Switched => "switched",
            Phase::Finished => "finished",
            Phase::RollingBack => "rolling-back",
            Phase::RolledBack => "rolled-back",
            Phase::Abandoned => "abandoned",
        }
    }

    pub fn parse(s: &str) -> Option<Phase> {
        Some(match s {
            "deploying" => Phase::Deploying,
            "switched" => Phase::Switched,
            "finished" => Phase::Finished,
            "rolling-back" => Phase::RollingBack,
            "rolled-back" => Phase::RolledBack,
            "abandoned" => Phase::Abandoned,
            _ => return None,
        })
    }
}

/// `phase` as messages name it: `none` when there is no state.
pub fn phase_text(phase: Option<Phase>) -> &'static str {
    phase.map_or("none", Phase::as_str)
}

/// The blue-green state kept in the Service's annotations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BgState {
    pub phase: Option<Phase>,
    pub active: Option<Color>,
    pub previous: Option<Color>,
    pub target: Option<Color>,
    pub images: Option<String>,
    pub switched_at: Option<Timestamp>,
    pub keep_until: Option<Timestamp>,
    pub workload: Option<String>,
    /// `blue-green --detach` returned after the switch: no process watches the rollback window
    /// (`blue-green finish`, or the next blue-green once it is over, scales the old colour down).
    pub detached: bool,
}

impl BgState {
    pub fn from_annotations(a: Option<&BTreeMap<String, String>>) -> BgState {
        let get = |k: &str| a.and_then(|a| a.get(k)).map(String::as_str);
        let color = |k: &str| get(k).and_then(Color::parse);
        let ts = |k: &str| get(k).and_then(|v| v.parse::<Timestamp>().ok());
        BgState {
            phase: get(ann::PHASE).and_then(Phase::parse),
            active: color(ann::ACTIVE),
            previous: color(ann::PREVIOUS),
            target: color(ann::TARGET),
            images: get(ann::IMAGES).map(str::to_owned),
            switched_at: ts(ann::SWITCHED_AT),
            keep_until: ts(ann::KEEP_UNTIL),
            workload: get(ann::WORKLOAD).map(str::to_owned),
            detached: get(ann::DETACHED) == Some("true"),
        }
    }

    pub fn of(svc: &Service) -> BgState {
        BgState::from_annotations(svc.metadata.annotations.as_ref())
    }

    /// Every annotation of the state: `None` removes it.
    pub fn annotations(&self) -> BTreeMap<String, Option<String>> {
        let c = |c: Option<Color>| c.map(|c| c.as_str().to_owned());
        let t = |t: Option<Timestamp>| t.map(ts_text);
        BTreeMap::from([
            (
                ann::PHASE.to_owned(),
                self.phase.map(|p| p.as_str().to_owned()),
            ),
            (ann::ACTIVE.to_owned(), c(self.active)),
            (ann::PREVIOUS.to_owned(), c(self.previous)),
            (ann::TARGET.to_owned(), c(self.target)),
            (ann::IMAGES.to_owned(), self.images.clone()),
            (ann::SWITCHED_AT.to_owned(), t(self.switched_at)),
            (ann::KEEP_UNTIL.to_owned(), t(self.keep_until)),
            (ann::WORKLOAD.to_owned(), self.workload.clone()),
            (
                ann::DETACHED.to_owned(),
                self.detached.then(|| "true".to_owned()),
            ),
        ])
    }

    /// The annotations that are set (the state as it reads on the Service).
    pub fn set_annotations(&self) -> BTreeMap<String, String> {
        self.annotations()
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect()
    }
}

/// A change to a Service: a whole new selector, and annotations to set (`Some`) or remove
/// (`None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceChange {
    pub selector: Option<BTreeMap<String, String>>,
    pub annotations: BTreeMap<String, Option<String>>,
}

impl ServiceChange {
    /// The state annotations only; the selector stays.
    pub fn state(state: &BgState) -> ServiceChange {
        ServiceChange {
            selector: None,
            annotations: state.annotations(),
        }
    }
}

/// The colour a Service selector selects, if it selects one.
pub fn selector_color(sel: &BTreeMap<String, String>) -> Option<Color> {
    sel.get(COLOR_LABEL).and_then(|c| Color::parse(c))
}

/// The selector without the colour: what every colour's pods match.
pub fn base_selector(sel: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut s = sel.clone();
    s.remove(COLOR_LABEL);
    s
}

/// The base selector narrowed to one colour.
pub fn colored_selector(sel: &BTreeMap<String, String>, color: Color) -> BTreeMap<String, String> {
    let mut s = base_selector(sel);
    s.insert(COLOR_LABEL.to_owned(), color.as_str().to_owned());
    s
}

/// The Service's selector; a Service without one cannot be switched.
pub fn service_selector(svc: &Service) -> Result<BTreeMap<String, String>, Refusal> {
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Refusal::NoSelector {
            service: svc.metadata.name.clone().unwrap_or_default(),
        })
}

/// What a blue-green cannot do as asked (bad input or usage: the plugin's exit 2). The plugin
/// prints them, adding the command to run where one helps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("service/{service} has no selector: blue-green switches a Service's selector")]
    NoSelector { service: String },
    #[error(
        "deployment/{base} is blue-green behind service/{recorded}, not service/{given}; pass --service {recorded}"
    )]
    OtherService {
        base: String,
        recorded: String,
        given: String,
    },
    #[error(
        "deployment/{base} has no blue-green yet (start one with `blue-green deployment/{base} --service SVC --image C=IMG`)"
    )]
    NoBlueGreen { base: String },
    #[error(
        "service/{service} is switched between the colours of deployment/{owner}, not deployment/{base}"
    )]
    ServiceOfOtherWorkload {
        service: String,
        owner: String,
        base: String,
    },
    #[error("service/{service} (selector {}) does not select the pods of deployment/{deployment} (labels {})", map_text(.selector), map_text(.labels))]
    ServiceMissesPods {
        service: String,
        selector: BTreeMap<String, String>,
        deployment: String,
        labels: BTreeMap<String, String>,
    },
    #[error(
        "deployment/{base}'s pods are labelled {COLOR_LABEL}={label}, but the original Deployment is the blue colour"
    )]
    BaseNotBlue { base: String, label: String },
    /// Either colour runs a canary (`canary abort` ends it).
    #[error("deployment/{deployment} has a canary under way; finish or abort it first")]
    CanaryUnderWay { deployment: String },
    #[error("the Service selects {live} but its blue-green state says {} is active: someone changed the selector by hand; fix the selector or the annotations first", color_text(*.active))]
    SelectorChangedByHand { live: Color, active: Option<Color> },
    #[error("the last blue-green (to {live}, images {}) is still in its rollback window, with {previous} kept{}: end it first with `blue-green finish` (keep {live}) or `blue-green rollback` (back to {previous})", .images.as_deref().unwrap_or("?"), .keep_until.map(|t| format!(" until {}", ts_text(t))).unwrap_or_default())]
    InRollbackWindow {
        live: Color,
        previous: Color,
        images: Option<String>,
        keep_until: Option<Timestamp>,
    },
    #[error("a rollback to {live} is under way; complete it with `blue-green rollback` first")]
    RollbackUnderWay { live: Color },
    #[error("nothing was switched yet ({} is still coming up); `blue-green rollback` abandons it", .target.map_or("the new colour", Color::as_str))]
    NothingSwitchedYet { target: Option<Color> },
    #[error("service/{service} has no blue-green state")]
    NoState { service: String },
    #[error("service/{service} does not select a colour: nothing to roll back")]
    NoColorSelected { service: String },
    /// `deployment`: `deployment/shop-green (green)`.
    #[error("cannot roll back: {deployment} no longer exists; service/{service} stays on {live}")]
    PreviousGone {
        deployment: String,
        service: String,
        live: String,
    },
}

fn color_text(c: Option<Color>) -> &'static str {
    c.map_or("?", Color::as_str)
}

/// Which Service a blue-green of `base` is behind: the one `--service` names, else the one the
/// first run recorded on the base Deployment; both given must agree.
pub fn service_of(
    base: &str,
    base_dep: &Deployment,
    given: Option<&str>,
) -> Result<String, Refusal> {
    match (given, annotation(base_dep, ann::SERVICE)) {
        (Some(s), Some(r)) if s != r => Err(Refusal::OtherService {
            base: base.to_owned(),
            recorded: r.to_owned(),
            given: s.to_owned(),
        }),
        (Some(s), _) => Ok(s.to_owned()),
        (None, Some(r)) => Ok(r.to_owned()),
        (None, None) => Err(Refusal::NoBlueGreen {
            base: base.to_owned(),
        }),
    }
}

/// The base Deployment of a colour Deployment (its `blue-green-base`), or itself.
pub fn base_of<'a>(named: &'a str, d: &'a Deployment) -> &'a str {
    annotation(d, ann::BASE).unwrap_or(named)
}

/// A canary of either colour must end before a blue-green starts.
pub fn refuse_during_canary(d: &Deployment) -> Result<(), Refusal> {
    if matches!(
        annotation(d, ann::CANARY_PHASE),
        Some("running" | "promoting")
    ) {
        return Err(Refusal::CanaryUnderWay {
            deployment: d.metadata.name.clone().unwrap_or_default(),
        });
    }
    Ok(())
}

/// The original Deployment is the blue colour: its pods carry no colour label yet, or blue.
pub fn check_base_is_blue(
    base: &str,
    pod_labels: &BTreeMap<String, String>,
) -> Result<(), Refusal> {
    match pod_labels.get(COLOR_LABEL).map(String::as_str) {
        None | Some("blue") => Ok(()),
        Some(other) => Err(Refusal::BaseNotBlue {
            base: base.to_owned(),
            label: other.to_owned(),
        }),
    }
}

/// The next thing `blue-green WORKLOAD --image …` has to do, decided from the Service alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartPlan {
    /// Bring `target` up beside `active` (resuming if it was already under way), then switch.
    /// `first`: the Service does not select a colour yet (label and narrow first).
    Deploy {
        active: Color,
        target: Color,
        first: bool,
    },
    /// The switch to these images already happened: verify, wait out the window, scale down.
    AfterSwitch { active: Color, previous: Color },
    /// The last blue-green (other images) is switched and its rollback window is over: scale
    /// `previous` down (`blue-green finish`), then decide again.
    EndWindow { active: Color, previous: Color },
    /// The live colour already runs these images and nothing is under way.
    AlreadyLive { active: Color },
}

/// Decides from the Service's selector (the truth about traffic) and its state annotations.
/// `images`: [`super::edit::images_key`] of the request; `live_runs_images`: whether the
/// Deployment of the selected colour already runs them; `now`: whether a rollback window is
/// over.
pub fn plan_start(
    state: &BgState,
    live: Option<Color>,
    images: &str,
    live_runs_images: bool,
    now: Timestamp,
) -> Result<StartPlan, Refusal> {
    let Some(live) = live else {
        return Ok(StartPlan::Deploy {
            active: Color::Blue,
            target: Color::Green,
            first: true,
        });
    };
    match state.phase {
        Some(Phase::Deploying) => {
            let target = state.target.filter(|t| *t != live).unwrap_or(live.other());
            Ok(StartPlan::Deploy {
                active: live,
                target,
                first: false,
            })
        }
        Some(Phase::Switched) => {
            if state.active.is_some_and(|a| a != live) {
                return Err(Refusal::SelectorChangedByHand {
                    live,
                    active: state.active,
                });
            }
            let previous = state.previous.unwrap_or(live.other());
            if state.images.as_deref() == Some(images) {
                return Ok(StartPlan::AfterSwitch {
                    active: live,
                    previous,
                });
            }
            if let Window::Over { .. } = rollback_window(state, now) {
                return Ok(StartPlan::EndWindow {
                    active: live,
                    previous,
                });
            }
            Err(Refusal::InRollbackWindow {
                live,
                previous,
                images: state.images.clone(),
                keep_until: state.keep_until,
            })
        }
        Some(Phase::RollingBack) => Err(Refusal::RollbackUnderWay { live }),
        _ if live_runs_images => Ok(StartPlan::AlreadyLive { active: live }),
        _ => Ok(StartPlan::Deploy {
            active: live,
            target: live.other(),
            first: false,
        }),
    }
}

/// Where the rollback window after a switch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// No switch is waiting for its window to end (deploying, finished, rolled back, …).
    NotSwitched,
    /// The old colour is kept until `until`, `left` from now.
    Open { until: Timestamp, left: Duration },
    /// Switched, with no end recorded: the window lasts until `finish` or `rollback`.
    Unbounded,
    /// The window ended at `ended`: `finish` (or the next blue-green) scales the old colour down.
    Over { ended: Timestamp },
}

/// The rollback window of `state` at `now` (whole seconds, as the annotations record times).
pub fn rollback_window(state: &BgState, now: Timestamp) -> Window {
    if state.phase != Some(Phase::Switched) {
        return Window::NotSwitched;
    }
    match state.keep_until {
        None => Window::Unbounded,
        Some(until) if until > now => Window::Open {
            until,
            left: Duration::from_secs(
                until
                    .as_second()
                    .saturating_sub(now.as_second())
                    .max(0)
                    .unsigned_abs(),
            ),
        },
        Some(ended) => Window::Over { ended },
    }
}

/// What a detached (or interrupted) rollback window tells the user to do next, given the
/// commands: `(what to run, why)`.
pub fn window_next_step(window: Window, finish: &str, rollback: &str) -> Option<String> {
    match window {
        Window::NotSwitched => None,
        Window::Open { until, .. } => Some(format!(
            "`{finish}` scales the old colour down now (or the next blue-green does, after {}); `{rollback}` switches back",
            ts_text(until)
        )),
        Window::Unbounded => Some(format!(
            "`{finish}` scales the old colour down; `{rollback}` switches back"
        )),
        Window::Over { .. } => Some(format!(
            "the window is over: `{finish}` scales the old colour down (the next blue-green does it too)"
        )),
    }
}

/// What `blue-green rollback` does, decided from the Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackPlan {
    /// Nothing was switched yet: abandon `target` (it never had traffic).
    Abandon { target: Color },
    /// Already rolled back; `bad` (the colour rolled back from) should be scaled down.
    AlreadyRolledBack { bad: Color },
    /// No switch happened (`abandoned`: the last blue-green was abandoned).
    NothingToRollBack { abandoned: bool },
    /// Bring `back` to strength and switch the Service to it.
    SwitchBack { back: Color },
}

/// Decides `blue-green rollback` from the state and the colour the Service selects.
pub fn plan_rollback(state: &BgState, live: Color) -> RollbackPlan {
    match state.phase {
        Some(Phase::Deploying) => RollbackPlan::Abandon {
            target: state.target.unwrap_or(live.other()),
        },
        Some(Phase::RolledBack) => RollbackPlan::AlreadyRolledBack {
            bad: state.previous.unwrap_or(live.other()),
        },
        Some(Phase::Abandoned) | None => RollbackPlan::NothingToRollBack {
            abandoned: state.phase.is_some(),
        },
        Some(Phase::Switched | Phase::Finished | Phase::RollingBack) => RollbackPlan::SwitchBack {
            back: state
                .previous
                .filter(|p| *p != live)
                .unwrap_or(live.other()),
        },
    }
}

/// How many replicas the colour coming back needs: what it had before it was scaled to 0, else
/// what the live colour runs (at least 1).
pub fn restore_replicas(back: &Deployment, live: &Deployment) -> i32 {
    super::schema::annotation_i32(back, ann::RESTORE_REPLICAS)
        .filter(|n| *n > 0)
        .unwrap_or_else(|| super::schema::replicas(live).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::strategy::schema::ts_add;

    #[test]
    fn colours_and_names() {
        assert_eq!(Color::Blue.other(), Color::Green);
        assert_eq!(color_deployment_name("shop", Color::Blue), "shop");
        assert_eq!(color_deployment_name("shop", Color::Green), "shop-green");
        for p in [
            Phase::Deploying,
            Phase::Switched,
            Phase::Finished,
            Phase::RollingBack,
            Phase::RolledBack,
            Phase::Abandoned,
        ] {
            assert_eq!(Phase::parse(p.as_str()), Some(p));
        }
        assert_eq!(phase_text(None), "none");
        let sel = BTreeMap::from([("app".to_string(), "shop".to_string())]);
        let green = colored_selector(&sel, Color::Green);
        assert_eq!(map_text(&green), "app=shop,rollout-safe.dev/color=green");
        assert_eq!(selector_color(&green), Some(Color::Green));
        assert_eq!(base_selector(&green), sel);
        assert_eq!(selector_color(&sel), None);
    }

    #[test]
    fn state_round_trips_through_annotations() {
        let t: Timestamp = "2026-11-22T23:10:24Z".parse().unwrap();
        let s = BgState {
            phase: Some(Phase::Switched),
            active: Some(Color::Green),
            previous: Some(Color::Blue),
            target: None,
            images: Some("app=shop:2".into()),
            switched_at: Some(t),
            keep_until: Some(ts_add(t, Duration::from_secs(600))),
            workload: Some("shop".into()),
            detached: false,
        };
        let a = s.set_annotations();
        assert_eq!(a[ann::KEEP_UNTIL], "2026-11-22T23:20:24Z");
        assert_eq!(BgState::from_annotations(Some(&a)), s);
        assert_eq!(BgState::from_annotations(None), BgState::default());
        let partial = BgState {
            phase: Some(Phase::Deploying),
            target: Some(Color::Green),
            ..BgState::default()
        };
        let a = partial.set_annotations();
        assert_eq!(a.len(), 2);
        assert_eq!(a[ann::PHASE], "deploying");
        // Unset fields are removals in a change.
        let change = ServiceChange::state(&partial);
        assert_eq!(change.annotations[ann::ACTIVE], None);
        assert_eq!(change.selector, None);
    }

    #[test]
    fn start_plans() {
        let none = BgState::default();
        assert_eq!(
            plan_start(&none, None, "app=shop:2", false, t0()),
            Ok(StartPlan::Deploy {
                active: Color::Blue,
                target: Color::Green,
                first: true
            })
        );
        assert_eq!(
            plan_start(&none, Some(Color::Green), "app=shop:2", false, t0()),
            Ok(StartPlan::Deploy {
                active: Color::Green,
                target: Color::Blue,
                first: false
            })
        );
        let deploying = BgState {
            phase: Some(Phase::Deploying),
            active: Some(Color::Blue),
            target: Some(Color::Green),
            images: Some("app=shop:2".into()),
            ..BgState::default()
        };
        // Resuming (also with other images: the idle colour is simply updated).
        for images in ["app=shop:2", "app=shop:3"] {
            assert_eq!(
                plan_start(&deploying, Some(Color::Blue), images, false, t0()),
                Ok(StartPlan::Deploy {
                    active: Color::Blue,
                    target: Color::Green,
                    first: false
                })
            );
        }
        let switched = BgState {
            phase: Some(Phase::Switched),
            active: Some(Color::Green),
            previous: Some(Color::Blue),
            images: Some("app=shop:2".into()),
            ..BgState::default()
        };
        assert_eq!(
            plan_start(&switched, Some(Color::Green), "app=shop:2", true, t0()),
            Ok(StartPlan::AfterSwitch {
                active: Color::Green,
                previous: Color::Blue
            })
        );
        let e = plan_start(&switched, Some(Color::Green), "app=shop:3", false, t0()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the last blue-green (to green, images app=shop:2) is still in its rollback window, with blue kept: \
             end it first with `blue-green finish` (keep green) or `blue-green rollback` (back to blue)"
        );
        let e = plan_start(&switched, Some(Color::Blue), "app=shop:2", false, t0()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the Service selects blue but its blue-green state says green is active: someone changed the \
             selector by hand; fix the selector or the annotations first"
        );
        let finished = BgState {
            phase: Some(Phase::Finished),
            ..switched.clone()
        };
        assert_eq!(
            plan_start(&finished, Some(Color::Green), "app=shop:2", true, t0()),
            Ok(StartPlan::AlreadyLive {
                active: Color::Green
            })
        );
        assert_eq!(
            plan_start(&finished, Some(Color::Green), "app=shop:3", false, t0()),
            Ok(StartPlan::Deploy {
                active: Color::Green,
                target: Color::Blue,
                first: false
            })
        );
        let rolling = BgState {
            phase: Some(Phase::RollingBack),
            ..switched
        };
        assert_eq!(
            plan_start(&rolling, Some(Color::Green), "x", false, t0()),
            Err(Refusal::RollbackUnderWay { live: Color::Green })
        );
    }

    fn t0() -> Timestamp {
        "2026-11-22T23:10:24Z".parse().unwrap()
    }

    #[test]
    fn the_rollback_window() {
        let switched = BgState {
            phase: Some(Phase::Switched),
            active: Some(Color::Green),
            previous: Some(Color::Blue),
            images: Some("app=shop:2".into()),
            switched_at: Some(t0()),
            keep_until: Some(ts_add(t0(), Duration::from_secs(600))),
            ..BgState::default()
        };
        let at = |secs: u64| ts_add(t0(), Duration::from_secs(secs));
        assert_eq!(
            rollback_window(&switched, at(0)),
            Window::Open {
                until: at(600),
                left: Duration::from_secs(600)
            }
        );
        assert_eq!(
            rollback_window(&switched, at(599)),
            Window::Open {
                until: at(600),
                left: Duration::from_secs(1)
            }
        );
        assert_eq!(
            rollback_window(&switched, at(600)),
            Window::Over { ended: at(600) }
        );
        let unbounded = BgState {
            keep_until: None,
            ..switched.clone()
        };
        assert_eq!(rollback_window(&unbounded, at(10_000)), Window::Unbounded);
        for phase in [Phase::Deploying, Phase::Finished, Phase::RolledBack] {
            let s = BgState {
                phase: Some(phase),
                ..switched.clone()
            };
            assert_eq!(rollback_window(&s, at(700)), Window::NotSwitched);
            assert_eq!(window_next_step(Window::NotSwitched, "f", "r"), None);
        }
        assert_eq!(
            window_next_step(rollback_window(&switched, at(0)), "finish", "rollback").unwrap(),
            "`finish` scales the old colour down now (or the next blue-green does, after 2026-11-22T23:20:24Z); `rollback` switches back"
        );
        assert!(
            window_next_step(rollback_window(&switched, at(601)), "finish", "rollback")
                .unwrap()
                .starts_with("the window is over: `finish`")
        );

        // Other images: refused within the window, and once it is over the old colour is scaled
        // down first.
        assert!(matches!(
            plan_start(&switched, Some(Color::Green), "app=shop:3", false, at(599)),
            Err(Refusal::InRollbackWindow { .. })
        ));
        assert_eq!(
            plan_start(&switched, Some(Color::Green), "app=shop:3", false, at(600)),
            Ok(StartPlan::EndWindow {
                active: Color::Green,
                previous: Color::Blue
            })
        );
        // No end recorded: the window lasts until finish or rollback.
        assert!(matches!(
            plan_start(
                &unbounded,
                Some(Color::Green),
                "app=shop:3",
                false,
                at(10_000)
            ),
            Err(Refusal::InRollbackWindow { .. })
        ));
        // The same images: the run resumes after the switch (and finishes, the window over).
        assert_eq!(
            plan_start(&switched, Some(Color::Green), "app=shop:2", true, at(700)),
            Ok(StartPlan::AfterSwitch {
                active: Color::Green,
                previous: Color::Blue
            })
        );
        // `detached` round-trips through the annotations, and is absent when false.
        let detached = BgState {
            detached: true,
            ..switched.clone()
        };
        let a = detached.set_annotations();
        assert_eq!(a.get(ann::DETACHED).map(String::as_str), Some("true"));
        assert_eq!(BgState::from_annotations(Some(&a)), detached);
        assert!(!switched.set_annotations().contains_key(ann::DETACHED));
    }

    #[test]
    fn rollback_plans() {
        let mut s = BgState {
            phase: Some(Phase::Deploying),
            ..BgState::default()
        };
        assert_eq!(
            plan_rollback(&s, Color::Blue),
            RollbackPlan::Abandon {
                target: Color::Green
            }
        );
        s.phase = Some(Phase::RolledBack);
        s.previous = Some(Color::Green);
        assert_eq!(
            plan_rollback(&s, Color::Blue),
            RollbackPlan::AlreadyRolledBack { bad: Color::Green }
        );
        s.phase = Some(Phase::Abandoned);
        assert_eq!(
            plan_rollback(&s, Color::Blue),
            RollbackPlan::NothingToRollBack { abandoned: true }
        );
        assert_eq!(
            plan_rollback(&BgState::default(), Color::Blue),
            RollbackPlan::NothingToRollBack { abandoned: false }
        );
        for phase in [Phase::Switched, Phase::Finished, Phase::RollingBack] {
            s.phase = Some(phase);
            // `previous` names the live colour (hand-edited): the other one is the way back.
            s.previous = Some(Color::Green);
            assert_eq!(
                plan_rollback(&s, Color::Green),
                RollbackPlan::SwitchBack { back: Color::Blue }
            );
        }
    }

    fn dep(annotations: serde_json::Value, replicas: i32) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "shop", "annotations": annotations},
            "spec": {"replicas": replicas, "selector": {}, "template": {}}
        }))
        .unwrap()
    }

    #[test]
    fn locating_and_guards() {
        let recorded = dep(serde_json::json!({ann::SERVICE: "shop"}), 3);
        assert_eq!(service_of("shop", &recorded, None).unwrap(), "shop");
        assert_eq!(service_of("shop", &recorded, Some("shop")).unwrap(), "shop");
        assert!(
            service_of("shop", &recorded, Some("web"))
                .unwrap_err()
                .to_string()
                .ends_with("pass --service shop")
        );
        let fresh = dep(serde_json::json!({}), 3);
        assert_eq!(service_of("shop", &fresh, Some("web")).unwrap(), "web");
        assert_eq!(
            service_of("shop", &fresh, None),
            Err(Refusal::NoBlueGreen {
                base: "shop".into()
            })
        );
        let green = dep(serde_json::json!({ann::BASE: "shop"}), 3);
        assert_eq!(base_of("shop-green", &green), "shop");
        assert_eq!(base_of("shop", &fresh), "shop");
        assert!(refuse_during_canary(&fresh).is_ok());
        let canary = dep(serde_json::json!({ann::CANARY_PHASE: "running"}), 3);
        assert!(
            refuse_during_canary(&canary)
                .unwrap_err()
                .to_string()
                .contains("canary under way")
        );
        let labels = |v: &str| BTreeMap::from([(COLOR_LABEL.to_owned(), v.to_owned())]);
        assert!(check_base_is_blue("shop", &BTreeMap::new()).is_ok());
        assert!(check_base_is_blue("shop", &labels("blue")).is_ok());
        assert!(check_base_is_blue("shop", &labels("green")).is_err());
        let back = dep(serde_json::json!({ann::RESTORE_REPLICAS: "5"}), 0);
        assert_eq!(restore_replicas(&back, &fresh), 5);
        assert_eq!(restore_replicas(&dep(serde_json::json!({}), 0), &fresh), 3);
        assert_eq!(
            restore_replicas(
                &dep(serde_json::json!({}), 0),
                &dep(serde_json::json!({}), 0)
            ),
            1
        );
    }
}
