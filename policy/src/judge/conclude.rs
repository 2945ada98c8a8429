//! The verdict: the status viewer's conclusion combined with the signals of the new pods.

use std::collections::BTreeSet;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::config::JudgeConfig;
use super::events::relevant_events;
use super::pods::{pod_problems, problem_order, severity};
use super::sets::{PodSets, StatusView};
use super::state::RolloutState;
use super::verdict::{Failure, FailureReason, PodProblem, Progress, Verdict};
use crate::rule::WorkloadKind;

/// kubectl's lower-case wording (`deployment`, `statefulset`, `daemon set`).
fn kubectl_noun(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment => "deployment",
        WorkloadKind::StatefulSet => "statefulset",
        WorkloadKind::DaemonSet => "daemon set",
    }
}

/// Combines the status view with the pod signals into the verdict.
#[allow(clippy::too_many_arguments)]
pub(super) fn conclude(
    state: &RolloutState,
    kind: WorkloadKind,
    view: StatusView,
    sets: PodSets<'_>,
    mut progress: Progress,
    now: Timestamp,
    budget: SignedDuration,
    cfg: &JudgeConfig,
) -> Verdict {
    let mut problems: Vec<PodProblem> = sets
        .new
        .iter()
        .flat_map(|p| pod_problems(p, now, budget, cfg.max_restarts))
        .collect();
    problems.sort_by(problem_order);
    progress.recheck_at = problems
        .iter()
        .filter_map(|p| p.fails_at)
        .filter(|t| *t > now)
        .min();
    progress.problems = problems;

    if view.unsupported {
        return Verdict::Unsupported(progress);
    }
    let fatal = cfg
        .fail_fast
        .then(|| progress.problems.iter().find(|p| p.fatal))
        .flatten()
        .cloned();

    // kubectl checks the deadline before completeness; a fail-fast pod
    // failure, if any, is the root cause and keeps its reason.
    if let Some((message, at)) = &view.deadline {
        let failure = match &fatal {
            Some(p) => pod_failure(state, kind, &sets, p, progress, now),
            None => {
                let worst = progress
                    .problems
                    .iter()
                    .min_by_key(|p| (severity(p.reason), p.since, p.pod.clone()))
                    .cloned();
                let mut message = message.clone();
                if let Some(w) = &worst {
                    message.push_str(&format!("; {}", describe(w)));
                }
                let failing_pods = failing_pod_names(&progress.problems, |_| true);
                let pods: BTreeSet<&str> = failing_pods.iter().map(String::as_str).collect();
                Failure {
                    reason: FailureReason::ProgressDeadlineExceeded,
                    pod: worst.as_ref().map(|w| w.pod.clone()),
                    container: worst.as_ref().and_then(|w| w.container.clone()),
                    message,
                    events: relevant_events(state, &sets, &pods),
                    first_seen: at.map(|t| t.min(now)),
                    failing_pods,
                    progress,
                }
            }
        };
        return Verdict::Failed(Box::new(failure));
    }
    if view.complete {
        return Verdict::Complete(progress);
    }
    if let Some(p) = &fatal {
        return Verdict::Failed(Box::new(pod_failure(state, kind, &sets, p, progress, now)));
    }
    if cfg.fail_fast
        && let Some((message, at)) = &view.replica_failure
    {
        return Verdict::Failed(Box::new(Failure {
            reason: FailureReason::ReplicaFailure,
            pod: None,
            container: None,
            message: message.clone(),
            events: relevant_events(state, &sets, &BTreeSet::new()),
            first_seen: at.map(|t| t.min(now)),
            failing_pods: Vec::new(),
            progress,
        }));
    }
    if progress.paused {
        return Verdict::Paused(progress);
    }
    Verdict::Progressing(progress)
}

fn failing_pod_names(problems: &[PodProblem], keep: impl Fn(&PodProblem) -> bool) -> Vec<String> {
    let set: BTreeSet<String> = problems
        .iter()
        .filter(|p| keep(p))
        .map(|p| p.pod.clone())
        .collect();
    set.into_iter().collect()
}

fn pod_failure(
    state: &RolloutState,
    kind: WorkloadKind,
    sets: &PodSets<'_>,
    p: &PodProblem,
    progress: Progress,
    now: Timestamp,
) -> Failure {
    let failing_pods = failing_pod_names(&progress.problems, |q| q.fatal);
    let pods: BTreeSet<&str> = failing_pods.iter().map(String::as_str).collect();
    let events = relevant_events(state, sets, &pods);
    let mut message = format!(
        "{} {:?}: {}",
        kubectl_noun(kind),
        progress.name,
        describe(p)
    );
    if failing_pods.len() > 1 {
        message.push_str(&format!(
            " ({} pods of the new revision are failing)",
            failing_pods.len()
        ));
    }
    // The kubelet's latest warning about that pod usually says it best.
    if let Some(w) = events
        .iter()
        .rev()
        .find(|e| e.type_ == "Warning" && e.object == format!("Pod/{}", p.pod))
    {
        message.push_str(&format!("; last event: {}: {}", w.reason, w.message));
    }
    Failure {
        reason: p.reason,
        pod: Some(p.pod.clone()),
        container: p.container.clone(),
        message,
        events,
        first_seen: p.fails_at.map(|t| t.min(now)),
        failing_pods,
        progress,
    }
}

pub(super) fn describe(p: &PodProblem) -> String {
    match &p.container {
        Some(c) => format!("pod {} container {}: {}", p.pod, c, p.message),
        None => format!("pod {}: {}", p.pod, p.message),
    }
}
