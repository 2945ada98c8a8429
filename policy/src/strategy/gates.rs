//! Metric gates while a rollout runs: each gate's checks, the consecutive-failure count that
//! fails the rollout, "passed at least once since the step began" that lets it advance, and the
//! state written to (and read back from) the workload's `rollout-safe.dev/gates` annotation.
//!
//! The plugin queries Prometheus on a `--gate-interval` timer, hands each answer to
//! [`GateBoard::record`], and asks [`GateBoard::decision`]; the readiness hold
//! ([`super::hold::HoldInput::gates`]) joins it with the pod signals. Pure: `now` is an
//! argument.

use serde::{Deserialize, Serialize};

use k8s_openapi::jiff::Timestamp;

use super::schema::ts_text;
use crate::gates::{Comparison, Gate, GateResult, number_text};
use crate::judge::{self, FailureReason, Progress};

/// The workload annotation that holds the gates' last evaluations (JSON).
pub const GATES_ANNOTATION: &str = "rollout-safe.dev/gates";

/// One gate as it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct GateStatus {
    pub gate: Gate,
    /// The query as last sent (placeholders filled).
    pub query_sent: Option<String>,
    pub last: Option<GateResult>,
    pub last_at: Option<Timestamp>,
    /// Failed checks in a row (a pass resets it; an inconclusive check leaves it as it is).
    pub consecutive_failures: u32,
    /// Checks with a result (pass, fail or inconclusive), in all steps.
    pub checks: u32,
    pub passed_since_step: bool,
}

/// Why a rollout is failed by a gate: the gate, the query as sent and the value that failed it.
#[derive(Debug, Clone, PartialEq)]
pub struct GateFailure {
    pub gate: Gate,
    pub query_sent: String,
    pub value: f64,
    pub failures: u32,
}

impl GateFailure {
    /// `gate errors: 0.05 is not < 0.01 (2 consecutive failed checks)`
    pub fn summary(&self) -> String {
        format!(
            "gate {}: {} is not {} ({} consecutive failed check{})",
            self.gate.name,
            number_text(self.value),
            self.gate.condition(),
            self.failures,
            if self.failures == 1 { "" } else { "s" }
        )
    }

    /// The failure as the judge reports one (`MetricGate`), at `progress`; the message names
    /// the gate, the value and the query as sent.
    pub fn into_failure(self, progress: Progress) -> judge::Failure {
        judge::Failure {
            reason: FailureReason::MetricGate,
            pod: None,
            container: None,
            message: format!("{}; query sent: {}", self.summary(), self.query_sent),
            events: Vec::new(),
            first_seen: None,
            failing_pods: Vec::new(),
            progress,
        }
    }
}

/// What the gates say now.
#[derive(Debug, Clone, PartialEq)]
pub enum GateDecision {
    /// Every gate passed at least once since the step began, and none failed too often.
    Pass,
    /// Not yet: a gate has not passed since the step began (not checked, inconclusive, or
    /// failing fewer times in a row than allowed).
    Wait(String),
    Fail(GateFailure),
}

/// Every gate of one run, and how many consecutive failed checks fail it.
#[derive(Debug, Clone, PartialEq)]
pub struct GateBoard {
    pub gates: Vec<GateStatus>,
    pub failures_allowed: u32,
    /// What the current step is called (`25%`, `bake`), for the annotation.
    pub step: String,
}

impl GateBoard {
    /// `failures_allowed`: consecutive failed checks that fail the rollout (at least 1).
    pub fn new(gates: Vec<Gate>, failures_allowed: u32) -> Self {
        GateBoard {
            gates: gates
                .into_iter()
                .map(|gate| GateStatus {
                    gate,
                    query_sent: None,
                    last: None,
                    last_at: None,
                    consecutive_failures: 0,
                    checks: 0,
                    passed_since_step: false,
                })
                .collect(),
            failures_allowed: failures_allowed.max(1),
            step: String::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.gates.is_empty()
    }

    /// A new step begins: every gate must pass again before it completes, and failures are
    /// counted afresh.
    pub fn begin_step(&mut self, step: &str) {
        self.step = step.to_owned();
        for g in &mut self.gates {
            g.passed_since_step = false;
            g.consecutive_failures = 0;
        }
    }

    /// Records gate `index`'s result of a check at `at`.
    pub fn record(&mut self, index: usize, query_sent: String, result: GateResult, at: Timestamp) {
        let Some(g) = self.gates.get_mut(index) else {
            return;
        };
        g.checks += 1;
        match &result {
            GateResult::Pass(_) => {
                g.consecutive_failures = 0;
                g.passed_since_step = true;
            }
            GateResult::Fail(_) => g.consecutive_failures += 1,
            GateResult::Inconclusive(_) => {}
        }
        g.query_sent = Some(query_sent);
        g.last = Some(result);
        g.last_at = Some(at);
    }

    /// Checks recorded over all gates.
    pub fn checks(&self) -> u32 {
        self.gates.iter().map(|g| g.checks).sum()
    }

    /// Fail as soon as a gate failed `failures_allowed` checks in a row; pass when each gate
    /// passed since the step began and none failed its last check; otherwise wait, saying why.
    pub fn decision(&self) -> GateDecision {
        for g in &self.gates {
            if g.consecutive_failures >= self.failures_allowed
                && let Some(GateResult::Fail(value)) = g.last
            {
                return GateDecision::Fail(GateFailure {
                    gate: g.gate.clone(),
                    query_sent: g.query_sent.clone().unwrap_or_else(|| g.gate.query.clone()),
                    value,
                    failures: g.consecutive_failures,
                });
            }
        }
        // Nothing advances while a gate's last check failed, even if it passed before.
        let waiting: Vec<String> = self
            .gates
            .iter()
            .filter(|g| !g.passed_since_step || matches!(g.last, Some(GateResult::Fail(_))))
            .map(|g| format!("gate {}: {}", g.gate.name, self.state_text(g)))
            .collect();
        if waiting.is_empty() {
            GateDecision::Pass
        } else {
            GateDecision::Wait(waiting.join("; "))
        }
    }

    /// What the last check says on its own, with no counting (`blue-green finish`, after a
    /// `--detach`ed window that no process watched): a gate failing fails, a gate without a
    /// sample waits, all passing pass.
    pub fn last_check(&self) -> GateDecision {
        for g in &self.gates {
            if let Some(GateResult::Fail(value)) = g.last {
                return GateDecision::Fail(GateFailure {
                    gate: g.gate.clone(),
                    query_sent: g.query_sent.clone().unwrap_or_else(|| g.gate.query.clone()),
                    value,
                    failures: g.consecutive_failures,
                });
            }
        }
        let waiting: Vec<String> = self
            .gates
            .iter()
            .filter(|g| !matches!(g.last, Some(GateResult::Pass(_))))
            .map(|g| format!("gate {}: {}", g.gate.name, self.state_text(g)))
            .collect();
        if waiting.is_empty() {
            GateDecision::Pass
        } else {
            GateDecision::Wait(waiting.join("; "))
        }
    }

    fn state_text(&self, g: &GateStatus) -> String {
        match &g.last {
            None => "not checked yet".to_owned(),
            Some(GateResult::Inconclusive(why)) => format!("inconclusive: {why}"),
            Some(GateResult::Fail(v)) => format!(
                "{} is not {} ({} of {} failed checks)",
                number_text(*v),
                g.gate.condition(),
                g.consecutive_failures,
                self.failures_allowed
            ),
            Some(GateResult::Pass(v)) if g.passed_since_step => {
                format!("{} {} passed", number_text(*v), g.gate.condition())
            }
            Some(GateResult::Pass(_)) => "not checked in this step yet".to_owned(),
        }
    }

    /// One line per gate for the live view: last value, threshold, failure count.
    /// `✓ errors 0.002 (< 0.01) · failures 0/2 · checks 4`
    pub fn lines(&self) -> Vec<String> {
        self.gates
            .iter()
            .map(|g| {
                let (mark, value) = match &g.last {
                    None => ("…", "not checked yet".to_owned()),
                    Some(GateResult::Pass(v)) => ("✓", number_text(*v)),
                    Some(GateResult::Fail(v)) => ("✗", number_text(*v)),
                    Some(GateResult::Inconclusive(why)) => ("?", format!("inconclusive: {why}")),
                };
                format!(
                    "{mark} gate {} {value} (needs {}) · failures {}/{} · checks {}",
                    g.gate.name,
                    g.gate.condition(),
                    g.consecutive_failures,
                    self.failures_allowed,
                    g.checks
                )
            })
            .collect()
    }

    /// The annotation's value: each gate's last evaluation, for `status` in another terminal
    /// and for `blue-green finish`.
    pub fn annotation(&self, workload: &str, prometheus: &str) -> GatesRecord {
        GatesRecord {
            workload: workload.to_owned(),
            prometheus: prometheus.to_owned(),
            step: self.step.clone(),
            gate_failures: self.failures_allowed,
            gates: self
                .gates
                .iter()
                .map(|g| GateRecord {
                    name: g.gate.name.clone(),
                    query: g.gate.query.clone(),
                    op: g.gate.op.as_str().to_owned(),
                    threshold: g.gate.threshold,
                    query_sent: g.query_sent.clone(),
                    result: g.last.as_ref().map(|r| r.word().to_owned()),
                    value: g.last.as_ref().and_then(GateResult::value).map(number_text),
                    reason: match &g.last {
                        Some(GateResult::Inconclusive(why)) => Some(why.clone()),
                        _ => None,
                    },
                    at: g.last_at.map(ts_text),
                    consecutive_failures: g.consecutive_failures,
                    checks: g.checks,
                    passed_since_step: g.passed_since_step,
                })
                .collect(),
        }
    }
}

/// The `rollout-safe.dev/gates` annotation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatesRecord {
    /// The Deployment whose pods the gates judged (`deployment/shop-canary`).
    pub workload: String,
    /// The Prometheus URL queried (no credentials).
    pub prometheus: String,
    pub step: String,
    pub gate_failures: u32,
    pub gates: Vec<GateRecord>,
}

/// One gate's last evaluation, as the annotation holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateRecord {
    pub name: String,
    /// The query as written (placeholders unexpanded).
    pub query: String,
    pub op: String,
    pub threshold: f64,
    pub query_sent: Option<String>,
    /// `pass`, `fail`, `inconclusive`; `None`: not checked yet.
    pub result: Option<String>,
    /// The sample, as text (`0.05`, `+Inf`).
    pub value: Option<String>,
    /// Why the result was inconclusive.
    pub reason: Option<String>,
    pub at: Option<String>,
    pub consecutive_failures: u32,
    pub checks: u32,
    pub passed_since_step: bool,
}

/// A `rollout-safe.dev/gates` annotation that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("annotation {GATES_ANNOTATION} is not a gates record")]
    Json(#[source] serde_json::Error),
    #[error(
        "annotation {GATES_ANNOTATION}: gate {name:?} has the operator {op:?} (expected <, <=, > or >=)"
    )]
    Operator { name: String, op: String },
}

impl GatesRecord {
    pub fn to_json(&self) -> String {
        // A record of strings and numbers always serialises; NaN thresholds are refused at
        // parse time.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(text: &str) -> Result<Self, RecordError> {
        serde_json::from_str(text).map_err(RecordError::Json)
    }

    /// The gates the record was written for (to evaluate them again: `blue-green finish`).
    pub fn gates(&self) -> Result<Vec<Gate>, RecordError> {
        self.gates
            .iter()
            .map(|g| {
                Ok(Gate {
                    name: g.name.clone(),
                    query: g.query.clone(),
                    op: Comparison::parse(&g.op).ok_or_else(|| RecordError::Operator {
                        name: g.name.clone(),
                        op: g.op.clone(),
                    })?,
                    threshold: g.threshold,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::parse_gate;

    fn board() -> GateBoard {
        GateBoard::new(
            vec![
                parse_gate("errors: e{pod=~\"{{pods}}\"} < 0.01", "--gate").unwrap(),
                parse_gate("latency: l >= 0", "--gate").unwrap(),
            ],
            2,
        )
    }

    fn t(s: u32) -> Timestamp {
        format!("2026-01-01T00:00:{s:02}Z").parse().unwrap()
    }

    #[test]
    fn every_gate_must_pass_since_the_step_began() {
        let mut b = board();
        b.begin_step("25%");
        assert!(
            matches!(b.decision(), GateDecision::Wait(ref w) if w.contains("gate errors: not checked yet") && w.contains("gate latency"))
        );
        b.record(0, "e".into(), GateResult::Pass(0.0), t(1));
        assert!(
            matches!(b.decision(), GateDecision::Wait(ref w) if !w.contains("errors") && w.contains("latency"))
        );
        b.record(
            1,
            "l".into(),
            GateResult::Inconclusive("the query returned no data".into()),
            t(1),
        );
        assert!(
            matches!(b.decision(), GateDecision::Wait(ref w) if w.contains("gate latency: inconclusive: the query returned no data"))
        );
        b.record(1, "l".into(), GateResult::Pass(0.2), t(2));
        assert_eq!(b.decision(), GateDecision::Pass);
        // The next step starts from nothing: no promotion on an old pass.
        b.begin_step("50%");
        assert!(
            matches!(b.decision(), GateDecision::Wait(ref w) if w.contains("not checked in this step yet"))
        );
        assert_eq!(b.checks(), 3);
    }

    #[test]
    fn consecutive_failures_fail_and_a_pass_resets_them() {
        let mut b = board();
        b.begin_step("bake");
        b.record(0, "e{pod=~\"a\"}".into(), GateResult::Fail(0.05), t(1));
        assert!(
            matches!(b.decision(), GateDecision::Wait(ref w) if w.contains("0.05 is not < 0.01 (1 of 2 failed checks)"))
        );
        b.record(0, "e".into(), GateResult::Pass(0.0), t(2));
        b.record(0, "e".into(), GateResult::Fail(0.05), t(3));
        // Inconclusive neither counts nor resets.
        b.record(
            0,
            "e".into(),
            GateResult::Inconclusive("no answer".into()),
            t(4),
        );
        assert!(!matches!(b.decision(), GateDecision::Fail(_)));
        b.record(0, "e{pod=~\"b\"}".into(), GateResult::Fail(0.07), t(5));
        match b.decision() {
            GateDecision::Fail(f) => {
                assert_eq!(
                    (f.gate.name.as_str(), f.value, f.failures),
                    ("errors", 0.07, 2)
                );
                assert_eq!(f.query_sent, "e{pod=~\"b\"}");
                assert_eq!(
                    f.summary(),
                    "gate errors: 0.07 is not < 0.01 (2 consecutive failed checks)"
                );
                let failure = f.into_failure(Progress::default());
                assert_eq!(failure.reason, FailureReason::MetricGate);
                assert!(
                    failure.message.ends_with("query sent: e{pod=~\"b\"}"),
                    "{}",
                    failure.message
                );
            }
            other => panic!("{other:?}"),
        }
        // A failure limit of 0 is read as 1.
        let mut one = GateBoard::new(vec![parse_gate("x: x < 1", "--gate").unwrap()], 0);
        one.record(0, "x".into(), GateResult::Fail(2.0), t(1));
        assert!(matches!(one.decision(), GateDecision::Fail(_)));
    }

    #[test]
    fn one_look_fails_on_a_single_failure() {
        let mut b = board();
        b.begin_step("finish");
        b.record(0, "e".into(), GateResult::Pass(0.0), t(1));
        b.record(
            1,
            "l".into(),
            GateResult::Inconclusive("no answer".into()),
            t(1),
        );
        assert!(
            matches!(b.last_check(), GateDecision::Wait(ref w) if w.contains("gate latency: inconclusive: no answer") && !w.contains("errors"))
        );
        b.record(1, "l".into(), GateResult::Pass(1.0), t(2));
        assert_eq!(b.last_check(), GateDecision::Pass);
        b.record(0, "e".into(), GateResult::Fail(0.2), t(3));
        // One failed check: the counting decision waits, the one look fails.
        assert!(matches!(b.decision(), GateDecision::Wait(_)));
        assert!(
            matches!(b.last_check(), GateDecision::Fail(ref f) if f.value == 0.2 && f.failures == 1)
        );
    }

    #[test]
    fn the_live_view_shows_value_threshold_and_failures() {
        let mut b = board();
        b.record(0, "e".into(), GateResult::Fail(0.05), t(1));
        b.record(
            1,
            "l".into(),
            GateResult::Inconclusive("no answer".into()),
            t(1),
        );
        assert_eq!(
            b.lines(),
            [
                "✗ gate errors 0.05 (needs < 0.01) · failures 1/2 · checks 1",
                "? gate latency inconclusive: no answer (needs >= 0) · failures 0/2 · checks 1"
            ]
        );
    }

    #[test]
    fn the_annotation_round_trips() {
        let mut b = board();
        b.begin_step("25%");
        b.record(0, "e{pod=~\"a\"}".into(), GateResult::Fail(0.05), t(7));
        let rec = b.annotation("deployment/shop-canary", "http://127.0.0.1:9090");
        let text = rec.to_json();
        let back = GatesRecord::from_json(&text).unwrap();
        assert_eq!(back, rec);
        assert_eq!(back.gates[0].value.as_deref(), Some("0.05"));
        assert_eq!(back.gates[0].result.as_deref(), Some("fail"));
        assert_eq!(back.gates[0].at.as_deref(), Some("2026-01-01T00:00:07Z"));
        assert_eq!(back.gates[1].result, None);
        assert_eq!(back.step, "25%");
        let gates = back.gates().unwrap();
        assert_eq!(
            gates,
            b.gates.iter().map(|g| g.gate.clone()).collect::<Vec<_>>()
        );
        assert!(GatesRecord::from_json("{").is_err());
        let mut bad = rec.clone();
        bad.gates[0].op = "==".into();
        assert!(matches!(bad.gates(), Err(RecordError::Operator { .. })));
    }
}
