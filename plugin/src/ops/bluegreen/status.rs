//! `blue-green status`: where a blue-green stands, as data for the command to render.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use rollout_safe_policy::strategy::bluegreen::{
    BgState, Color, colored_selector, selector_color, service_selector,
};
use rollout_safe_policy::strategy::endpoints::{EndpointReport, endpoint_report};
use rollout_safe_policy::strategy::hold::pod_name;

use super::common::Bg;
use crate::cluster::services::{endpoint_slices, pods_selected};
use crate::error::Error;
use crate::ops::session::Session;

/// One colour's Deployment.
#[derive(Debug, Clone)]
pub struct ColourReport {
    pub color: Color,
    pub deployment: String,
    /// `None`: not created.
    pub object: Option<Deployment>,
}

/// Everything `blue-green status` shows.
#[derive(Debug, Clone)]
pub struct BlueGreenReport {
    /// The base Deployment.
    pub base: String,
    pub namespace: String,
    pub service: String,
    pub selector: BTreeMap<String, String>,
    pub state: BgState,
    /// The colour the Service selects.
    pub live: Option<Color>,
    /// Blue, then green.
    pub colours: Vec<ColourReport>,
    /// The Service's endpoints against the live colour's pods.
    pub endpoints: EndpointReport,
    /// The commands that end the rollback window.
    pub finish_command: String,
    pub rollback_command: String,
}

/// Reads the blue-green the Deployment `name` belongs to.
pub async fn inspect(s: &Session<'_>, name: &str) -> Result<BlueGreenReport, Error> {
    let (bg, _) = Bg::locate(s, name, None).await?;
    let svc = bg.service().await?;
    let selector = service_selector(&svc)?;
    let state = BgState::of(&svc);
    let live = selector_color(&selector);
    let mut colours = Vec::new();
    for color in [Color::Blue, Color::Green] {
        colours.push(ColourReport {
            color,
            deployment: bg.name(color),
            object: bg.try_deployment(color).await?,
        });
    }
    let slices = endpoint_slices(bg.cluster(), &bg.service).await?;
    let live_pods: BTreeSet<String> = match live {
        Some(c) => pods_selected(bg.cluster(), &colored_selector(&selector, c))
            .await?
            .iter()
            .map(pod_name)
            .collect(),
        None => BTreeSet::new(),
    };
    Ok(BlueGreenReport {
        namespace: bg.cluster().namespace.clone(),
        endpoints: endpoint_report(&slices, &live_pods),
        finish_command: bg.suggest("finish"),
        rollback_command: bg.suggest("rollback"),
        base: bg.base,
        service: bg.service,
        selector,
        state,
        live,
        colours,
    })
}
