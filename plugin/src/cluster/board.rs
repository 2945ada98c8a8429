//! The status board's reads: one LIST per kind in scope (the namespace, or every namespace with
//! `-A`) — Deployments, StatefulSets, DaemonSets, ReplicaSets, Pods, Services (blue-green state)
//! and ControllerRevisions (when a StatefulSet's or DaemonSet's template last changed) — never a
//! request per workload; and the same kinds watched, for `status --watch`. Services and
//! ControllerRevisions are optional: a user who may not read them still gets the verdicts.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;

use futures::stream::{BoxStream, SelectAll};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use rollout_safe_policy::Workload;
use rollout_safe_policy::board::Inventory;
use serde::de::DeserializeOwned;

use super::client::Cluster;
use super::errors::{api_error, is_forbidden};
use crate::error::Error;

/// One kind the board reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BoardKind {
    Deployments,
    StatefulSets,
    DaemonSets,
    ReplicaSets,
    Pods,
    Services,
    Revisions,
}

impl BoardKind {
    pub const ALL: [BoardKind; 7] = [
        BoardKind::Deployments,
        BoardKind::StatefulSets,
        BoardKind::DaemonSets,
        BoardKind::ReplicaSets,
        BoardKind::Pods,
        BoardKind::Services,
        BoardKind::Revisions,
    ];

    pub fn resource(self) -> &'static str {
        match self {
            BoardKind::Deployments => "deployments.apps",
            BoardKind::StatefulSets => "statefulsets.apps",
            BoardKind::DaemonSets => "daemonsets.apps",
            BoardKind::ReplicaSets => "replicasets.apps",
            BoardKind::Pods => "pods",
            BoardKind::Services => "services",
            BoardKind::Revisions => "controllerrevisions.apps",
        }
    }

    /// Without it the board still judges every workload (a 403 is a note, not an error).
    fn optional(self) -> bool {
        matches!(self, BoardKind::Services | BoardKind::Revisions)
    }

    /// What is missing from the board without it.
    fn without(self) -> &'static str {
        match self {
            BoardKind::Services => "blue-green state is not shown",
            BoardKind::Revisions => {
                "the last change of StatefulSets and DaemonSets is their creation"
            }
            _ => "",
        }
    }
}

/// One listed or watched object.
#[derive(Debug, Clone)]
enum Item {
    Deployment(Box<Deployment>),
    StatefulSet(Box<StatefulSet>),
    DaemonSet(Box<DaemonSet>),
    ReplicaSet(Box<ReplicaSet>),
    Pod(Box<Pod>),
    Service(Box<Service>),
    Revision(Box<ControllerRevision>),
}

macro_rules! item_from {
    ($($ty:ident => $variant:ident),*) => {$(
        impl From<$ty> for Item {
            fn from(mut o: $ty) -> Self {
                o.metadata.managed_fields = None;
                Self::$variant(Box::new(o))
            }
        }
    )*};
}
item_from!(Deployment => Deployment, StatefulSet => StatefulSet, DaemonSet => DaemonSet,
    ReplicaSet => ReplicaSet, Pod => Pod, Service => Service, ControllerRevision => Revision);

impl Item {
    fn key(&self) -> String {
        let m = match self {
            Item::Deployment(o) => &o.metadata,
            Item::StatefulSet(o) => &o.metadata,
            Item::DaemonSet(o) => &o.metadata,
            Item::ReplicaSet(o) => &o.metadata,
            Item::Pod(o) => &o.metadata,
            Item::Service(o) => &o.metadata,
            Item::Revision(o) => &o.metadata,
        };
        format!(
            "{}/{}",
            m.namespace.as_deref().unwrap_or(""),
            m.name.as_deref().unwrap_or("")
        )
    }
}

/// Everything in scope, by kind and `namespace/name`.
#[derive(Debug, Default)]
struct Objects {
    by_kind: BTreeMap<BoardKind, BTreeMap<String, Item>>,
}

impl Objects {
    fn inventory(&self) -> Inventory {
        let mut inv = Inventory::default();
        for items in self.by_kind.values() {
            for item in items.values() {
                match item.clone() {
                    Item::Deployment(d) => inv.workloads.push(Workload::Deployment(d)),
                    Item::StatefulSet(s) => inv.workloads.push(Workload::StatefulSet(s)),
                    Item::DaemonSet(d) => inv.workloads.push(Workload::DaemonSet(d)),
                    Item::ReplicaSet(r) => inv.replica_sets.push(*r),
                    Item::Pod(p) => inv.pods.push(*p),
                    Item::Service(s) => inv.services.push(*s),
                    Item::Revision(r) => inv.revisions.push(*r),
                }
            }
        }
        inv
    }
}

/// The board's objects, and what could not be read (one line per optional kind refused).
#[derive(Debug)]
pub struct Listing {
    pub inventory: Inventory,
    pub notes: Vec<String>,
}

fn api<K>(cluster: &Cluster) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    if cluster.all_namespaces {
        Api::all(cluster.client.clone())
    } else {
        Api::namespaced(cluster.client.clone(), &cluster.namespace)
    }
}

fn op(cluster: &Cluster, verb: &'static str, kind: BoardKind) -> crate::error::ApiOp {
    let mut op = cluster.op(verb, kind.resource(), None);
    if cluster.all_namespaces {
        op.namespace = String::new();
    }
    op
}

fn note(kind: BoardKind) -> String {
    format!(
        "note: {} are not readable here (forbidden): {}",
        kind.resource(),
        kind.without()
    )
}

async fn list_kind<K>(cluster: &Cluster, kind: BoardKind) -> Result<Option<Vec<Item>>, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Into<Item>,
{
    match api::<K>(cluster).list(&ListParams::default()).await {
        Ok(list) => Ok(Some(list.items.into_iter().map(Into::into).collect())),
        Err(e) if kind.optional() && is_forbidden(&e) => Ok(None),
        Err(e) => Err(api_error(e, op(cluster, "list", kind))),
    }
}

/// Lists every kind once, all at the same time.
pub async fn list_board(cluster: &Cluster) -> Result<Listing, Error> {
    let (d, s, ds, rs, p, svc, rev) = futures::try_join!(
        list_kind::<Deployment>(cluster, BoardKind::Deployments),
        list_kind::<StatefulSet>(cluster, BoardKind::StatefulSets),
        list_kind::<DaemonSet>(cluster, BoardKind::DaemonSets),
        list_kind::<ReplicaSet>(cluster, BoardKind::ReplicaSets),
        list_kind::<Pod>(cluster, BoardKind::Pods),
        list_kind::<Service>(cluster, BoardKind::Services),
        list_kind::<ControllerRevision>(cluster, BoardKind::Revisions),
    )?;
    let mut objects = Objects::default();
    let mut notes = Vec::new();
    for (kind, items) in BoardKind::ALL.into_iter().zip([d, s, ds, rs, p, svc, rev]) {
        match items {
            Some(items) => {
                let map = objects.by_kind.entry(kind).or_default();
                for item in items {
                    map.insert(item.key(), item);
                }
            }
            None => notes.push(note(kind)),
        }
    }
    Ok(Listing {
        inventory: objects.inventory(),
        notes,
    })
}

type Feed = BoxStream<'static, (BoardKind, Result<watcher::Event<Item>, watcher::Error>)>;

fn feed<K>(cluster: &Cluster, kind: BoardKind) -> Feed
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + 'static
        + Into<Item>,
{
    watcher(api::<K>(cluster), watcher::Config::default())
        .default_backoff()
        .map(move |r| {
            let r = r.map(|e| match e {
                watcher::Event::Apply(k) => watcher::Event::Apply(k.into()),
                watcher::Event::Delete(k) => watcher::Event::Delete(k.into()),
                watcher::Event::InitApply(k) => watcher::Event::InitApply(k.into()),
                watcher::Event::Init => watcher::Event::Init,
                watcher::Event::InitDone => watcher::Event::InitDone,
            });
            (kind, r)
        })
        .boxed()
}

/// What changed after a batch of watch events.
#[derive(Debug)]
pub enum BoardUpdate {
    /// Every kind is synced: the inventory as it is now.
    Changed(Inventory),
    /// A line worth showing (a retried watch, an optional kind that is forbidden).
    Note(String),
}

/// Every kind of the board watched (no polling): [`BoardWatch::next`] answers after each batch
/// of events once every kind has been listed, relists included (what a relist no longer holds
/// is dropped).
pub struct BoardWatch {
    feeds: SelectAll<Feed>,
    objects: Objects,
    /// Keys seen since the last `Init` of a kind (its relist).
    relisting: BTreeMap<BoardKind, HashSet<String>>,
    synced: HashSet<BoardKind>,
    cluster: Cluster,
    last_error: String,
}

impl BoardWatch {
    pub fn start(cluster: &Cluster) -> BoardWatch {
        let feeds = futures::stream::select_all([
            feed::<Deployment>(cluster, BoardKind::Deployments),
            feed::<StatefulSet>(cluster, BoardKind::StatefulSets),
            feed::<DaemonSet>(cluster, BoardKind::DaemonSets),
            feed::<ReplicaSet>(cluster, BoardKind::ReplicaSets),
            feed::<Pod>(cluster, BoardKind::Pods),
            feed::<Service>(cluster, BoardKind::Services),
            feed::<ControllerRevision>(cluster, BoardKind::Revisions),
        ]);
        BoardWatch {
            feeds,
            objects: Objects::default(),
            relisting: BTreeMap::new(),
            synced: HashSet::new(),
            cluster: cluster.clone(),
            last_error: String::new(),
        }
    }

    fn ready(&self) -> bool {
        BoardKind::ALL.iter().all(|k| self.synced.contains(k))
    }

    /// The next update (cancel-safe: nothing is lost when dropped before it answers).
    pub async fn next(&mut self) -> Result<BoardUpdate, Error> {
        loop {
            let Some(first) = self.feeds.next().await else {
                return Err(Error::WatchesEnded {
                    workload: "the status board".to_owned(),
                });
            };
            let mut batch = vec![first];
            while let Some(Some(more)) = self.feeds.next().now_or_never() {
                batch.push(more);
                if batch.len() >= 1024 {
                    break;
                }
            }
            let mut note_line = None;
            for (kind, r) in batch {
                match r {
                    Ok(ev) => self.apply(kind, ev),
                    Err(e) => {
                        let api = match &e {
                            watcher::Error::InitialListFailed(e)
                            | watcher::Error::WatchStartFailed(e)
                            | watcher::Error::WatchFailed(e) => Some(e),
                            _ => None,
                        };
                        if let Some(api) = api.filter(|a| is_forbidden(a)) {
                            if kind.optional() {
                                if self.synced.insert(kind) {
                                    note_line = Some(note(kind));
                                }
                                continue;
                            }
                            let verb = if matches!(e, watcher::Error::InitialListFailed(_)) {
                                "list"
                            } else {
                                "watch"
                            };
                            let kube_err = match api {
                                kube::Error::Api(s) => kube::Error::Api(s.clone()),
                                other => kube::Error::Service(other.to_string().into()),
                            };
                            return Err(api_error(kube_err, op(&self.cluster, verb, kind)));
                        }
                        let msg =
                            format!("watch of {} interrupted: {e}; retrying", kind.resource());
                        if msg != self.last_error {
                            self.last_error = msg.clone();
                            note_line = Some(msg);
                        }
                    }
                }
            }
            if let Some(line) = note_line {
                return Ok(BoardUpdate::Note(line));
            }
            if self.ready() {
                return Ok(BoardUpdate::Changed(self.objects.inventory()));
            }
        }
    }

    fn apply(&mut self, kind: BoardKind, ev: watcher::Event<Item>) {
        let map = self.objects.by_kind.entry(kind).or_default();
        match ev {
            watcher::Event::Init => {
                self.relisting.insert(kind, HashSet::new());
            }
            watcher::Event::InitApply(item) => {
                let key = item.key();
                self.relisting.entry(kind).or_default().insert(key.clone());
                map.insert(key, item);
            }
            watcher::Event::InitDone => {
                let seen = self.relisting.remove(&kind).unwrap_or_default();
                map.retain(|k, _| seen.contains(k));
                self.synced.insert(kind);
            }
            watcher::Event::Apply(item) => {
                map.insert(item.key(), item);
            }
            watcher::Event::Delete(item) => {
                map.remove(&item.key());
            }
        }
    }
}
