//! A stand-in for the Kubernetes API server, for tests and benches that run real clients
//! (the plugin binary, kube-rs) against something that answers like a cluster without being
//! one, plus a runner for the plugin binary.
//!
//! ```no_run
//! use rollout_safe_standin::{Standin, scenarios};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let standin = scenarios::shop(Standin::builder("api").kubernetes_controllers(), 3, "shop:1")?.start()?;
//! // In an integration test: `env!("CARGO_BIN_EXE_kubectl-rollout_safe")`.
//! let plugin = standin.plugin("target/debug/kubectl-rollout_safe");
//! let run = plugin.run(&["status", "deploy/shop"])?;
//! run.assert_code(0);
//! assert!(standin.requests().iter().all(|r| r.resource != "pods" || r.label_selector().is_some()));
//! # Ok(()) }
//! ```
//!
//! # What is recorded, what is modelled
//!
//! **Recorded** (from real kube-apiserver exchanges in `tests/fixtures/api-responses/`, see
//! [`recording`]): the shape of every answer — single objects with `apiVersion`/`kind`, lists
//! (`<Kind>List`, list `metadata.resourceVersion`, items without `apiVersion`/`kind`), watch
//! streams (one `{"type", "object"}` JSON event a line, 11), `/version` (13); and the error
//! bodies, reworded for the object at hand: 404 `NotFound` (02), 409 `Conflict` for a stale
//! resourceVersion (04), the bare 422 of a failed JSON Patch `test` op (05), 422 `Invalid` with
//! field causes (06), 403 `Forbidden` (09). The objects of [`scenarios`] are the recorded ones.
//!
//! **Modelled** (written here, following the API conventions and the controllers' source):
//! - the [`Store`]: one resourceVersion counter, `uid`, `creationTimestamp`, `generateName`,
//!   `generation` counting spec changes, no-op writes skipped, `status` left alone by writes to
//!   types with a status subresource; every change logged;
//! - the verbs: label selectors (equality and set-based) and the field
//!   selectors the real server supports per type; `limit`/`continue` (not snapshot-consistent:
//!   a later page reflects later writes), `resourceVersion=0` answered whole, as the watch cache
//!   does; watches from any resourceVersion (the whole log is kept: no 410 Gone), `ADDED` for
//!   what exists when asked from `0`, selection changes as `ADDED`/`DELETED`, bookmarks;
//!   JSON Patch and merge patch (strategic merge is answered 415: the plugin does not use it);
//!   server-side apply for a single field manager (the applied configuration becomes the
//!   object; `managedFields` and conflicts between managers are not modelled); `resourceVersion` preconditions; `dryRun`; delete with
//!   `preconditions` and `Orphan` propagation; `scale`; validation of names, environment variable names and workload selectors;
//! - [`controllers`]: Deployment (revisions, rolling update within maxSurge/maxUnavailable,
//!   Recreate, history limit, conditions, `ProgressDeadlineExceeded`), ReplicaSet, StatefulSet
//!   (OrderedReady, ordinals, partitioned rolling update, OnDelete) and DaemonSet (three nodes,
//!   maxUnavailable/maxSurge) with their ControllerRevisions (16, 18), a kubelet
//!   (images containing `crash` crash-loop, `unready` never become ready), EndpointSlices,
//!   garbage collection. Not modelled: `minReadySeconds` (ready is available at once),
//!   terminating pods (deletion is immediate), scheduling constraints, Node objects, events of
//!   the deployment controller;
//! - custom resources (the report CRDs of [`resources::CUSTOM`]), served only by a stand-in
//!   built with their CRD ([`StandinBuilder::crd`]), 404 otherwise, as without the CRD;
//! - [`Fault`]s and the [`requests`] log; [`traffic`]: what a Service could reach, over time.
//!
//! The server runs on its own thread and runtime; dropping the [`Standin`] stops it. Processes
//! started by the [`runner`] are killed when their handle drops.

mod api;
pub mod controllers;
pub mod faults;
pub mod recording;
pub mod requests;
pub mod resources;
pub mod runner;
pub mod scenarios;
pub mod seed;
pub mod selector;
mod server;
mod status;
pub mod store;
pub mod time;
pub mod traffic;
mod validate;
mod watch;

pub use controllers::Controller;
pub use faults::{Fault, StaleAnswer, Times};
pub use requests::{LoggedRequest, Verb};
pub use runner::{Interrupt, Plugin, Run, RunError, RunOptions, Running, Stdin};
pub use server::{Options, Standin, StandinBuilder, StandinError, kubeconfig_text};
pub use store::{Store, StoreError};
pub use traffic::ServiceView;
