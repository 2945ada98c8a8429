//! End-to-end `blue-green` against a real cluster (`ROLLOUT_SAFE_E2E_KUBECONFIG`; each test prints
//! "skipped: ROLLOUT_SAFE_E2E_KUBECONFIG unset" and passes without one). Each test watches the
//! Service's EndpointSlices for its whole run and asserts the safety figure: once the Service had
//! a ready endpoint it never had zero, through labelling, narrowing, switching and rollback.

mod e2e_bluegreen_support;

use std::time::Duration;

use e2e_bluegreen_support::{
    Env, annotation, finish, good_1, good_2, image_of, interrupt, is_green, kubeconfig,
    replicas_of, selector_color, unready,
};

const PHASE: &str = "rollout-safe.dev/blue-green-phase";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_bluegreen_switch_verifies_endpoints_and_never_empties_the_service() {
    if kubeconfig().is_none() {
        return;
    }
    let env = Env::new("bg-switch").await;
    env.create_shop(3).await;
    let ep = env.watch_endpoints();
    let r = env
        .run(&[
            "blue-green",
            "deploy/shop",
            "--service",
            "shop",
            "--image",
            &format!("app={}", good_2()),
            "--bake",
            "5s",
            "--keep-old",
            "0s",
            "--timeout",
            "5m",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("endpoints verified"), "{}", r.stderr);
    let svc = env.service().await;
    assert_eq!(selector_color(&svc).as_deref(), Some("green"));
    assert_eq!(annotation(&svc, PHASE).as_deref(), Some("finished"));
    let ready = env.ready_endpoints().await;
    assert_eq!(ready.len(), 3);
    assert!(ready.iter().all(|p| is_green(p)), "{ready:?}");
    assert_eq!(
        image_of(&env.deployment("shop-green").await.unwrap()),
        good_2()
    );
    assert_eq!(replicas_of(&env.deployment("shop").await.unwrap()), 0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    ep.assert_never_empty();
    // Before the switch no green pod was ready in the Service.
    let samples = ep.samples();
    let first_green = samples
        .iter()
        .position(|s| s.ready.iter().any(|p| is_green(p)))
        .unwrap();
    assert!(samples[..first_green].iter().all(|s| !s.ready.is_empty()));
    ep.stop();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_bluegreen_rollback_within_the_window() {
    if kubeconfig().is_none() {
        return;
    }
    let env = Env::new("bg-rollback").await;
    env.create_shop(2).await;
    let ep = env.watch_endpoints();
    let child = env.spawn(&[
        "blue-green",
        "deploy/shop",
        "--service",
        "shop",
        "--image",
        &format!("app={}", good_2()),
        "--bake",
        "3s",
        "--keep-old",
        "10m",
        "--timeout",
        "5m",
    ]);
    env.wait_for("the switch", Duration::from_secs(300), || async {
        annotation(&env.service().await, PHASE).as_deref() == Some("switched")
    })
    .await;
    let r = env
        .run(&["blue-green", "rollback", "deploy/shop", "--timeout", "3m"])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let first = finish(child).await;
    assert_eq!(
        first.code, 0,
        "the waiting run sees the rollback: {}",
        first.stderr
    );
    let svc = env.service().await;
    assert_eq!(selector_color(&svc).as_deref(), Some("blue"));
    assert_eq!(annotation(&svc, PHASE).as_deref(), Some("rolled-back"));
    let blue = env.deployment("shop").await.unwrap();
    assert_eq!((replicas_of(&blue), image_of(&blue)), (2, good_1()));
    let ready = env.ready_endpoints().await;
    assert!(
        !ready.is_empty() && ready.iter().all(|p| !is_green(p)),
        "{ready:?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    ep.assert_never_empty();
    ep.stop();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_bluegreen_unready_colour_never_receives_traffic() {
    if kubeconfig().is_none() {
        return;
    }
    let env = Env::new("bg-unready").await;
    env.create_shop(2).await;
    let ep = env.watch_endpoints();
    let r = env
        .run(&[
            "blue-green",
            "deploy/shop",
            "--service",
            "shop",
            "--image",
            &format!("app={}", unready()),
            "--bake",
            "5s",
            "--keep-old",
            "0s",
            "--readiness-budget",
            "30s",
            "--timeout",
            "5m",
        ])
        .await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    let svc = env.service().await;
    assert_eq!(selector_color(&svc).as_deref(), Some("blue"));
    assert_eq!(annotation(&svc, PHASE).as_deref(), Some("abandoned"));
    assert_eq!(replicas_of(&env.deployment("shop-green").await.unwrap()), 0);
    assert_eq!(replicas_of(&env.deployment("shop").await.unwrap()), 2);
    tokio::time::sleep(Duration::from_secs(3)).await;
    ep.assert_never_ready("shop-green-");
    ep.assert_never_empty();
    ep.stop();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_bluegreen_interrupted_switch_is_resumed() {
    if kubeconfig().is_none() {
        return;
    }
    let env = Env::new("bg-resume").await;
    env.create_shop(2).await;
    let ep = env.watch_endpoints();
    // Ctrl-C while green bakes (it has no traffic yet).
    let child = env.spawn(&[
        "blue-green",
        "deploy/shop",
        "--service",
        "shop",
        "--image",
        &format!("app={}", good_2()),
        "--bake",
        "30m",
        "--keep-old",
        "0s",
        "--timeout",
        "40m",
    ]);
    env.wait_for("green ready", Duration::from_secs(300), || async {
        env.deployment("shop-green")
            .await
            .and_then(|d| d.status)
            .is_some_and(|s| s.ready_replicas == Some(2))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    interrupt(&child);
    let r = finish(child).await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    let svc = env.service().await;
    assert_eq!(annotation(&svc, PHASE).as_deref(), Some("deploying"));
    assert_eq!(selector_color(&svc).as_deref(), Some("blue"));
    let uid = env.deployment("shop-green").await.unwrap().metadata.uid;
    // The re-run resumes from the annotations: same green Deployment, switch, verify, scale down.
    let r = env
        .run(&[
            "blue-green",
            "deploy/shop",
            "--service",
            "shop",
            "--image",
            &format!("app={}", good_2()),
            "--bake",
            "2s",
            "--keep-old",
            "0s",
            "--timeout",
            "5m",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("resuming"), "{}", r.stderr);
    assert_eq!(
        env.deployment("shop-green").await.unwrap().metadata.uid,
        uid
    );
    let svc = env.service().await;
    assert_eq!(selector_color(&svc).as_deref(), Some("green"));
    assert_eq!(annotation(&svc, PHASE).as_deref(), Some("finished"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    ep.assert_never_empty();
    ep.stop();
    env.cleanup().await;
}
