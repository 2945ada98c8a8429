//! What the user sees while a rollout is watched: on a terminal (stderr), a live view redrawn in
//! place (indicatif, whose steady tick keeps the spinner going); otherwise plain timestamped
//! lines, printed only when something changed. Also the JSON form of a verdict.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use k8s_openapi::jiff::Timestamp;
use rollout_safe_policy::judge::{Progress, RolloutState, Verdict};
use serde_json::{Value, json};

use crate::cluster::watch::WatchView;
use crate::ops::session::Views;
use crate::text::{counts, now_text, problem_lines, ts_text};

pub struct Display {
    title: String,
    started: Instant,
    bar: Option<ProgressBar>,
    last_plain: String,
    /// The metric gates' lines after their last check (empty: no gates).
    gates: Vec<String>,
    last_gates: Vec<String>,
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
            gates: Vec::new(),
            last_gates: Vec::new(),
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
            for line in problem_lines(p).iter().chain(&self.gates) {
                msg.push_str("\n  ");
                msg.push_str(line);
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

    /// The metric gates after a check: shown under the pods (live), or printed when they
    /// changed (plain).
    pub fn gates(&mut self, lines: &[String]) {
        self.gates = lines.to_vec();
        if self.bar.is_some() {
            return;
        }
        // Printed when a gate's value, result or failure count changed, not at every check.
        let shown: Vec<String> = self
            .gates
            .iter()
            .map(|l| l.split(" · checks ").next().unwrap_or(l).to_owned())
            .collect();
        if shown != self.last_gates {
            for line in &self.gates {
                eprintln!("{} {} {line}", now_text(), self.title);
            }
            self.last_gates = shown;
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

impl WatchView for Display {
    fn update(&mut self, verdict: &Verdict, state: &RolloutState) {
        Display::update(self, verdict, state);
    }

    fn note(&mut self, line: &str) {
        Display::note(self, line);
    }

    fn gates(&mut self, lines: &[String]) {
        Display::gates(self, lines);
    }
}

/// Views of watches on the terminal (stderr): [`Display`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TerminalViews;

impl Views for TerminalViews {
    fn watch(&self, title: String) -> Box<dyn WatchView> {
        Box::new(Display::new(title))
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
