//! The observed objects: decoding watch events, and the [`RolloutState`] they maintain.

use std::collections::{BTreeMap, VecDeque};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Event, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::config::{
    CONTROLLER_REVISION_HASH_LABEL, DAEMONSET_TEMPLATE_GENERATION_ANNOTATION,
    DAEMONSET_TEMPLATE_GENERATION_LABEL, DEFAULT_MAX_EVENTS, POD_TEMPLATE_HASH_LABEL,
    REVISION_ANNOTATION,
};
use crate::workload::Workload;

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

    /// The pods of the new version: a Deployment's new ReplicaSet's (by controller reference),
    /// a StatefulSet's on its update revision, a DaemonSet's of its template generation.
    pub fn new_pods(&self) -> Vec<&Pod> {
        match &self.workload {
            Some(Workload::StatefulSet(s)) => {
                let Some(revision) = s
                    .status
                    .as_ref()
                    .and_then(|st| st.update_revision.as_deref())
                else {
                    return Vec::new();
                };
                return self
                    .pods
                    .values()
                    .filter(|p| controlled_by(&p.metadata, "StatefulSet", &s.metadata))
                    .filter(|p| {
                        label(&p.metadata, CONTROLLER_REVISION_HASH_LABEL) == Some(revision)
                    })
                    .collect();
            }
            Some(Workload::DaemonSet(d)) => {
                let Some(generation) =
                    annotation(&d.metadata, DAEMONSET_TEMPLATE_GENERATION_ANNOTATION)
                else {
                    return Vec::new();
                };
                return self
                    .pods
                    .values()
                    .filter(|p| controlled_by(&p.metadata, "DaemonSet", &d.metadata))
                    .filter(|p| {
                        label(&p.metadata, DAEMONSET_TEMPLATE_GENERATION_LABEL) == Some(generation)
                    })
                    .collect();
            }
            _ => {}
        }
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

pub(super) fn annotation<'a>(meta: &'a ObjectMeta, name: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(name).map(String::as_str)
}

pub(super) fn label<'a>(meta: &'a ObjectMeta, name: &str) -> Option<&'a str> {
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

pub(super) fn deployment_observed(d: &Deployment) -> bool {
    let generation = d.metadata.generation.unwrap_or(0);
    let observed = d
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .unwrap_or(0);
    generation <= observed
}
