//! Shared pieces of rollout-safe's cross-component tests and benchmarks: a throwaway CA, a
//! real HTTPS client, the recorded AdmissionReviews, an in-process webhook server, and the
//! Kubernetes schema check.
//!
//! Test files that exercise the webhook are named `tests/webhook_*.rs`.

pub mod certs;
pub mod client;
pub mod fixtures;
pub mod harness;
pub mod schema;

pub use certs::{Issued, TestCa};
pub use client::{Conn, HttpsClient, Reply};
pub use fixtures::{Recorded, recorded_reviews, reviews_dir};
pub use harness::{TestOptions, TestServer};
