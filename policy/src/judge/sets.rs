//! What the status viewers hand to [`super::conclude`]: the viewer's conclusion and the pods
//! split by revision.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

/// What a status viewer concluded, before pod signals are considered.
pub(super) struct StatusView {
    pub(super) complete: bool,
    pub(super) message: String,
    /// The `ProgressDeadlineExceeded` condition, when it applies.
    pub(super) deadline: Option<(String, Option<Timestamp>)>,
    /// A true `ReplicaFailure` condition.
    pub(super) replica_failure: Option<(String, Option<Timestamp>)>,
    /// Only the update strategy makes rollout status meaningless.
    pub(super) unsupported: bool,
}

/// The pods of a workload, split into new revision and the rest.
#[derive(Default)]
pub(super) struct PodSets<'a> {
    pub(super) new: Vec<&'a Pod>,
    pub(super) old: Vec<&'a Pod>,
    pub(super) terminating: usize,
    /// Objects (kind, name) whose events concern the rollout, besides pods.
    pub(super) related: Vec<(String, String)>,
    /// Events before this are from an earlier rollout.
    pub(super) since: Option<Timestamp>,
}
