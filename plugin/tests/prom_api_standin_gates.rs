//! Metric gates against a stand-in of Prometheus's HTTP API (`common::prometheus::
//! PrometheusApiStandin`), for the answers a real Prometheus does not give on demand: a range
//! vector, HTTP errors, slow answers, NaN; and what the flags and the policy file send.

mod common;

use std::time::Duration;

use common::prometheus::{PrometheusApiStandin, vector_answer};
use common::{TestResult, deployment, image, shop, update_workload, writes};

const V1: &str = "registry.example.com/team/shop:1.0.0";
const V2: &str = "registry.example.com/team/shop:2.0.0";
const GATE: &str = r#"errors: sum(rate(http_requests_total{namespace="{{namespace}}",pod=~"{{pods}}",code=~"5.."}[1m])) < 0.01"#;

fn gated(url: &str, extra: &[&str]) -> Vec<String> {
    let mut a = update_workload("deploy/shop", "app", V2, &[]);
    for s in ["--prometheus", url, "--gate", GATE, "--gate-interval", "1s"]
        .iter()
        .chain(extra)
    {
        a.push((*s).to_owned());
    }
    a
}

#[test]
fn prom_api_standin_a_range_vector_is_refused_before_any_write() -> TestResult {
    let prom = PrometheusApiStandin::start(|_| {
        (
            200,
            r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#.into(),
            Duration::ZERO,
        )
    })?;
    let (standin, plugin) = shop(2, V1)?;
    let r = plugin.run(&gated(&prom.url(), &[]))?;
    r.assert_code(2)
        .assert_stderr_has(
            "gate errors: the pre-flight query cannot be used as a gate; nothing was written",
        )
        .assert_stderr_has(
            "the query returned a matrix; a gate needs an instant vector or a scalar",
        );
    assert_eq!(writes(&standin), Vec::<String>::new());
    // The pre-flight filled the placeholders with the stable version's pods.
    let q = prom.requests()[0].query.clone().unwrap_or_default();
    assert!(q.contains(r#"namespace="api",pod=~"shop-"#), "{q}");
    Ok(())
}

#[test]
fn prom_api_standin_http_errors_are_inconclusive_until_the_timeout() -> TestResult {
    let prom =
        PrometheusApiStandin::start(|_| (503, "Service Unavailable".into(), Duration::ZERO))?;
    let (standin, plugin) = shop(2, V1)?;
    let r = plugin.run(&gated(&prom.url(), &["--timeout", "6s"]))?;
    r.assert_code(4)
        .assert_stderr_has("warning: gate errors: pre-flight query got no answer")
        .assert_stderr_has("the metric gates did not pass: gate errors: inconclusive: no answer from Prometheus: Prometheus http://127.0.0.1:")
        .assert_stderr_has("answered HTTP 503: Service Unavailable")
        .assert_stderr_has("rolling back deployment/shop");
    // The pre-flight, then a check per interval while the rollout waited.
    assert!(prom.requests().len() >= 3, "{:?}", prom.requests());
    assert_eq!(image(&deployment(&standin, "shop")), V1);
    Ok(())
}

#[test]
fn prom_api_standin_slow_answers_are_inconclusive() -> TestResult {
    let prom = PrometheusApiStandin::start(|_| (200, vector_answer("0"), Duration::from_secs(3)))?;
    let (_standin, plugin) = shop(2, V1)?;
    let r = plugin.run(&gated(
        &prom.url(),
        &["--timeout", "6s", "--prometheus-timeout", "300ms"],
    ))?;
    r.assert_code(4)
        .assert_stderr_has("inconclusive: no answer from Prometheus: Prometheus http://127.0.0.1:")
        .assert_stderr_has("did not answer within 0.3s");
    Ok(())
}

#[test]
fn prom_api_standin_nan_is_inconclusive() -> TestResult {
    let prom = PrometheusApiStandin::start(|_| (200, vector_answer("NaN"), Duration::ZERO))?;
    let (_standin, plugin) = shop(2, V1)?;
    let r = plugin.run(&gated(&prom.url(), &["--timeout", "5s"]))?;
    r.assert_code(4)
        .assert_stderr_has("gate errors: inconclusive: the query returned NaN");
    Ok(())
}

#[test]
fn prom_api_standin_token_is_sent_and_the_gates_are_recorded_for_status() -> TestResult {
    let prom = PrometheusApiStandin::start(|_| (200, vector_answer("0.001"), Duration::ZERO))?;
    let (_standin, plugin) = shop(2, V1)?;
    let r = plugin.run(&gated(
        &prom.url(),
        &["--timeout", "60s", "--prometheus-token", "s3cret"],
    ))?;
    r.assert_code(0)
        .assert_stderr_has("✓ gate errors 0.001 (needs < 0.01) · failures 0/2")
        .assert_stderr_has("rolled out");
    let seen = prom.requests();
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(
        seen.iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer s3cret")),
        "{seen:?}"
    );
    // Another terminal sees the last evaluation through the annotation.
    let r = plugin.run(&["status", "deploy/shop", "-o", "json"])?;
    r.assert_code(0);
    let v = r.json()?;
    let g = &v["gates"]["gates"][0];
    assert_eq!(
        (
            g["name"].as_str(),
            g["result"].as_str(),
            g["value"].as_str()
        ),
        (Some("errors"), Some("pass"), Some("0.001")),
        "{v}"
    );
    assert_eq!(v["gates"]["workload"], "deployment/shop", "{v}");
    assert!(
        g["querySent"]
            .as_str()
            .unwrap_or_default()
            .contains("pod=~\"shop-"),
        "{v}"
    );
    assert!(g["at"].is_string(), "{v}");
    let r = plugin.run(&["status", "deploy/shop"])?;
    r.assert_stdout_has("metric gates (deployment/shop, step rollout):")
        .assert_stdout_has("errors pass: 0.001 (needs < 0.01)");
    Ok(())
}

#[test]
fn prom_api_standin_policy_file_gates_apply_with_the_flags() -> TestResult {
    let prom = PrometheusApiStandin::start(|q| {
        let v = if q.starts_with("policy_latency") {
            "0.2"
        } else {
            "0"
        };
        (200, vector_answer(v), Duration::ZERO)
    })?;
    let (_standin, plugin) = shop(2, V1)?;
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\nspec:\n  gates:\n    - name: latency\n      query: policy_latency{namespace=\"{{namespace}}\",workload=\"{{workload}}\"}\n      op: \"<=\"\n      threshold: 0.5\n      namespaces: [\"a*\"]\n    - name: elsewhere\n      query: never_sent\n      op: \"<\"\n      threshold: 1\n      namespaces: [\"prod-*\"]\n",
    )?;
    let mut args = gated(&prom.url(), &["--timeout", "60s"]);
    args.push("--policy".into());
    args.push(policy.display().to_string());
    let r = plugin.run(&args)?;
    r.assert_code(0)
        .assert_stderr_has("✓ gate latency 0.2 (needs <= 0.5)")
        .assert_stderr_has("✓ gate errors 0 (needs < 0.01)");
    let queries: Vec<String> = prom
        .requests()
        .into_iter()
        .filter_map(|r| r.query)
        .collect();
    assert!(
        queries
            .iter()
            .any(|q| q == r#"policy_latency{namespace="api",workload="shop"}"#),
        "{queries:?}"
    );
    assert!(
        !queries.iter().any(|q| q.contains("never_sent")),
        "{queries:?}"
    );
    Ok(())
}

#[test]
fn prom_api_standin_bad_flags_are_usage_errors() -> TestResult {
    let (standin, plugin) = shop(2, V1)?;
    let mut no_url = update_workload("deploy/shop", "app", V2, &["--gate", GATE]);
    no_url.push("--timeout".into());
    no_url.push("5s".into());
    let r = plugin.run(&no_url)?;
    r.assert_code(2)
        .assert_stderr_has("metric gates (errors) need Prometheus: pass --prometheus URL");
    let r = plugin.run(&update_workload(
        "deploy/shop",
        "app",
        V2,
        &[
            "--gate",
            "errors: rate(x[1m]) < lots",
            "--prometheus",
            "http://127.0.0.1:9",
        ],
    ))?;
    r.assert_code(2).assert_stderr_has(
        "--gate \"errors: rate(x[1m]) < lots\": at character 23: the threshold \"lots\" is not a number",
    );
    let r = plugin.run(&update_workload(
        "deploy/shop",
        "app",
        V2,
        &["--gate", GATE, "--prometheus", "prometheus:9090"],
    ))?;
    r.assert_code(2)
        .assert_stderr_has("--prometheus \"prometheus:9090\" is not a URL");
    assert_eq!(writes(&standin), Vec::<String>::new());
    Ok(())
}
