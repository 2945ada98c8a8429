//! End-to-end tests of `update`, `undo`, `history` and the automatic rollback against a real
//! cluster. They run only when `ROLLOUT_SAFE_E2E_KUBECONFIG` names a kubeconfig (any cluster
//! whose nodes can pull public images: kind, k3d, minikube…); otherwise each test reports itself
//! skipped and passes. Namespaces and images: see `e2e_support/mod.rs`.

mod common;
mod e2e_support;

use common::TestResult;
use e2e_support::{Env, crash, good_1, good_2, image_of, unready};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams};
use rollout_safe_standin::{Run, RunError};
use serde_json::{Value, json};

/// `update deploy/web --image web=<image> <extra>`.
fn update(image: &str, extra: &[&str]) -> Vec<String> {
    common::update_workload("deploy/web", "web", image, extra)
}

/// An update to `image` that fails (exit 1) with `reason`, or with TooManyRestarts when the
/// cluster restarted the container faster than it reported the reason.
async fn failing_update(
    env: &Env,
    image: &str,
    extra: &[&str],
    reason: &str,
) -> Result<Run, RunError> {
    let r = env.run(&update(image, extra)).await?;
    r.assert_code(1);
    assert!(
        r.stderr.contains(reason) || r.stderr.contains("TooManyRestarts"),
        "{}",
        r.stderr
    );
    Ok(r)
}

async fn web(env: &Env) -> Deployment {
    env.deployment("web").await.expect("deploy/web exists")
}

fn cause_of(d: &Deployment) -> String {
    d.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("kubernetes.io/change-cause"))
        .cloned()
        .unwrap_or_default()
}

fn available(d: &Deployment) -> bool {
    let s = d.status.clone().unwrap_or_default();
    s.observed_generation >= d.metadata.generation
        && s.updated_replicas == d.spec.replicas
        && s.available_replicas == d.spec.replicas
        && s.replicas == d.spec.replicas
}

/// `failure → rollback: 1.4s` in the plugin's output.
fn latency(stderr: &str) -> Option<f64> {
    let rest = &stderr[stderr.find("failure → rollback: ")? + "failure → rollback: ".len()..];
    rest[..rest.find('s')?].parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_good_update() -> TestResult {
    let Some(env) = Env::web_or_skip("e2e_good_update", "good").await else {
        return Ok(());
    };
    env.run(&update(&good_2(), &["--timeout", "5m"]))
        .await?
        .assert_code(0);
    let d = web(&env).await;
    assert_eq!(image_of(&d), good_2());
    assert!(available(&d));
    assert!(
        cause_of(&d).contains(&format!("image web={}", good_2())),
        "{}",
        cause_of(&d)
    );
    env.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_crashing_image_detected_and_rolled_back() -> TestResult {
    let Some(env) = Env::web_or_skip("e2e_crashing_image_detected_and_rolled_back", "crash").await
    else {
        return Ok(());
    };
    let r = failing_update(&env, &crash(), &["--timeout", "5m"], "CrashLoopBackOff").await?;
    let secs = latency(&r.stderr).expect("the failure → rollback latency is printed");
    println!(
        "measured failure → rollback latency: {secs:.1}s (target ≤ 10s; kubectl's default deadline: 600s)"
    );
    assert!(secs <= 10.0, "failure → rollback took {secs}s");
    let d = web(&env).await;
    assert_eq!(image_of(&d), good_1(), "rolled back to the previous image");
    assert!(available(&d), "healthy again after the rollback");
    assert!(
        cause_of(&d).starts_with("rollback to revision 1"),
        "{}",
        cause_of(&d)
    );
    env.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_never_ready_image_rolled_back() -> TestResult {
    let Some(env) = Env::web_or_skip("e2e_never_ready_image_rolled_back", "unready").await else {
        return Ok(());
    };
    let budget = ["--readiness-budget", "20s", "--timeout", "5m"];
    let r = failing_update(&env, &unready(), &budget, "NeverReady").await?;
    if let Some(secs) = latency(&r.stderr) {
        println!(
            "measured failure → rollback latency (readiness budget 20s counted from when the pod started): {secs:.1}s"
        );
    }
    let d = web(&env).await;
    assert_eq!(image_of(&d), good_1());
    assert!(available(&d));
    env.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_undo_to_revision_and_history_with_causes() -> TestResult {
    let Some(env) = Env::web_or_skip("e2e_undo_to_revision_and_history_with_causes", "undo").await
    else {
        return Ok(());
    };
    env.run(&update(&good_2(), &["--timeout", "5m"]))
        .await?
        .assert_code(0);
    let blue = update(
        &good_2(),
        &[
            "--env",
            "web:COLOR=blue",
            "--cause",
            "turn blue",
            "--timeout",
            "5m",
        ],
    );
    env.run(&blue).await?.assert_code(0);

    let r = env.run(&["history", "deploy/web", "-o", "json"]).await?;
    let h: Vec<Value> = serde_json::from_str(&r.assert_code(0).stdout)?;
    let causes: Vec<&str> = h
        .iter()
        .map(|r| r["changeCause"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        h.iter()
            .map(|r| r["revision"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(causes[0], "initial release");
    assert!(
        causes[1].contains(&format!("image web={}", good_2())),
        "{causes:?}"
    );
    assert_eq!(causes[2], "turn blue");
    assert_eq!(h[2]["current"], json!(true));

    env.run(&[
        "undo",
        "deploy/web",
        "--to-revision",
        "1",
        "--timeout",
        "5m",
    ])
    .await?
    .assert_code(0);
    let d = web(&env).await;
    assert_eq!(image_of(&d), good_1());
    assert!(
        d.spec.template.spec.as_ref().unwrap().containers[0]
            .env
            .is_none()
    );
    assert!(
        cause_of(&d).starts_with("rollback to revision 1 (initial release)"),
        "{}",
        cause_of(&d)
    );
    let labels = d
        .spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .as_ref()
        .unwrap();
    assert!(!labels.contains_key("pod-template-hash"));
    assert!(available(&d));
    let r = env.run(&["history", "deploy/web"]).await?;
    r.assert_stdout_has("rollback to revision 1 (initial release)");
    env.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_conflict_during_update() -> TestResult {
    let Some(env) = Env::web_or_skip("e2e_conflict_during_update", "conflict").await else {
        return Ok(());
    };
    // Once the plugin has read the Deployment (and before it writes), someone else annotates
    // it, so the plugin's precondition is stale.
    let api = env.deployments();
    let other_writer = async move {
        let annotate =
            json!({"metadata": {"annotations": {"example.com/other-writer": "was here"}}});
        api.patch("web", &PatchParams::default(), &Patch::Merge(annotate))
            .await
            .expect("the concurrent write");
    };
    let r = env
        .run_with_write_in_between(&update(&good_2(), &["--timeout", "5m"]), other_writer)
        .await?;
    r.assert_code(0)
        .assert_stderr_has("conflict: deployment/web changed since it was read");
    let d = web(&env).await;
    assert_eq!(image_of(&d), good_2());
    assert_eq!(
        d.metadata
            .annotations
            .as_ref()
            .unwrap()
            .get("example.com/other-writer")
            .map(String::as_str),
        Some("was here"),
        "the other write is not clobbered"
    );
    env.cleanup().await;
    Ok(())
}
