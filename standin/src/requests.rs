//! The log of every request the stand-in answered, for tests to assert on ("the switch was one
//! merge patch", "no LIST of pods without a label selector", "how many bytes the plugin read").

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

/// The Kubernetes verb of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    /// Anything else (`/version`, unknown paths).
    Other,
}

impl Verb {
    /// Whether the verb changes something.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Verb::Create | Verb::Update | Verb::Patch | Verb::Delete
        )
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::Other => "other",
        })
    }
}

/// One answered request.
#[derive(Debug, Clone)]
pub struct LoggedRequest {
    /// The HTTP method.
    pub method: String,
    pub verb: Verb,
    /// The resource plural (`""` for `/version` and unknown paths).
    pub resource: String,
    pub path: String,
    /// The query as sent (percent-encoded).
    pub raw_query: String,
    /// The query, decoded.
    pub query: BTreeMap<String, String>,
    pub content_type: String,
    pub body: String,
    /// The status code answered.
    pub status: u16,
    /// Bytes of response body sent so far (a watch keeps counting while it streams).
    pub response_bytes: u64,
}

impl LoggedRequest {
    /// Path and query, as sent.
    pub fn uri(&self) -> String {
        if self.raw_query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.raw_query)
        }
    }

    /// The body as JSON, if it is JSON.
    pub fn json_body(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    pub fn label_selector(&self) -> Option<&str> {
        self.query.get("labelSelector").map(String::as_str)
    }

    pub fn field_selector(&self) -> Option<&str> {
        self.query.get("fieldSelector").map(String::as_str)
    }
}

#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    entries: Vec<(LoggedRequest, Arc<AtomicU64>)>,
}

impl RequestLog {
    /// Logs a request; the counter is where its response bytes are added.
    pub fn push(&mut self, request: LoggedRequest) -> Arc<AtomicU64> {
        let bytes = Arc::new(AtomicU64::new(request.response_bytes));
        self.entries.push((request, bytes.clone()));
        bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn snapshot(&self, from: usize) -> Vec<LoggedRequest> {
        self.entries
            .iter()
            .skip(from)
            .map(|(r, bytes)| LoggedRequest {
                response_bytes: bytes.load(Ordering::Relaxed),
                ..r.clone()
            })
            .collect()
    }

    /// Whether a request from index `from` on satisfies `f`.
    pub fn any_since(&self, from: usize, f: impl Fn(&LoggedRequest) -> bool) -> bool {
        self.entries.iter().skip(from).any(|(r, _)| f(r))
    }
}
