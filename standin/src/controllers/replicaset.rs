//! The ReplicaSet controller: as many pods (`<replicaset>-<suffix>`, Pending until the
//! [`super::Kubelet`] starts them) as `spec.replicas` asks for, unready and newest pods removed
//! first, and the status counts.

use serde_json::{Value, json};

use super::{ObjectController, pod_ready};
use crate::store::{Store, StoreError, name_of, uid_of};
use crate::time::Timestamp;

pub const NAME: &str = "replicaset-controller";

#[derive(Debug, Default)]
pub struct ReplicaSetController;

impl ObjectController for ReplicaSetController {
    const NAME: &'static str = NAME;
    const RESOURCE: &'static str = "replicasets";

    fn sync(&mut self, store: &mut Store, rs: Value, _now: Timestamp) -> Result<(), StoreError> {
        sync(store, rs)
    }
}

fn sync(store: &mut Store, rs: Value) -> Result<(), StoreError> {
    let ns = rs["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = name_of(&rs);
    let uid = uid_of(&rs).to_owned();
    let want = rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
    let mut pods: Vec<Value> = store.controlled_by("pods", ns, &uid).cloned().collect();
    if pods.len() > want {
        // Unready pods go first, then the newest.
        pods.sort_by(|a, b| {
            pod_ready(a).cmp(&pod_ready(b)).then_with(|| {
                let created = |p: &Value| {
                    p["metadata"]["creationTimestamp"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                };
                created(b)
                    .cmp(&created(a))
                    .then_with(|| name_of(b).cmp(name_of(a)))
            })
        });
        let excess = pods.len() - want;
        for p in pods.drain(..excess) {
            store.delete("pods", ns, name_of(&p))?;
        }
    }
    while pods.len() < want {
        let pod_name = format!("{name}-{}", store.name_suffix());
        let template = &rs["spec"]["template"];
        let pod = json!({
            "metadata": {"name": pod_name, "generateName": format!("{name}-"), "namespace": ns,
                "labels": template["metadata"]["labels"].clone(),
                "annotations": template["metadata"]["annotations"].clone(),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name,
                    "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
            "spec": template["spec"].clone(),
            "status": {"phase": "Pending"}
        });
        store.put("pods", pod.clone())?;
        pods.push(pod);
    }
    let ready = pods.iter().filter(|p| pod_ready(p)).count();
    let mut out = rs.clone();
    out["status"] = json!({"replicas": pods.len(), "fullyLabeledReplicas": pods.len(),
        "readyReplicas": ready, "availableReplicas": ready,
        "observedGeneration": rs["metadata"]["generation"].clone()});
    store.put("replicasets", out)?;
    Ok(())
}
