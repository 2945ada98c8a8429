//! What the user sees while a rollout is watched: on a terminal (stderr), a live view redrawn in
//! place (indicatif, whose steady tick keeps the spinner going); otherwise plain timestamped
//! lines, printed only when something changed.
//! Also the failure report and the JSON form of a verdict.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use k8s_openapi::jiff::Timestamp;
use rollout_safe_policy::judge::{Failure, Progress, RolloutState, Verdict};
use serde_json::{Value, json};

/// Problems shown at most in the live view / per plain update.
const MAX_PROBLEMS_SHOWN: usize = 5;

/// `2026-11-22T23:10:24Z`
pub fn now_text() -> String {
    ts_text(Timestamp::now())
}

/// RFC 3339, whole seconds, truncated: a time shown or recorded is never later than the moment
/// (rounding could print a failure half a second in the future).
pub fn ts_text(t: Timestamp) -> String {
    Timestamp::from_second(t.as_second())
        .unwrap_or(t)
        .to_string()
}

/// Seconds with one decimal: `1.4s`.
pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

pub struct Display {
    title: String,
    started: Instant,
    bar: Option<ProgressBar>,
    last_plain: String,
}

impl Display {
    /// A live view when stderr is a terminal (and `TERM` is not `dumb`), plain lines otherwise.
    pub fn new(title: impl Into<String>) -> Self {
        let live =
            std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb");
        let mut d = Display {
            title: title.into(),
            started: Instant::now(),
            bar: None,
            last_plain: String::new(),
        };
        if live {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10));
            bar.set_style(
                ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} {elapsed:>4} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(d.title.clone());
            bar.set_message("connecting…");
            bar.enable_steady_tick(Duration::from_millis(120));
            d.bar = Some(bar);
        }
        d
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Redraws (live) or prints a line if the state changed (plain).
    pub fn update(&mut self, verdict: &Verdict, state: &RolloutState) {
        let p = verdict.progress();
        let pods = pod_counts(p, state);
        if let Some(bar) = &self.bar {
            let mut msg = format!(
                "{}\n  {}\n  {}\n  {}",
                verdict.label(),
                counts(p),
                pods,
                p.message
            );
            for line in problem_lines(p) {
                msg.push_str("\n  ");
                msg.push_str(&line);
            }
            bar.set_message(msg);
            return;
        }
        let mut text = format!(
            "{} {}: {}; {}; {}",
            self.title,
            verdict.label(),
            counts(p),
            pods,
            p.message
        );
        for line in problem_lines(p) {
            text.push_str("\n    ");
            text.push_str(&line);
        }
        if text != self.last_plain {
            eprintln!(
                "{} [{}] {text}",
                now_text(),
                secs_whole(self.started.elapsed())
            );
            self.last_plain = text;
        }
    }

    /// A line that stays (above the live view, or timestamped in plain mode).
    pub fn note(&self, msg: &str) {
        match &self.bar {
            Some(bar) => bar.println(msg),
            None => eprintln!("{} {msg}", now_text()),
        }
    }

    /// Stops the live view, leaving its last frame on screen.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        self.finish();
    }
}

fn secs_whole(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

/// `desired 4 · updated 2 · ready 3 · available 3`
pub fn counts(p: &Progress) -> String {
    format!(
        "desired {} · updated {} · ready {} · available {}",
        p.desired, p.updated, p.ready, p.available
    )
}

/// `pods: 2 new (web-7bd446db9, revision 3), 3 old, 1 terminating`
fn pod_counts(p: &Progress, state: &RolloutState) -> String {
    if p.kind == Some(rollout_safe_policy::WorkloadKind::Deployment) && p.new_replica_set.is_none()
    {
        return format!(
            "pods: {} old, the new ReplicaSet is not created yet",
            p.old_pods
        );
    }
    let new = match &p.new_replica_set {
        Some(_) => state
            .new_pods()
            .iter()
            .filter(|pod| pod.metadata.deletion_timestamp.is_none())
            .count(),
        None => p.updated.max(0) as usize,
    };
    let mut s = format!("pods: {new} new");
    match (&p.new_replica_set, &p.new_revision) {
        (Some(rs), Some(rev)) => s.push_str(&format!(" ({rs}, revision {rev})")),
        (None, Some(rev)) => s.push_str(&format!(" (revision {rev})")),
        (Some(rs), None) => s.push_str(&format!(" ({rs})")),
        (None, None) => {}
    }
    s.push_str(&format!(", {} old", p.old_pods));
    if p.terminating_pods > 0 {
        s.push_str(&format!(", {} terminating", p.terminating_pods));
    }
    s
}

fn problem_lines(p: &Progress) -> Vec<String> {
    let mut out: Vec<String> = p
        .problems
        .iter()
        .take(MAX_PROBLEMS_SHOWN)
        .map(|q| {
            let mark = if q.fatal { "✗" } else { "…" };
            let who = match &q.container {
                Some(c) => format!("{} {c}", q.pod),
                None => q.pod.clone(),
            };
            let mut line = format!("{mark} {who}: {} ({})", q.message, q.reason);
            if !q.fatal
                && let Some(at) = q.fails_at
            {
                line.push_str(&format!(", counts as failed at {}", ts_text(at)));
            }
            line
        })
        .collect();
    if p.problems.len() > MAX_PROBLEMS_SHOWN {
        out.push(format!(
            "… and {} more",
            p.problems.len() - MAX_PROBLEMS_SHOWN
        ));
    }
    out
}

/// The failure, told for people: reason, pod, container, message, failing pods, recent events.
pub fn failure_report(f: &Failure) -> String {
    let mut out = format!("rollout failed: {}\n", f.reason);
    match (&f.pod, &f.container) {
        (Some(p), Some(c)) => out.push_str(&format!("  pod:       {p}\n  container: {c}\n")),
        (Some(p), None) => out.push_str(&format!("  pod:       {p}\n")),
        _ => {}
    }
    out.push_str(&format!(
        "  reason:    {}\n  message:   {}\n",
        f.reason, f.message
    ));
    if let Some(t) = f.first_seen {
        out.push_str(&format!("  since:     {}\n", ts_text(t)));
    }
    if f.failing_pods.len() > 1 {
        out.push_str(&format!(
            "  failing pods of the new revision: {}\n",
            f.failing_pods.join(", ")
        ));
    }
    if !f.events.is_empty() {
        out.push_str("  recent events:\n");
        for e in &f.events {
            out.push_str(&format!("    {e}\n"));
        }
    }
    out.trim_end().to_owned()
}

fn ts_json(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| Value::String(ts_text(t)))
}

/// The verdict as data (`status -o json`).
pub fn verdict_json(workload: &str, namespace: &str, v: &Verdict) -> Value {
    let p = v.progress();
    let problems: Vec<Value> = p
        .problems
        .iter()
        .map(|q| {
            json!({
                "pod": q.pod, "container": q.container, "reason": q.reason.as_str(), "message": q.message,
                "since": ts_json(q.since), "failsAt": ts_json(q.fails_at), "fatal": q.fatal,
            })
        })
        .collect();
    let failure = v.failure().map(|f| {
        let events: Vec<Value> = f
            .events
            .iter()
            .map(|e| {
                json!({"type": e.type_, "reason": e.reason, "object": e.object, "message": e.message,
                    "count": e.count, "lastSeen": ts_json(e.last_seen)})
            })
            .collect();
        json!({
            "reason": f.reason.as_str(), "pod": f.pod, "container": f.container, "message": f.message,
            "firstSeen": ts_json(f.first_seen), "failingPods": f.failing_pods, "events": events,
        })
    });
    json!({
        "workload": workload,
        "namespace": namespace,
        "verdict": v.label(),
        "message": p.message,
        "progress": {
            "desired": p.desired, "updated": p.updated, "ready": p.ready, "available": p.available,
            "total": p.total, "oldReplicas": p.old_replicas, "oldPods": p.old_pods,
            "terminatingPods": p.terminating_pods, "newRevision": p.new_revision,
            "newReplicaSet": p.new_replica_set, "observed": p.observed, "paused": p.paused,
        },
        "problems": problems,
        "failure": failure,
    })
}

/// The verdict for people (`status` without `-o`).
pub fn verdict_text(workload: &str, v: &Verdict) -> String {
    let p = v.progress();
    let mut out = format!(
        "{workload}: {}\n  {}\n  {}\n",
        v.label(),
        p.message,
        counts(p)
    );
    let new_rs_known = p.new_replica_set.is_some()
        || p.kind != Some(rollout_safe_policy::WorkloadKind::Deployment);
    if let Some(rev) = p.new_revision.as_ref().filter(|_| new_rs_known) {
        out.push_str(&format!("  new revision {rev}"));
        if let Some(rs) = &p.new_replica_set {
            out.push_str(&format!(" ({rs})"));
        }
        out.push_str(&format!(", {} old replica(s)\n", p.old_replicas));
    }
    if let Some(f) = v.failure() {
        out.push_str(&failure_report(f));
        out.push('\n');
    } else {
        for line in problem_lines(p) {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out.trim_end().to_owned()
}
