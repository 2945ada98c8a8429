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

use clap::Args;
use rollout_safe_policy::RolloutPolicy;

use crate::app::AppState;
use crate::error::ServeError;
use crate::metrics::WatchedFile;
use crate::tls::{self, ReloadableCert};

#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// RolloutPolicy YAML file (default: the built-in policy). Reloaded when it changes; a bad
    /// new version is logged and counted, and the last good one stays in force.
    #[arg(long, env = "ROLLOUT_SAFE_POLICY", value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// When the webhook cannot reach a decision (an internal error), allow the request with a
    /// warning instead of answering 500 (which the API server turns into failurePolicy).
    #[arg(long, env = "ROLLOUT_SAFE_FAIL_OPEN")]
    pub fail_open: bool,
}

/// A change (certificate/key pair or policy) is applied only once the files read the same
/// twice this far apart, so a writer that replaces the certificate and then the key (not
/// atomically), or a policy being written in place, is not caught half-way.
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

/// Reads a whole file; the one file reader of the crate (startup and reloads).
pub(crate) async fn read_file(path: &Path) -> Result<Vec<u8>, ServeError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| ServeError::Read {
            path: path.to_path_buf(),
            source,
        })
}

/// What one read of a watched set of files gave: every file's bytes, or the first error.
type Contents = Result<Vec<Vec<u8>>, String>;

async fn read_all(paths: &[&Path]) -> Contents {
    let mut out = Vec::with_capacity(paths.len());
    for p in paths {
        out.push(read_file(p).await.map_err(|e| e.to_string())?);
    }
    Ok(out)
}

fn hash_contents(c: &Contents) -> u64 {
    match c {
        Ok(files) => hash(&files.iter().map(Vec::as_slice).collect::<Vec<_>>()),
        Err(e) => hash(&[e.as_bytes()]),
    }
}

/// The one change detector for every watched set of files: `None` when the files are what
/// was last applied or last failed, or when they are still changing (they must read the same
/// twice [`SETTLE`] apart, so a non-atomic writer is not caught half-way: the next poll looks
/// again); otherwise the settled contents and their hash.
async fn settled_change(paths: &[&Path], seen: &Seen) -> Option<(u64, Contents)> {
    let first = read_all(paths).await;
    let h = hash_contents(&first);
    if !seen.is_new(h) {
        return None;
    }
    tokio::time::sleep(SETTLE).await;
    let second = read_all(paths).await;
    (hash_contents(&second) == h).then_some((h, second))
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
        self.state.poll_done();
    }

    async fn poll_cert(&mut self) {
        let metrics = self.state.metrics();
        let paths = [self.cert_path.as_path(), self.key_path.as_path()];
        let Some((h, contents)) = settled_change(&paths, &self.cert_seen).await else {
            return;
        };
        let loaded = contents.and_then(|files| {
            tls::load_pem(&files[0], &files[1], &self.provider).map_err(|e| e.to_string())
        });
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
        let Some((h, contents)) = settled_change(&[path.as_path()], &self.policy_seen).await else {
            return;
        };
        let loaded = contents.and_then(|mut files| {
            let text = String::from_utf8(files.swap_remove(0))
                .map_err(|_| "policy file is not UTF-8".to_string())?;
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
