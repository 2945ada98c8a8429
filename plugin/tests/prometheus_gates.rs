//! Metric gates against a real Prometheus (Debian's `prometheus`, found at
//! `$ROLLOUT_SAFE_PROMETHEUS_BIN` or `/usr/bin/prometheus`; `.ci/run` installs it), scraping a
//! metrics endpoint the test controls, beside the stand-in API server. A version that serves
//! 5 % errors while staying Ready is the case the gates exist for.
//!
//! The assertions count checks and outcomes (the live view's gate lines, the annotation), not
//! wall-clock times.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::prometheus::{
    ERRORS_GATE, MetricsEndpoint, PodInfo, Prometheus, http_get, prometheus_bin,
};
use common::{
    TestResult, annotation, blue_green, canary, deployment, first_selecting, image, phase,
    replicas, selector_of, service, shop, spawn_until, traffic, update_workload, writes,
};
use rollout_safe_standin::scenarios::NAMESPACE;
use rollout_safe_standin::store::EventType;
use rollout_safe_standin::{Plugin, Standin};
use serde_json::Value;

const V1: &str = "registry.example.com/team/shop:1.0.0";
const V2: &str = "registry.example.com/team/shop:2.0.0";
/// Serves 5 % errors while staying Ready.
const BAD: &str = "registry.example.com/team/shop:2.0.0-errors";
const GATES: &str = "rollout-safe.dev/gates";

/// The stand-in cluster, the metrics endpoint reading its pods, and Prometheus scraping it.
struct Rig {
    standin: Arc<Standin>,
    plugin: Plugin,
    metrics: MetricsEndpoint,
    prometheus: Prometheus,
}

fn pods_of(standin: &Standin) -> Vec<PodInfo> {
    standin.read(|s| {
        s.list("pods", Some(NAMESPACE))
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .map(|p| {
                let ready = p["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
                (
                    NAMESPACE.to_owned(),
                    p["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    p["spec"]["containers"][0]["image"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    ready,
                )
            })
            .collect()
    })
}

/// `None` (and a skip recorded) when no Prometheus binary is installed.
fn rig(test: &str, replicas: i64) -> Result<Option<Rig>, Box<dyn std::error::Error>> {
    let Some(bin) = prometheus_bin() else {
        if std::env::var_os("ROLLOUT_SAFE_REQUIRE_PROMETHEUS").is_some() {
            return Err(format!(
                "{test}: ROLLOUT_SAFE_REQUIRE_PROMETHEUS is set (CI) but there is no Prometheus binary at $ROLLOUT_SAFE_PROMETHEUS_BIN or /usr/bin/prometheus"
            )
            .into());
        }
        rollout_safe_testkit::skip(
            test,
            "no Prometheus binary: install Debian's prometheus package (apt-get install -y prometheus) or set ROLLOUT_SAFE_PROMETHEUS_BIN",
        );
        return Ok(None);
    };
    let (standin, plugin) = shop(replicas, V1)?;
    let standin = Arc::new(standin);
    let seen = standin.clone();
    let metrics = MetricsEndpoint::start(move || pods_of(&seen))?;
    metrics.set_error_rate(BAD, 0.05);
    let prometheus = Prometheus::start(&bin, metrics.addr())?;
    Ok(Some(Rig {
        standin,
        plugin,
        metrics,
        prometheus,
    }))
}

impl Rig {
    fn gate_flags(&self) -> Vec<String> {
        gate_flags(self.prometheus.url())
    }

    /// The error ratio Prometheus computes for the pods of `image` now (`None`: no data).
    fn error_ratio(&self, image: &str) -> Option<f64> {
        let pods: Vec<String> = pods_of(&self.standin)
            .into_iter()
            .filter(|p| p.2 == image)
            .map(|p| p.1)
            .collect();
        let q = format!(
            r#"sum(rate(http_requests_total{{pod=~"{0}",code="500"}}[5s])) / sum(rate(http_requests_total{{pod=~"{0}"}}[5s]))"#,
            pods.join("|")
        );
        let addr = self
            .prometheus
            .url()
            .trim_start_matches("http://")
            .to_owned();
        let (_, body) = http_get(&addr, &format!("/api/v1/query?query={}", encode(&q))).ok()?;
        let v: Value = serde_json::from_str(&body).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Waits until Prometheus reports `image`'s error ratio satisfying `ok` (data-driven).
    fn wait_error_ratio(&self, image: &str, ok: impl Fn(f64) -> bool) -> TestResult {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if self.error_ratio(image).is_some_and(&ok) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(format!(
            "Prometheus never reported the expected error ratio for {image} (last {:?}; {} scrapes)",
            self.error_ratio(image),
            self.metrics.scrapes()
        )
        .into())
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn gate_flags(url: &str) -> Vec<String> {
    [
        "--prometheus",
        url,
        "--gate",
        ERRORS_GATE,
        "--gate-interval",
        "1s",
        "--gate-failures",
        "2",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

fn args(base: Vec<String>, extra: &[String]) -> Vec<String> {
    base.into_iter().chain(extra.iter().cloned()).collect()
}

/// The `rollout-safe.dev/gates` record on Deployment `name`.
fn gates_record(standin: &Standin, name: &str) -> Value {
    let d = deployment(standin, name);
    let text = annotation(&d, GATES).unwrap_or_else(|| panic!("deployment/{name} has no {GATES}"));
    serde_json::from_str(&text).expect("the gates annotation is JSON")
}

/// `(canary replicas, stable replicas)` each time either Deployment's spec.replicas changed.
fn replica_steps(standin: &Standin) -> Vec<(i64, i64)> {
    standin.read(|s| {
        let (mut canary, mut stable) = (0, -1);
        let mut out: Vec<(i64, i64)> = Vec::new();
        for change in s
            .log()
            .iter()
            .filter(|c| c.resource.plural == "deployments")
        {
            let r = if change.event == EventType::Deleted {
                0
            } else {
                replicas(&change.object)
            };
            match change.name() {
                "shop-canary" => canary = r,
                "shop" => stable = r,
                _ => continue,
            }
            if out.last() != Some(&(canary, stable)) {
                out.push((canary, stable));
            }
        }
        out
    })
}

fn gate_value(record: &Value) -> f64 {
    record["gates"][0]["value"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

#[test]
fn prometheus_canary_with_good_metrics_promotes() -> TestResult {
    let Some(rig) = rig("prometheus_canary_with_good_metrics_promotes", 4)? else {
        return Ok(());
    };
    let r = rig.plugin.run(&args(
        canary(
            "deploy/shop",
            V2,
            "1s",
            &["--steps", "50,100", "--timeout", "120s"],
        ),
        &rig.gate_flags(),
    ))?;
    r.assert_code(0)
        .assert_stderr_has("gate errors: pre-flight on deployment/shop (stable)")
        .assert_stderr_has("step 50% passed (metric gates: ✓ gate errors 0")
        .assert_stderr_has("step 100% passed (metric gates: ✓ gate errors 0")
        .assert_stdout_has("canary promoted")
        .assert_stderr_lacks("✗ gate errors");
    let stable = deployment(&rig.standin, "shop");
    assert_eq!((replicas(&stable), image(&stable)), (4, V2.to_owned()));
    // The last evaluation (the promotion's) is on the stable Deployment: passed.
    let rec = gates_record(&rig.standin, "shop");
    assert_eq!(rec["gates"][0]["result"], "pass", "{rec}");
    assert_eq!(rec["gates"][0]["consecutiveFailures"], 0, "{rec}");
    assert!(gate_value(&rec) < 0.01, "{rec}");
    assert!(
        rec["gates"][0]["querySent"]
            .as_str()
            .unwrap_or_default()
            .contains("pod=~\"shop-"),
        "{rec}"
    );
    Ok(())
}

#[test]
fn prometheus_canary_serving_errors_while_ready_is_aborted_at_its_first_step() -> TestResult {
    let Some(rig) = rig(
        "prometheus_canary_serving_errors_while_ready_is_aborted_at_its_first_step",
        4,
    )?
    else {
        return Ok(());
    };
    let r = rig.plugin.run(&args(
        canary(
            "deploy/shop",
            BAD,
            "1s",
            &["--steps", "50,100", "--timeout", "120s"],
        ),
        &rig.gate_flags(),
    ))?;
    r.assert_code(1)
        .assert_stderr_has("rollout failed: MetricGate")
        .assert_stderr_has("is not < 0.01 (2 consecutive failed checks); query sent: sum(rate(http_requests_total{namespace=\"api\",pod=~\"shop-canary-")
        .assert_stderr_has("canary aborted")
        .assert_stderr_lacks("step 50% passed")
        .assert_stderr_lacks("✓ gate errors");
    // Aborted within --gate-failures checks of the first check that had data: the live view
    // shows exactly one failed check, then the second, and no pass before them.
    let failed: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("✗ gate errors 0.0") && l.contains("(needs < 0.01)"))
        .collect();
    assert_eq!(failed.len(), 2, "{}", r.stderr);
    assert!(
        failed[0].contains("failures 1/2") && failed[1].contains("failures 2/2"),
        "{failed:?}"
    );
    // Never promoted past its first step; the stable replicas restored.
    let steps = replica_steps(&rig.standin);
    let mut sizes: Vec<i64> = steps.iter().map(|s| s.0).filter(|c| *c > 0).collect();
    sizes.dedup();
    assert_eq!(sizes, [2], "{steps:?}");
    let stable = deployment(&rig.standin, "shop");
    assert_eq!((replicas(&stable), image(&stable)), (4, V1.to_owned()));
    assert!(rig.standin.get("deployments", "shop-canary").is_none());
    let rec = gates_record(&rig.standin, "shop");
    assert_eq!(
        (rec["step"].as_str(), rec["gates"][0]["result"].as_str()),
        (Some("50%"), Some("fail")),
        "{rec}"
    );
    assert_eq!(rec["gates"][0]["consecutiveFailures"], 2, "{rec}");
    assert_eq!(rec["gates"][0]["passedSinceStep"], false, "{rec}");
    let v = gate_value(&rec);
    assert!((0.03..0.07).contains(&v), "{rec}");
    Ok(())
}

#[test]
fn prometheus_blue_green_serving_errors_never_gets_the_service() -> TestResult {
    let Some(rig) = rig(
        "prometheus_blue_green_serving_errors_never_gets_the_service",
        2,
    )?
    else {
        return Ok(());
    };
    let r = rig.plugin.run(&args(
        blue_green(BAD, "1s", "1m", &["--timeout", "120s"]),
        &rig.gate_flags(),
    ))?;
    r.assert_code(1)
        .assert_stderr_has("rollout failed: MetricGate")
        .assert_stderr_has("is not < 0.01 (2 consecutive failed checks)")
        .assert_stderr_has("blue-green abandoned");
    let history = traffic(&rig.standin);
    assert_eq!(first_selecting(&history, "green"), None, "{history:#?}");
    assert_eq!(phase(&service(&rig.standin)).as_deref(), Some("abandoned"));
    assert_eq!(replicas(&deployment(&rig.standin, "shop-green")), 0);
    let rec = gates_record(&rig.standin, "shop");
    assert_eq!(rec["workload"], "deployment/shop-green", "{rec}");
    assert_eq!(rec["gates"][0]["consecutiveFailures"], 2, "{rec}");
    Ok(())
}

#[test]
fn prometheus_blue_green_switches_back_when_a_gate_fails_in_the_window() -> TestResult {
    let Some(rig) = rig(
        "prometheus_blue_green_switches_back_when_a_gate_fails_in_the_window",
        2,
    )?
    else {
        return Ok(());
    };
    let running = spawn_until(
        &rig.plugin,
        &args(
            blue_green(V2, "1s", "10m", &["--timeout", "120s"]),
            &rig.gate_flags(),
        ),
        "keeping deployment/shop (blue) scaled for a rollback",
    )?;
    assert_eq!(
        selector_of(&service(&rig.standin))
            .get("rollout-safe.dev/color")
            .map(String::as_str),
        Some("green")
    );
    // The new colour starts failing with traffic on it.
    rig.metrics.set_error_rate(V2, 0.05);
    let r = running.finish()?;
    r.assert_code(1)
        .assert_stderr_has("fails a metric gate after the switch; switching service/shop back to deployment/shop (blue)")
        .assert_stderr_has("is not < 0.01 (2 consecutive failed checks)")
        .assert_stdout_has("rolled back: service/shop sends traffic to deployment/shop (blue)");
    let history = traffic(&rig.standin);
    assert!(first_selecting(&history, "green").is_some(), "{history:#?}");
    let svc = service(&rig.standin);
    assert_eq!(
        selector_of(&svc)
            .get("rollout-safe.dev/color")
            .map(String::as_str),
        Some("blue")
    );
    assert_eq!(replicas(&deployment(&rig.standin, "shop-green")), 0);
    let rec = gates_record(&rig.standin, "shop");
    assert_eq!(
        (rec["step"].as_str(), rec["gates"][0]["result"].as_str()),
        (Some("rollback window"), Some("fail")),
        "{rec}"
    );
    Ok(())
}

#[test]
fn prometheus_update_serving_errors_is_rolled_back() -> TestResult {
    let Some(rig) = rig("prometheus_update_serving_errors_is_rolled_back", 3)? else {
        return Ok(());
    };
    let r = rig.plugin.run(&args(
        update_workload("deploy/shop", "app", BAD, &["--timeout", "120s"]),
        &rig.gate_flags(),
    ))?;
    r.assert_code(1)
        .assert_stderr_has("rollout failed: MetricGate")
        .assert_stderr_has("is not < 0.01 (2 consecutive failed checks); query sent: ")
        .assert_stderr_has("rolling back deployment/shop")
        .assert_stderr_has("rolled back to revision");
    assert_eq!(image(&deployment(&rig.standin, "shop")), V1);
    let rec = gates_record(&rig.standin, "shop");
    assert_eq!(rec["gates"][0]["consecutiveFailures"], 2, "{rec}");
    // The same version with good metrics passes, through --bake.
    rig.metrics.set_error_rate(BAD, 0.0);
    let r = rig.plugin.run(&args(
        update_workload(
            "deploy/shop",
            "app",
            V2,
            &["--timeout", "120s", "--bake", "2s"],
        ),
        &rig.gate_flags(),
    ))?;
    r.assert_code(0).assert_stderr_has("rolled out");
    let rec = gates_record(&rig.standin, "shop");
    assert_eq!(
        (rec["step"].as_str(), rec["gates"][0]["result"].as_str()),
        (Some("bake"), Some("pass")),
        "{rec}"
    );
    Ok(())
}

#[test]
fn prometheus_blue_green_finish_refuses_while_a_gate_fails() -> TestResult {
    let Some(rig) = rig("prometheus_blue_green_finish_refuses_while_a_gate_fails", 2)? else {
        return Ok(());
    };
    // Switched, then the command stops watching the window (as after a detach).
    let running = spawn_until(
        &rig.plugin,
        &args(
            blue_green(V2, "1s", "10m", &["--timeout", "120s"]),
            &rig.gate_flags(),
        ),
        "keeping deployment/shop (blue) scaled for a rollback",
    )?;
    running.interrupt()?;
    running.finish()?.assert_code(4);
    rig.metrics.set_error_rate(V2, 0.05);
    rig.wait_error_ratio(V2, |r| r > 0.02)?;
    // No flags: the gates and the Prometheus URL the run recorded on the base Deployment.
    let r = rig.plugin.run(&["blue-green", "finish", "deploy/shop"])?;
    r.assert_code(1)
        .assert_stderr_has("blue-green finish of deployment/shop refused: gate errors: 0.0")
        .assert_stderr_has(
            "is not < 0.01 (1 consecutive failed check) on deployment/shop-green (green)",
        )
        .assert_stderr_has("blue-green rollback deployment/shop");
    assert!(
        replicas(&deployment(&rig.standin, "shop")) > 0,
        "the old colour stays scaled"
    );
    assert_eq!(phase(&service(&rig.standin)).as_deref(), Some("switched"));
    rig.metrics.set_error_rate(V2, 0.0);
    rig.wait_error_ratio(V2, |r| r < 0.005)?;
    let r = rig.plugin.run(&["blue-green", "finish", "deploy/shop"])?;
    r.assert_code(0).assert_stdout_has("blue-green finished");
    assert_eq!(replicas(&deployment(&rig.standin, "shop")), 0);
    Ok(())
}

#[test]
fn prometheus_refusing_a_query_exits_2_and_writes_nothing() -> TestResult {
    let Some(rig) = rig("prometheus_refusing_a_query_exits_2_and_writes_nothing", 2)? else {
        return Ok(());
    };
    let mut flags = gate_flags(rig.prometheus.url());
    flags[3] = "broken: sum(rate(http_requests_total[5s]) < 1".into();
    let r = rig.plugin.run(&args(
        update_workload("deploy/shop", "app", V2, &[]),
        &flags,
    ))?;
    r.assert_code(2)
        .assert_stderr_has("gate broken: the pre-flight query was refused; nothing was written")
        .assert_stderr_has("(HTTP 400): bad_data");
    assert_eq!(writes(&rig.standin), Vec::<String>::new());
    Ok(())
}

#[test]
fn prometheus_query_with_several_series_is_an_error() -> TestResult {
    let Some(rig) = rig("prometheus_query_with_several_series_is_an_error", 2)? else {
        return Ok(());
    };
    // Prometheus has the stable pods' series: the pre-flight sees them all.
    rig.wait_error_ratio(V1, |r| r < 0.01)?;
    let mut flags = gate_flags(rig.prometheus.url());
    flags[3] =
        r#"per-pod: rate(http_requests_total{namespace="{{namespace}}",pod=~"{{pods}}"}[5s]) >= 0"#
            .into();
    let r = rig
        .plugin
        .run(&args(canary("deploy/shop", V2, "1s", &[]), &flags))?;
    r.assert_code(2)
        .assert_stderr_has(
            "gate per-pod: the pre-flight query cannot be used as a gate; nothing was written",
        )
        .assert_stderr_has("series")
        .assert_stderr_has("aggregate it");
    assert_eq!(writes(&rig.standin), Vec::<String>::new());
    Ok(())
}

#[test]
fn prometheus_down_is_inconclusive_and_times_out_with_the_reason() -> TestResult {
    // Nothing listens on the port: every query gets no answer.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let (standin, plugin) = shop(2, V1)?;
    let r = plugin.run(&args(
        update_workload("deploy/shop", "app", V2, &["--timeout", "8s"]),
        &gate_flags(&format!("http://127.0.0.1:{port}")),
    ))?;
    r.assert_code(4)
        .assert_stderr_has("warning: gate errors: pre-flight query got no answer")
        .assert_stderr_has(
            "the metric gates did not pass: gate errors: inconclusive: no answer from Prometheus",
        )
        .assert_stderr_has("rolling back deployment/shop");
    assert_eq!(image(&deployment(&standin, "shop")), V1);
    Ok(())
}
