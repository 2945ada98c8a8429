//! Runs a binary (the plugin) as a test would from a shell: arguments, environment, stdin, a
//! timeout, Ctrl-C once it is watching or has said something; output collected as it comes so a
//! test can wait for a line while it runs. Every process is held in a
//! [`rollout_safe_testkit::ChildGuard`], so a failing test never leaves one running.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rollout_safe_testkit::ChildGuard;
use serde_json::Value;

use crate::server::{Shared, request_count, watched_since};

/// How long a run may take unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(90);

/// Why a run did not give an outcome.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot run {}: {source}", program.display())]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("`{label}`: cannot {what}: {source}")]
    Io {
        label: String,
        what: &'static str,
        source: std::io::Error,
    },
    #[error(
        "`{label}` did not finish within {after:?} and was killed\n--- stdout\n{stdout}--- stderr\n{stderr}"
    )]
    TimedOut {
        label: String,
        after: Duration,
        stdout: String,
        stderr: String,
    },
    #[error(
        "`{label}` did not print {needle:?} on stderr within {after:?}\n--- stderr so far\n{stderr}"
    )]
    NotSeen {
        label: String,
        needle: String,
        after: Duration,
        stderr: String,
    },
    #[error("`{label}` did not start watching within {after:?}\n--- stderr so far\n{stderr}")]
    NotWatching {
        label: String,
        after: Duration,
        stderr: String,
    },
    #[error("`{label}`: waiting for a watch needs a runner from `Standin::plugin`")]
    NoStandin { label: String },
}

/// What to give the process on stdin.
#[derive(Debug, Clone, Default)]
pub enum Stdin {
    /// `/dev/null`.
    #[default]
    Null,
    /// These bytes, then end of file.
    Bytes(Vec<u8>),
    /// A pipe the test writes to with [`Running::write_stdin`].
    Open,
}

/// When to send Ctrl-C (SIGINT) during [`Plugin::run_with`].
#[derive(Debug, Clone)]
pub enum Interrupt {
    /// Once a watch request has reached the stand-in (its Ctrl-C handler is installed by
    /// then), plus `after`.
    WhenWatching { after: Duration },
    /// Once `needle` appeared on stderr, plus `after`.
    WhenStderr { needle: String, after: Duration },
}

/// The options of [`Plugin::run_with`].
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub stdin: Stdin,
    pub interrupt: Option<Interrupt>,
}

/// A binary and how to run it.
#[derive(Clone)]
pub struct Plugin {
    program: PathBuf,
    leading_args: Vec<OsString>,
    envs: Vec<(OsString, Option<OsString>)>,
    timeout: Duration,
    standin: Option<Arc<Shared>>,
}

impl Plugin {
    pub fn new(program: impl AsRef<Path>) -> Plugin {
        Plugin {
            program: program.as_ref().to_path_buf(),
            leading_args: Vec::new(),
            envs: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            standin: None,
        }
    }

    /// An argument every run starts with.
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Plugin {
        self.leading_args.push(a.as_ref().to_owned());
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Plugin {
        self.envs
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Plugin {
        self.envs.push((key.as_ref().to_owned(), None));
        self
    }

    /// How long a run may take before it is killed ([`DEFAULT_TIMEOUT`] unless set).
    pub fn timeout(mut self, limit: Duration) -> Plugin {
        self.timeout = limit;
        self
    }

    pub(crate) fn watched_by(mut self, shared: Arc<Shared>) -> Plugin {
        self.standin = Some(shared);
        self
    }

    /// Runs to the end with no stdin.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Run, RunError> {
        self.run_with(args, RunOptions::default())
    }

    /// Runs to the end with `options`.
    pub fn run_with<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        options: RunOptions,
    ) -> Result<Run, RunError> {
        let running = self.spawn_with(args, options.stdin)?;
        match options.interrupt {
            None => {}
            Some(Interrupt::WhenWatching { after }) => {
                running.wait_watching(self.timeout)?;
                std::thread::sleep(after);
                running.interrupt()?;
            }
            Some(Interrupt::WhenStderr { needle, after }) => {
                running.wait_stderr(&needle, self.timeout)?;
                std::thread::sleep(after);
                running.interrupt()?;
            }
        }
        running.finish()
    }

    /// Starts a run in the background with no stdin.
    pub fn spawn<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Running, RunError> {
        self.spawn_with(args, Stdin::Null)
    }

    pub fn spawn_with<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        stdin: Stdin,
    ) -> Result<Running, RunError> {
        let args: Vec<OsString> = args.iter().map(|a| a.as_ref().to_owned()).collect();
        let label = std::iter::once(self.program.file_name().unwrap_or_default().to_owned())
            .chain(args.iter().cloned())
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.leading_args).args(&args);
        for (k, v) in &self.envs {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.stdin(match stdin {
            Stdin::Null => Stdio::null(),
            Stdin::Bytes(_) | Stdin::Open => Stdio::piped(),
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let requests_before = self.standin.as_deref().map_or(0, request_count);
        let child = cmd.spawn().map_err(|source| RunError::Spawn {
            program: self.program.clone(),
            source,
        })?;
        let mut guard = ChildGuard::new(child);
        let io = |what: &'static str, label: &str| {
            let label = label.to_owned();
            move |source| RunError::Io {
                label,
                what,
                source,
            }
        };
        let not_piped = || std::io::Error::other("the pipe was not set up");
        let stderr_pipe = guard
            .child_mut()
            .stderr
            .take()
            .ok_or_else(not_piped)
            .map_err(io("read stderr", &label))?;
        let mut stdout_pipe = guard
            .child_mut()
            .stdout
            .take()
            .ok_or_else(not_piped)
            .map_err(io("read stdout", &label))?;
        let mut stdin_pipe = guard.child_mut().stdin.take();
        if let Stdin::Bytes(bytes) = stdin
            && let Some(mut pipe) = stdin_pipe.take()
        {
            // A writer thread, so a process that does not read cannot block the test.
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            let mut pipe = BufReader::new(stderr_pipe);
            let mut line = Vec::new();
            while pipe.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push_str(&String::from_utf8_lossy(&line));
                line.clear();
            }
        });
        let stdout_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stdout_pipe.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        });
        Ok(Running {
            guard,
            label,
            stdin: stdin_pipe,
            stderr,
            stderr_reader: Some(stderr_reader),
            stdout_reader: Some(stdout_reader),
            timeout: self.timeout,
            standin: self.standin.clone(),
            requests_before,
        })
    }
}

/// A run under way. Dropping it kills the process.
pub struct Running {
    guard: ChildGuard,
    label: String,
    stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
    stdout_reader: Option<JoinHandle<String>>,
    timeout: Duration,
    standin: Option<Arc<Shared>>,
    requests_before: usize,
}

impl Running {
    /// What it printed on stderr so far.
    pub fn stderr_so_far(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits (up to `limit`) until it printed `needle` on stderr: the marker of the phase a
    /// test wants to act in.
    pub fn wait_stderr(&self, needle: &str, limit: Duration) -> Result<(), RunError> {
        let start = Instant::now();
        while !self.stderr_so_far().contains(needle) {
            if start.elapsed() > limit {
                return Err(RunError::NotSeen {
                    label: self.label.clone(),
                    needle: needle.to_owned(),
                    after: limit,
                    stderr: self.stderr_so_far(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Waits (up to `limit`) until a watch request from this run reached the stand-in.
    pub fn wait_watching(&self, limit: Duration) -> Result<(), RunError> {
        let Some(shared) = &self.standin else {
            return Err(RunError::NoStandin {
                label: self.label.clone(),
            });
        };
        let start = Instant::now();
        while !watched_since(shared, self.requests_before) {
            if start.elapsed() > limit {
                return Err(RunError::NotWatching {
                    label: self.label.clone(),
                    after: limit,
                    stderr: self.stderr_so_far(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Ctrl-C, as a terminal sends it.
    pub fn interrupt(&self) -> Result<(), RunError> {
        self.guard
            .signal(libc::SIGINT)
            .map_err(|source| RunError::Io {
                label: self.label.clone(),
                what: "send SIGINT",
                source,
            })
    }

    /// Writes to its stdin (started with [`Stdin::Open`]).
    pub fn write_stdin(&mut self, bytes: &[u8]) -> Result<(), RunError> {
        let result = match self.stdin.as_mut() {
            Some(pipe) => pipe.write_all(bytes).and_then(|()| pipe.flush()),
            None => Err(std::io::Error::other(
                "stdin is not an open pipe (spawn with Stdin::Open)",
            )),
        };
        result.map_err(|source| RunError::Io {
            label: self.label.clone(),
            what: "write to stdin",
            source,
        })
    }

    /// Closes its stdin.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for it to end (killing it after the runner's timeout) and returns what it did.
    pub fn finish(mut self) -> Result<Run, RunError> {
        self.stdin = None;
        let status = self.guard.wait_timeout(self.timeout);
        let stdout = self
            .stdout_reader
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        if let Some(t) = self.stderr_reader.take() {
            let _ = t.join();
        }
        let stderr = self.stderr_so_far();
        let Some(status) = status else {
            return Err(RunError::TimedOut {
                label: self.label.clone(),
                after: self.timeout,
                stdout,
                stderr,
            });
        };
        let run = Run {
            label: self.label.clone(),
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
        };
        eprintln!(
            "$ {}\n--- exit {}\n--- stdout\n{}--- stderr\n{}",
            run.label, run.code, run.stdout, run.stderr
        );
        Ok(run)
    }
}

/// What a run printed and returned.
#[derive(Debug, Clone)]
pub struct Run {
    /// The command line, for messages.
    pub label: String,
    /// The exit code (-1 when a signal ended it).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts the exit code, showing the output when it differs.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "`{}` exited {} (want {code})\n--- stdout\n{}--- stderr\n{}",
            self.label, self.code, self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn assert_stderr_has(&self, needle: &str) -> &Run {
        assert!(
            self.stderr.contains(needle),
            "`{}`: no {needle:?} on stderr:\n{}",
            self.label,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn assert_stderr_lacks(&self, needle: &str) -> &Run {
        assert!(
            !self.stderr.contains(needle),
            "`{}`: {needle:?} on stderr:\n{}",
            self.label,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn assert_stdout_has(&self, needle: &str) -> &Run {
        assert!(
            self.stdout.contains(needle),
            "`{}`: no {needle:?} on stdout:\n{}",
            self.label,
            self.stdout
        );
        self
    }

    /// Stdout as JSON.
    pub fn json(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.stdout)
    }
}
