//! rollout-safe's admission webhook: an axum + rustls server around the policy engine.
//!
//! Every decision lives in `rollout_safe_policy::admission`; this crate translates
//! AdmissionReviews to and from it, serves them over TLS, reloads certificates and policy,
//! answers cluster lookups from watch caches, and exports metrics.
//!
//! Tests and the benchmark drive it through [`Server`] (or [`router`] for the routes alone):
//!
//! ```no_run
//! # async fn demo() -> Result<(), rollout_safe_webhook::ServeError> {
//! let mut args = rollout_safe_webhook::ServeArgs::new("tls.crt", "tls.key");
//! args.server.addr = "127.0.0.1:0".parse().unwrap();
//! let server = rollout_safe_webhook::Server::bind(args).await?;
//! println!("listening on {}", server.local_addr());
//! server.run(std::future::pending()).await
//! # }
//! ```

pub mod admission;
pub mod app;
pub mod cli;
pub mod error;
pub mod log;
pub mod lookups;
pub mod metrics;
pub mod reload;
pub mod server;
pub mod tls;
pub mod x509;

pub use app::{AppOptions, AppState, metrics_router, router};
pub use error::{RequestError, ServeError};
pub use log::{LogArgs, LogFormat};
pub use lookups::ClusterArgs;
pub use lookups::ClusterCache;
pub use metrics::Metrics;
pub use reload::PolicyArgs;
pub use server::{ServeArgs, ServerArgs};
pub use server::{Server, serve, serve_https, shutdown_signal};
pub use tls::TlsArgs;

/// Largest request body accepted (413 beyond): 3 MiB, the API server's own object size limit
/// is 3 MiB for etcd, so a bigger AdmissionReview cannot be a real one.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;
