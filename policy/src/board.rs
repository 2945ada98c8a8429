//! The status board (`status` without a workload, or with `-A`): every Deployment, StatefulSet
//! and DaemonSet in scope, judged by the rollout judge from one listing of each kind, with the
//! blue-green or canary in flight (from the annotations the plugin writes) and the time of the
//! last change. Pure: the plugin lists (or watches) the objects into an [`Inventory`] and calls
//! [`board`] with `now`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ControllerRevision, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

use crate::judge::{
    self, FailureReason, JudgeConfig, Object, Progress, RolloutState, Verdict, controlled_by,
};
use crate::rule::WorkloadKind;
use crate::strategy::bluegreen::{BgState, Color, Phase};
use crate::strategy::canary::{CanaryPhase, CanaryState};
use crate::strategy::schema::ann;
use crate::workload::Workload;

/// What the board is computed from: everything of each kind in scope, as listed or watched.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub workloads: Vec<Workload>,
    pub replica_sets: Vec<ReplicaSet>,
    pub pods: Vec<Pod>,
    pub services: Vec<Service>,
    /// StatefulSets' and DaemonSets' revisions (the time of their last template change).
    pub revisions: Vec<ControllerRevision>,
}

/// Where a rollout stands on the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RowState {
    Failing,
    Progressing,
    Paused,
    Complete,
    /// kubectl has no rollout status for it (`OnDelete`).
    Unsupported,
}

impl RowState {
    pub fn as_str(self) -> &'static str {
        match self {
            RowState::Failing => "failing",
            RowState::Progressing => "progressing",
            RowState::Paused => "paused",
            RowState::Complete => "complete",
            RowState::Unsupported => "unsupported",
        }
    }
}

/// A blue-green or canary under way on a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InFlight {
    /// From the Service's state annotations; `color`: this Deployment's colour.
    BlueGreen {
        service: String,
        color: Option<Color>,
        phase: Phase,
        active: Option<Color>,
        target: Option<Color>,
        previous: Option<Color>,
        switched_at: Option<Timestamp>,
        keep_until: Option<Timestamp>,
    },
    /// From the stable Deployment's annotations; `stable`: its name (the canary Deployment's
    /// row names it too).
    Canary {
        stable: String,
        phase: CanaryPhase,
        step: Option<u32>,
        total: Option<i32>,
        images: Option<String>,
    },
}

impl InFlight {
    /// `blue-green switched: traffic on green, blue kept 4m more` / `canary running: step 25%`.
    pub fn text(&self, now: Timestamp) -> String {
        let c = |c: Option<Color>| c.map_or("?", Color::as_str);
        match self {
            InFlight::BlueGreen {
                phase: Phase::Switched,
                active,
                previous,
                keep_until,
                ..
            } => {
                let window = match keep_until {
                    Some(t) if *t > now => format!(
                        "{} kept {} more",
                        c(*previous),
                        age_text(t.duration_since(now).as_secs().unsigned_abs())
                    ),
                    Some(_) => format!("{} kept, window over", c(*previous)),
                    None => format!("{} kept", c(*previous)),
                };
                format!("blue-green switched: traffic on {}, {window}", c(*active))
            }
            InFlight::BlueGreen {
                phase,
                active,
                target,
                ..
            } => format!(
                "blue-green {}: {} beside {}",
                phase.as_str(),
                c(*target),
                c(*active)
            ),
            InFlight::Canary { phase, step, .. } => format!(
                "canary {}: {}",
                phase.as_str(),
                step.map_or("no step passed yet".to_owned(), |s| format!(
                    "step {s}% passed"
                ))
            ),
        }
    }
}

/// One workload on the board.
#[derive(Debug, Clone)]
pub struct BoardRow {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    pub state: RowState,
    /// `3/3 ready`, `1/3 updated, 2 available`, `2 pods CrashLoopBackOff, image app:2.5.0`.
    pub summary: String,
    /// The judge's verdict, whole (counts, problems, the failure with its pods).
    pub verdict: Verdict,
    /// `(container, image)` of the pod template.
    pub images: Vec<(String, String)>,
    pub in_flight: Option<InFlight>,
    /// When the pod template (or the blue-green's traffic) last changed, as far as the objects
    /// tell: the new ReplicaSet's or ControllerRevision's creation, a blue-green switch; else
    /// the workload's creation.
    pub last_change: Option<Timestamp>,
}

/// `kind/name`: how the plugin names a workload.
pub fn kind_resource(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment => "deployment",
        WorkloadKind::StatefulSet => "statefulset",
        WorkloadKind::DaemonSet => "daemonset",
    }
}

/// `45s`, `12m`, `3h`, `5d`: kubectl's short ages (one unit, rounded down).
pub fn age_text(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// The controller owner reference of `meta`: `(kind, name)`.
fn controller_of(meta: &ObjectMeta) -> Option<(&str, &str)> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| (r.kind.as_str(), r.name.as_str()))
}

type OwnerKey<'a> = (&'a str, &'a str, &'a str);

fn owner_key<'a>(meta: &'a ObjectMeta) -> Option<OwnerKey<'a>> {
    let (kind, name) = controller_of(meta)?;
    Some((meta.namespace.as_deref().unwrap_or(""), kind, name))
}

/// Every workload of `inv` judged at `now`, failing first, then by namespace, kind and name.
pub fn board(inv: &Inventory, now: Timestamp, cfg: &JudgeConfig) -> Vec<BoardRow> {
    // Objects by their controller, so each workload's state is assembled without a scan.
    let mut rs_by_owner: BTreeMap<OwnerKey<'_>, Vec<&ReplicaSet>> = BTreeMap::new();
    for rs in &inv.replica_sets {
        if let Some(k) = owner_key(&rs.metadata) {
            rs_by_owner.entry(k).or_default().push(rs);
        }
    }
    let mut pods_by_owner: BTreeMap<OwnerKey<'_>, Vec<&Pod>> = BTreeMap::new();
    for p in &inv.pods {
        if let Some(k) = owner_key(&p.metadata) {
            pods_by_owner.entry(k).or_default().push(p);
        }
    }
    let services: BTreeMap<(&str, &str), &Service> = inv
        .services
        .iter()
        .map(|s| {
            (
                (
                    s.metadata.namespace.as_deref().unwrap_or(""),
                    s.metadata.name.as_deref().unwrap_or(""),
                ),
                s,
            )
        })
        .collect();
    let deployments: BTreeMap<(&str, &str), &Workload> = inv
        .workloads
        .iter()
        .filter(|w| w.kind() == WorkloadKind::Deployment)
        .map(|w| ((w.namespace().unwrap_or(""), w.name()), w))
        .collect();

    let mut rows: Vec<BoardRow> = inv
        .workloads
        .iter()
        .map(|w| {
            let ns = w.namespace().unwrap_or("");
            let mut state = RolloutState::new();
            state.upsert(workload_object(w));
            let kind = w.kind().as_str();
            for rs in rs_by_owner.get(&(ns, kind, w.name())).into_iter().flatten() {
                state.upsert(Object::from((*rs).clone()));
            }
            // A Deployment's pods belong to its ReplicaSets; the others' to the workload.
            let mut owners = vec![(ns, kind, w.name())];
            if w.kind() == WorkloadKind::Deployment {
                owners.extend(
                    rs_by_owner
                        .get(&(ns, kind, w.name()))
                        .into_iter()
                        .flatten()
                        .filter_map(|rs| rs.metadata.name.as_deref())
                        .map(|n| (ns, "ReplicaSet", n)),
                );
            }
            for o in &owners {
                for p in pods_by_owner.get(o).into_iter().flatten() {
                    state.upsert(Object::from((*p).clone()));
                }
            }
            let verdict = judge::judge(&state, now, cfg);
            let in_flight = in_flight(w, ns, &services, &deployments);
            let last_change = last_change(w, &state, &inv.revisions, in_flight.as_ref());
            row(w, verdict, in_flight, last_change)
        })
        .collect();
    rows.sort_by(|a, b| {
        (a.state != RowState::Failing, &a.namespace, a.kind, &a.name).cmp(&(
            b.state != RowState::Failing,
            &b.namespace,
            b.kind,
            &b.name,
        ))
    });
    rows
}

fn workload_object(w: &Workload) -> Object {
    match w {
        Workload::Deployment(d) => Object::Deployment(d.clone()),
        Workload::StatefulSet(s) => Object::StatefulSet(s.clone()),
        Workload::DaemonSet(d) => Object::DaemonSet(d.clone()),
    }
}

fn row(
    w: &Workload,
    verdict: Verdict,
    in_flight: Option<InFlight>,
    last_change: Option<Timestamp>,
) -> BoardRow {
    let images: Vec<(String, String)> = w
        .template()
        .map(crate::strategy::edit::template_images)
        .unwrap_or_default();
    let (state, summary) = match &verdict {
        Verdict::Failed(f) => (RowState::Failing, failure_summary(f, &images)),
        Verdict::Complete(p) => (
            RowState::Complete,
            format!("{}/{} ready", p.ready, p.desired),
        ),
        Verdict::Paused(p) => (
            RowState::Paused,
            format!("paused at {}/{} updated", p.updated, p.desired),
        ),
        Verdict::Progressing(p) => (RowState::Progressing, progressing_summary(p)),
        Verdict::Unsupported(_) => (
            RowState::Unsupported,
            "OnDelete: pods change only when deleted".to_owned(),
        ),
    };
    BoardRow {
        kind: w.kind(),
        namespace: w.namespace().unwrap_or("").to_owned(),
        name: w.name().to_owned(),
        state,
        summary,
        verdict,
        images,
        in_flight,
        last_change,
    }
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// `2 pods CrashLoopBackOff, image app:2.5.0`; the condition's message for failures that are
/// not about pods (a progress deadline, a replica failure).
fn failure_summary(f: &judge::Failure, images: &[(String, String)]) -> String {
    match f.reason {
        FailureReason::ProgressDeadlineExceeded
        | FailureReason::ReplicaFailure
        | FailureReason::MetricGate => format!("{}: {}", f.reason, f.message),
        reason => {
            let pods = f.failing_pods.len().max(usize::from(f.pod.is_some()));
            let image = f
                .container
                .as_deref()
                .and_then(|c| images.iter().find(|(name, _)| name == c))
                .map(|(_, i)| format!(", image {i}"))
                .unwrap_or_default();
            format!("{} {reason}{image}", plural(pods, "pod"))
        }
    }
}

/// `1/3 updated, 2 available`, with the problems that do not fail it yet
/// (`; 1 pod not ready yet`).
fn progressing_summary(p: &Progress) -> String {
    if p.kind.is_none() || !p.observed {
        return "waiting for the controller".to_owned();
    }
    let mut out = format!(
        "{}/{} updated, {} available",
        p.updated, p.desired, p.available
    );
    let mut by_reason: BTreeMap<FailureReason, usize> = BTreeMap::new();
    for problem in &p.problems {
        *by_reason.entry(problem.reason).or_default() += 1;
    }
    for (reason, n) in by_reason {
        let what = match reason {
            FailureReason::NeverReady => "not ready yet".to_owned(),
            other => other.as_str().to_owned(),
        };
        out.push_str(&format!("; {} {what}", plural(n, "pod")));
    }
    out
}

/// A blue-green (a Deployment of either colour names its Service) or a canary (the stable
/// Deployment's phase; the canary Deployment names its stable one) under way.
fn in_flight(
    w: &Workload,
    ns: &str,
    services: &BTreeMap<(&str, &str), &Service>,
    deployments: &BTreeMap<(&str, &str), &Workload>,
) -> Option<InFlight> {
    let Workload::Deployment(d) = w else {
        return None;
    };
    if let Some(service) = w.annotation(ann::SERVICE)
        && let Some(svc) = services.get(&(ns, service))
    {
        let st = BgState::of(svc);
        let base = w.annotation(ann::BASE).unwrap_or(w.name());
        let ours = st.workload.as_deref().is_none_or(|owner| owner == base);
        if let Some(phase) = st.phase
            && ours
            && matches!(
                phase,
                Phase::Deploying | Phase::Switched | Phase::RollingBack
            )
        {
            return Some(InFlight::BlueGreen {
                service: service.to_owned(),
                color: w.annotation(ann::COLOR).and_then(Color::parse),
                phase,
                active: st.active,
                target: st.target,
                previous: st.previous,
                switched_at: st.switched_at,
                keep_until: st.keep_until,
            });
        }
    }
    let stable = w.annotation(ann::CANARY_OF).unwrap_or(w.name());
    let stable_dep = if stable == w.name() {
        d.as_ref()
    } else {
        match deployments.get(&(ns, stable)) {
            Some(Workload::Deployment(s)) => s.as_ref(),
            _ => return None,
        }
    };
    let cs = CanaryState::of(stable_dep);
    let phase = cs.phase.filter(|p| p.under_way())?;
    Some(InFlight::Canary {
        stable: stable.to_owned(),
        phase,
        step: cs.step,
        total: cs.total,
        images: cs.images,
    })
}

fn created(meta: &ObjectMeta) -> Option<Timestamp> {
    meta.creation_timestamp.as_ref().map(|t| t.0)
}

fn last_change(
    w: &Workload,
    state: &RolloutState,
    revisions: &[ControllerRevision],
    in_flight: Option<&InFlight>,
) -> Option<Timestamp> {
    let template_change = match w {
        Workload::Deployment(_) => state.new_replica_set().and_then(|rs| created(&rs.metadata)),
        Workload::StatefulSet(s) => {
            let update = s
                .status
                .as_ref()
                .and_then(|st| st.update_revision.as_deref());
            revisions
                .iter()
                .filter(|r| controlled_by(&r.metadata, "StatefulSet", &s.metadata))
                .find(|r| r.metadata.name.as_deref() == update && update.is_some())
                .and_then(|r| created(&r.metadata))
        }
        Workload::DaemonSet(d) => revisions
            .iter()
            .filter(|r| controlled_by(&r.metadata, "DaemonSet", &d.metadata))
            .max_by_key(|r| r.revision)
            .and_then(|r| created(&r.metadata)),
    }
    .or_else(|| created(w.metadata()));
    let switched = match in_flight {
        Some(InFlight::BlueGreen { switched_at, .. }) => *switched_at,
        _ => None,
    };
    template_change.into_iter().chain(switched).max()
}

/// How many rows are in each state, in [`RowState`] order.
pub fn counts(rows: &[BoardRow]) -> BTreeMap<RowState, usize> {
    let mut out = BTreeMap::new();
    for r in rows {
        *out.entry(r.state).or_default() += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn de<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    fn deployment(name: &str, annotations: serde_json::Value) -> Workload {
        Workload::Deployment(Box::new(de(json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"), "generation": 1,
                "creationTimestamp": "2026-11-20T10:00:00Z", "annotations": annotations},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}},
            "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1}
        }))))
    }

    fn replica_set(owner: &str, created: &str) -> ReplicaSet {
        de(json!({
            "metadata": {"name": format!("{owner}-abc"), "namespace": "ns", "creationTimestamp": created,
                "annotations": {"deployment.kubernetes.io/revision": "1"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": owner,
                    "uid": format!("uid-{owner}"), "controller": true}]},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": owner}},
                "template": {"metadata": {"labels": {"app": owner}}, "spec": {"containers": [{"name": "app", "image": "app:1"}]}}},
            "status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}
        }))
    }

    fn service(phase: &str, switched_at: &str) -> Service {
        de(
            json!({"metadata": {"name": "web", "namespace": "ns", "annotations": {
            "rollout-safe.dev/blue-green-phase": phase,
            "rollout-safe.dev/blue-green-active": "green",
            "rollout-safe.dev/blue-green-previous": "blue",
            "rollout-safe.dev/blue-green-switched-at": switched_at,
            "rollout-safe.dev/blue-green-keep-until": "2026-11-22T12:10:00Z"}},
            "spec": {"selector": {"app": "web", "rollout-safe.dev/color": "green"}}}),
        )
    }

    fn now() -> Timestamp {
        "2026-11-22T12:05:00Z".parse().unwrap()
    }

    #[test]
    fn ages_are_short() {
        assert_eq!(age_text(59), "59s");
        assert_eq!(age_text(119), "119s");
        assert_eq!(age_text(600), "10m");
        assert_eq!(age_text(3 * 3600), "3h");
        assert_eq!(age_text(3 * 86400), "3d");
    }

    #[test]
    fn the_last_change_is_the_newer_of_the_template_and_the_switch() {
        let inv = Inventory {
            workloads: vec![
                deployment("web", json!({"rollout-safe.dev/blue-green-service": "web"})),
                deployment("cart", json!({})),
            ],
            replica_sets: vec![
                replica_set("web", "2026-11-22T11:00:00Z"),
                replica_set("cart", "2026-11-22T11:30:00Z"),
            ],
            services: vec![service("switched", "2026-11-22T12:00:00Z")],
            ..Inventory::default()
        };
        let rows = board(&inv, now(), &JudgeConfig::default());
        let web = rows.iter().find(|r| r.name == "web").unwrap();
        assert_eq!(
            web.last_change,
            Some("2026-11-22T12:00:00Z".parse().unwrap())
        );
        assert_eq!(
            web.in_flight.as_ref().unwrap().text(now()),
            "blue-green switched: traffic on green, blue kept 5m more"
        );
        let cart = rows.iter().find(|r| r.name == "cart").unwrap();
        assert_eq!(
            cart.last_change,
            Some("2026-11-22T11:30:00Z".parse().unwrap())
        );
        assert_eq!(cart.in_flight, None);
        assert_eq!(cart.state, RowState::Complete);
        assert_eq!(cart.summary, "1/1 ready");
    }

    #[test]
    fn only_a_blue_green_or_canary_under_way_is_in_flight() {
        for (phase, in_flight) in [
            ("switched", true),
            ("deploying", true),
            ("rolling-back", true),
            ("finished", false),
            ("abandoned", false),
            ("rolled-back", false),
        ] {
            let inv = Inventory {
                workloads: vec![deployment(
                    "web",
                    json!({"rollout-safe.dev/blue-green-service": "web"}),
                )],
                services: vec![service(phase, "2026-11-22T12:00:00Z")],
                ..Inventory::default()
            };
            let rows = board(&inv, now(), &JudgeConfig::default());
            assert_eq!(rows[0].in_flight.is_some(), in_flight, "{phase}");
        }
        for (phase, in_flight) in [
            ("running", true),
            ("promoting", true),
            ("done", false),
            ("aborted", false),
        ] {
            let inv = Inventory {
                workloads: vec![
                    deployment("api", json!({"rollout-safe.dev/canary-phase": phase})),
                    deployment("api-canary", json!({"rollout-safe.dev/canary-of": "api"})),
                ],
                ..Inventory::default()
            };
            let rows = board(&inv, now(), &JudgeConfig::default());
            assert!(
                rows.iter().all(|r| r.in_flight.is_some() == in_flight),
                "{phase}"
            );
        }
        // The window's end is shown once it has passed.
        let late: Timestamp = "2026-11-22T12:11:00Z".parse().unwrap();
        let f = InFlight::BlueGreen {
            service: "web".into(),
            color: Some(Color::Blue),
            phase: Phase::Switched,
            active: Some(Color::Green),
            target: None,
            previous: Some(Color::Blue),
            switched_at: None,
            keep_until: Some("2026-11-22T12:10:00Z".parse().unwrap()),
        };
        assert_eq!(
            f.text(late),
            "blue-green switched: traffic on green, blue kept, window over"
        );
    }

    #[test]
    fn a_failing_rollout_names_its_pods_reason_and_image() {
        let mut crashing = deployment("pay", json!({}));
        if let Workload::Deployment(d) = &mut crashing {
            d.spec.template.spec.as_mut().unwrap().containers[0].image = Some("pay:2.5.0".into());
            d.spec.replicas = Some(2);
            let st = d.status.as_mut().unwrap();
            (st.replicas, st.updated_replicas) = (Some(2), Some(2));
            (st.ready_replicas, st.available_replicas) = (Some(0), Some(0));
        }
        let mut rs = serde_json::to_value(replica_set("pay", "2026-11-22T12:00:00Z")).unwrap();
        rs["spec"]["template"]["spec"]["containers"][0]["image"] = json!("pay:2.5.0");
        let rs: ReplicaSet = de(rs);
        let pod = |n: &str| -> Pod {
            de(
                json!({"metadata": {"name": n, "namespace": "ns", "creationTimestamp": "2026-11-22T12:00:00Z",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "pay-abc", "uid": "u", "controller": true}]},
                "spec": {"containers": [{"name": "app", "image": "pay:2.5.0"}]},
                "status": {"phase": "Running", "containerStatuses": [{"name": "app", "image": "pay:2.5.0", "imageID": "", "ready": false, "restartCount": 4,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}}]}}),
            )
        };
        let inv = Inventory {
            workloads: vec![crashing, deployment("cart", json!({}))],
            replica_sets: vec![rs],
            pods: vec![pod("pay-abc-1"), pod("pay-abc-2")],
            ..Inventory::default()
        };
        let rows = board(&inv, now(), &JudgeConfig::default());
        // Failing first, whatever the name.
        assert_eq!(rows[0].name, "pay", "{:?}", rows[1].verdict);
        assert_eq!(rows[0].state, RowState::Failing, "{:?}", rows[0].verdict);
        assert_eq!(rows[0].summary, "2 pods CrashLoopBackOff, image pay:2.5.0");
        assert_eq!(counts(&rows).get(&RowState::Failing), Some(&1));
    }
}
