//! The Service a blue-green switches: reading it, writing a `ServiceChange` as one guarded
//! merge patch, and reading its EndpointSlices and the pods a selector selects.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{ListParams, Patch};
use rollout_safe_policy::selector::map_text;
use rollout_safe_policy::strategy::bluegreen::ServiceChange;
use rollout_safe_policy::strategy::endpoints::{EndpointReport, endpoint_report};
use rollout_safe_policy::strategy::hold::{pod_name, pod_ready};
use serde_json::{Map, Value, json};

use super::client::Cluster;
use super::errors::api_error;
use super::patch::{Written, guarded_write};
use crate::error::Error;

pub async fn get_service(cluster: &Cluster, name: &str) -> Result<Service, Error> {
    cluster
        .services()
        .get(name)
        .await
        .map_err(|e| api_error(e, cluster.op("get", "services", Some(name))))
}

/// The JSON merge patch that makes `change` to `svc`, with `metadata.resourceVersion` as the
/// precondition (a stale one is a 409 `Conflict`, `api-responses/04`). `None`: nothing to change.
pub fn service_patch(svc: &Service, change: &ServiceChange) -> Option<Value> {
    let mut meta = Map::new();
    let mut spec = Map::new();
    let have_ann = svc.metadata.annotations.clone().unwrap_or_default();
    let mut ann = Map::new();
    for (k, v) in &change.annotations {
        if have_ann.get(k) != v.as_ref() {
            ann.insert(k.clone(), v.clone().map_or(Value::Null, Value::String));
        }
    }
    if let Some(want) = &change.selector {
        let have = svc
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        let mut sel = Map::new();
        for (k, v) in want {
            if have.get(k) != Some(v) {
                sel.insert(k.clone(), Value::String(v.clone()));
            }
        }
        for k in have.keys().filter(|k| !want.contains_key(*k)) {
            sel.insert(k.clone(), Value::Null);
        }
        if !sel.is_empty() {
            spec.insert("selector".into(), Value::Object(sel));
        }
    }
    if ann.is_empty() && spec.is_empty() {
        return None;
    }
    if !ann.is_empty() {
        meta.insert("annotations".into(), Value::Object(ann));
    }
    meta.insert(
        "resourceVersion".into(),
        Value::String(svc.metadata.resource_version.clone().unwrap_or_default()),
    );
    let mut patch = json!({ "metadata": meta });
    if !spec.is_empty() {
        patch["spec"] = Value::Object(spec);
    }
    Some(patch)
}

/// The guarded write of a Service ([`guarded_write`]): `build` turns the Service as read into a
/// change; the change goes out as one merge patch carrying the resourceVersion it was computed
/// from; on a conflict `build` runs again on the fresh Service (so it re-validates).
/// `Ok(None)`: nothing to change.
pub async fn write_service<F>(
    cluster: &Cluster,
    first: Service,
    build: F,
) -> Result<Option<Written<Service>>, Error>
where
    F: FnMut(&Service, usize) -> Result<Option<ServiceChange>, Error>,
{
    guarded_write(cluster, first, false, false, build, |cur, change| {
        Ok(service_patch(cur, change).map(Patch::Merge))
    })
    .await
}

pub async fn endpoint_slices(
    cluster: &Cluster,
    service: &str,
) -> Result<Vec<EndpointSlice>, Error> {
    let api: Api<EndpointSlice> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
    api.list(&lp).await.map(|l| l.items).map_err(|e| {
        api_error(
            e,
            cluster.op("list", "endpointslices.discovery.k8s.io", None),
        )
    })
}

/// Pods selected by a Service-style selector.
pub async fn pods_selected(
    cluster: &Cluster,
    sel: &BTreeMap<String, String>,
) -> Result<Vec<Pod>, Error> {
    cluster
        .pods()
        .list(&ListParams::default().labels(&map_text(sel)))
        .await
        .map(|l| l.items)
        .map_err(|e| api_error(e, cluster.op("list", "pods", None)))
}

/// Waits until `check` says the Service's endpoints are right for the pods `wanted_selector`
/// selects, until `limit`; polls every half second. Returns the last report and whether it
/// passed.
pub async fn wait_endpoints<F>(
    cluster: &Cluster,
    service: &str,
    wanted_selector: &BTreeMap<String, String>,
    limit: Duration,
    mut check: F,
) -> Result<(EndpointReport, bool), Error>
where
    F: FnMut(&EndpointReport, &BTreeSet<String>) -> bool,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let pods = pods_selected(cluster, wanted_selector).await?;
        let wanted: BTreeSet<String> = pods.iter().map(pod_name).collect();
        let ready: BTreeSet<String> = pods.iter().filter(|p| pod_ready(p)).map(pod_name).collect();
        let report = endpoint_report(&endpoint_slices(cluster, service).await?, &wanted);
        if check(&report, &ready) {
            return Ok((report, true));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok((report, false));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{Exit, exit_code};
    use rollout_safe_policy::strategy::bluegreen::{
        Color, base_selector, colored_selector, service_selector,
    };
    use rollout_safe_policy::strategy::schema::{COLOR_LABEL, ann};

    fn svc(sel: &[(&str, &str)], ann: &[(&str, &str)]) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "shop", "resourceVersion": "41",
                "annotations": ann.iter().map(|(k, v)| ((*k).to_string(), json!(v))).collect::<Map<_, _>>()},
            "spec": {"selector": sel.iter().map(|(k, v)| ((*k).to_string(), json!(v))).collect::<Map<_, _>>()}
        }))
        .unwrap()
    }

    fn selector(s: &Service) -> BTreeMap<String, String> {
        s.spec.as_ref().unwrap().selector.clone().unwrap()
    }

    #[test]
    fn service_patches_are_minimal_and_guarded() {
        let s = svc(
            &[("app", "shop"), (COLOR_LABEL, "blue")],
            &[(ann::PHASE, "deploying"), (ann::TARGET, "green")],
        );
        let change = ServiceChange {
            selector: Some(colored_selector(&selector(&s), Color::Green)),
            annotations: BTreeMap::from([
                (ann::PHASE.to_owned(), Some("switched".to_owned())),
                (ann::TARGET.to_owned(), None),
                (ann::ACTIVE.to_owned(), Some("green".to_owned())),
            ]),
        };
        let p = service_patch(&s, &change).unwrap();
        assert_eq!(
            p,
            json!({"metadata": {"resourceVersion": "41", "annotations": {
                ann::PHASE: "switched", ann::TARGET: null, ann::ACTIVE: "green"}},
                "spec": {"selector": {COLOR_LABEL: "green"}}})
        );
        // Removing the colour key (back to the base selector) is a null.
        let p = service_patch(
            &s,
            &ServiceChange {
                selector: Some(base_selector(&selector(&s))),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(p["spec"]["selector"], json!({COLOR_LABEL: null}));
        assert!(service_patch(&s, &ServiceChange::default()).is_none());
        let same = ServiceChange {
            selector: Some(selector(&s)),
            annotations: BTreeMap::from([(ann::PHASE.to_owned(), Some("deploying".to_owned()))]),
        };
        assert!(service_patch(&s, &same).is_none());
        // A Service without a selector cannot be switched: bad input (exit 2).
        let bare: Service =
            serde_json::from_value(json!({"metadata": {"name": "x"}, "spec": {}})).unwrap();
        let e: Error = service_selector(&bare).unwrap_err().into();
        assert_eq!(exit_code(&Err(e)), Exit::Usage);
    }
}
