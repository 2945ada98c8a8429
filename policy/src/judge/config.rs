//! The judge's tunables, and the names the workload controllers use.

use std::time::Duration;

use crate::workload::Workload;

/// Annotation the deployment controller puts on a Deployment and its ReplicaSets.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// Label the deployment controller adds to ReplicaSets and their pods.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// Label the StatefulSet/DaemonSet controllers add to their pods.
pub const CONTROLLER_REVISION_HASH_LABEL: &str = "controller-revision-hash";
/// Annotation the API server keeps on a DaemonSet: the generation of its template.
pub const DAEMONSET_TEMPLATE_GENERATION_ANNOTATION: &str =
    "deprecated.daemonset.template.generation";
/// Label the DaemonSet controller puts on its pods: the template generation they were made from.
pub const DAEMONSET_TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// Reason of the `Progressing` condition once the progress deadline has passed.
pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
/// How many events a [`RolloutState`] keeps by default (the most recent ones).
pub const DEFAULT_MAX_EVENTS: usize = 256;
/// How many events a [`Failure`] quotes at most.
pub const MAX_FAILURE_EVENTS: usize = 10;
/// Readiness budget when neither the config nor the workload gives one.
pub const DEFAULT_READINESS_BUDGET: Duration = Duration::from_secs(120);

/// Tunables of the judge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JudgeConfig {
    /// A container of a new pod that restarted more than this many times and
    /// is not ready is a failure ([`FailureReason::TooManyRestarts`]).
    pub max_restarts: i32,
    /// A container of a new pod that is running but not ready for longer than
    /// this is a failure ([`FailureReason::NeverReady`]). `None`: the
    /// Deployment's `progressDeadlineSeconds`, else
    /// [`DEFAULT_READINESS_BUDGET`] (see [`JudgeConfig::readiness_budget_for`]).
    pub readiness_budget: Option<Duration>,
    /// Fail on pod signals (crash loops, image pulls, bad config, restarts,
    /// readiness budget, `ReplicaFailure`) instead of waiting for the
    /// controller's `ProgressDeadlineExceeded`.
    pub fail_fast: bool,
    /// Also wait until no pod of an old revision exists any more, not even a
    /// terminating one. kubectl does not (terminating pods are not counted in
    /// `status.replicas`), so the default is `false`.
    pub wait_for_old_pods: bool,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        Self {
            max_restarts: 3,
            readiness_budget: None,
            fail_fast: true,
            wait_for_old_pods: false,
        }
    }
}

impl JudgeConfig {
    /// The readiness budget that applies to `workload`.
    pub fn readiness_budget_for(&self, workload: Option<&Workload>) -> Duration {
        if let Some(budget) = self.readiness_budget {
            return budget;
        }
        let deadline = match workload {
            Some(Workload::Deployment(d)) => d.spec.progress_deadline_seconds,
            _ => None,
        };
        match deadline {
            Some(secs) if secs > 0 => Duration::from_secs(u64::try_from(secs).unwrap_or(u64::MAX)),
            _ => DEFAULT_READINESS_BUDGET,
        }
    }
}
