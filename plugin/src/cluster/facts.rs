//! What the policy needs to know about a workload's surroundings, read from the cluster.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Api;
use kube::api::ListParams;
use rollout_safe_policy::{Facts, Workload};

use super::client::Cluster;

/// [`Facts::gather`] over the namespace's HPAs and PDBs, looked up best-effort: a list the user
/// may not do leaves the fact unknown (no HPA counted; PDB coverage unknown, so RS601 is
/// skipped).
pub async fn facts_for(cluster: &Cluster, w: &Workload) -> Facts {
    let hpas: Api<HorizontalPodAutoscaler> =
        Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let pdbs: Api<PodDisruptionBudget> =
        Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let hpas = hpas
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let pdbs = pdbs.list(&ListParams::default()).await.map(|l| l.items);
    let targets = hpas.iter().map(|h| {
        (
            h.spec.scale_target_ref.kind.as_str(),
            h.spec.scale_target_ref.name.as_str(),
        )
    });
    let selectors = pdbs
        .iter()
        .flatten()
        .filter_map(|p| p.spec.as_ref()?.selector.as_ref());
    let mut facts = Facts::gather(w, selectors, targets);
    if pdbs.is_err() {
        facts.pdb_covered = None;
    }
    facts
}
