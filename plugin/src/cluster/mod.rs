//! Everything that talks to the Kubernetes API: the client, workload references, API errors,
//! precondition-guarded writes, revisions, and the watch loop that drives the rollout judge.

pub mod client;
pub mod colors;
pub mod errors;
pub mod patch;
pub mod refs;
pub mod revisions;
pub mod rollback;
pub mod watch;

pub use client::{Cluster, FIELD_MANAGER};
pub use refs::WorkloadRef;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Api;
use kube::api::ListParams;
use rollout_safe_policy::selector::selector_matches;
use rollout_safe_policy::{Facts, Workload};

use crate::exit::Failure;
use errors::{Op, api_failure};

/// Reads a Deployment; 404/403 become the plugin's messages (exit 5).
pub async fn get_deployment(cluster: &Cluster, name: &str) -> Result<Deployment, Failure> {
    cluster.deployments().get(name).await.map_err(|e| {
        api_failure(
            e,
            Op::new("get", "deployments.apps", Some(name), &cluster.namespace),
        )
    })
}

/// What the policy needs to know about the workload's surroundings, looked up best-effort:
/// an HPA targeting it (RS405 does not apply), a PDB covering its pods (RS601). A lookup the
/// user may not do leaves the fact unknown.
pub async fn facts_for(cluster: &Cluster, w: &Workload) -> Facts {
    let hpas: Api<HorizontalPodAutoscaler> =
        Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let autoscaled = match hpas.list(&ListParams::default()).await {
        Ok(list) => list.items.iter().any(|h| {
            h.spec.scale_target_ref.kind == w.kind().as_str()
                && h.spec.scale_target_ref.name == w.name()
        }),
        Err(_) => false,
    };
    let multi = autoscaled || w.replicas().is_some_and(|r| r >= 2);
    let pdbs: Api<PodDisruptionBudget> =
        Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let pdb_covered = if multi {
        match pdbs.list(&ListParams::default()).await {
            Ok(list) => {
                let labels = w.pod_labels();
                Some(list.items.iter().any(|p| {
                    p.spec
                        .as_ref()
                        .and_then(|s| s.selector.as_ref())
                        .is_some_and(|s| selector_matches(s, &labels))
                }))
            }
            Err(_) => None,
        }
    } else {
        None
    };
    Facts {
        autoscaled,
        pdb_covered,
    }
}
