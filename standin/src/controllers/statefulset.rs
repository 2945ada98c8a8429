//! The StatefulSet controller, as `pkg/controller/statefulset` behaves with the default
//! `OrderedReady` pod management: pods `<name>-<ordinal>` created one at a time, lowest ordinal
//! first, each only once every lower one is Running and Ready; a `RollingUpdate` replaces pods
//! from the highest ordinal down to `rollingUpdate.partition`, one at a time, deleting a pod on
//! another revision and waiting for its replacement to be Running and Ready; `OnDelete` replaces
//! nothing. Every pod carries `controller-revision-hash: <revision name>`; a pod created again
//! takes the update revision when its ordinal is at or above the partition, the current revision
//! below it.
//!
//! The trap the plugin handles is modelled as the real controller has it: while any pod is not
//! Running and Ready, nothing else happens, so a pod of a broken revision that never becomes
//! ready blocks the StatefulSet even after its template is rolled back, until someone deletes it.

use serde_json::{Value, json};

use super::{ObjectController, history, pod_ready};
use crate::store::{Store, StoreError, name_of, uid_of};
use crate::time::Timestamp;

pub const NAME: &str = "statefulset-controller";
/// The pod label naming the pod's revision (for a StatefulSet, the revision's name).
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// The label the revision carries its hash in.
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";

#[derive(Debug, Default)]
pub struct StatefulSetController;

impl ObjectController for StatefulSetController {
    const NAME: &'static str = NAME;
    const RESOURCE: &'static str = "statefulsets";

    fn sync(&mut self, store: &mut Store, s: Value, _now: Timestamp) -> Result<(), StoreError> {
        sync(store, s)
    }
}

/// The ordinal of a pod named `<set>-<ordinal>`.
fn ordinal(set: &str, pod: &Value) -> Option<i64> {
    name_of(pod)
        .strip_prefix(set)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

fn revision_of(pod: &Value) -> &str {
    pod["metadata"]["labels"][REVISION_LABEL]
        .as_str()
        .unwrap_or_default()
}

fn new_pod(set: &Value, revision: &Value, ord: i64) -> Value {
    let name = name_of(set);
    let template = history::template_of(revision);
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    let pod_name = format!("{name}-{ord}");
    labels[REVISION_LABEL] = json!(name_of(revision));
    labels[POD_NAME_LABEL] = json!(pod_name);
    labels["apps.kubernetes.io/pod-index"] = json!(ord.to_string());
    json!({
        "metadata": {"name": pod_name, "namespace": set["metadata"]["namespace"].clone(),
            "labels": labels, "annotations": template["metadata"]["annotations"].clone(),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name,
                "uid": uid_of(set), "controller": true, "blockOwnerDeletion": true}]},
        "spec": template["spec"].clone(),
        "status": {"phase": "Pending"}
    })
}

fn sync(store: &mut Store, s: Value) -> Result<(), StoreError> {
    let ns = s["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let name = name_of(&s).to_owned();
    let uid = uid_of(&s).to_owned();
    let replicas = s["spec"]["replicas"].as_i64().unwrap_or(1).max(0);
    let rolling = s["spec"]["updateStrategy"]["type"]
        .as_str()
        .is_none_or(|t| t == "RollingUpdate");
    let partition = s["spec"]["updateStrategy"]["rollingUpdate"]["partition"]
        .as_i64()
        .unwrap_or(0)
        .max(0);
    let (update, _) = history::current_revision(store, &s, "StatefulSet", &[HASH_LABEL])?;
    let update_name = name_of(&update).to_owned();
    let revisions = history::owned(store, &ns, &uid);
    // The current revision: as recorded, while it still exists; else the update revision.
    let current_name = s["status"]["currentRevision"]
        .as_str()
        .filter(|c| revisions.iter().any(|r| name_of(r) == *c))
        .unwrap_or(&update_name)
        .to_owned();
    let current = revisions
        .iter()
        .find(|r| name_of(r) == current_name)
        .cloned()
        .unwrap_or_else(|| update.clone());

    let mut pods: Vec<Value> = store.controlled_by("pods", &ns, &uid).cloned().collect();
    pods.sort_by_key(|p| ordinal(&name, p).unwrap_or(i64::MAX));
    let healthy = |p: &Value| p["status"]["phase"] == "Running" && pod_ready(p);

    // One action per pass, as the OrderedReady controller takes them.
    'act: {
        // Scale down: the highest ordinal beyond `replicas` first.
        if let Some(extra) = pods
            .iter()
            .rev()
            .find(|p| ordinal(&name, p).is_none_or(|o| o >= replicas))
        {
            store.delete("pods", &ns, name_of(extra))?;
            break 'act;
        }
        for ord in 0..replicas {
            match pods.iter().find(|p| ordinal(&name, p) == Some(ord)) {
                None => {
                    let rev = if rolling && ord < partition {
                        &current
                    } else {
                        &update
                    };
                    store.put("pods", new_pod(&s, rev, ord))?;
                    break 'act;
                }
                // A pod that is not Running and Ready holds everything up.
                Some(p) if !healthy(p) => break 'act,
                Some(_) => {}
            }
        }
        if !rolling {
            break 'act;
        }
        for ord in (partition..replicas).rev() {
            let Some(p) = pods.iter().find(|p| ordinal(&name, p) == Some(ord)) else {
                break 'act;
            };
            if revision_of(p) != update_name {
                store.delete("pods", &ns, name_of(p))?;
                break 'act;
            }
        }
    }

    let pods: Vec<Value> = store.controlled_by("pods", &ns, &uid).cloned().collect();
    let count = |f: &dyn Fn(&Value) -> bool| pods.iter().filter(|p| f(p)).count() as i64;
    let ready = count(&|p| pod_ready(p));
    let updated = count(&|p| revision_of(p) == update_name);
    let mut current_name = current_name;
    let mut current_replicas = count(&|p| revision_of(p) == current_name);
    if rolling && updated == replicas && ready == replicas && pods.len() as i64 == replicas {
        current_name = update_name.clone();
        current_replicas = updated;
    }
    let in_use: Vec<String> = pods.iter().map(|p| revision_of(p).to_owned()).collect();
    history::prune(store, &s, &[&current_name, &update_name], &in_use)?;
    let mut out = s.clone();
    out["status"] = json!({
        "observedGeneration": s["metadata"]["generation"].clone(),
        "replicas": pods.len(), "readyReplicas": ready, "availableReplicas": ready,
        "currentReplicas": current_replicas, "updatedReplicas": updated,
        "currentRevision": current_name, "updateRevision": update_name,
        "collisionCount": 0
    });
    store.put("statefulsets", out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals() {
        let p = json!({"metadata": {"name": "db-12"}});
        assert_eq!(ordinal("db", &p), Some(12));
        assert_eq!(ordinal("d", &p), None);
        assert_eq!(ordinal("db-1", &p), None);
    }
}
