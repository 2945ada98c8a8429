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
    assert_eq!(
        server
            .metric(r#"rollout_safe_admission_requests_total{webhook="validate",operation="unknown",kind="unknown",decision="timeout"}"#)
            .await,
        Some(1.0),
        "the timed-out request is counted"
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
    // Older versions: rustls has no code for them at all. A hand-made TLS 1.1 ClientHello
    // (no supported_versions extension) must not get a ServerHello back: a fatal alert, or
    // the connection closed. No openssl needed, so this cannot
    // pass just because the local openssl refuses TLS 1.1 itself.
    let reply = tokio::task::spawn_blocking(move || tls11_client_hello(server.addr))
        .await
        .expect("task");
    assert!(
        reply.first() != Some(&0x16),
        "the server answered a TLS 1.1 ClientHello with a handshake record: {reply:02x?}"
    );
    if reply.first() == Some(&0x15) {
        // rustls answers handshake_failure (40); protocol_version (70) would do as well.
        assert!(
            matches!(reply.get(5..7), Some([2, 40 | 70])),
            "expected a fatal handshake_failure/protocol_version alert: {reply:02x?}"
        );
    }
}

/// Sends a TLS 1.1-only ClientHello and returns whatever the server sends back (up to EOF,
/// 64 bytes or 5 s).
fn tls11_client_hello(addr: std::net::SocketAddr) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut hello = vec![0x03, 0x02]; // client_version TLS 1.1
    hello.extend_from_slice(&[0x42; 32]); // random
    hello.push(0); // no session id
    // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, TLS_RSA_WITH_AES_128_CBC_SHA
    hello.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]);
    hello.extend_from_slice(&[0x01, 0x00]); // null compression only
    let mut handshake = vec![0x01, 0, 0, hello.len() as u8];
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x02, 0, handshake.len() as u8];
    record.extend_from_slice(&handshake);

    let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    tcp.write_all(&record).expect("send ClientHello");
    let mut reply = Vec::new();
    let mut buf = [0u8; 64];
    while reply.len() < 64 {
        match tcp.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
        }
    }
    reply
}
