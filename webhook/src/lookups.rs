//! `--cluster-lookups`: [`ClusterLookups`] answered from watch-fed caches (kube-runtime
//! reflectors) of PodDisruptionBudgets, HorizontalPodAutoscalers and running Pods in every
//! namespace. Nothing is listed per request: an admission call never waits on the API server.
//! Until a cache has synced its answers are `None` (unknown), and the policy then skips the rule
//! that needs it rather than guessing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;
use futures::StreamExt;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use rollout_safe_policy::admission::ClusterLookups;
use rollout_safe_policy::selector::{map_selects, selector_matches};
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

/// Watch-fed caches answering the policy's cluster questions.
#[derive(Clone)]
pub struct ClusterCache {
    pdbs: Cache<PodDisruptionBudget>,
    hpas: Cache<HorizontalPodAutoscaler>,
    pods: Cache<Pod>,
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
        // Only running pods can be ready endpoints; everything but labels and the Ready
        // condition is dropped before caching, so a large cluster costs little memory.
        let pods = spawn_cache(
            tasks,
            "pods",
            Api::<Pod>::all(client),
            watcher::Config::default()
                .any_semantic()
                .fields("status.phase=Running"),
            strip_pod,
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
            pods: Cache {
                store: pods,
                synced: synced(),
            },
        }
    }
}

fn strip_pod(pod: &mut Pod) {
    pod.managed_fields_mut().clear();
    pod.annotations_mut().clear();
    pod.owner_references_mut().clear();
    pod.spec = None;
    if let Some(status) = pod.status.as_mut() {
        let ready = status
            .conditions
            .take()
            .map(|c| c.into_iter().filter(|c| c.type_ == "Ready").collect());
        *status = Default::default();
        status.conditions = ready;
    }
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
        let store = self.pods.get()?;
        // Counted inside the store's read lock without collecting: `find` with a predicate
        // that never matches visits every pod once and clones nothing. The cheap namespace
        // comparison comes first.
        let ready = std::cell::Cell::new(0usize);
        let _ = store.find(|pod| {
            if pod.metadata.namespace.as_deref() == Some(namespace)
                && map_selects(selector, pod.labels())
                && pod_ready(pod)
            {
                ready.set(ready.get() + 1);
            }
            false
        });
        Some(ready.get())
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
            pods: Cache {
                store,
                synced: unsynced(),
            },
        };
        let labels = BTreeMap::from([("app".to_string(), "web".to_string())]);
        assert_eq!(cache.autoscaled("shop", "Deployment", "web"), None);
        assert_eq!(cache.pdb_covers("shop", &labels), None);
        assert_eq!(cache.ready_pods("shop", &labels), None);
        cache.pods.synced.store(true, Ordering::Release);
        assert_eq!(cache.ready_pods("shop", &labels), Some(0));
    }

    #[test]
    fn stripped_pod_keeps_what_readiness_needs() {
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "shop", "labels": {"app": "web"},
                         "annotations": {"big": "x"}, "managedFields": [{"manager": "kubelet"}]},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                       "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]}
        }))
        .expect("pod");
        strip_pod(&mut pod);
        assert!(pod.spec.is_none());
        assert!(
            pod.metadata
                .annotations
                .as_ref()
                .is_none_or(|a| a.is_empty())
        );
        assert_eq!(pod.labels().get("app").map(String::as_str), Some("web"));
        assert!(pod_ready(&pod));
        let conditions = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .map(Vec::len);
        assert_eq!(conditions, Some(1));
    }
}
