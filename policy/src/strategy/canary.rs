//! Canary by replica ratio behind the same Service.
//!
//! The canary is a second Deployment, `NAME-canary`, with the stable pod template, the new
//! images and the extra label `rollout-safe.dev/track: canary` (in its selector too, so the two
//! Deployments never fight over pods); its pods keep every label of the stable pods, so every
//! Service that selects the stable pods selects the canary pods too. With a total of T replicas,
//! step p% runs `ceil(T·p/100)` canary pods (at least 1) and the stable Deployment the rest
//! ([`canary_split`]). The state (phase, total, last step passed, images) is kept in annotations
//! on the stable Deployment ([`CanaryState`]), so an interrupted canary resumes at the next step.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;

use super::bluegreen::{BgState, Color, Phase, selector_color};
use super::edit::{ImageSet, images_key, runs_images};
use super::schema::{ann, annotation, annotation_i32, replicas};

/// The canary Deployment of a stable one.
pub fn canary_name(stable: &str) -> String {
    format!("{stable}-canary")
}

/// Where a canary stands (`rollout-safe.dev/canary-phase` on the stable Deployment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CanaryPhase {
    /// Stepping through the percentages.
    Running,
    /// Every step passed: the stable Deployment is being rolled to the new images.
    Promoting,
    Done,
    Aborted,
}

impl CanaryPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            CanaryPhase::Running => "running",
            CanaryPhase::Promoting => "promoting",
            CanaryPhase::Done => "done",
            CanaryPhase::Aborted => "aborted",
        }
    }

    pub fn parse(s: &str) -> Option<CanaryPhase> {
        Some(match s {
            "running" => CanaryPhase::Running,
            "promoting" => CanaryPhase::Promoting,
            "done" => CanaryPhase::Done,
            "aborted" => CanaryPhase::Aborted,
            _ => return None,
        })
    }

    /// Running or promoting: a canary is under way.
    pub fn under_way(self) -> bool {
        matches!(self, CanaryPhase::Running | CanaryPhase::Promoting)
    }
}

/// The canary state kept in the stable Deployment's annotations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CanaryState {
    pub phase: Option<CanaryPhase>,
    /// The replicas shared between stable and canary.
    pub total: Option<i32>,
    /// The last step passed (a percentage).
    pub step: Option<u32>,
    /// The images key of the canary under way.
    pub images: Option<String>,
}

/// Annotations to set (`Some`) or remove (`None`) on the stable Deployment.
pub type AnnotationChange = Vec<(&'static str, Option<String>)>;

impl CanaryState {
    pub fn of(stable: &Deployment) -> CanaryState {
        CanaryState {
            phase: annotation(stable, ann::CANARY_PHASE).and_then(CanaryPhase::parse),
            total: annotation_i32(stable, ann::CANARY_TOTAL),
            step: annotation_i32(stable, ann::CANARY_STEP).and_then(|s| u32::try_from(s).ok()),
            images: annotation(stable, ann::CANARY_IMAGES).map(str::to_owned),
        }
    }

    pub fn under_way(&self) -> bool {
        self.phase.is_some_and(CanaryPhase::under_way)
    }

    /// A canary of `images` over `total` replicas starts.
    pub fn started(total: i32, images: &str) -> AnnotationChange {
        vec![
            (
                ann::CANARY_PHASE,
                Some(CanaryPhase::Running.as_str().to_owned()),
            ),
            (ann::CANARY_TOTAL, Some(total.to_string())),
            (ann::CANARY_IMAGES, Some(images.to_owned())),
            (ann::CANARY_STEP, None),
        ]
    }

    /// Step `percent` passed.
    pub fn step_passed(percent: u32) -> AnnotationChange {
        vec![(ann::CANARY_STEP, Some(percent.to_string()))]
    }

    /// Every step passed.
    pub fn promoting() -> AnnotationChange {
        vec![(
            ann::CANARY_PHASE,
            Some(CanaryPhase::Promoting.as_str().to_owned()),
        )]
    }

    /// The canary ended (`Done` or `Aborted`): the counters go.
    pub fn ended(phase: CanaryPhase) -> AnnotationChange {
        vec![
            (ann::CANARY_PHASE, Some(phase.as_str().to_owned())),
            (ann::CANARY_TOTAL, None),
            (ann::CANARY_STEP, None),
        ]
    }
}

/// What a canary cannot do as asked (bad input or usage: the plugin's exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanaryRefusal {
    #[error("--steps needs at least one percentage, e.g. --steps 10,50,100")]
    NoSteps,
    #[error("--steps: {0} is not a percentage in 1..=100")]
    NotAPercentage(u32),
    #[error("--steps must increase: {}", .0.iter().map(u32::to_string).collect::<Vec<_>>().join(","))]
    StepsNotIncreasing(Vec<u32>),
    #[error("deployment/{canary} is the canary of deployment/{stable}; name the stable Deployment")]
    NamedTheCanary { canary: String, stable: String },
    /// A canary with other images is under way (`canary abort` ends it).
    #[error(
        "a canary of deployment/{stable} with {images} is under way; re-run it with the same images, or abort it first"
    )]
    OtherCanaryUnderWay { stable: String, images: String },
    #[error("deployment/{stable} has no replicas to share with a canary")]
    NoReplicas { stable: String },
    #[error("a blue-green behind service/{service} is under way (phase {}); finish it before a canary", .phase.map_or("?", Phase::as_str))]
    BlueGreenUnderWay {
        service: String,
        phase: Option<Phase>,
    },
    #[error(
        "deployment/{deployment} is the idle {idle} colour (service/{service} sends traffic to {live}); run the canary on the live colour's Deployment"
    )]
    IdleColour {
        deployment: String,
        idle: Color,
        service: String,
        live: Color,
    },
}

/// Steps are percentages in 1..=100, strictly increasing.
pub fn validate_steps(steps: &[u32]) -> Result<(), CanaryRefusal> {
    if steps.is_empty() {
        return Err(CanaryRefusal::NoSteps);
    }
    if let Some(s) = steps.iter().find(|s| **s == 0 || **s > 100) {
        return Err(CanaryRefusal::NotAPercentage(*s));
    }
    if steps.windows(2).any(|w| w[0] >= w[1]) {
        return Err(CanaryRefusal::StepsNotIncreasing(steps.to_vec()));
    }
    Ok(())
}

/// `(canary, stable)` replicas at a step: the canary gets `percent` of `total` rounded up, at
/// least 1 and at most `total`; the stable Deployment the rest, so the total is kept.
pub fn canary_split(total: i32, percent: u32) -> (i32, i32) {
    if total <= 0 {
        return (0, 0);
    }
    let t = i64::from(total);
    let c = ((t * i64::from(percent.min(100)) + 99) / 100).clamp(1, t);
    let c = i32::try_from(c).unwrap_or(total);
    (c, total - c)
}

/// The steps still to run when a canary resumes at `reached` percent (the last step passed).
pub fn remaining_steps(steps: &[u32], reached: Option<u32>) -> Vec<u32> {
    steps
        .iter()
        .copied()
        .filter(|s| reached.is_none_or(|r| *s > r))
        .collect()
}

/// What `canary WORKLOAD --image …` does next, decided from the stable Deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CanaryPlan {
    /// The stable Deployment already runs the images and no canary is under way.
    NothingToDo,
    /// Run the steps after `reached` over `total` replicas, then promote. `resuming`: the phase
    /// of the canary under way, if any (`Promoting`: every step passed; promote only).
    Run {
        total: i32,
        reached: Option<u32>,
        resuming: Option<CanaryPhase>,
    },
}

/// Decides from the stable Deployment's annotations and template.
pub fn plan_canary(stable: &Deployment, images: &[ImageSet]) -> Result<CanaryPlan, CanaryRefusal> {
    let name = stable.metadata.name.clone().unwrap_or_default();
    if let Some(of) = annotation(stable, ann::CANARY_OF) {
        return Err(CanaryRefusal::NamedTheCanary {
            canary: name,
            stable: of.to_owned(),
        });
    }
    let state = CanaryState::of(stable);
    let under_way = state.under_way();
    if under_way && state.images.as_deref() != Some(images_key(images).as_str()) {
        return Err(CanaryRefusal::OtherCanaryUnderWay {
            stable: name,
            images: state.images.unwrap_or_else(|| "?".to_owned()),
        });
    }
    if !under_way && runs_images(&stable.spec.template, images) {
        return Ok(CanaryPlan::NothingToDo);
    }
    let total = if under_way { state.total } else { None }.unwrap_or_else(|| replicas(stable));
    if total < 1 {
        return Err(CanaryRefusal::NoReplicas { stable: name });
    }
    let reached = if state.phase == Some(CanaryPhase::Running) {
        state.step
    } else {
        None
    };
    Ok(CanaryPlan::Run {
        total,
        reached,
        resuming: state.phase.filter(|p| p.under_way()),
    })
}

/// A canary runs on a Deployment that is not the idle side of a blue-green, and not while a
/// blue-green is under way. `service`: the Service a blue-green recorded on the stable
/// Deployment, as read (`None` when there is none, or it cannot be read).
pub fn blue_green_guard(
    stable: &Deployment,
    service: Option<&Service>,
) -> Result<(), CanaryRefusal> {
    let Some(svc) = service else {
        return Ok(());
    };
    let service_name = annotation(stable, ann::SERVICE)
        .map(str::to_owned)
        .or_else(|| svc.metadata.name.clone())
        .unwrap_or_default();
    let state = BgState::of(svc);
    if matches!(
        state.phase,
        Some(Phase::Deploying | Phase::Switched | Phase::RollingBack)
    ) {
        return Err(CanaryRefusal::BlueGreenUnderWay {
            service: service_name,
            phase: state.phase,
        });
    }
    let live = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .and_then(selector_color);
    let mine = annotation(stable, ann::COLOR).and_then(Color::parse);
    if let (Some(live), Some(mine)) = (live, mine)
        && live != mine
    {
        return Err(CanaryRefusal::IdleColour {
            deployment: stable.metadata.name.clone().unwrap_or_default(),
            idle: mine,
            service: service_name,
            live,
        });
    }
    Ok(())
}

/// The replicas an abort restores to the stable Deployment: the recorded total, else what the
/// two Deployments run together (at least 1).
pub fn abort_total(stable: &Deployment, canary: Option<&Deployment>) -> i32 {
    annotation_i32(stable, ann::CANARY_TOTAL)
        .unwrap_or_else(|| replicas(stable) + canary.map_or(0, replicas))
        .max(1)
}

/// Whether `canary abort` has anything to do.
pub fn abort_needed(stable: &Deployment, canary_exists: bool) -> bool {
    canary_exists || CanaryState::of(stable).under_way()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shop(annotations: serde_json::Value, replicas: i32, image: &str) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "shop", "annotations": annotations},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "shop"}},
                "template": {"metadata": {"labels": {"app": "shop"}},
                    "spec": {"containers": [{"name": "app", "image": image}]}}}
        }))
        .unwrap()
    }

    fn v2() -> Vec<ImageSet> {
        vec![ImageSet {
            container: "app".into(),
            image: "shop:2".into(),
        }]
    }

    #[test]
    fn canary_arithmetic() {
        assert_eq!(canary_name("shop"), "shop-canary");
        assert_eq!(canary_split(10, 10), (1, 9));
        assert_eq!(canary_split(10, 50), (5, 5));
        assert_eq!(canary_split(10, 100), (10, 0));
        assert_eq!(canary_split(3, 10), (1, 2));
        assert_eq!(canary_split(3, 50), (2, 1));
        assert_eq!(canary_split(4, 25), (1, 3));
        assert_eq!(canary_split(4, 26), (2, 2));
        assert_eq!(canary_split(1, 1), (1, 0));
        assert_eq!(canary_split(7, 33), (3, 4));
        assert_eq!(canary_split(0, 50), (0, 0));
        for total in 1..=50 {
            for p in 1..=100 {
                let (c, s) = canary_split(total, p);
                assert_eq!(c + s, total);
                assert!(c >= 1 && c <= total);
                assert!(
                    i64::from(c) * 100 >= i64::from(total) * i64::from(p),
                    "{total} {p}"
                );
            }
        }
        assert!(validate_steps(&[10, 50, 100]).is_ok());
        assert_eq!(validate_steps(&[]), Err(CanaryRefusal::NoSteps));
        assert_eq!(
            validate_steps(&[0, 50]),
            Err(CanaryRefusal::NotAPercentage(0))
        );
        assert!(validate_steps(&[10, 101]).is_err());
        assert_eq!(
            validate_steps(&[50, 10]).unwrap_err().to_string(),
            "--steps must increase: 50,10"
        );
        assert!(validate_steps(&[50, 50]).is_err());
        assert_eq!(remaining_steps(&[10, 50, 100], None), [10, 50, 100]);
        assert_eq!(remaining_steps(&[10, 50, 100], Some(10)), [50, 100]);
        assert_eq!(
            remaining_steps(&[10, 50, 100], Some(100)),
            Vec::<u32>::new()
        );
    }

    #[test]
    fn state_round_trips_through_annotations() {
        let mut d = shop(json!({}), 4, "shop:1");
        assert_eq!(CanaryState::of(&d), CanaryState::default());
        let apply = |d: &mut Deployment, change: AnnotationChange| {
            for (k, v) in change {
                crate::strategy::schema::set_annotation(d, k, v.as_deref());
            }
        };
        apply(&mut d, CanaryState::started(4, "app=shop:2"));
        apply(&mut d, CanaryState::step_passed(50));
        let s = CanaryState::of(&d);
        assert_eq!(s.phase, Some(CanaryPhase::Running));
        assert_eq!((s.total, s.step), (Some(4), Some(50)));
        assert_eq!(s.images.as_deref(), Some("app=shop:2"));
        assert!(s.under_way());
        apply(&mut d, CanaryState::promoting());
        assert_eq!(CanaryState::of(&d).phase, Some(CanaryPhase::Promoting));
        apply(&mut d, CanaryState::ended(CanaryPhase::Aborted));
        let s = CanaryState::of(&d);
        assert_eq!(s.phase, Some(CanaryPhase::Aborted));
        assert_eq!((s.total, s.step), (None, None));
        assert!(!s.under_way());
        for p in [
            CanaryPhase::Running,
            CanaryPhase::Promoting,
            CanaryPhase::Done,
            CanaryPhase::Aborted,
        ] {
            assert_eq!(CanaryPhase::parse(p.as_str()), Some(p));
        }
    }

    #[test]
    fn plans() {
        // A fresh canary over the current replicas.
        let d = shop(json!({}), 4, "shop:1");
        assert_eq!(
            plan_canary(&d, &v2()),
            Ok(CanaryPlan::Run {
                total: 4,
                reached: None,
                resuming: None
            })
        );
        // Already running these images.
        let d = shop(json!({}), 4, "shop:2");
        assert_eq!(plan_canary(&d, &v2()), Ok(CanaryPlan::NothingToDo));
        // Resuming after step 10% (the stable side was scaled down meanwhile).
        let d = shop(
            json!({ann::CANARY_PHASE: "running", ann::CANARY_TOTAL: "10", ann::CANARY_STEP: "10", ann::CANARY_IMAGES: "app=shop:2"}),
            9,
            "shop:1",
        );
        assert_eq!(
            plan_canary(&d, &v2()),
            Ok(CanaryPlan::Run {
                total: 10,
                reached: Some(10),
                resuming: Some(CanaryPhase::Running)
            })
        );
        // Promoting: no step is left, whatever the recorded step.
        let d = shop(
            json!({ann::CANARY_PHASE: "promoting", ann::CANARY_TOTAL: "10", ann::CANARY_STEP: "100", ann::CANARY_IMAGES: "app=shop:2"}),
            0,
            "shop:2",
        );
        assert_eq!(
            plan_canary(&d, &v2()),
            Ok(CanaryPlan::Run {
                total: 10,
                reached: None,
                resuming: Some(CanaryPhase::Promoting)
            })
        );
        // Other images under way.
        let d = shop(
            json!({ann::CANARY_PHASE: "running", ann::CANARY_IMAGES: "app=shop:3"}),
            4,
            "shop:1",
        );
        assert_eq!(
            plan_canary(&d, &v2()).unwrap_err().to_string(),
            "a canary of deployment/shop with app=shop:3 is under way; re-run it with the same images, or abort it first"
        );
        let d = shop(json!({ann::CANARY_OF: "web"}), 1, "shop:1");
        assert!(matches!(
            plan_canary(&d, &v2()),
            Err(CanaryRefusal::NamedTheCanary { .. })
        ));
        let d = shop(json!({}), 0, "shop:1");
        assert_eq!(
            plan_canary(&d, &v2()),
            Err(CanaryRefusal::NoReplicas {
                stable: "shop".into()
            })
        );
    }

    #[test]
    fn blue_green_and_canary_do_not_mix() {
        let svc = |phase: Option<&str>, color: &str| -> Service {
            let mut a = serde_json::Map::new();
            if let Some(p) = phase {
                a.insert(ann::PHASE.into(), json!(p));
            }
            serde_json::from_value(json!({
                "metadata": {"name": "shop", "annotations": a},
                "spec": {"selector": {"app": "shop", "rollout-safe.dev/color": color}}
            }))
            .unwrap()
        };
        let blue = shop(
            json!({ann::SERVICE: "shop", ann::COLOR: "blue"}),
            3,
            "shop:1",
        );
        assert!(blue_green_guard(&blue, None).is_ok());
        assert!(blue_green_guard(&blue, Some(&svc(Some("finished"), "blue"))).is_ok());
        assert_eq!(
            blue_green_guard(&blue, Some(&svc(Some("finished"), "green")))
                .unwrap_err()
                .to_string(),
            "deployment/shop is the idle blue colour (service/shop sends traffic to green); run the canary on the live colour's Deployment"
        );
        assert!(matches!(
            blue_green_guard(&blue, Some(&svc(Some("switched"), "blue"))),
            Err(CanaryRefusal::BlueGreenUnderWay {
                phase: Some(Phase::Switched),
                ..
            })
        ));
    }

    #[test]
    fn aborting() {
        let stable = shop(json!({ann::CANARY_TOTAL: "6"}), 3, "shop:1");
        assert_eq!(abort_total(&stable, None), 6);
        let stable = shop(json!({}), 3, "shop:1");
        let canary = shop(json!({}), 2, "shop:2");
        assert_eq!(abort_total(&stable, Some(&canary)), 5);
        assert_eq!(abort_total(&shop(json!({}), 0, "x"), None), 1);
        assert!(!abort_needed(&stable, false));
        assert!(abort_needed(&stable, true));
        let running = shop(json!({ann::CANARY_PHASE: "promoting"}), 3, "shop:1");
        assert!(abort_needed(&running, false));
    }
}
