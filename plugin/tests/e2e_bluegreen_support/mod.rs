//! Shared by `e2e_bluegreen.rs` and `e2e_canary.rs`: a namespace per test on the cluster named by
//! `ROLLOUT_SAFE_E2E_KUBECONFIG` (skipped, saying so, when unset), Deployment `shop` behind
//! Service `shop`, the plugin binary, and a watcher of the Service's EndpointSlices that records
//! every change of its ready endpoints (the safety figure: never zero during a switch).
//!
//! Images (the same variables as `e2e_rollouts.rs`): good `ROLLOUT_SAFE_E2E_IMAGE_GOOD_1`
//! (`nginx:1.27-alpine`) and `_GOOD_2` (`nginx:1.28-alpine`); crashing `_CRASH` (`busybox:1.36`);
//! never ready `_UNREADY` (`registry.k8s.io/pause:3.10`: runs, never answers the probe).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::json;

pub const ENV: &str = "ROLLOUT_SAFE_E2E_KUBECONFIG";
pub const COLOR: &str = "rollout-safe.dev/color";

/// The kubeconfig, or `None` after printing that the test is skipped.
pub fn kubeconfig() -> Option<PathBuf> {
    match std::env::var_os(ENV) {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            println!("skipped: {ENV} unset");
            None
        }
    }
}

fn image(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

pub fn good_1() -> String {
    image("ROLLOUT_SAFE_E2E_IMAGE_GOOD_1", "nginx:1.27-alpine")
}
pub fn good_2() -> String {
    image("ROLLOUT_SAFE_E2E_IMAGE_GOOD_2", "nginx:1.28-alpine")
}
pub fn crash() -> String {
    image("ROLLOUT_SAFE_E2E_IMAGE_CRASH", "busybox:1.36")
}
pub fn unready() -> String {
    image(
        "ROLLOUT_SAFE_E2E_IMAGE_UNREADY",
        "registry.k8s.io/pause:3.10",
    )
}

pub struct Env {
    pub kubeconfig: PathBuf,
    pub client: Client,
    pub ns: String,
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// One change of the Service's ready endpoints: when, and which pods.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Duration,
    pub ready: BTreeSet<String>,
}

/// Records the Service's ready endpoints (pod names) on every EndpointSlice change.
pub struct EndpointWatch {
    pub samples: Arc<Mutex<Vec<Sample>>>,
    task: tokio::task::JoinHandle<()>,
}

impl EndpointWatch {
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }

    /// The safety figure: once the Service had a ready endpoint, it never had none.
    pub fn assert_never_empty(&self) {
        let s = self.samples();
        let first = s
            .iter()
            .position(|x| !x.ready.is_empty())
            .expect("the Service had ready endpoints");
        let empty: Vec<&Sample> = s[first..].iter().filter(|x| x.ready.is_empty()).collect();
        assert!(
            empty.is_empty(),
            "the Service had zero ready endpoints at {empty:?} (all samples: {s:#?})"
        );
        println!(
            "safety figure: {} endpoint changes observed, minimum ready endpoints {}",
            s.len() - first,
            s[first..].iter().map(|x| x.ready.len()).min().unwrap_or(0)
        );
    }

    /// No pod whose name starts with `prefix` was ever a ready endpoint.
    pub fn assert_never_ready(&self, prefix: &str) {
        for x in self.samples() {
            assert!(
                !x.ready.iter().any(|p| p.starts_with(prefix)),
                "a {prefix}… pod received traffic: {x:?}"
            );
        }
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

/// Blue pods are `shop-<hash>-<id>`, green ones `shop-green-<hash>-<id>`.
pub fn is_green(pod: &str) -> bool {
    pod.starts_with("shop-green-")
}

impl Env {
    pub async fn new(test: &str) -> Env {
        let kubeconfig = kubeconfig().expect("checked by the caller");
        let kc = Kubeconfig::read_from(&kubeconfig).expect("the e2e kubeconfig reads");
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .unwrap();
        let client = Client::try_from(config).unwrap();
        let suffix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 1_000_000;
        let ns = format!("rollout-safe-e2e-{test}-{suffix}");
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let n: Namespace = serde_json::from_value(
            json!({"metadata": {"name": ns, "labels": {"rollout-safe.dev/e2e": "true"}}}),
        )
        .unwrap();
        namespaces
            .create(&PostParams::default(), &n)
            .await
            .expect("create the test namespace");
        Env {
            kubeconfig,
            client,
            ns,
        }
    }

    pub fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    pub async fn deployment(&self, name: &str) -> Option<Deployment> {
        self.deployments().get_opt(name).await.unwrap()
    }

    pub async fn service(&self) -> Service {
        self.services().get("shop").await.unwrap()
    }

    /// Deployment `shop` (selector `app: shop`, probes, preStop, maxUnavailable 0) behind Service
    /// `shop` (selector `app: shop`), available.
    pub async fn create_shop(&self, replicas: i32) {
        let d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "shop", "annotations": {"kubernetes.io/change-cause": "initial release"}},
            "spec": {
                "replicas": replicas, "revisionHistoryLimit": 5, "progressDeadlineSeconds": 180, "minReadySeconds": 1,
                "selector": {"matchLabels": {"app": "shop"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": {"metadata": {"labels": {"app": "shop"}}, "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "containers": [{"name": "app", "image": good_1(),
                        "ports": [{"name": "http", "containerPort": 80}],
                        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 2},
                        "livenessProbe": {"httpGet": {"path": "/", "port": "http"}, "initialDelaySeconds": 30, "periodSeconds": 10, "failureThreshold": 3},
                        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}}}]}}
            }
        }))
        .unwrap();
        self.deployments()
            .create(&PostParams::default(), &d)
            .await
            .expect("create deploy/shop");
        let s: Service = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "shop"},
            "spec": {"selector": {"app": "shop"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}
        }))
        .unwrap();
        self.services()
            .create(&PostParams::default(), &s)
            .await
            .expect("create svc/shop");
        let r = self
            .run(&["status", "deploy/shop", "--watch", "--timeout", "4m"])
            .await;
        assert_eq!(
            r.code, 0,
            "deploy/shop never became available: {}",
            r.stderr
        );
        self.wait_for(
            "ready endpoints for svc/shop",
            Duration::from_secs(120),
            || async { self.ready_endpoints().await.len() == replicas as usize },
        )
        .await;
    }

    /// The Service's ready endpoints now (pod names).
    pub async fn ready_endpoints(&self) -> BTreeSet<String> {
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &self.ns);
        let list = api
            .list(&kube::api::ListParams::default().labels("kubernetes.io/service-name=shop"))
            .await
            .unwrap();
        ready_of(list.items.iter())
    }

    /// Starts recording the Service's ready endpoints.
    pub fn watch_endpoints(&self) -> EndpointWatch {
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &self.ns);
        let samples = Arc::new(Mutex::new(Vec::new()));
        let out = samples.clone();
        let start = Instant::now();
        let task = tokio::spawn(async move {
            let mut slices: BTreeMap<String, EndpointSlice> = BTreeMap::new();
            let mut stream = watcher(
                api,
                watcher::Config::default().labels("kubernetes.io/service-name=shop"),
            )
            .default_backoff()
            .boxed();
            let mut init: Option<BTreeMap<String, EndpointSlice>> = None;
            while let Some(ev) = stream.next().await {
                let Ok(ev) = ev else { continue };
                match ev {
                    watcher::Event::Init => init = Some(BTreeMap::new()),
                    watcher::Event::InitApply(s) => {
                        if let Some(i) = init.as_mut() {
                            i.insert(s.metadata.name.clone().unwrap_or_default(), s);
                        }
                    }
                    watcher::Event::InitDone => slices = init.take().unwrap_or_default(),
                    watcher::Event::Apply(s) => {
                        slices.insert(s.metadata.name.clone().unwrap_or_default(), s);
                    }
                    watcher::Event::Delete(s) => {
                        slices.remove(&s.metadata.name.clone().unwrap_or_default());
                    }
                }
                if init.is_some() {
                    continue;
                }
                let ready = ready_of(slices.values());
                let mut v = out.lock().unwrap();
                if v.last().map(|x: &Sample| &x.ready) != Some(&ready) {
                    v.push(Sample {
                        at: start.elapsed(),
                        ready,
                    });
                }
            }
        });
        EndpointWatch { samples, task }
    }

    pub async fn wait_for<F, Fut>(&self, what: &str, limit: Duration, f: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        while !f().await {
            assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-rollout_safe"));
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("-n")
            .arg(&self.ns)
            .args(args)
            .env("TERM", "dumb")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    pub async fn run(&self, args: &[&str]) -> Run {
        println!("$ kubectl rollout-safe {}", args.join(" "));
        finish(self.spawn(args)).await
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args).spawn().expect("the plugin runs")
    }

    pub async fn cleanup(self) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces
            .delete(&self.ns, &DeleteParams::background())
            .await;
    }
}

fn ready_of<'a>(slices: impl Iterator<Item = &'a EndpointSlice>) -> BTreeSet<String> {
    slices
        .flat_map(|s| s.endpoints.iter().flatten())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .map(|e| {
            e.target_ref
                .as_ref()
                .and_then(|t| t.name.clone())
                .unwrap_or_else(|| e.addresses.join(","))
        })
        .collect()
}

pub async fn finish(child: Child) -> Run {
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    println!(
        "--- exit {}\n--- stdout\n{}--- stderr\n{}",
        run.code, run.stdout, run.stderr
    );
    run
}

/// Ctrl-C, as a terminal sends it.
pub fn interrupt(child: &Child) {
    let status = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

pub fn image_of(d: &Deployment) -> String {
    d.spec.template.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

pub fn replicas_of(d: &Deployment) -> i32 {
    d.spec.replicas.unwrap_or(1)
}

pub fn selector_color(svc: &Service) -> Option<String> {
    svc.spec.as_ref()?.selector.as_ref()?.get(COLOR).cloned()
}

pub fn annotation(svc: &Service, key: &str) -> Option<String> {
    svc.metadata.annotations.as_ref()?.get(key).cloned()
}
