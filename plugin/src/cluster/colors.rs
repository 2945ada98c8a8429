//! Blue-green colours and canaries on plain Deployments and Services: names, labels, the state
//! kept in annotations, and the pure decisions (`plan_start`, endpoint verification, canary
//! arithmetic) with the few API helpers both commands share. The ready-for-a-while hold is in
//! `gate`, driven by the watch loop.
//!
//! # Blue-green on a plain Deployment
//!
//! A Deployment's selector is immutable, so the existing Deployment (`shop`, selector
//! `app: shop`) is never re-selected. It becomes the **blue** colour; **green** is a second
//! Deployment `shop-green` whose selector and pod labels are the blue ones plus
//! `rollout-safe.dev/color: green`. The Service's *base* selector (`app: shop`) matches both.
//!
//! * First run only: the blue pods get `rollout-safe.dev/color: blue` in their template labels
//!   (a rolling update, guarded and watched like `update`; skipped when already there), then the
//!   Service selector is narrowed to `{app: shop, rollout-safe.dev/color: blue}` — the same pods,
//!   so the same endpoints — and verified through EndpointSlices. Only then can a green pod exist
//!   without receiving traffic.
//! * The new colour is created (or, on later runs, the idle colour Deployment is updated) with
//!   the active colour's pod template, the new images and the new colour label, at the active
//!   colour's replica count. It receives no traffic: the Service selects the active colour only.
//! * Once the judge calls it complete and every new pod has stayed Ready for `--bake`, the
//!   Service selector's colour is switched in **one** merge patch guarded by the Service's
//!   resourceVersion (a 409 re-reads, re-validates and retries), carrying the new state
//!   annotations in the same write.
//! * EndpointSlices (`kubernetes.io/service-name=SVC`) must then list only ready new-colour pods
//!   (at least one) before the switch counts as done; otherwise the selector is switched back.
//! * The old colour stays scaled for `--keep-old`, then is scaled to 0 (its replica count kept in
//!   an annotation for `rollback`). The next run deploys into the idle colour: colours alternate.
//!
//! State lives on the Service (`rollout-safe.dev/blue-green-*`: phase, active, previous, target,
//! images, switched-at, keep-until, workload) and on the colour Deployments (colour, service,
//! base, replicas to restore). Every step checks the cluster before acting, so a re-run after an
//! interruption resumes where it stopped and a finished run is a no-op.
//!
//! # Canary
//!
//! `shop-canary` has the stable template plus `rollout-safe.dev/track: canary` (in its selector
//! too), so its pods keep every label the Service selects. Each step scales it to
//! `ceil(total × step%)` (at least 1) and the stable Deployment to the rest; the state (phase,
//! total, step, images) is kept in annotations on the stable Deployment.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::{ListParams, Patch, PostParams};
use rollout_safe_policy::check::CHANGE_CAUSE_ANNOTATION;
use rollout_safe_policy::judge::{equal_ignore_hash, normalized_template};
use rollout_safe_policy::selector::map_text;
use serde_json::{Map, Value, json};

use super::client::{Cluster, FIELD_MANAGER};
use super::errors::{Op, api_failure, is_not_found};
pub use super::gate::{pod_name, pod_ready};
use super::patch::{Written, guarded_write, write_deployment};
use super::revisions::template_images;
use crate::commands::update::{ImageSet, edit};
use crate::display::ts_text;
use crate::exit::Failure;

/// The pod label that tells the colours apart.
pub const COLOR_LABEL: &str = "rollout-safe.dev/color";
/// The pod label of canary pods (`canary`).
pub const TRACK_LABEL: &str = "rollout-safe.dev/track";
pub const CANARY_TRACK: &str = "canary";

/// Annotation keys.
pub mod ann {
    // On the Service.
    pub const PHASE: &str = "rollout-safe.dev/blue-green-phase";
    pub const ACTIVE: &str = "rollout-safe.dev/blue-green-active";
    pub const PREVIOUS: &str = "rollout-safe.dev/blue-green-previous";
    pub const TARGET: &str = "rollout-safe.dev/blue-green-target";
    pub const IMAGES: &str = "rollout-safe.dev/blue-green-images";
    pub const SWITCHED_AT: &str = "rollout-safe.dev/blue-green-switched-at";
    pub const KEEP_UNTIL: &str = "rollout-safe.dev/blue-green-keep-until";
    pub const WORKLOAD: &str = "rollout-safe.dev/blue-green-workload";
    // On the colour Deployments.
    pub const SERVICE: &str = "rollout-safe.dev/blue-green-service";
    pub const COLOR: &str = "rollout-safe.dev/blue-green-color";
    pub const BASE: &str = "rollout-safe.dev/blue-green-base";
    pub const RESTORE_REPLICAS: &str = "rollout-safe.dev/blue-green-replicas";
    // Canary: on the stable Deployment, and `CANARY_OF` on the canary.
    pub const CANARY_PHASE: &str = "rollout-safe.dev/canary-phase";
    pub const CANARY_TOTAL: &str = "rollout-safe.dev/canary-total";
    pub const CANARY_STEP: &str = "rollout-safe.dev/canary-step";
    pub const CANARY_IMAGES: &str = "rollout-safe.dev/canary-images";
    pub const CANARY_OF: &str = "rollout-safe.dev/canary-of";
}

// ---------------------------------------------------------------------------
// Colours and phases
// ---------------------------------------------------------------------------

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

/// The canary Deployment of a stable one.
pub fn canary_name(stable: &str) -> String {
    format!("{stable}-canary")
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
        ])
    }
}

/// `t + d` (saturating at the far future).
pub fn ts_add(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// `--image` flags as one stable string (`app=shop:2,side=x:1`), for the state annotations.
pub fn images_key(images: &[ImageSet]) -> String {
    let mut v: Vec<String> = images
        .iter()
        .map(|i| format!("{}={}", i.container, i.image))
        .collect();
    v.sort();
    v.dedup();
    v.join(",")
}

/// Whether the template already runs the requested images (`*` = every container).
pub fn runs_images(t: &PodTemplateSpec, images: &[ImageSet]) -> bool {
    let have = template_images(t);
    images.iter().all(|i| {
        let mut matching = have
            .iter()
            .filter(|(c, _)| i.container == "*" || *c == i.container)
            .peekable();
        matching.peek().is_some() && matching.all(|(_, img)| *img == i.image)
    })
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

pub fn template_labels(t: &PodTemplateSpec) -> BTreeMap<String, String> {
    t.metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// What `blue-green WORKLOAD` does next
// ---------------------------------------------------------------------------

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
    /// The live colour already runs these images and nothing is under way.
    AlreadyLive { active: Color },
}

/// Decides from the Service's selector (the truth about traffic) and its state annotations.
/// `images`: [`images_key`] of the request; `live_runs_images`: whether the Deployment of the
/// selected colour already runs them. `Err` is a refusal, told for people.
pub fn plan_start(
    state: &BgState,
    live: Option<Color>,
    images: &str,
    live_runs_images: bool,
) -> Result<StartPlan, String> {
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
                return Err(format!(
                    "the Service selects {live} but its blue-green state says {} is active: someone changed the \
                     selector by hand; fix the selector or the annotations first",
                    state.active.map_or("?", Color::as_str)
                ));
            }
            let previous = state.previous.unwrap_or(live.other());
            if state.images.as_deref() == Some(images) {
                return Ok(StartPlan::AfterSwitch {
                    active: live,
                    previous,
                });
            }
            Err(format!(
                "the last blue-green (to {live}, images {}) is still in its rollback window, with {previous} kept{}: \
                 end it first with `blue-green finish` (keep {live}) or `blue-green rollback` (back to {previous})",
                state.images.as_deref().unwrap_or("?"),
                state
                    .keep_until
                    .map(|t| format!(" until {}", ts_text(t)))
                    .unwrap_or_default()
            ))
        }
        Some(Phase::RollingBack) => Err(format!(
            "a rollback to {live} is under way; complete it with `blue-green rollback` first"
        )),
        _ if live_runs_images => Ok(StartPlan::AlreadyLive { active: live }),
        _ => Ok(StartPlan::Deploy {
            active: live,
            target: live.other(),
            first: false,
        }),
    }
}

// ---------------------------------------------------------------------------
// Colour Deployments
// ---------------------------------------------------------------------------

fn set_label(t: &mut PodTemplateSpec, key: &str, value: &str) {
    t.metadata
        .get_or_insert_default()
        .labels
        .get_or_insert_default()
        .insert(key.to_owned(), value.to_owned());
}

fn annotate(d: &mut Deployment, key: &str, value: Option<&str>) {
    let a = d.metadata.annotations.get_or_insert_default();
    match value {
        Some(v) => {
            a.insert(key.to_owned(), v.to_owned());
        }
        None => {
            a.remove(key);
        }
    }
}

pub fn annotation<'a>(d: &'a Deployment, key: &str) -> Option<&'a str> {
    d.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

pub fn replicas(d: &Deployment) -> i32 {
    d.spec.replicas.unwrap_or(1)
}

/// Whether the Deployment's selector selects its own template (else the API server would
/// refuse it: `selector does not match template labels`).
pub fn selects_template(d: &Deployment) -> bool {
    let labels = template_labels(&d.spec.template);
    rollout_safe_policy::selector::selector_matches(&d.spec.selector, &labels)
}

/// The source's pod template with `images` and the label `key=value` (`pod-template-hash` dropped).
pub fn derived_template(
    source: &Deployment,
    images: &[ImageSet],
    key: &str,
    value: &str,
) -> Result<PodTemplateSpec, Failure> {
    let mut t = normalized_template(&edit(source, images, &[])?.spec.template);
    set_label(&mut t, key, value);
    Ok(t)
}

/// A new Deployment beside `source` (the active colour, or the stable one): its spec with the
/// derived template, its selector plus `key=value`, `replicas`, and `annotations`.
pub fn sibling_deployment(
    source: &Deployment,
    name: &str,
    template: PodTemplateSpec,
    key: &str,
    value: &str,
    replicas: i32,
    annotations: &[(&str, &str)],
) -> Deployment {
    let mut spec = source.spec.clone();
    spec.template = template;
    spec.replicas = Some(replicas);
    spec.paused = None;
    spec.selector
        .match_labels
        .get_or_insert_default()
        .insert(key.to_owned(), value.to_owned());
    let mut d = Deployment {
        spec,
        ..Deployment::default()
    };
    d.metadata.name = Some(name.to_owned());
    d.metadata.labels = source.metadata.labels.clone();
    for (k, v) in annotations {
        annotate(&mut d, k, Some(v));
    }
    d
}

/// `existing` (the idle colour, or a canary left from before) made to run `template` at
/// `replicas`, with `annotations` (`None` removes). `None` when nothing changes.
pub fn refreshed_deployment(
    existing: &Deployment,
    template: &PodTemplateSpec,
    replicas: i32,
    annotations: &[(&str, Option<&str>)],
    cause: &str,
) -> Result<Option<Deployment>, Failure> {
    let mut d = existing.clone();
    let template_changed = !equal_ignore_hash(&d.spec.template, template);
    d.spec.template = template.clone();
    d.spec.replicas = Some(replicas);
    for (k, v) in annotations {
        annotate(&mut d, k, *v);
    }
    if template_changed {
        annotate(&mut d, CHANGE_CAUSE_ANNOTATION, Some(cause));
    }
    if !selects_template(&d) {
        return Err(Failure::usage(format!(
            "deployment/{}'s selector does not select the pods it would run (labels {}); it cannot be reused",
            d.metadata.name.as_deref().unwrap_or_default(),
            map_text(&template_labels(template))
        )));
    }
    Ok((d != *existing).then_some(d))
}

/// Creates `wanted`, or when it exists brings it to `refresh(existing)` with a precondition.
/// Returns the Deployment as stored.
pub async fn create_or_refresh<F>(
    cluster: &Cluster,
    wanted: Deployment,
    mut refresh: F,
) -> Result<Deployment, Failure>
where
    F: FnMut(&Deployment) -> Result<Option<Deployment>, Failure>,
{
    let name = wanted.metadata.name.clone().unwrap_or_default();
    let api = cluster.deployments();
    let op = Op::new("get", "deployments.apps", Some(&name), &cluster.namespace);
    let existing = match api.get(&name).await {
        Ok(d) => Some(d),
        Err(e) if is_not_found(&e) => None,
        Err(e) => return Err(api_failure(e, op)),
    };
    let existing = match existing {
        Some(d) => d,
        None => {
            let pp = PostParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PostParams::default()
            };
            match api.create(&pp, &wanted).await {
                Ok(d) => {
                    eprintln!("deployment/{name} created");
                    return Ok(d);
                }
                Err(e) if super::errors::status(&e).is_some_and(|s| s.code == 409) => {
                    api.get(&name).await.map_err(|e| api_failure(e, op))?
                }
                Err(e) => {
                    return Err(api_failure(
                        e,
                        Op::new(
                            "create",
                            "deployments.apps",
                            Some(&name),
                            &cluster.namespace,
                        ),
                    ));
                }
            }
        }
    };
    let first = existing.clone();
    match write_deployment(cluster, existing, false, false, |cur, _| refresh(cur)).await? {
        Some(w) => {
            eprintln!("deployment/{name} updated");
            Ok(w.after)
        }
        None => Ok(first),
    }
}

/// Scales a Deployment (guarded), recording the replicas it had in `RESTORE_REPLICAS` when scaling
/// to 0 and dropping that record otherwise. `Ok(false)`: it was already there.
pub async fn scale(cluster: &Cluster, name: &str, to: i32) -> Result<bool, Failure> {
    let current = match cluster.deployments().get(name).await {
        Ok(d) => d,
        Err(e) => {
            return Err(api_failure(
                e,
                Op::new("get", "deployments.apps", Some(name), &cluster.namespace),
            ));
        }
    };
    let written = write_deployment(cluster, current, false, false, |cur, _| {
        let mut d = cur.clone();
        let had = replicas(cur);
        d.spec.replicas = Some(to);
        if to == 0 {
            if had > 0 {
                annotate(&mut d, ann::RESTORE_REPLICAS, Some(&had.to_string()));
            }
        } else {
            annotate(&mut d, ann::RESTORE_REPLICAS, None);
        }
        if d.metadata
            .annotations
            .as_ref()
            .is_some_and(BTreeMap::is_empty)
            && cur.metadata.annotations.is_none()
        {
            d.metadata.annotations = None;
        }
        Ok((d != *cur).then_some(d))
    })
    .await?;
    if written.is_some() {
        eprintln!("deployment/{name} scaled to {to}");
    }
    Ok(written.is_some())
}

// ---------------------------------------------------------------------------
// The Service
// ---------------------------------------------------------------------------

pub fn services(cluster: &Cluster) -> Api<Service> {
    Api::namespaced(cluster.client.clone(), &cluster.namespace)
}

pub async fn get_service(cluster: &Cluster, name: &str) -> Result<Service, Failure> {
    services(cluster).get(name).await.map_err(|e| {
        api_failure(
            e,
            Op::new("get", "services", Some(name), &cluster.namespace),
        )
    })
}

/// The Service's selector; a Service without one cannot be switched (exit 2).
pub fn service_selector(svc: &Service) -> Result<BTreeMap<String, String>, Failure> {
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Failure::usage(format!(
                "service/{} has no selector: blue-green switches a Service's selector",
                svc.metadata.name.as_deref().unwrap_or_default()
            ))
        })
}

/// A change to a Service: a whole new selector, and annotations to set (`Some`) or remove (`None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceChange {
    pub selector: Option<BTreeMap<String, String>>,
    pub annotations: BTreeMap<String, Option<String>>,
}

/// The JSON merge patch that makes `change` to `svc`, with `metadata.resourceVersion` as the
/// precondition (a stale one is a 409 `Conflict`, `api-responses/04`). `None`: nothing to change.
pub fn service_patch(svc: &Service, change: &ServiceChange) -> Option<Value> {
    let mut meta = Map::new();
    let mut spec = Map::new();
    let have_ann = svc.metadata.annotations.clone().unwrap_or_default();
    let mut ann = Map::new();
    for (k, v) in &change.annotations {
        if have_ann.get(k) != v.as_ref() {
            ann.insert(k.clone(), v.clone().map_or(Value::Null, Value::String));
        }
    }
    if let Some(want) = &change.selector {
        let have = svc
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        let mut sel = Map::new();
        for (k, v) in want {
            if have.get(k) != Some(v) {
                sel.insert(k.clone(), Value::String(v.clone()));
            }
        }
        for k in have.keys().filter(|k| !want.contains_key(*k)) {
            sel.insert(k.clone(), Value::Null);
        }
        if !sel.is_empty() {
            spec.insert("selector".into(), Value::Object(sel));
        }
    }
    if ann.is_empty() && spec.is_empty() {
        return None;
    }
    if !ann.is_empty() {
        meta.insert("annotations".into(), Value::Object(ann));
    }
    meta.insert(
        "resourceVersion".into(),
        Value::String(svc.metadata.resource_version.clone().unwrap_or_default()),
    );
    let mut patch = json!({ "metadata": meta });
    if !spec.is_empty() {
        patch["spec"] = Value::Object(spec);
    }
    Some(patch)
}

/// The guarded write of a Service ([`guarded_write`]): `build` turns the Service as read into a
/// change; the change goes out as one merge patch carrying the resourceVersion it was computed
/// from; on a conflict `build` runs again on the fresh Service (so it re-validates).
/// `Ok(None)`: nothing to change.
pub async fn write_service<F>(
    cluster: &Cluster,
    first: Service,
    build: F,
) -> Result<Option<Written<Service>>, Failure>
where
    F: FnMut(&Service, usize) -> Result<Option<ServiceChange>, Failure>,
{
    guarded_write(cluster, first, false, false, build, |cur, change| {
        Ok(service_patch(cur, change).map(Patch::Merge))
    })
    .await
}

// ---------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------

/// What a Service's EndpointSlices say, by pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointReport {
    /// Ready endpoints (pod name, or the address when there is no pod reference).
    pub ready: BTreeSet<String>,
    /// The ready ones that are pods of the wanted set.
    pub ready_wanted: BTreeSet<String>,
    /// The ready ones that are not.
    pub ready_other: BTreeSet<String>,
    /// Endpoints listed but not ready (starting or terminating).
    pub not_ready: BTreeSet<String>,
}

impl EndpointReport {
    /// `3 ready (3 green), 1 not ready`
    pub fn summary(&self, wanted: &str) -> String {
        let mut s = format!(
            "{} ready ({} {wanted}",
            self.ready.len(),
            self.ready_wanted.len()
        );
        if !self.ready_other.is_empty() {
            s.push_str(&format!(
                ", {} other: {}",
                self.ready_other.len(),
                join_some(&self.ready_other, 3)
            ));
        }
        s.push(')');
        if !self.not_ready.is_empty() {
            s.push_str(&format!(", {} not ready", self.not_ready.len()));
        }
        s
    }
}

fn join_some(set: &BTreeSet<String>, n: usize) -> String {
    let mut v: Vec<&str> = set.iter().take(n).map(String::as_str).collect();
    if set.len() > n {
        v.push("…");
    }
    v.join(", ")
}

/// Sorts the endpoints of `slices` into wanted/other, ready/not. `ready` unset counts as ready
/// (the API's advice for an unknown state), so an unknown foreign endpoint never passes for gone.
/// An endpoint listed in several slices (they overlap while the controller moves endpoints) is
/// ready if any slice says so.
pub fn endpoint_report(slices: &[EndpointSlice], wanted: &BTreeSet<String>) -> EndpointReport {
    let mut r = EndpointReport::default();
    for ep in slices.iter().flat_map(|s| s.endpoints.iter().flatten()) {
        let id = match &ep.target_ref {
            Some(t) if t.kind.as_deref().is_none_or(|k| k == "Pod") && t.name.is_some() => {
                t.name.clone().unwrap_or_default()
            }
            _ => ep.addresses.join(","),
        };
        let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
        if ready {
            r.ready.insert(id);
        } else {
            r.not_ready.insert(id);
        }
    }
    r.not_ready.retain(|id| !r.ready.contains(id));
    for id in &r.ready {
        if wanted.contains(id) {
            r.ready_wanted.insert(id.clone());
        } else {
            r.ready_other.insert(id.clone());
        }
    }
    r
}

/// The switch is done when the Service's ready endpoints are exactly the ready pods of the new
/// colour: no other ready endpoint, at least one, and every ready new pod present.
pub fn endpoints_switched(r: &EndpointReport, ready_new_pods: &BTreeSet<String>) -> bool {
    !r.ready.is_empty()
        && r.ready_other.is_empty()
        && ready_new_pods.iter().all(|p| r.ready_wanted.contains(p))
}

pub async fn endpoint_slices(
    cluster: &Cluster,
    service: &str,
) -> Result<Vec<EndpointSlice>, Failure> {
    let api: Api<EndpointSlice> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
    api.list(&lp).await.map(|l| l.items).map_err(|e| {
        api_failure(
            e,
            Op::new(
                "list",
                "endpointslices.discovery.k8s.io",
                None,
                &cluster.namespace,
            ),
        )
    })
}

/// Pods selected by a Service-style selector.
pub async fn pods_selected(
    cluster: &Cluster,
    sel: &BTreeMap<String, String>,
) -> Result<Vec<Pod>, Failure> {
    cluster
        .pods()
        .list(&ListParams::default().labels(&map_text(sel)))
        .await
        .map(|l| l.items)
        .map_err(|e| api_failure(e, Op::new("list", "pods", None, &cluster.namespace)))
}

/// Waits until `check` says the endpoints are right, until `limit`; polls every half second.
/// Returns the last report and whether it passed.
pub async fn wait_endpoints<F>(
    cluster: &Cluster,
    service: &str,
    wanted_selector: &BTreeMap<String, String>,
    limit: Duration,
    mut check: F,
) -> Result<(EndpointReport, bool), Failure>
where
    F: FnMut(&EndpointReport, &BTreeSet<String>) -> bool,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let pods = pods_selected(cluster, wanted_selector).await?;
        let wanted: BTreeSet<String> = pods.iter().map(pod_name).collect();
        let ready: BTreeSet<String> = pods.iter().filter(|p| pod_ready(p)).map(pod_name).collect();
        let report = endpoint_report(&endpoint_slices(cluster, service).await?, &wanted);
        if check(&report, &ready) {
            return Ok((report, true));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok((report, false));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

// ---------------------------------------------------------------------------
// Canary arithmetic
// ---------------------------------------------------------------------------

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

/// Steps are percentages in 1..=100, strictly increasing.
pub fn validate_steps(steps: &[u32]) -> Result<(), String> {
    if steps.is_empty() {
        return Err("--steps needs at least one percentage, e.g. --steps 10,50,100".into());
    }
    for s in steps {
        if *s == 0 || *s > 100 {
            return Err(format!("--steps: {s} is not a percentage in 1..=100"));
        }
    }
    if steps.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!(
            "--steps must increase: {}",
            steps
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    Ok(())
}

/// The steps still to run when a canary resumes at `reached` percent (the last step passed).
pub fn remaining_steps(steps: &[u32], reached: Option<u32>) -> Vec<u32> {
    steps
        .iter()
        .copied()
        .filter(|s| reached.is_none_or(|r| *s > r))
        .collect()
}

/// The Deployment's annotation parsed as a number.
pub fn annotation_i32(d: &Deployment, key: &str) -> Option<i32> {
    annotation(d, key)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};
    use rollout_safe_policy::selector::map_selects;

    fn imgs(s: &[(&str, &str)]) -> Vec<ImageSet> {
        s.iter()
            .map(|(c, i)| ImageSet {
                container: (*c).into(),
                image: (*i).into(),
            })
            .collect()
    }

    fn shop() -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "shop", "namespace": "default", "resourceVersion": "7", "uid": "u1",
                "labels": {"team": "x"},
                "annotations": {"deployment.kubernetes.io/revision": "3", "kubernetes.io/change-cause": "old"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "shop"}},
                "template": {"metadata": {"labels": {"app": "shop"}},
                    "spec": {"containers": [{"name": "app", "image": "shop:1"}]}}},
            "status": {"replicas": 3}
        }))
        .unwrap()
    }

    #[test]
    fn colours_and_names() {
        assert_eq!(Color::Blue.other(), Color::Green);
        assert_eq!(color_deployment_name("shop", Color::Blue), "shop");
        assert_eq!(color_deployment_name("shop", Color::Green), "shop-green");
        assert_eq!(canary_name("shop"), "shop-canary");
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
        };
        let a: BTreeMap<String, String> = s
            .annotations()
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect();
        assert_eq!(a[ann::KEEP_UNTIL], "2026-11-22T23:20:24Z");
        assert_eq!(BgState::from_annotations(Some(&a)), s);
        assert_eq!(BgState::from_annotations(None), BgState::default());
    }

    #[test]
    fn start_plans() {
        let none = BgState::default();
        assert_eq!(
            plan_start(&none, None, "app=shop:2", false),
            Ok(StartPlan::Deploy {
                active: Color::Blue,
                target: Color::Green,
                first: true
            })
        );
        assert_eq!(
            plan_start(&none, Some(Color::Green), "app=shop:2", false),
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
                plan_start(&deploying, Some(Color::Blue), images, false),
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
            plan_start(&switched, Some(Color::Green), "app=shop:2", true),
            Ok(StartPlan::AfterSwitch {
                active: Color::Green,
                previous: Color::Blue
            })
        );
        let e = plan_start(&switched, Some(Color::Green), "app=shop:3", false).unwrap_err();
        assert!(
            e.contains("rollback window") && e.contains("blue-green finish"),
            "{e}"
        );
        assert!(
            plan_start(&switched, Some(Color::Blue), "app=shop:2", false)
                .unwrap_err()
                .contains("by hand")
        );
        let finished = BgState {
            phase: Some(Phase::Finished),
            ..switched.clone()
        };
        assert_eq!(
            plan_start(&finished, Some(Color::Green), "app=shop:2", true),
            Ok(StartPlan::AlreadyLive {
                active: Color::Green
            })
        );
        assert_eq!(
            plan_start(&finished, Some(Color::Green), "app=shop:3", false),
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
        assert!(plan_start(&rolling, Some(Color::Green), "x", false).is_err());
    }

    #[test]
    fn images_helpers() {
        let d = shop();
        assert!(runs_images(&d.spec.template, &imgs(&[("app", "shop:1")])));
        assert!(runs_images(&d.spec.template, &imgs(&[("*", "shop:1")])));
        assert!(!runs_images(&d.spec.template, &imgs(&[("app", "shop:2")])));
        assert!(!runs_images(&d.spec.template, &imgs(&[("nope", "shop:1")])));
        assert_eq!(images_key(&imgs(&[("b", "2"), ("a", "1")])), "a=1,b=2");
    }

    #[test]
    fn green_beside_blue() {
        let blue = shop();
        let t = derived_template(&blue, &imgs(&[("app", "shop:2")]), COLOR_LABEL, "green").unwrap();
        let g = sibling_deployment(
            &blue,
            "shop-green",
            t,
            COLOR_LABEL,
            "green",
            3,
            &[(ann::COLOR, "green")],
        );
        assert_eq!(g.metadata.name.as_deref(), Some("shop-green"));
        assert!(
            g.metadata.resource_version.is_none() && g.metadata.uid.is_none() && g.status.is_none()
        );
        assert_eq!(annotation(&g, ann::COLOR), Some("green"));
        assert_eq!(annotation(&g, REVISION_ANNOTATION_FOR_TEST), None);
        assert_eq!(
            map_text(g.spec.selector.match_labels.as_ref().unwrap()),
            "app=shop,rollout-safe.dev/color=green"
        );
        assert!(selects_template(&g));
        // The Service's base selector still matches the green pods.
        assert!(map_selects(
            &BTreeMap::from([("app".into(), "shop".into())]),
            &template_labels(&g.spec.template)
        ));
        assert_eq!(
            template_images(&g.spec.template),
            [("app".to_string(), "shop:2".to_string())]
        );
        // An unknown container is a usage error.
        assert_eq!(
            derived_template(&blue, &imgs(&[("web", "x")]), COLOR_LABEL, "green")
                .unwrap_err()
                .exit,
            Exit::Usage
        );
    }

    const REVISION_ANNOTATION_FOR_TEST: &str = "deployment.kubernetes.io/revision";

    #[test]
    fn refreshing_the_idle_colour() {
        let blue = shop();
        let t = derived_template(&blue, &imgs(&[("app", "shop:3")]), COLOR_LABEL, "blue").unwrap();
        let d = refreshed_deployment(&blue, &t, 4, &[(ann::RESTORE_REPLICAS, None)], "cause")
            .unwrap()
            .unwrap();
        assert_eq!(d.spec.replicas, Some(4));
        assert_eq!(annotation(&d, CHANGE_CAUSE_ANNOTATION), Some("cause"));
        assert!(
            refreshed_deployment(&d, &t, 4, &[], "cause")
                .unwrap()
                .is_none()
        );
        // A Deployment whose selector cannot select the template is refused.
        let mut odd = blue.clone();
        odd.spec.selector.match_labels = Some(BTreeMap::from([("app".into(), "other".into())]));
        assert!(refreshed_deployment(&odd, &t, 4, &[], "c").is_err());
    }

    fn svc(sel: &[(&str, &str)], ann: &[(&str, &str)]) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "shop", "resourceVersion": "41",
                "annotations": ann.iter().map(|(k, v)| ((*k).to_string(), json!(v))).collect::<Map<_, _>>()},
            "spec": {"selector": sel.iter().map(|(k, v)| ((*k).to_string(), json!(v))).collect::<Map<_, _>>()}
        }))
        .unwrap()
    }

    #[test]
    fn service_patches_are_minimal_and_guarded() {
        let s = svc(
            &[("app", "shop"), (COLOR_LABEL, "blue")],
            &[(ann::PHASE, "deploying"), (ann::TARGET, "green")],
        );
        let change = ServiceChange {
            selector: Some(colored_selector(
                &service_selector(&s).unwrap(),
                Color::Green,
            )),
            annotations: BTreeMap::from([
                (ann::PHASE.to_owned(), Some("switched".to_owned())),
                (ann::TARGET.to_owned(), None),
                (ann::ACTIVE.to_owned(), Some("green".to_owned())),
            ]),
        };
        let p = service_patch(&s, &change).unwrap();
        assert_eq!(
            p,
            json!({"metadata": {"resourceVersion": "41", "annotations": {
                ann::PHASE: "switched", ann::TARGET: null, ann::ACTIVE: "green"}},
                "spec": {"selector": {COLOR_LABEL: "green"}}})
        );
        // Removing the colour key (back to the base selector) is a null.
        let p = service_patch(
            &s,
            &ServiceChange {
                selector: Some(base_selector(&service_selector(&s).unwrap())),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(p["spec"]["selector"], json!({COLOR_LABEL: null}));
        assert!(service_patch(&s, &ServiceChange::default()).is_none());
        let same = ServiceChange {
            selector: Some(service_selector(&s).unwrap()),
            annotations: BTreeMap::from([(ann::PHASE.to_owned(), Some("deploying".to_owned()))]),
        };
        assert!(service_patch(&s, &same).is_none());
        let bare: Service =
            serde_json::from_value(json!({"metadata": {"name": "x"}, "spec": {}})).unwrap();
        assert_eq!(service_selector(&bare).unwrap_err().exit, Exit::Usage);
    }

    fn ep(pod: &str, ready: Option<bool>) -> Endpoint {
        Endpoint {
            addresses: vec![format!("10.0.0.{}", pod.len())],
            conditions: Some(EndpointConditions {
                ready,
                ..Default::default()
            }),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                name: Some(pod.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn slice(eps: Vec<Endpoint>) -> EndpointSlice {
        EndpointSlice {
            address_type: "IPv4".into(),
            endpoints: Some(eps),
            ..Default::default()
        }
    }

    #[test]
    fn endpoint_verification() {
        let green: BTreeSet<String> = ["g1", "g2"].iter().map(|s| s.to_string()).collect();
        // Mid-switch: a blue endpoint is still ready.
        let r = endpoint_report(
            &[
                slice(vec![ep("b1", Some(true)), ep("g1", Some(true))]),
                slice(vec![ep("g2", Some(true))]),
            ],
            &green,
        );
        assert_eq!(r.ready_other.len(), 1);
        assert!(!endpoints_switched(&r, &green));
        assert!(
            r.summary("green").contains("1 other: b1"),
            "{}",
            r.summary("green")
        );
        // Blue terminating (not ready), green all ready: done.
        let r = endpoint_report(
            &[slice(vec![
                ep("b1", Some(false)),
                ep("g1", Some(true)),
                ep("g2", Some(true)),
            ])],
            &green,
        );
        assert!(endpoints_switched(&r, &green));
        assert_eq!(r.not_ready.len(), 1);
        // Unknown readiness counts as ready: a foreign endpoint with no condition blocks.
        let r = endpoint_report(
            &[slice(vec![
                ep("x", None),
                ep("g1", Some(true)),
                ep("g2", Some(true)),
            ])],
            &green,
        );
        assert!(!endpoints_switched(&r, &green));
        // A ready new pod missing from the endpoints: not yet.
        let r = endpoint_report(&[slice(vec![ep("g1", Some(true))])], &green);
        assert!(!endpoints_switched(&r, &green));
        // No endpoints at all is never done.
        let r = endpoint_report(&[slice(vec![])], &BTreeSet::new());
        assert!(!endpoints_switched(&r, &BTreeSet::new()));
        // The same pod in two slices, ready in one: ready, counted once.
        let r = endpoint_report(
            &[
                slice(vec![ep("g1", Some(false))]),
                slice(vec![ep("g1", Some(true)), ep("g2", Some(true))]),
            ],
            &green,
        );
        assert_eq!(r.ready.len(), 2);
        assert!(r.not_ready.is_empty());
        assert!(endpoints_switched(&r, &green));
    }

    #[test]
    fn recorded_endpointslices_parse() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/api-responses/10-list-endpointslices-for-service.txt"
        ))
        .expect("the recorded exchanges live in tests/fixtures/api-responses");
        let body = &text[text.find("\n{").unwrap()..];
        let list: k8s_openapi::List<EndpointSlice> = serde_json::from_str(body).unwrap();
        let wanted: BTreeSet<String> = [
            "good-69bb684dd9-rj7zl",
            "good-69bb684dd9-pdbnn",
            "good-69bb684dd9-6ss2m",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let r = endpoint_report(&list.items, &wanted);
        assert_eq!(r.ready, wanted);
        assert_eq!(r.not_ready.len(), 2);
        assert!(endpoints_switched(&r, &wanted));
    }

    #[test]
    fn canary_arithmetic() {
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
        assert!(validate_steps(&[]).is_err());
        assert!(validate_steps(&[0, 50]).is_err());
        assert!(validate_steps(&[10, 101]).is_err());
        assert!(validate_steps(&[50, 10]).unwrap_err().contains("increase"));
        assert!(validate_steps(&[50, 50]).is_err());
        assert_eq!(remaining_steps(&[10, 50, 100], None), [10, 50, 100]);
        assert_eq!(remaining_steps(&[10, 50, 100], Some(10)), [50, 100]);
        assert_eq!(
            remaining_steps(&[10, 50, 100], Some(100)),
            Vec::<u32>::new()
        );
    }
}
