//! The plugin's Kubernetes-facing commands against a stub API server.
//!
//! The stub is an in-process axum server on 127.0.0.1 that answers the way the real
//! kube-apiserver exchanges recorded in `tests/fixtures/api-responses/` do: it starts from the
//! recorded Deployment (01), ReplicaSets (07), Pods (08) and Events (14), answers a missing
//! object with the recorded 404 Status (02), a forbidden GET with the recorded 403 (09), a JSON
//! Patch whose `test` op fails with the recorded bare 422 (05), a stale `metadata.resourceVersion`
//! with the recorded 409 (04), an invalid object with a 422 `Invalid` carrying field causes (06),
//! and serves list + watch (one JSON event a line, as in 11) from an event log keyed by
//! resourceVersion. A small stand-in for the deployment controller reacts to template changes
//! (new ReplicaSet with the next revision, status) a moment later, through the watch; images
//! whose tag contains `crash` get a pod in CrashLoopBackOff instead.
//!
//! Each test runs the real binary (`kubectl-rollout_safe`) with a kubeconfig pointing at the stub.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::Notify;

const API_RESPONSES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/api-responses"
);
const NS: &str = "api";
const IMAGE_1: &str = "registry.example.com/team/good:2.3.1";
const IMAGE_2: &str = "registry.example.com/team/good:2.4.0";

// ---------------------------------------------------------------------------------------------
// Recorded exchanges
// ---------------------------------------------------------------------------------------------

/// The status code and JSON body of a recorded response.
fn recorded(file: &str) -> (u16, Value) {
    let path = PathBuf::from(API_RESPONSES).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the recorded API exchange {}: {e} (copied into tests/fixtures/api-responses)",
            path.display()
        )
    });
    let resp = &text[text.find("### response").expect("a ### response section")..];
    let status_line = resp.lines().nth(1).expect("a status line");
    let code: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    // Header lines end in CRLF, as on the wire; the body starts after the first empty line.
    let body = resp
        .split_once("\r\n\r\n")
        .or_else(|| resp.split_once("\n\r\n"))
        .or_else(|| resp.split_once("\n\n"))
        .expect("headers end")
        .1;
    let value = serde_json::from_str(body.trim())
        .unwrap_or_else(|e| panic!("{file}: body is not JSON: {e}"));
    (code, value)
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .unwrap()
        .to_string()
}

fn strip_managed(v: &mut Value) {
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
}

// ---------------------------------------------------------------------------------------------
// The stub
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Request {
    method: String,
    uri: String,
    content_type: String,
    body: String,
}

#[derive(Default)]
struct State {
    rv: u64,
    deployments: BTreeMap<String, Value>,
    statefulsets: BTreeMap<String, Value>,
    replicasets: Vec<Value>,
    pods: Vec<Value>,
    events: Vec<Value>,
    /// (resourceVersion, resource, type, object) for watches.
    log: Vec<(u64, &'static str, &'static str, Value)>,
    requests: Vec<Request>,
    /// Answer GETs of deployments with the recorded 403.
    forbid_get: bool,
    /// Before applying this many PATCHes, another writer changes the Deployment first
    /// (the client's precondition is then stale).
    concurrent_writes: usize,
    /// Answer this many stale-precondition PATCHes with the recorded 409 instead of the 422 a
    /// failed JSON Patch `test` gets.
    answer_409: usize,
    /// Delay of the stand-in controller.
    controller_delay: Duration,
    /// The stand-in controller does nothing (rollouts never progress).
    controller_stuck: bool,
    uid_counter: u64,
}

impl State {
    fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn record(&mut self, resource: &'static str, type_: &'static str, obj: &mut Value) {
        let rv = self.bump();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let (api_version, kind) = match resource {
            "deployments" => ("apps/v1", "Deployment"),
            "statefulsets" => ("apps/v1", "StatefulSet"),
            "replicasets" => ("apps/v1", "ReplicaSet"),
            "pods" => ("v1", "Pod"),
            _ => ("v1", "Event"),
        };
        let mut full = obj.clone();
        full["apiVersion"] = json!(api_version);
        full["kind"] = json!(kind);
        self.log.push((rv, resource, type_, full));
    }

    fn uid(&mut self) -> String {
        self.uid_counter += 1;
        format!("00000000-0000-4000-8000-{:012}", self.uid_counter)
    }
}

#[derive(Clone)]
struct Stub {
    state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
}

impl Stub {
    /// The recorded objects, made consistent: the Deployment runs revision 2 (image 2.4.0,
    /// ReplicaSet good-7bd446db9) after revision 1 (2.3.1, good-69bb684dd9).
    fn new() -> Stub {
        let mut st = State {
            controller_delay: Duration::from_millis(300),
            ..State::default()
        };
        let (_, mut d) = recorded("01-get-deployment.txt");
        strip_managed(&mut d);
        let ann = d["metadata"]["annotations"].as_object_mut().unwrap();
        ann.remove("kubectl.kubernetes.io/last-applied-configuration");
        ann.insert("deployment.kubernetes.io/revision".into(), json!("2"));
        ann.insert(
            "kubernetes.io/change-cause".into(),
            json!(format!("image app={IMAGE_2}")),
        );
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(IMAGE_2);
        d["metadata"]["generation"] = json!(2);
        d["status"]["observedGeneration"] = json!(2);
        let (_, rss) = recorded("07-list-replicasets-by-selector.txt");
        for mut rs in rss["items"].as_array().unwrap().clone() {
            strip_managed(&mut rs);
            let current =
                rs["spec"]["template"]["spec"]["containers"][0]["image"] == json!(IMAGE_2);
            if current {
                // The recorded revision 2 was made by the merge patch of 03, which replaced the
                // container list and so lost probes, ports and preStop. Here it carries the
                // whole template, as a careful client would have left it.
                let hash =
                    rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"].clone();
                let mut t = d["spec"]["template"].clone();
                t["metadata"]["labels"]["pod-template-hash"] = hash;
                rs["spec"]["template"] = t;
            }
            let replicas = if current { 3 } else { 0 };
            rs["spec"]["replicas"] = json!(replicas);
            rs["status"] = json!({"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas, "observedGeneration": 2});
            st.replicasets.push(rs);
        }
        let (_, pods) = recorded("08-list-pods-by-selector.txt");
        for mut p in pods["items"].as_array().unwrap().clone() {
            strip_managed(&mut p);
            // Recorded mid-rollout; here every pod has become ready.
            for c in p["status"]["conditions"].as_array_mut().unwrap() {
                c["status"] = json!("True");
            }
            for c in p["status"]["containerStatuses"].as_array_mut().unwrap() {
                c["ready"] = json!(true);
            }
            st.pods.push(p);
        }
        let (_, events) = recorded("14-list-events-for-deployment.txt");
        for mut e in events["items"].as_array().unwrap().clone() {
            strip_managed(&mut e);
            st.events.push(e);
        }
        st.rv = 400;
        d["metadata"]["resourceVersion"] = json!("400");
        st.deployments.insert("good".into(), d);
        st.statefulsets.insert(
            "db".into(),
            json!({"metadata": {"name": "db", "namespace": NS, "uid": "5f0c0000-0000-4000-8000-000000000001", "generation": 1,
                    "resourceVersion": "399", "creationTimestamp": "2026-11-22T23:10:24Z"},
                "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "postgres:16.4"}]}},
                    "updateStrategy": {"type": "RollingUpdate"}},
                "status": {"observedGeneration": 1, "replicas": 2, "readyReplicas": 2, "availableReplicas": 2, "currentReplicas": 2,
                    "updatedReplicas": 2, "currentRevision": "db-5d8f", "updateRevision": "db-5d8f"}}),
        );
        Stub {
            state: Arc::new(Mutex::new(st)),
            changed: Arc::new(Notify::new()),
        }
    }

    fn with(self, f: impl FnOnce(&mut State)) -> Self {
        f(&mut self.state.lock().unwrap());
        self
    }

    fn deployment(&self) -> Value {
        self.state.lock().unwrap().deployments["good"].clone()
    }

    fn requests(&self, method: &str) -> Vec<Request> {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.method == method)
            .cloned()
            .collect()
    }
}

fn status(code: u16, body: Value) -> Response {
    let mut r = (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response();
    r.headers_mut()
        .insert("cache-control", "no-cache, private".parse().unwrap());
    r
}

fn not_found(resource: &str, name: &str) -> Response {
    let (code, mut body) = recorded("02-get-deployment-not-found.txt");
    body["message"] = json!(format!("{resource}.apps {name:?} not found"));
    body["details"]["name"] = json!(name);
    status(code, body)
}

fn query(uri: &Uri) -> BTreeMap<String, String> {
    form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

async fn handle(stub: Stub, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    stub.state.lock().unwrap().requests.push(Request {
        method: method.to_string(),
        uri: uri.to_string(),
        content_type: content_type.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let q = query(&uri);
    let segs: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let (resource, name) = match segs.as_slice() {
        ["api", "v1", "namespaces", NS, r] => (*r, None),
        ["apis", "apps", "v1", "namespaces", NS, r] => (*r, None),
        ["apis", "apps", "v1", "namespaces", NS, r, n] => (*r, Some(*n)),
        ["apis", _, _, "namespaces", NS, r] => (*r, None),
        // Cluster-wide lists (-A): this cluster has one namespace.
        ["api", "v1", r] | ["apis", _, _, r] => (*r, None),
        _ => return not_found("unknown", uri.path()),
    };
    match (method.clone(), resource, name) {
        (Method::GET, "deployments", Some(n)) => {
            let st = stub.state.lock().unwrap();
            if st.forbid_get {
                let (code, body) = recorded("09-get-deployment-forbidden.txt");
                return status(code, body);
            }
            match st.deployments.get(n) {
                Some(d) => status(200, with_kind(d.clone(), "apps/v1", "Deployment")),
                None => not_found("deployments", n),
            }
        }
        (Method::GET, "statefulsets", Some(n)) => {
            match stub.state.lock().unwrap().statefulsets.get(n) {
                Some(d) => status(200, with_kind(d.clone(), "apps/v1", "StatefulSet")),
                None => not_found("statefulsets", n),
            }
        }
        (Method::PATCH, "deployments", Some(n)) => {
            patch(&stub, n, &content_type, &body, q.contains_key("dryRun"))
        }
        (Method::GET, r, None) if q.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            watch(&stub, r, &q)
        }
        (Method::GET, r, None) => list(&stub, r, &q),
        _ => status(
            405,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "method not allowed", "reason": "MethodNotAllowed", "code": 405}),
        ),
    }
}

fn with_kind(mut v: Value, api_version: &str, kind: &str) -> Value {
    v["apiVersion"] = json!(api_version);
    v["kind"] = json!(kind);
    v
}

fn list_kind(resource: &str) -> (&'static str, &'static str) {
    match resource {
        "deployments" => ("apps/v1", "DeploymentList"),
        "statefulsets" => ("apps/v1", "StatefulSetList"),
        "daemonsets" => ("apps/v1", "DaemonSetList"),
        "services" => ("v1", "ServiceList"),
        "replicasets" => ("apps/v1", "ReplicaSetList"),
        "pods" => ("v1", "PodList"),
        "events" => ("v1", "EventList"),
        "horizontalpodautoscalers" => ("autoscaling/v2", "HorizontalPodAutoscalerList"),
        "poddisruptionbudgets" => ("policy/v1", "PodDisruptionBudgetList"),
        _ => ("v1", "List"),
    }
}

fn name_filter(q: &BTreeMap<String, String>) -> Option<String> {
    q.get("fieldSelector")
        .and_then(|f| f.strip_prefix("metadata.name="))
        .map(str::to_owned)
}

fn list(stub: &Stub, resource: &str, q: &BTreeMap<String, String>) -> Response {
    let st = stub.state.lock().unwrap();
    let items: Vec<Value> = match resource {
        "deployments" => {
            let only = name_filter(q);
            st.deployments
                .iter()
                .filter(|(n, _)| only.as_ref().is_none_or(|o| o == *n))
                .map(|(_, d)| d.clone())
                .collect()
        }
        "statefulsets" => {
            let only = name_filter(q);
            st.statefulsets
                .iter()
                .filter(|(n, _)| only.as_ref().is_none_or(|o| o == *n))
                .map(|(_, d)| d.clone())
                .collect()
        }
        "replicasets" => st.replicasets.clone(),
        "pods" => st.pods.clone(),
        "events" => st.events.clone(),
        _ => Vec::new(),
    };
    let (api_version, kind) = list_kind(resource);
    status(
        200,
        json!({"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}),
    )
}

fn watch(stub: &Stub, resource: &str, q: &BTreeMap<String, String>) -> Response {
    let resource: &'static str = match resource {
        "deployments" => "deployments",
        "statefulsets" => "statefulsets",
        "replicasets" => "replicasets",
        "pods" => "pods",
        "events" => "events",
        _ => return status(200, json!({})),
    };
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let only = name_filter(q);
    let deadline = Instant::now()
        + Duration::from_secs(
            q.get("timeoutSeconds")
                .and_then(|t| t.parse().ok())
                .unwrap_or(290)
                .min(290),
        );
    let stub = stub.clone();
    let stream = futures::stream::unfold(from, move |mut last| {
        let stub = stub.clone();
        let only = only.clone();
        async move {
            loop {
                if Instant::now() > deadline {
                    return None;
                }
                let notified = stub.changed.notified();
                let lines: Vec<(u64, String)> = {
                    let st = stub.state.lock().unwrap();
                    st.log
                        .iter()
                        .filter(|(rv, r, _, o)| {
                            *rv > last
                                && *r == resource
                                && only
                                    .as_ref()
                                    .is_none_or(|n| o["metadata"]["name"].as_str() == Some(n))
                        })
                        .map(|(rv, _, t, o)| {
                            (*rv, format!("{}\n", json!({"type": t, "object": o})))
                        })
                        .collect()
                };
                if let Some((rv, _)) = lines.last() {
                    last = *rv;
                    let chunk: String = lines.into_iter().map(|(_, l)| l).collect();
                    return Some((
                        Ok::<Bytes, std::convert::Infallible>(Bytes::from(chunk)),
                        last,
                    ));
                }
                let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
            }
        }
    });
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn invalid_env_name(d: &Value) -> Option<(String, String)> {
    let containers = d["spec"]["template"]["spec"]["containers"].as_array()?;
    for (ci, c) in containers.iter().enumerate() {
        for (ei, e) in c["env"].as_array().into_iter().flatten().enumerate() {
            let name = e["name"].as_str().unwrap_or_default();
            let ok = name
                .chars()
                .next()
                .is_some_and(|ch| ch.is_ascii_alphabetic() || ch == '_')
                && name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_-.".contains(ch));
            if !ok {
                return Some((
                    format!("spec.template.spec.containers[{ci}].env[{ei}].name"),
                    name.to_owned(),
                ));
            }
        }
    }
    None
}

fn patch(stub: &Stub, name: &str, content_type: &str, body: &[u8], dry_run: bool) -> Response {
    let mut st = stub.state.lock().unwrap();
    if !st.deployments.contains_key(name) {
        return not_found("deployments", name);
    }
    if st.concurrent_writes > 0 {
        // Someone else writes first.
        st.concurrent_writes -= 1;
        let mut d = st.deployments[name].clone();
        let n = st.log.len();
        d["metadata"]["annotations"]["example.com/other-writer"] = json!(format!("touch {n}"));
        st.record("deployments", "MODIFIED", &mut d);
        st.deployments.insert(name.to_owned(), d);
        stub.changed.notify_waiters();
        if st.answer_409 > 0 {
            st.answer_409 -= 1;
            let (code, b) = recorded("04-patch-stale-resourceversion-conflict.txt");
            return status(code, b);
        }
    }
    let current = st.deployments[name].clone();
    let current_rv = current["metadata"]["resourceVersion"].clone();
    let mut new = current.clone();
    if content_type.starts_with("application/json-patch+json") {
        let Ok(ops) = serde_json::from_slice::<json_patch::Patch>(body) else {
            return status(
                400,
                json!({"kind": "Status", "status": "Failure", "message": "bad JSON Patch", "reason": "BadRequest", "code": 400}),
            );
        };
        if json_patch::patch(&mut new, &ops.0).is_err() {
            // What a real server says when a `test` op (or any op) fails: 05.
            let (code, b) = recorded("05-jsonpatch-test-op-failed.txt");
            return status(code, b);
        }
    } else {
        let Ok(p) = serde_json::from_slice::<Value>(body) else {
            return status(
                400,
                json!({"kind": "Status", "status": "Failure", "message": "bad merge patch", "reason": "BadRequest", "code": 400}),
            );
        };
        json_patch::merge(&mut new, &p);
    }
    if new["metadata"]["resourceVersion"] != current_rv {
        let (code, b) = recorded("04-patch-stale-resourceversion-conflict.txt");
        return status(code, b);
    }
    if let Some((field, value)) = invalid_env_name(&new) {
        let (code, mut b) = recorded("06-patch-selector-immutable-invalid.txt");
        let msg = format!(
            "Invalid value: {value:?}: a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit"
        );
        b["message"] = json!(format!(
            "Deployment.apps {name:?} is invalid: {field}: {msg}"
        ));
        b["details"]["causes"] =
            json!([{"reason": "FieldValueInvalid", "message": msg, "field": field}]);
        return status(code, b);
    }
    let spec_changed = new["spec"] != current["spec"];
    if spec_changed {
        let g = new["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        new["metadata"]["generation"] = json!(g);
    }
    if dry_run {
        return status(200, with_kind(new, "apps/v1", "Deployment"));
    }
    st.record("deployments", "MODIFIED", &mut new);
    st.deployments.insert(name.to_owned(), new.clone());
    stub.changed.notify_waiters();
    if new["spec"]["template"] != current["spec"]["template"] || spec_changed {
        let stub2 = stub.clone();
        let name = name.to_owned();
        let delay = st.controller_delay;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            controller(&stub2, &name);
        });
    }
    status(200, with_kind(new, "apps/v1", "Deployment"))
}

fn hash_template(t: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    t.to_string().hash(&mut h);
    format!("{:010x}", h.finish() & 0xff_ffff_ffff)
}

fn without_hash(t: &Value) -> Value {
    let mut t = t.clone();
    if let Some(l) = t["metadata"]["labels"].as_object_mut() {
        l.remove("pod-template-hash");
    }
    t
}

fn revision(v: &Value) -> i64 {
    v["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// A stand-in for the deployment controller: finds or creates the ReplicaSet of the current
/// template with the next revision, and reports the rollout as done, or (for an image whose tag
/// contains `crash`) as stuck on a crash-looping pod.
fn controller(stub: &Stub, name: &str) {
    let mut st = stub.state.lock().unwrap();
    if st.controller_stuck {
        return;
    }
    let mut d = st.deployments[name].clone();
    let generation = d["metadata"]["generation"].clone();
    let paused = d["spec"]["paused"].as_bool().unwrap_or(false);
    let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
    if paused {
        d["status"]["observedGeneration"] = generation;
        st.record("deployments", "MODIFIED", &mut d);
        st.deployments.insert(name.to_owned(), d);
        stub.changed.notify_waiters();
        return;
    }
    let template = d["spec"]["template"].clone();
    let next = st.replicasets.iter().map(revision).max().unwrap_or(0) + 1;
    let image = template["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let crash = image.contains("crash");
    let idx = st
        .replicasets
        .iter()
        .position(|rs| without_hash(&rs["spec"]["template"]) == without_hash(&template));
    let idx = match idx {
        Some(i) => i,
        None => {
            let hash = hash_template(&template);
            let mut t = template.clone();
            t["metadata"]["labels"]["pod-template-hash"] = json!(hash);
            let uid = st.uid();
            let cause = d["metadata"]["annotations"]["kubernetes.io/change-cause"].clone();
            let rs = json!({
                "metadata": {"name": format!("{name}-{hash}"), "namespace": NS, "uid": uid, "creationTimestamp": now(),
                    "labels": t["metadata"]["labels"].clone(),
                    "annotations": {"deployment.kubernetes.io/revision": "0", "kubernetes.io/change-cause": cause},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                        "uid": d["metadata"]["uid"].clone(), "controller": true, "blockOwnerDeletion": true}]},
                "spec": {"replicas": 0, "selector": {"matchLabels": t["metadata"]["labels"].clone()}, "template": t},
                "status": {"replicas": 0}
            });
            st.replicasets.push(rs);
            st.replicasets.len() - 1
        }
    };
    let mut rss = std::mem::take(&mut st.replicasets);
    for (i, rs) in rss.iter_mut().enumerate() {
        if i == idx {
            rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] =
                json!(next.to_string());
            let r = if crash { 1 } else { replicas };
            let ready = if crash { 0 } else { replicas };
            rs["spec"]["replicas"] = json!(r);
            rs["status"] =
                json!({"replicas": r, "readyReplicas": ready, "availableReplicas": ready});
        } else if !crash {
            rs["spec"]["replicas"] = json!(0);
            rs["status"] = json!({"replicas": 0});
        } else {
            continue;
        }
        st.record("replicasets", "MODIFIED", rs);
    }
    let new_rs = rss[idx].clone();
    st.replicasets = rss;
    d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!(next.to_string());
    d["status"] = if crash {
        json!({"observedGeneration": generation, "replicas": replicas + 1, "updatedReplicas": 1, "readyReplicas": replicas,
            "availableReplicas": replicas, "unavailableReplicas": 1,
            "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "lastUpdateTime": now(), "lastTransitionTime": now()},
                {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated", "message": format!("ReplicaSet {:?} is progressing.", new_rs["metadata"]["name"]),
                 "lastUpdateTime": now(), "lastTransitionTime": now()}]})
    } else {
        json!({"observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "lastUpdateTime": now(), "lastTransitionTime": now()},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": format!("ReplicaSet {:?} has successfully progressed.", new_rs["metadata"]["name"]),
                 "lastUpdateTime": now(), "lastTransitionTime": now()}]})
    };
    // Pods: a crash-looping one for a crashing image; otherwise crash pods go away.
    let mut pods = std::mem::take(&mut st.pods);
    pods.retain_mut(|p| {
        let crashing = p["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.ends_with("-crash1"));
        if crashing && !crash {
            st.record("pods", "DELETED", p);
            return false;
        }
        true
    });
    if crash {
        let rs_name = new_rs["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let pod_name = format!("{rs_name}-crash1");
        let uid = st.uid();
        let mut pod = json!({
            "metadata": {"name": pod_name, "namespace": NS, "uid": uid, "creationTimestamp": now(),
                "labels": new_rs["spec"]["template"]["metadata"]["labels"].clone(),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name,
                    "uid": new_rs["metadata"]["uid"].clone(), "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"containers": [{"name": "app", "image": image}]},
            "status": {"phase": "Running", "startTime": now(),
                "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now()}],
                "containerStatuses": [{"name": "app", "ready": false, "restartCount": 2, "image": image, "imageID": "",
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off 20s restarting failed container=app pod={pod_name}")}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now(), "finishedAt": now()}}}]}
        });
        st.record("pods", "ADDED", &mut pod);
        pods.push(pod);
        let mut ev = json!({
            "metadata": {"name": format!("{pod_name}.backoff"), "namespace": NS, "creationTimestamp": now()},
            "involvedObject": {"kind": "Pod", "namespace": NS, "name": pod_name, "apiVersion": "v1"},
            "reason": "BackOff", "message": format!("Back-off restarting failed container app in pod {pod_name}"),
            "type": "Warning", "count": 3, "firstTimestamp": now(), "lastTimestamp": now(), "source": {"component": "kubelet"}
        });
        st.record("events", "ADDED", &mut ev);
        st.events.push(ev);
    }
    st.pods = pods;
    st.record("deployments", "MODIFIED", &mut d);
    st.deployments.insert(name.to_owned(), d);
    stub.changed.notify_waiters();
}

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

struct Harness {
    stub: Stub,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

async fn start(stub: Stub) -> Harness {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let s = stub.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let s = s.clone();
            async move { handle(s, method, uri, headers, body).await }
        },
    );
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: stub\nclusters:\n- name: stub\n  cluster:\n    server: http://{addr}\n\
             contexts:\n- name: stub\n  context:\n    cluster: stub\n    user: alice\n    namespace: {NS}\n\
             users:\n- name: alice\n  user:\n    token: stub-token\n"
        ),
    )
    .unwrap();
    Harness {
        stub,
        _dir: dir,
        kubeconfig,
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Harness {
    async fn run(&self, args: &[&str]) -> Run {
        self.run_interrupted(args, None).await
    }

    /// Runs the plugin; with `interrupt`, sends it SIGINT (Ctrl-C) once it is watching (its
    /// watch requests have reached the stub, so its Ctrl-C handler is installed) plus that long.
    async fn run_interrupted(&self, args: &[&str], interrupt: Option<Duration>) -> Run {
        let stub = self.stub.clone();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-rollout_safe"));
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env_remove("KUBECONFIG")
            .env_remove("ROLLOUT_SAFE_POLICY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out: Output = tokio::task::spawn_blocking(move || {
            let child = cmd.spawn().expect("the plugin binary runs");
            let id = child.id();
            if let Some(after) = interrupt {
                std::thread::spawn(move || {
                    let watching = || {
                        stub.state
                            .lock()
                            .unwrap()
                            .requests
                            .iter()
                            .any(|r| r.uri.contains("watch=true"))
                    };
                    let give_up = Instant::now() + Duration::from_secs(60);
                    while !watching() && Instant::now() < give_up {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    std::thread::sleep(after);
                    let _ = Command::new("kill")
                        .arg("-INT")
                        .arg(id.to_string())
                        .status();
                });
            }
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(child.wait_with_output());
            });
            match rx.recv_timeout(Duration::from_secs(90)) {
                Ok(out) => out.unwrap(),
                Err(_) => {
                    let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
                    panic!("the plugin did not finish within 90 s");
                }
            }
        })
        .await
        .unwrap();
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        eprintln!(
            "$ kubectl rollout-safe {}\n--- exit {}\n--- stdout\n{}--- stderr\n{}",
            args.join(" "),
            run.code,
            run.stdout,
            run.stderr
        );
        run
    }
}

fn patch_ops(r: &Request) -> Vec<Value> {
    serde_json::from_str::<Value>(&r.body)
        .unwrap()
        .as_array()
        .cloned()
        .unwrap()
}

fn op_at<'a>(ops: &'a [Value], path: &str) -> Option<&'a Value> {
    ops.iter().find(|o| o["path"] == json!(path))
}

fn cause_of(d: &Value) -> String {
    d["metadata"]["annotations"]["kubernetes.io/change-cause"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_update_happy_path_patch_carries_precondition_and_cause() {
    let h = start(Stub::new()).await;
    let r = h
        .run(&[
            "update",
            "deploy/good",
            "--image",
            "app=registry.example.com/team/good:2.5.0",
            "--timeout",
            "30s",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let patches = h.stub.requests("PATCH");
    assert_eq!(patches.len(), 1);
    let p = &patches[0];
    assert!(
        p.content_type.starts_with("application/json-patch+json"),
        "{}",
        p.content_type
    );
    assert!(
        p.uri.contains("fieldManager=kubectl-rollout-safe"),
        "{}",
        p.uri
    );
    let ops = patch_ops(p);
    assert_eq!(
        ops[0],
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": "400"})
    );
    assert_eq!(
        op_at(&ops, "/spec/template/spec/containers/0/image").unwrap()["value"],
        json!("registry.example.com/team/good:2.5.0")
    );
    let cause = op_at(&ops, "/metadata/annotations/kubernetes.io~1change-cause").unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        cause.starts_with("alice: image app=registry.example.com/team/good:2.5.0 (was 2.4.0)"),
        "{cause}"
    );
    // Only what changed was sent: probes, ports and the preStop hook survive.
    assert_eq!(ops.len(), 3, "{ops:?}");
    let d = h.stub.deployment();
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], json!("registry.example.com/team/good:2.5.0"));
    assert!(
        c["readinessProbe"].is_object()
            && c["livenessProbe"].is_object()
            && c["lifecycle"]["preStop"].is_object()
    );
    assert_eq!(cause_of(&d), cause);
    assert!(r.stderr.contains("rolled out"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_update_conflict_rereads_and_retries_without_clobbering() {
    // A concurrent writer makes the first precondition stale: the real server answers the failed
    // JSON Patch `test` with a bare 422 (05); the plugin re-reads, sees a new resourceVersion,
    // recomputes and writes again.
    let h = start(Stub::new().with(|s| s.concurrent_writes = 1)).await;
    let r = h
        .run(&[
            "update",
            "deploy/good",
            "--image",
            "app=registry.example.com/team/good:2.5.0",
            "--timeout",
            "30s",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("conflict: deployment/good changed since it was read"),
        "{}",
        r.stderr
    );
    let patches = h.stub.requests("PATCH");
    assert_eq!(patches.len(), 2);
    let first = patch_ops(&patches[0]);
    let second = patch_ops(&patches[1]);
    assert_eq!(first[0]["value"], json!("400"));
    assert_eq!(
        second[0]["value"],
        json!("401"),
        "the retry carries the fresh resourceVersion"
    );
    let d = h.stub.deployment();
    assert_eq!(
        d["metadata"]["annotations"]["example.com/other-writer"],
        json!("touch 0"),
        "the other write survives"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        json!("registry.example.com/team/good:2.5.0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_update_409_conflict_retries() {
    let h = start(Stub::new().with(|s| {
        s.concurrent_writes = 2;
        s.answer_409 = 2;
    }))
    .await;
    let r = h
        .run(&[
            "update",
            "deploy/good",
            "--image",
            "app=registry.example.com/team/good:2.5.0",
            "--timeout",
            "30s",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(h.stub.requests("PATCH").len(), 3);
    assert_eq!(r.stderr.matches("conflict:").count(), 2, "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_update_gives_up_after_bounded_retries() {
    let h = start(Stub::new().with(|s| s.concurrent_writes = 100)).await;
    let r = h
        .run(&[
            "update",
            "deploy/good",
            "--image",
            "app=x:1",
            "--timeout",
            "30s",
        ])
        .await;
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(
        r.stderr.contains("gave up after 5 conflicting writes"),
        "{}",
        r.stderr
    );
    assert_eq!(h.stub.requests("PATCH").len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_forbidden_is_exit_5_with_the_missing_permission() {
    let h = start(Stub::new().with(|s| s.forbid_get = true)).await;
    for args in [
        vec!["update", "deploy/good", "--image", "app=x:1"],
        vec!["history", "deploy/good"],
        vec!["undo", "deploy/good"],
    ] {
        let r = h.run(&args).await;
        assert_eq!(r.code, 5, "{}", r.stderr);
        assert!(
            r.stderr
                .contains("forbidden: you need get on deployments.apps in namespace \"api\""),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr.contains("system:serviceaccount:api:viewer"),
            "the server's message is kept: {}",
            r.stderr
        );
    }
    assert!(h.stub.requests("PATCH").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_not_found_is_exit_5() {
    let h = start(Stub::new()).await;
    for args in [
        vec!["update", "deploy/nope", "--image", "app=x:1"],
        vec!["status", "deploy/nope"],
        vec!["undo", "deployment.apps/nope"],
    ] {
        let r = h.run(&args).await;
        assert_eq!(r.code, 5, "{}", r.stderr);
        assert!(
            r.stderr
                .contains("deployments.apps \"nope\" not found in namespace \"api\""),
            "{}",
            r.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_bad_input_is_exit_2() {
    let h = start(Stub::new()).await;
    let r = h
        .run(&["update", "deploy/good", "--image", "web=x:1"])
        .await;
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("has no container \"web\" (containers: app)"),
        "{}",
        r.stderr
    );
    let r = h.run(&["update", "good", "--image", "app=x:1"]).await;
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("deploy/good"), "{}", r.stderr);
    let r = h.run(&["undo", "sts/good"]).await;
    assert_eq!(r.code, 2);
    // A 422 about the user's input: the Status message and its field causes, exit 2.
    let r = h
        .run(&[
            "update",
            "deploy/good",
            "--image",
            "app=x:1",
            "--env",
            "app:1BAD=x",
        ])
        .await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("spec.template.spec.containers[0].env[0].name"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("a valid environment variable name"),
        "{}",
        r.stderr
    );
    assert!(h.stub.deployment()["spec"]["template"]["spec"]["containers"][0]["env"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_update_refuses_unsafe_spec_unless_forced() {
    let h = start(Stub::new().with(|s| {
        let d = s.deployments.get_mut("good").unwrap();
        d["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("readinessProbe");
    }))
    .await;
    let r = h
        .run(&[
            "update",
            "deploy/good",
            "--image",
            "app=registry.example.com/team/good:2.5.0",
        ])
        .await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("RS101"), "{}", r.stderr);
    assert!(h.stub.requests("PATCH").is_empty());
    let r = h
        .run(&[
            "update",
            "deploy/good",
            "--image",
            "app=registry.example.com/team/good:2.5.0",
            "--force",
            "--timeout",
            "30s",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(h.stub.requests("PATCH").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_dry_runs() {
    let h = start(Stub::new()).await;
    let r = h
        .run(&[
            "update",
            "deploy/good",
            "--image",
            "app=registry.example.com/team/good:2.5.0",
            "--dry-run=client",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        h.stub.requests("PATCH").is_empty(),
        "client dry run sends nothing"
    );
    let ops: Vec<Value> = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(ops[0]["op"], json!("test"));
    let r = h
        .run(&[
            "update",
            "deploy/good",
            "--image",
            "app=registry.example.com/team/good:2.5.0",
            "--dry-run=server",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let p = h.stub.requests("PATCH");
    assert_eq!(p.len(), 1);
    assert!(p[0].uri.contains("dryRun=All"), "{}", p[0].uri);
    assert_eq!(
        h.stub.deployment()["spec"]["template"]["spec"]["containers"][0]["image"],
        json!(IMAGE_2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_undo_restores_previous_revision_template_without_hash() {
    let h = start(Stub::new()).await;
    let r = h.run(&["undo", "deploy/good", "--timeout", "30s"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let p = h.stub.requests("PATCH");
    assert_eq!(p.len(), 1);
    let ops = patch_ops(&p[0]);
    assert_eq!(
        ops[0],
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": "400"})
    );
    let d = h.stub.deployment();
    let t = &d["spec"]["template"];
    assert_eq!(t["spec"]["containers"][0]["image"], json!(IMAGE_1));
    assert!(
        t["metadata"]["labels"].get("pod-template-hash").is_none(),
        "{t}"
    );
    assert_eq!(t["metadata"]["labels"], json!({"app": "good"}));
    let cause = cause_of(&d);
    assert!(
        cause.starts_with("rollback to revision 1 (initial release 2.3.1)"),
        "{cause}"
    );
    // Nothing but the template and the cause changed.
    assert!(
        ops.iter().skip(1).all(|o| {
            let p = o["path"].as_str().unwrap();
            p.starts_with("/spec/template/")
                || p == "/metadata/annotations/kubernetes.io~1change-cause"
        }),
        "{ops:?}"
    );
    assert!(
        r.stderr.contains("rolled back to revision 1"),
        "{}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_undo_to_revision_and_dry_run() {
    let h = start(Stub::new()).await;
    let r = h.run(&["undo", "deploy/good", "--to-revision", "2"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("skipped rollback"), "{}", r.stdout);
    let r = h.run(&["undo", "deploy/good", "--to-revision", "7"]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("unable to find revision 7") && r.stderr.contains("revisions: 1, 2"),
        "{}",
        r.stderr
    );
    let r = h
        .run(&["undo", "deploy/good", "--to-revision", "1", "--dry-run"])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("would roll back to revision 1"),
        "{}",
        r.stderr
    );
    assert!(h.stub.requests("PATCH").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_undo_refused_when_paused() {
    let h = start(
        Stub::new()
            .with(|s| s.deployments.get_mut("good").unwrap()["spec"]["paused"] = json!(true)),
    )
    .await;
    let r = h.run(&["undo", "deploy/good"]).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("resume first"), "{}", r.stderr);
    assert!(h.stub.requests("PATCH").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_history_output() {
    let h = start(Stub::new()).await;
    let r = h.run(&["history", "deploy/good"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("initial release 2.3.1"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("app={IMAGE_2}")), "{}", r.stdout);
    assert!(r.stdout.contains("2 (current)"), "{}", r.stdout);
    let r = h.run(&["history", "deploy/good", "-o", "json"]).await;
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let revs = v.as_array().unwrap();
    assert_eq!(revs.len(), 2);
    assert_eq!(revs[0]["revision"], json!(1));
    assert_eq!(revs[0]["changeCause"], json!("initial release 2.3.1"));
    assert_eq!(
        revs[0]["images"],
        json!([{"container": "app", "image": IMAGE_1}])
    );
    assert_eq!(revs[0]["replicaSet"], json!("good-69bb684dd9"));
    assert_eq!(revs[0]["created"], json!("2026-11-22T23:10:24Z"));
    assert_eq!(revs[1]["current"], json!(true));
    let r = h
        .run(&["history", "deploy/good", "--revision", "1", "-o", "json"])
        .await;
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        v["template"]["metadata"]["labels"]
            .get("pod-template-hash")
            .is_none()
    );
    let r = h.run(&["history", "deploy/good", "-o", "yaml"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("revision: 1") && r.stdout.contains("changeCause: initial release 2.3.1"),
        "{}",
        r.stdout
    );
    let r = h.run(&["history", "deploy/good", "--revision", "9"]).await;
    assert_eq!(r.code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_pause_resume_with_precondition() {
    let h = start(Stub::new()).await;
    let r = h.run(&["pause", "deploy/good"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ops = patch_ops(&h.stub.requests("PATCH")[0]);
    assert_eq!(ops[0]["op"], json!("test"));
    assert_eq!(
        ops[1],
        json!({"op": "add", "path": "/spec/paused", "value": true})
    );
    assert_eq!(h.stub.deployment()["spec"]["paused"], json!(true));
    let r = h.run(&["pause", "deploy/good"]).await;
    assert!(r.stdout.contains("already paused"));
    let r = h.run(&["resume", "deploy/good"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(h.stub.deployment()["spec"].get("paused").is_none());
    assert_eq!(h.stub.requests("PATCH").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_status_once_and_json() {
    let h = start(Stub::new()).await;
    let r = h.run(&["status", "deploy/good", "-o", "json"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["verdict"], json!("Complete"));
    assert_eq!(v["progress"]["newReplicaSet"], json!("good-7bd446db9"));
    let r = h
        .run(&["status", "deploy/good", "--watch", "--timeout", "20s"])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("successfully rolled out"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_update_crashloop_is_detected_and_rolled_back() {
    let h = start(Stub::new()).await;
    let r = h
        .run(&[
            "update",
            "deploy/good",
            "--image",
            "app=registry.example.com/team/good:2.5.0-crash",
            "--timeout",
            "30s",
        ])
        .await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("rollout failed: CrashLoopBackOff"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("container: app"), "{}", r.stderr);
    assert!(
        r.stderr.contains("Back-off restarting failed container"),
        "events are quoted: {}",
        r.stderr
    );
    assert!(r.stderr.contains("failure → rollback:"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("rolled back to revision 2 and healthy again"),
        "{}",
        r.stderr
    );
    let p = h.stub.requests("PATCH");
    assert_eq!(p.len(), 2, "the update, then the rollback");
    let rollback = patch_ops(&p[1]);
    assert_eq!(rollback[0]["op"], json!("test"));
    let d = h.stub.deployment();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        json!(IMAGE_2)
    );
    let cause = cause_of(&d);
    assert!(
        cause.starts_with(&format!("rollback to revision 2 (image app={IMAGE_2})")),
        "{cause}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_update_crashloop_no_rollback() {
    let h = start(Stub::new()).await;
    let r = h
        .run(&[
            "update",
            "deploy/good",
            "--image",
            "app=registry.example.com/team/good:2.5.0-crash",
            "--no-rollback",
            "--timeout",
            "30s",
        ])
        .await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("--no-rollback"), "{}", r.stderr);
    assert_eq!(h.stub.requests("PATCH").len(), 1);
    let r = h.run(&["status", "deploy/good"]).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stdout.contains("CrashLoopBackOff"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_ctrl_c_stops_watching_and_says_how_to_resume() {
    let h = start(Stub::new().with(|s| s.controller_stuck = true)).await;
    let r = h
        .run_interrupted(
            &[
                "update",
                "deploy/good",
                "--image",
                "app=registry.example.com/team/good:2.5.0",
                "--timeout",
                "60s",
            ],
            Some(Duration::from_millis(500)),
        )
        .await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("interrupted: stopped watching deployment/good"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("kubectl rollout-safe status deployment/good -n api --watch"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("kubectl rollout-safe undo deployment/good -n api"),
        "{}",
        r.stderr
    );
    assert_eq!(
        h.stub.requests("PATCH").len(),
        1,
        "nothing is rolled back on Ctrl-C"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_update_timeout_rolls_back_and_exits_4() {
    let h = start(Stub::new().with(|s| s.controller_stuck = true)).await;
    let r = h
        .run(&[
            "update",
            "deploy/good",
            "--image",
            "app=registry.example.com/team/good:2.5.0",
            "--timeout",
            "2s",
        ])
        .await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("timed out after 2.0s"), "{}", r.stderr);
    let p = h.stub.requests("PATCH");
    assert_eq!(p.len(), 2, "the update, then the rollback");
    let d = h.stub.deployment();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        json!(IMAGE_2)
    );
    assert!(
        cause_of(&d).contains("automatic, after the update failed (timeout)"),
        "{}",
        cause_of(&d)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_status_statefulset() {
    let h = start(Stub::new()).await;
    let r = h.run(&["status", "sts/db", "-o", "json"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["verdict"], json!("Complete"), "{v}");
    assert_eq!(v["workload"], json!("statefulset/db"));
    let r = h
        .run(&["status", "statefulset/db", "--watch", "--timeout", "20s"])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("rolling update complete"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_audit_cluster_and_plan() {
    let h = start(Stub::new()).await;
    for scope in [&[][..], &["-A"][..]] {
        let mut args = vec!["audit", "--cluster", "-o", "json"];
        args.extend_from_slice(scope);
        let r = h.run(&args).await;
        assert_eq!(
            r.code, 3,
            "the StatefulSet has no readiness probe (enforced): {}",
            r.stderr
        );
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        let text = v.to_string();
        assert!(text.contains("cluster:api/StatefulSet/db"), "{text}");
        assert!(text.contains("RS101"), "{text}");
    }
    let r = h.run(&["plan", "deploy/good"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("3 replicas"), "{}", r.stdout);
}
