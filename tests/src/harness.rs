//! The real webhook server, in-process, on ephemeral loopback ports, with its certificate and
//! policy laid out the way the kubelet mounts Secret and ConfigMap volumes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rollout_safe_webhook::{AppState, ServeArgs, ServeError, Server};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::certs::{Issued, TestCa};
use crate::client::{self, HttpsClient};

/// How to start the server under test.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// RolloutPolicy YAML (default: none, the built-in policy).
    pub policy: Option<String>,
    /// `--kubernetes-version`; set by default so no test ever tries to discover a cluster.
    pub kubernetes_version: Option<String>,
    pub request_timeout: Duration,
    pub reload_interval: Duration,
    pub drain_timeout: Duration,
    pub fail_open: bool,
    /// `--cluster-lookups` (the test must point KUBECONFIG at an API server).
    pub cluster_lookups: bool,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            policy: None,
            kubernetes_version: Some("1.33".into()),
            request_timeout: Duration::from_secs(4),
            reload_interval: Duration::from_millis(200),
            drain_timeout: Duration::from_secs(5),
            fail_open: false,
            cluster_lookups: false,
        }
    }
}

/// A running webhook. Dropping it leaves the server task to die with the test's runtime;
/// [`TestServer::stop`] shuts it down gracefully and returns its result.
pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub ca: TestCa,
    pub state: AppState,
    pub dir: TempDir,
    /// The certificate served at startup (serial 1).
    pub initial: Issued,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), ServeError>>,
}

static GENERATION: AtomicU32 = AtomicU32::new(0);

/// Writes `files` the way the kubelet updates a Secret/ConfigMap volume: into a new hidden
/// directory, then an atomic rename of the `..data` symlink onto it; the visible names are
/// symlinks through `..data`. Readers never see a mix of old and new files.
pub fn atomic_write(dir: &Path, files: &[(&str, &[u8])]) {
    std::fs::create_dir_all(dir).expect("volume dir");
    let generation = format!("..gen{}", GENERATION.fetch_add(1, Ordering::Relaxed));
    let target = dir.join(&generation);
    std::fs::create_dir(&target).expect("generation dir");
    for (name, bytes) in files {
        std::fs::write(target.join(name), bytes).expect("write volume file");
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&generation, &tmp).expect("symlink ..data_tmp");
    let old = std::fs::read_link(dir.join("..data")).ok();
    std::fs::rename(&tmp, dir.join("..data")).expect("swap ..data");
    for (name, _) in files {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(name), &link)
                .expect("file symlink");
        }
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(TestOptions::default()).await
    }

    pub async fn start_with(opts: TestOptions) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = TestCa::new();
        let initial = ca.issue(1, 2031);
        atomic_write(
            &dir.path().join("tls"),
            &[
                ("tls.crt", initial.cert_pem.as_bytes()),
                ("tls.key", initial.key_pem.as_bytes()),
            ],
        );
        let mut args = ServeArgs::new(
            dir.path().join("tls/tls.crt"),
            dir.path().join("tls/tls.key"),
        );
        args.server.addr = "127.0.0.1:0".parse().expect("addr");
        args.server.metrics_addr = "127.0.0.1:0".parse().expect("addr");
        args.server.request_timeout = opts.request_timeout;
        args.server.reload_interval = opts.reload_interval;
        args.server.drain_timeout = opts.drain_timeout;
        args.policy.fail_open = opts.fail_open;
        args.cluster.kubernetes_version = opts.kubernetes_version.clone();
        args.cluster.cluster_lookups = opts.cluster_lookups;
        if let Some(policy) = &opts.policy {
            atomic_write(
                &dir.path().join("policy"),
                &[("policy.yaml", policy.as_bytes())],
            );
            args.policy.policy = Some(dir.path().join("policy/policy.yaml"));
        }
        let server = Server::bind(args).await.expect("webhook server starts");
        let addr = server.local_addr();
        let metrics_addr = server.metrics_addr();
        let state = server.state().clone();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            metrics_addr,
            ca,
            state,
            dir,
            initial,
            shutdown: Some(tx),
            handle,
        }
    }

    /// An HTTP/1.1 client trusting this server's CA.
    pub fn client(&self) -> HttpsClient {
        HttpsClient::new(&self.ca.pem(), self.addr)
    }

    pub fn tls_dir(&self) -> PathBuf {
        self.dir.path().join("tls")
    }

    /// Rotates the certificate files the way cert-manager + the kubelet do.
    pub fn rotate_cert(&self, issued: &Issued) {
        atomic_write(
            &self.tls_dir(),
            &[
                ("tls.crt", issued.cert_pem.as_bytes()),
                ("tls.key", issued.key_pem.as_bytes()),
            ],
        );
    }

    /// Replaces the certificate/key contents with arbitrary bytes (to test bad rotations).
    pub fn write_cert_files(&self, cert: &[u8], key: &[u8]) {
        atomic_write(&self.tls_dir(), &[("tls.crt", cert), ("tls.key", key)]);
    }

    /// Replaces the policy file (the server must have been started with a policy).
    pub fn write_policy(&self, yaml: &str) {
        atomic_write(
            &self.dir.path().join("policy"),
            &[("policy.yaml", yaml.as_bytes())],
        );
    }

    /// The metrics text.
    pub async fn metrics(&self) -> String {
        let reply = client::plain_get(self.metrics_addr, "/metrics")
            .await
            .expect("GET /metrics");
        assert!(reply.status.is_success(), "/metrics: {}", reply.status);
        reply.text()
    }

    /// The value of the series starting with `series` (name and labels as printed), if any.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.metrics().await, series)
    }

    /// Graceful shutdown; returns what `Server::run` returned.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.handle.await.expect("server task")
    }
}

/// The value of the first line of `text` that starts with `series` followed by a space.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .and_then(|v| v.trim().parse().ok())
}

/// Polls `check` every 50 ms until it is true, panicking with `what` after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
