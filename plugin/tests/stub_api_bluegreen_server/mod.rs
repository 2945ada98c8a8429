//! A small stand-in for a kube-apiserver *and* its controllers, in-process on 127.0.0.1, for the
//! blue-green and canary tests (same approach as `stub_api_commands.rs`: axum, bodies from the
//! recorded exchanges in `tests/fixtures/api-responses/`, list + watch from an event log keyed by
//! resourceVersion, the real binary run against a kubeconfig pointing here).
//!
//! What it answers like the real server: GET/LIST/WATCH of Deployments, ReplicaSets, Pods,
//! Services, EndpointSlices and Events (label and `metadata.name` field selectors); POST and
//! DELETE of Deployments (409 `AlreadyExists`, 404 from recording 02); PATCH of Deployments and
//! Services as JSON Patch (a failed `test` op gets recording 05's bare 422) or merge patch (a stale
//! `metadata.resourceVersion` gets recording 04's 409).
//!
//! What it simulates after every write: the deployment controller (a ReplicaSet per template, the
//! current one scaled to `spec.replicas` and the others to 0, revisions, status and conditions),
//! the ReplicaSet controller (pods: Ready at once; an image containing `unready` runs but is never
//! Ready; one containing `crash` is in CrashLoopBackOff), garbage collection of a deleted
//! Deployment's ReplicaSets and pods, and the EndpointSlice controller (one slice per Service:
//! every non-terminating pod its selector selects, `ready` as the pod). It keeps the history of
//! each Service's selector and ready endpoints, so a test can assert what traffic could reach.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::Notify;

pub const API_RESPONSES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/api-responses"
);
pub const NS: &str = "api";
pub const COLOR: &str = "rollout-safe.dev/color";

/// The status code and JSON body of a recorded response.
pub fn recorded(file: &str) -> (u16, Value) {
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

pub fn now() -> String {
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

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub uri: String,
    pub content_type: String,
    pub body: String,
    /// The response status.
    pub status: u16,
}

/// One look at a Service: its selector and ready endpoints (pod name → colour label).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceView {
    pub selector: BTreeMap<String, String>,
    pub ready: BTreeMap<String, String>,
}

#[derive(Default)]
pub struct State {
    pub rv: u64,
    /// resource → name → object (without apiVersion/kind).
    pub objects: BTreeMap<&'static str, BTreeMap<String, Value>>,
    /// (resourceVersion, resource, type, object) for watches.
    pub log: Vec<(u64, &'static str, &'static str, Value)>,
    pub requests: Vec<Request>,
    /// Before this many selector-changing Service PATCHes, another writer touches the Service
    /// (the client's resourceVersion is then stale and the server answers 409).
    pub service_conflicts: usize,
    /// The EndpointSlice controller is stuck: slices keep what they had.
    pub freeze_endpoints: bool,
    /// Every distinct (selector, ready endpoints) a Service had, in order.
    pub history: BTreeMap<String, Vec<ServiceView>>,
    uid_counter: u64,
    pod_counter: u64,
}

pub const RESOURCES: [&str; 6] = [
    "deployments",
    "replicasets",
    "pods",
    "services",
    "endpointslices",
    "events",
];

fn kind_of(resource: &str) -> (&'static str, &'static str) {
    match resource {
        "deployments" => ("apps/v1", "Deployment"),
        "replicasets" => ("apps/v1", "ReplicaSet"),
        "pods" => ("v1", "Pod"),
        "services" => ("v1", "Service"),
        "endpointslices" => ("discovery.k8s.io/v1", "EndpointSlice"),
        "horizontalpodautoscalers" => ("autoscaling/v2", "HorizontalPodAutoscaler"),
        "poddisruptionbudgets" => ("policy/v1", "PodDisruptionBudget"),
        _ => ("v1", "Event"),
    }
}

fn static_resource(r: &str) -> Option<&'static str> {
    RESOURCES.iter().copied().find(|x| *x == r)
}

fn with_kind(mut v: Value, resource: &str) -> Value {
    let (a, k) = kind_of(resource);
    v["apiVersion"] = json!(a);
    v["kind"] = json!(k);
    v
}

impl State {
    fn uid(&mut self) -> String {
        self.uid_counter += 1;
        format!("00000000-0000-4000-8000-{:012}", self.uid_counter)
    }

    pub fn get(&self, resource: &str, name: &str) -> Option<&Value> {
        self.objects.get(resource)?.get(name)
    }

    pub fn all(&self, resource: &str) -> Vec<Value> {
        self.objects
            .get(resource)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Stores `obj` (a new resourceVersion) and logs the watch event; unchanged objects are left alone.
    pub fn put(&mut self, resource: &'static str, mut obj: Value) {
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let old = self.get(resource, &name).cloned();
        if let Some(old) = &old {
            let mut a = old.clone();
            a["metadata"]["resourceVersion"] = Value::Null;
            let mut b = obj.clone();
            b["metadata"]["resourceVersion"] = Value::Null;
            if a == b {
                return;
            }
        }
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        if obj["metadata"]["uid"].is_null() {
            obj["metadata"]["uid"] = json!(self.uid());
        }
        if obj["metadata"]["creationTimestamp"].is_null() {
            obj["metadata"]["creationTimestamp"] = json!(now());
        }
        obj["metadata"]["namespace"] = json!(NS);
        let t = if old.is_some() { "MODIFIED" } else { "ADDED" };
        self.log
            .push((self.rv, resource, t, with_kind(obj.clone(), resource)));
        self.objects.entry(resource).or_default().insert(name, obj);
    }

    pub fn delete(&mut self, resource: &'static str, name: &str) -> Option<Value> {
        let obj = self.objects.get_mut(resource)?.remove(name)?;
        self.rv += 1;
        let mut o = obj.clone();
        o["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.log
            .push((self.rv, resource, "DELETED", with_kind(o, resource)));
        Some(obj)
    }

    /// The controllers, run to a fixed point.
    pub fn reconcile(&mut self) {
        for name in self
            .objects
            .get("deployments")
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            self.reconcile_deployment(&name);
        }
        for name in self
            .objects
            .get("services")
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            self.reconcile_service(&name);
        }
    }

    fn owned<'a>(
        &'a self,
        resource: &str,
        owner_uid: &'a str,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects
            .get(resource)
            .into_iter()
            .flat_map(|m| m.values())
            .filter(move |o| {
                o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| {
                        refs.iter()
                            .any(|r| r["uid"] == owner_uid && r["controller"] == true)
                    })
            })
    }

    fn reconcile_deployment(&mut self, name: &str) {
        let d = self.get("deployments", name).cloned().unwrap();
        let uid = d["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
        let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let template = without_hash(&d["spec"]["template"]);
        let rss: Vec<Value> = self.owned("replicasets", &uid).cloned().collect();
        let max_rev = rss.iter().map(revision).max().unwrap_or(0);
        let current = rss
            .iter()
            .find(|rs| without_hash(&rs["spec"]["template"]) == template)
            .cloned();
        let mut current = match current {
            Some(rs) => rs,
            None => {
                let hash = hash_template(&template);
                let mut t = template.clone();
                t["metadata"]["labels"]["pod-template-hash"] = json!(hash);
                let mut sel = d["spec"]["selector"].clone();
                sel["matchLabels"]["pod-template-hash"] = json!(hash);
                json!({
                    "metadata": {"name": format!("{name}-{hash}"),
                        "labels": t["metadata"]["labels"].clone(),
                        "annotations": {"deployment.kubernetes.io/revision": (max_rev + 1).to_string(),
                            "kubernetes.io/change-cause": d["metadata"]["annotations"]["kubernetes.io/change-cause"].clone()},
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                            "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
                    "spec": {"replicas": 0, "selector": sel, "template": t},
                    "status": {"replicas": 0}
                })
            }
        };
        // A template that comes back gets the next revision, as kubectl's undo shows.
        if revision(&current) < max_rev && rss.len() > 1 {
            current["metadata"]["annotations"]["deployment.kubernetes.io/revision"] =
                json!((max_rev + 1).to_string());
        }
        current["spec"]["replicas"] = json!(replicas);
        let current_name = current["metadata"]["name"].as_str().unwrap().to_owned();
        self.put("replicasets", current);
        for mut rs in rss
            .into_iter()
            .filter(|rs| rs["metadata"]["name"] != current_name.as_str())
        {
            rs["spec"]["replicas"] = json!(0);
            self.put("replicasets", rs);
        }
        let mut ready_total = 0;
        let mut total = 0;
        let mut updated = 0;
        let mut updated_ready = 0;
        for rs_name in self
            .owned("replicasets", &uid)
            .map(|r| r["metadata"]["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
        {
            let (n, ready) = self.reconcile_replicaset(&rs_name);
            total += n;
            ready_total += ready;
            if rs_name == current_name {
                updated = n;
                updated_ready = ready;
            }
        }
        let current = self.get("replicasets", &current_name).cloned().unwrap();
        let mut d = self.get("deployments", name).cloned().unwrap();
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] =
            current["metadata"]["annotations"]["deployment.kubernetes.io/revision"].clone();
        let done = updated == replicas && updated_ready == replicas && total == replicas;
        let t = now();
        let progressing = if done {
            json!({"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                "message": format!("ReplicaSet {current_name:?} has successfully progressed."), "lastUpdateTime": t, "lastTransitionTime": t})
        } else {
            json!({"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                "message": format!("ReplicaSet {current_name:?} is progressing."), "lastUpdateTime": t, "lastTransitionTime": t})
        };
        let available = if ready_total >= replicas {
            json!({"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability.", "lastUpdateTime": t, "lastTransitionTime": t})
        } else {
            json!({"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability.", "lastUpdateTime": t, "lastTransitionTime": t})
        };
        // Keep condition times stable while the reason does not change (as the controller does).
        let old_conditions = d["status"]["conditions"].clone();
        let keep = |mut c: Value| {
            if let Some(old) = old_conditions
                .as_array()
                .and_then(|a| a.iter().find(|o| o["type"] == c["type"]))
                && old["reason"] == c["reason"]
            {
                c["lastUpdateTime"] = old["lastUpdateTime"].clone();
                c["lastTransitionTime"] = old["lastTransitionTime"].clone();
            }
            c
        };
        let mut status = json!({
            "observedGeneration": d["metadata"]["generation"].clone(),
            "replicas": total, "updatedReplicas": updated, "readyReplicas": ready_total,
            "availableReplicas": ready_total,
            "conditions": [keep(available), keep(progressing)]
        });
        if total - ready_total > 0 {
            status["unavailableReplicas"] = json!(total - ready_total);
        }
        d["status"] = status;
        self.put("deployments", d);
    }

    /// Makes the ReplicaSet's pods match its replicas; returns (pods, ready pods).
    fn reconcile_replicaset(&mut self, name: &str) -> (i64, i64) {
        let rs = self.get("replicasets", name).cloned().unwrap();
        let uid = rs["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let want = rs["spec"]["replicas"].as_i64().unwrap_or(0);
        let mut pods: Vec<String> = self
            .owned("pods", &uid)
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        pods.sort();
        while (pods.len() as i64) > want {
            let p = pods.pop().unwrap();
            self.delete("pods", &p);
        }
        while (pods.len() as i64) < want {
            self.pod_counter += 1;
            let pname = format!("{name}-{:05x}", self.pod_counter * 7919 % 0xfffff);
            let pod = self.new_pod(&rs, &pname);
            self.put("pods", pod);
            pods.push(pname);
        }
        let ready = pods
            .iter()
            .filter(|p| self.get("pods", p).is_some_and(pod_ready))
            .count() as i64;
        let mut rs = rs;
        rs["status"] = json!({"replicas": pods.len(), "readyReplicas": ready, "availableReplicas": ready,
            "observedGeneration": rs["metadata"]["generation"].clone()});
        self.put("replicasets", rs);
        (pods.len() as i64, ready)
    }

    fn new_pod(&mut self, rs: &Value, name: &str) -> Value {
        let t = now();
        let template = &rs["spec"]["template"];
        let image = template["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let cname = template["spec"]["containers"][0]["name"]
            .as_str()
            .unwrap_or("app")
            .to_owned();
        let ip = format!(
            "10.244.{}.{}",
            (self.pod_counter / 250) % 250,
            self.pod_counter % 250 + 2
        );
        let (ready, state, restarts) = if image.contains("crash") {
            (
                false,
                json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}}),
                5,
            )
        } else if image.contains("unready") {
            (false, json!({"running": {"startedAt": t}}), 0)
        } else {
            (true, json!({"running": {"startedAt": t}}), 0)
        };
        let status = if ready { "True" } else { "False" };
        let mut spec = template["spec"].clone();
        spec["nodeName"] = json!("stub-node-1");
        json!({
            "metadata": {"name": name, "generateName": format!("{}-", rs["metadata"]["name"].as_str().unwrap()),
                "labels": template["metadata"]["labels"].clone(),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs["metadata"]["name"].clone(),
                    "uid": rs["metadata"]["uid"].clone(), "controller": true, "blockOwnerDeletion": true}]},
            "spec": spec,
            "status": {"phase": "Running", "hostIP": "172.18.0.2", "podIP": ip, "podIPs": [{"ip": ip}], "startTime": t,
                "conditions": [
                    {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": t},
                    {"type": "Ready", "status": status, "lastProbeTime": null, "lastTransitionTime": t},
                    {"type": "ContainersReady", "status": status, "lastProbeTime": null, "lastTransitionTime": t},
                    {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": t}],
                "containerStatuses": [{"name": cname, "image": image, "imageID": "", "ready": ready, "started": ready,
                    "restartCount": restarts, "state": state}]}
        })
    }

    fn reconcile_service(&mut self, name: &str) {
        if self.freeze_endpoints {
            return;
        }
        let svc = self.get("services", name).cloned().unwrap();
        let selector: BTreeMap<String, String> = svc["spec"]["selector"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let mut endpoints = Vec::new();
        let mut ready = BTreeMap::new();
        if !selector.is_empty() {
            for p in self.all("pods") {
                if !labels_match(&selector, &p["metadata"]["labels"]) {
                    continue;
                }
                let r = pod_ready(&p);
                let pname = p["metadata"]["name"].as_str().unwrap().to_owned();
                if r {
                    ready.insert(
                        pname.clone(),
                        p["metadata"]["labels"][COLOR]
                            .as_str()
                            .unwrap_or("-")
                            .to_owned(),
                    );
                }
                endpoints.push(json!({"addresses": [p["status"]["podIP"].clone()],
                    "conditions": {"ready": r, "serving": r, "terminating": false},
                    "targetRef": {"kind": "Pod", "namespace": NS, "name": pname, "uid": p["metadata"]["uid"].clone()},
                    "nodeName": "stub-node-1"}));
            }
        }
        endpoints.sort_by_key(|e| {
            e["targetRef"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        });
        let slice_name = format!("{name}-x7k2p");
        let mut slice = self.get("endpointslices", &slice_name).cloned().unwrap_or_else(|| {
            json!({"metadata": {"name": slice_name, "generateName": format!("{name}-"),
                "labels": {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io", "kubernetes.io/service-name": name},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name, "uid": svc["metadata"]["uid"].clone(), "controller": true, "blockOwnerDeletion": true}]},
                "addressType": "IPv4"})
        });
        slice["endpoints"] = json!(endpoints);
        slice["ports"] = json!([{"name": "", "protocol": "TCP", "port": 8080}]);
        self.put("endpointslices", slice);
        let view = ServiceView { selector, ready };
        let h = self.history.entry(name.to_owned()).or_default();
        if h.last() != Some(&view) {
            h.push(view);
        }
    }
}

pub fn pod_ready(p: &Value) -> bool {
    p["metadata"]["deletionTimestamp"].is_null()
        && p["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn labels_match(sel: &BTreeMap<String, String>, labels: &Value) -> bool {
    sel.iter().all(|(k, v)| labels[k].as_str() == Some(v))
}

/// A label selector query (`a=b,c!=d,e`) against an object's labels.
fn selector_matches(q: &str, labels: &Value) -> bool {
    q.split(',').filter(|t| !t.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            labels[k.trim()].as_str() != Some(v.trim())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            labels[k.trim()].as_str() == Some(v.trim())
        } else if let Some(k) = term.strip_prefix('!') {
            labels[k.trim()].is_null()
        } else {
            !labels[term.trim()].is_null()
        }
    })
}

fn hash_template(t: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    t.to_string().hash(&mut h);
    let alphabet = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = h.finish();
    (0..10)
        .map(|_| {
            let c = alphabet[(n % alphabet.len() as u64) as usize] as char;
            n /= alphabet.len() as u64;
            c
        })
        .collect()
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

#[derive(Clone)]
pub struct Stub {
    pub state: Arc<Mutex<State>>,
    changed: Arc<Notify>,
}

impl Stub {
    /// Deployment `shop` (from recording 01, renamed; `replicas` pods of `image`, selector
    /// `app: shop`) behind Service `shop` (selector `app: shop`), settled.
    pub fn shop(replicas: i64, image: &str) -> Stub {
        let mut st = State {
            rv: 400,
            ..State::default()
        };
        let (_, mut d) = recorded("01-get-deployment.txt");
        strip_managed(&mut d);
        let meta = d["metadata"].as_object_mut().unwrap();
        meta.insert("name".into(), json!("shop"));
        meta.remove("resourceVersion");
        meta.remove("uid");
        let ann = meta["annotations"].as_object_mut().unwrap();
        ann.remove("kubectl.kubernetes.io/last-applied-configuration");
        ann.remove("deployment.kubernetes.io/revision");
        ann.insert(
            "kubernetes.io/change-cause".into(),
            json!(format!("initial release {image}")),
        );
        d["spec"]["replicas"] = json!(replicas);
        d["spec"]["minReadySeconds"] = json!(0);
        d["spec"]["selector"] = json!({"matchLabels": {"app": "shop"}});
        d["spec"]["template"]["metadata"]["labels"] = json!({"app": "shop"});
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
        d["status"] = json!({});
        st.put("deployments", d);
        st.put(
            "services",
            json!({"metadata": {"name": "shop", "labels": {"app": "shop"}},
                "spec": {"selector": {"app": "shop"}, "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
                    "type": "ClusterIP", "clusterIP": "10.96.12.34", "clusterIPs": ["10.96.12.34"], "sessionAffinity": "None"},
                "status": {"loadBalancer": {}}}),
        );
        st.reconcile();
        Stub {
            state: Arc::new(Mutex::new(st)),
            changed: Arc::new(Notify::new()),
        }
    }

    pub fn with(&self, f: impl FnOnce(&mut State)) {
        let mut st = self.state.lock().unwrap();
        f(&mut st);
        st.reconcile();
        drop(st);
        self.changed.notify_waiters();
    }

    pub fn get(&self, resource: &str, name: &str) -> Option<Value> {
        self.state.lock().unwrap().get(resource, name).cloned()
    }

    pub fn history(&self, service: &str) -> Vec<ServiceView> {
        self.state
            .lock()
            .unwrap()
            .history
            .get(service)
            .cloned()
            .unwrap_or_default()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Pods of a Deployment (through its ReplicaSets).
    pub fn pods_of(&self, deployment: &str) -> Vec<Value> {
        let st = self.state.lock().unwrap();
        let Some(d) = st.get("deployments", deployment) else {
            return Vec::new();
        };
        let uid = d["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
        let rs_uids: Vec<String> = st
            .owned("replicasets", &uid)
            .map(|r| r["metadata"]["uid"].as_str().unwrap().to_owned())
            .collect();
        st.all("pods")
            .into_iter()
            .filter(|p| {
                p["metadata"]["ownerReferences"][0]["uid"]
                    .as_str()
                    .is_some_and(|u| rs_uids.iter().any(|r| r == u))
            })
            .collect()
    }

    /// Serves on 127.0.0.1 and writes a kubeconfig for it.
    pub async fn serve(&self) -> Served {
        let stub = self.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let stub = stub.clone();
                async move { handle(stub, method, uri, headers, body).await }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("config");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: stub\nclusters:\n- name: stub\n  cluster: {{server: \"http://{addr}\"}}\n\
                 contexts:\n- name: stub\n  context: {{cluster: stub, user: alice, namespace: {NS}}}\nusers:\n- name: alice\n  user: {{token: t}}\n"
            ),
        )
        .unwrap();
        Served {
            addr,
            kubeconfig,
            _dir: dir,
            server,
        }
    }

    /// Waits (up to `limit`) until `f` holds for the state.
    pub async fn wait_for(&self, limit: Duration, what: &str, f: impl Fn(&State) -> bool) {
        let start = Instant::now();
        loop {
            if f(&self.state.lock().unwrap()) {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub struct Served {
    pub addr: SocketAddr,
    pub kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// What a run of the binary printed and returned.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

fn command(kubeconfig: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kubectl-rollout_safe"));
    c.args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env_remove("KUBECONFIG")
        .env("ROLLOUT_SAFE_LOG", "warn")
        .env("TERM", "dumb")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

impl Served {
    /// Runs the plugin to its end (in a blocking thread, so the stub keeps serving).
    pub async fn run(&self, args: &[&str]) -> Run {
        finish(self.spawn(args)).await
    }

    /// Starts the plugin; its output is collected as it comes, so a test can wait for a line.
    pub fn spawn(&self, args: &[&str]) -> Running {
        let mut child = command(&self.kubeconfig, args)
            .spawn()
            .expect("run kubectl-rollout_safe");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = BufReader::new(child.stderr.take().expect("stderr is piped"));
        let sink = stderr.clone();
        let stderr_reader = std::thread::spawn(move || {
            let mut line = Vec::new();
            while pipe.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&line));
                line.clear();
            }
        });
        let mut out = child.stdout.take().expect("stdout is piped");
        let stdout_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        });
        Running {
            child,
            stderr,
            stderr_reader,
            stdout_reader,
        }
    }
}

/// A run of the plugin under way.
pub struct Running {
    child: Child,
    stderr: Arc<Mutex<String>>,
    stderr_reader: std::thread::JoinHandle<()>,
    stdout_reader: std::thread::JoinHandle<String>,
}

impl Running {
    /// Waits (up to `limit`) until the plugin has printed `needle` on stderr: the marker of the
    /// phase a test wants to act in (no guessing with sleeps).
    pub async fn wait_stderr(&self, needle: &str, limit: Duration) {
        let start = Instant::now();
        loop {
            let so_far = self.stderr.lock().unwrap().clone();
            if so_far.contains(needle) {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for {needle:?} on the plugin's stderr:\n{so_far}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Waits for a spawned run.
pub async fn finish(run: Running) -> Run {
    let Running {
        mut child,
        stderr,
        stderr_reader,
        stdout_reader,
    } = run;
    let (status, stdout) = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let stdout = stdout_reader.join().unwrap();
        stderr_reader.join().unwrap();
        (status, stdout)
    })
    .await
    .unwrap();
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr: stderr.lock().unwrap().clone(),
    };
    eprintln!(
        "--- exit {}\n--- stdout\n{}--- stderr\n{}",
        run.code, run.stdout, run.stderr
    );
    run
}

/// Ctrl-C, as a terminal sends it.
pub fn interrupt(run: &Running) {
    let status = Command::new("kill")
        .arg("-INT")
        .arg(run.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

fn status(code: u16, body: Value) -> Response {
    let mut r = (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response();
    r.headers_mut()
        .insert("cache-control", "no-cache, private".parse().unwrap());
    r
}

fn not_found(resource: &str, name: &str) -> Response {
    let (code, mut body) = recorded("02-get-deployment-not-found.txt");
    let group = match resource {
        "deployments" | "replicasets" => ".apps",
        "endpointslices" => ".discovery.k8s.io",
        _ => "",
    };
    body["message"] = json!(format!("{resource}{group} {name:?} not found"));
    body["details"]["name"] = json!(name);
    body["details"]["group"] = json!(group.trim_start_matches('.'));
    body["details"]["kind"] = json!(resource);
    status(code, body)
}

fn conflict(resource: &str, name: &str) -> Response {
    let (code, mut body) = recorded("04-patch-stale-resourceversion-conflict.txt");
    let group = if resource == "deployments" {
        ".apps"
    } else {
        ""
    };
    body["message"] = json!(format!(
        "Operation cannot be fulfilled on {resource}{group} {name:?}: the object has been modified; please apply your changes to the latest version and try again"
    ));
    body["details"]["name"] = json!(name);
    body["details"]["kind"] = json!(resource);
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
    let q = query(&uri);
    let path = uri.path().trim_matches('/').to_owned();
    let segs: Vec<&str> = path.split('/').collect();
    let (resource, name) = match segs.as_slice() {
        ["api", "v1", "namespaces", NS, r] => (*r, None),
        ["api", "v1", "namespaces", NS, r, n] => (*r, Some(*n)),
        ["apis", _, _, "namespaces", NS, r] => (*r, None),
        ["apis", _, _, "namespaces", NS, r, n] => (*r, Some(*n)),
        _ => ("", None),
    };
    let is_watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    let resp = match (method.clone(), resource, name) {
        (_, "", _) => not_found("unknown", uri.path()),
        (Method::GET, r, None) if is_watch => watch(&stub, r, &q),
        (Method::GET, r, None) => list(&stub, r, &q),
        (Method::GET, r, Some(n)) => match stub.state.lock().unwrap().get(r, n) {
            Some(o) => status(200, with_kind(o.clone(), r)),
            None => not_found(r, n),
        },
        (Method::POST, "deployments", None) => create(&stub, &body),
        (Method::DELETE, "deployments", Some(n)) => delete(&stub, n),
        (Method::PATCH, r @ ("deployments" | "services"), Some(n)) => {
            patch(&stub, r, n, &content_type, &body)
        }
        _ => status(
            405,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "method not allowed", "reason": "MethodNotAllowed", "code": 405}),
        ),
    };
    if !is_watch {
        stub.state.lock().unwrap().requests.push(Request {
            method: method.to_string(),
            uri: uri.to_string(),
            content_type,
            body: String::from_utf8_lossy(&body).into_owned(),
            status: resp.status().as_u16(),
        });
    } else {
        stub.state.lock().unwrap().requests.push(Request {
            method: "WATCH".into(),
            uri: uri.to_string(),
            content_type,
            body: String::new(),
            status: 200,
        });
    }
    resp
}

fn name_filter(q: &BTreeMap<String, String>) -> Option<String> {
    q.get("fieldSelector")
        .and_then(|f| f.strip_prefix("metadata.name="))
        .map(str::to_owned)
}

fn matches_query(o: &Value, q: &BTreeMap<String, String>) -> bool {
    name_filter(q).is_none_or(|n| o["metadata"]["name"].as_str() == Some(&n))
        && q.get("labelSelector")
            .is_none_or(|s| selector_matches(s, &o["metadata"]["labels"]))
}

fn list(stub: &Stub, resource: &str, q: &BTreeMap<String, String>) -> Response {
    let st = stub.state.lock().unwrap();
    let items: Vec<Value> = st
        .all(resource)
        .into_iter()
        .filter(|o| matches_query(o, q))
        .collect();
    let (api_version, kind) = kind_of(resource);
    status(
        200,
        json!({"kind": format!("{kind}List"), "apiVersion": api_version, "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}),
    )
}

fn watch(stub: &Stub, resource: &str, q: &BTreeMap<String, String>) -> Response {
    let Some(resource) = static_resource(resource) else {
        return status(200, json!({}));
    };
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let q = q.clone();
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
        let q = q.clone();
        async move {
            loop {
                if Instant::now() > deadline {
                    return None;
                }
                let notified = stub.changed.notified();
                let (lines, top): (Vec<String>, u64) = {
                    let st = stub.state.lock().unwrap();
                    let lines = st
                        .log
                        .iter()
                        .filter(|(rv, r, _, o)| {
                            *rv > last && *r == resource && matches_query(o, &q)
                        })
                        .map(|(_, _, t, o)| format!("{}\n", json!({"type": t, "object": o})))
                        .collect();
                    (lines, st.rv)
                };
                last = top;
                if !lines.is_empty() {
                    return Some((
                        Ok::<Bytes, std::convert::Infallible>(Bytes::from(lines.concat())),
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

fn create(stub: &Stub, body: &[u8]) -> Response {
    let Ok(mut d) = serde_json::from_slice::<Value>(body) else {
        return status(
            400,
            json!({"kind": "Status", "status": "Failure", "message": "bad body", "reason": "BadRequest", "code": 400}),
        );
    };
    let name = d["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut st = stub.state.lock().unwrap();
    if st.get("deployments", &name).is_some() {
        return status(
            409,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("deployments.apps {name:?} already exists"), "reason": "AlreadyExists",
            "details": {"name": name, "group": "apps", "kind": "deployments"}, "code": 409}),
        );
    }
    if let Some(m) = d.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
        m.remove("status");
    }
    d["metadata"]["generation"] = json!(1);
    st.put("deployments", d);
    st.reconcile();
    let out = st.get("deployments", &name).cloned().unwrap();
    drop(st);
    stub.changed.notify_waiters();
    status(201, with_kind(out, "deployments"))
}

fn delete(stub: &Stub, name: &str) -> Response {
    let mut st = stub.state.lock().unwrap();
    let Some(d) = st.delete("deployments", name) else {
        return not_found("deployments", name);
    };
    // Garbage collection (background propagation).
    let uid = d["metadata"]["uid"].as_str().unwrap_or_default().to_owned();
    let rss: Vec<Value> = st.owned("replicasets", &uid).cloned().collect();
    for rs in rss {
        let rs_uid = rs["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let pods: Vec<String> = st
            .owned("pods", &rs_uid)
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
            .collect();
        for p in pods {
            st.delete("pods", &p);
        }
        st.delete("replicasets", rs["metadata"]["name"].as_str().unwrap());
    }
    st.reconcile();
    drop(st);
    stub.changed.notify_waiters();
    status(200, with_kind(d, "deployments"))
}

fn patch(stub: &Stub, resource: &str, name: &str, content_type: &str, body: &[u8]) -> Response {
    let Some(resource) = static_resource(resource) else {
        return not_found(resource, name);
    };
    let mut st = stub.state.lock().unwrap();
    let Some(current) = st.get(resource, name).cloned() else {
        return not_found(resource, name);
    };
    let mut current = current;
    if resource == "services"
        && st.service_conflicts > 0
        && String::from_utf8_lossy(body).contains("\"selector\"")
    {
        // Someone else writes the Service first: the client's resourceVersion is now stale.
        st.service_conflicts -= 1;
        let mut s = current.clone();
        s["metadata"]["annotations"]["example.com/other-writer"] =
            json!(format!("touched at rv {}", st.rv));
        st.put("services", s);
        current = st.get(resource, name).cloned().unwrap();
    }
    let current_rv = current["metadata"]["resourceVersion"].clone();
    let mut new = with_kind(current.clone(), resource);
    if content_type.starts_with("application/json-patch+json") {
        let Ok(ops) = serde_json::from_slice::<json_patch::Patch>(body) else {
            return status(
                400,
                json!({"kind": "Status", "status": "Failure", "message": "bad JSON Patch", "reason": "BadRequest", "code": 400}),
            );
        };
        if json_patch::patch(&mut new, &ops.0).is_err() {
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
        return conflict(resource, name);
    }
    if let Some(m) = new.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    if resource == "deployments" {
        if new["spec"]["selector"] != current["spec"]["selector"] {
            let (code, b) = recorded("06-patch-selector-immutable-invalid.txt");
            return status(code, b);
        }
        if new["spec"] != current["spec"] {
            let g = new["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            new["metadata"]["generation"] = json!(g);
        }
    }
    st.put(resource, new);
    st.reconcile();
    let out = st.get(resource, name).cloned().unwrap();
    drop(st);
    stub.changed.notify_waiters();
    status(200, with_kind(out, resource))
}

// ---------------------------------------------------------------------------------------------
// Assertions shared by the tests
// ---------------------------------------------------------------------------------------------

/// A Service's selector as a map.
pub fn selector_of(svc: &Value) -> BTreeMap<String, String> {
    svc["spec"]["selector"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

pub fn annotation(o: &Value, key: &str) -> Option<String> {
    o["metadata"]["annotations"][key]
        .as_str()
        .map(str::to_owned)
}

pub fn replicas(d: &Value) -> i64 {
    d["spec"]["replicas"].as_i64().unwrap_or(1)
}

pub fn image(d: &Value) -> String {
    d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The Service never went without a ready endpoint (after it first had one).
pub fn assert_never_without_endpoints(history: &[ServiceView]) {
    let first = history
        .iter()
        .position(|v| !v.ready.is_empty())
        .expect("the Service had ready endpoints");
    for (i, v) in history.iter().enumerate().skip(first) {
        assert!(
            !v.ready.is_empty(),
            "the Service had no ready endpoint at step {i}: {history:#?}"
        );
    }
}
