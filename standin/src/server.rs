//! The stand-in server: an axum app on 127.0.0.1 on its own thread and runtime (so tests and
//! benches need no runtime of their own, and a blocked test thread cannot stall it), the shared
//! state, and when controllers run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::Value;
use tokio::sync::Notify;

use crate::Verb;
use crate::api::{self, ApiRequest, Route};
use crate::controllers::{self, Controller};
use crate::faults::{Fault, Faults, Times};
use crate::recording::RecordingError;
use crate::requests::{LoggedRequest, RequestLog};
use crate::runner::Plugin;
use crate::status::{Answer, RecordedAnswers};
use crate::store::{Store, StoreError};
use crate::time;
use crate::traffic::{self, ServiceView};
use crate::watch::{self, WatchRequest};

/// At most this many rounds of all controllers after one change (a controller that never
/// settles is reported, not looped on forever).
const MAX_ROUNDS: usize = 1000;

/// Why the stand-in could not start, or a wait ran out.
#[derive(Debug, thiserror::Error)]
pub enum StandinError {
    #[error("the stand-in's recorded answers: {0}")]
    Recording(#[from] RecordingError),
    #[error("seeding the stand-in: {0}")]
    Store(#[from] StoreError),
    #[error("the stand-in cannot {what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    #[error("no controller is named {0:?} (the stand-in runs: {1})")]
    UnknownController(String, String),
}

impl StandinError {
    fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> StandinError {
        move |source| StandinError::Io { what, source }
    }
}

/// Options of a stand-in.
#[derive(Debug, Clone)]
pub struct Options {
    /// Controllers react this long after a write (zero: within the write, before it is
    /// answered).
    pub reaction_delay: Duration,
    /// Controllers also run this often, for what depends on time (progress deadlines).
    pub resync_interval: Duration,
    /// An idle watch that allows bookmarks gets one this often.
    pub bookmark_interval: Duration,
    /// Threads serving requests: 1 (the default) is plenty for a test; a load test may want
    /// more.
    pub worker_threads: usize,
    /// The custom resources served (plurals of [`crate::resources::CUSTOM`]): their CRDs are
    /// installed. The others answer 404, as in a cluster without the CRD.
    pub crds: Vec<&'static str>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            reaction_delay: Duration::ZERO,
            resync_interval: Duration::from_secs(1),
            bookmark_interval: Duration::from_secs(5),
            worker_threads: 1,
            crds: Vec::new(),
        }
    }
}

pub(crate) struct Registered {
    controller: Box<dyn Controller>,
    stuck: bool,
}

/// Everything behind the lock.
pub(crate) struct State {
    pub store: Store,
    pub faults: Faults,
    pub requests: RequestLog,
    controllers: Vec<Registered>,
    controller_errors: Vec<String>,
}

impl State {
    /// Runs the controllers that are not stuck until none changes anything more.
    fn settle(&mut self) {
        let now = time::now();
        for _ in 0..MAX_ROUNDS {
            let before = self.store.resource_version();
            for r in self.controllers.iter_mut().filter(|r| !r.stuck) {
                if let Err(e) = r.controller.reconcile(&mut self.store, now) {
                    let message = format!("{}: {e}", r.controller.name());
                    eprintln!("stand-in controller error: {message}");
                    self.controller_errors.push(message);
                }
            }
            if self.store.resource_version() == before {
                return;
            }
        }
        self.controller_errors.push(format!(
            "the controllers did not settle within {MAX_ROUNDS} rounds"
        ));
    }
}

pub(crate) struct Shared {
    state: Mutex<State>,
    pub changed: Notify,
    pub options: Options,
    recorded: RecordedAnswers,
    reaction_pending: AtomicBool,
    runtime: tokio::runtime::Handle,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not take the server down with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// After the store changed: wake the watches, and let the controllers react (now, or after
    /// the reaction delay).
    fn after_change(self: &Arc<Self>, st: &mut State) {
        if self.options.reaction_delay.is_zero() {
            st.settle();
        } else if !self.reaction_pending.swap(true, Ordering::SeqCst) {
            let shared = self.clone();
            self.runtime.spawn(async move {
                tokio::time::sleep(shared.options.reaction_delay).await;
                shared.reaction_pending.store(false, Ordering::SeqCst);
                shared.lock().settle();
                shared.changed.notify_waiters();
            });
        }
        self.changed.notify_waiters();
    }

    /// The periodic run of the controllers (skipped while a delayed reaction is due).
    fn resync(&self) {
        if self.reaction_pending.load(Ordering::SeqCst) {
            return;
        }
        let mut st = self.lock();
        let before = st.store.resource_version();
        st.settle();
        if st.store.resource_version() != before {
            self.changed.notify_waiters();
        }
    }
}

/// Builds a [`Standin`]: its objects, controllers, faults and options.
pub struct StandinBuilder {
    store: Store,
    controllers: Vec<Box<dyn Controller>>,
    faults: Faults,
    options: Options,
}

impl StandinBuilder {
    /// The store to seed (see [`crate::seed`] and [`crate::scenarios`]).
    pub fn store(&mut self) -> &mut Store {
        &mut self.store
    }

    /// Seeds the store with `f`.
    pub fn seed<E>(mut self, f: impl FnOnce(&mut Store) -> Result<(), E>) -> Result<Self, E> {
        f(&mut self.store)?;
        Ok(self)
    }

    /// Adds a controller (in the order they run each round).
    pub fn controller(mut self, c: impl Controller + 'static) -> Self {
        self.controllers.push(Box::new(c));
        self
    }

    /// Adds the controllers of [`controllers::kubernetes`].
    pub fn kubernetes_controllers(mut self) -> Self {
        self.controllers.extend(controllers::kubernetes());
        self
    }

    pub fn reaction_delay(mut self, d: Duration) -> Self {
        self.options.reaction_delay = d;
        self
    }

    pub fn bookmark_interval(mut self, d: Duration) -> Self {
        self.options.bookmark_interval = d;
        self
    }

    pub fn worker_threads(mut self, n: usize) -> Self {
        self.options.worker_threads = n;
        self
    }

    pub fn resync_interval(mut self, d: Duration) -> Self {
        self.options.resync_interval = d;
        self
    }

    /// Serves the custom resource `rt` (one of [`crate::resources::CUSTOM`]), as if its CRD
    /// were installed.
    pub fn crd(mut self, rt: &'static crate::resources::ResourceType) -> Self {
        self.options.crds.push(rt.plural);
        self
    }

    pub fn fault(mut self, fault: Fault, times: Times) -> Self {
        self.faults.inject(fault, times);
        self
    }

    /// Runs the controllers over the seed now, so the next seeding step sees a settled cluster.
    pub fn settle(mut self) -> Self {
        let mut st = self.take_state();
        st.settle();
        self.store = st.store;
        self.controllers = st.controllers.into_iter().map(|r| r.controller).collect();
        self.faults = st.faults;
        self
    }

    fn take_state(&mut self) -> State {
        State {
            store: std::mem::replace(&mut self.store, Store::new("")),
            faults: std::mem::take(&mut self.faults),
            requests: RequestLog::default(),
            controllers: std::mem::take(&mut self.controllers)
                .into_iter()
                .map(|controller| Registered {
                    controller,
                    stuck: false,
                })
                .collect(),
            controller_errors: Vec::new(),
        }
    }

    /// Settles the seed, starts serving on 127.0.0.1 and writes a kubeconfig for it.
    pub fn start(mut self) -> Result<Standin, StandinError> {
        let recorded = RecordedAnswers::load()?;
        let mut state = self.take_state();
        state.settle();
        let namespace = state.store.default_namespace().to_owned();
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(StandinError::io("listen on 127.0.0.1"))?;
        listener
            .set_nonblocking(true)
            .map_err(StandinError::io("set up its listener"))?;
        let addr = listener
            .local_addr()
            .map_err(StandinError::io("read its address"))?;
        let mut runtime = if self.options.worker_threads > 1 {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(self.options.worker_threads);
            b
        } else {
            tokio::runtime::Builder::new_current_thread()
        };
        let runtime = runtime
            .enable_all()
            .build()
            .map_err(StandinError::io("start its runtime"))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            changed: Notify::new(),
            options: self.options,
            recorded,
            reaction_pending: AtomicBool::new(false),
            runtime: runtime.handle().clone(),
        });
        let dir =
            tempfile::tempdir().map_err(StandinError::io("make a directory for its kubeconfig"))?;
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            kubeconfig_text(&format!("http://{addr}"), &namespace),
        )
        .map_err(StandinError::io("write its kubeconfig"))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let serving = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("standin-{addr}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => return eprintln!("stand-in: cannot serve on {addr}: {e}"),
                    };
                    let resync = serving.clone();
                    tokio::spawn(async move {
                        let mut tick = tokio::time::interval(resync.options.resync_interval);
                        loop {
                            tick.tick().await;
                            resync.resync();
                        }
                    });
                    tokio::select! {
                        r = axum::serve(listener, app) => if let Err(e) = r { eprintln!("stand-in: serving on {addr} failed: {e}") },
                        _ = stopped => {}
                    }
                });
                // Open watches end here.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(StandinError::io("start its thread"))?;
        Ok(Standin {
            shared,
            url: format!("http://{addr}"),
            namespace,
            kubeconfig,
            _dir: dir,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// A kubeconfig for `server`: context `standin`, user `alice` (a token), namespace `namespace`.
pub fn kubeconfig_text(server: &str, namespace: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: standin\n\
         clusters:\n- name: standin\n  cluster:\n    server: {server}\n\
         contexts:\n- name: standin\n  context:\n    cluster: standin\n    user: alice\n    namespace: {namespace}\n\
         users:\n- name: alice\n  user:\n    token: standin-token\n"
    )
}

/// A running stand-in for the API server. Dropping it stops the server.
pub struct Standin {
    shared: Arc<Shared>,
    url: String,
    namespace: String,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Standin {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Standin {
    /// A builder with an empty store whose default namespace is `namespace`.
    pub fn builder(namespace: &str) -> StandinBuilder {
        StandinBuilder {
            store: Store::new(namespace),
            controllers: Vec::new(),
            faults: Faults::default(),
            options: Options::default(),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A kubeconfig pointing at the stand-in, its context in [`Self::namespace`].
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A runner for the binary at `program` against this stand-in: `--kubeconfig` set, the
    /// user's `KUBECONFIG` and `ROLLOUT_SAFE_POLICY` removed, plain output.
    pub fn plugin(&self, program: impl AsRef<Path>) -> Plugin {
        Plugin::new(program)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env_remove("KUBECONFIG")
            .env_remove("ROLLOUT_SAFE_POLICY")
            .env("ROLLOUT_SAFE_LOG", "warn")
            .env("TERM", "dumb")
            .watched_by(self.shared.clone())
    }

    /// Reads the store.
    pub fn read<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&self.shared.lock().store)
    }

    /// Changes the store (as someone outside the cluster's controllers would); the controllers
    /// then react as to any write.
    pub fn modify<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let mut st = self.shared.lock();
        let r = f(&mut st.store);
        self.shared.after_change(&mut st);
        r
    }

    /// An object in the default namespace.
    pub fn get(&self, resource: &str, name: &str) -> Option<Value> {
        self.read(|s| s.get(resource, s.default_namespace(), name).cloned())
    }

    /// Pods of a Deployment in the default namespace.
    pub fn pods_of(&self, deployment: &str) -> Vec<Value> {
        self.read(|s| s.pods_of_deployment(s.default_namespace(), deployment))
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.lock().requests.snapshot(0)
    }

    /// The requests with this verb.
    pub fn requests_with(&self, verb: Verb) -> Vec<LoggedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.verb == verb)
            .collect()
    }

    /// The requests that changed something (or tried to).
    pub fn writes(&self) -> Vec<LoggedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.verb.is_write())
            .collect()
    }

    pub fn inject(&self, fault: Fault, times: Times) {
        self.shared.lock().faults.inject(fault, times);
    }

    /// Makes a controller stop (or resume) doing anything.
    pub fn set_stuck(&self, controller: &str, stuck: bool) -> Result<(), StandinError> {
        let mut st = self.shared.lock();
        let Some(i) = st
            .controllers
            .iter()
            .position(|r| r.controller.name() == controller)
        else {
            return Err(StandinError::UnknownController(
                controller.to_owned(),
                st_names(&st),
            ));
        };
        st.controllers[i].stuck = stuck;
        if !stuck {
            self.shared.after_change(&mut st);
        }
        Ok(())
    }

    /// What the controllers failed at (they keep running).
    pub fn controller_errors(&self) -> Vec<String> {
        self.shared.lock().controller_errors.clone()
    }

    /// Every distinct (selector, ready endpoints) a Service in the default namespace had, in
    /// order; ready pods are named with the value of their label `label` (`-` without one).
    pub fn service_history(&self, service: &str, label: &str) -> Vec<ServiceView> {
        self.read(|s| traffic::service_history(s, s.default_namespace(), service, label))
    }

    /// Waits until `f` holds for the store, for at most `limit`.
    pub fn wait_until(
        &self,
        limit: Duration,
        what: &str,
        f: impl Fn(&Store) -> bool,
    ) -> Result<(), StandinError> {
        let start = Instant::now();
        while !self.read(&f) {
            if start.elapsed() > limit {
                return Err(StandinError::Timeout {
                    what: what.to_owned(),
                    after: limit,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

fn st_names(st: &State) -> String {
    st.controllers
        .iter()
        .map(|r| r.controller.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// How far into the request log a runner started, and whether a watch arrived since.
pub(crate) fn request_count(shared: &Shared) -> usize {
    shared.lock().requests.len()
}

pub(crate) fn watched_since(shared: &Shared, from: usize) -> bool {
    shared
        .lock()
        .requests
        .any_since(from, |r| r.verb == Verb::Watch)
}

fn json_response(answer: &Answer) -> (Response, u64) {
    let body = answer.body.to_string();
    let len = body.len() as u64;
    let response = Response::builder()
        .status(answer.status)
        .header("content-type", "application/json")
        .header("cache-control", "no-cache, private")
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()));
    (response, len)
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw_query = uri.query().unwrap_or_default().to_owned();
    let query: BTreeMap<String, String> = form_urlencoded::parse(raw_query.as_bytes())
        .into_owned()
        .collect();
    let route = match Route::parse(uri.path()) {
        // A custom resource whose CRD is not installed: an unknown path, as on a real server.
        Route::Collection { rt, .. } | Route::Object { rt, .. }
            if rt.is_custom() && !shared.options.crds.contains(&rt.plural) =>
        {
            Route::Unknown
        }
        route => route,
    };
    let verb = route.verb(method.as_str(), &query);
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut logged = LoggedRequest {
        method: method.to_string(),
        verb,
        resource: route
            .resource()
            .map(|r| r.plural.to_owned())
            .unwrap_or_default(),
        path: uri.path().to_owned(),
        raw_query,
        query,
        content_type,
        body: String::from_utf8_lossy(&body).into_owned(),
        status: 0,
        response_bytes: 0,
    };
    if verb == Verb::Watch
        && let Route::Collection { rt, namespace } = &route
    {
        let mut st = shared.lock();
        let watch = if st.faults.forbidden(Verb::Watch, rt.plural) {
            Err(shared
                .recorded
                .forbidden(Verb::Watch, rt, namespace.as_deref(), None))
        } else {
            WatchRequest::parse(rt, namespace.clone(), &logged.query)
        };
        match watch {
            Ok(request) => {
                logged.status = 200;
                let bytes = st.requests.push(logged);
                drop(st);
                let events = watch::stream(shared.clone(), request, bytes);
                return Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .header("cache-control", "no-cache, private")
                    .body(Body::from_stream(events))
                    .unwrap_or_else(|_| Response::new(Body::empty()));
            }
            Err(answer) => {
                let (response, len) = json_response(&answer);
                logged.status = answer.status;
                logged.response_bytes = len;
                st.requests.push(logged);
                return response;
            }
        }
    }
    let mut st = shared.lock();
    let request = ApiRequest {
        method: method.as_str(),
        route: &route,
        verb,
        query: &logged.query,
        content_type: &logged.content_type,
        body: &body,
    };
    let (answer, wrote) = api::answer(&mut st, &shared.recorded, &request);
    if wrote {
        shared.after_change(&mut st);
    }
    let (response, len) = json_response(&answer);
    logged.status = answer.status;
    logged.response_bytes = len;
    st.requests.push(logged);
    response
}
