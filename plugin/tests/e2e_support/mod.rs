//! Shared by the end-to-end tests (`e2e_*.rs`): a namespace per test on the cluster named by
//! `ROLLOUT_SAFE_E2E_KUBECONFIG` (without it each test reports itself skipped through
//! `rollout_safe_testkit::skip`, so `scripts/test` lists it, and passes), the workloads they
//! start from, the plugin binary (run through `rollout-safe-standin`'s runner, every process
//! killed if the test fails), and a watcher of a Service's EndpointSlices that records every
//! change of its ready endpoints (the safety figure: never zero during a switch).
//!
//! Every test works in its own namespace `rollout-safe-e2e-…` (labelled
//! `rollout-safe.dev/e2e=true`), deleted at the end of a passing test.
//!
//! Images (override with the environment variables named):
//! - good: `ROLLOUT_SAFE_E2E_IMAGE_GOOD_1` (`nginx:1.27-alpine`), `ROLLOUT_SAFE_E2E_IMAGE_GOOD_2` (`nginx:1.28-alpine`)
//! - crashing: `ROLLOUT_SAFE_E2E_IMAGE_CRASH` (`busybox:1.36`: its shell exits at once → CrashLoopBackOff)
//! - never ready: `ROLLOUT_SAFE_E2E_IMAGE_UNREADY` (`registry.k8s.io/pause:3.10`: runs, never serves the readiness probe)

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use rollout_safe_standin::{Plugin, Run, RunError, Running, Stdin};
use serde_json::{Value, json};

use crate::common::PLUGIN;

pub const ENV: &str = "ROLLOUT_SAFE_E2E_KUBECONFIG";
pub const COLOR: &str = "rollout-safe.dev/color";
/// Longer than any `--timeout` the tests give the plugin.
const RUN_LIMIT: Duration = Duration::from_secs(45 * 60);

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

/// A namespace of its own on the e2e cluster, and the plugin pointed at it.
pub struct Env {
    pub kubeconfig: PathBuf,
    pub client: Client,
    pub ns: String,
    pub plugin: Plugin,
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

    /// Lets the last changes arrive, asserts the safety figure and stops watching.
    pub async fn finish(self) -> Vec<Sample> {
        tokio::time::sleep(Duration::from_secs(3)).await;
        self.assert_never_empty();
        self.task.abort();
        self.samples()
    }
}

/// No pod whose name starts with `prefix` was ever a ready endpoint.
pub fn assert_never_ready(samples: &[Sample], prefix: &str) {
    for x in samples {
        assert!(
            !x.ready.iter().any(|p| p.starts_with(prefix)),
            "a {prefix}… pod received traffic: {x:?}"
        );
    }
}

/// Blue pods are `shop-<hash>-<id>`, green ones `shop-green-<hash>-<id>`.
pub fn is_green(pod: &str) -> bool {
    pod.starts_with("shop-green-")
}

/// A Deployment an operator would write: probes, preStop, maxUnavailable 0, one container
/// `container` of the first good image serving port `http`.
fn safe_deployment(name: &str, container: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "annotations": {"kubernetes.io/change-cause": "initial release"}},
        "spec": {
            "replicas": replicas, "revisionHistoryLimit": 5, "progressDeadlineSeconds": 180, "minReadySeconds": 1,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {
                "terminationGracePeriodSeconds": 30,
                "containers": [{"name": container, "image": good_1(),
                    "ports": [{"name": "http", "containerPort": 80}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 2},
                    "livenessProbe": {"httpGet": {"path": "/", "port": "http"}, "initialDelaySeconds": 30, "periodSeconds": 10, "failureThreshold": 3},
                    "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}}}]}}
        }
    })
}

impl Env {
    /// A fresh namespace `rollout-safe-e2e-<ns>-…`, or `None` after reporting `test` skipped
    /// when no e2e cluster is configured.
    pub async fn or_skip(test: &str, ns: &str) -> Option<Env> {
        let kubeconfig = match std::env::var_os(ENV) {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => {
                rollout_safe_testkit::skip(test, &format!("{ENV} unset (no e2e cluster)"));
                return None;
            }
        };
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
        let ns = format!("rollout-safe-e2e-{ns}-{suffix}");
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let n: Namespace = serde_json::from_value(
            json!({"metadata": {"name": ns, "labels": {"rollout-safe.dev/e2e": "true"}}}),
        )
        .unwrap();
        namespaces
            .create(&PostParams::default(), &n)
            .await
            .expect("create the test namespace");
        let plugin = Plugin::new(PLUGIN)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("-n")
            .arg(&ns)
            .env("TERM", "dumb")
            .timeout(RUN_LIMIT);
        Some(Env {
            kubeconfig,
            client,
            ns,
            plugin,
        })
    }

    /// [`Env::or_skip`] with `shop` ([`Env::create_shop`]) and its endpoints watched.
    pub async fn shop_or_skip(test: &str, ns: &str, replicas: i32) -> Option<(Env, EndpointWatch)> {
        let env = Env::or_skip(test, ns).await?;
        env.create_shop(replicas).await;
        let watch = env.watch_endpoints();
        Some((env, watch))
    }

    /// [`Env::or_skip`] with `web` ([`Env::create_web`]).
    pub async fn web_or_skip(test: &str, ns: &str) -> Option<Env> {
        let env = Env::or_skip(test, ns).await?;
        env.create_web().await;
        Some(env)
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

    async fn create<K>(&self, what: &str, object: Value)
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
        K: Clone + std::fmt::Debug + serde::de::DeserializeOwned + serde::Serialize,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &self.ns);
        let object: K = serde_json::from_value(object).unwrap_or_else(|e| panic!("{what}: {e}"));
        api.create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("create {what}: {e}"));
    }

    /// Waits until `deploy/<name>` is available, through the plugin's own `status`.
    async fn wait_available(&self, name: &str) {
        let r = self
            .run(&[
                "status",
                &format!("deploy/{name}"),
                "--watch",
                "--timeout",
                "4m",
            ])
            .await
            .expect("the plugin runs");
        assert_eq!(
            r.code, 0,
            "deploy/{name} never became available: {}",
            r.stderr
        );
    }

    /// Deployment `web` (2 replicas, container `web`) with a PDB, available.
    pub async fn create_web(&self) {
        self.create::<Deployment>("deploy/web", safe_deployment("web", "web", 2))
            .await;
        let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}});
        self.create::<PodDisruptionBudget>("the PDB", pdb).await;
        self.wait_available("web").await;
    }

    /// Deployment `shop` (container `app`) behind Service `shop` (selector `app: shop`),
    /// available and with `replicas` ready endpoints.
    pub async fn create_shop(&self, replicas: i32) {
        self.create::<Deployment>("deploy/shop", safe_deployment("shop", "app", replicas))
            .await;
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop"},
            "spec": {"selector": {"app": "shop"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}});
        self.create::<Service>("svc/shop", svc).await;
        self.wait_available("shop").await;
        self.wait_for(
            "ready endpoints for svc/shop",
            Duration::from_secs(120),
            || async { self.ready_endpoints().await.len() == replicas as usize },
        )
        .await;
    }

    /// Waits (up to 5 minutes) until `deploy/<name>` has `n` ready replicas.
    pub async fn wait_ready_replicas(&self, name: &str, n: i32) {
        let what = format!("{n} ready replicas of deploy/{name}");
        self.wait_for(&what, Duration::from_secs(300), || async {
            self.deployment(name)
                .await
                .and_then(|d| d.status)
                .is_some_and(|s| s.ready_replicas == Some(n))
        })
        .await;
    }

    /// The Service's ready endpoints now (pod names).
    pub async fn ready_endpoints(&self) -> BTreeSet<String> {
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &self.ns);
        let list = api
            .list(&ListParams::default().labels("kubernetes.io/service-name=shop"))
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

    /// Runs the plugin to its end (on a blocking thread: the runtime keeps watching).
    pub async fn run<S: AsRef<str>>(&self, args: &[S]) -> Result<Run, RunError> {
        let plugin = self.plugin.clone();
        let args: Vec<String> = args.iter().map(|a| a.as_ref().to_owned()).collect();
        tokio::task::spawn_blocking(move || plugin.run(&args))
            .await
            .expect("the runner thread")
    }

    /// Starts the plugin in the background.
    pub fn spawn<S: AsRef<str>>(&self, args: &[S]) -> Result<Running, RunError> {
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        self.plugin.spawn(&args)
    }

    /// Runs `update … --debug-pause-before-write` (a hidden test hook: after its first read the
    /// plugin says so and waits for a line on stdin), runs `meanwhile` once the plugin has read,
    /// then lets it write: its precondition is then deterministically stale.
    pub async fn run_with_write_in_between(
        &self,
        args: &[String],
        meanwhile: impl std::future::Future<Output = ()>,
    ) -> Result<Run, RunError> {
        let mut args = args.to_vec();
        args.push("--debug-pause-before-write".into());
        let running = self.plugin.spawn_with(&args, Stdin::Open)?;
        // The plugin never said it had read the Deployment otherwise.
        let mut running = blocking(move || {
            running.wait_stderr("paused before writing", Duration::from_secs(120))?;
            Ok(running)
        })
        .await?;
        meanwhile.await;
        running.write_stdin(b"\n")?;
        running.close_stdin();
        finish(running).await
    }

    pub async fn cleanup(self) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces
            .delete(&self.ns, &DeleteParams::background())
            .await;
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RunError> + Send + 'static,
) -> Result<T, RunError> {
    tokio::task::spawn_blocking(f)
        .await
        .expect("the runner thread")
}

/// Waits for a background run to end.
pub async fn finish(running: Running) -> Result<Run, RunError> {
    blocking(move || running.finish()).await
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
