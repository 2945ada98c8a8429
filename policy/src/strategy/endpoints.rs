//! What a Service's EndpointSlices say, and whether a selector switch is done.

use std::collections::BTreeSet;

use k8s_openapi::api::discovery::v1::EndpointSlice;

/// What a Service's EndpointSlices say, by pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointReport {
    /// Ready endpoints (pod name, or the address when there is no pod reference).
    pub ready: BTreeSet<String>,
    /// The ready ones that are pods of the wanted set.
    pub ready_wanted: BTreeSet<String>,
    /// The ready ones that are not.
    pub ready_other: BTreeSet<String>,
    /// Endpoints listed but not ready (starting or terminating).
    pub not_ready: BTreeSet<String>,
}

impl EndpointReport {
    /// `3 ready (3 green), 1 not ready`
    pub fn summary(&self, wanted: &str) -> String {
        let mut s = format!(
            "{} ready ({} {wanted}",
            self.ready.len(),
            self.ready_wanted.len()
        );
        if !self.ready_other.is_empty() {
            s.push_str(&format!(
                ", {} other: {}",
                self.ready_other.len(),
                join_some(&self.ready_other, 3)
            ));
        }
        s.push(')');
        if !self.not_ready.is_empty() {
            s.push_str(&format!(", {} not ready", self.not_ready.len()));
        }
        s
    }
}

fn join_some(set: &BTreeSet<String>, n: usize) -> String {
    let mut v: Vec<&str> = set.iter().take(n).map(String::as_str).collect();
    if set.len() > n {
        v.push("…");
    }
    v.join(", ")
}

/// Sorts the endpoints of `slices` into wanted/other, ready/not. `ready` unset counts as ready
/// (the API's advice for an unknown state), so an unknown foreign endpoint never passes for gone.
/// An endpoint listed in several slices (they overlap while the controller moves endpoints) is
/// ready if any slice says so.
pub fn endpoint_report(slices: &[EndpointSlice], wanted: &BTreeSet<String>) -> EndpointReport {
    let mut r = EndpointReport::default();
    for ep in slices.iter().flat_map(|s| s.endpoints.iter().flatten()) {
        let id = match &ep.target_ref {
            Some(t) if t.kind.as_deref().is_none_or(|k| k == "Pod") && t.name.is_some() => {
                t.name.clone().unwrap_or_default()
            }
            _ => ep.addresses.join(","),
        };
        let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
        if ready {
            r.ready.insert(id);
        } else {
            r.not_ready.insert(id);
        }
    }
    r.not_ready.retain(|id| !r.ready.contains(id));
    for id in &r.ready {
        if wanted.contains(id) {
            r.ready_wanted.insert(id.clone());
        } else {
            r.ready_other.insert(id.clone());
        }
    }
    r
}

/// The switch is done when the Service's ready endpoints are exactly the ready pods of the new
/// colour: no other ready endpoint, at least one, and every ready new pod present.
pub fn endpoints_switched(r: &EndpointReport, ready_new_pods: &BTreeSet<String>) -> bool {
    !r.ready.is_empty()
        && r.ready_other.is_empty()
        && ready_new_pods.iter().all(|p| r.ready_wanted.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};

    fn ep(pod: &str, ready: Option<bool>) -> Endpoint {
        Endpoint {
            addresses: vec![format!("10.0.0.{}", pod.len())],
            conditions: Some(EndpointConditions {
                ready,
                ..Default::default()
            }),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                name: Some(pod.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn slice(eps: Vec<Endpoint>) -> EndpointSlice {
        EndpointSlice {
            address_type: "IPv4".into(),
            endpoints: Some(eps),
            ..Default::default()
        }
    }

    #[test]
    fn endpoint_verification() {
        let green: BTreeSet<String> = ["g1", "g2"].iter().map(|s| s.to_string()).collect();
        // Mid-switch: a blue endpoint is still ready.
        let r = endpoint_report(
            &[
                slice(vec![ep("b1", Some(true)), ep("g1", Some(true))]),
                slice(vec![ep("g2", Some(true))]),
            ],
            &green,
        );
        assert_eq!(r.ready_other.len(), 1);
        assert!(!endpoints_switched(&r, &green));
        assert!(
            r.summary("green").contains("1 other: b1"),
            "{}",
            r.summary("green")
        );
        // Blue terminating (not ready), green all ready: done.
        let r = endpoint_report(
            &[slice(vec![
                ep("b1", Some(false)),
                ep("g1", Some(true)),
                ep("g2", Some(true)),
            ])],
            &green,
        );
        assert!(endpoints_switched(&r, &green));
        assert_eq!(r.not_ready.len(), 1);
        assert_eq!(r.summary("green"), "2 ready (2 green), 1 not ready");
        // Unknown readiness counts as ready: a foreign endpoint with no condition blocks.
        let r = endpoint_report(
            &[slice(vec![
                ep("x", None),
                ep("g1", Some(true)),
                ep("g2", Some(true)),
            ])],
            &green,
        );
        assert!(!endpoints_switched(&r, &green));
        // A ready new pod missing from the endpoints: not yet.
        let r = endpoint_report(&[slice(vec![ep("g1", Some(true))])], &green);
        assert!(!endpoints_switched(&r, &green));
        // No endpoints at all is never done.
        let r = endpoint_report(&[slice(vec![])], &BTreeSet::new());
        assert!(!endpoints_switched(&r, &BTreeSet::new()));
        // The same pod in two slices, ready in one: ready, counted once.
        let r = endpoint_report(
            &[
                slice(vec![ep("g1", Some(false))]),
                slice(vec![ep("g1", Some(true)), ep("g2", Some(true))]),
            ],
            &green,
        );
        assert_eq!(r.ready.len(), 2);
        assert!(r.not_ready.is_empty());
        assert!(endpoints_switched(&r, &green));
    }

    #[test]
    fn many_foreign_endpoints_are_abbreviated() {
        let r = endpoint_report(
            &[slice(vec![
                ep("a", Some(true)),
                ep("b", Some(true)),
                ep("c", Some(true)),
                ep("d", Some(true)),
            ])],
            &BTreeSet::new(),
        );
        assert_eq!(r.summary("green"), "4 ready (0 green, 4 other: a, b, c, …)");
    }

    #[test]
    fn recorded_endpointslices_parse() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/api-responses/10-list-endpointslices-for-service.txt"
        ))
        .expect("the recorded exchanges live in tests/fixtures/api-responses");
        let body = &text[text.find("\n{").unwrap()..];
        let list: k8s_openapi::List<EndpointSlice> = serde_json::from_str(body).unwrap();
        let wanted: BTreeSet<String> = [
            "good-69bb684dd9-rj7zl",
            "good-69bb684dd9-pdbnn",
            "good-69bb684dd9-6ss2m",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let r = endpoint_report(&list.items, &wanted);
        assert_eq!(r.ready, wanted);
        assert_eq!(r.not_ready.len(), 2);
        assert!(endpoints_switched(&r, &wanted));
    }
}
