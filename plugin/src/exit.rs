//! Exit codes, and the one place where how a command ended becomes one.

use crate::error::{Error, Refused};

/// The plugin's exit codes (documented in `--help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    /// The rollout failed (and was rolled back unless --no-rollback).
    RolloutFailed = 1,
    /// Bad input or usage.
    Usage = 2,
    /// Policy violations (audit, or a write refused by the pre-flight check or by admission).
    Violations = 3,
    /// Timed out, or interrupted with Ctrl-C.
    Timeout = 4,
    /// Cluster or API error, the kubeconfig included (no file, unknown context).
    Cluster = 5,
}

/// How a command ended when it did not fail with an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done: rolled out, nothing to do, or paused (it rolls out on resume).
    Succeeded,
    /// The rollout (or a step of it) failed.
    RolloutFailed,
    /// kubectl cannot report rollout status for the workload (an `OnDelete` strategy).
    NoRolloutStatus,
    TimedOut,
    /// Ctrl-C: the command stopped, the cluster goes on.
    Interrupted,
    /// `audit`: findings at or above the fail level.
    Violations,
    /// `audit`, `plan`: some input could not be read (the rest was still reported).
    UnreadableInput,
}

/// The exit code of a command's result: the one mapping.
pub fn exit_code(result: &Result<Outcome, Error>) -> Exit {
    match result {
        Ok(outcome) => match outcome {
            Outcome::Succeeded => Exit::Success,
            Outcome::RolloutFailed => Exit::RolloutFailed,
            Outcome::NoRolloutStatus | Outcome::UnreadableInput => Exit::Usage,
            Outcome::Violations => Exit::Violations,
            Outcome::TimedOut | Outcome::Interrupted => Exit::Timeout,
        },
        Err(e) => error_exit(e),
    }
}

fn error_exit(e: &Error) -> Exit {
    match e {
        Error::Usage(_)
        | Error::PolicyUnreadable { .. }
        | Error::PolicyInvalid { .. }
        | Error::Edit(_)
        | Error::Sibling(_)
        | Error::GitopsOwned(_)
        | Error::BlueGreen { .. }
        | Error::Canary { .. }
        | Error::Export { .. }
        | Error::GateSyntax(_)
        | Error::Prometheus(_)
        | Error::GateQueryRefused { .. }
        | Error::GateQueryUnusable { .. }
        | Error::GateRecord { .. } => Exit::Usage,
        Error::GateRefused {
            inconclusive: false,
            ..
        } => Exit::RolloutFailed,
        Error::GateRefused {
            inconclusive: true, ..
        } => Exit::Timeout,
        Error::Violations { .. } => Exit::Violations,
        Error::Conflict(_) | Error::RolloutFailed(_) => Exit::RolloutFailed,
        Error::ApiStatus { op, refused, .. } => match refused {
            Refused::AdmissionDenied => Exit::Violations,
            Refused::Invalid if op.user_input => Exit::Usage,
            _ => Exit::Cluster,
        },
        Error::ApiUnreachable { .. }
        | Error::Kubeconfig(_)
        | Error::NoCurrentContext
        | Error::UnknownContext { .. }
        | Error::NoKubeconfig { .. }
        | Error::Client { .. }
        | Error::KeepsChanging { .. }
        | Error::NoResourceVersion { .. }
        | Error::Selector { .. }
        | Error::Deleted { .. }
        | Error::WatchesEnded { .. }
        | Error::Encode { .. }
        | Error::Runtime(_)
        | Error::Stdout(_) => Exit::Cluster,
        Error::Reported(inner) => error_exit(inner),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiOp;
    use rollout_safe_policy::strategy::canary::CanaryRefusal;

    fn op(user_input: bool) -> ApiOp {
        ApiOp {
            verb: "patch",
            resource: "deployments.apps",
            name: Some("web".into()),
            namespace: "shop".into(),
            server: "https://127.0.0.1:6443/".into(),
            user_input,
        }
    }

    fn status(refused: Refused, user_input: bool) -> Result<Outcome, Error> {
        Err(Error::ApiStatus {
            op: Box::new(op(user_input)),
            refused,
            message: String::new(),
        })
    }

    #[test]
    fn the_documented_codes() {
        assert_eq!(exit_code(&Ok(Outcome::Succeeded)), Exit::Success);
        assert_eq!(exit_code(&Ok(Outcome::RolloutFailed)), Exit::RolloutFailed);
        assert_eq!(exit_code(&Ok(Outcome::NoRolloutStatus)), Exit::Usage);
        assert_eq!(exit_code(&Ok(Outcome::TimedOut)), Exit::Timeout);
        assert_eq!(exit_code(&Ok(Outcome::Interrupted)), Exit::Timeout);
        assert_eq!(exit_code(&Ok(Outcome::Violations)), Exit::Violations);
        assert_eq!(exit_code(&Ok(Outcome::UnreadableInput)), Exit::Usage);
        assert_eq!(exit_code(&Err(Error::usage("x"))), Exit::Usage);
        assert_eq!(
            exit_code(&Err(Error::Violations {
                action: "update deployment/web".into(),
                enforced: 1
            })),
            Exit::Violations
        );
        assert_eq!(exit_code(&status(Refused::NotFound, false)), Exit::Cluster);
        assert_eq!(exit_code(&status(Refused::Forbidden, true)), Exit::Cluster);
        assert_eq!(
            exit_code(&status(Refused::AdmissionDenied, false)),
            Exit::Violations
        );
        assert_eq!(exit_code(&status(Refused::Invalid, true)), Exit::Usage);
        assert_eq!(exit_code(&status(Refused::Invalid, false)), Exit::Cluster);
        assert_eq!(
            exit_code(&Err(Error::RolloutFailed("x".into()))),
            Exit::RolloutFailed
        );
        assert_eq!(
            exit_code(&Err(Error::Deleted {
                workload: "deployment/web".into(),
                context: ""
            })),
            Exit::Cluster
        );
        assert_eq!(
            exit_code(&Err(Error::canary(CanaryRefusal::NoSteps, None))),
            Exit::Usage
        );
        assert_eq!(
            exit_code(&Err(Error::GateRefused {
                action: "finish".into(),
                why: "gate errors fails".into(),
                hint: None,
                inconclusive: false
            })),
            Exit::RolloutFailed
        );
        assert_eq!(
            exit_code(&Err(Error::GateRefused {
                action: "finish".into(),
                why: "no answer".into(),
                hint: None,
                inconclusive: true
            })),
            Exit::Timeout
        );
        let reported = Error::Reported(Box::new(Error::Violations {
            action: "x".into(),
            enforced: 2,
        }));
        assert_eq!(exit_code(&Err(reported)), Exit::Violations);
    }
}
