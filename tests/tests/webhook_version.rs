//! The webhook learns the API server's version whenever it can, and injects nothing an older
//! server would reject while it cannot (issue: a webhook outside a cluster, pointed at a v1.24
//! API server, injected `preStop.sleep` and every Deployment create was rejected).
//!
//! 1. No kubeconfig, no in-cluster config, no `--kubernetes-version`: the version is unknown,
//!    `/readyz` and a metric say so, and RS201 only warns.
//! 2. A kubeconfig pointing at a stand-in for the API server that answers `/version` with the
//!    recorded v1.24 response (no `--cluster-lookups`): the version is discovered, and RS201
//!    still does not inject the native sleep (1.24 has none).
//!
//! Alone in its test binary because it sets KUBECONFIG and HOME for the process.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use rollout_safe_policy::ServerInfo;
use rollout_safe_tests::client::plain_get;
use rollout_safe_tests::fixtures::recorded;
use rollout_safe_tests::harness::wait_until;
use rollout_safe_tests::{TestOptions, TestServer};
use serde_json::Value;

/// The recorded `/version` body (api-responses/13).
fn recorded_version() -> String {
    let text = rollout_safe_testkit::read_fixture("api-responses/13-version.txt");
    let resp = &text[text.find("### response").expect("a response section")..];
    let body = resp
        .split_once("\r\n\r\n")
        .or_else(|| resp.split_once("\n\n"))
        .expect("headers end")
        .1;
    body.trim().to_string()
}

/// The operations of a /mutate reply's patch.
fn patch_ops(reply: &Value) -> Vec<Value> {
    let Some(b64) = reply["response"]["patch"].as_str() else {
        return Vec::new();
    };
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64 patch");
    serde_json::from_slice(&bytes).expect("JSON Patch")
}

async fn mutate_bare_deployment(server: &TestServer) -> (Vec<Value>, Vec<String>) {
    let review = recorded("02-create-deployment-kubectl-create.mutating");
    let reply = server
        .client()
        .post("/mutate", review.bytes.clone())
        .await
        .expect("mutate")
        .json();
    let warnings = reply["response"]["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    (patch_ops(&reply), warnings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stand_in_api_version_is_learnt_and_unknown_injects_nothing_risky() {
    let home = tempfile::tempdir().expect("temp dir");
    // SAFETY: this test binary has a single test, and no other thread reads the environment yet.
    unsafe {
        std::env::set_var("HOME", home.path());
        std::env::set_var("KUBECONFIG", home.path().join("missing-kubeconfig"));
        std::env::remove_var("KUBERNETES_SERVICE_HOST");
    }

    // 1. Nothing to ask: unknown.
    let server = TestServer::start_with(TestOptions {
        kubernetes_version: None,
        ..Default::default()
    })
    .await;
    assert_eq!(server.state.server_info(), ServerInfo::UNKNOWN);
    let ready = plain_get(server.metrics_addr, "/readyz")
        .await
        .expect("readyz");
    assert!(
        ready.text().contains("kubernetes version: unknown"),
        "{}",
        ready.text()
    );
    assert_eq!(
        server.metric("rollout_safe_kubernetes_version_known").await,
        Some(0.0)
    );
    let (ops, warnings) = mutate_bare_deployment(&server).await;
    assert!(
        !ops.iter().any(|op| op.to_string().contains("preStop")),
        "no preStop injected while the version is unknown: {ops:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("RS201") && w.contains("version is unknown")),
        "{warnings:?}"
    );
    // The other fixes still apply (the grace period, history, the change-cause).
    assert!(!ops.is_empty(), "other mutations still happen");
    server.stop().await.expect("clean stop");

    // 2. A kubeconfig that works, without --cluster-lookups: the version is asked for.
    let version = recorded_version();
    let app = Router::new().route(
        "/version",
        get(move || {
            let v = version.clone();
            async move { ([("content-type", "application/json")], v) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let api = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let kubeconfig = home.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: old\n  cluster: {{server: \"http://{api}\"}}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context: {{cluster: old, user: u}}\ncurrent-context: c\n"
        ),
    )
    .expect("kubeconfig");
    // SAFETY: the only other threads are the runtime's, which do not read the environment.
    unsafe { std::env::set_var("KUBECONFIG", &kubeconfig) };
    let server = TestServer::start_with(TestOptions {
        kubernetes_version: None,
        ..Default::default()
    })
    .await;
    wait_until(
        Duration::from_secs(10),
        "the version to be discovered",
        || {
            let state = server.state.clone();
            async move { state.server_info().version.is_some() }
        },
    )
    .await;
    assert_eq!(server.state.server_info().version, Some((1, 24)));
    assert_eq!(
        server.metric("rollout_safe_kubernetes_version_known").await,
        Some(1.0)
    );
    let ready = plain_get(server.metrics_addr, "/readyz")
        .await
        .expect("readyz");
    assert!(
        ready.text().contains("kubernetes version: 1.24"),
        "{}",
        ready.text()
    );
    let (ops, warnings) = mutate_bare_deployment(&server).await;
    assert!(
        !ops.iter().any(|op| op.to_string().contains("\"sleep\"")),
        "no native sleep for 1.24: {ops:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("RS201") && w.contains("predates")),
        "{warnings:?}"
    );
    server.stop().await.expect("clean stop");
}
