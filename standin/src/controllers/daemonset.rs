//! The DaemonSet controller, as `pkg/controller/daemon` behaves on a cluster of
//! [`DaemonSetController::nodes`] nodes without taints: one pod per node (`spec.nodeName` set,
//! as the controller schedules daemon pods itself), labelled `controller-revision-hash: <hash>`
//! and `pod-template-generation: <n>`. The template generation is kept in the
//! `deprecated.daemonset.template.generation` annotation, which the API server sets on a write
//! that changes the template (here `Store::put`).
//!
//! A `RollingUpdate` with `maxSurge: 0` deletes old pods while fewer than `maxUnavailable`
//! nodes lack an available pod (old unavailable pods go first, always), and the node gets a new
//! pod; with `maxSurge` > 0 a new pod starts beside the old one on up to `maxSurge` nodes and the
//! old pod goes once the new one is available. New pods that never become available (a crash
//! loop) so stop the rollout after `maxUnavailable` nodes. `OnDelete` replaces nothing.

use serde_json::{Value, json};

use super::{ObjectController, history, pod_ready};
use crate::store::{Store, StoreError, name_of, uid_of};
use crate::time::Timestamp;

pub const NAME: &str = "daemonset-controller";
/// The pod and revision label carrying the revision's hash.
pub const REVISION_LABEL: &str = "controller-revision-hash";
pub const GENERATION_LABEL: &str = "pod-template-generation";
pub const GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

#[derive(Debug)]
pub struct DaemonSetController {
    /// The nodes every daemon pod goes to, one each.
    pub nodes: Vec<String>,
}

impl Default for DaemonSetController {
    /// Three nodes, the first being the kubelet's own (`standin-node-1`).
    fn default() -> Self {
        DaemonSetController {
            nodes: (1..=3).map(|i| format!("standin-node-{i}")).collect(),
        }
    }
}

impl ObjectController for DaemonSetController {
    const NAME: &'static str = NAME;
    const RESOURCE: &'static str = "daemonsets";

    fn sync(&mut self, store: &mut Store, ds: Value, _now: Timestamp) -> Result<(), StoreError> {
        sync(store, ds, &self.nodes)
    }
}

/// An `IntOrString` of the rolling update against `total` nodes (percentages round up for
/// surge, down for unavailability, as the controller does).
fn scaled(v: &Value, total: i64, round_up: bool, default: i64) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(default),
        Value::String(s) => match s.trim_end_matches('%').parse::<i64>() {
            Ok(p) if round_up => (total * p + 99) / 100,
            Ok(p) => total * p / 100,
            Err(_) => default,
        },
        _ => default,
    }
}

fn node_of(pod: &Value) -> &str {
    pod["spec"]["nodeName"].as_str().unwrap_or_default()
}

fn hash_of(pod: &Value) -> &str {
    pod["metadata"]["labels"][REVISION_LABEL]
        .as_str()
        .unwrap_or_default()
}

fn new_pod(ds: &Value, revision: &Value, generation: &str, node: &str, suffix: &str) -> Value {
    let name = name_of(ds);
    let template = history::template_of(revision);
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels[REVISION_LABEL] = revision["metadata"]["labels"][REVISION_LABEL].clone();
    labels[GENERATION_LABEL] = json!(generation);
    let mut spec = template["spec"].clone();
    spec["nodeName"] = json!(node);
    json!({
        "metadata": {"name": format!("{name}-{suffix}"), "generateName": format!("{name}-"),
            "namespace": ds["metadata"]["namespace"].clone(),
            "labels": labels, "annotations": template["metadata"]["annotations"].clone(),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": name,
                "uid": uid_of(ds), "controller": true, "blockOwnerDeletion": true}]},
        "spec": spec,
        "status": {"phase": "Pending"}
    })
}

fn sync(store: &mut Store, mut ds: Value, nodes: &[String]) -> Result<(), StoreError> {
    let ns = ds["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let uid = uid_of(&ds).to_owned();
    // The template generation first: the revision copies the annotations.
    let (update, changed) = history::current_revision(store, &ds, "DaemonSet", &[REVISION_LABEL])?;
    // The API server sets it on writes that change the template (`Store::put`); a seeded
    // DaemonSet without one gets it here.
    if ds["metadata"]["annotations"][GENERATION_ANNOTATION].is_null() {
        let generation = ds["metadata"]["generation"].as_i64().unwrap_or(1);
        ds["metadata"]["annotations"][GENERATION_ANNOTATION] = json!(generation.to_string());
        store.put("daemonsets", ds.clone())?;
        ds = store
            .get("daemonsets", &ns, name_of(&ds))
            .cloned()
            .unwrap_or(ds);
        // A new revision is made from the DaemonSet as the API server left it, generation
        // annotation included.
        if changed == history::Change::Created {
            let mut cr = update.clone();
            cr["metadata"]["annotations"] = ds["metadata"]["annotations"].clone();
            store.put("controllerrevisions", cr)?;
        }
    }
    let generation = ds["metadata"]["annotations"][GENERATION_ANNOTATION]
        .as_str()
        .unwrap_or("1")
        .to_owned();
    let hash = update["metadata"]["labels"][REVISION_LABEL]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let rolling = ds["spec"]["updateStrategy"]["type"]
        .as_str()
        .is_none_or(|t| t == "RollingUpdate");
    let total = nodes.len() as i64;
    let ru = &ds["spec"]["updateStrategy"]["rollingUpdate"];
    let max_surge = scaled(&ru["maxSurge"], total, true, 0);
    let max_unavailable = if max_surge > 0 {
        scaled(&ru["maxUnavailable"], total, false, 0)
    } else {
        scaled(&ru["maxUnavailable"], total, false, 1).max(1)
    };

    let pods: Vec<Value> = store.controlled_by("pods", &ns, &uid).cloned().collect();
    let on = |node: &str| -> Vec<&Value> { pods.iter().filter(|p| node_of(p) == node).collect() };
    // Nodes without a pod get one, of the update revision.
    for node in nodes {
        if on(node).is_empty() {
            let suffix = store.name_suffix();
            store.put("pods", new_pod(&ds, &update, &generation, node, &suffix))?;
        }
    }
    // Pods on nodes that are not (or no longer) there.
    for p in pods
        .iter()
        .filter(|p| !nodes.iter().any(|n| n == node_of(p)))
    {
        store.delete("pods", &ns, name_of(p))?;
    }
    if rolling {
        let unavailable_nodes = nodes
            .iter()
            .filter(|n| !on(n).into_iter().any(pod_ready))
            .count() as i64;
        let mut budget = (max_unavailable - unavailable_nodes).max(0);
        let mut surge_budget = max_surge - nodes.iter().filter(|n| on(n).len() > 1).count() as i64;
        for node in nodes {
            let here = on(node);
            let (new, old): (Vec<&Value>, Vec<&Value>) =
                here.into_iter().partition(|p| hash_of(p) == hash);
            if old.is_empty() {
                continue;
            }
            let new_ready = new.iter().any(|p| pod_ready(p));
            let old_ready = old.iter().any(|p| pod_ready(p));
            if !old_ready || new_ready {
                // An unavailable old pod always goes; so does the old one once the new is up.
                for p in &old {
                    store.delete("pods", &ns, name_of(p))?;
                }
            } else if max_surge > 0 {
                if new.is_empty() && surge_budget > 0 {
                    let suffix = store.name_suffix();
                    store.put("pods", new_pod(&ds, &update, &generation, node, &suffix))?;
                    surge_budget -= 1;
                }
            } else if budget > 0 {
                for p in &old {
                    store.delete("pods", &ns, name_of(p))?;
                }
                budget -= 1;
            }
        }
    }

    let pods: Vec<Value> = store.controlled_by("pods", &ns, &uid).cloned().collect();
    let scheduled = nodes
        .iter()
        .filter(|n| pods.iter().any(|p| node_of(p) == n.as_str()))
        .count() as i64;
    let available = nodes
        .iter()
        .filter(|n| {
            pods.iter()
                .any(|p| node_of(p) == n.as_str() && pod_ready(p))
        })
        .count() as i64;
    let updated = nodes
        .iter()
        .filter(|n| {
            pods.iter()
                .any(|p| node_of(p) == n.as_str() && hash_of(p) == hash)
        })
        .count() as i64;
    let in_use: Vec<String> = history::owned(store, &ns, &uid)
        .iter()
        .filter(|cr| {
            let h = cr["metadata"]["labels"][REVISION_LABEL].as_str();
            pods.iter().any(|p| Some(hash_of(p)) == h)
        })
        .map(|cr| name_of(cr).to_owned())
        .collect();
    history::prune(store, &ds, &[name_of(&update)], &in_use)?;
    let mut status = json!({
        "currentNumberScheduled": scheduled, "numberMisscheduled": 0,
        "desiredNumberScheduled": total, "numberReady": available,
        "observedGeneration": ds["metadata"]["generation"].clone(),
        "updatedNumberScheduled": updated, "numberAvailable": available
    });
    if total > available {
        status["numberUnavailable"] = json!(total - available);
    }
    let mut out = ds.clone();
    out["status"] = status;
    store.put("daemonsets", out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_update_bounds() {
        assert_eq!(scaled(&json!(1), 3, false, 1), 1);
        assert_eq!(scaled(&json!("50%"), 3, false, 1), 1);
        assert_eq!(scaled(&json!("50%"), 3, true, 0), 2);
        assert_eq!(scaled(&Value::Null, 3, false, 1), 1);
    }
}
