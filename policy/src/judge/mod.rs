//! The rollout judge: one pure function of observed cluster state that says
//! whether a rollout is still progressing, complete, paused, or has failed —
//! and if it failed, which pod and container failed, why, and since when.
//!
//! The plugin's `update`, `status` and `undo` feed watch events for the
//! workload, its ReplicaSets, its pods and the namespace's events into a
//! [`RolloutState`] and call [`judge`] after every event, and again at
//! [`Verdict::recheck_at`] when a time-based rule (the readiness budget) may
//! flip the verdict without any new event. Nothing here does I/O or reads a
//! clock: `now` is an argument.
//!
//! Completion follows kubectl's `rollout status` viewers exactly
//! (`DeploymentStatusViewer`, `StatefulSetStatusViewer`,
//! `DaemonSetStatusViewer`). Failure is kubectl's `ProgressDeadlineExceeded`
//! plus, with [`JudgeConfig::fail_fast`], earlier signals from the pods of the
//! *new* revision only (never from pods of old ReplicaSets).
//!
//! The module is split along its concerns: `config` (tunables and the object names the
//! controllers use), `state` (decoding watch events into a [`RolloutState`]), `kinds` (the
//! status viewer of each workload kind), `pods` (what is wrong with a pod of the new
//! revision), `conclude` (status view + pod signals → [`Verdict`]), and `events` (the events
//! a failure report quotes).

mod conclude;
mod config;
mod events;
mod kinds;
mod pods;
mod sets;
mod state;
mod verdict;

pub use crate::rule::WorkloadKind;
pub use crate::workload::Workload;
pub use config::{
    CONTROLLER_REVISION_HASH_LABEL, DAEMONSET_TEMPLATE_GENERATION_ANNOTATION,
    DAEMONSET_TEMPLATE_GENERATION_LABEL, DEFAULT_MAX_EVENTS, DEFAULT_READINESS_BUDGET, JudgeConfig,
    MAX_FAILURE_EVENTS, POD_TEMPLATE_HASH_LABEL, PROGRESS_DEADLINE_EXCEEDED, REVISION_ANNOTATION,
};
pub use events::event_time;
pub use kinds::judge;
pub use state::{
    DecodeError, Object, RolloutState, WatchEvent, controlled_by, equal_ignore_hash, key,
    normalized_template,
};
pub use verdict::{
    EventNote, Failure, FailureReason, PodProblem, Progress, Verdict, failure_started_at,
};
