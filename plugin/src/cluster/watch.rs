//! One watch loop that feeds the rollout judge: the workload, its ReplicaSets, its pods (by the
//! workload's selector) and the events about each of them (one field-selected feed per object,
//! as `kubectl describe` reads them: the namespace's other events are never read), as
//! `kube::runtime::watcher` streams merged into one. No polling: the judge runs after every batch of watch events, and
//! once more at the time the judge asks for ([`Verdict::recheck_at`], when a readiness budget
//! runs out with no event to announce it) or the hold names ([`WatchOptions::hold`], when the
//! new pods will have been Ready long enough).
//!
//! Used by `update`, `undo` (and the automatic rollback), `status --watch`, and every wait of
//! `blue-green` and `canary` (with the readiness hold for `--bake` and `--interval`).
//!
//! Metric gates are one more event source: a [`GateSource`] checked on its own timer, its
//! check running beside the feeds (a slow Prometheus never holds up the watch). A failed gate
//! ends the watch as a failure; a watch with gates completes only once they passed. What the
//! user sees is up to the caller's [`WatchView`]; Ctrl-C arrives through the [`Interrupt`] in
//! the options.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Debug;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::AbortHandle;
use futures::stream::{BoxStream, SelectAll};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use rollout_safe_policy::WorkloadKind;
use rollout_safe_policy::judge::{
    self, JudgeConfig, Object, Progress, RolloutState, Verdict, event_time, key,
};
use rollout_safe_policy::strategy::gates::GateDecision;
use rollout_safe_policy::strategy::hold::{HoldCheck, ReadyClock, check_new_pods};
use serde::de::DeserializeOwned;

use super::client::Cluster;
use super::errors::{api_error, is_forbidden, is_not_found};
use super::refs::WorkloadRef;
use super::revisions::selector_string;
use crate::error::Error;
use crate::interrupt::Interrupt;

/// What the user sees of a watch: every verdict, and lines worth keeping.
pub trait WatchView {
    /// The judge's verdict after a batch of events (or at a time it named).
    fn update(&mut self, verdict: &Verdict, state: &RolloutState);
    /// A line that stays (a retried watch, the hold's progress).
    fn note(&mut self, line: &str);
    /// The metric gates after a check: one line per gate (value, threshold, failures).
    fn gates(&mut self, _lines: &[String]) {}
}

/// Metric gates as the watch sees them: checked on their own timer against the pods the watch
/// shows. The implementation (queries, the gate board, the annotation) is the caller's.
pub trait GateSource: Send {
    /// When the next check is due.
    fn next_check(&self) -> tokio::time::Instant;
    /// Starts one check of every gate against the new version's pods in `state`; resolves to
    /// the gates' decision once recorded.
    fn check(&mut self, state: &RolloutState) -> BoxFuture<'static, GateDecision>;
    /// The decision as of the last check recorded.
    fn decision(&self) -> GateDecision;
    /// One line per gate, for the view.
    fn lines(&self) -> Vec<String>;
}

/// The next gate decision, once a check is under way (never, without one).
async fn gate_answer(pending: &mut Option<BoxFuture<'static, GateDecision>>) -> GateDecision {
    match pending {
        Some(check) => check.await,
        None => std::future::pending().await,
    }
}

/// How to watch.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Give up after this long.
    pub timeout: Duration,
    pub judge: JudgeConfig,
    /// End the watch when a paused Deployment stops progressing (it will not go on by itself).
    pub stop_when_paused: bool,
    /// A Deployment only: once the judge calls it complete, also hold until every pod of its new
    /// ReplicaSet (`spec.replicas` of them) has been Ready for this long, with no container
    /// restarted more than `judge.max_restarts` times (a restart then fails the watch).
    pub hold: Option<Duration>,
    /// Ctrl-C: the watch ends as [`Ending::Interrupted`].
    pub interrupt: Interrupt,
}

/// How a watch ended.
#[derive(Debug)]
pub enum Ending {
    Complete(Verdict),
    /// `detected`: when this process first saw the failure (local clock).
    Failed {
        failure: Box<judge::Failure>,
        detected: Timestamp,
    },
    Paused(Verdict),
    /// kubectl cannot report rollout status for this workload (`OnDelete` strategy).
    Unsupported(Verdict),
    TimedOut(Verdict),
    /// Ctrl-C.
    Interrupted(Verdict),
    /// The workload was deleted while watched.
    Deleted,
}

impl Ending {
    /// Where the rollout stood when the watch ended.
    pub fn progress(&self) -> Option<&Progress> {
        match self {
            Ending::Complete(v)
            | Ending::Paused(v)
            | Ending::Unsupported(v)
            | Ending::TimedOut(v)
            | Ending::Interrupted(v) => Some(v.progress()),
            Ending::Failed { failure, .. } => Some(&failure.progress),
            Ending::Deleted => None,
        }
    }

    /// The last verdict (`None` when the workload was deleted).
    pub fn into_verdict(self) -> Option<Verdict> {
        match self {
            Ending::Complete(v)
            | Ending::Paused(v)
            | Ending::Unsupported(v)
            | Ending::TimedOut(v)
            | Ending::Interrupted(v) => Some(v),
            Ending::Failed { failure, .. } => Some(Verdict::Failed(failure)),
            Ending::Deleted => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Feed {
    Workload,
    ReplicaSets,
    Pods,
    /// The events about one object (an id of [`EventFeeds`]).
    Events(u32),
}

impl Feed {
    fn resource(self, kind: WorkloadKind) -> &'static str {
        match self {
            Feed::Workload => super::refs::resource_name(kind),
            Feed::ReplicaSets => "replicasets.apps",
            Feed::Pods => "pods",
            Feed::Events(_) => "events",
        }
    }
}

type Item = (Feed, Result<watcher::Event<Object>, watcher::Error>);

fn convert<K: Into<Object>>(e: watcher::Event<K>) -> watcher::Event<Object> {
    match e {
        watcher::Event::Apply(k) => watcher::Event::Apply(k.into()),
        watcher::Event::Delete(k) => watcher::Event::Delete(k.into()),
        watcher::Event::InitApply(k) => watcher::Event::InitApply(k.into()),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

fn feed<K>(api: Api<K>, config: watcher::Config, which: Feed) -> BoxStream<'static, Item>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static + Into<Object>,
    K: Resource<DynamicType = ()>,
{
    watcher(api, config)
        .default_backoff()
        .map(move |r| (which, r.map(convert)))
        .boxed()
}

/// An object the rollout is made of, whose events are read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Involved {
    kind: &'static str,
    name: String,
    uid: String,
}

impl Involved {
    fn of(kind: &'static str, meta: &ObjectMeta) -> Option<Involved> {
        Some(Involved {
            kind,
            name: meta.name.clone()?,
            uid: meta.uid.clone()?,
        })
    }

    /// The events about this object and no other (the uid tells it from an earlier object of
    /// the same name), as `kubectl describe` selects them.
    fn field_selector(&self) -> String {
        format!(
            "involvedObject.kind={},involvedObject.name={},involvedObject.uid={}",
            self.kind, self.name, self.uid
        )
    }

    fn is_about(&self, e: &Event) -> bool {
        e.involved_object.uid.as_deref() == Some(self.uid.as_str())
    }
}

/// The objects of the rollout as the state holds them: the workload, its ReplicaSets (newest
/// first), its pods; at most [`MAX_EVENT_FEEDS`].
fn involved_objects(state: &RolloutState) -> (Vec<Involved>, usize) {
    let mut all = Vec::new();
    if let Some(w) = state.workload() {
        let kind = match w {
            judge::Workload::Deployment(_) => "Deployment",
            judge::Workload::StatefulSet(_) => "StatefulSet",
            judge::Workload::DaemonSet(_) => "DaemonSet",
        };
        all.extend(Involved::of(kind, w.metadata()));
    }
    let mut rss: Vec<&ReplicaSet> = state.replica_sets().collect();
    rss.sort_by(|a, b| {
        b.metadata
            .creation_timestamp
            .cmp(&a.metadata.creation_timestamp)
    });
    all.extend(
        rss.into_iter()
            .filter_map(|rs| Involved::of("ReplicaSet", &rs.metadata)),
    );
    all.extend(
        state
            .pods()
            .filter_map(|p| Involved::of("Pod", &p.metadata)),
    );
    let total = all.len();
    all.truncate(MAX_EVENT_FEEDS);
    (all, total)
}

/// Event watches held open at once, at most: one per object covers the workload, its
/// ReplicaSets and this many pods less a dozen; a bigger rollout's further pods are judged
/// without their events (said once).
const MAX_EVENT_FEEDS: usize = 64;

/// The event feeds: one watch per object of the rollout, opened when the object appears and
/// closed when it goes (its events stay in the state until they age out).
#[derive(Default)]
struct EventFeeds {
    next: u32,
    /// uid → (feed id, what stops it).
    open: HashMap<String, (u32, AbortHandle)>,
    /// Events may not be read (403): no feed is opened any more.
    forbidden: bool,
    /// More objects than [`MAX_EVENT_FEEDS`] was said.
    capped_noted: bool,
}

impl EventFeeds {
    /// Opens a feed for each object of the rollout without one, and closes those of objects
    /// gone; `tracker` learns which object each feed is about (for relists).
    fn sync(
        &mut self,
        cluster: &Cluster,
        tracker: &mut Tracker,
        feeds: &mut SelectAll<BoxStream<'static, Item>>,
        view: &mut dyn WatchView,
    ) {
        if self.forbidden {
            return;
        }
        let (wanted, total) = involved_objects(&tracker.state);
        if total > wanted.len() && !self.capped_noted {
            self.capped_noted = true;
            view.note(&format!(
                "note: events are followed for {} of the rollout's {total} objects (the workload, its ReplicaSets, then pods)",
                wanted.len()
            ));
        }
        let keep: HashSet<&str> = wanted.iter().map(|i| i.uid.as_str()).collect();
        self.open.retain(|uid, (id, stop)| {
            let kept = keep.contains(uid.as_str());
            if !kept {
                stop.abort();
                tracker.involved.remove(id);
            }
            kept
        });
        for inv in wanted {
            if self.open.contains_key(&inv.uid) {
                continue;
            }
            let id = self.next;
            self.next += 1;
            let config = watcher::Config::default().fields(&inv.field_selector());
            let (stream, stop) = futures::stream::abortable(event_feed(feed(
                cluster.events(),
                config,
                Feed::Events(id),
            )));
            self.open.insert(inv.uid.clone(), (id, stop));
            tracker.involved.insert(id, inv);
            feeds.push(stream.boxed());
        }
    }

    /// After a 403 on events: close every feed, open no more.
    fn close_all(&mut self) {
        self.forbidden = true;
        for (_, stop) in self.open.values() {
            stop.abort();
        }
        self.open.clear();
    }
}

/// One object's events, until the first 403 (events are optional: a user who may not read them
/// still gets verdicts, so a 403 ends the event feeds only).
fn event_feed(events: BoxStream<'static, Item>) -> BoxStream<'static, Item> {
    events
        .scan(false, |ended, item| {
            if *ended {
                return futures::future::ready(None);
            }
            if let (_, Err(e)) = &item
                && watcher_api_error(e).is_some_and(is_forbidden)
            {
                *ended = true;
            }
            futures::future::ready(Some(item))
        })
        .boxed()
}

fn strip(o: &mut Object) {
    match o {
        Object::Pod(p) => p.metadata.managed_fields = None,
        Object::ReplicaSet(r) => r.metadata.managed_fields = None,
        Object::Event(e) => e.metadata.managed_fields = None,
        Object::Deployment(d) => d.metadata.managed_fields = None,
        Object::StatefulSet(s) => s.metadata.managed_fields = None,
        Object::DaemonSet(d) => d.metadata.managed_fields = None,
    }
}

/// The workload's pod selector (reads the workload; 404/403 end the command).
pub async fn workload_selector(
    cluster: &Cluster,
    target: &WorkloadRef,
) -> Result<LabelSelector, Error> {
    let op = cluster.op("get", target.resource(), Some(&target.name));
    let sel = match target.kind {
        WorkloadKind::Deployment => cluster
            .deployments()
            .get(&target.name)
            .await
            .map(|d| d.spec.selector),
        WorkloadKind::StatefulSet => cluster
            .statefulsets()
            .get(&target.name)
            .await
            .map(|d| d.spec.selector),
        WorkloadKind::DaemonSet => cluster
            .daemonsets()
            .get(&target.name)
            .await
            .map(|d| d.spec.selector),
    }
    .map_err(|e| api_error(e, op))?;
    Ok(sel)
}

fn feeds(
    cluster: &Cluster,
    target: &WorkloadRef,
    selector: &str,
) -> SelectAll<BoxStream<'static, Item>> {
    let by_name = watcher::Config::default().fields(&format!("metadata.name={}", target.name));
    let by_selector = watcher::Config::default().labels(selector);
    let mut all = Vec::new();
    all.push(match target.kind {
        WorkloadKind::Deployment => feed(cluster.deployments(), by_name, Feed::Workload),
        WorkloadKind::StatefulSet => feed(cluster.statefulsets(), by_name, Feed::Workload),
        WorkloadKind::DaemonSet => feed(cluster.daemonsets(), by_name, Feed::Workload),
    });
    if target.kind == WorkloadKind::Deployment {
        all.push(feed(
            cluster.replicasets(),
            by_selector.clone(),
            Feed::ReplicaSets,
        ));
    }
    all.push(feed(cluster.pods(), by_selector, Feed::Pods));
    // The events feeds are opened per object as the objects appear (`EventFeeds`).
    futures::stream::select_all(all)
}

fn watcher_api_error(e: &watcher::Error) -> Option<&kube::Error> {
    match e {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => Some(e),
        _ => None,
    }
}

/// The judge's state, kept in step with the watch feeds (including the relists the watcher
/// does after a lost connection: what the relist no longer holds is removed).
struct Tracker {
    state: RolloutState,
    init: HashMap<Feed, BTreeSet<String>>,
    synced: HashSet<Feed>,
    needed: Vec<Feed>,
    /// Events are listed and watched (not forbidden).
    events_readable: bool,
    /// The object each events feed is about.
    involved: HashMap<u32, Involved>,
}

impl Tracker {
    fn new(kind: WorkloadKind) -> Self {
        let mut needed = vec![Feed::Workload, Feed::Pods];
        if kind == WorkloadKind::Deployment {
            needed.push(Feed::ReplicaSets);
        }
        Tracker {
            state: RolloutState::new(),
            init: HashMap::new(),
            synced: HashSet::new(),
            needed,
            events_readable: true,
            involved: HashMap::new(),
        }
    }

    fn ready(&self) -> bool {
        self.needed.iter().all(|f| self.synced.contains(f))
    }

    fn apply(&mut self, feed: Feed, event: watcher::Event<Object>) {
        match event {
            watcher::Event::Init => {
                self.init.insert(feed, BTreeSet::new());
            }
            watcher::Event::InitApply(mut o) => {
                strip(&mut o);
                self.init.entry(feed).or_default().insert(key(o.metadata()));
                self.state.upsert(o);
            }
            watcher::Event::InitDone => {
                let seen = self.init.remove(&feed).unwrap_or_default();
                self.prune(feed, &seen);
                self.synced.insert(feed);
            }
            watcher::Event::Apply(mut o) => {
                strip(&mut o);
                self.state.upsert(o);
            }
            watcher::Event::Delete(o) => self.state.remove(&o),
        }
    }

    fn prune(&mut self, feed: Feed, seen: &BTreeSet<String>) {
        let gone: Vec<Object> = match feed {
            Feed::Workload => self
                .state
                .workload()
                .filter(|w| !seen.contains(&key(w.metadata())))
                .map(|w| match w {
                    judge::Workload::Deployment(d) => Object::Deployment(d.clone()),
                    judge::Workload::StatefulSet(s) => Object::StatefulSet(s.clone()),
                    judge::Workload::DaemonSet(d) => Object::DaemonSet(d.clone()),
                })
                .into_iter()
                .collect(),
            Feed::ReplicaSets => self
                .state
                .replica_sets()
                .filter(|o| !seen.contains(&key(&o.metadata)))
                .map(|o| Object::from(o.clone()))
                .collect(),
            Feed::Pods => self
                .state
                .pods()
                .filter(|o| !seen.contains(&key(&o.metadata)))
                .map(|o| Object::from(o.clone()))
                .collect(),
            Feed::Events(id) => self
                .state
                .events()
                .filter(|o| {
                    !seen.contains(&key(&o.metadata))
                        && self.involved.get(&id).is_some_and(|i| i.is_about(o))
                })
                .map(|o| Object::from(o.clone()))
                .collect(),
        };
        for o in &gone {
            self.state.remove(o);
        }
    }
}

fn waiting() -> Verdict {
    Verdict::Progressing(Progress {
        message: "Waiting for the first watch results...".to_owned(),
        ..Progress::default()
    })
}

/// The instant (tokio clock) matching a wall-clock time, not before now.
fn instant_for(t: Timestamp) -> tokio::time::Instant {
    let now = Timestamp::now();
    let wait = if t > now {
        Duration::try_from(t.duration_since(now)).unwrap_or_default()
    } else {
        Duration::ZERO
    };
    // Object timestamps have second resolution: look again just after the second turns.
    tokio::time::Instant::now() + wait + Duration::from_millis(100)
}

/// How long a failure waits for the events about its failing pod, for the report.
const FAILURE_EVENTS_GRACE: Duration = Duration::from_millis(750);

/// The events about a failing pod (a kubelet's BackOff, a failed pull) travel on their own watch
/// and may trail, by a moment, the pod update that failed the rollout: keep applying what the
/// feeds bring for at most [`FAILURE_EVENTS_GRACE`] (less as soon as an event about the pod is
/// there) and judge again, so the report quotes them. The failure itself stands as detected.
async fn with_pod_events(
    failure: Box<judge::Failure>,
    feeds: &mut SelectAll<BoxStream<'static, Item>>,
    tracker: &mut Tracker,
    cfg: &JudgeConfig,
) -> Box<judge::Failure> {
    let about_pod = |f: &judge::Failure| match &f.pod {
        Some(pod) => f.events.iter().any(|e| e.object == format!("Pod/{pod}")),
        None => true,
    };
    let pod_followed = failure.pod.as_deref().is_some_and(|pod| {
        tracker
            .involved
            .values()
            .any(|i| i.kind == "Pod" && i.name == pod)
    });
    if about_pod(&failure) || !tracker.events_readable || !pod_followed {
        return failure;
    }
    let mut best = failure;
    let grace = tokio::time::sleep(FAILURE_EVENTS_GRACE);
    tokio::pin!(grace);
    loop {
        tokio::select! {
            () = &mut grace => return best,
            item = feeds.next() => {
                let Some((which, r)) = item else { return best };
                if let Ok(ev) = r {
                    tracker.apply(which, ev);
                }
                while let Some(Some((which, r))) = feeds.next().now_or_never() {
                    if let Ok(ev) = r {
                        tracker.apply(which, ev);
                    }
                }
            }
        }
        if let Verdict::Failed(f) = judge::judge(&tracker.state, Timestamp::now(), cfg)
            && f.pod == best.pod
        {
            best = f;
            if about_pod(&best) {
                return best;
            }
        }
    }
}

/// Watches `target` until the judge says it is complete (and, with [`WatchOptions::hold`], its
/// new pods stayed Ready long enough; with `gates`, every gate passed since the step began),
/// failed (a gate failing counts), or (with [`WatchOptions::stop_when_paused`]) paused; or
/// until the timeout or Ctrl-C (at once if Ctrl-C was pressed before).
pub async fn watch_rollout(
    cluster: &Cluster,
    target: &WorkloadRef,
    opts: &WatchOptions,
    view: &mut dyn WatchView,
    mut gates: Option<&mut dyn GateSource>,
) -> Result<Ending, Error> {
    let selector = workload_selector(cluster, target).await?;
    let selector = selector_string(&selector, &target.to_string(), &cluster.namespace)?;
    let mut feeds = feeds(cluster, target, &selector);
    let mut event_feeds = EventFeeds::default();
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let ctrl_c = opts.interrupt.wait();
    tokio::pin!(ctrl_c);
    let mut tracker = Tracker::new(target.kind);
    let mut verdict = waiting();
    let mut last_error = String::new();
    let mut clock = ReadyClock::default();
    let mut hold_until: Option<Timestamp> = None;
    let mut last_hold = String::new();
    let mut gate_check: Option<BoxFuture<'static, GateDecision>> = None;
    let mut gate_decision: Option<GateDecision> = gates.as_ref().map(|g| g.decision());

    loop {
        let wake = verdict
            .recheck_at()
            .into_iter()
            .chain(hold_until)
            .min()
            .map(instant_for);
        let gate_due = gates
            .as_ref()
            .filter(|_| gate_check.is_none() && tracker.ready())
            .map(|g| g.next_check());
        tokio::select! {
            biased;
            () = &mut ctrl_c => return Ok(Ending::Interrupted(verdict)),
            _ = tokio::time::sleep_until(deadline) => return Ok(Ending::TimedOut(verdict)),
            decision = gate_answer(&mut gate_check), if gate_check.is_some() => {
                gate_check = None;
                if let Some(g) = gates.as_ref() {
                    view.gates(&g.lines());
                }
                gate_decision = Some(decision);
            }
            _ = tokio::time::sleep_until(gate_due.unwrap_or(deadline)), if gate_due.is_some() => {
                if let Some(g) = gates.as_mut() {
                    gate_check = Some(g.check(&tracker.state));
                }
                continue;
            }
            item = feeds.next() => {
                let Some(item) = item else {
                    return Err(Error::WatchesEnded { workload: target.to_string() });
                };
                let mut batch = vec![item];
                while let Some(Some(more)) = feeds.next().now_or_never() {
                    batch.push(more);
                    if batch.len() >= 512 {
                        break;
                    }
                }
                for (which, r) in batch {
                    match r {
                        Ok(ev) => tracker.apply(which, ev),
                        Err(e) => {
                            let api = watcher_api_error(&e);
                            if matches!(which, Feed::Events(_)) && api.is_some_and(is_forbidden) {
                                if tracker.events_readable {
                                    view.note("note: events are not readable here (forbidden); failures are reported without them");
                                }
                                event_feeds.close_all();
                                tracker.events_readable = false;
                                continue;
                            }
                            if let Some(api) = api.filter(|a| is_forbidden(a) || is_not_found(a)) {
                                let verb = if matches!(e, watcher::Error::InitialListFailed(_)) { "list" } else { "watch" };
                                let op = cluster.op(verb, which.resource(target.kind), None);
                                let kube_err = clone_api_error(api);
                                return Err(api_error(kube_err, op));
                            }
                            let msg = format!(
                                "watch of {} (API server {}) interrupted: {}; retrying",
                                which.resource(target.kind),
                                cluster.server,
                                crate::error::chain(&e)
                            );
                            if msg != last_error {
                                view.note(&msg);
                                last_error = msg;
                            }
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(wake.unwrap_or(deadline)), if wake.is_some() => {}
        }
        // The events of what appeared (a new ReplicaSet, new pods) are followed from now on
        // (each feed lists first: nothing said before is missed).
        event_feeds.sync(cluster, &mut tracker, &mut feeds, view);
        // Judged after every batch of events, and at the time the judge or the hold named.
        if !tracker.ready() {
            continue;
        }
        if tracker.state.workload().is_none() {
            return Ok(Ending::Deleted);
        }
        let now = Timestamp::now();
        verdict = judge::judge(&tracker.state, now, &opts.judge);
        view.update(&verdict, &tracker.state);
        hold_until = None;
        // A failed gate fails the rollout whatever the pods say (a version serving errors
        // while Ready).
        if let Some(GateDecision::Fail(f)) = &gate_decision
            && !matches!(verdict, Verdict::Failed(_))
        {
            return Ok(Ending::Failed {
                failure: Box::new(f.clone().into_failure(verdict.progress().clone())),
                detected: now,
            });
        }
        match verdict {
            Verdict::Complete(_) => {
                if opts.hold.is_none() && gate_decision.is_none() {
                    return Ok(Ending::Complete(verdict));
                }
                match check_new_pods(
                    &tracker.state,
                    opts.hold.unwrap_or_default(),
                    opts.judge.max_restarts,
                    now,
                    gate_decision.as_ref(),
                    &mut clock,
                ) {
                    HoldCheck::Pass => return Ok(Ending::Complete(verdict)),
                    HoldCheck::Fail(failure) => {
                        return Ok(Ending::Failed {
                            failure: Box::new(failure.into_failure(verdict.progress().clone())),
                            detected: now,
                        });
                    }
                    HoldCheck::GateFailed(failure) => {
                        return Ok(Ending::Failed {
                            failure: Box::new(failure.into_failure(verdict.progress().clone())),
                            detected: now,
                        });
                    }
                    HoldCheck::Wait { why, at } => {
                        hold_until = at;
                        // One line per reason to wait, not per second of it.
                        let shown = why.split(" (").next().unwrap_or_default().to_owned();
                        if shown != last_hold {
                            view.note(&format!("{target}: {why}"));
                            last_hold = shown;
                        }
                    }
                }
            }
            Verdict::Failed(failure) => {
                let detected = Timestamp::now();
                let failure = with_pod_events(failure, &mut feeds, &mut tracker, &opts.judge).await;
                return Ok(Ending::Failed { failure, detected });
            }
            Verdict::Unsupported(_) => return Ok(Ending::Unsupported(verdict)),
            Verdict::Paused(ref p) if opts.stop_when_paused && p.observed => {
                return Ok(Ending::Paused(verdict));
            }
            _ => {}
        }
    }
}

fn clone_api_error(e: &kube::Error) -> kube::Error {
    match e {
        kube::Error::Api(s) => kube::Error::Api(s.clone()),
        other => kube::Error::Service(other.to_string().into()),
    }
}

/// The state as it is now, read with plain GET/LIST requests (for `status` without `--watch`).
pub async fn snapshot(cluster: &Cluster, target: &WorkloadRef) -> Result<RolloutState, Error> {
    let op = cluster.op("get", target.resource(), Some(&target.name));
    let mut state = RolloutState::new();
    let selector = match target.kind {
        WorkloadKind::Deployment => {
            let d: Deployment = cluster
                .deployments()
                .get(&target.name)
                .await
                .map_err(|e| api_error(e, op))?;
            let s = d.spec.selector.clone();
            state.upsert(d.into());
            s
        }
        WorkloadKind::StatefulSet => {
            let d: StatefulSet = cluster
                .statefulsets()
                .get(&target.name)
                .await
                .map_err(|e| api_error(e, op))?;
            let s = d.spec.selector.clone();
            state.upsert(d.into());
            s
        }
        WorkloadKind::DaemonSet => {
            let d: DaemonSet = cluster
                .daemonsets()
                .get(&target.name)
                .await
                .map_err(|e| api_error(e, op))?;
            let s = d.spec.selector.clone();
            state.upsert(d.into());
            s
        }
    };
    let lp = ListParams::default().labels(&selector_string(
        &selector,
        &target.to_string(),
        &cluster.namespace,
    )?);
    if target.kind == WorkloadKind::Deployment {
        let rss = cluster
            .replicasets()
            .list(&lp)
            .await
            .map_err(|e| api_error(e, cluster.op("list", "replicasets.apps", None)))?;
        for rs in rss.items {
            state.upsert(Object::from(rs as ReplicaSet));
        }
    }
    let pods = cluster
        .pods()
        .list(&lp)
        .await
        .map_err(|e| api_error(e, cluster.op("list", "pods", None)))?;
    for p in pods.items {
        state.upsert(Object::from(p as Pod));
    }
    // The events about each object (a few lists at a time); optional, as in `watch_rollout`:
    // a 403 leaves them out.
    let (involved, _) = involved_objects(&state);
    let api = cluster.events();
    let lists: Vec<Option<Vec<Event>>> = futures::stream::iter(involved)
        .map(|inv| {
            let api = api.clone();
            async move {
                let lp = ListParams::default().fields(&inv.field_selector());
                api.list(&lp).await.ok().map(|l| l.items)
            }
        })
        .buffered(8)
        .collect()
        .await;
    let mut events: Vec<Event> = lists.into_iter().flatten().flatten().collect();
    events.sort_by_key(event_time);
    for e in events {
        state.upsert(Object::from(e));
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind: &str, name: &str, uid: &str) -> Object {
        let v = serde_json::json!({"metadata": {"name": name, "namespace": "s", "uid": uid}});
        match kind {
            "Deployment" => Object::from(
                serde_json::from_value::<Deployment>(serde_json::json!({
                    "metadata": v["metadata"], "spec": {"selector": {}, "template": {}}
                }))
                .unwrap(),
            ),
            "ReplicaSet" => Object::from(
                serde_json::from_value::<ReplicaSet>(serde_json::json!({
                    "metadata": v["metadata"], "spec": {"selector": {}}
                }))
                .unwrap(),
            ),
            _ => Object::from(serde_json::from_value::<Pod>(v).unwrap()),
        }
    }

    fn event(name: &str, involved_name: &str, involved_uid: &str) -> Object {
        Object::from(
            serde_json::from_value::<Event>(serde_json::json!({
                "metadata": {"name": name, "namespace": "s"},
                "involvedObject": {"name": involved_name, "uid": involved_uid}
            }))
            .unwrap(),
        )
    }

    #[test]
    fn events_are_selected_per_object_of_the_rollout() {
        let mut state = RolloutState::new();
        state.upsert(object("Deployment", "web", "d1"));
        state.upsert(object("ReplicaSet", "web-7bd446db9", "r1"));
        state.upsert(object("Pod", "web-7bd446db9-x2b4z", "p1"));
        let (involved, total) = involved_objects(&state);
        assert_eq!(total, 3);
        let selectors: Vec<String> = involved.iter().map(Involved::field_selector).collect();
        assert_eq!(
            selectors,
            [
                "involvedObject.kind=Deployment,involvedObject.name=web,involvedObject.uid=d1",
                "involvedObject.kind=ReplicaSet,involvedObject.name=web-7bd446db9,involvedObject.uid=r1",
                "involvedObject.kind=Pod,involvedObject.name=web-7bd446db9-x2b4z,involvedObject.uid=p1",
            ]
        );
        // Many pods: the feeds stop at the cap, the workload and ReplicaSets first.
        for i in 0..100 {
            state.upsert(object(
                "Pod",
                &format!("web-7bd446db9-{i}"),
                &format!("pp{i}"),
            ));
        }
        let (involved, total) = involved_objects(&state);
        assert_eq!((involved.len(), total), (MAX_EVENT_FEEDS, 103));
        assert_eq!(involved[0].kind, "Deployment");
        assert_eq!(involved[1].kind, "ReplicaSet");
    }

    #[test]
    fn an_events_relist_prunes_only_its_own_object() {
        let mut t = Tracker::new(WorkloadKind::Deployment);
        t.involved.insert(
            0,
            Involved {
                kind: "Pod",
                name: "a".into(),
                uid: "ua".into(),
            },
        );
        t.involved.insert(
            1,
            Involved {
                kind: "Pod",
                name: "b".into(),
                uid: "ub".into(),
            },
        );
        for (feed, e) in [
            (0, event("ea1", "a", "ua")),
            (0, event("ea2", "a", "ua")),
            (1, event("eb", "b", "ub")),
        ] {
            t.apply(Feed::Events(feed), watcher::Event::Apply(e));
        }
        assert_eq!(t.state.events().count(), 3);
        // Pod a's feed relists without ea2: only ea2 goes.
        t.apply(Feed::Events(0), watcher::Event::Init);
        t.apply(
            Feed::Events(0),
            watcher::Event::InitApply(event("ea1", "a", "ua")),
        );
        t.apply(Feed::Events(0), watcher::Event::InitDone);
        let mut left: Vec<String> = t
            .state
            .events()
            .filter_map(|e| e.metadata.name.clone())
            .collect();
        left.sort();
        assert_eq!(left, ["ea1", "eb"]);
    }

    #[test]
    fn relist_prunes_what_is_gone() {
        let pod = |n: &str| -> Object {
            let p: Pod = serde_json::from_value(
                serde_json::json!({"metadata": {"name": n, "namespace": "s"}}),
            )
            .unwrap();
            Object::from(p)
        };
        let mut t = Tracker::new(WorkloadKind::Deployment);
        t.apply(Feed::Pods, watcher::Event::Init);
        t.apply(Feed::Pods, watcher::Event::InitApply(pod("a")));
        t.apply(Feed::Pods, watcher::Event::InitApply(pod("b")));
        t.apply(Feed::Pods, watcher::Event::InitDone);
        assert_eq!(t.state.pods().count(), 2);
        assert!(!t.ready());
        t.apply(Feed::Pods, watcher::Event::Init);
        t.apply(Feed::Pods, watcher::Event::InitApply(pod("b")));
        t.apply(Feed::Pods, watcher::Event::InitDone);
        assert_eq!(t.state.pods().count(), 1);
    }
}
