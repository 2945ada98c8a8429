//! Errors: what a request can get wrong (answered with a 4xx/5xx and a message) and what can
//! stop the server from starting.

use std::path::PathBuf;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::MAX_BODY_BYTES;

/// A request that is not answered with an AdmissionReview. The body is a one-line message
/// (the API server logs it when the call fails; curl shows it).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("request body is larger than {} bytes (3 MiB)", MAX_BODY_BYTES)]
    TooLarge,
    #[error("could not read the request body: {0}")]
    Body(String),
    #[error("request body is not a JSON AdmissionReview: {0}")]
    Json(String),
    #[error(
        "unsupported AdmissionReview apiVersion {0:?}: rollout-safe speaks admission.k8s.io/v1 only (set admissionReviewVersions: [v1])"
    )]
    ApiVersion(String),
    #[error("expected kind AdmissionReview, got {0:?}")]
    Kind(String),
    #[error("AdmissionReview has no request")]
    MissingRequest,
    #[error(
        "request did not complete within {0:?}; the API server applies the webhook's failurePolicy"
    )]
    Timeout(std::time::Duration),
    #[error("internal error: {0}")]
    Internal(String),
    #[error(
        "not found: rollout-safe serves POST /mutate, POST /validate, GET /healthz, GET /readyz"
    )]
    NotFound,
}

impl RequestError {
    pub fn status(&self) -> StatusCode {
        match self {
            RequestError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RequestError::Body(_)
            | RequestError::Json(_)
            | RequestError::ApiVersion(_)
            | RequestError::Kind(_)
            | RequestError::MissingRequest => StatusCode::BAD_REQUEST,
            RequestError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            RequestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            RequestError::NotFound => StatusCode::NOT_FOUND,
        }
    }
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        let status = self.status();
        (status, format!("rollout-safe: {self}\n")).into_response()
    }
}

/// Why `serve` could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} / {}: {source}", cert.display(), key.display())]
    Tls {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: crate::tls::TlsError,
    },
    #[error("TLS configuration: {0}")]
    TlsConfig(#[from] rustls::Error),
    #[error("{}: {source}", path.display())]
    Policy {
        path: PathBuf,
        #[source]
        source: rollout_safe_policy::PolicyError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("--cluster-lookups: cannot reach the Kubernetes API: {0}")]
    Kube(String),
    #[error("--kubernetes-version {0:?}: expected a version such as 1.29 or v1.30.2")]
    Version(String),
}
