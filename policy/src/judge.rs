//! The rollout judge: one pure function of observed cluster state that says
//! whether a rollout is still progressing, complete, paused, or has failed —
//! and if it failed, which pod and container failed, why, and since when.
//!
//! The plugin's `update`, `status` and `undo` feed watch events for the
//! workload, its ReplicaSets, its pods and the namespace's events into a
//! [`RolloutState`] and call [`judge`] after every event, and again at
//! [`Verdict::recheck_at`] when a time-based rule (the readiness budget) may
//! flip the verdict without any new event. Nothing here does I/O or reads a
//! clock: `now` is an argument.
//!
//! Completion follows kubectl's `rollout status` viewers exactly
//! (`DeploymentStatusViewer`, `StatefulSetStatusViewer`,
//! `DaemonSetStatusViewer`). Failure is kubectl's `ProgressDeadlineExceeded`
//! plus, with [`JudgeConfig::fail_fast`], earlier signals from the pods of the
//! *new* revision only (never from pods of old ReplicaSets).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

pub use crate::rule::WorkloadKind;
pub use crate::workload::Workload;

/// Annotation the deployment controller puts on a Deployment and its ReplicaSets.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// Label the deployment controller adds to ReplicaSets and their pods.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// Label the StatefulSet/DaemonSet controllers add to their pods.
pub const CONTROLLER_REVISION_HASH_LABEL: &str = "controller-revision-hash";
/// Annotation the API server keeps on a DaemonSet: the generation of its template.
pub const DAEMONSET_TEMPLATE_GENERATION_ANNOTATION: &str =
    "deprecated.daemonset.template.generation";
/// Label the DaemonSet controller puts on its pods: the template generation they were made from.
pub const DAEMONSET_TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// Reason of the `Progressing` condition once the progress deadline has passed.
pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
/// How many events a [`RolloutState`] keeps by default (the most recent ones).
pub const DEFAULT_MAX_EVENTS: usize = 256;
/// How many events a [`Failure`] quotes at most.
pub const MAX_FAILURE_EVENTS: usize = 10;
/// Readiness budget when neither the config nor the workload gives one.
pub const DEFAULT_READINESS_BUDGET: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// Tunables of the judge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JudgeConfig {
    /// A container of a new pod that restarted more than this many times and
    /// is not ready is a failure ([`FailureReason::TooManyRestarts`]).
    pub max_restarts: i32,
    /// A container of a new pod that is running but not ready for longer than
    /// this is a failure ([`FailureReason::NeverReady`]). `None`: the
    /// Deployment's `progressDeadlineSeconds`, else
    /// [`DEFAULT_READINESS_BUDGET`] (see [`JudgeConfig::readiness_budget_for`]).
    pub readiness_budget: Option<Duration>,
    /// Fail on pod signals (crash loops, image pulls, bad config, restarts,
    /// readiness budget, `ReplicaFailure`) instead of waiting for the
    /// controller's `ProgressDeadlineExceeded`.
    pub fail_fast: bool,
    /// Also wait until no pod of an old revision exists any more, not even a
    /// terminating one. kubectl does not (terminating pods are not counted in
    /// `status.replicas`), so the default is `false`.
    pub wait_for_old_pods: bool,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        Self {
            max_restarts: 3,
            readiness_budget: None,
            fail_fast: true,
            wait_for_old_pods: false,
        }
    }
}

impl JudgeConfig {
    /// The readiness budget that applies to `workload`.
    pub fn readiness_budget_for(&self, workload: Option<&Workload>) -> Duration {
        if let Some(budget) = self.readiness_budget {
            return budget;
        }
        let deadline = match workload {
            Some(Workload::Deployment(d)) => d.spec.progress_deadline_seconds,
            _ => None,
        };
        match deadline {
            Some(secs) if secs > 0 => Duration::from_secs(u64::try_from(secs).unwrap_or(u64::MAX)),
            _ => DEFAULT_READINESS_BUDGET,
        }
    }
}

// ---------------------------------------------------------------------------
// Objects and watch events
// ---------------------------------------------------------------------------

/// kubectl's lower-case wording (`deployment`, `statefulset`, `daemon set`).
fn kubectl_noun(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment => "deployment",
        WorkloadKind::StatefulSet => "statefulset",
        WorkloadKind::DaemonSet => "daemon set",
    }
}

/// One object of the four watched resources.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    Deployment(Box<Deployment>),
    StatefulSet(Box<StatefulSet>),
    DaemonSet(Box<DaemonSet>),
    ReplicaSet(Box<ReplicaSet>),
    Pod(Box<Pod>),
    Event(Box<Event>),
}

macro_rules! object_from {
    ($($ty:ident),*) => {$(
        impl From<$ty> for Object {
            fn from(o: $ty) -> Self { Self::$ty(Box::new(o)) }
        }
    )*};
}
object_from!(Deployment, StatefulSet, DaemonSet, ReplicaSet, Pod, Event);

/// Why a JSON value could not be turned into an [`Object`] or [`WatchEvent`].
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("object has no `kind`")]
    MissingKind,
    #[error(
        "unsupported kind `{0}` (expected Deployment, StatefulSet, DaemonSet, ReplicaSet, Pod or Event)"
    )]
    UnsupportedKind(String),
    #[error("unknown watch event type `{0}` (expected ADDED, MODIFIED or DELETED)")]
    UnknownEventType(String),
    #[error("invalid {kind}: {source}")]
    Invalid {
        kind: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Object {
    /// Decodes an API object, dispatching on its `kind` (core/v1 `Event`s only).
    pub fn from_json(value: serde_json::Value) -> Result<Self, DecodeError> {
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .ok_or(DecodeError::MissingKind)?
            .to_owned();
        let invalid = |source| DecodeError::Invalid {
            kind: kind.clone(),
            source,
        };
        Ok(match kind.as_str() {
            "Deployment" => {
                Self::from(serde_json::from_value::<Deployment>(value).map_err(invalid)?)
            }
            "StatefulSet" => {
                Self::from(serde_json::from_value::<StatefulSet>(value).map_err(invalid)?)
            }
            "DaemonSet" => Self::from(serde_json::from_value::<DaemonSet>(value).map_err(invalid)?),
            "ReplicaSet" => {
                Self::from(serde_json::from_value::<ReplicaSet>(value).map_err(invalid)?)
            }
            "Pod" => Self::from(serde_json::from_value::<Pod>(value).map_err(invalid)?),
            "Event" => Self::from(serde_json::from_value::<Event>(value).map_err(invalid)?),
            _ => return Err(DecodeError::UnsupportedKind(kind)),
        })
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Self::Deployment(o) => &o.metadata,
            Self::StatefulSet(o) => &o.metadata,
            Self::DaemonSet(o) => &o.metadata,
            Self::ReplicaSet(o) => &o.metadata,
            Self::Pod(o) => &o.metadata,
            Self::Event(o) => &o.metadata,
        }
    }
}

/// A watch event of one of the watched resources.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchEvent {
    Added(Object),
    Modified(Object),
    Deleted(Object),
}

impl WatchEvent {
    /// Decodes `{"type": …, "object": …}` as sent by the API server's watch.
    pub fn from_json(type_: &str, object: serde_json::Value) -> Result<Self, DecodeError> {
        let object = Object::from_json(object)?;
        Ok(match type_ {
            "ADDED" => Self::Added(object),
            "MODIFIED" => Self::Modified(object),
            "DELETED" => Self::Deleted(object),
            other => return Err(DecodeError::UnknownEventType(other.to_owned())),
        })
    }
}

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

/// Everything the judge looks at, maintained from watch events.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutState {
    workload: Option<Workload>,
    /// Keyed by `namespace/name`.
    replica_sets: BTreeMap<String, ReplicaSet>,
    /// Keyed by `namespace/name`.
    pods: BTreeMap<String, Pod>,
    /// In arrival order; a MODIFIED event moves the event to the back.
    events: VecDeque<Event>,
    max_events: usize,
}

impl Default for RolloutState {
    fn default() -> Self {
        Self::new()
    }
}

/// `namespace/name`: how the state keys objects of one kind.
pub fn key(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

impl RolloutState {
    pub fn new() -> Self {
        Self::with_max_events(DEFAULT_MAX_EVENTS)
    }

    /// A state that keeps at most `max_events` (most recent) events.
    pub fn with_max_events(max_events: usize) -> Self {
        Self {
            workload: None,
            replica_sets: BTreeMap::new(),
            pods: BTreeMap::new(),
            events: VecDeque::new(),
            max_events,
        }
    }

    /// Applies one watch event: ADDED and MODIFIED insert or replace, DELETED removes.
    ///
    /// Feed it the events of one workload (watch the workload by name); pods
    /// and ReplicaSets of other owners may be fed too and are ignored by
    /// ownership. After a watch restart (a re-list), start from a fresh state.
    pub fn apply(&mut self, event: WatchEvent) {
        match event {
            WatchEvent::Added(o) | WatchEvent::Modified(o) => self.upsert(o),
            WatchEvent::Deleted(o) => self.remove(&o),
        }
    }

    /// Inserts or replaces an object (a workload replaces the current workload).
    pub fn upsert(&mut self, object: Object) {
        match object {
            Object::Deployment(d) => self.workload = Some(Workload::Deployment(d)),
            Object::StatefulSet(s) => self.workload = Some(Workload::StatefulSet(s)),
            Object::DaemonSet(d) => self.workload = Some(Workload::DaemonSet(d)),
            Object::ReplicaSet(rs) => {
                self.replica_sets.insert(key(&rs.metadata), *rs);
            }
            Object::Pod(p) => {
                self.pods.insert(key(&p.metadata), *p);
            }
            Object::Event(e) => {
                // The same event again (count bumped) replaces the old copy.
                self.events.retain(|old| {
                    old.metadata.name != e.metadata.name
                        || old.metadata.namespace != e.metadata.namespace
                });
                self.events.push_back(*e);
                while self.events.len() > self.max_events {
                    self.events.pop_front();
                }
            }
        }
    }

    /// Removes an object (a workload only if it is the current one).
    pub fn remove(&mut self, object: &Object) {
        let k = key(object.metadata());
        match object {
            Object::Deployment(_) | Object::StatefulSet(_) | Object::DaemonSet(_) => {
                let same = self
                    .workload
                    .as_ref()
                    .is_some_and(|w| key(w.metadata()) == k);
                if same {
                    self.workload = None;
                }
            }
            Object::ReplicaSet(_) => {
                self.replica_sets.remove(&k);
            }
            Object::Pod(_) => {
                self.pods.remove(&k);
            }
            Object::Event(_) => self.events.retain(|e| key(&e.metadata) != k),
        }
    }

    pub fn workload(&self) -> Option<&Workload> {
        self.workload.as_ref()
    }

    pub fn replica_sets(&self) -> impl Iterator<Item = &ReplicaSet> {
        self.replica_sets.values()
    }

    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.pods.values()
    }

    /// The kept events, oldest first.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.events.iter()
    }

    /// The pods of the Deployment's new ReplicaSet (by controller reference).
    pub fn new_pods(&self) -> Vec<&Pod> {
        let Some(rs) = self.new_replica_set() else {
            return Vec::new();
        };
        self.pods
            .values()
            .filter(|p| controlled_by(&p.metadata, "ReplicaSet", &rs.metadata))
            .collect()
    }

    /// The ReplicaSets controlled by the Deployment being judged.
    pub fn owned_replica_sets(&self) -> Vec<&ReplicaSet> {
        match &self.workload {
            Some(Workload::Deployment(d)) => self
                .replica_sets
                .values()
                .filter(|rs| controlled_by(&rs.metadata, "Deployment", &d.metadata))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The Deployment's new ReplicaSet, found as the deployment controller
    /// does (`FindNewReplicaSet`): the oldest controlled ReplicaSet whose pod
    /// template equals the Deployment's, ignoring `pod-template-hash`. If none
    /// matches and the controller has observed the current generation, the
    /// one whose revision annotation equals the Deployment's.
    pub fn new_replica_set(&self) -> Option<&ReplicaSet> {
        let Some(Workload::Deployment(d)) = &self.workload else {
            return None;
        };
        let owned = self.owned_replica_sets();
        let template = normalized_template(&d.spec.template);
        let by_template = owned
            .iter()
            .filter(|rs| {
                rs.spec.template.as_ref().map(normalized_template).as_ref() == Some(&template)
            })
            .min_by(|a, b| {
                (a.metadata.creation_timestamp.as_ref(), &a.metadata.name)
                    .cmp(&(b.metadata.creation_timestamp.as_ref(), &b.metadata.name))
            })
            .copied();
        if by_template.is_some() {
            return by_template;
        }
        if !deployment_observed(d) {
            return None;
        }
        let revision = annotation(&d.metadata, REVISION_ANNOTATION)?;
        owned
            .into_iter()
            .find(|rs| annotation(&rs.metadata, REVISION_ANNOTATION) == Some(revision))
    }
}

/// Whether two pod templates are the same apart from `pod-template-hash` (the Deployment
/// controller's `EqualIgnoreHash`, which also decides which ReplicaSet is the new one).
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    normalized_template(a) == normalized_template(b)
}

/// A pod template without the `pod-template-hash` label (what `rollout undo` copies back).
pub fn normalized_template(t: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = t.clone();
    if let Some(meta) = t.metadata.as_mut() {
        if let Some(labels) = meta.labels.as_mut() {
            labels.remove(POD_TEMPLATE_HASH_LABEL);
            if labels.is_empty() {
                meta.labels = None;
            }
        }
        if meta.annotations.as_ref().is_some_and(|a| a.is_empty()) {
            meta.annotations = None;
        }
        if *meta == ObjectMeta::default() {
            t.metadata = None;
        }
    }
    t
}

fn annotation<'a>(meta: &'a ObjectMeta, name: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(name).map(String::as_str)
}

fn label<'a>(meta: &'a ObjectMeta, name: &str) -> Option<&'a str> {
    meta.labels.as_ref()?.get(name).map(String::as_str)
}

/// Whether `meta`'s controller owner reference points at `owner` of `kind`.
pub fn controlled_by(meta: &ObjectMeta, kind: &str, owner: &ObjectMeta) -> bool {
    if let (Some(a), Some(b)) = (&meta.namespace, &owner.namespace)
        && a != b
    {
        return false;
    }
    meta.owner_references.iter().flatten().any(|r| {
        r.controller == Some(true)
            && r.kind == kind
            && match owner.uid.as_deref() {
                Some(uid) if !uid.is_empty() && !r.uid.is_empty() => r.uid == uid,
                _ => Some(r.name.as_str()) == owner.name.as_deref(),
            }
    })
}

fn deployment_observed(d: &Deployment) -> bool {
    let generation = d.metadata.generation.unwrap_or(0);
    let observed = d
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .unwrap_or(0);
    generation <= observed
}

// ---------------------------------------------------------------------------
// Verdicts
// ---------------------------------------------------------------------------

/// Why a rollout failed (or, in [`PodProblem`], what is wrong with a pod).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureReason {
    /// The Deployment's `Progressing` condition says `ProgressDeadlineExceeded`.
    ProgressDeadlineExceeded,
    /// The Deployment's `ReplicaFailure` condition is true (pods cannot be created).
    ReplicaFailure,
    /// A container is waiting in `CreateContainerConfigError` (missing ConfigMap/Secret key, …).
    CreateContainerConfigError,
    /// A container is waiting in `InvalidImageName`.
    InvalidImageName,
    /// A container is waiting in `ErrImagePull`, `ImagePullBackOff` or `ErrImageNeverPull`.
    ImagePull,
    /// A container is waiting in `CreateContainerError` or `RunContainerError`.
    CreateContainerError,
    /// A container is waiting in `CrashLoopBackOff`.
    CrashLoopBackOff,
    /// A container restarted more than `max_restarts` times and is not ready.
    TooManyRestarts,
    /// A container has been running but not ready for longer than the readiness budget.
    NeverReady,
    /// A pod cannot be scheduled (reported as a problem; never fails on its own).
    Unschedulable,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProgressDeadlineExceeded => "ProgressDeadlineExceeded",
            Self::ReplicaFailure => "ReplicaFailure",
            Self::CreateContainerConfigError => "CreateContainerConfigError",
            Self::InvalidImageName => "InvalidImageName",
            Self::ImagePull => "ImagePull",
            Self::CreateContainerError => "CreateContainerError",
            Self::CrashLoopBackOff => "CrashLoopBackOff",
            Self::TooManyRestarts => "TooManyRestarts",
            Self::NeverReady => "NeverReady",
            Self::Unschedulable => "Unschedulable",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something wrong with one pod of the new revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodProblem {
    pub pod: String,
    pub container: Option<String>,
    pub reason: FailureReason,
    pub message: String,
    /// When the condition began, as far as the objects tell (second resolution).
    pub since: Option<Timestamp>,
    /// When it is (or will be) a failure: `since` for waiting reasons,
    /// `since + readiness budget` for [`FailureReason::NeverReady`], `None`
    /// for problems that never fail on their own.
    pub fails_at: Option<Timestamp>,
    /// `fails_at <= now`.
    pub fatal: bool,
}

/// A Kubernetes event, summarised for a failure report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventNote {
    /// `Normal` or `Warning`.
    pub type_: String,
    pub reason: String,
    /// `Kind/name` of the involved object.
    pub object: String,
    pub message: String,
    pub count: i32,
    pub last_seen: Option<Timestamp>,
}

impl fmt::Display for EventNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(t) = self.last_seen {
            write!(f, "{t} ")?;
        }
        write!(
            f,
            "{} {} {}: {}",
            self.type_, self.reason, self.object, self.message
        )?;
        if self.count > 1 {
            write!(f, " (x{})", self.count)?;
        }
        Ok(())
    }
}

/// Where a rollout stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// `None` until the workload has been observed.
    pub kind: Option<WorkloadKind>,
    pub name: String,
    /// Desired replicas (`spec.replicas`; `desiredNumberScheduled` for a DaemonSet).
    pub desired: i32,
    /// Replicas of the new revision (`status.updatedReplicas`, …).
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    /// All non-terminated replicas (`status.replicas`).
    pub total: i32,
    /// `total - updated`, at least 0.
    pub old_replicas: i32,
    /// Pods of old revisions still present, terminating ones included.
    pub old_pods: usize,
    /// Pods of this workload that are terminating.
    pub terminating_pods: usize,
    /// The new revision (`deployment.kubernetes.io/revision` of the new
    /// ReplicaSet or Deployment; `updateRevision` for a StatefulSet; the
    /// template generation for a DaemonSet).
    pub new_revision: Option<String>,
    /// The new ReplicaSet of a Deployment.
    pub new_replica_set: Option<String>,
    /// The controller has observed the current generation.
    pub observed: bool,
    pub paused: bool,
    /// kubectl-style one-line status.
    pub message: String,
    /// Problems of pods of the new revision, fatal or not yet.
    pub problems: Vec<PodProblem>,
    /// Judge again at this time even without a new watch event: a readiness
    /// budget runs out then.
    pub recheck_at: Option<Timestamp>,
}

/// Why a rollout failed, with the evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: FailureReason,
    /// The failing pod (the one whose failure began first).
    pub pod: Option<String>,
    pub container: Option<String>,
    pub message: String,
    /// Recent events about the failing pods, the new ReplicaSet and the workload, oldest first.
    pub events: Vec<EventNote>,
    /// When the first failing signal appeared, from object timestamps (second
    /// resolution, never after `now`): see [`failure_started_at`].
    pub first_seen: Option<Timestamp>,
    /// All pods of the new revision that are failing, sorted.
    pub failing_pods: Vec<String>,
    pub progress: Progress,
}

/// The judge's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Still rolling out (or waiting for the controller).
    Progressing(Progress),
    /// A paused Deployment that has not completed: not a failure, but it will
    /// not progress until resumed.
    Paused(Progress),
    /// Done, by kubectl's definition.
    Complete(Progress),
    Failed(Box<Failure>),
    /// kubectl cannot report rollout status for this workload (an `OnDelete`
    /// update strategy).
    Unsupported(Progress),
}

impl Verdict {
    pub fn progress(&self) -> &Progress {
        match self {
            Self::Progressing(p) | Self::Paused(p) | Self::Complete(p) | Self::Unsupported(p) => p,
            Self::Failed(f) => &f.progress,
        }
    }

    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Self::Failed(f) => Some(f),
            _ => None,
        }
    }

    pub fn is_complete(&self) -> bool {
        matches!(self, Self::Complete(_))
    }

    pub fn is_failed(&self) -> bool {
        matches!(self, Self::Failed(_))
    }

    /// When to judge again if no watch event arrives before then.
    pub fn recheck_at(&self) -> Option<Timestamp> {
        match self {
            Self::Progressing(p) | Self::Paused(p) => p.recheck_at,
            _ => None,
        }
    }

    /// Short name of the variant: `Progressing`, `Paused`, `Complete`, `Failed`, `Unsupported`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Progressing(_) => "Progressing",
            Self::Paused(_) => "Paused",
            Self::Complete(_) => "Complete",
            Self::Failed(_) => "Failed",
            Self::Unsupported(_) => "Unsupported",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(fail) => write!(f, "Failed ({}): {}", fail.reason, fail.message),
            other => write!(f, "{}: {}", other.label(), other.progress().message),
        }
    }
}

/// When the first failing signal of a failed rollout appeared (from object
/// timestamps; `None` if not failed or unknown). The plugin measures "first
/// failing pod → rollback started" from this.
pub fn failure_started_at(verdict: &Verdict) -> Option<Timestamp> {
    verdict.failure().and_then(|f| f.first_seen)
}

// ---------------------------------------------------------------------------
// The judge
// ---------------------------------------------------------------------------

/// Judges the rollout in `state` at time `now`.
pub fn judge(state: &RolloutState, now: Timestamp, cfg: &JudgeConfig) -> Verdict {
    let Some(workload) = &state.workload else {
        return Verdict::Progressing(Progress {
            message: "Waiting for the workload to be observed...".to_owned(),
            ..Progress::default()
        });
    };
    let budget = SignedDuration::try_from(cfg.readiness_budget_for(Some(workload)))
        .unwrap_or(SignedDuration::MAX);
    match workload {
        Workload::Deployment(d) => judge_deployment(state, d, now, budget, cfg),
        Workload::StatefulSet(s) => judge_statefulset(state, s, now, budget, cfg),
        Workload::DaemonSet(d) => judge_daemonset(state, d, now, budget, cfg),
    }
}

/// What a status viewer concluded, before pod signals are considered.
struct StatusView {
    complete: bool,
    message: String,
    /// The `ProgressDeadlineExceeded` condition, when it applies.
    deadline: Option<(String, Option<Timestamp>)>,
    /// A true `ReplicaFailure` condition.
    replica_failure: Option<(String, Option<Timestamp>)>,
    /// Only the update strategy makes rollout status meaningless.
    unsupported: bool,
}

/// The pods of a workload, split into new revision and the rest.
#[derive(Default)]
struct PodSets<'a> {
    new: Vec<&'a Pod>,
    old: Vec<&'a Pod>,
    terminating: usize,
    /// Objects (kind, name) whose events concern the rollout, besides pods.
    related: Vec<(String, String)>,
    /// Events before this are from an earlier rollout.
    since: Option<Timestamp>,
}

fn judge_deployment(
    state: &RolloutState,
    d: &Deployment,
    now: Timestamp,
    budget: SignedDuration,
    cfg: &JudgeConfig,
) -> Verdict {
    let name = d.metadata.name.clone().unwrap_or_default();
    let spec = &d.spec;
    let status = d.status.clone().unwrap_or_default();
    let observed = deployment_observed(d);
    let paused = spec.paused.unwrap_or(false);

    let new_rs = state.new_replica_set();
    let owned = state.owned_replica_sets();
    let mut sets = PodSets::default();
    sets.related.push(("Deployment".to_owned(), name.clone()));
    if let Some(rs) = new_rs {
        sets.related.push((
            "ReplicaSet".to_owned(),
            rs.metadata.name.clone().unwrap_or_default(),
        ));
        sets.since = rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
    }
    for pod in state.pods.values() {
        let Some(rs) = owned
            .iter()
            .find(|rs| controlled_by(&pod.metadata, "ReplicaSet", &rs.metadata))
        else {
            continue;
        };
        let terminating = pod.metadata.deletion_timestamp.is_some();
        if terminating {
            sets.terminating += 1;
        }
        let is_new = new_rs.is_some_and(|n| std::ptr::eq(n, *rs));
        if is_new {
            if !terminating {
                sets.new.push(pod);
            }
        } else {
            sets.old.push(pod);
        }
    }

    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let mut progress = Progress {
        kind: Some(WorkloadKind::Deployment),
        name: name.clone(),
        desired: spec.replicas.unwrap_or(1),
        updated,
        ready: status.ready_replicas.unwrap_or(0),
        available,
        total,
        old_replicas: total.saturating_sub(updated).max(0),
        old_pods: sets.old.len(),
        terminating_pods: sets.terminating,
        new_revision: new_rs
            .and_then(|rs| annotation(&rs.metadata, REVISION_ANNOTATION))
            .or_else(|| annotation(&d.metadata, REVISION_ANNOTATION))
            .map(str::to_owned),
        new_replica_set: new_rs.and_then(|rs| rs.metadata.name.clone()),
        observed,
        paused,
        ..Progress::default()
    };

    // kubectl's DeploymentStatusViewer.
    let conditions = status.conditions.clone().unwrap_or_default();
    let mut view = StatusView {
        complete: false,
        message: String::new(),
        deadline: None,
        replica_failure: None,
        unsupported: false,
    };
    if observed {
        if let Some(c) = conditions
            .iter()
            .find(|c| c.type_.as_deref() == Some("Progressing"))
            && c.reason.as_deref() == Some(PROGRESS_DEADLINE_EXCEEDED)
        {
            let at = c
                .last_update_time
                .as_ref()
                .or(c.last_transition_time.as_ref())
                .map(|t| t.0);
            let mut msg = format!("deployment {name:?} exceeded its progress deadline");
            if let Some(m) = c.message.as_deref().filter(|m| !m.is_empty()) {
                msg.push_str(": ");
                msg.push_str(m);
            }
            view.deadline = Some((msg, at));
        }
        let spec_replicas = spec.replicas;
        view.message = match spec_replicas {
            Some(r) if updated < r => {
                format!(
                    "Waiting for deployment {name:?} rollout to finish: {updated} out of {r} new replicas have been updated..."
                )
            }
            _ if total > updated => format!(
                "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
                total.saturating_sub(updated)
            ),
            _ if available < updated => format!(
                "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
            ),
            _ => {
                view.complete = true;
                format!("deployment {name:?} successfully rolled out")
            }
        };
        if view.complete && cfg.wait_for_old_pods && !sets.old.is_empty() {
            view.complete = false;
            view.message = format!(
                "Waiting for deployment {name:?} rollout to finish: {} old pods are still terminating...",
                sets.old.len()
            );
        }
    } else {
        view.message = "Waiting for deployment spec update to be observed...".to_owned();
    }
    if let Some(c) = conditions.iter().find(|c| {
        c.type_.as_deref() == Some("ReplicaFailure") && c.status.as_deref() == Some("True")
    }) {
        let at = c
            .last_transition_time
            .as_ref()
            .or(c.last_update_time.as_ref())
            .map(|t| t.0);
        let msg = format!(
            "deployment {name:?} cannot create pods: {}",
            c.message
                .as_deref()
                .or(c.reason.as_deref())
                .unwrap_or("ReplicaFailure")
        );
        view.replica_failure = Some((msg, at));
    }
    if paused && !view.complete {
        view.message = format!(
            "deployment {name:?} is paused; resume it to continue the rollout ({})",
            view.message
        );
    }
    progress.message = view.message.clone();
    conclude(
        state,
        WorkloadKind::Deployment,
        view,
        sets,
        progress,
        now,
        budget,
        cfg,
    )
}

fn judge_statefulset(
    state: &RolloutState,
    s: &StatefulSet,
    now: Timestamp,
    budget: SignedDuration,
    cfg: &JudgeConfig,
) -> Verdict {
    let name = s.metadata.name.clone().unwrap_or_default();
    let spec = &s.spec;
    let status = s.status.clone().unwrap_or_default();
    let strategy = spec.update_strategy.as_ref();
    let strategy_type = strategy
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate");
    let update_revision = status.update_revision.clone();

    let mut sets = PodSets::default();
    sets.related.push(("StatefulSet".to_owned(), name.clone()));
    for pod in state
        .pods
        .values()
        .filter(|p| controlled_by(&p.metadata, "StatefulSet", &s.metadata))
    {
        let terminating = pod.metadata.deletion_timestamp.is_some();
        if terminating {
            sets.terminating += 1;
        }
        let is_new = update_revision.is_some()
            && label(&pod.metadata, CONTROLLER_REVISION_HASH_LABEL) == update_revision.as_deref();
        if is_new {
            if !terminating {
                sets.new.push(pod);
            }
        } else {
            sets.old.push(pod);
        }
    }

    let generation = s.metadata.generation.unwrap_or(0);
    let observed_generation = status.observed_generation.unwrap_or(0);
    let observed = observed_generation != 0 && generation <= observed_generation;
    let replicas = spec.replicas;
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let mut progress = Progress {
        kind: Some(WorkloadKind::StatefulSet),
        name: name.clone(),
        desired: replicas.unwrap_or(1),
        updated,
        ready,
        available: status.available_replicas.unwrap_or(0),
        total: status.replicas,
        old_replicas: status.replicas.saturating_sub(updated).max(0),
        old_pods: sets.old.len(),
        terminating_pods: sets.terminating,
        new_revision: update_revision.clone(),
        observed,
        ..Progress::default()
    };

    // kubectl's StatefulSetStatusViewer.
    let mut view = StatusView {
        complete: false,
        message: String::new(),
        deadline: None,
        replica_failure: None,
        unsupported: false,
    };
    if strategy_type != "RollingUpdate" {
        view.unsupported = true;
        view.message =
            "rollout status is only available for RollingUpdate strategy type".to_owned();
    } else if !observed {
        view.message = "Waiting for statefulset spec update to be observed...".to_owned();
    } else if let Some(r) = replicas.filter(|r| ready < *r) {
        view.message = format!(
            "Waiting for {} pods to be ready...",
            r.saturating_sub(ready)
        );
    } else if let Some(ru) = strategy.and_then(|u| u.rolling_update.as_ref()) {
        match (replicas, ru.partition) {
            (Some(r), Some(p)) if updated < r.saturating_sub(p) => {
                view.message = format!(
                    "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                    r.saturating_sub(p)
                );
            }
            _ => {
                view.complete = true;
                view.message = format!(
                    "partitioned roll out complete: {updated} new pods have been updated..."
                );
            }
        }
    } else if status.update_revision != status.current_revision {
        view.message = format!(
            "waiting for statefulset rolling update to complete {updated} pods at revision {}...",
            status.update_revision.as_deref().unwrap_or_default()
        );
    } else {
        view.complete = true;
        view.message = format!(
            "statefulset rolling update complete {} pods at revision {}...",
            status.current_replicas.unwrap_or(0),
            status.current_revision.as_deref().unwrap_or_default()
        );
    }
    progress.message = view.message.clone();
    conclude(
        state,
        WorkloadKind::StatefulSet,
        view,
        sets,
        progress,
        now,
        budget,
        cfg,
    )
}

fn judge_daemonset(
    state: &RolloutState,
    ds: &DaemonSet,
    now: Timestamp,
    budget: SignedDuration,
    cfg: &JudgeConfig,
) -> Verdict {
    let name = ds.metadata.name.clone().unwrap_or_default();
    let spec = &ds.spec;
    let status = ds.status.clone().unwrap_or_default();
    let strategy_type = spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate");
    let template_generation =
        annotation(&ds.metadata, DAEMONSET_TEMPLATE_GENERATION_ANNOTATION).map(str::to_owned);

    let mut sets = PodSets::default();
    sets.related.push(("DaemonSet".to_owned(), name.clone()));
    for pod in state
        .pods
        .values()
        .filter(|p| controlled_by(&p.metadata, "DaemonSet", &ds.metadata))
    {
        let terminating = pod.metadata.deletion_timestamp.is_some();
        if terminating {
            sets.terminating += 1;
        }
        let is_new = template_generation.is_some()
            && label(&pod.metadata, DAEMONSET_TEMPLATE_GENERATION_LABEL)
                == template_generation.as_deref();
        if is_new {
            if !terminating {
                sets.new.push(pod);
            }
        } else {
            sets.old.push(pod);
        }
    }

    let generation = ds.metadata.generation.unwrap_or(0);
    let observed = generation <= status.observed_generation.unwrap_or(0);
    let desired = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let available = status.number_available.unwrap_or(0);
    let mut progress = Progress {
        kind: Some(WorkloadKind::DaemonSet),
        name: name.clone(),
        desired,
        updated,
        ready: status.number_ready,
        available,
        total: status.current_number_scheduled,
        old_replicas: status
            .current_number_scheduled
            .saturating_sub(updated)
            .max(0),
        old_pods: sets.old.len(),
        terminating_pods: sets.terminating,
        new_revision: template_generation,
        observed,
        ..Progress::default()
    };

    // kubectl's DaemonSetStatusViewer.
    let mut view = StatusView {
        complete: false,
        message: String::new(),
        deadline: None,
        replica_failure: None,
        unsupported: false,
    };
    if strategy_type != "RollingUpdate" {
        view.unsupported = true;
        view.message =
            "rollout status is only available for RollingUpdate strategy type".to_owned();
    } else if !observed {
        view.message = "Waiting for daemon set spec update to be observed...".to_owned();
    } else if updated < desired {
        view.message = format!(
            "Waiting for daemon set {name:?} rollout to finish: {updated} out of {desired} new pods have been updated..."
        );
    } else if available < desired {
        view.message = format!(
            "Waiting for daemon set {name:?} rollout to finish: {available} of {desired} updated pods are available..."
        );
    } else {
        view.complete = true;
        view.message = format!("daemon set {name:?} successfully rolled out");
    }
    progress.message = view.message.clone();
    conclude(
        state,
        WorkloadKind::DaemonSet,
        view,
        sets,
        progress,
        now,
        budget,
        cfg,
    )
}

/// Combines the status view with the pod signals into the verdict.
#[allow(clippy::too_many_arguments)]
fn conclude(
    state: &RolloutState,
    kind: WorkloadKind,
    view: StatusView,
    sets: PodSets<'_>,
    mut progress: Progress,
    now: Timestamp,
    budget: SignedDuration,
    cfg: &JudgeConfig,
) -> Verdict {
    let mut problems: Vec<PodProblem> = sets
        .new
        .iter()
        .flat_map(|p| pod_problems(p, now, budget, cfg.max_restarts))
        .collect();
    problems.sort_by(problem_order);
    progress.recheck_at = problems
        .iter()
        .filter_map(|p| p.fails_at)
        .filter(|t| *t > now)
        .min();
    progress.problems = problems;

    if view.unsupported {
        return Verdict::Unsupported(progress);
    }
    let fatal = cfg
        .fail_fast
        .then(|| progress.problems.iter().find(|p| p.fatal))
        .flatten()
        .cloned();

    // kubectl checks the deadline before completeness; a fail-fast pod
    // failure, if any, is the root cause and keeps its reason.
    if let Some((message, at)) = &view.deadline {
        let failure = match &fatal {
            Some(p) => pod_failure(state, kind, &sets, p, progress, now),
            None => {
                let worst = progress
                    .problems
                    .iter()
                    .min_by_key(|p| (severity(p.reason), p.since, p.pod.clone()))
                    .cloned();
                let mut message = message.clone();
                if let Some(w) = &worst {
                    message.push_str(&format!("; {}", describe(w)));
                }
                let failing_pods = failing_pod_names(&progress.problems, |_| true);
                let pods: BTreeSet<&str> = failing_pods.iter().map(String::as_str).collect();
                Failure {
                    reason: FailureReason::ProgressDeadlineExceeded,
                    pod: worst.as_ref().map(|w| w.pod.clone()),
                    container: worst.as_ref().and_then(|w| w.container.clone()),
                    message,
                    events: relevant_events(state, &sets, &pods),
                    first_seen: at.map(|t| t.min(now)),
                    failing_pods,
                    progress,
                }
            }
        };
        return Verdict::Failed(Box::new(failure));
    }
    if view.complete {
        return Verdict::Complete(progress);
    }
    if let Some(p) = &fatal {
        return Verdict::Failed(Box::new(pod_failure(state, kind, &sets, p, progress, now)));
    }
    if cfg.fail_fast
        && let Some((message, at)) = &view.replica_failure
    {
        return Verdict::Failed(Box::new(Failure {
            reason: FailureReason::ReplicaFailure,
            pod: None,
            container: None,
            message: message.clone(),
            events: relevant_events(state, &sets, &BTreeSet::new()),
            first_seen: at.map(|t| t.min(now)),
            failing_pods: Vec::new(),
            progress,
        }));
    }
    if progress.paused {
        return Verdict::Paused(progress);
    }
    Verdict::Progressing(progress)
}

fn failing_pod_names(problems: &[PodProblem], keep: impl Fn(&PodProblem) -> bool) -> Vec<String> {
    let set: BTreeSet<String> = problems
        .iter()
        .filter(|p| keep(p))
        .map(|p| p.pod.clone())
        .collect();
    set.into_iter().collect()
}

fn pod_failure(
    state: &RolloutState,
    kind: WorkloadKind,
    sets: &PodSets<'_>,
    p: &PodProblem,
    progress: Progress,
    now: Timestamp,
) -> Failure {
    let failing_pods = failing_pod_names(&progress.problems, |q| q.fatal);
    let pods: BTreeSet<&str> = failing_pods.iter().map(String::as_str).collect();
    let events = relevant_events(state, sets, &pods);
    let mut message = format!(
        "{} {:?}: {}",
        kubectl_noun(kind),
        progress.name,
        describe(p)
    );
    if failing_pods.len() > 1 {
        message.push_str(&format!(
            " ({} pods of the new revision are failing)",
            failing_pods.len()
        ));
    }
    // The kubelet's latest warning about that pod usually says it best.
    if let Some(w) = events
        .iter()
        .rev()
        .find(|e| e.type_ == "Warning" && e.object == format!("Pod/{}", p.pod))
    {
        message.push_str(&format!("; last event: {}: {}", w.reason, w.message));
    }
    Failure {
        reason: p.reason,
        pod: Some(p.pod.clone()),
        container: p.container.clone(),
        message,
        events,
        first_seen: p.fails_at.map(|t| t.min(now)),
        failing_pods,
        progress,
    }
}

fn describe(p: &PodProblem) -> String {
    match &p.container {
        Some(c) => format!("pod {} container {}: {}", p.pod, c, p.message),
        None => format!("pod {}: {}", p.pod, p.message),
    }
}

/// Lower is worse / more specific.
fn severity(r: FailureReason) -> u8 {
    match r {
        FailureReason::CreateContainerConfigError => 0,
        FailureReason::InvalidImageName => 1,
        FailureReason::ImagePull => 2,
        FailureReason::CreateContainerError => 3,
        FailureReason::CrashLoopBackOff => 4,
        FailureReason::TooManyRestarts => 5,
        FailureReason::NeverReady => 6,
        FailureReason::Unschedulable => 7,
        FailureReason::ReplicaFailure => 8,
        FailureReason::ProgressDeadlineExceeded => 9,
    }
}

/// Fatal first, then the earliest to fail, then the most specific, then by name.
fn problem_order(a: &PodProblem, b: &PodProblem) -> std::cmp::Ordering {
    let k = |p: &PodProblem| {
        (
            !p.fatal,
            p.fails_at.is_none(),
            p.fails_at,
            severity(p.reason),
            p.pod.clone(),
            p.container.clone(),
        )
    };
    k(a).cmp(&k(b))
}

fn add(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.saturating_add(d).unwrap_or(t)
}

/// Problems of one pod of the new revision.
fn pod_problems(
    pod: &Pod,
    now: Timestamp,
    budget: SignedDuration,
    max_restarts: i32,
) -> Vec<PodProblem> {
    let mut out = Vec::new();
    if pod.metadata.deletion_timestamp.is_some() {
        return out;
    }
    let name = pod.metadata.name.clone().unwrap_or_default();
    let Some(status) = pod.status.as_ref() else {
        return out;
    };
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return out;
    }
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let condition = |t: &str| conditions.iter().find(|c| c.type_ == t);
    // When the pod last became not ready (if it is not ready).
    let unready_since = condition("Ready")
        .filter(|c| c.status != "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    let pod_start = status
        .start_time
        .as_ref()
        .or(pod.metadata.creation_timestamp.as_ref())
        .map(|t| t.0);

    if let Some(c) = condition("PodScheduled")
        .filter(|c| c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
    {
        out.push(PodProblem {
            pod: name.clone(),
            container: None,
            reason: FailureReason::Unschedulable,
            message: format!(
                "Unschedulable: {}",
                c.message.as_deref().unwrap_or_default()
            ),
            since: c.last_transition_time.as_ref().map(|t| t.0),
            fails_at: None,
            fatal: false,
        });
    }

    let spec = pod.spec.as_ref();
    let sidecar = |c: &str| {
        spec.and_then(|s| s.init_containers.as_ref())
            .and_then(|ics| ics.iter().find(|ic| ic.name == c))
            .is_some_and(|ic| ic.restart_policy.as_deref() == Some("Always"))
    };
    let statuses = status
        .init_container_statuses
        .iter()
        .flatten()
        .map(|cs| (cs, !sidecar(&cs.name)))
        .chain(
            status
                .container_statuses
                .iter()
                .flatten()
                .map(|cs| (cs, false)),
        );
    // A startup probe may legitimately hold readiness back for up to
    // initialDelay + period × failureThreshold on top of the budget.
    let startup_allowance = |c: &str| {
        let containers = spec.into_iter().flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        });
        containers
            .filter(|k| k.name == c)
            .find_map(|k| k.startup_probe.as_ref())
            .map_or(SignedDuration::ZERO, |p| {
                let secs = crate::workload::probe_failure_budget(p);
                SignedDuration::from_secs(secs.max(0))
            })
    };
    for (cs, plain_init) in statuses {
        if let Some(p) = container_problem(
            &name,
            cs,
            plain_init,
            unready_since,
            pod_start,
            now,
            budget.saturating_add(startup_allowance(&cs.name)),
            max_restarts,
        ) {
            out.push(p);
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn container_problem(
    pod: &str,
    cs: &ContainerStatus,
    plain_init: bool,
    unready_since: Option<Timestamp>,
    pod_start: Option<Timestamp>,
    now: Timestamp,
    budget: SignedDuration,
    max_restarts: i32,
) -> Option<PodProblem> {
    let state = cs.state.as_ref();
    let last_terminated = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    let last_exit = last_terminated.map(|t| {
        let mut s = format!(
            "last exit: {} (exit code {})",
            t.reason.as_deref().unwrap_or("Terminated"),
            t.exit_code
        );
        if let Some(m) = t.message.as_deref().filter(|m| !m.is_empty()) {
            s.push_str(&format!(": {}", m.trim()));
        }
        s
    });
    let last_finished = last_terminated
        .and_then(|t| t.finished_at.as_ref())
        .map(|t| t.0);
    let what = if plain_init {
        "init container"
    } else {
        "container"
    };
    // `fails_at: None` means "failing as soon as it began".
    let problem =
        |reason, message: String, since: Option<Timestamp>, fails_at: Option<Timestamp>| {
            let since = since.map(|t| t.min(now));
            let fails_at = Some(fails_at.unwrap_or_else(|| since.unwrap_or(now)));
            PodProblem {
                pod: pod.to_owned(),
                container: Some(cs.name.clone()),
                reason,
                message,
                since,
                fails_at,
                fatal: fails_at.is_some_and(|t| t <= now),
            }
        };

    if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
        let reason = w.reason.as_deref().unwrap_or_default();
        let classified = match reason {
            "CrashLoopBackOff" => Some(FailureReason::CrashLoopBackOff),
            "ErrImagePull" | "ImagePullBackOff" | "ErrImageNeverPull" => {
                Some(FailureReason::ImagePull)
            }
            "InvalidImageName" => Some(FailureReason::InvalidImageName),
            "CreateContainerConfigError" => Some(FailureReason::CreateContainerConfigError),
            "CreateContainerError" | "RunContainerError" => {
                Some(FailureReason::CreateContainerError)
            }
            _ => None,
        };
        if let Some(r) = classified {
            let mut message = reason.to_owned();
            if let Some(m) = w.message.as_deref().filter(|m| !m.is_empty()) {
                message.push_str(&format!(": {m}"));
            }
            if cs.restart_count > 0 {
                message.push_str(&format!(" (restarted {} times", cs.restart_count));
                if let Some(e) = &last_exit {
                    message.push_str(&format!("; {e}"));
                }
                message.push(')');
            }
            if plain_init {
                message = format!("init container: {message}");
            }
            // A crash loop began with the first crash: with one restart that
            // is the last termination, otherwise when the pod became unready.
            let since = match r {
                FailureReason::CrashLoopBackOff if cs.restart_count <= 1 => {
                    last_finished.or(unready_since).or(pod_start)
                }
                _ => unready_since.or(pod_start),
            };
            return Some(problem(r, message, since, None));
        }
    }

    if cs.restart_count > max_restarts && !cs.ready && !(plain_init && is_done(cs)) {
        let mut message = format!(
            "restarted {} times (more than {max_restarts}) and is not ready",
            cs.restart_count
        );
        if let Some(e) = &last_exit {
            message.push_str(&format!("; {e}"));
        }
        let since = last_finished.or(unready_since).or(pod_start);
        return Some(problem(
            FailureReason::TooManyRestarts,
            message,
            since,
            None,
        ));
    }

    if let Some(running) = state.and_then(|s| s.running.as_ref())
        && (plain_init || !cs.ready)
    {
        let started = running.started_at.as_ref().map(|t| t.0);
        let since = match (started, unready_since) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b).or(pod_start),
        };
        let since = since.unwrap_or(now).min(now);
        let for_secs = now.duration_since(since).as_secs();
        let message = if plain_init {
            format!("{what} has been running for {for_secs}s without finishing")
        } else {
            format!(
                "running but not ready for {for_secs}s (readiness budget {}s)",
                budget.as_secs()
            )
        };
        return Some(problem(
            FailureReason::NeverReady,
            message,
            Some(since),
            Some(add(since, budget)),
        ));
    }
    None
}

fn is_done(cs: &ContainerStatus) -> bool {
    cs.state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .is_some_and(|t| t.exit_code == 0)
}

/// When an event last happened, from whichever timestamp it carries.
pub fn event_time(e: &Event) -> Option<Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The most recent events about the failing pods, the new ReplicaSet and the
/// workload, from this rollout on, oldest first.
fn relevant_events(
    state: &RolloutState,
    sets: &PodSets<'_>,
    pods: &BTreeSet<&str>,
) -> Vec<EventNote> {
    let mut notes: Vec<(Option<Timestamp>, usize, EventNote)> = state
        .events
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            let obj = &e.involved_object;
            let kind = obj.kind.as_deref().unwrap_or_default();
            let name = obj.name.as_deref().unwrap_or_default();
            let concerns = (kind == "Pod" && pods.contains(name))
                || sets.related.iter().any(|(k, n)| k == kind && n == name);
            let recent = match (sets.since, event_time(e)) {
                (Some(since), Some(t)) => t >= since,
                _ => true,
            };
            concerns && recent
        })
        .map(|(i, e)| {
            let obj = &e.involved_object;
            let note = EventNote {
                type_: e.type_.clone().unwrap_or_else(|| "Normal".to_owned()),
                reason: e.reason.clone().unwrap_or_default(),
                object: format!(
                    "{}/{}",
                    obj.kind.as_deref().unwrap_or_default(),
                    obj.name.as_deref().unwrap_or_default()
                ),
                message: e.message.clone().unwrap_or_default().trim().to_owned(),
                count: e.count.unwrap_or(1),
                last_seen: event_time(e),
            };
            (event_time(e), i, note)
        })
        .collect();
    notes.sort_by_key(|a| (a.0, a.1));
    let skip = notes.len().saturating_sub(MAX_FAILURE_EVENTS);
    notes.into_iter().skip(skip).map(|(_, _, n)| n).collect()
}
