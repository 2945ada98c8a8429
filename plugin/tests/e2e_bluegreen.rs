//! End-to-end `blue-green` against a real cluster (`ROLLOUT_SAFE_E2E_KUBECONFIG`; without one
//! each test reports itself skipped and passes). Each test watches the Service's EndpointSlices
//! for its whole run and asserts the safety figure: once the Service had a ready endpoint it
//! never had zero, through labelling, narrowing, switching and rollback.

mod common;
mod e2e_support;

use std::time::Duration;

use common::{TestResult, blue_green};
use e2e_support::{
    Env, annotation, assert_never_ready, finish, good_1, good_2, image_of, is_green, replicas_of,
    selector_color, unready,
};

const PHASE: &str = "rollout-safe.dev/blue-green-phase";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_bluegreen_switch_verifies_endpoints_and_never_empties_the_service() -> TestResult {
    let test = "e2e_bluegreen_switch_verifies_endpoints_and_never_empties_the_service";
    let Some((env, ep)) = Env::shop_or_skip(test, "bg-switch", 3).await else {
        return Ok(());
    };
    let r = env
        .run(&blue_green(&good_2(), "5s", "0s", &["--timeout", "5m"]))
        .await?;
    r.assert_code(0).assert_stderr_has("endpoints verified");
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
    let samples = ep.finish().await;
    // Before the switch no green pod was ready in the Service.
    let first_green = samples
        .iter()
        .position(|s| s.ready.iter().any(|p| is_green(p)))
        .unwrap();
    assert!(samples[..first_green].iter().all(|s| !s.ready.is_empty()));
    env.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_bluegreen_rollback_within_the_window() -> TestResult {
    let Some((env, ep)) =
        Env::shop_or_skip("e2e_bluegreen_rollback_within_the_window", "bg-rollback", 2).await
    else {
        return Ok(());
    };
    let child = env.spawn(&blue_green(&good_2(), "3s", "10m", &["--timeout", "5m"]))?;
    env.wait_for("the switch", Duration::from_secs(300), || async {
        annotation(&env.service().await, PHASE).as_deref() == Some("switched")
    })
    .await;
    env.run(&["blue-green", "rollback", "deploy/shop", "--timeout", "3m"])
        .await?
        .assert_code(0);
    let first = finish(child).await?;
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
    ep.finish().await;
    env.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_bluegreen_unready_colour_never_receives_traffic() -> TestResult {
    let test = "e2e_bluegreen_unready_colour_never_receives_traffic";
    let Some((env, ep)) = Env::shop_or_skip(test, "bg-unready", 2).await else {
        return Ok(());
    };
    let budget = ["--readiness-budget", "30s", "--timeout", "5m"];
    env.run(&blue_green(&unready(), "5s", "0s", &budget))
        .await?
        .assert_code(1);
    let svc = env.service().await;
    assert_eq!(selector_color(&svc).as_deref(), Some("blue"));
    assert_eq!(annotation(&svc, PHASE).as_deref(), Some("abandoned"));
    assert_eq!(replicas_of(&env.deployment("shop-green").await.unwrap()), 0);
    assert_eq!(replicas_of(&env.deployment("shop").await.unwrap()), 2);
    let samples = ep.finish().await;
    assert_never_ready(&samples, "shop-green-");
    env.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_bluegreen_interrupted_switch_is_resumed() -> TestResult {
    let Some((env, ep)) = Env::shop_or_skip(
        "e2e_bluegreen_interrupted_switch_is_resumed",
        "bg-resume",
        2,
    )
    .await
    else {
        return Ok(());
    };
    // Ctrl-C while green bakes (it has no traffic yet).
    let child = env.spawn(&blue_green(&good_2(), "30m", "0s", &["--timeout", "40m"]))?;
    env.wait_ready_replicas("shop-green", 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    child.interrupt()?;
    finish(child).await?.assert_code(4);
    let svc = env.service().await;
    assert_eq!(annotation(&svc, PHASE).as_deref(), Some("deploying"));
    assert_eq!(selector_color(&svc).as_deref(), Some("blue"));
    let uid = env.deployment("shop-green").await.unwrap().metadata.uid;
    // The re-run resumes from the annotations: same green Deployment, switch, verify, scale down.
    let r = env
        .run(&blue_green(&good_2(), "2s", "0s", &["--timeout", "5m"]))
        .await?;
    r.assert_code(0).assert_stderr_has("resuming");
    assert_eq!(
        env.deployment("shop-green").await.unwrap().metadata.uid,
        uid
    );
    let svc = env.service().await;
    assert_eq!(selector_color(&svc).as_deref(), Some("green"));
    assert_eq!(annotation(&svc, PHASE).as_deref(), Some("finished"));
    ep.finish().await;
    env.cleanup().await;
    Ok(())
}
