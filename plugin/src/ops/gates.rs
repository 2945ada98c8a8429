//! Metric gates in the operations: the typed settings the commands build, the pre-flight
//! query (before any write), and [`GateRunner`], the [`GateSource`] a gated watch checks on
//! its `--gate-interval` timer. Each check queries Prometheus (`metrics`), records the results
//! on the gate board (`rollout_safe_policy::strategy::gates`, which decides), and writes every
//! gate's last evaluation into the `rollout-safe.dev/gates` annotation of the workload the user
//! named, so `status -o json` in another terminal sees it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;
use rollout_safe_policy::gates::{
    Gate, GateResult, Placeholders, Reading, ResponseError, evaluate, expand, reading_from_response,
};
use rollout_safe_policy::judge::RolloutState;
use rollout_safe_policy::strategy::gates::{GATES_ANNOTATION, GateBoard, GateDecision};
use rollout_safe_policy::{RolloutPolicy, WorkloadKind};

use crate::cluster::client::Cluster;
use crate::cluster::deployments::annotate;
use crate::cluster::refs::WorkloadRef;
use crate::cluster::sets::annotate_set;
use crate::cluster::watch::{GateSource, snapshot};
use crate::error::{Error, chain};
use crate::metrics::{MetricsError, Prometheus, PrometheusOptions};

/// `--prometheus …`, `--gate …`, `--gate-interval`, `--gate-failures`, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct GateSettings {
    /// How to reach Prometheus; an empty URL: no `--prometheus` (then a gate is an error,
    /// except for `blue-green finish`, which falls back on the URL the run recorded).
    pub prometheus: PrometheusOptions,
    /// The `--gate` flags (added to the policy file's gates).
    pub gates: Vec<Gate>,
    pub interval: Duration,
    /// Consecutive failed checks that fail the rollout.
    pub failures: u32,
}

impl Default for GateSettings {
    fn default() -> Self {
        GateSettings {
            prometheus: PrometheusOptions {
                url: String::new(),
                token: None,
                token_file: None,
                ca_file: None,
                insecure_skip_tls_verify: false,
                timeout: Duration::from_secs(10),
            },
            gates: Vec::new(),
            interval: Duration::from_secs(30),
            failures: 2,
        }
    }
}

impl GateSettings {
    /// The gates for a workload: the policy file's that select it, then the flags'. A gate
    /// named twice is an error (the annotation and the reports name gates).
    pub fn gates_for(
        &self,
        policy: &RolloutPolicy,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<Gate>, Error> {
        let mut all = policy.gates_for(namespace, labels);
        all.extend(self.gates.iter().cloned());
        let mut seen = std::collections::BTreeSet::new();
        for g in &all {
            if !seen.insert(g.name.as_str()) {
                return Err(Error::usage(format!(
                    "two metric gates are named {:?} (the policy file's and --gate's names must differ)",
                    g.name
                )));
            }
        }
        Ok(all)
    }

    /// A runner for `gates` (`None` when there are none). `annotated`: the Deployment whose
    /// annotation shows them.
    pub fn runner(
        &self,
        cluster: &Cluster,
        gates: Vec<Gate>,
        subject: Subject,
        annotated: &str,
    ) -> Result<Option<GateRunner>, Error> {
        if gates.is_empty() {
            return Ok(None);
        }
        let opts = &self.prometheus;
        if opts.url.is_empty() {
            return Err(Error::usage(format!(
                "metric gates ({}) need Prometheus: pass --prometheus URL or set ROLLOUT_SAFE_PROMETHEUS",
                gates
                    .iter()
                    .map(|g| g.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let prometheus = Prometheus::new(opts).map_err(|e| Error::Prometheus(Box::new(e)))?;
        Ok(Some(GateRunner {
            prometheus,
            board: Arc::new(Mutex::new(GateBoard::new(gates, self.failures))),
            interval: self.interval,
            next: tokio::time::Instant::now(),
            subject,
            cluster: cluster.clone(),
            annotated: annotated.to_owned(),
            annotated_kind: WorkloadKind::Deployment,
        }))
    }
}

/// What the placeholders other than the pods stand for: the Deployment judged and its
/// colour or track.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub color: String,
    pub track: String,
}

/// The placeholders of the version `state` shows as new: its Deployment, ReplicaSet and
/// (not terminating) pods.
pub fn placeholders(state: &RolloutState, namespace: &str, subject: &Subject) -> Placeholders {
    let workload = state
        .workload()
        .and_then(|w| w.metadata().name.clone())
        .unwrap_or_default();
    Placeholders {
        namespace: namespace.to_owned(),
        workload,
        replicaset: state
            .new_replica_set()
            .and_then(|rs| rs.metadata.name.clone())
            .unwrap_or_default(),
        pods: state
            .new_pods()
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.name.clone())
            .collect(),
        color: subject.color.clone(),
        track: subject.track.clone(),
    }
}

/// The gates of one run, checked against Prometheus.
pub struct GateRunner {
    prometheus: Prometheus,
    board: Arc<Mutex<GateBoard>>,
    interval: Duration,
    next: tokio::time::Instant,
    subject: Subject,
    cluster: Cluster,
    annotated: String,
    /// The kind of [`GateRunner::annotated`] (a Deployment unless [`GateRunner::annotate_on`]).
    annotated_kind: WorkloadKind,
}

impl GateRunner {
    /// The gates' annotation goes on a workload of this kind (a StatefulSet, a DaemonSet).
    pub fn annotate_on(&mut self, kind: WorkloadKind) {
        self.annotated_kind = kind;
    }

    fn board(&self) -> std::sync::MutexGuard<'_, GateBoard> {
        self.board.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn prometheus_url(&self) -> &str {
        self.prometheus.url()
    }

    /// The gates judge `subject` from now on (a canary, a colour).
    pub fn set_subject(&mut self, subject: Subject) {
        self.subject = subject;
    }

    /// A step begins: every gate must pass again before it completes; checked at once.
    pub fn begin_step(&mut self, step: &str) {
        self.board().begin_step(step);
        self.next = tokio::time::Instant::now();
    }

    /// How many checks were recorded (all gates, all steps).
    pub fn checks(&self) -> u32 {
        self.board().checks()
    }

    /// Pre-flight, before any write: each query sent once with the **stable** version's values
    /// (`target`'s current pods), to check that Prometheus accepts it and that it returns at
    /// most one series. No answer is not an error here: the rollout then waits for one.
    pub async fn preflight(&self, target: &WorkloadRef, subject: &Subject) -> Result<(), Error> {
        let state = snapshot(&self.cluster, target).await?;
        let values = placeholders(&state, &self.cluster.namespace, subject);
        let gates: Vec<Gate> = self.board().gates.iter().map(|g| g.gate.clone()).collect();
        for gate in gates {
            let query = expand(&gate.query, &values);
            match self.prometheus.query(&query).await {
                Ok(body) => match reading_from_response(&body) {
                    Ok(Reading::Sample(v)) => eprintln!(
                        "gate {}: pre-flight on {target} (stable): {} (needs {})",
                        gate.name,
                        rollout_safe_policy::gates::number_text(v),
                        gate.condition()
                    ),
                    Ok(Reading::Inconclusive(why)) => eprintln!(
                        "gate {}: pre-flight on {target} (stable): {why}; the query is accepted",
                        gate.name
                    ),
                    Err(source) => {
                        return Err(Error::GateQueryUnusable {
                            gate: gate.name,
                            query,
                            source: Box::new(source),
                        });
                    }
                },
                Err(source) if source.is_rejected_query() => {
                    return Err(Error::GateQueryRefused {
                        gate: gate.name,
                        query,
                        source: Box::new(source),
                    });
                }
                Err(e) => eprintln!(
                    "warning: gate {}: pre-flight query got no answer ({}); the rollout waits for one",
                    gate.name,
                    chain(&e)
                ),
            }
        }
        Ok(())
    }

    /// Checks every gate once against `target`'s current new version (no timer; the
    /// rollback window after a switch, `blue-green finish`).
    pub async fn check_now(&mut self, target: &WorkloadRef) -> Result<GateDecision, Error> {
        let state = snapshot(&self.cluster, target).await?;
        Ok(self.check(&state).await)
    }

    /// One line per gate (value, threshold, failures).
    pub fn summary(&self) -> Vec<String> {
        self.board().lines()
    }

    /// What the last check says on its own (`blue-green finish`): any failure fails.
    pub fn last_check(&self) -> GateDecision {
        self.board().last_check()
    }
}

/// One gate's query and result.
async fn check_gate(
    prometheus: &Prometheus,
    gate: &Gate,
    values: &Placeholders,
) -> (String, GateResult) {
    let query = expand(&gate.query, values);
    if values.pods.is_empty() {
        return (
            query,
            GateResult::Inconclusive("no pod of the new version yet".into()),
        );
    }
    // Mid-run, an answer a gate cannot use (several series once more pods match, a refused
    // query) is inconclusive: the rollout waits and, at its timeout, fails saying why. The
    // pre-flight already refused queries that are wrong on the stable version.
    let reading = match prometheus.query(&query).await {
        Ok(body) => reading_from_response(&body)
            .unwrap_or_else(|e: ResponseError| Reading::Inconclusive(e.to_string())),
        Err(e) => Reading::Inconclusive(no_answer(&e)),
    };
    let result = evaluate(gate, &reading);
    (query, result)
}

fn no_answer(e: &MetricsError) -> String {
    format!("no answer from Prometheus: {}", chain(e))
}

impl GateSource for GateRunner {
    fn next_check(&self) -> tokio::time::Instant {
        self.next
    }

    fn check(&mut self, state: &RolloutState) -> BoxFuture<'static, GateDecision> {
        let started = tokio::time::Instant::now();
        // The next check is an interval after this one began, whatever this one takes.
        self.next = started + self.interval;
        let values = placeholders(state, &self.cluster.namespace, &self.subject);
        let kind = self.annotated_kind;
        let workload = WorkloadRef {
            kind,
            name: values.workload.clone(),
        }
        .to_string();
        let gates: Vec<Gate> = self.board().gates.iter().map(|g| g.gate.clone()).collect();
        let prometheus = self.prometheus.clone();
        let board = self.board.clone();
        let cluster = self.cluster.clone();
        let annotated = self.annotated.clone();
        Box::pin(async move {
            let results = futures::future::join_all(
                gates.iter().map(|g| check_gate(&prometheus, g, &values)),
            )
            .await;
            let at = Timestamp::now();
            let (decision, record) = {
                let mut b = board.lock().unwrap_or_else(PoisonError::into_inner);
                for (i, (query, result)) in results.into_iter().enumerate() {
                    b.record(i, query, result, at);
                }
                (
                    b.decision(),
                    b.annotation(&workload, prometheus.url()).to_json(),
                )
            };
            // Shown to other terminals; a failed write does not change the verdict.
            let set = [(GATES_ANNOTATION, Some(record))];
            let written = match kind {
                WorkloadKind::Deployment => annotate(&cluster, &annotated, &set).await,
                _ => annotate_set(&cluster, kind, &annotated, &set).await,
            };
            if let Err(e) = written {
                let on = WorkloadRef {
                    kind,
                    name: annotated.clone(),
                };
                eprintln!(
                    "warning: cannot record the metric gates on {on}: {}",
                    chain(&e)
                );
            }
            decision
        })
    }

    fn decision(&self) -> GateDecision {
        self.board().decision()
    }

    fn lines(&self) -> Vec<String> {
        self.board().lines()
    }
}

/// The gates' decision told for people, at the end of a step that did not complete.
pub fn waiting_text(decision: &GateDecision) -> Option<String> {
    match decision {
        GateDecision::Wait(why) => Some(format!("the metric gates did not pass: {why}")),
        GateDecision::Fail(f) => Some(f.summary()),
        GateDecision::Pass => None,
    }
}
