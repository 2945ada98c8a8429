//! End-to-end tests of StatefulSets and DaemonSets against a real cluster: a broken StatefulSet
//! update detected, rolled back and its stuck pod replaced, with both revisions in `history`;
//! `undo ds/… --to-revision 1`; a partition canary that stops at its first step. They run only
//! when `ROLLOUT_SAFE_E2E_KUBECONFIG` names a kubeconfig; otherwise each test reports itself
//! skipped and passes. Namespaces and images: see `e2e_support/mod.rs`.

mod common;
mod e2e_support;

use common::TestResult;
use e2e_support::{Env, crash, good_1, good_2, unready};
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, PostParams};
use serde_json::{Value, json};

fn container(name: &str, image: &str) -> Value {
    json!({"name": name, "image": image, "ports": [{"name": "http", "containerPort": 80}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 2},
        "livenessProbe": {"httpGet": {"path": "/", "port": "http"}, "initialDelaySeconds": 30, "periodSeconds": 10, "failureThreshold": 3},
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}}})
}

/// StatefulSet `db` (3 replicas, container `db`, the first good image), rolled out.
async fn create_db(env: &Env) {
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": {"name": "db", "annotations": {"kubernetes.io/change-cause": "initial release"}},
        "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {
                "terminationGracePeriodSeconds": 30, "containers": [container("db", &good_1())]}}}
    }))
    .unwrap();
    let api: Api<StatefulSet> = Api::namespaced(env.client.clone(), &env.ns);
    api.create(&PostParams::default(), &sts).await.unwrap();
    let r = env
        .run(&["status", "sts/db", "--watch", "--timeout", "5m"])
        .await
        .unwrap();
    assert_eq!(r.code, 0, "sts/db never rolled out: {}", r.stderr);
}

/// DaemonSet `agent` (container `agent`, the first good image), rolled out.
async fn create_agent(env: &Env) {
    let ds: DaemonSet = serde_json::from_value(json!({
        "metadata": {"name": "agent", "annotations": {"kubernetes.io/change-cause": "initial release"}},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {
                "terminationGracePeriodSeconds": 30, "containers": [container("agent", &good_1())]}}}
    }))
    .unwrap();
    let api: Api<DaemonSet> = Api::namespaced(env.client.clone(), &env.ns);
    api.create(&PostParams::default(), &ds).await.unwrap();
    let r = env
        .run(&["status", "ds/agent", "--watch", "--timeout", "5m"])
        .await
        .unwrap();
    assert_eq!(r.code, 0, "ds/agent never rolled out: {}", r.stderr);
}

async fn pod_images(env: &Env, app: &str) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &env.ns);
    let list = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap();
    list.items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.spec.as_ref()?.containers.first()?.image.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_sts_broken_update_is_rolled_back_and_the_stuck_pod_replaced() -> TestResult {
    let Some(env) = Env::or_skip(
        "e2e_sts_broken_update_is_rolled_back_and_the_stuck_pod_replaced",
        "sts",
    )
    .await
    else {
        return Ok(());
    };
    create_db(&env).await;
    let r = env
        .run(&[
            "update",
            "sts/db",
            "--image",
            &format!("db={}", unready()),
            "--readiness-budget",
            "30s",
            "--timeout",
            "5m",
        ])
        .await?;
    r.assert_code(1)
        .assert_stderr_has("rolling back statefulset/db")
        .assert_stderr_has("deleted pod db-2")
        .assert_stderr_has("healthy again");
    assert!(pod_images(&env, "db").await.iter().all(|i| *i == good_1()));
    let h = env.run(&["history", "sts/db", "-o", "json"]).await?;
    h.assert_code(0);
    let v = h.json()?;
    let causes: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["changeCause"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(causes.iter().any(|c| c == "initial release"), "{causes:?}");
    assert!(causes.iter().any(|c| c.contains(&unready())), "{causes:?}");
    env.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_undo_ds_to_revision_1_restores_the_old_image() -> TestResult {
    let Some(env) = Env::or_skip("e2e_undo_ds_to_revision_1_restores_the_old_image", "ds").await
    else {
        return Ok(());
    };
    create_agent(&env).await;
    env.run(&[
        "update",
        "ds/agent",
        "--image",
        &format!("agent={}", good_2()),
        "--timeout",
        "5m",
    ])
    .await?
    .assert_code(0);
    env.run(&["undo", "ds/agent", "--to-revision", "1", "--timeout", "5m"])
        .await?
        .assert_code(0)
        .assert_stderr_has("rolled back to revision 1");
    assert!(
        pod_images(&env, "agent")
            .await
            .iter()
            .all(|i| *i == good_1())
    );
    env.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_partition_canary_stops_at_its_first_step() -> TestResult {
    let Some(env) =
        Env::or_skip("e2e_partition_canary_stops_at_its_first_step", "canary-sts").await
    else {
        return Ok(());
    };
    create_db(&env).await;
    let r = env
        .run(&[
            "canary",
            "sts/db",
            "--image",
            &format!("db={}", crash()),
            "--steps",
            "1,2,100%",
            "--timeout",
            "5m",
        ])
        .await?;
    r.assert_code(1)
        .assert_stderr_has("step 1: partition 2")
        .assert_stderr_lacks("step 2: partition 1")
        .assert_stderr_has("canary failed");
    let api: Api<StatefulSet> = Api::namespaced(env.client.clone(), &env.ns);
    let db = api.get("db").await?;
    let partition = db
        .spec
        .update_strategy
        .and_then(|u| u.rolling_update)
        .and_then(|r| r.partition);
    assert_eq!(partition, Some(0));
    assert!(pod_images(&env, "db").await.iter().all(|i| *i == good_1()));
    env.cleanup().await;
    Ok(())
}
