//! rollout-safe's policy engine: the rule catalogue, findings, mutations and policy config.
//!
//! Pure: no I/O, no async, no clocks. The webhook and the kubectl plugin are thin shells around
//! this crate, so every decision lives here, once.

pub mod admission;
pub mod admission_policy;
pub mod audit;
pub mod board;
pub mod change_cause;
pub mod check;
pub mod config;
pub mod documents;
pub mod facts;
#[doc(hidden)]
pub mod fast_yaml;
pub mod file_audit;
pub mod finding;
pub mod gates;
pub mod gitops;
pub mod judge;
pub mod located;
pub mod mutate;
pub mod plan;
pub mod rule;
pub mod rules;
pub mod selector;
pub mod server_info;
pub mod settle;
pub mod skip;
pub mod strategy;
pub mod view;
pub mod workload;

pub use admission::{AdmissionInput, ClusterLookups, NoLookups, Operation, Verdict};
pub use audit::{AuditReport, LocatedFinding, Notice, audit};
pub use change_cause::Actor;
pub use check::{Facts, check, check_service};
pub use config::{EffectivePolicy, Params, PolicyError, PreStopHandler, RolloutPolicy};
pub use documents::{Document, DocumentError, for_each_document, parse_documents, read_documents};
#[doc(hidden)]
pub use documents::{read_reference, split_documents};
pub use finding::Finding;
pub use mutate::{Mutation, MutationOutcome, ServerInfo, mutate};
pub use rule::{Action, Severity, WorkloadKind};
pub use rules::RuleId;
pub use settle::{AuditCollector, AuditResult, AuditedWorkload};
pub use view::{ServiceView, WorkloadView};
pub use workload::{ObjectError, ObjectRef, Workload};
