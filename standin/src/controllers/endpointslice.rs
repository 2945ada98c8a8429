//! The EndpointSlice controller: one slice per Service with a selector, holding every running
//! pod the selector selects (`ready` and `serving` as the pod), its ports resolved against the
//! pods' named container ports.

use serde_json::{Value, json};

use super::{ObjectController, pod_ready};
use crate::selector::{LabelSelector, string_map};
use crate::store::{Store, StoreError, name_of, uid_of};
use crate::time::Timestamp;

pub const NAME: &str = "endpointslice-controller";
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

#[derive(Debug, Default)]
pub struct EndpointSliceController;

impl ObjectController for EndpointSliceController {
    const NAME: &'static str = NAME;
    const RESOURCE: &'static str = "services";

    fn sync(&mut self, store: &mut Store, svc: Value, _now: Timestamp) -> Result<(), StoreError> {
        sync(store, svc)
    }
}

fn sync(store: &mut Store, svc: Value) -> Result<(), StoreError> {
    let ns = svc["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = name_of(&svc);
    let selector = string_map(&svc["spec"]["selector"]);
    if selector.is_empty() {
        // Endpoints of a Service without a selector are someone else's.
        return Ok(());
    }
    let selector = LabelSelector::from_map(&selector);
    let pods: Vec<Value> = store
        .list("pods", Some(ns))
        .filter(|p| selector.selects(p) && p["status"]["podIP"].is_string())
        .cloned()
        .collect();
    let endpoints: Vec<Value> = pods
        .iter()
        .map(|p| {
            let ready = pod_ready(p);
            json!({"addresses": [p["status"]["podIP"].clone()],
                "conditions": {"ready": ready, "serving": ready, "terminating": false},
                "targetRef": {"kind": "Pod", "namespace": ns, "name": name_of(p), "uid": uid_of(p)},
                "nodeName": p["spec"]["nodeName"].clone()})
        })
        .collect();
    let ports: Vec<Value> = svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|port| {
            json!({"name": port["name"].as_str().unwrap_or_default(),
                "protocol": port["protocol"].as_str().unwrap_or("TCP"),
                "port": target_port(port, &pods)})
        })
        .collect();
    let existing = store
        .list("endpointslices", Some(ns))
        .find(|s| {
            s["metadata"]["labels"][SERVICE_NAME_LABEL] == name
                && s["metadata"]["labels"][MANAGED_BY_LABEL] == MANAGED_BY
        })
        .cloned();
    let mut slice = match existing {
        Some(s) => s,
        None => json!({
            "metadata": {"name": format!("{name}-{}", store.name_suffix()), "generateName": format!("{name}-"), "namespace": ns,
                "labels": {MANAGED_BY_LABEL: MANAGED_BY, SERVICE_NAME_LABEL: name},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name, "uid": uid_of(&svc),
                    "controller": true, "blockOwnerDeletion": true}]},
            "addressType": "IPv4"}),
    };
    slice["endpoints"] = json!(endpoints);
    slice["ports"] = json!(ports);
    store.put("endpointslices", slice)?;
    Ok(())
}

/// The port number traffic goes to: `targetPort` as a number, or the container port of that
/// name in a selected pod, or the Service port.
fn target_port(port: &Value, pods: &[Value]) -> Value {
    match &port["targetPort"] {
        Value::Number(n) => json!(n),
        Value::String(named) => pods
            .iter()
            .flat_map(|p| p["spec"]["containers"].as_array().into_iter().flatten())
            .flat_map(|c| c["ports"].as_array().into_iter().flatten())
            .find(|p| p["name"] == named.as_str())
            .map(|p| p["containerPort"].clone())
            .unwrap_or_else(|| port["port"].clone()),
        _ => port["port"].clone(),
    }
}
