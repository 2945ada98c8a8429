//! Shared by the tests that run the plugin against the stand-in API server
//! (`rollout-safe-standin`): the clusters they start, the command lines they repeat, and the
//! assertions on what a Service could send traffic to.

#![allow(dead_code)]

pub mod prometheus;

use std::collections::BTreeMap;
use std::time::Duration;

use rollout_safe_standin::controllers::deployment::REVISION;
use rollout_safe_standin::scenarios::{self, NAMESPACE};
use rollout_safe_standin::{
    Fault, Plugin, RunError, Running, ServiceView, StaleAnswer, Standin, StandinBuilder,
    StandinError, StoreError, Times, seed,
};
use serde_json::Value;

pub const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-rollout_safe");
pub const COLOR: &str = "rollout-safe.dev/color";

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The recorded Deployment `good` at revision 2 (see `scenarios::recorded_good`) beside
/// StatefulSet `db` (no readiness probe); the controllers react 300 ms after a write, so the
/// plugin sees the write before its effect, as on a real cluster. `configure` adds faults or
/// changes the seed.
pub fn good_with(
    configure: impl FnOnce(StandinBuilder) -> StandinBuilder,
) -> Result<(Standin, Plugin), StandinError> {
    let builder = Standin::builder(NAMESPACE)
        .kubernetes_controllers()
        .reaction_delay(Duration::from_millis(300))
        .seed(|s| {
            s.put("statefulsets", seed::statefulset("db", 2, "postgres:16.4"))
                .map(drop)
        })?;
    let standin = configure(scenarios::recorded_good(builder)?).start()?;
    let plugin = standin.plugin(PLUGIN);
    Ok((standin, plugin))
}

pub fn good() -> Result<(Standin, Plugin), StandinError> {
    good_with(|b| b)
}

/// [`good`], with Deployment `good` changed by `edit` before the stand-in starts (the
/// controllers then react to the change as to any write).
pub fn good_with_deployment(
    edit: impl FnOnce(&mut Value),
) -> Result<(Standin, Plugin), StandinError> {
    let mut edited = Ok(());
    let started = good_with(|mut b| {
        let store = b.store();
        edited = match store.get("deployments", NAMESPACE, "good").cloned() {
            Some(mut d) => {
                edit(&mut d);
                store.put("deployments", d).map(drop)
            }
            None => Err(StoreError::NotFound {
                resource: "deployments",
                namespace: NAMESPACE.into(),
                name: "good".into(),
            }),
        };
        b
    })?;
    edited?;
    Ok(started)
}

/// Starts the plugin in the background and waits until it printed `needle` on stderr.
pub fn spawn_until(plugin: &Plugin, args: &[String], needle: &str) -> Result<Running, RunError> {
    let running = plugin.spawn(args)?;
    running.wait_stderr(needle, Duration::from_secs(30))?;
    Ok(running)
}

/// `times` writers that change Deployment `good` just before the plugin's PATCH lands.
pub fn other_writers(
    times: usize,
    answer: StaleAnswer,
) -> impl FnOnce(StandinBuilder) -> StandinBuilder {
    move |b| {
        b.fault(
            Fault::ConcurrentWrite {
                resource: "deployments".into(),
                body_contains: None,
                answer,
            },
            Times::Next(times),
        )
    }
}

/// Deployment `shop` (`replicas` pods of `image`) behind Service `shop`; the controllers react
/// within each write.
pub fn shop(replicas: i64, image: &str) -> Result<(Standin, Plugin), StandinError> {
    let standin = scenarios::shop(
        Standin::builder(NAMESPACE).kubernetes_controllers(),
        replicas,
        image,
    )?
    .start()?;
    let plugin = standin.plugin(PLUGIN);
    Ok((standin, plugin))
}

/// `args` followed by `extra`, as owned strings.
pub fn with(args: &[&str], extra: &[&str]) -> Vec<String> {
    args.iter().chain(extra).map(|s| (*s).to_owned()).collect()
}

/// `update <workload> --image <container>=<image> <extra>`.
pub fn update_workload(
    workload: &str,
    container: &str,
    image: &str,
    extra: &[&str],
) -> Vec<String> {
    with(
        &[
            "update",
            workload,
            "--image",
            &format!("{container}={image}"),
        ],
        extra,
    )
}

/// `update deploy/good --image app=<image> <extra>`.
pub fn update(image: &str, extra: &[&str]) -> Vec<String> {
    update_workload("deploy/good", "app", image, extra)
}

/// `blue-green deploy/shop --service shop --image app=<image> --bake <bake> --keep-old <keep> <extra>`.
pub fn blue_green(image: &str, bake: &str, keep: &str, extra: &[&str]) -> Vec<String> {
    let image = format!("app={image}");
    with(
        &[
            "blue-green",
            "deploy/shop",
            "--service",
            "shop",
            "--image",
            &image,
            "--bake",
            bake,
            "--keep-old",
            keep,
        ],
        extra,
    )
}

/// `canary <workload> --image app=<image> --interval <interval> <extra>`.
pub fn canary(workload: &str, image: &str, interval: &str, extra: &[&str]) -> Vec<String> {
    let image = format!("app={image}");
    with(
        &[
            "canary",
            workload,
            "--image",
            &image,
            "--interval",
            interval,
        ],
        extra,
    )
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

pub fn cause_of(d: &Value) -> String {
    annotation(d, "kubernetes.io/change-cause").unwrap_or_default()
}

pub fn revision_of(d: &Value) -> Option<String> {
    annotation(d, REVISION)
}

/// A Service's selector as a map.
pub fn selector_of(svc: &Value) -> BTreeMap<String, String> {
    rollout_safe_standin::selector::string_map(&svc["spec"]["selector"])
}

pub fn color_of_selector(svc: &Value) -> Option<String> {
    selector_of(svc).get(COLOR).cloned()
}

pub fn phase(svc: &Value) -> Option<String> {
    annotation(svc, "rollout-safe.dev/blue-green-phase")
}

/// What Service `shop` could send traffic to, over time (ready pods by colour).
pub fn traffic(standin: &Standin) -> Vec<ServiceView> {
    standin.service_history("shop", COLOR)
}

/// Deployment `name` in the stand-in; panics naming it when it is missing.
#[track_caller]
pub fn deployment(standin: &Standin, name: &str) -> Value {
    standin
        .get("deployments", name)
        .unwrap_or_else(|| panic!("deployment/{name} does not exist"))
}

#[track_caller]
pub fn service(standin: &Standin) -> Value {
    standin
        .get("services", "shop")
        .expect("service/shop exists")
}

/// The Service never went without a ready endpoint (after it first had one).
#[track_caller]
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

/// Index of the first view whose selector selects `color`.
pub fn first_selecting(history: &[ServiceView], color: &str) -> Option<usize> {
    history
        .iter()
        .position(|v| v.selector.get(COLOR).map(String::as_str) == Some(color))
}

/// Before the Service selected `color`, no pod of that colour was ever a ready endpoint.
#[track_caller]
pub fn assert_no_traffic_before_switch(history: &[ServiceView], color: &str) {
    let until = first_selecting(history, color).unwrap_or(history.len());
    for (i, v) in history[..until].iter().enumerate() {
        assert!(
            v.ready.values().all(|c| c != color),
            "a {color} pod was a ready endpoint at step {i}, before the switch: {history:#?}"
        );
    }
}

/// The fewest ready endpoints Service `shop` had once it had any.
pub fn min_ready(standin: &Standin) -> usize {
    traffic(standin)
        .iter()
        .skip_while(|v| v.ready.is_empty())
        .map(|v| v.ready.len())
        .min()
        .unwrap_or(0)
}

/// The write requests, as `METHOD uri`.
pub fn writes(standin: &Standin) -> Vec<String> {
    standin
        .writes()
        .iter()
        .map(|r| format!("{} {}", r.method, r.uri()))
        .collect()
}

/// Makes Deployment `name`'s first container lose its readiness probe (an unsafe spec).
pub fn drop_readiness_probe(
    store: &mut rollout_safe_standin::Store,
    name: &str,
) -> Result<(), rollout_safe_standin::StoreError> {
    let ns = store.default_namespace().to_owned();
    let Some(mut d) = store.get("deployments", &ns, name).cloned() else {
        return Err(rollout_safe_standin::StoreError::NotFound {
            resource: "deployments",
            namespace: ns,
            name: name.to_owned(),
        });
    };
    without_readiness_probe(&mut d);
    store.put("deployments", d).map(drop)
}

/// Takes the readiness probe off a Deployment's first container (an unsafe spec).
pub fn without_readiness_probe(d: &mut Value) {
    if let Some(c) = d["spec"]["template"]["spec"]["containers"][0].as_object_mut() {
        c.remove("readinessProbe");
    }
}
