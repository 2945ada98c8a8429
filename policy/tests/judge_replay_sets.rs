//! Replays of a StatefulSet and a DaemonSet rollout through the rollout judge
//! (`tests/fixtures/rollouts/statefulset-unready.jsonl`, `daemonset-crashloop.jsonl`): watch
//! streams written event by event after the controllers' behaviour (the StatefulSet replaces its
//! highest ordinal first and then waits for it; the DaemonSet replaces one node's pod at a time
//! with maxUnavailable 1), in the format of the recorded Deployment rollouts. The judge is driven
//! as the plugin drives it: after every event, and at `Verdict::recheck_at` in between.

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use rollout_safe_policy::judge::{
    FailureReason, JudgeConfig, RolloutState, Verdict, WatchEvent, judge,
};
mod replay;
use replay::{Record, load};

fn start_of(records: &[Record]) -> Timestamp {
    records
        .iter()
        .filter(|r| r.type_ == "ADDED")
        .filter_map(|r| {
            let c: Timestamp = r.object["metadata"]["creationTimestamp"]
                .as_str()?
                .parse()
                .ok()?;
            Some(c - SignedDuration::from_secs_f64(r.t))
        })
        .max()
        .expect("an ADDED object with a creationTimestamp")
}

/// `(t, verdict)` after every record and every recheck.
fn replay(records: &[Record], cfg: &JudgeConfig) -> Vec<(f64, Verdict)> {
    let start = start_of(records);
    let at = |t: f64| start + SignedDuration::from_secs_f64(t);
    let mut state = RolloutState::new();
    let mut steps = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let ev = WatchEvent::from_json(&r.type_, r.object.clone())
            .unwrap_or_else(|e| panic!("record {i}: {e}"));
        state.apply(ev);
        let mut now = at(r.t);
        let mut verdict = judge(&state, now, cfg);
        steps.push((r.t, verdict.clone()));
        let Some(next) = records.get(i + 1).map(|n| at(n.t)) else {
            continue;
        };
        while let Some(when) = verdict.recheck_at() {
            assert!(when > now, "recheck_at must be in the future");
            if when >= next {
                break;
            }
            now = when;
            verdict = judge(&state, now, cfg);
            steps.push((now.duration_since(start).as_secs_f64(), verdict.clone()));
        }
    }
    steps
}

fn first_failure(steps: &[(f64, Verdict)]) -> Option<(f64, &Verdict)> {
    steps
        .iter()
        .find(|(_, v)| v.is_failed())
        .map(|(t, v)| (*t, v))
}

fn budget(secs: u64) -> JudgeConfig {
    JudgeConfig {
        readiness_budget: Some(std::time::Duration::from_secs(secs)),
        ..JudgeConfig::default()
    }
}

#[test]
fn replay_statefulset_whose_new_pod_never_becomes_ready() {
    let records = load("statefulset-unready.jsonl");
    // Before the update: complete.
    let steps = replay(&records[..4], &budget(30));
    assert!(steps.last().unwrap().1.is_complete(), "{:?}", steps.last());
    let steps = replay(&records, &budget(30));
    assert!(
        steps
            .iter()
            .filter(|(t, _)| *t >= 5.0)
            .all(|(_, v)| !v.is_complete())
    );
    let (t, v) = first_failure(&steps).expect("the unready pod fails the rollout");
    let f = v.failure().unwrap();
    assert_eq!(f.reason, FailureReason::NeverReady);
    assert_eq!(f.pod.as_deref(), Some("db-2"));
    // Running (not ready) since t≈10, budget 30 s: detected at its end, not before.
    assert!((39.0..=41.5).contains(&t), "failed at {t}");
    assert!(
        steps
            .iter()
            .filter(|(st, _)| *st < 39.0)
            .all(|(_, v)| !v.is_failed())
    );
    // The two lower ordinals were never touched.
    assert_eq!(f.progress.updated, 1);
    // With the default budget (120 s) the recording ends before it runs out: still waiting,
    // since a StatefulSet has no progress deadline of its own.
    let steps = replay(&records, &JudgeConfig::default());
    assert!(first_failure(&steps).is_none());
    assert!(!steps.last().unwrap().1.is_complete());
}

#[test]
fn replay_daemonset_whose_new_pods_crash_loop() {
    let records = load("daemonset-crashloop.jsonl");
    let steps = replay(&records[..4], &JudgeConfig::default());
    assert!(steps.last().unwrap().1.is_complete(), "{:?}", steps.last());
    let steps = replay(&records, &JudgeConfig::default());
    let (t, v) = first_failure(&steps).expect("the crash loop fails the rollout");
    let f = v.failure().unwrap();
    assert_eq!(f.reason, FailureReason::CrashLoopBackOff);
    assert_eq!(f.pod.as_deref(), Some("agent-k7m8n"));
    // The first CrashLoopBackOff is at t=11; nothing failed before.
    assert!((11.0..12.0).contains(&t), "failed at {t}");
    // One node's pod replaced (maxUnavailable 1); the other two still run the old one.
    assert_eq!(f.progress.updated, 1);
    assert_eq!(f.progress.old_pods, 2);
    // Without fail-fast, the judge waits (a DaemonSet has no progress deadline either) until
    // the restarts pass --max-restarts.
    let patient = JudgeConfig {
        fail_fast: false,
        ..JudgeConfig::default()
    };
    let steps = replay(&records, &patient);
    assert!(
        first_failure(&steps).is_none(),
        "{:?}",
        first_failure(&steps).map(|f| f.0)
    );
}
