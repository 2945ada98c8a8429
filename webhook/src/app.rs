//! Shared state and the HTTP routes. Handlers are thin: read the body, hand it to
//! [`crate::admission`], count it, answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use rollout_safe_policy::admission::{ClusterLookups, NoLookups};
use rollout_safe_policy::{RolloutPolicy, ServerInfo};
use tokio::sync::Semaphore;

use crate::MAX_BODY_BYTES;
use crate::admission;
use crate::error::RequestError;
use crate::metrics::{Decision, Metrics, Webhook, kind_label};

/// Cluster lookups as the handlers use them (shared with the watch tasks that feed them).
pub type SharedLookups = Arc<dyn ClusterLookups + Send + Sync>;

/// Everything a request needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

struct Shared {
    policy: ArcSwap<RolloutPolicy>,
    /// The API server's version as `major << 16 | minor`, `0` when unknown.
    server_version: AtomicU32,
    lookups: Option<SharedLookups>,
    metrics: Metrics,
    ready: AtomicBool,
    fail_open: bool,
    request_timeout: Duration,
    /// Admission requests being read or evaluated at once: bounds the bodies buffered in
    /// memory ([`MAX_BODY_BYTES`] each) however many connections and streams are open.
    admission_slots: Semaphore,
    reload_polls: AtomicU64,
}

/// Default for [`AppOptions::max_in_flight`]: 64 × 3 MiB bodies at most in memory.
pub const MAX_IN_FLIGHT: usize = 64;

/// The knobs of [`AppState::new`].
#[derive(Debug, Clone)]
pub struct AppOptions {
    pub server: ServerInfo,
    pub fail_open: bool,
    pub request_timeout: Duration,
    /// Admission requests handled at once; more wait (within the request timeout) for a slot.
    pub max_in_flight: usize,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            server: ServerInfo::default(),
            fail_open: false,
            request_timeout: Duration::from_secs(4),
            max_in_flight: MAX_IN_FLIGHT,
        }
    }
}

impl AppState {
    pub fn new(
        policy: RolloutPolicy,
        lookups: Option<SharedLookups>,
        metrics: Metrics,
        options: AppOptions,
    ) -> Self {
        metrics.set_server_version_known(options.server.version.is_some());
        AppState(Arc::new(Shared {
            policy: ArcSwap::from_pointee(policy),
            server_version: AtomicU32::new(encode_version(options.server)),
            lookups,
            metrics,
            // Ready as soon as it exists: state is only built from a loaded certificate and policy.
            ready: AtomicBool::new(true),
            fail_open: options.fail_open,
            request_timeout: options.request_timeout,
            admission_slots: Semaphore::new(options.max_in_flight.max(1)),
            reload_polls: AtomicU64::new(0),
        }))
    }

    pub fn policy(&self) -> Arc<RolloutPolicy> {
        self.0.policy.load_full()
    }

    /// Puts a newly loaded policy in force for every request that starts from now on.
    pub fn set_policy(&self, policy: RolloutPolicy) {
        self.0.policy.store(Arc::new(policy));
    }

    pub fn server_info(&self) -> ServerInfo {
        let v = self.0.server_version.load(Ordering::Relaxed);
        ServerInfo {
            version: (v != 0).then_some((v >> 16, v & 0xffff)),
        }
    }

    pub fn set_server_info(&self, info: ServerInfo) {
        self.0
            .server_version
            .store(encode_version(info), Ordering::Relaxed);
        self.0
            .metrics
            .set_server_version_known(info.version.is_some());
    }

    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    pub fn is_ready(&self) -> bool {
        self.0.ready.load(Ordering::Relaxed)
    }

    /// Cleared when shutdown starts, so /readyz fails while in-flight requests drain.
    pub fn set_ready(&self, ready: bool) {
        self.0.ready.store(ready, Ordering::Relaxed);
    }

    /// How many reload polls have completed (tests wait on it instead of sleeping).
    pub fn reload_polls(&self) -> u64 {
        self.0.reload_polls.load(Ordering::Relaxed)
    }

    pub(crate) fn poll_done(&self) {
        self.0.reload_polls.fetch_add(1, Ordering::Relaxed);
    }

    fn lookups(&self) -> &dyn ClusterLookups {
        match &self.0.lookups {
            Some(l) => l.as_ref(),
            None => &NoLookups,
        }
    }
}

/// One atomic word for the server version.
fn encode_version(info: ServerInfo) -> u32 {
    match info.version {
        Some((major, minor)) => (major.min(0xffff) << 16) | minor.min(0xffff),
        None => 0,
    }
}

/// The HTTPS routes: `POST /mutate`, `POST /validate`, `GET /healthz`, `GET /readyz`.
pub fn router(state: AppState) -> Router {
    let timeout = state.0.request_timeout;
    Router::new()
        .route("/mutate", post(mutate))
        .route("/validate", post(validate))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            move |state, req, next| deadline(timeout, state, req, next),
        ))
        .with_state(state)
}

/// The plain-HTTP metrics routes: `GET /metrics`, `/healthz`, `/readyz`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Bounds the whole request, body upload included, so a stalled client cannot hold a slot
/// past the API server's own timeout. Answers 503 with a message when it fires, counted as
/// `decision="timeout"` (operation and kind are not known: the body may not even be read).
async fn deadline(
    timeout: Duration,
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let webhook = match req.uri().path() {
        "/mutate" => Some(Webhook::Mutate),
        "/validate" => Some(Webhook::Validate),
        _ => None,
    };
    let started = Instant::now();
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            tracing::warn!(?timeout, "request timed out");
            if let Some(webhook) = webhook {
                state.metrics().request(
                    webhook,
                    "unknown",
                    "unknown",
                    Decision::Timeout,
                    started.elapsed(),
                );
            }
            RequestError::Timeout(timeout).into_response()
        }
    }
}

async fn mutate(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    admit(&state, Webhook::Mutate, &headers, body).await
}

async fn validate(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    admit(&state, Webhook::Validate, &headers, body).await
}

/// Waits for an admission slot (bounded by the request deadline), then reads and answers.
async fn admit(state: &AppState, webhook: Webhook, headers: &HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let Ok(_slot) = state.0.admission_slots.acquire().await else {
        return RequestError::Internal("admission semaphore closed".into()).into_response();
    };
    let body = read_body(headers, body).await;
    handle(state, webhook, body, started)
}

/// After the limit, up to this much more is read and discarded before answering 413.
const DRAIN_BYTES: usize = 16 * MAX_BODY_BYTES;

/// Reads the body up to [`MAX_BODY_BYTES`]. An oversize body is read to its end (up to
/// [`DRAIN_BYTES`]) before the 413: an HTTP/2 client whose upload is cut short sees a reset
/// stream instead of the answer, and HTTP/1 would have to drop the connection.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<Vec<u8>, RequestError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut stream = body.into_data_stream();
    let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(MAX_BODY_BYTES));
    let mut too_large = declared.is_some_and(|n| n > MAX_BODY_BYTES);
    let mut drained = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| RequestError::Body(e.to_string()))?;
        if !too_large && buf.len() + chunk.len() > MAX_BODY_BYTES {
            too_large = true;
            buf = Vec::new();
        }
        if too_large {
            drained += chunk.len();
            if drained > DRAIN_BYTES {
                break;
            }
        } else {
            buf.extend_from_slice(&chunk);
        }
    }
    if too_large {
        Err(RequestError::TooLarge)
    } else {
        Ok(buf)
    }
}

/// Body → AdmissionReview → [`answer`]. A body that is not a v1 AdmissionReview gets a 4xx.
fn handle(
    state: &AppState,
    webhook: Webhook,
    body: Result<Vec<u8>, RequestError>,
    started: Instant,
) -> Response {
    match body.and_then(|body| admission::parse_review(&body)) {
        Ok(req) => answer(state, webhook, req, started),
        Err(e) => {
            tracing::warn!(webhook = webhook.as_str(), error = %e, "bad request");
            state.metrics().request(
                webhook,
                "unknown",
                "unknown",
                Decision::BadRequest,
                started.elapsed(),
            );
            e.into_response()
        }
    }
}

/// The policy's answer to one request, in a span carrying the request uid (the API server
/// logs the same uid, so the two sides can be matched). All fields are set when the span is
/// created: recording them one by one would re-format the span's fields each time.
#[tracing::instrument(
    name = "admission",
    skip_all,
    fields(
        webhook = webhook.as_str(),
        uid = %req.uid,
        operation = admission::operation_label(&req.operation),
        kind = %req.kind.kind,
        namespace = req.namespace.as_deref().unwrap_or(""),
        object = %req.name,
        dry_run = req.dry_run,
    )
)]
fn answer(
    state: &AppState,
    webhook: Webhook,
    req: admission::Request,
    started: Instant,
) -> Response {
    let metrics = state.metrics();
    let policy = state.policy();
    let fail_open = state.0.fail_open;
    let result = match webhook {
        Webhook::Mutate => {
            admission::mutate(&policy, state.server_info(), &req, metrics, fail_open)
        }
        Webhook::Validate => {
            admission::validate(&policy, state.lookups(), &req, metrics, fail_open)
        }
    };
    let operation = admission::operation_label(&req.operation);
    let kind = kind_label(&req.kind.kind);
    match result {
        Ok(evaluated) => {
            metrics.request(
                webhook,
                operation,
                kind,
                evaluated.decision,
                started.elapsed(),
            );
            tracing::debug!(decision = evaluated.decision.as_str(), "answered");
            match admission::encode_review(evaluated.response) {
                Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
                Err(e) => {
                    RequestError::Internal(format!("encoding the response: {e}")).into_response()
                }
            }
        }
        Err(e) => {
            metrics.request(webhook, operation, kind, Decision::Error, started.elapsed());
            e.into_response()
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready (200) while serving. The body says what the mutations target, so an operator sees
/// at once when the API server's version is unknown and the preStop sleep is not injected.
async fn readyz(State(state): State<AppState>) -> Response {
    if state.is_ready() {
        let info = state.server_info();
        let target = match info.native_sleep() {
            Some(true) => "native preStop sleep",
            Some(false) => "no native preStop sleep (before 1.30)",
            None => "version unknown: RS201 only warns unless allowExec",
        };
        format!(
            "ok\nkubernetes version: {} ({target})\n",
            info.version_text()
        )
        .into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    }
}

async fn not_found() -> RequestError {
    RequestError::NotFound
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            crate::metrics::CONTENT_TYPE,
        )],
        state.metrics().encode(),
    )
        .into_response()
}
