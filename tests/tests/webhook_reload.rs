//! Certificate rotation under concurrent load, bad rotations, and policy reloads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use rollout_safe_tests::fixtures::recorded;
use rollout_safe_tests::harness::wait_until;
use rollout_safe_tests::{TestOptions, TestServer};
use rollout_safe_webhook::x509;

const WORKERS: usize = 8;
/// Each worker opens a new connection after this many requests, so handshakes happen all
/// through the rotation while other connections stay open across it.
const REQUESTS_PER_CONN: usize = 25;

#[derive(Default)]
struct Load {
    ok: AtomicUsize,
    failed: AtomicUsize,
    handshakes: AtomicUsize,
    stop: AtomicBool,
    errors: std::sync::Mutex<Vec<String>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_under_load_fails_no_request() {
    let server = TestServer::start().await;
    let client = server.client();
    let body = recorded("01-create-deployment-apply.validating").bytes;
    let load = Arc::new(Load::default());

    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (client, body, load) = (client.clone(), body.clone(), load.clone());
        workers.push(tokio::spawn(async move {
            while !load.stop.load(Ordering::Relaxed) {
                let mut conn = match client.connect().await {
                    Ok(c) => c,
                    Err(e) => {
                        load.failed.fetch_add(1, Ordering::Relaxed);
                        load.errors
                            .lock()
                            .expect("lock")
                            .push(format!("connect: {e}"));
                        continue;
                    }
                };
                load.handshakes.fetch_add(1, Ordering::Relaxed);
                for _ in 0..REQUESTS_PER_CONN {
                    match conn.post("/validate", body.clone()).await {
                        Ok(r) if r.status == 200 => {
                            load.ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => {
                            load.failed.fetch_add(1, Ordering::Relaxed);
                            load.errors.lock().expect("lock").push(format!(
                                "{}: {}",
                                r.status,
                                r.text()
                            ));
                        }
                        Err(e) => {
                            load.failed.fetch_add(1, Ordering::Relaxed);
                            load.errors
                                .lock()
                                .expect("lock")
                                .push(format!("request: {e}"));
                            break;
                        }
                    }
                }
            }
        }));
    }

    // Let the load run on the first certificate, then rotate (new key, same CA) mid-load.
    wait_until(Duration::from_secs(10), "load to start", || async {
        load.ok.load(Ordering::Relaxed) > 200
    })
    .await;
    let next = server.ca.issue(2, 2033);
    server.rotate_cert(&next);

    // New connections see the new certificate soon after.
    let client2 = server.client();
    let next_der = next.der.clone();
    wait_until(
        Duration::from_secs(10),
        "the new certificate on new connections",
        || {
            let (client2, next_der) = (client2.clone(), next_der.clone());
            async move {
                client2
                    .connect()
                    .await
                    .is_ok_and(|c| c.peer_cert == next_der)
            }
        },
    )
    .await;
    // Keep the load going a little on the new certificate, then stop.
    let before = load.ok.load(Ordering::Relaxed);
    wait_until(
        Duration::from_secs(10),
        "load on the new certificate",
        || async { load.ok.load(Ordering::Relaxed) > before + 200 },
    )
    .await;
    load.stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }

    let failed = load.failed.load(Ordering::Relaxed);
    let errors = load.errors.lock().expect("lock").clone();
    assert_eq!(failed, 0, "failed requests during rotation: {errors:?}");
    assert!(
        load.handshakes.load(Ordering::Relaxed) > WORKERS * 2,
        "connections were opened during the test"
    );
    eprintln!(
        "rotation under load: {} requests, {} connections, 0 failures",
        load.ok.load(Ordering::Relaxed),
        load.handshakes.load(Ordering::Relaxed)
    );

    let conn = server.client().connect().await.expect("connect");
    assert_eq!(conn.peer_cert, next.der, "the new certificate is served");
    let serial = x509::parse(&conn.peer_cert)
        .expect("peer certificate")
        .serial_hex();
    assert_eq!(
        serial.trim_start_matches('0'),
        "2",
        "serial of the new certificate"
    );
    assert_eq!(
        server
            .metric("rollout_safe_certificate_expiry_timestamp_seconds")
            .await,
        Some(next.not_after as f64),
        "expiry gauge follows the new certificate"
    );
    assert_eq!(
        server
            .metric(r#"rollout_safe_reloads_total{file="certificate"}"#)
            .await,
        Some(1.0)
    );
    assert_eq!(
        server
            .metric(r#"rollout_safe_reload_failures_total{file="certificate"}"#)
            .await,
        None,
        "an atomic ..data swap is never seen half-written"
    );
    server.stop().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificate_keeps_the_old_one() {
    let server = TestServer::start().await;
    let other = server.ca.issue(3, 2032);
    let cases: [(&[u8], &[u8]); 3] = [
        (b"not a certificate", server.initial.key_pem.as_bytes()),
        // A certificate with someone else's key.
        (other.cert_pem.as_bytes(), server.initial.key_pem.as_bytes()),
        (
            server.initial.cert_pem.as_bytes(),
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ),
    ];
    for (i, (cert, key)) in cases.iter().enumerate() {
        server.write_cert_files(cert, key);
        let want = (i + 1) as f64;
        wait_until(
            Duration::from_secs(10),
            "the reload failure to be counted",
            || async {
                server
                    .metric(r#"rollout_safe_reload_failures_total{file="certificate"}"#)
                    .await
                    == Some(want)
            },
        )
        .await;
        let conn = server.client().connect().await.expect("still serving");
        assert_eq!(
            conn.peer_cert, server.initial.der,
            "the old certificate is still served"
        );
    }
    // A broken file is counted once, not on every poll: let two more polls demonstrably run.
    polls_pass(&server, 2).await;
    assert_eq!(
        server
            .metric(r#"rollout_safe_reload_failures_total{file="certificate"}"#)
            .await,
        Some(3.0)
    );
    // Fixing the files is picked up.
    server.rotate_cert(&other);
    wait_until(Duration::from_secs(10), "the fixed certificate", || async {
        server
            .client()
            .connect()
            .await
            .is_ok_and(|c| c.peer_cert == other.der)
    })
    .await;
}

/// Waits until `n` more reload polls have completed (instead of sleeping and hoping).
async fn polls_pass(server: &TestServer, n: u64) {
    let target = server.state.reload_polls() + n;
    wait_until(Duration::from_secs(10), "more reload polls", || async {
        server.state.reload_polls() >= target
    })
    .await;
}

const POLICY_WARN: &str = "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\nmetadata: {name: lenient}\nspec:\n  rules:\n    RS101: warn\n";
const POLICY_ENFORCE: &str = "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\nmetadata: {name: strict}\nspec:\n  rules:\n    RS101: enforce\n";
const POLICY_BAD: &str = "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\nmetadata: {name: broken}\nspec:\n  rules:\n    RS101: sometimes\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_reload_and_bad_policy_keeps_the_last_good_one() {
    let server = TestServer::start_with(TestOptions {
        policy: Some(POLICY_WARN.into()),
        ..Default::default()
    })
    .await;
    let client = server.client();
    let body = recorded("02-create-deployment-kubectl-create.validating").bytes;
    let allowed = |client: rollout_safe_tests::HttpsClient, body: Vec<u8>| async move {
        let reply = client.post("/validate", body).await.expect("request");
        reply.json()["response"]["allowed"]
            .as_bool()
            .expect("allowed")
    };
    assert!(
        allowed(client.clone(), body.clone()).await,
        "RS101 is only a warning at first"
    );

    server.write_policy(POLICY_ENFORCE);
    wait_until(Duration::from_secs(10), "the stricter policy", || {
        let (client, body) = (client.clone(), body.clone());
        async move { !allowed(client, body).await }
    })
    .await;
    assert_eq!(server.state.policy().name, "strict");

    server.write_policy(POLICY_BAD);
    wait_until(
        Duration::from_secs(10),
        "the bad policy to be counted",
        || async {
            server
                .metric(r#"rollout_safe_reload_failures_total{file="policy"}"#)
                .await
                == Some(1.0)
        },
    )
    .await;
    polls_pass(&server, 2).await;
    assert_eq!(
        server
            .metric(r#"rollout_safe_reload_failures_total{file="policy"}"#)
            .await,
        Some(1.0),
        "counted once"
    );
    assert_eq!(
        server.state.policy().name,
        "strict",
        "the last good policy stays in force"
    );
    assert!(!allowed(client.clone(), body.clone()).await);
    let ready = client.get("/readyz").await.expect("readyz");
    assert_eq!(
        ready.status, 200,
        "a bad reload does not make the pod unready"
    );

    server.write_policy(POLICY_WARN);
    wait_until(Duration::from_secs(10), "the fixed policy", || {
        let (client, body) = (client.clone(), body.clone());
        async move { allowed(client, body).await }
    })
    .await;
}
