//! Reloading the certificate, key and policy files when they change.
//!
//! Polling rather than inotify: Kubernetes updates Secret and ConfigMap volumes by writing a new
//! timestamped directory and atomically swapping the `..data` symlink, which inotify watches on
//! the file path miss (the watched inode never changes). Reading a few kilobytes every couple of
//! seconds and comparing a content hash sees every kind of update (symlink swap, rename over,
//! in-place write) with no platform-specific code.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rollout_safe_policy::RolloutPolicy;

use crate::app::AppState;
use crate::metrics::WatchedFile;
use crate::tls::{self, ReloadableCert};

/// A change is applied only once the files read the same twice this far apart, so a writer
/// that replaces the certificate and then the key (not atomically) is not caught half-way.
const SETTLE: Duration = Duration::from_millis(200);

fn hash(parts: &[&[u8]]) -> u64 {
    let mut h = DefaultHasher::new();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}

/// One watched set of files: what was last applied, and what last failed (so a broken file is
/// logged and counted once, not on every poll).
#[derive(Debug, Default)]
struct Seen {
    applied: Option<u64>,
    failed: Option<u64>,
}

impl Seen {
    fn is_new(&self, h: u64) -> bool {
        Some(h) != self.applied && Some(h) != self.failed
    }
}

/// Polls the certificate/key pair and the policy file and swaps in new versions.
pub struct Reloader {
    state: AppState,
    cert: Arc<ReloadableCert>,
    cert_path: PathBuf,
    key_path: PathBuf,
    policy_path: Option<PathBuf>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    cert_seen: Seen,
    policy_seen: Seen,
}

async fn read(path: &Path) -> Result<Vec<u8>, String> {
    tokio::fs::read(path)
        .await
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

impl Reloader {
    /// `cert_bytes`/`policy_bytes` are the contents loaded at startup, so the first poll does
    /// not reload them again.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        state: AppState,
        cert: Arc<ReloadableCert>,
        cert_path: PathBuf,
        key_path: PathBuf,
        policy_path: Option<PathBuf>,
        provider: Arc<rustls::crypto::CryptoProvider>,
        cert_bytes: (&[u8], &[u8]),
        policy_bytes: Option<&[u8]>,
    ) -> Self {
        Reloader {
            state,
            cert,
            cert_path,
            key_path,
            policy_path,
            provider,
            cert_seen: Seen {
                applied: Some(hash(&[cert_bytes.0, cert_bytes.1])),
                failed: None,
            },
            policy_seen: Seen {
                applied: policy_bytes.map(|b| hash(&[b])),
                failed: None,
            },
        }
    }

    /// Polls forever; the server aborts this task on shutdown.
    pub async fn run(mut self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate; startup just loaded everything
        loop {
            tick.tick().await;
            self.poll_once().await;
        }
    }

    /// One round: reload whatever changed. Public so tests can drive it without waiting.
    pub async fn poll_once(&mut self) {
        self.poll_cert().await;
        self.poll_policy().await;
    }

    async fn read_cert_pair(&self) -> Result<(Vec<u8>, Vec<u8>), String> {
        Ok((read(&self.cert_path).await?, read(&self.key_path).await?))
    }

    async fn poll_cert(&mut self) {
        let metrics = self.state.metrics();
        let first = self.read_cert_pair().await;
        let h = match &first {
            Ok((c, k)) => hash(&[c, k]),
            Err(e) => hash(&[e.as_bytes()]),
        };
        if !self.cert_seen.is_new(h) {
            return;
        }
        tokio::time::sleep(SETTLE).await;
        let second = self.read_cert_pair().await;
        let h2 = match &second {
            Ok((c, k)) => hash(&[c, k]),
            Err(e) => hash(&[e.as_bytes()]),
        };
        if h2 != h {
            // Still being written: look again at the next poll.
            return;
        }
        let loaded = second
            .and_then(|(c, k)| tls::load_pem(&c, &k, &self.provider).map_err(|e| e.to_string()));
        match loaded {
            Ok(cert) => {
                tracing::info!(
                    serial = %cert.info.serial_hex(),
                    not_after = cert.info.not_after,
                    "serving certificate reloaded"
                );
                metrics.set_certificate_expiry(cert.info.not_after);
                metrics.reloaded(WatchedFile::Certificate);
                self.cert.replace(cert);
                self.cert_seen = Seen {
                    applied: Some(h),
                    failed: None,
                };
            }
            Err(e) => {
                tracing::error!(
                    cert = %self.cert_path.display(),
                    key = %self.key_path.display(),
                    error = %e,
                    "new certificate/key not loaded; still serving the previous one"
                );
                metrics.reload_failure(WatchedFile::Certificate);
                self.cert_seen.failed = Some(h);
            }
        }
    }

    async fn poll_policy(&mut self) {
        let Some(path) = self.policy_path.clone() else {
            return;
        };
        let metrics = self.state.metrics();
        let first = read(&path).await;
        let h = match &first {
            Ok(b) => hash(&[b]),
            Err(e) => hash(&[e.as_bytes()]),
        };
        if !self.policy_seen.is_new(h) {
            return;
        }
        let loaded = first.and_then(|bytes| {
            let text =
                String::from_utf8(bytes).map_err(|_| "policy file is not UTF-8".to_string())?;
            RolloutPolicy::from_yaml(&text).map_err(|e| e.to_string())
        });
        match loaded {
            Ok(policy) => {
                tracing::info!(path = %path.display(), name = %policy.name, "policy reloaded");
                metrics.reloaded(WatchedFile::Policy);
                self.state.set_policy(policy);
                self.policy_seen = Seen {
                    applied: Some(h),
                    failed: None,
                };
            }
            Err(e) => {
                tracing::error!(
                    path = %path.display(),
                    error = %e,
                    "new policy not loaded; the previous policy stays in force"
                );
                metrics.reload_failure(WatchedFile::Policy);
                self.policy_seen.failed = Some(h);
            }
        }
    }
}
