//! Controllers: what a cluster does on its own after a write. The stand-in calls every
//! controller that is not stuck after each change (and once a second, for what depends on
//! time) until none of them changes anything more. A controller reads the store and writes
//! only what really changes ([`Store::put`] skips writes that change nothing), so that settles.

use serde_json::Value;

use crate::store::{Store, StoreError};
use crate::time::Timestamp;

pub mod daemonset;
pub mod deployment;
pub mod endpointslice;
pub mod gc;
pub mod history;
pub mod kubelet;
pub mod replicaset;
pub mod statefulset;

pub use daemonset::DaemonSetController;
pub use deployment::{DeploymentController, hash_template};
pub use endpointslice::EndpointSliceController;
pub use gc::GarbageCollector;
pub use kubelet::Kubelet;
pub use replicaset::ReplicaSetController;
pub use statefulset::StatefulSetController;

/// A stand-in for one of the cluster's control loops.
pub trait Controller: Send {
    /// A stable name, to make it stuck ([`crate::Standin::set_stuck`]) and in messages.
    fn name(&self) -> &'static str;

    /// Brings the objects this controller owns in line with the ones it watches.
    fn reconcile(&mut self, store: &mut Store, now: Timestamp) -> Result<(), StoreError>;
}

/// A controller that looks at each object of one type in turn, as most do.
pub trait ObjectController: Send {
    const NAME: &'static str;
    /// The type it watches.
    const RESOURCE: &'static str;

    /// Brings what `object` (as stored now) controls in line with it.
    fn sync(&mut self, store: &mut Store, object: Value, now: Timestamp) -> Result<(), StoreError>;

    /// Whether `sync` could change anything for `object` (looked at before the object is
    /// copied: in a namespace of thousands of settled objects, copying each one on every pass
    /// would hold the store for seconds).
    fn wants(&self, _object: &Value) -> bool {
        true
    }
}

impl<T: ObjectController> Controller for T {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn reconcile(&mut self, store: &mut Store, now: Timestamp) -> Result<(), StoreError> {
        for (ns, name) in keys(store, T::RESOURCE) {
            // An earlier sync may have deleted it.
            if let Some(object) = store
                .get(T::RESOURCE, &ns, &name)
                .filter(|o| self.wants(o))
                .cloned()
            {
                self.sync(store, object, now)?;
            }
        }
        Ok(())
    }
}

/// The controllers of a small cluster: Deployments → ReplicaSets → Pods, StatefulSets and
/// DaemonSets → ControllerRevisions and Pods (whose containers the kubelet starts), Services →
/// EndpointSlices, and garbage collection of orphans.
pub fn kubernetes() -> Vec<Box<dyn Controller>> {
    vec![
        Box::new(DeploymentController),
        Box::new(ReplicaSetController),
        Box::new(StatefulSetController),
        Box::new(DaemonSetController::default()),
        Box::new(Kubelet::default()),
        Box::new(EndpointSliceController),
        Box::new(GarbageCollector),
    ]
}

/// `(namespace, name)` of every object of a type, so a controller can write while it walks.
fn keys(store: &Store, resource: &str) -> Vec<(String, String)> {
    store
        .list(resource, None)
        .map(|o| {
            (
                o["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                crate::store::name_of(o).to_owned(),
            )
        })
        .collect()
}

/// A `Ready` condition that is `True`, and no deletion under way.
pub fn pod_ready(pod: &Value) -> bool {
    pod["metadata"]["deletionTimestamp"].is_null()
        && pod["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}
