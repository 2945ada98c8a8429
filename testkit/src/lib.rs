//! Test support shared by every crate of the workspace. Std only, so even the pure policy
//! crate can take it as a dev-dependency.
//!
//! - [`fixture`]: the recorded AdmissionReviews, rollouts and API exchanges committed under
//!   `tests/fixtures/`, so a plain clone passes its own tests.
//! - [`corpus_dir`]: the real-world manifests in `../shared/corpus`, which are other projects'
//!   files and never committed: tests over them call [`skip`] when they are absent.
//! - [`skip`]: says a test skipped itself, on stderr and in `$ROLLOUT_SAFE_SKIP_LOG`, which
//!   `scripts/test` prints at the end (cargo's harness has no runtime skip).
//! - [`ChildGuard`]: a child process that is killed when the guard drops, so a failing test
//!   never leaves a server running.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives one level below the workspace root")
        .to_path_buf()
}

/// `tests/fixtures/<rel>`: recordings from a real kube-apiserver, committed with the code.
pub fn fixture(rel: &str) -> PathBuf {
    workspace_dir().join("tests/fixtures").join(rel)
}

/// The text of [`fixture`]`(rel)`; panics naming the file when it cannot be read.
pub fn read_fixture(rel: &str) -> String {
    let path = fixture(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the fixture {}: {e} (fixtures are committed under tests/fixtures)",
            path.display()
        )
    })
}

/// The real-world corpus: `$ROLLOUT_SAFE_CORPUS`, else `../shared/corpus` beside the
/// workspace; `None` when neither is a directory.
pub fn corpus_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("ROLLOUT_SAFE_CORPUS") {
        Some(d) => PathBuf::from(d),
        None => workspace_dir().join("../shared/corpus"),
    };
    dir.is_dir().then_some(dir)
}

/// The corpus, or a [`skip`] of `test` saying it is absent.
pub fn corpus_or_skip(test: &str) -> Option<PathBuf> {
    let dir = corpus_dir();
    if dir.is_none() {
        skip(
            test,
            "no corpus: ../shared/corpus (or $ROLLOUT_SAFE_CORPUS) is not a directory; the corpus is other projects' files and is not committed",
        );
    }
    dir
}

/// Reports that `test` skipped itself and why: on stderr, and as a line appended to the
/// file named by `$ROLLOUT_SAFE_SKIP_LOG` when it is set.
pub fn skip(test: &str, why: &str) {
    let line = format!("skipped: {test}: {why}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("ROLLOUT_SAFE_SKIP_LOG")
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    {
        // One write per line, so concurrent tests never interleave inside a line.
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
}

/// Every `.yaml`, `.yml` and `.json` file below `dir`, sorted, links not followed.
pub fn manifest_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
        entries.sort();
        for p in entries {
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                walk(&p, out);
            } else if meta.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                )
            {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

/// A child process that is killed (SIGKILL) and reaped when dropped, unless it was waited for.
/// Use it for every server or plugin a test starts: a panicking assertion then cannot leave the
/// process running after the test binary exits.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    pub fn new(child: Child) -> Self {
        ChildGuard { child: Some(child) }
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The child, for its pipes.
    pub fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("the child is still guarded")
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`, `libc::SIGINT`) to the child.
    pub fn signal(&self, signal: i32) -> std::io::Result<()> {
        let pid = libc::pid_t::try_from(self.id()).map_err(std::io::Error::other)?;
        // SAFETY: kill(2) with a pid we spawned and still hold (not yet reaped).
        if unsafe { libc::kill(pid, signal) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Waits for the child to exit, for at most `limit`; on timeout it is killed and `None`
    /// returned.
    pub fn wait_timeout(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            match self.child_mut().try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if start.elapsed() < limit => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    self.kill();
                    return None;
                }
            }
        }
    }

    /// Takes the child out of the guard (it is then the caller's to reap).
    pub fn into_inner(mut self) -> Child {
        self.child.take().expect("the child is still guarded")
    }

    fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut()
            && matches!(child.try_wait(), Ok(None))
        {
            self.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn a_dropped_guard_kills_its_child() {
        let guard = ChildGuard::new(
            Command::new("sleep")
                .arg("30")
                .stdout(Stdio::null())
                .spawn()
                .expect("sleep runs"),
        );
        let pid = guard.id() as libc::pid_t;
        drop(guard);
        // Reaped by the guard: the pid no longer names a process of ours.
        // SAFETY: signal 0 only checks for existence.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive, "the child outlived its guard");
    }

    #[test]
    fn wait_timeout_kills_a_hung_child() {
        let mut guard = ChildGuard::new(Command::new("sleep").arg("30").spawn().unwrap());
        assert!(guard.wait_timeout(Duration::from_millis(100)).is_none());
        let mut quick = ChildGuard::new(Command::new("true").spawn().unwrap());
        assert!(
            quick
                .wait_timeout(Duration::from_secs(10))
                .unwrap()
                .success()
        );
    }

    #[test]
    fn fixtures_are_committed() {
        assert!(fixture("admission-reviews").is_dir());
        assert!(fixture("rollouts").is_dir());
        assert!(fixture("api-responses").is_dir());
        assert!(read_fixture("api-responses/13-version.txt").contains("gitVersion"));
    }
}
