//! End-to-end `canary` against a real cluster (`ROLLOUT_SAFE_E2E_KUBECONFIG`; each test prints
//! "skipped: ROLLOUT_SAFE_E2E_KUBECONFIG unset" and passes without one).

mod e2e_bluegreen_support;

use std::time::Duration;

use e2e_bluegreen_support::{
    Env, crash, finish, good_1, good_2, image_of, interrupt, kubeconfig, replicas_of,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_canary_steps_then_promotes() {
    if kubeconfig().is_none() {
        return;
    }
    let env = Env::new("canary-steps").await;
    env.create_shop(4).await;
    let ep = env.watch_endpoints();
    let r = env
        .run(&[
            "canary",
            "deploy/shop",
            "--image",
            &format!("app={}", good_2()),
            "--steps",
            "25,50,100",
            "--interval",
            "5s",
            "--timeout",
            "8m",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    for line in [
        "step 25%: canary 1, stable 3 (of 4)",
        "step 50%: canary 2, stable 2 (of 4)",
        "step 100%: canary 4, stable 0 (of 4)",
    ] {
        assert!(r.stderr.contains(line), "{line}: {}", r.stderr);
    }
    let stable = env.deployment("shop").await.unwrap();
    assert_eq!((replicas_of(&stable), image_of(&stable)), (4, good_2()));
    assert!(env.deployment("shop-canary").await.is_none());
    tokio::time::sleep(Duration::from_secs(3)).await;
    ep.assert_never_empty();
    ep.stop();
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_canary_failure_and_abort_restore_the_stable_replicas() {
    if kubeconfig().is_none() {
        return;
    }
    let env = Env::new("canary-abort").await;
    env.create_shop(4).await;
    let ep = env.watch_endpoints();
    // A crashing canary fails its first step and is removed.
    let r = env
        .run(&[
            "canary",
            "deploy/shop",
            "--image",
            &format!("app={}", crash()),
            "--steps",
            "25,100",
            "--interval",
            "5s",
            "--timeout",
            "5m",
        ])
        .await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    let stable = env.deployment("shop").await.unwrap();
    assert_eq!((replicas_of(&stable), image_of(&stable)), (4, good_1()));
    assert!(env.deployment("shop-canary").await.is_none());
    // `canary abort` during a step.
    let child = env.spawn(&[
        "canary",
        "deploy/shop",
        "--image",
        &format!("app={}", good_2()),
        "--steps",
        "50,100",
        "--interval",
        "30m",
        "--timeout",
        "40m",
    ]);
    env.wait_for("the 50% step", Duration::from_secs(300), || async {
        env.deployment("shop-canary")
            .await
            .and_then(|d| d.status)
            .is_some_and(|s| s.ready_replicas == Some(2))
    })
    .await;
    interrupt(&child);
    let r = finish(child).await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    let r = env
        .run(&["canary", "abort", "deploy/shop", "--timeout", "3m"])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let stable = env.deployment("shop").await.unwrap();
    assert_eq!((replicas_of(&stable), image_of(&stable)), (4, good_1()));
    assert!(env.deployment("shop-canary").await.is_none());
    tokio::time::sleep(Duration::from_secs(3)).await;
    ep.assert_never_empty();
    ep.stop();
    env.cleanup().await;
}
