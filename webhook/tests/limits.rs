//! The admission concurrency limit: bodies are only read by `max_in_flight` requests at once,
//! so many concurrent large uploads cannot all be buffered; the others wait for a slot (within
//! the request deadline). A request that times out is answered 503 and counted as
//! `decision="timeout"`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::Request;
use rollout_safe_policy::RolloutPolicy;
use rollout_safe_webhook::{AppOptions, AppState, Metrics, router};
use tokio::sync::mpsc;
use tower::ServiceExt;

/// A body that yields nothing until its sender sends or is dropped (then it ends).
fn held_body() -> (mpsc::Sender<Result<Bytes, std::io::Error>>, Body) {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    (tx, body)
}

fn post(path: &str, body: Body) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(body)
        .expect("request")
}

#[tokio::test]
async fn bodies_are_read_one_slot_at_a_time_and_timeouts_are_counted() {
    let state = AppState::new(
        RolloutPolicy::default(),
        None,
        Metrics::new(),
        AppOptions {
            request_timeout: Duration::from_millis(1000),
            max_in_flight: 1,
            ..Default::default()
        },
    );
    let app = router(state.clone());

    // Takes the only slot with a body that does not end yet.
    let (hold, stalled) = held_body();
    let first = tokio::spawn(app.clone().oneshot(post("/validate", stalled)));
    tokio::time::sleep(Duration::from_millis(50)).await;

    // A complete body behind it is not even polled while the slot is taken.
    let body_read = Arc::new(AtomicBool::new(false));
    let flag = body_read.clone();
    let second_body = Body::from_stream(futures::stream::once(async move {
        flag.store(true, Ordering::SeqCst);
        Ok::<_, std::io::Error>(Bytes::from_static(b"{}"))
    }));
    let second = tokio::spawn(app.clone().oneshot(post("/mutate", second_body)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "the second request did not wait");
    assert!(
        !body_read.load(Ordering::SeqCst),
        "the second body was read while the only slot was taken"
    );

    // The first upload ends (empty: 400); the second gets the slot and is read.
    drop(hold);
    let first = first.await.expect("task").expect("infallible");
    assert_eq!(first.status(), 400);
    let second = second.await.expect("task").expect("infallible");
    assert_eq!(second.status(), 400);
    assert!(body_read.load(Ordering::SeqCst));

    // A body that never ends runs into the deadline: 503, counted as a timeout.
    let (_hold, stalled) = held_body();
    let third = app
        .clone()
        .oneshot(post("/validate", stalled))
        .await
        .expect("infallible");
    assert_eq!(third.status(), 503);
    let text = state.metrics().encode();
    let series = r#"rollout_safe_admission_requests_total{webhook="validate",operation="unknown",kind="unknown",decision="timeout"} 1"#;
    assert!(text.contains(series), "{series} missing:\n{text}");
}
