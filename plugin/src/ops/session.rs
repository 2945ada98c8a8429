//! What every operation runs with: the cluster, the views its watches show, Ctrl-C; and what a
//! watch's ending means.

use std::time::Duration;

use rollout_safe_policy::judge::{JudgeConfig, Verdict};

use crate::cluster::client::Cluster;
use crate::cluster::refs::WorkloadRef;
use crate::cluster::watch::{Ending, GateSource, WatchOptions, WatchView, watch_rollout};
use crate::error::Error;
use crate::exit::Outcome;
use crate::interrupt::Interrupt;

/// Makes the view of one watch (the command decides how watches look).
pub trait Views {
    fn watch(&self, title: String) -> Box<dyn WatchView>;
}

/// The cluster an operation acts on, how its watches are shown, and Ctrl-C.
pub struct Session<'a> {
    pub cluster: Cluster,
    pub views: &'a dyn Views,
    pub interrupt: Interrupt,
}

impl Session<'_> {
    /// Watches `target` with `opts` in a view titled `title`.
    pub async fn watch(
        &self,
        target: &WorkloadRef,
        title: String,
        opts: &WatchOptions,
    ) -> Result<Ending, Error> {
        let mut view = self.views.watch(title);
        watch_rollout(&self.cluster, target, opts, view.as_mut(), None).await
    }

    /// [`Session::watch`] with metric gates (`None`: none configured): a failed gate fails the
    /// watch, and it completes only once every gate passed since the step began.
    pub async fn watch_gated(
        &self,
        target: &WorkloadRef,
        title: String,
        opts: &WatchOptions,
        gates: Option<&mut dyn GateSource>,
    ) -> Result<Ending, Error> {
        let mut view = self.views.watch(title);
        watch_rollout(&self.cluster, target, opts, view.as_mut(), gates).await
    }

    /// Whether Ctrl-C was pressed.
    pub fn interrupted(&self) -> bool {
        self.interrupt.is_set()
    }
}

/// How rollouts are watched (`--timeout`, `--max-restarts`, `--readiness-budget`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchSettings {
    pub timeout: Duration,
    pub max_restarts: i32,
    pub readiness_budget: Duration,
}

impl Default for WatchSettings {
    fn default() -> Self {
        WatchSettings {
            timeout: Duration::from_secs(600),
            max_restarts: 3,
            readiness_budget: Duration::from_secs(120),
        }
    }
}

impl WatchSettings {
    /// The judge's tunables.
    pub fn judge(&self) -> JudgeConfig {
        JudgeConfig {
            max_restarts: self.max_restarts,
            readiness_budget: Some(self.readiness_budget),
            fail_fast: true,
            wait_for_old_pods: false,
        }
    }

    /// Watching to the end (a paused Deployment ends the watch), within `timeout`.
    pub fn options(&self, interrupt: &Interrupt) -> WatchOptions {
        WatchOptions {
            timeout: self.timeout,
            judge: self.judge(),
            stop_when_paused: true,
            hold: None,
            interrupt: interrupt.clone(),
        }
    }

    /// Watching until `deadline`; `hold`: and until the new pods stayed Ready that long.
    pub fn until(
        &self,
        deadline: tokio::time::Instant,
        hold: Option<Duration>,
        interrupt: &Interrupt,
    ) -> WatchOptions {
        WatchOptions {
            timeout: deadline.saturating_duration_since(tokio::time::Instant::now()),
            hold,
            ..self.options(interrupt)
        }
    }
}

/// What a watch's ending means for the command, the same everywhere: complete or paused (it
/// rolls out on resume) is success; failed, timed out, interrupted are what they say; a workload
/// without rollout status (`OnDelete`) is bad input; a workload deleted meanwhile is a cluster
/// error (`context` says when: ` during the rollback`).
pub fn outcome_of(
    ending: &Ending,
    workload: &str,
    context: &'static str,
) -> Result<Outcome, Error> {
    match ending {
        Ending::Complete(_) | Ending::Paused(_) => Ok(Outcome::Succeeded),
        Ending::Failed { .. } => Ok(Outcome::RolloutFailed),
        Ending::Unsupported(_) => Ok(Outcome::NoRolloutStatus),
        Ending::TimedOut(_) => Ok(Outcome::TimedOut),
        Ending::Interrupted(_) => Ok(Outcome::Interrupted),
        Ending::Deleted => Err(Error::Deleted {
            workload: workload.to_owned(),
            context,
        }),
    }
}

/// The ending of a watch that must reach `Complete` before the operation goes on (a canary
/// step, a new colour, a colour coming back): as [`outcome_of`], except that a paused
/// Deployment — which will not complete by itself — stalls the step like a timeout.
pub fn step_outcome(
    ending: &Ending,
    workload: &str,
    context: &'static str,
) -> Result<Outcome, Error> {
    match ending {
        Ending::Paused(_) => Ok(Outcome::TimedOut),
        other => outcome_of(other, workload, context),
    }
}

/// What a verdict read once (`status` without `--watch`) means: failed is failed, no rollout
/// status is bad input, anything else (complete, progressing, paused) is success.
pub fn outcome_of_verdict(v: &Verdict) -> Outcome {
    match v {
        Verdict::Failed(_) => Outcome::RolloutFailed,
        Verdict::Unsupported(_) => Outcome::NoRolloutStatus,
        _ => Outcome::Succeeded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollout_safe_policy::judge::Progress;

    #[test]
    fn one_meaning_per_ending() {
        let p = || Verdict::Progressing(Progress::default());
        let wl = "deployment/web";
        assert_eq!(
            outcome_of(&Ending::Complete(p()), wl, "").unwrap(),
            Outcome::Succeeded
        );
        assert_eq!(
            outcome_of(&Ending::Paused(p()), wl, "").unwrap(),
            Outcome::Succeeded
        );
        assert_eq!(
            step_outcome(&Ending::Paused(p()), wl, "").unwrap(),
            Outcome::TimedOut
        );
        assert_eq!(
            outcome_of(&Ending::Unsupported(p()), wl, "").unwrap(),
            Outcome::NoRolloutStatus
        );
        assert_eq!(
            step_outcome(&Ending::TimedOut(p()), wl, "").unwrap(),
            Outcome::TimedOut
        );
        assert_eq!(
            outcome_of(&Ending::Interrupted(p()), wl, "").unwrap(),
            Outcome::Interrupted
        );
        let e = step_outcome(&Ending::Deleted, wl, " during the rollback").unwrap_err();
        assert_eq!(
            e.to_string(),
            "deployment/web was deleted during the rollback"
        );
        assert_eq!(outcome_of_verdict(&p()), Outcome::Succeeded);
        assert_eq!(
            outcome_of_verdict(&Verdict::Unsupported(Progress::default())),
            Outcome::NoRolloutStatus
        );
        let s = WatchSettings::default();
        assert_eq!(s.judge().max_restarts, 3);
        assert!(s.options(&Interrupt::never()).stop_when_paused);
    }
}
