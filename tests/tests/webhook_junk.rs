//! Malformed input, limits and the transport: every bad request gets a 4xx with a message
//! that says what is wrong, never a panic or a dropped connection.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use rollout_safe_tests::client::{self, HttpsClient};
use rollout_safe_tests::fixtures::recorded;
use rollout_safe_tests::harness::metric_value;
use rollout_safe_tests::{TestOptions, TestServer};
use serde_json::json;

fn review_02() -> serde_json::Value {
    recorded("02-create-deployment-kubectl-create.validating").review
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_gets_400_with_a_message() {
    let server = TestServer::start().await;
    let mut conn = server.client().connect().await.expect("connect");

    let mut v1beta1 = review_02();
    v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let mut wrong_kind = review_02();
    wrong_kind["kind"] = json!("Deployment");
    let mut no_request = review_02();
    no_request
        .as_object_mut()
        .expect("object")
        .remove("request");
    let mut bad_uid = review_02();
    bad_uid["request"]["uid"] = json!(42);

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "not JSON",
            b"this is not json".to_vec(),
            "not a JSON AdmissionReview",
        ),
        ("empty body", Vec::new(), "not a JSON AdmissionReview"),
        (
            "truncated",
            br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"#.to_vec(),
            "not a JSON AdmissionReview",
        ),
        (
            "JSON array",
            b"[1,2,3]".to_vec(),
            "not a JSON AdmissionReview",
        ),
        (
            "v1beta1",
            serde_json::to_vec(&v1beta1).expect("json"),
            "admission.k8s.io/v1beta1",
        ),
        (
            "wrong kind",
            serde_json::to_vec(&wrong_kind).expect("json"),
            "expected kind AdmissionReview, got \"Deployment\"",
        ),
        (
            "missing request",
            serde_json::to_vec(&no_request).expect("json"),
            "has no request",
        ),
        (
            "uid not a string",
            serde_json::to_vec(&bad_uid).expect("json"),
            "request.uid",
        ),
        (
            "other object",
            br#"{"apiVersion":"v1","kind":"Pod"}"#.to_vec(),
            "expected kind AdmissionReview, got \"Pod\"",
        ),
        (
            "invalid UTF-8",
            vec![0xff, 0xfe, b'{'],
            "not a JSON AdmissionReview",
        ),
    ];
    for path in ["/mutate", "/validate"] {
        for (what, body, needle) in &cases {
            let reply = conn
                .post(path, body.clone())
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(reply.status, 400, "{path} {what}: {}", reply.text());
            let text = reply.text();
            assert!(text.starts_with("rollout-safe: "), "{what}: {text}");
            assert!(
                text.contains(needle),
                "{path} {what}: {text:?} should mention {needle:?}"
            );
        }
    }
    // The same keep-alive connection still works after all that.
    let ok = conn
        .post("/validate", serde_json::to_vec(&review_02()).expect("json"))
        .await
        .expect("request");
    assert_eq!(ok.status, 200);
    let bad = server
        .metric(r#"rollout_safe_admission_requests_total{webhook="validate",operation="unknown",kind="unknown",decision="bad_request"}"#)
        .await;
    assert_eq!(bad, Some(cases.len() as f64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_body_gets_413_over_http1_and_http2() {
    let server = TestServer::start().await;
    let four_mib = Bytes::from(vec![b' '; 4 * 1024 * 1024]);
    for client in [server.client(), server.client().http2()] {
        let mut conn = client.connect().await.expect("connect");
        let reply = conn
            .post("/validate", four_mib.clone())
            .await
            .expect("answered, not reset");
        assert_eq!(reply.status, 413, "{}", reply.text());
        assert!(reply.text().contains("3 MiB"), "{}", reply.text());
        // Without a Content-Length (chunked / streamed), the limit still holds.
        let chunks: Vec<Bytes> = (0..8)
            .map(|_| Bytes::from(vec![b' '; 512 * 1024]))
            .collect();
        let mut conn = client.connect().await.expect("connect");
        let reply = conn
            .send(
                Method::POST,
                "/mutate",
                client::slow_body(chunks, Duration::ZERO),
            )
            .await
            .expect("answered");
        assert_eq!(reply.status, 413, "{}", reply.text());
    }
    // Exactly at the limit is read (and then rejected as JSON, not as too large).
    let mut at_limit = vec![b' '; rollout_safe_webhook::MAX_BODY_BYTES];
    at_limit[0] = b'x';
    let reply = server
        .client()
        .post("/validate", at_limit)
        .await
        .expect("answered");
    assert_eq!(reply.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_and_methods() {
    let server = TestServer::start().await;
    let client = server.client();
    let mut conn = client.connect().await.expect("connect");
    assert_eq!(conn.get("/healthz").await.expect("healthz").status, 200);
    assert_eq!(conn.get("/readyz").await.expect("readyz").status, 200);
    let nf = conn.get("/nope").await.expect("404");
    assert_eq!(nf.status, 404);
    assert!(nf.text().contains("/validate"), "{}", nf.text());
    assert_eq!(conn.get("/validate").await.expect("405").status, 405);
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = client::plain_get(server.metrics_addr, path)
            .await
            .expect(path);
        assert_eq!(r.status, 200, "metrics port {path}");
    }
    let metrics = client::plain_get(server.metrics_addr, "/metrics")
        .await
        .expect("metrics");
    assert!(
        metrics
            .content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/openmetrics-text"))
    );
    let expiry = metric_value(
        &metrics.text(),
        "rollout_safe_certificate_expiry_timestamp_seconds",
    );
    assert_eq!(
        expiry,
        Some(server.initial.not_after as f64),
        "cert expiry gauge"
    );
}

/// A client that stalls mid-body is answered 503 once the request timeout passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_request_times_out_with_503() {
    let server = TestServer::start_with(TestOptions {
        request_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let mut conn = server.client().connect().await.expect("connect");
    let body = serde_json::to_vec(&review_02()).expect("json");
    let chunks = vec![
        Bytes::copy_from_slice(&body[..100]),
        Bytes::copy_from_slice(&body[100..]),
    ];
    let started = Instant::now();
    let reply = conn
        .send(
            Method::POST,
            "/validate",
            client::slow_body(chunks, Duration::from_secs(2)),
        )
        .await
        .expect("answered");
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert!(
        reply.text().contains("did not complete within"),
        "{}",
        reply.text()
    );
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "answered after {:?}",
        started.elapsed()
    );
}

/// TLS 1.2 and 1.3 both work; plain HTTP on the TLS port does not get an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_versions() {
    let server = TestServer::start().await;
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let client = HttpsClient::with_versions(&server.ca.pem(), server.addr, &[version], false);
        let reply = client.get("/healthz").await.expect("TLS handshake");
        assert_eq!(reply.status, 200);
    }
    assert!(
        client::plain_get(server.addr, "/healthz").await.is_err(),
        "plain HTTP on the TLS port"
    );
    // Older versions: rustls has no code for them at all; check with openssl when present.
    let s_client = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &server.addr.to_string(), "-tls1_1"])
        .stdin(std::process::Stdio::null())
        .output();
    if let Ok(out) = s_client {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !out.status.success() || !text.contains("Protocol  : TLSv1.1"),
            "TLS 1.1 accepted:\n{text}"
        );
    }
}
