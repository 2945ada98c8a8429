//! One blue-green as the operations see it: the base Deployment, the Service, and what they
//! share (finding them, naming the colours, telling the user how to go on).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use rollout_safe_policy::RolloutPolicy;
use rollout_safe_policy::check::CHANGE_CAUSE_ANNOTATION;
use rollout_safe_policy::gitops::{Settings as GitopsSettings, Tracking};
use rollout_safe_policy::strategy::bluegreen::{
    BgState, Color, Phase, Refusal, base_of, color_deployment_name, refuse_during_canary,
    selector_color, service_of, service_selector,
};
use rollout_safe_policy::strategy::edit::{ImageSet, images_text, template_images};
use rollout_safe_policy::strategy::schema::{COLOR_LABEL, ann, replicas};
use rollout_safe_policy::strategy::siblings::{derived_template, sibling_deployment};
use rollout_safe_policy::strategy::switch::{self, Seen};

use crate::cluster::client::Cluster;
use crate::cluster::deployments::scale;
use crate::cluster::deployments::{get_deployment, try_get_deployment};
use crate::cluster::refs::WorkloadRef;
use crate::cluster::services::{get_service, write_service};
use crate::error::Error;
use crate::exit::Outcome;
use crate::ops::gates::{GateSettings, Subject};
use crate::ops::session::{Session, WatchSettings};

/// One blue-green: the base Deployment's name and the Service.
pub struct Bg<'a> {
    pub s: &'a Session<'a>,
    pub base: String,
    pub service: String,
}

impl<'a> Bg<'a> {
    /// Finds the blue-green the Deployment `name` belongs to: the base Deployment (the named
    /// one, or the one its `blue-green-base` annotation names) and the Service (`service`, or
    /// the one the first run recorded on the base Deployment). Returns the base Deployment too.
    pub async fn locate(
        s: &'a Session<'a>,
        name: &str,
        service: Option<&str>,
    ) -> Result<(Bg<'a>, Deployment), Error> {
        let named = get_deployment(&s.cluster, name).await?;
        let base = base_of(name, &named).to_owned();
        let base_dep = if base == name {
            named
        } else {
            get_deployment(&s.cluster, &base).await?
        };
        let service = service_of(&base, &base_dep, service)?;
        Ok((Bg { s, base, service }, base_dep))
    }

    pub fn cluster(&self) -> &Cluster {
        &self.s.cluster
    }

    pub fn name(&self, c: Color) -> String {
        color_deployment_name(&self.base, c)
    }

    pub fn wref(&self, c: Color) -> WorkloadRef {
        WorkloadRef::deployment(&self.name(c))
    }

    /// `deployment/shop-green (green)`
    pub fn show(&self, c: Color) -> String {
        format!("deployment/{} ({c})", self.name(c))
    }

    /// `kubectl rollout-safe blue-green ACTION deployment/BASE -n NS`
    pub fn suggest(&self, action: &str) -> String {
        self.cluster().suggest(
            &format!("blue-green {action}"),
            &format!("deployment/{}", self.base),
            "",
        )
    }

    pub async fn service(&self) -> Result<Service, Error> {
        get_service(self.cluster(), &self.service).await
    }

    pub async fn deployment(&self, c: Color) -> Result<Deployment, Error> {
        get_deployment(self.cluster(), &self.name(c)).await
    }

    pub async fn try_deployment(&self, c: Color) -> Result<Option<Deployment>, Error> {
        try_get_deployment(self.cluster(), &self.name(c)).await
    }

    /// A canary of either colour must end before a blue-green starts (`canary abort` ends it).
    pub fn refuse_during_canary(&self, d: &Deployment) -> Result<(), Error> {
        refuse_during_canary(d).map_err(|refusal| {
            let hint = match &refusal {
                Refusal::CanaryUnderWay { deployment } => Some(self.cluster().suggest(
                    "canary abort",
                    &format!("deployment/{deployment}"),
                    "",
                )),
                _ => None,
            };
            Error::blue_green(refusal, hint)
        })
    }

    /// Ctrl-C: what stays as it is, and how to go on.
    pub fn interrupted(&self, what: &str) -> Outcome {
        eprintln!("interrupted: {what}");
        eprintln!(
            "  the state is kept on service/{}; re-run the same command to resume, or:",
            self.service
        );
        eprintln!("  status:   {}", self.suggest("status"));
        eprintln!("  rollback: {}", self.suggest("rollback"));
        Outcome::Interrupted
    }
}

/// The Service as the state machine reads it, handed to `f` (a `strategy::switch`
/// transition).
pub fn with_seen<T>(
    service: &str,
    svc: &Service,
    f: impl FnOnce(Seen<'_>) -> Result<T, Error>,
) -> Result<T, Error> {
    let selector = service_selector(svc)?;
    let state = BgState::of(svc);
    f(Seen {
        service,
        selector: &selector,
        state: &state,
    })
}

/// `blue-green deployment/NAME --service SVC --image …`, typed.
#[derive(Debug, Clone)]
pub struct BlueGreen {
    /// The original Deployment (or either colour's).
    pub name: String,
    /// The Service whose selector is switched.
    pub service: String,
    pub images: Vec<ImageSet>,
    /// How long every new pod must stay ready before the switch.
    pub bake: Duration,
    /// How long the old colour stays scaled after the switch (rollback window).
    pub keep_old: Duration,
    /// Return after the verified switch, the old colour left scaled for the window (recorded on
    /// the Service): `blue-green finish`, or the next blue-green once it is over, scales it down.
    pub detach: bool,
    /// How long the Service's EndpointSlices may take to show only the new colour.
    pub verify_timeout: Duration,
    /// Bring up the new colour even when its spec violates enforced rules.
    pub force: bool,
    pub watch: WatchSettings,
    pub policy: RolloutPolicy,
    /// Metric gates (with the policy file's): they must pass during `--bake` before the switch,
    /// and a failing one in the rollback window switches back.
    pub gates: GateSettings,
    /// Argo CD's tracking (never copied onto the new colour), and whether a GitOps-owned
    /// Deployment may be switched.
    pub gitops: GitopsSettings,
}

/// The gates' subject: a colour.
pub fn colour_subject(c: Color) -> Subject {
    Subject {
        color: c.as_str().to_owned(),
        track: String::new(),
    }
}

/// The colour with traffic and the one being brought up beside it.
#[derive(Debug, Clone, Copy)]
pub struct Colours {
    pub active: Color,
    pub target: Color,
}

/// The change-cause of the new colour.
pub fn colour_cause(
    bg: &Bg<'_>,
    template_images_text: &str,
    active: Color,
    target: Color,
) -> String {
    format!(
        "{}: blue-green {target} with {template_images_text} beside {active}",
        bg.cluster().username
    )
}

/// The new colour's Deployment as it should be: the active colour's spec with the new images and
/// `target`'s colour label, at the active colour's replica count.
pub fn new_colour(
    bg: &Bg<'_>,
    active_dep: &Deployment,
    images: &[ImageSet],
    active: Color,
    target: Color,
    tracking: &Tracking,
) -> Result<Deployment, Error> {
    let template = derived_template(active_dep, images, COLOR_LABEL, target.as_str())?;
    let cause = colour_cause(
        bg,
        &images_text(&template_images(&template)),
        active,
        target,
    );
    Ok(sibling_deployment(
        active_dep,
        &bg.name(target),
        template,
        (COLOR_LABEL, target.as_str()),
        replicas(active_dep),
        &[
            (ann::BASE, &bg.base),
            (ann::COLOR, target.as_str()),
            (ann::SERVICE, &bg.service),
            (CHANGE_CAUSE_ANNOTATION, &cause),
        ],
        tracking,
    ))
}

/// Scales the never-switched-to colour down and records it; it never had traffic.
pub async fn abandon(
    bg: &Bg<'_>,
    active: Color,
    target: Color,
    why: &str,
    outcome: Outcome,
) -> Result<Outcome, Error> {
    let svc = bg.service().await?;
    write_service(bg.cluster(), svc, |cur, _| {
        with_seen(&bg.service, cur, |seen| {
            Ok(Some(switch::abandon(seen, active, target)?))
        })
    })
    .await?;
    scale(bg.cluster(), &bg.name(target), 0).await?;
    eprintln!(
        "blue-green abandoned: {}: {why}; it was scaled to 0 and never received traffic; service/{} still selects {}",
        bg.show(target),
        bg.service,
        bg.show(active)
    );
    Ok(outcome)
}

/// Ends the rollback window: `phase=finished` (guarded, so a concurrent rollback wins or loses
/// cleanly), then the previous colour scaled to 0. Idempotent. Returns the colour scaled down
/// (if any) and the phase.
pub async fn finish_window(bg: &Bg<'_>) -> Result<(Option<Color>, Phase), Error> {
    let svc = bg.service().await?;
    let mut outcome = (None, Phase::Finished);
    write_service(bg.cluster(), svc, |cur, _| {
        with_seen(&bg.service, cur, |seen| {
            let f = switch::finish(seen)?;
            outcome = (f.scale_down, f.phase);
            Ok(f.change)
        })
    })
    .await?;
    if let Some(prev) = outcome.0
        && selector_color(&service_selector(&bg.service().await?)?) != Some(prev)
        && bg.try_deployment(prev).await?.is_some()
    {
        scale(bg.cluster(), &bg.name(prev), 0).await?;
    }
    Ok(outcome)
}
