//! The hold: every pod of a Deployment's new ReplicaSet Ready, and Ready for a while, with no
//! container restarted more than `--max-restarts` times (blue-green `--bake`, canary
//! `--interval`). Pure; the watch loop drives it, re-judging at the time a [`GateCheck::Wait`]
//! names (see `watch::WatchOptions::hold`).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::colors::ts_add;
use crate::display::ts_text;

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

/// The gate's answer for one look at the pods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateCheck {
    Pass,
    /// Not yet; `at`: when it passes if nothing changes.
    Wait {
        why: String,
        at: Option<Timestamp>,
    },
    /// A container restarted too often.
    Fail {
        pod: String,
        container: String,
        message: String,
    },
}

/// Whether `pods` (the new revision's) are `expected` in number (terminating ones not counted),
/// all Ready for at least `hold`, with no container restarted more than `max_restarts` times.
pub fn gate_check(
    pods: &[&Pod],
    expected: i32,
    hold: Duration,
    max_restarts: i32,
    now: Timestamp,
    clock: &mut ReadyClock,
) -> GateCheck {
    for p in pods {
        for cs in p
            .status
            .iter()
            .flat_map(|s| s.container_statuses.iter().flatten())
        {
            if cs.restart_count > max_restarts {
                return GateCheck::Fail {
                    pod: pod_name(p),
                    container: cs.name.clone(),
                    message: format!(
                        "pod {} container {} restarted {} times (more than --max-restarts {max_restarts})",
                        pod_name(p),
                        cs.name,
                        cs.restart_count
                    ),
                };
            }
        }
    }
    let live: Vec<&&Pod> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    if (live.len() as i64) < i64::from(expected) {
        return GateCheck::Wait {
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
        return GateCheck::Wait {
            why: format!("waiting for pod(s) {} to be ready", unready.join(", ")),
            at: None,
        };
    }
    let at = ts_add(latest, hold);
    if at <= now {
        GateCheck::Pass
    } else {
        GateCheck::Wait {
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

    #[test]
    fn gate_holds_until_every_pod_stayed_ready() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let hold = Duration::from_secs(30);
        let a = pod("a", Some("2026-01-01T00:00:00Z"), 0);
        let b = pod("b", Some("2026-01-01T00:00:45Z"), 0);
        let c = pod("c", None, 0);
        let mut clock = ReadyClock::default();
        assert!(matches!(
            gate_check(&[&a], 2, hold, 3, now, &mut clock),
            GateCheck::Wait { at: None, .. }
        ));
        assert!(
            matches!(gate_check(&[&a, &c], 2, hold, 3, now, &mut clock), GateCheck::Wait { at: None, ref why } if why.contains("c"))
        );
        match gate_check(&[&a, &b], 2, hold, 3, now, &mut clock) {
            GateCheck::Wait { at: Some(at), .. } => assert_eq!(ts_text(at), "2026-01-01T00:01:15Z"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            gate_check(&[&a], 1, hold, 3, now, &mut clock),
            GateCheck::Pass
        );
        assert_eq!(
            gate_check(&[&a], 1, Duration::ZERO, 3, now, &mut clock),
            GateCheck::Pass
        );
        let r = pod("r", Some("2026-01-01T00:00:00Z"), 4);
        assert!(
            matches!(gate_check(&[&r], 1, hold, 3, now, &mut clock), GateCheck::Fail { ref pod, ref message, .. } if pod == "r" && message.contains("restarted 4 times"))
        );
    }

    #[test]
    fn without_a_transition_time_the_hold_starts_when_first_seen_ready() {
        let t0: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let hold = Duration::from_secs(30);
        let mut p = pod("p", Some("2026-01-01T00:00:00Z"), 0);
        let cond = &mut p.status.as_mut().unwrap().conditions.as_mut().unwrap()[0];
        cond.last_transition_time = None;
        let mut clock = ReadyClock::default();
        match gate_check(&[&p], 1, hold, 3, t0, &mut clock) {
            GateCheck::Wait { at: Some(at), .. } => assert_eq!(ts_text(at), "2026-01-01T00:01:30Z"),
            other => panic!("never counted as served before it was seen: {other:?}"),
        }
        let later = ts_add(t0, Duration::from_secs(29));
        assert!(matches!(
            gate_check(&[&p], 1, hold, 3, later, &mut clock),
            GateCheck::Wait { .. }
        ));
        let done = ts_add(t0, hold);
        assert_eq!(
            gate_check(&[&p], 1, hold, 3, done, &mut clock),
            GateCheck::Pass
        );
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
            gate_check(&[&unready], 1, hold, 3, done, &mut clock),
            GateCheck::Wait { at: None, .. }
        ));
        match gate_check(&[&p], 1, hold, 3, done, &mut clock) {
            GateCheck::Wait { at: Some(at), .. } => assert_eq!(at, ts_add(done, hold)),
            other => panic!("{other:?}"),
        }
    }
}
