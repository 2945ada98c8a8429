//! What a Service could send traffic to, over time: replayed from the change log the way a
//! client watching the Service and its EndpointSlices would have seen it (the stand-in's
//! version of the e2e tests' endpoint watch).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::controllers::endpointslice::SERVICE_NAME_LABEL;
use crate::selector::string_map;
use crate::store::{EventType, Store};

/// One look at a Service: its selector, and its ready endpoints (pod name → the value of the
/// label asked for, `-` without one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    pub selector: BTreeMap<String, String>,
    pub ready: BTreeMap<String, String>,
}

/// Every distinct view of `service` in `namespace`, oldest first.
pub fn service_history(
    store: &Store,
    namespace: &str,
    service: &str,
    label: &str,
) -> Vec<ServiceView> {
    let mut selector = BTreeMap::new();
    let mut slices: BTreeMap<String, Value> = BTreeMap::new();
    let mut pod_labels: BTreeMap<String, Value> = BTreeMap::new();
    let mut history: Vec<ServiceView> = Vec::new();
    for change in store.log() {
        if change.namespace() != namespace {
            continue;
        }
        let object = &change.object;
        let relevant = match change.resource.plural {
            "pods" => {
                pod_labels.insert(
                    change.name().to_owned(),
                    object["metadata"]["labels"].clone(),
                );
                false
            }
            "services" if change.name() == service => {
                selector = if change.event == EventType::Deleted {
                    BTreeMap::new()
                } else {
                    string_map(&object["spec"]["selector"])
                };
                true
            }
            "endpointslices" if object["metadata"]["labels"][SERVICE_NAME_LABEL] == service => {
                if change.event == EventType::Deleted {
                    slices.remove(change.name());
                } else {
                    slices.insert(change.name().to_owned(), object.clone());
                }
                true
            }
            _ => false,
        };
        if !relevant {
            continue;
        }
        let ready = slices
            .values()
            .flat_map(|s| s["endpoints"].as_array().into_iter().flatten())
            .filter(|e| e["conditions"]["ready"] != false)
            .filter_map(|e| e["targetRef"]["name"].as_str())
            .map(|pod| {
                let value = pod_labels
                    .get(pod)
                    .and_then(|l| l[label].as_str())
                    .unwrap_or("-");
                (pod.to_owned(), value.to_owned())
            })
            .collect();
        let view = ServiceView {
            selector: selector.clone(),
            ready,
        };
        if history.last() != Some(&view) {
            history.push(view);
        }
    }
    history
}
