//! WATCH: one JSON event a line (as in recording 11), from the store's change log, starting
//! after the requested resourceVersion (with `ADDED` events for what exists when the client
//! asks from `0` or from nothing, as the real server does), filtered by namespace, label and
//! field selector (an object that stops matching is `DELETED`, one that starts is `ADDED`),
//! with `BOOKMARK` events when the client allows them, until `timeoutSeconds`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use futures::Stream;
use serde_json::{Value, json};

use crate::resources::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::server::Shared;
use crate::status::{self, Answer};
use crate::store::{Change, EventType, Store};

/// How long a watch lasts when the client does not say.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// How long a waiting watch sleeps at most before it looks at the log again.
const POLL: Duration = Duration::from_millis(200);

/// A watch request, decoded.
pub struct WatchRequest {
    rt: &'static ResourceType,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    /// `None`: start with the current objects.
    from: Option<u64>,
    timeout: Duration,
    bookmarks: bool,
}

impl WatchRequest {
    pub fn parse(
        rt: &'static ResourceType,
        namespace: Option<String>,
        query: &BTreeMap<String, String>,
    ) -> Result<WatchRequest, Answer> {
        let get = |k: &str| query.get(k).map(String::as_str).unwrap_or_default();
        let labels = LabelSelector::parse(get("labelSelector"))
            .map_err(|e| status::bad_request(&e.to_string()))?;
        let fields = FieldSelector::parse(get("fieldSelector"), rt.plural)
            .map_err(|e| status::bad_request(&e.to_string()))?;
        let from = match get("resourceVersion") {
            "" | "0" => None,
            rv => Some(
                rv.parse::<u64>()
                    .map_err(|_| status::bad_request(&format!("invalid resourceVersion {rv:?}")))?,
            ),
        };
        let timeout = match query.get("timeoutSeconds") {
            None => DEFAULT_TIMEOUT,
            Some(t) => Duration::from_secs(
                t.parse()
                    .map_err(|_| status::bad_request(&format!("invalid timeoutSeconds {t:?}")))?,
            ),
        };
        Ok(WatchRequest {
            rt,
            namespace,
            labels,
            fields,
            from,
            timeout,
            bookmarks: get("allowWatchBookmarks") == "true",
        })
    }

    fn selects(&self, object: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| object["metadata"]["namespace"] == ns)
            && self.labels.selects(object)
            && self.fields.selects(object)
    }

    /// The event a change is for this watch, if any.
    fn event(&self, change: &Change) -> Option<String> {
        if change.resource.plural != self.rt.plural {
            return None;
        }
        let now = change.event != EventType::Deleted && self.selects(&change.object);
        let before = change.previous.as_ref().is_some_and(|p| self.selects(p));
        let (type_, object) = match (change.event, before, now) {
            (EventType::Deleted, true, _) => ("DELETED", change.object.clone()),
            (EventType::Added | EventType::Modified, false, true) => {
                ("ADDED", change.object.clone())
            }
            (EventType::Modified, true, true) => ("MODIFIED", change.object.clone()),
            (EventType::Modified, true, false) => {
                // Left the selection: gone, as far as this watch is concerned.
                let mut gone = change.previous.clone().unwrap_or_default();
                gone["metadata"]["resourceVersion"] = json!(change.resource_version.to_string());
                ("DELETED", gone)
            }
            _ => return None,
        };
        Some(line(type_, &object))
    }

    fn initial(&self, store: &Store) -> Vec<String> {
        store
            .list(self.rt.plural, self.namespace.as_deref())
            .filter(|o| self.labels.selects(o) && self.fields.selects(o))
            .map(|o| line("ADDED", &crate::store::with_kind(self.rt, o.clone())))
            .collect()
    }
}

fn line(type_: &str, object: &Value) -> String {
    format!("{}\n", json!({"type": type_, "object": object}))
}

struct Cursor {
    shared: Arc<Shared>,
    request: WatchRequest,
    last: u64,
    pending: Vec<String>,
    deadline: Instant,
    last_sent: Instant,
    bytes: Arc<AtomicU64>,
}

/// The event stream of a watch; response bytes are counted into `bytes`.
pub fn stream(
    shared: Arc<Shared>,
    request: WatchRequest,
    bytes: Arc<AtomicU64>,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let (last, pending) = {
        let st = shared.lock();
        let rv = st.store.resource_version();
        match request.from {
            Some(from) => (from, Vec::new()),
            None => (rv, request.initial(&st.store)),
        }
    };
    let cursor = Cursor {
        deadline: Instant::now() + request.timeout,
        shared,
        request,
        last,
        pending,
        last_sent: Instant::now(),
        bytes,
    };
    futures::stream::unfold(cursor, |mut c| async move {
        loop {
            if Instant::now() >= c.deadline {
                return None;
            }
            let shared = c.shared.clone();
            let notified = shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let mut lines = std::mem::take(&mut c.pending);
            {
                let st = c.shared.lock();
                lines.extend(
                    st.store
                        .changes_since(c.last)
                        .iter()
                        .filter_map(|ch| c.request.event(ch)),
                );
                c.last = st.store.resource_version();
            }
            if lines.is_empty()
                && c.request.bookmarks
                && c.last_sent.elapsed() >= c.shared.options.bookmark_interval
            {
                let bookmark = json!({"kind": c.request.rt.kind, "apiVersion": c.request.rt.api_version(),
                    "metadata": {"resourceVersion": c.last.to_string()}});
                lines.push(line("BOOKMARK", &bookmark));
            }
            if !lines.is_empty() {
                let chunk = lines.concat();
                c.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                c.last_sent = Instant::now();
                return Some((Ok(Bytes::from(chunk)), c));
            }
            let wait = POLL.min(c.deadline.saturating_duration_since(Instant::now()));
            let _ = tokio::time::timeout(wait, notified).await;
        }
    })
}
