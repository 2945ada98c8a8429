//! The readiness hold: every pod of a Deployment's new ReplicaSet Ready, and Ready for a while,
//! with no container restarted more than `--max-restarts` times (blue-green `--bake`, canary
//! `--interval`). The watch loop drives it, judging again at the time a [`HoldCheck::Wait`]
//! names.
//!
//! Its inputs come as one struct, [`HoldInput`]: the pod signals and the metric gates'
//! decision (`strategy::gates`) join there, so a step completes only when its pods held and
//! every gate passed since the step began, and a failed gate fails it like a crash would.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::gates::{GateDecision, GateFailure};
use super::schema::{ts_add, ts_text};
use crate::judge::{self, FailureReason, Progress, RolloutState, Workload};

fn ready_condition(p: &Pod) -> Option<&PodCondition> {
    if p.metadata.deletion_timestamp.is_some() {
        return None;
    }
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
}

/// Whether the pod is Ready (and not terminating).
pub fn pod_ready(p: &Pod) -> bool {
    ready_condition(p).is_some()
}

pub fn pod_name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

/// When each pod became Ready: its Ready condition's `lastTransitionTime`, or, when the condition
/// carries none, when this process first saw it Ready — so a hold never counts time nobody saw.
#[derive(Debug, Default)]
pub struct ReadyClock {
    first_seen: BTreeMap<String, Timestamp>,
}

impl ReadyClock {
    /// `None`: not Ready (its first-seen time is forgotten, so the hold starts again).
    pub fn ready_since(&mut self, p: &Pod, now: Timestamp) -> Option<Timestamp> {
        let key = p
            .metadata
            .uid
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| pod_name(p));
        let Some(c) = ready_condition(p) else {
            self.first_seen.remove(&key);
            return None;
        };
        Some(match &c.last_transition_time {
            Some(t) => t.0,
            None => *self.first_seen.entry(key).or_insert(now),
        })
    }
}

/// Everything one look of the hold decides on.
#[derive(Debug, Clone, Copy)]
pub struct HoldInput<'a> {
    /// The new revision's pods (terminating ones neither count nor fail it).
    pub pods: &'a [&'a Pod],
    /// How many pods the new revision should have.
    pub expected: i32,
    /// How long every pod must have stayed Ready.
    pub hold: Duration,
    /// Restarts of a container that fail the hold.
    pub max_restarts: i32,
    pub now: Timestamp,
    /// The metric gates' decision (`None`: no gates).
    pub gates: Option<&'a GateDecision>,
}

/// A container that restarted too often during the hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldFailure {
    pub pod: String,
    pub container: String,
    pub message: String,
}

impl HoldFailure {
    /// The failure as the judge reports one (`TooManyRestarts`), at `progress`.
    pub fn into_failure(self, progress: Progress) -> judge::Failure {
        judge::Failure {
            reason: FailureReason::TooManyRestarts,
            pod: Some(self.pod.clone()),
            container: Some(self.container),
            message: self.message,
            events: Vec::new(),
            first_seen: None,
            failing_pods: vec![self.pod],
            progress,
        }
    }
}

/// The hold's answer for one look at the pods.
#[derive(Debug, Clone, PartialEq)]
pub enum HoldCheck {
    Pass,
    /// Not yet; `at`: when it passes if nothing changes.
    Wait {
        why: String,
        at: Option<Timestamp>,
    },
    Fail(HoldFailure),
    /// A metric gate failed too many checks in a row.
    GateFailed(GateFailure),
}

/// Whether the pods are `expected` in number (terminating ones not counted), all Ready for at
/// least `hold`, with no container restarted more than `max_restarts` times.
pub fn check_hold(input: &HoldInput<'_>, clock: &mut ReadyClock) -> HoldCheck {
    let HoldInput {
        pods,
        expected,
        hold,
        max_restarts,
        now,
        gates,
    } = *input;
    if let Some(GateDecision::Fail(f)) = gates {
        return HoldCheck::GateFailed(f.clone());
    }
    for p in pods {
        for cs in p
            .status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
        {
            if cs.restart_count > max_restarts {
                return HoldCheck::Fail(HoldFailure {
                    pod: pod_name(p),
                    container: cs.name.clone(),
                    message: format!(
                        "pod {} container {} restarted {} times (more than --max-restarts {max_restarts})",
                        pod_name(p),
                        cs.name,
                        cs.restart_count
                    ),
                });
            }
        }
    }
    let live: Vec<&&Pod> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    if (live.len() as i64) < i64::from(expected) {
        return HoldCheck::Wait {
            why: format!("{} of {expected} new pods exist", live.len()),
            at: None,
        };
    }
    let mut latest = Timestamp::UNIX_EPOCH;
    let mut unready = Vec::new();
    for p in &live {
        match clock.ready_since(p, now) {
            Some(t) => latest = latest.max(t),
            None => unready.push(pod_name(p)),
        }
    }
    if !unready.is_empty() {
        unready.sort();
        return HoldCheck::Wait {
            why: format!("waiting for pod(s) {} to be ready", unready.join(", ")),
            at: None,
        };
    }
    let at = ts_add(latest, hold);
    if at <= now {
        match gates {
            Some(GateDecision::Wait(why)) => HoldCheck::Wait {
                why: format!(
                    "all {} new pods ready; waiting for the metric gates: {why}",
                    live.len()
                ),
                at: None,
            },
            _ => HoldCheck::Pass,
        }
    } else {
        HoldCheck::Wait {
            why: format!(
                "all {} new pods ready; holding until {} ({} ready so far, {} needed)",
                live.len(),
                ts_text(at),
                fmt_secs(now.duration_since(latest)),
                fmt_secs(SignedDuration::try_from(hold).unwrap_or(SignedDuration::MAX))
            ),
            at: Some(at),
        }
    }
}

/// The hold over a rollout the judge called complete: the new ReplicaSet's pods against the
/// Deployment's `spec.replicas`, and the gates. Anything but a Deployment has no hold: only
/// its gates decide.
pub fn check_new_pods(
    state: &RolloutState,
    hold: Duration,
    max_restarts: i32,
    now: Timestamp,
    gates: Option<&GateDecision>,
    clock: &mut ReadyClock,
) -> HoldCheck {
    let Some(Workload::Deployment(d)) = state.workload() else {
        return match gates {
            Some(GateDecision::Fail(f)) => HoldCheck::GateFailed(f.clone()),
            Some(GateDecision::Wait(why)) => HoldCheck::Wait {
                why: format!("waiting for the metric gates: {why}"),
                at: None,
            },
            _ => HoldCheck::Pass,
        };
    };
    let pods: Vec<&Pod> = state
        .new_pods()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    check_hold(
        &HoldInput {
            pods: &pods,
            expected: d.spec.replicas.unwrap_or(1),
            hold,
            max_restarts,
            now,
            gates,
        },
        clock,
    )
}

fn fmt_secs(d: SignedDuration) -> String {
    format!("{}s", d.as_secs().max(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ready_at: Option<&str>, restarts: i32) -> Pod {
        let cond = match ready_at {
            Some(t) => json!([{"type": "Ready", "status": "True", "lastTransitionTime": t}]),
            None => {
                json!([{"type": "Ready", "status": "False", "lastTransitionTime": "2026-01-01T00:00:00Z"}])
            }
        };
        serde_json::from_value(json!({
            "metadata": {"name": name, "uid": format!("uid-{name}")},
            "status": {"conditions": cond, "containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": ready_at.is_some(), "restartCount": restarts}]}
        }))
        .unwrap()
    }

    fn check(
        pods: &[&Pod],
        expected: i32,
        hold: Duration,
        now: Timestamp,
        clock: &mut ReadyClock,
    ) -> HoldCheck {
        check_hold(
            &HoldInput {
                pods,
                expected,
                hold,
                max_restarts: 3,
                now,
                gates: None,
            },
            clock,
        )
    }

    #[test]
    fn hold_lasts_until_every_pod_stayed_ready() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let hold = Duration::from_secs(30);
        let a = pod("a", Some("2026-01-01T00:00:00Z"), 0);
        let b = pod("b", Some("2026-01-01T00:00:45Z"), 0);
        let c = pod("c", None, 0);
        let mut clock = ReadyClock::default();
        assert!(matches!(
            check(&[&a], 2, hold, now, &mut clock),
            HoldCheck::Wait { at: None, .. }
        ));
        assert!(
            matches!(check(&[&a, &c], 2, hold, now, &mut clock), HoldCheck::Wait { at: None, ref why } if why.contains("c"))
        );
        match check(&[&a, &b], 2, hold, now, &mut clock) {
            HoldCheck::Wait { at: Some(at), .. } => assert_eq!(ts_text(at), "2026-01-01T00:01:15Z"),
            other => panic!("{other:?}"),
        }
        assert_eq!(check(&[&a], 1, hold, now, &mut clock), HoldCheck::Pass);
        assert_eq!(
            check(&[&a], 1, Duration::ZERO, now, &mut clock),
            HoldCheck::Pass
        );
        let r = pod("r", Some("2026-01-01T00:00:00Z"), 4);
        match check(&[&r], 1, hold, now, &mut clock) {
            HoldCheck::Fail(f) => {
                assert_eq!(f.pod, "r");
                assert!(f.message.contains("restarted 4 times"), "{}", f.message);
                let failure = f.into_failure(Progress::default());
                assert_eq!(failure.reason, FailureReason::TooManyRestarts);
                assert_eq!(failure.failing_pods, ["r"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn without_a_transition_time_the_hold_starts_when_first_seen_ready() {
        let t0: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let hold = Duration::from_secs(30);
        let mut p = pod("p", Some("2026-01-01T00:00:00Z"), 0);
        let cond = &mut p.status.as_mut().unwrap().conditions.as_mut().unwrap()[0];
        cond.last_transition_time = None;
        let mut clock = ReadyClock::default();
        match check(&[&p], 1, hold, t0, &mut clock) {
            HoldCheck::Wait { at: Some(at), .. } => assert_eq!(ts_text(at), "2026-01-01T00:01:30Z"),
            other => panic!("never counted as served before it was seen: {other:?}"),
        }
        let later = ts_add(t0, Duration::from_secs(29));
        assert!(matches!(
            check(&[&p], 1, hold, later, &mut clock),
            HoldCheck::Wait { .. }
        ));
        let done = ts_add(t0, hold);
        assert_eq!(check(&[&p], 1, hold, done, &mut clock), HoldCheck::Pass);
        // Unready in between: the hold starts again when it is seen Ready again.
        let mut unready = p.clone();
        unready
            .status
            .as_mut()
            .unwrap()
            .conditions
            .as_mut()
            .unwrap()[0]
            .status = "False".into();
        assert!(matches!(
            check(&[&unready], 1, hold, done, &mut clock),
            HoldCheck::Wait { at: None, .. }
        ));
        match check(&[&p], 1, hold, done, &mut clock) {
            HoldCheck::Wait { at: Some(at), .. } => assert_eq!(at, ts_add(done, hold)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_a_deployment_has_a_hold() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let mut clock = ReadyClock::default();
        let empty = RolloutState::new();
        assert_eq!(
            check_new_pods(&empty, Duration::from_secs(5), 3, now, None, &mut clock),
            HoldCheck::Pass
        );
        let mut state = RolloutState::new();
        let d: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "s", "uid": "d1"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "x"}]}}}
        }))
        .unwrap();
        state.upsert(d.into());
        // A Deployment without a new ReplicaSet yet: none of its 2 pods exist.
        assert!(matches!(
            check_new_pods(&state, Duration::from_secs(5), 3, now, None, &mut clock),
            HoldCheck::Wait { at: None, ref why } if why == "0 of 2 new pods exist"
        ));
    }

    #[test]
    fn gates_join_the_pod_signals() {
        use crate::gates::{GateResult, parse_gate};
        use crate::strategy::gates::GateBoard;
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let a = pod("a", Some("2026-01-01T00:00:00Z"), 0);
        let mut clock = ReadyClock::default();
        let mut board = GateBoard::new(vec![parse_gate("errors: e < 0.01", "--gate").unwrap()], 2);
        board.begin_step("bake");
        let look = |decision: &GateDecision, clock: &mut ReadyClock, pods: &[&Pod]| {
            check_hold(
                &HoldInput {
                    pods,
                    expected: 1,
                    hold: Duration::from_secs(30),
                    max_restarts: 3,
                    now,
                    gates: Some(decision),
                },
                clock,
            )
        };
        // Pods held, gate not passed yet: wait, saying why.
        let waiting = board.decision();
        assert!(matches!(
            look(&waiting, &mut clock, &[&a]),
            HoldCheck::Wait { at: None, ref why } if why.contains("waiting for the metric gates: gate errors: not checked yet")
        ));
        // Pods not held yet: the pods' reason comes first.
        let c = pod("c", None, 0);
        assert!(matches!(
            look(&waiting, &mut clock, &[&c]),
            HoldCheck::Wait { ref why, .. } if why.contains("to be ready")
        ));
        board.record(0, "e".into(), GateResult::Pass(0.0), now);
        assert_eq!(look(&board.decision(), &mut clock, &[&a]), HoldCheck::Pass);
        // A failed gate fails the hold even while the pods are still coming up.
        board.record(0, "e".into(), GateResult::Fail(0.05), now);
        board.record(0, "e".into(), GateResult::Fail(0.06), now);
        match look(&board.decision(), &mut clock, &[&c]) {
            HoldCheck::GateFailed(f) => {
                assert_eq!((f.gate.name.as_str(), f.value), ("errors", 0.06))
            }
            other => panic!("{other:?}"),
        }
        // Anything but a Deployment: only the gates decide.
        let empty = RolloutState::new();
        assert!(matches!(
            check_new_pods(
                &empty,
                Duration::ZERO,
                3,
                now,
                Some(&board.decision()),
                &mut clock
            ),
            HoldCheck::GateFailed(_)
        ));
    }
}
