//! Everything that talks to the Kubernetes API: the client, workload references, API errors,
//! precondition-guarded writes, Deployments and Services, revisions, and the watch loop that
//! feeds the rollout judge. No decisions (those are in `rollout_safe_policy`) and nothing
//! from the layers above: it takes a cancellation token and a view instead.

pub mod board;
pub mod client;
pub mod deployments;
pub mod errors;
pub mod facts;
pub mod inventory;
pub mod patch;
pub mod refs;
pub mod reports;
pub mod revisions;
pub mod rollback;
pub mod services;
pub mod sets;
pub mod watch;
