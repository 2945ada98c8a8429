//! SIGTERM under load, against the real binary: the listener closes at once, requests in
//! flight (slow uploads, mid-body when the signal arrives) complete normally, and the process
//! exits 0. Here rather than in tests/ because `CARGO_BIN_EXE_*` exists only for a package's
//! own binaries.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use rollout_safe_testkit::ChildGuard;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

const IN_FLIGHT: usize = 4;
const CHUNKS: usize = 10;
const PAUSE: Duration = Duration::from_millis(150);

fn review() -> (Vec<u8>, String) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/admission-reviews/02-create-deployment-kubectl-create.validating.json"
    );
    let bytes = std::fs::read(path)
        .unwrap_or_else(|e| panic!("recorded review missing: {path}: {e} (tests/fixtures/admission-reviews, copied from a real kube-apiserver)"));
    let v: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
    let uid = v["request"]["uid"].as_str().expect("uid").to_string();
    (bytes, uid)
}

/// CA + serving certificate for localhost/127.0.0.1, written to `dir`; returns the CA PEM.
fn write_certs(dir: &std::path::Path) -> String {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "sigterm test CA");
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let ca_cert = ca.self_signed(&ca_key).expect("CA");
    let leaf =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("params");
    let leaf_key = rcgen::KeyPair::generate().expect("key");
    let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).expect("leaf");
    std::fs::write(dir.join("tls.crt"), leaf_cert.pem()).expect("write cert");
    std::fs::write(dir.join("tls.key"), leaf_key.serialize_pem()).expect("write key");
    ca_cert.pem()
}

fn tls_connector(ca_pem: &str) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.expect("pem")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// POSTs `body` in [`CHUNKS`] pieces, [`PAUSE`] apart; returns (status, response body).
/// `started` is signalled once the TLS handshake is done and hyper has taken the first chunk
/// (when it asks for the second), i.e. the request is really mid-body on the server.
async fn slow_post(
    connector: tokio_rustls::TlsConnector,
    addr: SocketAddr,
    body: Vec<u8>,
    started: tokio::sync::mpsc::Sender<()>,
) -> Result<(u16, String), Box<dyn std::error::Error + Send + Sync>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = connector
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let size = body.len().div_ceil(CHUNKS);
    let chunks: Vec<Bytes> = body.chunks(size).map(Bytes::copy_from_slice).collect();
    let stream = futures::stream::unfold(
        (chunks.into_iter(), 0usize, Some(started)),
        |(mut it, sent, mut started)| async move {
            if sent == 1
                && let Some(tx) = started.take()
            {
                let _ = tx.send(()).await;
            }
            let chunk = it.next()?;
            tokio::time::sleep(PAUSE).await;
            Some((
                Ok::<_, std::convert::Infallible>(Frame::data(chunk)),
                (it, sent + 1, started),
            ))
        },
    );
    let req = hyper::Request::post("/validate")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(StreamBody::new(stream))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let text = String::from_utf8_lossy(&resp.into_body().collect().await?.to_bytes()).into_owned();
    Ok((status, text))
}

struct Running {
    /// Killed on drop, so a failing assertion never leaves the server running.
    child: ChildGuard,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Running {
    /// Waits for the log line announcing the HTTPS address.
    fn addr(&mut self) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) else {
                if let Ok(Some(status)) = self.child.child_mut().try_wait() {
                    panic!("webhook exited early ({status}):\n{}", self.log.join("\n"));
                }
                continue;
            };
            self.log.push(line.clone());
            if line.contains("rollout-safe-webhook serving") {
                let addr = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("addr="))
                    .expect("addr= in the serving line");
                return addr.parse().expect("socket address");
            }
        }
        panic!("webhook did not start:\n{}", self.log.join("\n"));
    }

    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            while let Ok(line) = self.lines.try_recv() {
                self.log.push(line);
            }
            if let Some(status) = self.child.child_mut().try_wait().expect("wait") {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.log.push(line);
                }
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "webhook did not exit within {within:?}:\n{}",
                    self.log.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_requests_and_exits_zero() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca_pem = write_certs(dir.path());
    let child = Command::new(env!("CARGO_BIN_EXE_rollout-safe-webhook"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-format",
            "text",
        ])
        .arg("--tls-cert")
        .arg(dir.path().join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.path().join("tls.key"))
        .args(["--kubernetes-version", "1.33", "--drain-timeout", "10s"])
        .env("ROLLOUT_SAFE_LOG", "info")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rollout-safe-webhook");
    let mut child = ChildGuard::new(child);
    let stderr = child.child_mut().stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut running = Running {
        child,
        lines: rx,
        log: Vec::new(),
    };
    let addr = running.addr();
    let connector = tls_connector(&ca_pem);
    let (body, uid) = review();

    let started = Instant::now();
    let (mid_body_tx, mut mid_body) = tokio::sync::mpsc::channel(IN_FLIGHT);
    let requests: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            tokio::spawn(slow_post(
                connector.clone(),
                addr,
                body.clone(),
                mid_body_tx.clone(),
            ))
        })
        .collect();
    drop(mid_body_tx);
    // Signal once every upload is mid-body (handshake done, first chunk sent).
    for i in 0..IN_FLIGHT {
        tokio::time::timeout(Duration::from_secs(10), mid_body.recv())
            .await
            .unwrap_or_else(|_| panic!("upload {i} did not start within 10 s"))
            .unwrap_or_else(|| panic!("an upload ended before sending its first chunk"));
    }
    running
        .child
        .signal(libc::SIGTERM)
        .expect("SIGTERM to the webhook");

    // The listener closes at once: new connections are refused while the old ones drain.
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "new connections still accepted 5 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    for r in requests {
        let (status, text) = r.await.expect("task").expect("in-flight request completed");
        assert_eq!(status, 200, "{text}");
        let review: serde_json::Value = serde_json::from_str(&text).expect("AdmissionReview");
        assert_eq!(review["response"]["uid"].as_str(), Some(uid.as_str()));
        assert_eq!(
            review["response"]["allowed"], false,
            "the usual decision, not a shutdown error"
        );
    }
    assert!(
        started.elapsed() >= PAUSE * CHUNKS as u32,
        "the requests really were slow ({:?})",
        started.elapsed()
    );

    let status = running.wait_exit(Duration::from_secs(15));
    let log = running.log.join("\n");
    assert_eq!(status.code(), Some(0), "exit status {status}\n{log}");
    assert!(log.contains("SIGTERM received"), "{log}");
    assert!(log.contains("drained"), "{log}");
}

#[test]
fn bad_certificate_path_fails_startup_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_rollout-safe-webhook"))
        .args([
            "serve",
            "--tls-cert",
            "/nonexistent/tls.crt",
            "--tls-key",
            "/nonexistent/tls.key",
        ])
        .args(["--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/tls.crt"), "{stderr}");
}

#[test]
fn bad_policy_fails_startup_with_line_and_column() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_certs(dir.path());
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\nspec:\n  rules:\n    RS101: sometimes\n",
    )
    .expect("write policy");
    let out = Command::new(env!("CARGO_BIN_EXE_rollout-safe-webhook"))
        .arg("serve")
        .arg("--tls-cert")
        .arg(dir.path().join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.path().join("tls.key"))
        .arg("--policy")
        .arg(&policy)
        .args(["--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("policy.yaml"), "{stderr}");
    assert!(
        stderr.contains("line 5"),
        "the error has the line: {stderr}"
    );
}

#[test]
fn every_flag_has_an_environment_variable() {
    let out = Command::new(env!("CARGO_BIN_EXE_rollout-safe-webhook"))
        .args(["serve", "--help"])
        .output()
        .expect("run");
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "ROLLOUT_SAFE_TLS_CERT",
        "ROLLOUT_SAFE_TLS_KEY",
        "ROLLOUT_SAFE_ADDR",
        "ROLLOUT_SAFE_METRICS_ADDR",
        "ROLLOUT_SAFE_POLICY",
        "ROLLOUT_SAFE_LOG_FORMAT",
        "ROLLOUT_SAFE_KUBERNETES_VERSION",
        "ROLLOUT_SAFE_CLUSTER_LOOKUPS",
        "ROLLOUT_SAFE_REQUEST_TIMEOUT",
        "ROLLOUT_SAFE_DRAIN_TIMEOUT",
        "ROLLOUT_SAFE_RELOAD_INTERVAL",
        "ROLLOUT_SAFE_FAIL_OPEN",
    ] {
        assert!(
            help.contains(var),
            "{var} missing from serve --help:\n{help}"
        );
    }
}
