//! Cluster lookups (RS601, RS602, the RS405 HPA exemption) answered from reflector stores,
//! through the public `router(state)` with no TLS in between.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::Event;
use rollout_safe_policy::RolloutPolicy;
use rollout_safe_webhook::{AppOptions, AppState, ClusterCache, Metrics, router};
use serde_json::{Value, json};
use tower::ServiceExt;

fn store<K>(objects: Vec<Value>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + 'static,
{
    let (reader, mut writer) = reflector::store::<K>();
    writer.apply_watcher_event(&Event::Init);
    for o in objects {
        let obj: K = serde_json::from_value(o).expect("object");
        writer.apply_watcher_event(&Event::InitApply(obj));
    }
    writer.apply_watcher_event(&Event::InitDone);
    reader
}

fn pod(name: &str, labels: Value, ready: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "labels": labels},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    })
}

fn app(pods: Vec<Value>, pdbs: Vec<Value>, hpas: Vec<Value>) -> axum::Router {
    let cache = ClusterCache::from_stores(
        store::<PodDisruptionBudget>(pdbs),
        store::<HorizontalPodAutoscaler>(hpas),
        store::<Pod>(pods),
    );
    let state = AppState::new(
        RolloutPolicy::default(),
        Some(Arc::new(cache)),
        Metrics::new(),
        AppOptions::default(),
    );
    router(state)
}

fn recorded(name: &str) -> Value {
    let path = format!(
        "{}/../tests/fixtures/admission-reviews/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_slice(&bytes).expect("JSON")
}

async fn validate(app: axum::Router, review: &Value) -> Value {
    let req = Request::post("/validate")
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(review).expect("json")))
        .expect("request");
    let resp = app.oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), 200);
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let v: Value = serde_json::from_slice(&bytes).expect("JSON");
    v["response"].clone()
}

fn mentions(resp: &Value, rule: &str) -> bool {
    let in_message = resp["status"]["message"]
        .as_str()
        .is_some_and(|m| m.contains(rule));
    let in_warnings = resp["warnings"].as_array().is_some_and(|w| {
        w.iter()
            .any(|w| w.as_str().is_some_and(|w| w.starts_with(rule)))
    });
    in_message || in_warnings
}

#[tokio::test]
async fn selector_switch_to_no_ready_pod_is_denied() {
    let review = recorded("10-update-service-selector-switch.validating");
    let new_selector = &review["request"]["object"]["spec"]["selector"];
    assert_eq!(
        new_selector["track"], "green",
        "the recording switches to track=green"
    );
    let labels = json!({"app": new_selector["app"], "track": "green"});

    // Only blue pods, or green ones that are not ready: the switch would empty the Service.
    for pods in [
        vec![pod(
            "web-blue",
            json!({"app": new_selector["app"], "track": "blue"}),
            true,
        )],
        vec![pod("web-green", labels.clone(), false)],
    ] {
        let resp = validate(app(pods, vec![], vec![]), &review).await;
        assert_eq!(resp["allowed"], false, "{resp}");
        assert!(mentions(&resp, "RS602"), "{resp}");
    }
    // A ready green pod: allowed.
    let resp = validate(
        app(vec![pod("web-green", labels, true)], vec![], vec![]),
        &review,
    )
    .await;
    assert_eq!(resp["allowed"], true, "{resp}");
}

#[tokio::test]
async fn pdb_coverage_and_hpa_exemption() {
    let review = recorded("02-create-deployment-kubectl-create.validating");
    let labels = review["request"]["object"]["spec"]["template"]["metadata"]["labels"].clone();
    let name = review["request"]["object"]["metadata"]["name"].clone();

    // Two replicas, no PDB: RS601 warns.
    let resp = validate(app(vec![], vec![], vec![]), &review).await;
    assert!(mentions(&resp, "RS601"), "{resp}");

    // A PDB selecting the pods: no RS601. A PDB with a null selector selects nothing.
    let pdb = |selector: Value| {
        json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
               "metadata": {"name": "bare", "namespace": "shop"},
               "spec": {"minAvailable": 1, "selector": selector}})
    };
    let resp = validate(
        app(vec![], vec![pdb(json!({"matchLabels": labels}))], vec![]),
        &review,
    )
    .await;
    assert!(!mentions(&resp, "RS601"), "{resp}");
    let resp = validate(app(vec![], vec![pdb(Value::Null)], vec![]), &review).await;
    assert!(mentions(&resp, "RS601"), "{resp}");

    // One replica warns RS405, unless an HPA scales the Deployment.
    let mut single = review.clone();
    single["request"]["object"]["spec"]["replicas"] = json!(1);
    let resp = validate(app(vec![], vec![], vec![]), &single).await;
    assert!(mentions(&resp, "RS405"), "{resp}");
    let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                     "metadata": {"name": "bare", "namespace": "shop"},
                     "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                              "minReplicas": 2, "maxReplicas": 5}});
    let resp = validate(app(vec![], vec![], vec![hpa]), &single).await;
    assert!(!mentions(&resp, "RS405"), "{resp}");
}
