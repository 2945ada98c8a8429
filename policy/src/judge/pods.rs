//! What is wrong with a pod of the new revision: waiting reasons, restarts, readiness budget.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::verdict::{FailureReason, PodProblem};

/// Lower is worse / more specific.
pub(super) fn severity(r: FailureReason) -> u8 {
    match r {
        FailureReason::CreateContainerConfigError => 0,
        FailureReason::InvalidImageName => 1,
        FailureReason::ImagePull => 2,
        FailureReason::CreateContainerError => 3,
        FailureReason::CrashLoopBackOff => 4,
        FailureReason::TooManyRestarts => 5,
        FailureReason::NeverReady => 6,
        FailureReason::Unschedulable => 7,
        FailureReason::ReplicaFailure => 8,
        FailureReason::ProgressDeadlineExceeded => 9,
        FailureReason::MetricGate => 10,
    }
}

/// Fatal first, then the earliest to fail, then the most specific, then by name.
pub(super) fn problem_order(a: &PodProblem, b: &PodProblem) -> std::cmp::Ordering {
    let k = |p: &PodProblem| {
        (
            !p.fatal,
            p.fails_at.is_none(),
            p.fails_at,
            severity(p.reason),
            p.pod.clone(),
            p.container.clone(),
        )
    };
    k(a).cmp(&k(b))
}

fn add(t: Timestamp, d: SignedDuration) -> Timestamp {
    t.saturating_add(d).unwrap_or(t)
}

/// Problems of one pod of the new revision.
pub(super) fn pod_problems(
    pod: &Pod,
    now: Timestamp,
    budget: SignedDuration,
    max_restarts: i32,
) -> Vec<PodProblem> {
    let mut out = Vec::new();
    if pod.metadata.deletion_timestamp.is_some() {
        return out;
    }
    let name = pod.metadata.name.clone().unwrap_or_default();
    let Some(status) = pod.status.as_ref() else {
        return out;
    };
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return out;
    }
    let conditions = status.conditions.as_deref().unwrap_or_default();
    let condition = |t: &str| conditions.iter().find(|c| c.type_ == t);
    // When the pod last became not ready (if it is not ready).
    let unready_since = condition("Ready")
        .filter(|c| c.status != "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    let pod_start = status
        .start_time
        .as_ref()
        .or(pod.metadata.creation_timestamp.as_ref())
        .map(|t| t.0);

    if let Some(c) = condition("PodScheduled")
        .filter(|c| c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
    {
        out.push(PodProblem {
            pod: name.clone(),
            container: None,
            reason: FailureReason::Unschedulable,
            message: format!(
                "Unschedulable: {}",
                c.message.as_deref().unwrap_or_default()
            ),
            since: c.last_transition_time.as_ref().map(|t| t.0),
            fails_at: None,
            fatal: false,
        });
    }

    let spec = pod.spec.as_ref();
    let sidecar = |c: &str| {
        spec.and_then(|s| s.init_containers.as_ref())
            .and_then(|ics| ics.iter().find(|ic| ic.name == c))
            .is_some_and(|ic| ic.restart_policy.as_deref() == Some("Always"))
    };
    let statuses = status
        .init_container_statuses
        .iter()
        .flatten()
        .map(|cs| (cs, !sidecar(&cs.name)))
        .chain(
            status
                .container_statuses
                .iter()
                .flatten()
                .map(|cs| (cs, false)),
        );
    // A startup probe may legitimately hold readiness back for up to
    // initialDelay + period × failureThreshold on top of the budget.
    let startup_allowance = |c: &str| {
        let containers = spec.into_iter().flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        });
        containers
            .filter(|k| k.name == c)
            .find_map(|k| k.startup_probe.as_ref())
            .map_or(SignedDuration::ZERO, |p| {
                let secs = crate::workload::probe_failure_budget(p);
                SignedDuration::from_secs(secs.max(0))
            })
    };
    for (cs, plain_init) in statuses {
        if let Some(p) = container_problem(
            &name,
            cs,
            plain_init,
            unready_since,
            pod_start,
            now,
            budget.saturating_add(startup_allowance(&cs.name)),
            max_restarts,
        ) {
            out.push(p);
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn container_problem(
    pod: &str,
    cs: &ContainerStatus,
    plain_init: bool,
    unready_since: Option<Timestamp>,
    pod_start: Option<Timestamp>,
    now: Timestamp,
    budget: SignedDuration,
    max_restarts: i32,
) -> Option<PodProblem> {
    let state = cs.state.as_ref();
    let last_terminated = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
    let last_exit = last_terminated.map(|t| {
        let mut s = format!(
            "last exit: {} (exit code {})",
            t.reason.as_deref().unwrap_or("Terminated"),
            t.exit_code
        );
        if let Some(m) = t.message.as_deref().filter(|m| !m.is_empty()) {
            s.push_str(&format!(": {}", m.trim()));
        }
        s
    });
    let last_finished = last_terminated
        .and_then(|t| t.finished_at.as_ref())
        .map(|t| t.0);
    let what = if plain_init {
        "init container"
    } else {
        "container"
    };
    // `fails_at: None` means "failing as soon as it began".
    let problem =
        |reason, message: String, since: Option<Timestamp>, fails_at: Option<Timestamp>| {
            let since = since.map(|t| t.min(now));
            let fails_at = Some(fails_at.unwrap_or_else(|| since.unwrap_or(now)));
            PodProblem {
                pod: pod.to_owned(),
                container: Some(cs.name.clone()),
                reason,
                message,
                since,
                fails_at,
                fatal: fails_at.is_some_and(|t| t <= now),
            }
        };

    if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
        let reason = w.reason.as_deref().unwrap_or_default();
        let classified = match reason {
            "CrashLoopBackOff" => Some(FailureReason::CrashLoopBackOff),
            "ErrImagePull" | "ImagePullBackOff" | "ErrImageNeverPull" => {
                Some(FailureReason::ImagePull)
            }
            "InvalidImageName" => Some(FailureReason::InvalidImageName),
            "CreateContainerConfigError" => Some(FailureReason::CreateContainerConfigError),
            "CreateContainerError" | "RunContainerError" => {
                Some(FailureReason::CreateContainerError)
            }
            _ => None,
        };
        if let Some(r) = classified {
            let mut message = reason.to_owned();
            if let Some(m) = w.message.as_deref().filter(|m| !m.is_empty()) {
                message.push_str(&format!(": {m}"));
            }
            if cs.restart_count > 0 {
                message.push_str(&format!(" (restarted {} times", cs.restart_count));
                if let Some(e) = &last_exit {
                    message.push_str(&format!("; {e}"));
                }
                message.push(')');
            }
            if plain_init {
                message = format!("init container: {message}");
            }
            // A crash loop began with the first crash: with one restart that
            // is the last termination, otherwise when the pod became unready.
            let since = match r {
                FailureReason::CrashLoopBackOff if cs.restart_count <= 1 => {
                    last_finished.or(unready_since).or(pod_start)
                }
                _ => unready_since.or(pod_start),
            };
            return Some(problem(r, message, since, None));
        }
    }

    if cs.restart_count > max_restarts && !cs.ready && !(plain_init && is_done(cs)) {
        let mut message = format!(
            "restarted {} times (more than {max_restarts}) and is not ready",
            cs.restart_count
        );
        if let Some(e) = &last_exit {
            message.push_str(&format!("; {e}"));
        }
        let since = last_finished.or(unready_since).or(pod_start);
        return Some(problem(
            FailureReason::TooManyRestarts,
            message,
            since,
            None,
        ));
    }

    if let Some(running) = state.and_then(|s| s.running.as_ref())
        && (plain_init || !cs.ready)
    {
        let started = running.started_at.as_ref().map(|t| t.0);
        let since = match (started, unready_since) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b).or(pod_start),
        };
        let since = since.unwrap_or(now).min(now);
        let for_secs = now.duration_since(since).as_secs();
        let spent = for_secs >= budget.as_secs();
        let message = if plain_init {
            format!("{what} has been running for {for_secs}s without finishing")
        } else if spent {
            format!(
                "running but not ready for {for_secs}s (readiness budget {}s)",
                budget.as_secs()
            )
        } else {
            // Merely starting, well within its budget: not a problem yet.
            format!("not ready yet ({for_secs} s of {} s)", budget.as_secs())
        };
        return Some(problem(
            FailureReason::NeverReady,
            message,
            Some(since),
            Some(add(since, budget)),
        ));
    }
    None
}

fn is_done(cs: &ContainerStatus) -> bool {
    cs.state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .is_some_and(|t| t.exit_code == 0)
}
