//! `--cluster-lookups` end to end against a fake Kubernetes API (plain HTTP on loopback, reached
//! through KUBECONFIG): the server discovers the API version, its watch-fed caches sync, RS602
//! follows pods appearing through the watch, and nothing is listed per admission request.
//! Alone in its test binary because it sets KUBECONFIG for the process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use rollout_safe_tests::fixtures::recorded;
use rollout_safe_tests::harness::wait_until;
use rollout_safe_tests::{TestOptions, TestServer};
use serde_json::{Value, json};
use tokio::sync::broadcast;

#[derive(Clone)]
struct Fake {
    pod_events: broadcast::Sender<Value>,
    lists: Arc<AtomicUsize>,
}

fn is_watch(uri: &Uri) -> bool {
    uri.query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"))
}

fn list(kind: &str, api_version: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": api_version, "kind": format!("{kind}List"), "metadata": {"resourceVersion": "1"}, "items": items})
}

fn pod(name: &str, track: &str, ready: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "resourceVersion": "2",
                     "labels": {"app": "web", "track": track}},
        "spec": {"containers": [{"name": "web", "image": "shop/web:1"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    })
}

/// A watch response: JSON lines from `events`, held open.
fn watch_stream(events: Option<broadcast::Receiver<Value>>) -> Response {
    let stream = futures::stream::unfold(events, |rx| async move {
        let mut rx = match rx {
            Some(rx) => rx,
            None => std::future::pending().await,
        };
        loop {
            match rx.recv().await {
                Ok(obj) => {
                    let mut line =
                        serde_json::to_vec(&json!({"type": "ADDED", "object": obj})).ok()?;
                    line.push(b'\n');
                    return Some((Ok::<_, std::convert::Infallible>(line), Some(rx)));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    });
    (
        [("content-type", "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn pods(State(fake): State<Fake>, uri: Uri) -> Response {
    if is_watch(&uri) {
        return watch_stream(Some(fake.pod_events.subscribe()));
    }
    fake.lists.fetch_add(1, Ordering::SeqCst);
    axum::Json(list("Pod", "v1", vec![pod("web-blue-1", "blue", true)])).into_response()
}

async fn pdbs(State(fake): State<Fake>, uri: Uri) -> Response {
    if is_watch(&uri) {
        return watch_stream(None);
    }
    fake.lists.fetch_add(1, Ordering::SeqCst);
    axum::Json(list("PodDisruptionBudget", "policy/v1", vec![])).into_response()
}

async fn hpas(State(fake): State<Fake>, uri: Uri) -> Response {
    if is_watch(&uri) {
        return watch_stream(None);
    }
    fake.lists.fetch_add(1, Ordering::SeqCst);
    axum::Json(list("HorizontalPodAutoscaler", "autoscaling/v2", vec![])).into_response()
}

async fn version() -> axum::Json<Value> {
    axum::Json(json!({
        "major": "1", "minor": "29", "gitVersion": "v1.29.3", "gitCommit": "0", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.21", "compiler": "gc", "platform": "linux/amd64"
    }))
}

async fn start_fake() -> (SocketAddr, Fake) {
    let fake = Fake {
        pod_events: broadcast::channel(16).0,
        lists: Arc::new(AtomicUsize::new(0)),
    };
    let app = Router::new()
        .route("/version", get(version))
        .route("/api/v1/pods", get(pods))
        .route("/apis/policy/v1/poddisruptionbudgets", get(pdbs))
        .route("/apis/autoscaling/v2/horizontalpodautoscalers", get(hpas))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, fake)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_lookups_follow_the_watch() {
    let (api, fake) = start_fake().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"http://{api}\"}}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context: {{cluster: fake, user: u}}\ncurrent-context: c\n"
        ),
    )
    .expect("kubeconfig");
    // SAFETY: this test binary has a single test, and no other thread reads the environment yet.
    unsafe {
        std::env::set_var("KUBECONFIG", &kubeconfig);
        std::env::remove_var("KUBERNETES_SERVICE_HOST");
    }

    let server = TestServer::start_with(TestOptions {
        kubernetes_version: None,
        cluster_lookups: true,
        ..Default::default()
    })
    .await;
    for resource in ["pods", "poddisruptionbudgets", "horizontalpodautoscalers"] {
        let series = format!(r#"rollout_safe_cluster_cache_ready{{resource="{resource}"}}"#);
        wait_until(
            Duration::from_secs(20),
            &format!("{resource} cache to sync"),
            || {
                let (server, series) = (&server, series.clone());
                async move { server.metric(&series).await == Some(1.0) }
            },
        )
        .await;
    }
    let lists_after_sync = fake.lists.load(Ordering::SeqCst);

    // Discovery found 1.29: no native sleep, and exec is not allowed by default, so RS201 is a
    // warning rather than a patch.
    assert!(
        server.state.server_info().native_sleep() == Some(false),
        "v1.29.3 discovered"
    );
    let client = server.client();
    let m = recorded("02-create-deployment-kubectl-create.mutating");
    let resp = client
        .post("/mutate", m.bytes.clone())
        .await
        .expect("mutate")
        .json();
    let patch = base64::engine::general_purpose::STANDARD
        .decode(resp["response"]["patch"].as_str().expect("patch"))
        .expect("base64");
    assert!(
        !String::from_utf8_lossy(&patch).contains("preStop"),
        "no preStop on 1.29"
    );
    assert!(
        resp["response"]["warnings"][0]
            .as_str()
            .is_some_and(|w| w.starts_with("RS201"))
    );

    // Only blue pods: switching the Service to green is denied.
    let switch = recorded("10-update-service-selector-switch.validating");
    let resp = client
        .post("/validate", switch.bytes.clone())
        .await
        .expect("validate")
        .json();
    assert_eq!(resp["response"]["allowed"], false, "{resp}");
    assert!(
        resp["response"]["status"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("RS602"))
    );

    // A ready green pod arrives through the watch: the same switch is now allowed.
    let labels = &switch.review["request"]["object"]["spec"]["selector"];
    let mut green = pod("web-green-1", "green", true);
    green["metadata"]["labels"] = labels.clone();
    wait_until(
        Duration::from_secs(10),
        "the green pod to reach the cache",
        || {
            let (client, body, fake, green) = (
                client.clone(),
                switch.bytes.clone(),
                fake.clone(),
                green.clone(),
            );
            async move {
                let _ = fake.pod_events.send(green);
                let resp = client
                    .post("/validate", body)
                    .await
                    .expect("validate")
                    .json();
                resp["response"]["allowed"] == true
            }
        },
    )
    .await;
    assert_eq!(
        fake.lists.load(Ordering::SeqCst),
        lists_after_sync,
        "admission requests never list from the API server"
    );
}
