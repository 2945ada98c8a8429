//! `--cluster-lookups`: [`ClusterLookups`] answered from watch-fed caches of
//! PodDisruptionBudgets and HorizontalPodAutoscalers (kube-runtime reflectors) and of running
//! Pods in every namespace. Nothing is listed per request: an admission call never waits on the
//! API server. Until a cache has synced its answers are `None` (unknown), and the policy then
//! skips the rule that needs it rather than guessing.
//!
//! Pods are the big one (50,000 of a few KB each in a large cluster): they are read off the wire
//! as [`ReadinessPod`]s, which keep only name, namespace, labels and readiness (serde skips the
//! spec, the status and the managed fields as it parses), and kept in a [`PodIndex`] by
//! namespace, so that a lookup counts one namespace's pods, never the cluster's.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use clap::Args;
use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use rollout_safe_policy::admission::ClusterLookups;
use rollout_safe_policy::selector::{map_selects, selector_matches};
use serde::Deserialize;
use tokio::task::JoinSet;

use crate::metrics::Metrics;

#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Kubernetes version the mutations target, e.g. `1.29` (decides whether RS201 may use the
    /// native preStop sleep action, Kubernetes >= 1.30). Default: ask the API server when running
    /// in a cluster or with --cluster-lookups, else assume a current version.
    #[arg(long, env = "ROLLOUT_SAFE_KUBERNETES_VERSION", value_name = "VERSION")]
    pub kubernetes_version: Option<String>,
    /// Watch PodDisruptionBudgets, HorizontalPodAutoscalers and Pods for RS601, RS602 and the
    /// RS405 HPA exemption (needs the chart's read-only ClusterRole).
    #[arg(long, env = "ROLLOUT_SAFE_CLUSTER_LOOKUPS")]
    pub cluster_lookups: bool,
}

/// A reflector store plus whether it has seen its first full list.
#[derive(Clone)]
struct Cache<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    synced: Arc<AtomicBool>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Cache<K> {
    fn get(&self) -> Option<&Store<K>> {
        self.synced.load(Ordering::Acquire).then_some(&self.store)
    }
}

/// A running pod as the cache reads it: what [`ClusterLookups::ready_pods`] needs and what the
/// watch needs to resume (name, namespace, uid, resourceVersion), nothing else.
#[derive(Debug, Clone, Default)]
pub struct ReadinessPod {
    metadata: ObjectMeta,
    /// A `Ready` condition that is `True`, and no deletion under way.
    ready: bool,
}

impl<'de> Deserialize<'de> for ReadinessPod {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Only these fields are materialised; serde skips the rest of the object unread.
        #[derive(Deserialize)]
        struct Wire {
            metadata: WireMeta,
            #[serde(default)]
            status: Option<WireStatus>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct WireMeta {
            name: Option<String>,
            namespace: Option<String>,
            uid: Option<String>,
            resource_version: Option<String>,
            #[serde(default)]
            labels: Option<BTreeMap<String, String>>,
            #[serde(default)]
            deletion_timestamp: Option<serde::de::IgnoredAny>,
        }
        #[derive(Deserialize)]
        struct WireStatus {
            #[serde(default)]
            conditions: Option<Vec<WireCondition>>,
        }
        #[derive(Deserialize)]
        struct WireCondition {
            #[serde(rename = "type")]
            type_: String,
            status: String,
        }
        let w = Wire::deserialize(d)?;
        let ready = w.metadata.deletion_timestamp.is_none()
            && w.status
                .and_then(|s| s.conditions)
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        Ok(ReadinessPod {
            metadata: ObjectMeta {
                name: w.metadata.name,
                namespace: w.metadata.namespace,
                uid: w.metadata.uid,
                resource_version: w.metadata.resource_version,
                labels: w.metadata.labels,
                ..ObjectMeta::default()
            },
            ready,
        })
    }
}

impl Resource for ReadinessPod {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        <Pod as k8s_openapi::Resource>::KIND.into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        <Pod as k8s_openapi::Resource>::GROUP.into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        <Pod as k8s_openapi::Resource>::VERSION.into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        <Pod as k8s_openapi::Resource>::URL_PATH_SEGMENT.into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl From<&Pod> for ReadinessPod {
    fn from(pod: &Pod) -> Self {
        ReadinessPod {
            metadata: ObjectMeta {
                name: pod.metadata.name.clone(),
                namespace: pod.metadata.namespace.clone(),
                uid: pod.metadata.uid.clone(),
                resource_version: pod.metadata.resource_version.clone(),
                labels: pod.metadata.labels.clone(),
                ..ObjectMeta::default()
            },
            ready: pod_ready(pod),
        }
    }
}

/// One pod in the index: its labels, and whether it is ready.
type IndexedPod = (BTreeMap<String, String>, bool);

/// Running pods by namespace, then name: their labels and readiness.
#[derive(Debug, Default)]
pub struct PodIndex {
    by_namespace: HashMap<String, HashMap<String, IndexedPod>>,
    len: usize,
}

impl PodIndex {
    fn upsert(&mut self, pod: ReadinessPod) {
        let ReadinessPod { metadata, ready } = pod;
        let (Some(ns), Some(name)) = (metadata.namespace, metadata.name) else {
            return;
        };
        let pods = self.by_namespace.entry(ns).or_default();
        if pods
            .insert(name, (metadata.labels.unwrap_or_default(), ready))
            .is_none()
        {
            self.len += 1;
        }
    }

    fn remove(&mut self, pod: &ReadinessPod) {
        let (Some(ns), Some(name)) = (&pod.metadata.namespace, &pod.metadata.name) else {
            return;
        };
        if let Some(pods) = self.by_namespace.get_mut(ns) {
            if pods.remove(name).is_some() {
                self.len -= 1;
            }
            if pods.is_empty() {
                self.by_namespace.remove(ns);
            }
        }
    }

    /// Ready pods of `namespace` whose labels `selector` selects.
    fn ready(&self, namespace: &str, selector: &BTreeMap<String, String>) -> usize {
        self.by_namespace.get(namespace).map_or(0, |pods| {
            pods.values()
                .filter(|(labels, ready)| *ready && map_selects(selector, labels))
                .count()
        })
    }
}

/// The pod index plus whether it has seen its first full list.
#[derive(Clone, Default)]
struct PodCache {
    index: Arc<RwLock<PodIndex>>,
    synced: Arc<AtomicBool>,
}

/// Watch-fed caches answering the policy's cluster questions.
#[derive(Clone)]
pub struct ClusterCache {
    pdbs: Cache<PodDisruptionBudget>,
    hpas: Cache<HorizontalPodAutoscaler>,
    pods: PodCache,
}

impl ClusterCache {
    /// Starts one watch per kind on `tasks`; they retry with backoff for as long as they run.
    pub fn start(client: Client, metrics: &Metrics, tasks: &mut JoinSet<()>) -> Self {
        let pdbs = spawn_cache(
            tasks,
            "poddisruptionbudgets",
            Api::<PodDisruptionBudget>::all(client.clone()),
            watcher::Config::default().any_semantic(),
            |pdb: &mut PodDisruptionBudget| {
                pdb.managed_fields_mut().clear();
                pdb.status = None;
            },
            metrics.clone(),
        );
        let hpas = spawn_cache(
            tasks,
            "horizontalpodautoscalers",
            Api::<HorizontalPodAutoscaler>::all(client.clone()),
            watcher::Config::default().any_semantic(),
            |hpa: &mut HorizontalPodAutoscaler| {
                hpa.managed_fields_mut().clear();
                hpa.status = None;
            },
            metrics.clone(),
        );
        // Only running pods can be ready endpoints; only their labels and readiness are read.
        let pods = spawn_pod_cache(
            tasks,
            Api::<ReadinessPod>::all(client),
            watcher::Config::default()
                .any_semantic()
                .fields("status.phase=Running"),
            metrics.clone(),
        );
        ClusterCache { pdbs, hpas, pods }
    }

    /// A cache over stores filled by the caller (tests); every store counts as synced.
    pub fn from_stores(
        pdbs: Store<PodDisruptionBudget>,
        hpas: Store<HorizontalPodAutoscaler>,
        pods: Store<Pod>,
    ) -> Self {
        let mut index = PodIndex::default();
        for pod in pods.state() {
            index.upsert(ReadinessPod::from(pod.as_ref()));
        }
        let synced = || Arc::new(AtomicBool::new(true));
        ClusterCache {
            pdbs: Cache {
                store: pdbs,
                synced: synced(),
            },
            hpas: Cache {
                store: hpas,
                synced: synced(),
            },
            pods: PodCache {
                index: Arc::new(RwLock::new(index)),
                synced: synced(),
            },
        }
    }
}

/// The pod watch feeding a [`PodIndex`]: a relist builds a new index and swaps it in whole.
fn spawn_pod_cache(
    tasks: &mut JoinSet<()>,
    api: Api<ReadinessPod>,
    config: watcher::Config,
    metrics: Metrics,
) -> PodCache {
    const RESOURCE: &str = "pods";
    let cache = PodCache::default();
    metrics.set_cache_ready(RESOURCE, false);
    let PodCache { index, synced } = cache.clone();
    tasks.spawn(async move {
        let stream = watcher(api, config).default_backoff();
        futures::pin_mut!(stream);
        let mut relisted: Option<PodIndex> = None;
        let write = || index.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => relisted = Some(PodIndex::default()),
                Ok(watcher::Event::InitApply(pod)) => relisted.get_or_insert_default().upsert(pod),
                Ok(watcher::Event::InitDone) => {
                    let fresh = relisted.take().unwrap_or_default();
                    let objects = fresh.len;
                    *write() = fresh;
                    if !synced.swap(true, Ordering::AcqRel) {
                        metrics.set_cache_ready(RESOURCE, true);
                        tracing::info!(resource = RESOURCE, objects, "cluster cache synced");
                    }
                }
                Ok(watcher::Event::Apply(pod)) => write().upsert(pod),
                Ok(watcher::Event::Delete(pod)) => write().remove(&pod),
                // The backoff retries; RBAC or connectivity problems show up here.
                Err(e) => {
                    tracing::warn!(resource = RESOURCE, error = %e, "cluster watch error; retrying");
                }
            }
        }
    });
    cache
}

fn spawn_cache<K>(
    tasks: &mut JoinSet<()>,
    resource: &'static str,
    api: Api<K>,
    config: watcher::Config,
    strip: fn(&mut K),
    metrics: Metrics,
) -> Cache<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let synced = Arc::new(AtomicBool::new(false));
    metrics.set_cache_ready(resource, false);
    let ready_store = store.clone();
    let ready_flag = synced.clone();
    tasks.spawn(async move {
        if ready_store.wait_until_ready().await.is_ok() {
            ready_flag.store(true, Ordering::Release);
            metrics.set_cache_ready(resource, true);
            tracing::info!(
                resource,
                objects = ready_store.len(),
                "cluster cache synced"
            );
        }
    });
    tasks.spawn(async move {
        let stream = watcher(api, config)
            .default_backoff()
            .modify(strip)
            .reflect(writer);
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                // The backoff retries; RBAC or connectivity problems show up here.
                tracing::warn!(resource, error = %e, "cluster watch error; retrying");
            }
        }
    });
    Cache { store, synced }
}

fn pod_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

impl ClusterLookups for ClusterCache {
    fn autoscaled(&self, namespace: &str, kind: &str, name: &str) -> Option<bool> {
        let store = self.hpas.get()?;
        Some(
            store
                .find(|hpa| {
                    hpa.metadata.namespace.as_deref() == Some(namespace)
                        && hpa.spec.scale_target_ref.kind == kind
                        && hpa.spec.scale_target_ref.name == name
                })
                .is_some(),
        )
    }

    fn pdb_covers(&self, namespace: &str, labels: &BTreeMap<String, String>) -> Option<bool> {
        let store = self.pdbs.get()?;
        Some(
            store
                .find(|pdb| {
                    pdb.metadata.namespace.as_deref() == Some(namespace)
                        // policy/v1: a null selector selects no pods, an empty one selects all.
                        && pdb
                            .spec
                            .as_ref()
                            .and_then(|s| s.selector.as_ref())
                            .is_some_and(|sel| selector_matches(sel, labels))
                })
                .is_some(),
        )
    }

    fn ready_pods(&self, namespace: &str, selector: &BTreeMap<String, String>) -> Option<usize> {
        if !self.pods.synced.load(Ordering::Acquire) {
            return None;
        }
        let index = self
            .pods
            .index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(index.ready(namespace, selector))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_until_synced() {
        let (store, _writer) = reflector::store::<Pod>();
        let (pdbs, _w1) = reflector::store::<PodDisruptionBudget>();
        let (hpas, _w2) = reflector::store::<HorizontalPodAutoscaler>();
        let unsynced = || Arc::new(AtomicBool::new(false));
        let cache = ClusterCache {
            pdbs: Cache {
                store: pdbs,
                synced: unsynced(),
            },
            hpas: Cache {
                store: hpas,
                synced: unsynced(),
            },
            pods: PodCache::default(),
        };
        drop(store);
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        assert_eq!(cache.autoscaled("shop", "Deployment", "web"), None);
        assert_eq!(cache.pdb_covers("shop", &labels), None);
        assert_eq!(cache.ready_pods("shop", &labels), None);
        cache.pods.synced.store(true, Ordering::Release);
        assert_eq!(cache.ready_pods("shop", &labels), Some(0));
    }

    #[test]
    fn readiness_pod_keeps_what_readiness_needs() {
        let full = serde_json::json!({
            "metadata": {"name": "p", "namespace": "shop", "labels": {"app": "web"}, "uid": "u1",
                         "resourceVersion": "7",
                         "annotations": {"big": "x"}, "managedFields": [{"manager": "kubelet"}]},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                       "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]}
        });
        let pod: ReadinessPod = serde_json::from_value(full.clone()).expect("pod");
        assert!(pod.metadata.annotations.is_none() && pod.metadata.managed_fields.is_none());
        assert_eq!(pod.labels().get("app").map(String::as_str), Some("web"));
        assert_eq!(pod.metadata.resource_version.as_deref(), Some("7"));
        assert!(pod.ready);
        // The same as the full pod says.
        let typed: Pod = serde_json::from_value(full.clone()).expect("pod");
        assert_eq!(ReadinessPod::from(&typed).ready, pod_ready(&typed));
        // Not ready: a False condition, or a deletion under way.
        let mut unready = full.clone();
        unready["status"]["conditions"][0]["status"] = "False".into();
        assert!(
            !serde_json::from_value::<ReadinessPod>(unready)
                .expect("pod")
                .ready
        );
        let mut deleting = full;
        deleting["metadata"]["deletionTimestamp"] = "2026-11-22T23:10:24Z".into();
        assert!(
            !serde_json::from_value::<ReadinessPod>(deleting)
                .expect("pod")
                .ready
        );
    }

    #[test]
    fn the_pod_index_counts_one_namespace() {
        let pod = |ns: &str, name: &str, app: &str, ready: bool| ReadinessPod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                labels: Some(BTreeMap::from([("app".to_string(), app.to_string())])),
                ..ObjectMeta::default()
            },
            ready,
        };
        let mut index = PodIndex::default();
        index.upsert(pod("shop", "a", "web", true));
        index.upsert(pod("shop", "b", "web", false));
        index.upsert(pod("shop", "c", "db", true));
        index.upsert(pod("other", "a", "web", true));
        let web = BTreeMap::from([("app".to_string(), "web".to_string())]);
        assert_eq!(index.ready("shop", &web), 1);
        // b turns ready (an update replaces it), a goes.
        index.upsert(pod("shop", "b", "web", true));
        index.remove(&pod("shop", "a", "web", true));
        assert_eq!(index.ready("shop", &web), 1);
        assert_eq!(index.ready("other", &web), 1);
        assert_eq!(index.len, 3);
        index.remove(&pod("other", "a", "web", true));
        assert!(!index.by_namespace.contains_key("other"));
    }
}
