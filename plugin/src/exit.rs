//! Exit codes, and an error that carries one.

use std::fmt;

/// The plugin's exit codes (documented in `--help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    /// The rollout failed (and was rolled back unless --no-rollback).
    RolloutFailed = 1,
    /// Bad input or usage.
    Usage = 2,
    /// Policy violations (audit, or an update refused by the pre-flight check).
    Violations = 3,
    /// Timed out.
    Timeout = 4,
    /// Cluster or API error.
    Cluster = 5,
}

/// An error that ends the command with a given exit code. Context goes in the message.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn new(exit: Exit, error: impl Into<anyhow::Error>) -> Self {
        Failure {
            exit,
            error: error.into(),
        }
    }

    pub fn usage(msg: impl fmt::Display) -> Self {
        Failure::new(Exit::Usage, anyhow::anyhow!("{msg}"))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    /// Anything unclassified is a cluster/API error unless it says otherwise.
    fn from(e: E) -> Self {
        Failure::new(Exit::Cluster, e)
    }
}

pub type CmdResult = Result<Exit, Failure>;
