//! The judge's answer: where a rollout stands, and why it failed.

use std::fmt;

use k8s_openapi::jiff::Timestamp;

use crate::rule::WorkloadKind;

/// Why a rollout failed (or, in [`PodProblem`], what is wrong with a pod).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureReason {
    /// The Deployment's `Progressing` condition says `ProgressDeadlineExceeded`.
    ProgressDeadlineExceeded,
    /// The Deployment's `ReplicaFailure` condition is true (pods cannot be created).
    ReplicaFailure,
    /// A container is waiting in `CreateContainerConfigError` (missing ConfigMap/Secret key, …).
    CreateContainerConfigError,
    /// A container is waiting in `InvalidImageName`.
    InvalidImageName,
    /// A container is waiting in `ErrImagePull`, `ImagePullBackOff` or `ErrImageNeverPull`.
    ImagePull,
    /// A container is waiting in `CreateContainerError` or `RunContainerError`.
    CreateContainerError,
    /// A container is waiting in `CrashLoopBackOff`.
    CrashLoopBackOff,
    /// A container restarted more than `max_restarts` times and is not ready.
    TooManyRestarts,
    /// A container has been running but not ready for longer than the readiness budget.
    NeverReady,
    /// A pod cannot be scheduled (reported as a problem; never fails on its own).
    Unschedulable,
    /// A metric gate failed `--gate-failures` checks in a row (`strategy::gates`).
    MetricGate,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProgressDeadlineExceeded => "ProgressDeadlineExceeded",
            Self::ReplicaFailure => "ReplicaFailure",
            Self::CreateContainerConfigError => "CreateContainerConfigError",
            Self::InvalidImageName => "InvalidImageName",
            Self::ImagePull => "ImagePull",
            Self::CreateContainerError => "CreateContainerError",
            Self::CrashLoopBackOff => "CrashLoopBackOff",
            Self::TooManyRestarts => "TooManyRestarts",
            Self::NeverReady => "NeverReady",
            Self::Unschedulable => "Unschedulable",
            Self::MetricGate => "MetricGate",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something wrong with one pod of the new revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodProblem {
    pub pod: String,
    pub container: Option<String>,
    pub reason: FailureReason,
    pub message: String,
    /// When the condition began, as far as the objects tell (second resolution).
    pub since: Option<Timestamp>,
    /// When it is (or will be) a failure: `since` for waiting reasons,
    /// `since + readiness budget` for [`FailureReason::NeverReady`], `None`
    /// for problems that never fail on their own.
    pub fails_at: Option<Timestamp>,
    /// `fails_at <= now`.
    pub fatal: bool,
}

/// A Kubernetes event, summarised for a failure report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventNote {
    /// `Normal` or `Warning`.
    pub type_: String,
    pub reason: String,
    /// `Kind/name` of the involved object.
    pub object: String,
    pub message: String,
    pub count: i32,
    pub last_seen: Option<Timestamp>,
}

impl fmt::Display for EventNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(t) = self.last_seen {
            write!(f, "{t} ")?;
        }
        write!(
            f,
            "{} {} {}: {}",
            self.type_, self.reason, self.object, self.message
        )?;
        if self.count > 1 {
            write!(f, " (x{})", self.count)?;
        }
        Ok(())
    }
}

/// Where a rollout stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// `None` until the workload has been observed.
    pub kind: Option<WorkloadKind>,
    pub name: String,
    /// Desired replicas (`spec.replicas`; `desiredNumberScheduled` for a DaemonSet).
    pub desired: i32,
    /// Replicas of the new revision (`status.updatedReplicas`, …).
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    /// All non-terminated replicas (`status.replicas`).
    pub total: i32,
    /// `total - updated`, at least 0.
    pub old_replicas: i32,
    /// Pods of old revisions still present, terminating ones included.
    pub old_pods: usize,
    /// Pods of this workload that are terminating.
    pub terminating_pods: usize,
    /// The new revision (`deployment.kubernetes.io/revision` of the new
    /// ReplicaSet or Deployment; `updateRevision` for a StatefulSet; the
    /// template generation for a DaemonSet).
    pub new_revision: Option<String>,
    /// The new ReplicaSet of a Deployment.
    pub new_replica_set: Option<String>,
    /// The controller has observed the current generation.
    pub observed: bool,
    pub paused: bool,
    /// kubectl-style one-line status.
    pub message: String,
    /// Problems of pods of the new revision, fatal or not yet.
    pub problems: Vec<PodProblem>,
    /// Judge again at this time even without a new watch event: a readiness
    /// budget runs out then.
    pub recheck_at: Option<Timestamp>,
}

/// Why a rollout failed, with the evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: FailureReason,
    /// The failing pod (the one whose failure began first).
    pub pod: Option<String>,
    pub container: Option<String>,
    pub message: String,
    /// Recent events about the failing pods, the new ReplicaSet and the workload, oldest first.
    pub events: Vec<EventNote>,
    /// When the first failing signal appeared, from object timestamps (second
    /// resolution, never after `now`): see [`failure_started_at`].
    pub first_seen: Option<Timestamp>,
    /// All pods of the new revision that are failing, sorted.
    pub failing_pods: Vec<String>,
    pub progress: Progress,
}

/// The judge's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Still rolling out (or waiting for the controller).
    Progressing(Progress),
    /// A paused Deployment that has not completed: not a failure, but it will
    /// not progress until resumed.
    Paused(Progress),
    /// Done, by kubectl's definition.
    Complete(Progress),
    Failed(Box<Failure>),
    /// kubectl cannot report rollout status for this workload (an `OnDelete`
    /// update strategy).
    Unsupported(Progress),
}

impl Verdict {
    pub fn progress(&self) -> &Progress {
        match self {
            Self::Progressing(p) | Self::Paused(p) | Self::Complete(p) | Self::Unsupported(p) => p,
            Self::Failed(f) => &f.progress,
        }
    }

    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Self::Failed(f) => Some(f),
            _ => None,
        }
    }

    pub fn is_complete(&self) -> bool {
        matches!(self, Self::Complete(_))
    }

    pub fn is_failed(&self) -> bool {
        matches!(self, Self::Failed(_))
    }

    /// When to judge again if no watch event arrives before then.
    pub fn recheck_at(&self) -> Option<Timestamp> {
        match self {
            Self::Progressing(p) | Self::Paused(p) => p.recheck_at,
            _ => None,
        }
    }

    /// Short name of the variant: `Progressing`, `Paused`, `Complete`, `Failed`, `Unsupported`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Progressing(_) => "Progressing",
            Self::Paused(_) => "Paused",
            Self::Complete(_) => "Complete",
            Self::Failed(_) => "Failed",
            Self::Unsupported(_) => "Unsupported",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(fail) => write!(f, "Failed ({}): {}", fail.reason, fail.message),
            other => write!(f, "{}: {}", other.label(), other.progress().message),
        }
    }
}

/// When the first failing signal of a failed rollout appeared (from object
/// timestamps; `None` if not failed or unknown). The plugin measures "first
/// failing pod → rollback started" from this.
pub fn failure_started_at(verdict: &Verdict) -> Option<Timestamp> {
    verdict.failure().and_then(|f| f.first_seen)
}
