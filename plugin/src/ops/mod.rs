//! The operations: what `update`, `undo`, `blue-green`, `canary` and `pause` do, given typed
//! inputs (never clap structs). Each reads the cluster, asks `rollout_safe_policy` what to do,
//! writes it through `cluster`, narrates on stderr, and ends with an [`crate::exit::Outcome`]
//! or an [`crate::error::Error`] — which `exit::exit_code` alone turns into an exit code.

pub mod bluegreen;
pub mod board;
pub mod canary;
pub mod gates;
pub mod gitops;
pub mod pause;
pub mod preflight;
pub mod session;
pub mod sets;
pub mod undo;
pub mod update;
