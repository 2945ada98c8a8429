//! Replays the watch streams recorded from a real control plane
//! (`tests/fixtures/rollouts/*.jsonl`, recorded from a real kube-apiserver) through the rollout judge, and checks edge
//! cases on synthetic objects.
//!
//! Time: each record carries `t`, seconds since the recording began, but the
//! objects carry wall-clock timestamps (second resolution). The recording's
//! start instant is taken as `max(creationTimestamp − t)` over all ADDED
//! objects: the latest start consistent with every object having been
//! created no later than it was seen, so `now = start + t` never precedes a
//! timestamp the judge reads. (The true start is within one second after
//! `min(creationTimestamp − t)`; the test checks that interval is consistent.)
//!
//! The judge is driven as the plugin drives it: after every watch event, and
//! additionally at `Verdict::recheck_at` when that comes before the next event
//! (a readiness budget running out is not a watch event).

use std::fmt::Write as _;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use rollout_safe_policy::judge::{
    DecodeError, FailureReason, JudgeConfig, Object, RolloutState, Verdict, WatchEvent,
    failure_started_at, judge,
};
use serde_json::{Value, json};

mod replay;
use replay::{Record, load};

// ---------------------------------------------------------------------------
// Replay machinery
// ---------------------------------------------------------------------------

fn ts(s: &str) -> Timestamp {
    s.parse()
        .unwrap_or_else(|e| panic!("bad timestamp {s}: {e}"))
}

fn secs(d: f64) -> SignedDuration {
    SignedDuration::from_secs_f64(d)
}

/// `max(creationTimestamp − t)` over ADDED objects; see the module docs.
fn recording_start(records: &[Record]) -> Timestamp {
    let candidates: Vec<Timestamp> = records
        .iter()
        .filter(|r| r.type_ == "ADDED")
        .filter_map(|r| {
            r.object["metadata"]["creationTimestamp"]
                .as_str()
                .map(|c| ts(c) - secs(r.t))
        })
        .collect();
    let lo = *candidates
        .iter()
        .max()
        .expect("no ADDED object with a creationTimestamp");
    let hi = *candidates.iter().min().unwrap() + SignedDuration::from_secs(1);
    assert!(
        lo < hi,
        "creation timestamps are inconsistent with t: start in [{lo}, {hi})"
    );
    lo
}

fn at(start: Timestamp, t: f64) -> Timestamp {
    start + secs(t)
}

fn t_of(start: Timestamp, now: Timestamp) -> f64 {
    now.duration_since(start).as_secs_f64()
}

struct Step {
    t: f64,
    /// Index of the record just applied, or `None` for a recheck timer.
    record: Option<usize>,
    verdict: Verdict,
}

fn replay(records: &[Record], cfg: &JudgeConfig) -> Vec<Step> {
    let start = recording_start(records);
    let mut state = RolloutState::new();
    let mut steps = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let expected_kind = match r.resource.as_str() {
            "deployments" => "Deployment",
            "replicasets" => "ReplicaSet",
            "pods" => "Pod",
            "events" => "Event",
            other => panic!("unexpected resource {other}"),
        };
        assert_eq!(r.object["kind"], expected_kind, "record {i}");
        let ev = WatchEvent::from_json(&r.type_, r.object.clone())
            .unwrap_or_else(|e| panic!("record {i} ({} {}): {e}", r.type_, r.resource));
        state.apply(ev);
        let mut now = at(start, r.t);
        let mut verdict = judge(&state, now, cfg);
        steps.push(Step {
            t: r.t,
            record: Some(i),
            verdict: verdict.clone(),
        });
        // Timers between this event and the next (none after the recording ends).
        let Some(next) = records.get(i + 1).map(|n| at(start, n.t)) else {
            continue;
        };
        while let Some(when) = verdict.recheck_at() {
            assert!(
                when > now,
                "recheck_at must be in the future: {when} <= {now}"
            );
            if when >= next {
                break;
            }
            now = when;
            verdict = judge(&state, now, cfg);
            steps.push(Step {
                t: t_of(start, now),
                record: None,
                verdict: verdict.clone(),
            });
        }
    }
    steps
}

fn first_after(steps: &[Step], after: f64, pred: impl Fn(&Verdict) -> bool) -> Option<&Step> {
    steps.iter().find(|s| s.t >= after && pred(&s.verdict))
}

/// The steps from `step` (which must be one of `steps`) on.
fn from<'a>(steps: &'a [Step], step: &Step) -> &'a [Step] {
    let i = steps
        .iter()
        .position(|s| std::ptr::eq(s, step))
        .expect("step not in steps");
    &steps[i..]
}

fn image(deployment: &Value) -> &str {
    deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
}

/// `t` of the first Deployment record whose image differs from `from` (at or after `after`).
fn image_change(records: &[Record], after: f64, from: &str) -> (f64, String) {
    records
        .iter()
        .find(|r| r.resource == "deployments" && r.t >= after && image(&r.object) != from)
        .map(|r| (r.t, image(&r.object).to_owned()))
        .expect("no image change in the recording")
}

fn initial_image(records: &[Record]) -> String {
    image(
        &records
            .iter()
            .find(|r| r.resource == "deployments")
            .unwrap()
            .object,
    )
    .to_owned()
}

/// The ReplicaSet created at or after `after`.
fn new_rs_name(records: &[Record], after: f64) -> String {
    records
        .iter()
        .find(|r| r.resource == "replicasets" && r.type_ == "ADDED" && r.t >= after)
        .and_then(|r| r.object["metadata"]["name"].as_str())
        .expect("no new ReplicaSet")
        .to_owned()
}

/// `t` of the first pod record of `rs` with a container waiting for one of `reasons`.
fn first_waiting(records: &[Record], rs: &str, reasons: &[&str]) -> f64 {
    records
        .iter()
        .filter(|r| r.resource == "pods")
        .filter(|r| {
            r.object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .starts_with(&format!("{rs}-"))
        })
        .find(|r| {
            r.object["status"]["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|cs| {
                    cs["state"]["waiting"]["reason"]
                        .as_str()
                        .is_some_and(|w| reasons.contains(&w))
                })
        })
        .map(|r| r.t)
        .expect("no such waiting pod")
}

/// `t` of the first Deployment record whose Progressing condition says ProgressDeadlineExceeded.
fn deadline_record(records: &[Record]) -> Option<f64> {
    records
        .iter()
        .filter(|r| r.resource == "deployments")
        .find(|r| {
            r.object["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["reason"] == "ProgressDeadlineExceeded")
        })
        .map(|r| r.t)
}

/// `t` of the first Deployment record at or after `after` that kubectl's rule calls complete.
fn kubectl_complete(records: &[Record], after: f64) -> f64 {
    records
        .iter()
        .filter(|r| r.resource == "deployments" && r.t >= after)
        .find(|r| {
            let o = &r.object;
            let st = &o["status"];
            let n = |v: &Value| v.as_i64().unwrap_or(0);
            n(&o["metadata"]["generation"]) <= n(&st["observedGeneration"])
                && n(&st["updatedReplicas"]) >= n(&o["spec"]["replicas"])
                && n(&st["replicas"]) <= n(&st["updatedReplicas"])
                && n(&st["availableReplicas"]) >= n(&st["updatedReplicas"])
        })
        .map(|r| r.t)
        .expect("never complete")
}

fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= tolerance
}

struct Row {
    recording: &'static str,
    config: &'static str,
    verdict: String,
    t: f64,
    expected: String,
    detail: String,
}

fn row(recording: &'static str, config: &'static str, step: &Step, expected: String) -> Row {
    let detail = match &step.verdict {
        Verdict::Failed(f) => format!(
            "{} {}/{} first_seen={}",
            f.reason,
            f.pod.as_deref().unwrap_or("-"),
            f.container.as_deref().unwrap_or("-"),
            f.first_seen
                .map(|t| t.to_string())
                .unwrap_or_else(|| "-".into())
        ),
        v => v.progress().message.clone(),
    };
    let trigger = if step.record.is_some() {
        ""
    } else {
        " (timer)"
    };
    Row {
        recording,
        config,
        verdict: format!("{}{trigger}", step.verdict.label()),
        t: step.t,
        expected,
        detail,
    }
}

fn budget(secs: u64) -> JudgeConfig {
    JudgeConfig {
        readiness_budget: Some(std::time::Duration::from_secs(secs)),
        ..JudgeConfig::default()
    }
}

fn no_fail_fast() -> JudgeConfig {
    JudgeConfig {
        fail_fast: false,
        ..JudgeConfig::default()
    }
}

fn assert_never_failed(name: &str, config: &str, steps: &[Step]) {
    if let Some(s) = steps.iter().find(|s| s.verdict.is_failed()) {
        panic!(
            "{name} [{config}]: unexpected failure at t={:.2}: {}",
            s.t, s.verdict
        );
    }
}

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

fn good_update() -> Vec<Row> {
    const NAME: &str = "good-update.jsonl";
    let records = load(NAME);
    let (update_t, new_image) = image_change(&records, 0.0, &initial_image(&records));
    assert!(new_image.ends_with(":1.1.0"), "{new_image}");
    let new_rs = new_rs_name(&records, update_t);
    let mut rows = Vec::new();

    for (label, cfg) in [
        ("default", JudgeConfig::default()),
        ("budget=10s", budget(10)),
        ("budget=2s", budget(2)),
    ] {
        let steps = replay(&records, &cfg);
        assert_never_failed(NAME, label, &steps);

        // The initial rollout completes before the update.
        let initial =
            first_after(&steps, 0.0, Verdict::is_complete).expect("initial rollout never complete");
        assert!(initial.t < update_t && close(initial.t, kubectl_complete(&records, 0.0), 1e-9));

        // Then the update: progressing from the image change until kubectl's rule says complete.
        let expected = kubectl_complete(&records, update_t);
        assert!(
            close(expected, 12.38, 0.05),
            "kubectl-complete record at {expected}"
        );
        let done =
            first_after(&steps, update_t, Verdict::is_complete).expect("update never complete");
        assert!(
            close(done.t, expected, 1e-9),
            "[{label}] Complete at {:.3}, expected {expected:.3}",
            done.t
        );
        for s in steps.iter().filter(|s| s.t >= update_t && s.t < done.t) {
            assert!(
                matches!(s.verdict, Verdict::Progressing(_)),
                "[{label}] t={:.2}: {}",
                s.t,
                s.verdict
            );
        }
        let p = done.verdict.progress();
        assert_eq!(
            (p.desired, p.updated, p.available, p.old_replicas),
            (4, 4, 4, 0),
            "{p:?}"
        );
        assert_eq!(p.new_replica_set.as_deref(), Some(new_rs.as_str()));
        assert_eq!(p.new_revision.as_deref(), Some("2"));
        assert!(
            p.message.contains("successfully rolled out"),
            "{}",
            p.message
        );
        // At that point every pod of the old ReplicaSet is gone or terminating.
        let mut state = RolloutState::new();
        for r in records.iter().take(done.record.unwrap() + 1) {
            state.apply(WatchEvent::from_json(&r.type_, r.object.clone()).unwrap());
        }
        assert!(
            state
                .pods()
                .filter(|p| !p.metadata.name.as_deref().unwrap().starts_with(&new_rs))
                .all(|p| p.metadata.deletion_timestamp.is_some())
        );
        // And it stays complete.
        assert!(from(&steps, done).iter().all(|s| s.verdict.is_complete()));
        rows.push(row(
            "good-update",
            label,
            done,
            format!("{expected:.2} (kubectl rule)"),
        ));
    }

    // Waiting for old pods to be gone, terminating ones included.
    let cfg = JudgeConfig {
        wait_for_old_pods: true,
        ..JudgeConfig::default()
    };
    let steps = replay(&records, &cfg);
    assert_never_failed(NAME, "wait_for_old_pods", &steps);
    let last_old_gone = records
        .iter()
        .filter(|r| r.resource == "pods" && r.type_ == "DELETED" && r.t >= update_t)
        .map(|r| r.t)
        .fold(0.0, f64::max);
    assert!(close(last_old_gone, 14.37, 0.05));
    let done = first_after(&steps, update_t, Verdict::is_complete).unwrap();
    assert!(
        close(done.t, last_old_gone, 1e-9),
        "Complete at {:.3}, last old pod deleted at {last_old_gone:.3}",
        done.t
    );
    rows.push(row(
        "good-update",
        "wait_for_old_pods",
        done,
        format!("{last_old_gone:.2} (last old pod deleted)"),
    ));
    rows
}

fn imagepull_update() -> Vec<Row> {
    const NAME: &str = "imagepull-update.jsonl";
    let records = load(NAME);
    let start = recording_start(&records);
    let (update_t, new_image) = image_change(&records, 0.0, &initial_image(&records));
    assert!(new_image.ends_with("-pullfail"));
    let new_rs = new_rs_name(&records, update_t);
    let first_pull_error = first_waiting(&records, &new_rs, &["ErrImagePull", "ImagePullBackOff"]);
    assert!(
        deadline_record(&records).is_none(),
        "the recording ends before the deadline"
    );
    let deadline_t = update_t + 30.0;
    let mut rows = Vec::new();

    for (label, cfg) in [
        ("default", JudgeConfig::default()),
        ("budget=10s", budget(10)),
    ] {
        let steps = replay(&records, &cfg);
        let fail = first_after(&steps, 0.0, Verdict::is_failed).expect("never failed");
        assert!(
            close(fail.t, first_pull_error, 1e-9),
            "[{label}] failed at {:.3}, first pull error at {first_pull_error:.3}",
            fail.t
        );
        assert!(fail.t < deadline_t - 20.0, "well before the deadline");
        let f = fail.verdict.failure().unwrap();
        assert_eq!(f.reason, FailureReason::ImagePull);
        let pod = f.pod.as_deref().unwrap();
        assert!(pod.starts_with(&format!("{new_rs}-")), "{pod}");
        assert_eq!(f.container.as_deref(), Some("web"));
        assert!(
            f.message.contains("ImagePullBackOff") && f.message.contains(&new_image),
            "{}",
            f.message
        );
        assert!(f.message.contains(pod), "{}", f.message);
        let first_seen = failure_started_at(&fail.verdict).expect("first_seen");
        let first_seen_t = t_of(start, first_seen);
        assert!(
            first_seen_t <= fail.t && first_seen_t > fail.t - 1.5,
            "first_seen at {first_seen_t:.2}"
        );
        assert!(!f.events.is_empty());
        for e in &f.events {
            assert!(
                e.object == "Deployment/web"
                    || e.object == format!("ReplicaSet/{new_rs}")
                    || e.object.starts_with("Pod/"),
                "unrelated event {e}"
            );
        }
        assert!(
            f.events.iter().any(|e| e
                .message
                .contains(&format!("Scaled up replica set {new_rs}"))),
            "{:?}",
            f.events
        );
        // Once failed, failed for the rest of the recording.
        assert!(from(&steps, fail).iter().all(|s| s.verdict.is_failed()));
        assert_eq!(f.progress.new_replica_set.as_deref(), Some(new_rs.as_str()));
        rows.push(row(
            "imagepull-update",
            label,
            fail,
            format!("{first_pull_error:.2} (first ImagePullBackOff)"),
        ));
    }

    // Without fail-fast only the deadline fails a rollout, and the recording ends before it.
    let steps = replay(&records, &no_fail_fast());
    assert_never_failed(NAME, "fail_fast=off", &steps);
    let last = steps.last().unwrap();
    assert!(
        last.verdict
            .progress()
            .problems
            .iter()
            .any(|p| p.reason == FailureReason::ImagePull && p.fatal)
    );
    rows.push(row(
        "imagepull-update",
        "fail_fast=off",
        last,
        "no verdict (ends before deadline)".into(),
    ));
    rows
}

fn crashloop_then_undo() -> Vec<Row> {
    const NAME: &str = "crashloop-then-undo.jsonl";
    let records = load(NAME);
    let initial = initial_image(&records);
    let (update_t, new_image) = image_change(&records, 0.0, &initial);
    assert!(new_image.ends_with("-crash"));
    let (undo_t, undo_image) = image_change(&records, update_t, &new_image);
    assert_eq!(undo_image, initial);
    let new_rs = new_rs_name(&records, update_t);
    let first_crash = first_waiting(&records, &new_rs, &["CrashLoopBackOff"]);
    let deadline_t = deadline_record(&records).expect("deadline in recording");
    let complete_t = kubectl_complete(&records, undo_t);
    let mut rows = Vec::new();

    for (label, cfg) in [
        ("default", JudgeConfig::default()),
        ("budget=10s", budget(10)),
    ] {
        let steps = replay(&records, &cfg);
        let fail = first_after(&steps, 0.0, Verdict::is_failed).expect("never failed");
        assert!(
            close(fail.t, first_crash, 1e-9),
            "[{label}] failed at {:.3}, first crash at {first_crash:.3}",
            fail.t
        );
        assert!(fail.t < deadline_t - 20.0);
        let f = fail.verdict.failure().unwrap();
        assert!(
            matches!(
                f.reason,
                FailureReason::CrashLoopBackOff | FailureReason::TooManyRestarts
            ),
            "{}",
            f.reason
        );
        assert!(f.pod.as_deref().unwrap().starts_with(&format!("{new_rs}-")));
        assert_eq!(f.container.as_deref(), Some("web"));
        assert!(
            f.message.contains("back-off restarting failed container"),
            "{}",
            f.message
        );
        let first_seen_t = t_of(
            recording_start(&records),
            failure_started_at(&fail.verdict).unwrap(),
        );
        assert!(
            first_seen_t <= fail.t && first_seen_t > fail.t - 1.5,
            "first_seen at {first_seen_t:.2}"
        );
        // Failed from the first crash until the undo, with a stable root cause.
        for s in from(&steps, fail).iter().filter(|s| s.t < undo_t) {
            let sf = s
                .verdict
                .failure()
                .unwrap_or_else(|| panic!("[{label}] t={:.2}: {}", s.t, s.verdict));
            assert_eq!(sf.reason, FailureReason::CrashLoopBackOff, "t={:.2}", s.t);
        }
        rows.push(row(
            "crashloop-then-undo",
            label,
            fail,
            format!("{first_crash:.2} (first CrashLoopBackOff)"),
        ));

        // After the undo: progressing (the old ReplicaSet is the new one now;
        // the crashing pods are old and must not fail it), then complete.
        for s in steps.iter().filter(|s| s.t >= undo_t && s.t < complete_t) {
            assert!(
                matches!(s.verdict, Verdict::Progressing(_)),
                "[{label}] t={:.2}: {}",
                s.t,
                s.verdict
            );
        }
        let done = first_after(&steps, undo_t, Verdict::is_complete).expect("undo never complete");
        assert!(
            close(done.t, complete_t, 1e-9),
            "[{label}] Complete at {:.3}, expected {complete_t:.3}",
            done.t
        );
        assert!(close(done.t, 41.06, 0.05));
        let p = done.verdict.progress();
        assert_eq!(p.new_revision.as_deref(), Some("3"));
        assert!(!p.new_replica_set.as_deref().unwrap().starts_with(&new_rs));
        rows.push(row(
            "crashloop-then-undo",
            label,
            done,
            format!("{complete_t:.2} (kubectl rule, after undo)"),
        ));
    }

    // Without fail-fast: the controller's deadline, naming a crashing pod.
    let steps = replay(&records, &no_fail_fast());
    let fail = first_after(&steps, 0.0, Verdict::is_failed).expect("never failed");
    assert!(
        close(fail.t, deadline_t, 1e-9),
        "failed at {:.3}, deadline condition at {deadline_t:.3}",
        fail.t
    );
    let f = fail.verdict.failure().unwrap();
    assert_eq!(f.reason, FailureReason::ProgressDeadlineExceeded);
    assert!(f.pod.as_deref().unwrap().starts_with(&format!("{new_rs}-")));
    assert!(
        f.message.contains("exceeded its progress deadline")
            && f.message.contains("CrashLoopBackOff"),
        "{}",
        f.message
    );
    let first_seen_t = t_of(recording_start(&records), f.first_seen.unwrap());
    assert!(
        first_seen_t <= fail.t && first_seen_t > fail.t - 1.5,
        "{first_seen_t}"
    );
    rows.push(row(
        "crashloop-then-undo",
        "fail_fast=off",
        fail,
        format!("{deadline_t:.2} (ProgressDeadlineExceeded)"),
    ));
    let recovered = first_after(&steps, undo_t, |v| !v.is_failed()).unwrap();
    assert!(
        close(recovered.t, undo_t, 1e-9),
        "the undo is judged on its own at {:.2}",
        recovered.t
    );
    assert!(
        from(&steps, recovered)
            .iter()
            .all(|s| !s.verdict.is_failed())
    );
    let done = first_after(&steps, undo_t, Verdict::is_complete).unwrap();
    assert!(close(done.t, complete_t, 1e-9));
    rows
}

fn unready_deadline() -> Vec<Row> {
    const NAME: &str = "unready-deadline.jsonl";
    let records = load(NAME);
    let start = recording_start(&records);
    let (update_t, new_image) = image_change(&records, 0.0, &initial_image(&records));
    assert!(new_image.ends_with("-unready"));
    let new_rs = new_rs_name(&records, update_t);
    let deadline_t = deadline_record(&records).expect("deadline in recording");
    // When the first new container started (from its own timestamp) and when it was first seen running.
    let (started_at, seen_running) = records
        .iter()
        .filter(|r| {
            r.resource == "pods"
                && r.object["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{new_rs}-"))
        })
        .find_map(|r| {
            r.object["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]
                .as_str()
                .map(|s| (ts(s), r.t))
        })
        .unwrap();
    let mut rows = Vec::new();

    for (label, cfg, b) in [
        ("budget=10s", budget(10), 10.0),
        ("default (budget=30s)", JudgeConfig::default(), 30.0),
    ] {
        let steps = replay(&records, &cfg);
        let fail = first_after(&steps, 0.0, Verdict::is_failed).expect("never failed");
        let expected = t_of(start, started_at) + b;
        assert!(
            close(fail.t, expected, 1e-6),
            "[{label}] failed at {:.3}, expected {expected:.3}",
            fail.t
        );
        assert!(
            close(fail.t, seen_running + b, 1.0),
            "within the timestamps' one-second resolution"
        );
        assert!(fail.t <= deadline_t);
        assert!(
            fail.record.is_none() || fail.t == deadline_t,
            "a timer, not a watch event, must notice"
        );
        let f = fail.verdict.failure().unwrap();
        assert_eq!(f.reason, FailureReason::NeverReady);
        assert!(f.pod.as_deref().unwrap().starts_with(&format!("{new_rs}-")));
        assert_eq!(f.container.as_deref(), Some("web"));
        assert!(f.message.contains("not ready"), "{}", f.message);
        assert!(close(t_of(start, f.first_seen.unwrap()), fail.t, 1e-6));
        // Progressing (with a recheck time) until then.
        for s in steps.iter().filter(|s| s.t >= update_t && s.t < fail.t) {
            assert!(
                matches!(s.verdict, Verdict::Progressing(_)),
                "[{label}] t={:.2}: {}",
                s.t,
                s.verdict
            );
        }
        assert!(from(&steps, fail).iter().all(|s| s.verdict.is_failed()));
        rows.push(row(
            "unready-deadline",
            label,
            fail,
            format!("{expected:.2} (startedAt + budget)"),
        ));
    }

    // Without fail-fast: ProgressDeadlineExceeded exactly when the condition arrives.
    let steps = replay(
        &records,
        &JudgeConfig {
            fail_fast: false,
            ..budget(10)
        },
    );
    let fail = first_after(&steps, 0.0, Verdict::is_failed).expect("never failed");
    assert!(
        close(fail.t, deadline_t, 1e-9),
        "failed at {:.3}, deadline condition at {deadline_t:.3}",
        fail.t
    );
    let f = fail.verdict.failure().unwrap();
    assert_eq!(f.reason, FailureReason::ProgressDeadlineExceeded);
    assert!(f.pod.as_deref().unwrap().starts_with(&format!("{new_rs}-")));
    assert_eq!(f.container.as_deref(), Some("web"));
    assert!(f.message.contains("not ready"), "{}", f.message);
    assert_eq!(f.failing_pods.len(), 2, "{:?}", f.failing_pods);
    rows.push(row(
        "unready-deadline",
        "fail_fast=off",
        fail,
        format!("{deadline_t:.2} (ProgressDeadlineExceeded)"),
    ));

    // Driven by watch events alone, the budget would only be noticed at the next event.
    let events_only: Vec<_> = replay(&records, &budget(10))
        .into_iter()
        .filter(|s| s.record.is_some())
        .collect();
    let fail = first_after(&events_only, 0.0, Verdict::is_failed).unwrap();
    assert!(close(fail.t, deadline_t, 1e-9));
    rows
}

fn print_table(rows: &[Row]) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:<21} {:<20} {:>7}  {:<40} detail",
        "recording", "config", "verdict", "t (s)", "expected t"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<20} {:<21} {:<20} {:>7.2}  {:<40} {}",
            r.recording, r.config, r.verdict, r.t, r.expected, r.detail
        );
    }
    println!("{out}");
}

#[test]
fn replay_good_update() {
    print_table(&good_update());
}

#[test]
fn replay_imagepull_update() {
    print_table(&imagepull_update());
}

#[test]
fn replay_crashloop_then_undo() {
    print_table(&crashloop_then_undo());
}

#[test]
fn replay_unready_deadline() {
    print_table(&unready_deadline());
}

/// All four recordings in one table (`cargo test … -- --nocapture summary`).
#[test]
fn summary() {
    let mut rows = good_update();
    rows.extend(imagepull_update());
    rows.extend(crashloop_then_undo());
    rows.extend(unready_deadline());
    print_table(&rows);
}

// ---------------------------------------------------------------------------
// Edge cases on synthetic objects
// ---------------------------------------------------------------------------

const NS: &str = "edge";
const DEPLOY_UID: &str = "d-uid";
const T0: &str = "2030-01-01T00:00:00Z";

fn t0() -> Timestamp {
    ts(T0)
}

fn plus(s: i64) -> String {
    (t0() + SignedDuration::from_secs(s)).to_string()
}

fn template(image: &str, hash: Option<&str>) -> Value {
    let mut labels = json!({"app": "web"});
    if let Some(h) = hash {
        labels["pod-template-hash"] = json!(h);
    }
    json!({
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "web", "image": image, "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}}}]}
    })
}

struct Dep {
    image: &'static str,
    generation: i64,
    observed: i64,
    replicas: i32,
    status_replicas: i32,
    updated: i32,
    available: i32,
    revision: &'static str,
    paused: bool,
    conditions: Value,
}

impl Default for Dep {
    fn default() -> Self {
        Dep {
            image: "web:2",
            generation: 2,
            observed: 2,
            replicas: 2,
            status_replicas: 3,
            updated: 1,
            available: 2,
            revision: "2",
            paused: false,
            conditions: json!([]),
        }
    }
}

fn deployment(d: Dep) -> Object {
    Object::from_json(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": NS, "uid": DEPLOY_UID, "generation": d.generation,
                     "annotations": {"deployment.kubernetes.io/revision": d.revision}},
        "spec": {"replicas": d.replicas, "paused": d.paused, "progressDeadlineSeconds": 600,
                 "selector": {"matchLabels": {"app": "web"}}, "template": template(d.image, None)},
        "status": {"observedGeneration": d.observed, "replicas": d.status_replicas, "updatedReplicas": d.updated,
                   "readyReplicas": d.available, "availableReplicas": d.available, "conditions": d.conditions}
    }))
    .unwrap()
}

fn replica_set(hash: &str, image: &str, revision: &str, created: i64) -> Object {
    Object::from_json(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": format!("web-{hash}"), "namespace": NS, "uid": format!("rs-{hash}"),
                     "creationTimestamp": plus(created),
                     "labels": {"app": "web", "pod-template-hash": hash},
                     "annotations": {"deployment.kubernetes.io/revision": revision},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                          "uid": DEPLOY_UID, "controller": true}]},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web", "pod-template-hash": hash}},
                 "template": template(image, Some(hash))}
    }))
    .unwrap()
}

/// A pod of ReplicaSet `web-{hash}` created at T0+`created` whose container `web` has `state`.
fn pod(name: &str, hash: &str, created: i64, ready: bool, restarts: i32, state: Value) -> Object {
    Object::from_json(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": plus(created),
                     "labels": {"app": "web", "pod-template-hash": hash},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("web-{hash}"),
                                          "uid": format!("rs-{hash}"), "controller": true}]},
        "spec": {"containers": [{"name": "web", "image": "whatever"}]},
        "status": {
            "phase": "Running", "startTime": plus(created),
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": plus(created)}],
            "containerStatuses": [{"name": "web", "image": "whatever", "imageID": "", "ready": ready,
                                   "restartCount": restarts, "state": state}]
        }
    }))
    .unwrap()
}

fn running(since: i64) -> Value {
    json!({"running": {"startedAt": plus(since)}})
}

fn waiting(reason: &str, message: &str) -> Value {
    json!({"waiting": {"reason": reason, "message": message}})
}

fn event(
    name: &str,
    kind: &str,
    object: &str,
    type_: &str,
    reason: &str,
    message: &str,
    at: i64,
) -> Object {
    Object::from_json(json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": NS},
        "involvedObject": {"kind": kind, "name": object, "namespace": NS},
        "type": type_, "reason": reason, "message": message, "count": 1,
        "firstTimestamp": plus(at), "lastTimestamp": plus(at)
    }))
    .unwrap()
}

/// A mid-rollout state: old RS `web-old` (image web:1, two ready pods), new RS `web-new` (image web:2).
fn mid_rollout(d: Dep) -> RolloutState {
    let mut s = RolloutState::new();
    for o in [
        deployment(d),
        replica_set("old", "web:1", "1", 0),
        replica_set("new", "web:2", "2", 100),
        pod("web-old-a", "old", 0, true, 0, running(1)),
        pod("web-old-b", "old", 0, true, 0, running(1)),
    ] {
        s.apply(WatchEvent::Added(o));
    }
    s
}

fn now(s: i64) -> Timestamp {
    t0() + SignedDuration::from_secs(s)
}

#[test]
fn new_replica_set_is_found_by_template_not_by_name() {
    let s = mid_rollout(Dep::default());
    assert_eq!(
        s.new_replica_set()
            .and_then(|rs| rs.metadata.name.as_deref()),
        Some("web-new")
    );
    // An undo: the template is back to web:1, so the old ReplicaSet is the new one.
    let mut s = mid_rollout(Dep::default());
    s.apply(WatchEvent::Modified(deployment(Dep {
        image: "web:1",
        generation: 3,
        ..Dep::default()
    })));
    assert_eq!(
        s.new_replica_set()
            .and_then(|rs| rs.metadata.name.as_deref()),
        Some("web-old")
    );
}

#[test]
fn observed_generation_lagging_is_never_complete_nor_deadline_failed() {
    let cfg = JudgeConfig::default();
    // Status looks complete, but it describes the previous generation.
    let mut s = mid_rollout(Dep::default());
    s.apply(WatchEvent::Modified(deployment(Dep {
        generation: 3,
        observed: 2,
        status_replicas: 2,
        updated: 2,
        available: 2,
        ..Dep::default()
    })));
    let v = judge(&s, now(200), &cfg);
    assert!(matches!(v, Verdict::Progressing(_)), "{v}");
    assert_eq!(
        v.progress().message,
        "Waiting for deployment spec update to be observed..."
    );
    assert!(!v.progress().observed);

    // A stale ProgressDeadlineExceeded from the previous generation (as right after an undo).
    let stale = json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                        "lastUpdateTime": plus(150), "lastTransitionTime": plus(150)}]);
    s.apply(WatchEvent::Modified(deployment(Dep {
        generation: 3,
        observed: 2,
        conditions: stale.clone(),
        ..Dep::default()
    })));
    assert!(!judge(&s, now(200), &cfg).is_failed());
    // Once observed, it counts.
    s.apply(WatchEvent::Modified(deployment(Dep {
        generation: 3,
        observed: 3,
        conditions: stale,
        ..Dep::default()
    })));
    let v = judge(&s, now(200), &cfg);
    let f = v.failure().expect("deadline");
    assert_eq!(f.reason, FailureReason::ProgressDeadlineExceeded);
    assert_eq!(f.first_seen, Some(now(150)));
    assert!(f.message.contains("exceeded its progress deadline"));
}

#[test]
fn old_replica_set_pod_crashing_does_not_fail_the_rollout() {
    let cfg = JudgeConfig::default();
    let mut s = mid_rollout(Dep::default());
    s.apply(WatchEvent::Modified(pod(
        "web-old-a",
        "old",
        0,
        false,
        7,
        waiting("CrashLoopBackOff", "back-off"),
    )));
    s.apply(WatchEvent::Added(pod(
        "web-new-x",
        "new",
        100,
        true,
        0,
        running(101),
    )));
    let v = judge(&s, now(200), &cfg);
    assert!(matches!(v, Verdict::Progressing(_)), "{v}");
    assert!(
        v.progress().problems.is_empty(),
        "{:?}",
        v.progress().problems
    );

    // The same signal on a new pod fails it, naming that pod.
    s.apply(WatchEvent::Added(event(
        "e1",
        "Pod",
        "web-new-y",
        "Warning",
        "BackOff",
        "Back-off restarting failed container web",
        160,
    )));
    s.apply(WatchEvent::Added(event(
        "e0",
        "Pod",
        "web-old-a",
        "Warning",
        "BackOff",
        "old pod noise",
        160,
    )));
    s.apply(WatchEvent::Added(pod(
        "web-new-y",
        "new",
        100,
        false,
        1,
        waiting("CrashLoopBackOff", "back-off 10s"),
    )));
    let v = judge(&s, now(200), &cfg);
    let f = v.failure().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(f.reason, FailureReason::CrashLoopBackOff);
    assert_eq!(
        (f.pod.as_deref(), f.container.as_deref()),
        (Some("web-new-y"), Some("web"))
    );
    assert_eq!(f.failing_pods, vec!["web-new-y".to_owned()]);
    assert!(f.message.contains("last event: BackOff"), "{}", f.message);
    assert!(
        f.events.iter().all(|e| e.object != "Pod/web-old-a"),
        "{:?}",
        f.events
    );
    assert!(f.events.iter().any(|e| e.object == "Pod/web-new-y"));
}

#[test]
fn paused_is_reported_not_failed() {
    let cfg = JudgeConfig::default();
    let s = mid_rollout(Dep {
        paused: true,
        ..Dep::default()
    });
    let v = judge(&s, now(200), &cfg);
    assert!(matches!(v, Verdict::Paused(_)), "{v}");
    assert!(v.progress().paused && v.progress().message.contains("paused"));
    // Paused after completing: complete, as kubectl says.
    let mut s = mid_rollout(Dep {
        paused: true,
        status_replicas: 2,
        updated: 2,
        available: 2,
        ..Dep::default()
    });
    s.apply(WatchEvent::Deleted(pod(
        "web-old-a",
        "old",
        0,
        true,
        0,
        running(1),
    )));
    s.apply(WatchEvent::Deleted(pod(
        "web-old-b",
        "old",
        0,
        true,
        0,
        running(1),
    )));
    assert!(judge(&s, now(200), &cfg).is_complete());
}

#[test]
fn zero_replicas() {
    let cfg = JudgeConfig::default();
    let mut s = RolloutState::new();
    s.apply(WatchEvent::Added(deployment(Dep {
        replicas: 0,
        status_replicas: 1,
        updated: 0,
        available: 0,
        ..Dep::default()
    })));
    let v = judge(&s, now(0), &cfg);
    assert!(matches!(v, Verdict::Progressing(_)), "{v}");
    assert!(
        v.progress()
            .message
            .contains("1 old replicas are pending termination"),
        "{}",
        v.progress().message
    );
    s.apply(WatchEvent::Modified(deployment(Dep {
        replicas: 0,
        status_replicas: 0,
        updated: 0,
        available: 0,
        ..Dep::default()
    })));
    let v = judge(&s, now(0), &cfg);
    assert!(v.is_complete(), "{v}");
    assert_eq!(v.progress().desired, 0);
}

#[test]
fn kubectl_deployment_messages() {
    let cfg = JudgeConfig::default();
    let msg = |d: Dep| {
        judge(&mid_rollout(d), now(200), &cfg)
            .progress()
            .message
            .clone()
    };
    assert_eq!(
        msg(Dep::default()),
        "Waiting for deployment \"web\" rollout to finish: 1 out of 2 new replicas have been updated..."
    );
    assert_eq!(
        msg(Dep {
            updated: 2,
            status_replicas: 3,
            ..Dep::default()
        }),
        "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination..."
    );
    assert_eq!(
        msg(Dep {
            updated: 2,
            status_replicas: 2,
            available: 1,
            ..Dep::default()
        }),
        "Waiting for deployment \"web\" rollout to finish: 1 of 2 updated replicas are available..."
    );
    assert_eq!(
        msg(Dep {
            updated: 2,
            status_replicas: 2,
            available: 2,
            ..Dep::default()
        }),
        "deployment \"web\" successfully rolled out"
    );
}

#[test]
fn waiting_reasons_fail_fast() {
    let cases = [
        (
            "CreateContainerConfigError",
            FailureReason::CreateContainerConfigError,
        ),
        ("CreateContainerError", FailureReason::CreateContainerError),
        ("InvalidImageName", FailureReason::InvalidImageName),
        ("ErrImagePull", FailureReason::ImagePull),
        ("ImagePullBackOff", FailureReason::ImagePull),
        ("CrashLoopBackOff", FailureReason::CrashLoopBackOff),
    ];
    for (reason, expected) in cases {
        let mut s = mid_rollout(Dep::default());
        s.apply(WatchEvent::Added(pod(
            "web-new-x",
            "new",
            100,
            false,
            0,
            waiting(reason, "details here"),
        )));
        let v = judge(&s, now(130), &JudgeConfig::default());
        let f = v.failure().unwrap_or_else(|| panic!("{reason}: {v}"));
        assert_eq!(f.reason, expected, "{reason}");
        assert!(
            f.message.contains(reason) && f.message.contains("details here"),
            "{}",
            f.message
        );
        assert_eq!(
            f.first_seen,
            Some(now(100)),
            "{reason}: the pod became unready at creation"
        );
        // Without fail-fast it is only a problem, not a failure.
        let v = judge(
            &s,
            now(130),
            &JudgeConfig {
                fail_fast: false,
                ..JudgeConfig::default()
            },
        );
        assert!(matches!(v, Verdict::Progressing(_)), "{v}");
        assert!(
            v.progress()
                .problems
                .iter()
                .any(|p| p.reason == expected && p.fatal)
        );
    }
    // Ordinary waiting (image being pulled, container creating) is not a problem.
    let mut s = mid_rollout(Dep::default());
    s.apply(WatchEvent::Added(pod(
        "web-new-x",
        "new",
        100,
        false,
        0,
        waiting("ContainerCreating", ""),
    )));
    assert!(
        judge(&s, now(130), &JudgeConfig::default())
            .progress()
            .problems
            .is_empty()
    );
}

#[test]
fn restarts_count_only_while_not_ready() {
    let cfg = JudgeConfig {
        max_restarts: 3,
        ..JudgeConfig::default()
    };
    let mut s = mid_rollout(Dep::default());
    s.apply(WatchEvent::Added(pod(
        "web-new-x",
        "new",
        100,
        true,
        5,
        running(150),
    )));
    assert!(
        !judge(&s, now(160), &cfg).is_failed(),
        "ready now: old restarts are history"
    );
    s.apply(WatchEvent::Modified(pod(
        "web-new-x",
        "new",
        100,
        false,
        4,
        running(150),
    )));
    let f = judge(&s, now(160), &cfg)
        .failure()
        .cloned()
        .expect("too many restarts");
    assert_eq!(f.reason, FailureReason::TooManyRestarts);
    assert!(f.message.contains("restarted 4 times"), "{}", f.message);
    s.apply(WatchEvent::Modified(pod(
        "web-new-x",
        "new",
        100,
        false,
        3,
        running(150),
    )));
    assert!(
        !judge(&s, now(160), &cfg).is_failed(),
        "3 restarts is not more than 3"
    );
}

#[test]
fn readiness_budget_and_recheck() {
    let cfg = JudgeConfig {
        readiness_budget: Some(std::time::Duration::from_secs(20)),
        ..JudgeConfig::default()
    };
    let mut s = mid_rollout(Dep::default());
    s.apply(WatchEvent::Added(pod(
        "web-new-x",
        "new",
        100,
        false,
        0,
        running(105),
    )));
    let v = judge(&s, now(110), &cfg);
    assert!(matches!(v, Verdict::Progressing(_)), "{v}");
    assert_eq!(v.recheck_at(), Some(now(125)), "started at 105 + budget 20");
    assert!(!v.progress().problems[0].fatal);
    let v = judge(&s, now(125), &cfg);
    let f = v.failure().expect("never ready");
    assert_eq!(f.reason, FailureReason::NeverReady);
    assert_eq!(f.first_seen, Some(now(125)));
    assert_eq!(failure_started_at(&v), Some(now(125)));
    // The default budget is the Deployment's progressDeadlineSeconds (600 here).
    assert_eq!(
        judge(&s, now(125), &JudgeConfig::default()).recheck_at(),
        Some(now(705))
    );
}

#[test]
fn a_starting_pod_is_not_ready_yet_until_its_budget_is_spent() {
    let cfg = JudgeConfig {
        readiness_budget: Some(std::time::Duration::from_secs(120)),
        ..JudgeConfig::default()
    };
    let mut s = mid_rollout(Dep::default());
    s.apply(WatchEvent::Added(pod(
        "web-new-x",
        "new",
        100,
        false,
        0,
        running(105),
    )));
    // 6 s into a 120 s budget: merely starting, not a failure in the making.
    let v = judge(&s, now(111), &cfg);
    let p = &v.progress().problems[0];
    assert!(!p.fatal);
    assert_eq!(p.message, "not ready yet (6 s of 120 s)");
    let v = judge(&s, now(224), &cfg);
    assert_eq!(
        v.progress().problems[0].message,
        "not ready yet (119 s of 120 s)"
    );
    // The budget spent: the failure, in its own words.
    let v = judge(&s, now(226), &cfg);
    let f = v.failure().expect("never ready");
    assert_eq!(f.reason, FailureReason::NeverReady);
    assert!(
        f.message
            .ends_with("container web: running but not ready for 121s (readiness budget 120s)"),
        "{}",
        f.message
    );
}

#[test]
fn replica_failure_condition_fails_fast() {
    let cond = json!([{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                       "message": "pods \"web-new-\" is forbidden: exceeded quota", "lastTransitionTime": plus(120)}]);
    let s = mid_rollout(Dep {
        conditions: cond,
        ..Dep::default()
    });
    let f = judge(&s, now(130), &JudgeConfig::default())
        .failure()
        .cloned()
        .expect("replica failure");
    assert_eq!(f.reason, FailureReason::ReplicaFailure);
    assert!(f.message.contains("exceeded quota"));
    assert!(
        !judge(
            &s,
            now(130),
            &JudgeConfig {
                fail_fast: false,
                ..JudgeConfig::default()
            }
        )
        .is_failed()
    );
}

#[test]
fn unobserved_workload_is_progressing() {
    let v = judge(&RolloutState::new(), now(0), &JudgeConfig::default());
    assert!(matches!(v, Verdict::Progressing(_)));
    assert_eq!(v.progress().kind, None);
    let mut s = mid_rollout(Dep::default());
    s.apply(WatchEvent::Deleted(deployment(Dep::default())));
    assert!(s.workload().is_none());
}

#[test]
fn events_are_bounded_and_deduplicated() {
    let mut s = RolloutState::with_max_events(3);
    for i in 0..5 {
        s.apply(WatchEvent::Added(event(
            &format!("e{i}"),
            "Pod",
            "p",
            "Normal",
            "R",
            &format!("m{i}"),
            i,
        )));
    }
    let names: Vec<_> = s
        .events()
        .map(|e| e.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["e2", "e3", "e4"]);
    s.apply(WatchEvent::Modified(event(
        "e3", "Pod", "p", "Normal", "R", "m3 again", 9,
    )));
    let names: Vec<_> = s
        .events()
        .map(|e| e.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["e2", "e4", "e3"]);
    s.apply(WatchEvent::Deleted(event(
        "e4", "Pod", "p", "Normal", "R", "", 0,
    )));
    assert_eq!(s.events().count(), 2);
}

#[test]
fn decoding_watch_events() {
    assert!(matches!(
        WatchEvent::from_json("ADDED", json!({"kind": "Service", "metadata": {"name": "x"}})),
        Err(DecodeError::UnsupportedKind(k)) if k == "Service"
    ));
    assert!(matches!(
        WatchEvent::from_json("ADDED", json!({"metadata": {}})),
        Err(DecodeError::MissingKind)
    ));
    assert!(matches!(
        WatchEvent::from_json("BOOKMARK", json!({"kind": "Pod", "metadata": {}})),
        Err(DecodeError::UnknownEventType(_))
    ));
    assert!(matches!(
        WatchEvent::from_json("ADDED", json!({"kind": "Pod", "metadata": {"name": 7}})),
        Err(DecodeError::Invalid { .. })
    ));
}

fn statefulset(generation: i64, status: Value, strategy: Value) -> Object {
    Object::from_json(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": NS, "uid": "sts-uid", "generation": generation},
        "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": template("db:2", None), "updateStrategy": strategy},
        "status": status
    }))
    .unwrap()
}

#[test]
fn statefulset_status_like_kubectl() {
    let cfg = JudgeConfig::default();
    let judge_sts = |generation, status: Value, strategy: Value| {
        let mut s = RolloutState::new();
        s.apply(WatchEvent::Added(statefulset(generation, status, strategy)));
        judge(&s, now(0), &cfg)
    };
    let rolling = json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}});
    let v = judge_sts(
        2,
        json!({"observedGeneration": 1, "replicas": 3}),
        rolling.clone(),
    );
    assert_eq!(
        v.progress().message,
        "Waiting for statefulset spec update to be observed..."
    );
    let v = judge_sts(
        2,
        json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 2, "updatedReplicas": 3}),
        rolling.clone(),
    );
    assert_eq!(v.progress().message, "Waiting for 1 pods to be ready...");
    let partitioned = json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 1}});
    let v = judge_sts(
        2,
        json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 1}),
        partitioned.clone(),
    );
    assert_eq!(
        v.progress().message,
        "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated..."
    );
    let v = judge_sts(
        2,
        json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 2}),
        partitioned,
    );
    assert!(v.is_complete(), "{v}");
    let v = judge_sts(
        2,
        json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 1,
               "currentRevision": "db-1", "updateRevision": "db-2"}),
        json!({"type": "RollingUpdate"}),
    );
    assert_eq!(
        v.progress().message,
        "waiting for statefulset rolling update to complete 1 pods at revision db-2..."
    );
    let v = judge_sts(
        2,
        json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 3, "updatedReplicas": 3, "currentReplicas": 3,
               "currentRevision": "db-2", "updateRevision": "db-2"}),
        json!({"type": "RollingUpdate"}),
    );
    assert_eq!(
        v.progress().message,
        "statefulset rolling update complete 3 pods at revision db-2..."
    );
    assert!(v.is_complete());
    let v = judge_sts(
        2,
        json!({"observedGeneration": 2, "replicas": 3}),
        json!({"type": "OnDelete"}),
    );
    assert!(matches!(v, Verdict::Unsupported(_)), "{v}");

    // A crashing pod of the update revision fails it; one of the current revision does not.
    let mut s = RolloutState::new();
    s.apply(WatchEvent::Added(statefulset(
        2,
        json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 2, "updatedReplicas": 1,
               "currentRevision": "db-1", "updateRevision": "db-2"}),
        json!({"type": "RollingUpdate"}),
    )));
    let sts_pod = |name: &str, rev: &str, state: Value| {
        Object::from_json(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": {"app": "db", "controller-revision-hash": rev},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "sts-uid", "controller": true}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "db", "image": "", "imageID": "", "ready": false, "restartCount": 2, "state": state}]}
        }))
        .unwrap()
    };
    s.apply(WatchEvent::Added(sts_pod(
        "db-0",
        "db-1",
        waiting("CrashLoopBackOff", ""),
    )));
    assert!(!judge(&s, now(0), &cfg).is_failed());
    s.apply(WatchEvent::Added(sts_pod(
        "db-2",
        "db-2",
        waiting("CrashLoopBackOff", ""),
    )));
    let f = judge(&s, now(0), &cfg).failure().cloned().expect("failed");
    assert_eq!(f.pod.as_deref(), Some("db-2"));
    assert!(f.message.starts_with("statefulset \"db\""), "{}", f.message);
}

#[test]
fn daemonset_status_like_kubectl() {
    let cfg = JudgeConfig::default();
    let judge_ds = |generation: i64, status: Value, strategy: &str| {
        let mut s = RolloutState::new();
        s.apply(WatchEvent::Added(
            Object::from_json(json!({
                "apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": "agent", "namespace": NS, "generation": generation,
                             "annotations": {"deprecated.daemonset.template.generation": generation.to_string()}},
                "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template("agent:2", None),
                         "updateStrategy": {"type": strategy}},
                "status": status
            }))
            .unwrap(),
        ));
        judge(&s, now(0), &cfg)
    };
    let base = |observed: i64, updated: i32, available: i32| {
        json!({"observedGeneration": observed, "desiredNumberScheduled": 3, "currentNumberScheduled": 3,
               "numberMisscheduled": 0, "numberReady": available, "updatedNumberScheduled": updated,
               "numberAvailable": available})
    };
    assert_eq!(
        judge_ds(2, base(1, 3, 3), "RollingUpdate")
            .progress()
            .message,
        "Waiting for daemon set spec update to be observed..."
    );
    assert_eq!(
        judge_ds(2, base(2, 1, 3), "RollingUpdate")
            .progress()
            .message,
        "Waiting for daemon set \"agent\" rollout to finish: 1 out of 3 new pods have been updated..."
    );
    assert_eq!(
        judge_ds(2, base(2, 3, 2), "RollingUpdate")
            .progress()
            .message,
        "Waiting for daemon set \"agent\" rollout to finish: 2 of 3 updated pods are available..."
    );
    let v = judge_ds(2, base(2, 3, 3), "RollingUpdate");
    assert!(v.is_complete(), "{v}");
    assert_eq!(v.progress().new_revision.as_deref(), Some("2"));
    assert!(matches!(
        judge_ds(2, base(2, 3, 3), "OnDelete"),
        Verdict::Unsupported(_)
    ));
}

#[test]
fn startup_probe_extends_the_readiness_budget() {
    let cfg = JudgeConfig {
        readiness_budget: Some(std::time::Duration::from_secs(20)),
        ..JudgeConfig::default()
    };
    let mut s = mid_rollout(Dep::default());
    let Object::Pod(mut p) = pod("web-new-x", "new", 100, false, 0, running(105)) else {
        unreachable!()
    };
    p.spec.as_mut().unwrap().containers[0].startup_probe =
        Some(serde_json::from_value(json!({"periodSeconds": 5, "failureThreshold": 4})).unwrap());
    s.apply(WatchEvent::Added(Object::Pod(p)));
    // 105 + 20 (budget) + 5 × 4 (startup probe).
    assert_eq!(judge(&s, now(110), &cfg).recheck_at(), Some(now(145)));
    assert!(!judge(&s, now(144), &cfg).is_failed());
    assert!(judge(&s, now(145), &cfg).is_failed());
}
