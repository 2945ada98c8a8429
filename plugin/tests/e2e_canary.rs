//! End-to-end `canary` against a real cluster (`ROLLOUT_SAFE_E2E_KUBECONFIG`; without one each
//! test reports itself skipped and passes).

mod common;
mod e2e_support;

use common::{TestResult, canary};
use e2e_support::{Env, crash, finish, good_1, good_2, image_of, replicas_of};
use rollout_safe_standin::{Run, RunError};

/// `canary deploy/shop --image app=<image> --interval 5s --steps <steps> --timeout <timeout>`.
async fn run_canary(env: &Env, image: &str, steps: &str, timeout: &str) -> Result<Run, RunError> {
    env.run(&canary(
        "deploy/shop",
        image,
        "5s",
        &["--steps", steps, "--timeout", timeout],
    ))
    .await
}

/// The stable Deployment has all 4 replicas of `image`, and no canary is left.
async fn assert_stable(env: &Env, image: String) {
    let stable = env.deployment("shop").await.unwrap();
    assert_eq!((replicas_of(&stable), image_of(&stable)), (4, image));
    assert!(env.deployment("shop-canary").await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_canary_steps_then_promotes() -> TestResult {
    let Some((env, ep)) =
        Env::shop_or_skip("e2e_canary_steps_then_promotes", "canary-steps", 4).await
    else {
        return Ok(());
    };
    let r = run_canary(&env, &good_2(), "25,50,100", "8m").await?;
    r.assert_code(0)
        .assert_stderr_has("step 25%: canary 1, stable 3 (of 4)")
        .assert_stderr_has("step 50%: canary 2, stable 2 (of 4)")
        .assert_stderr_has("step 100%: canary 4, stable 0 (of 4)");
    assert_stable(&env, good_2()).await;
    ep.finish().await;
    env.cleanup().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_canary_failure_and_abort_restore_the_stable_replicas() -> TestResult {
    let test = "e2e_canary_failure_and_abort_restore_the_stable_replicas";
    let Some((env, ep)) = Env::shop_or_skip(test, "canary-abort", 4).await else {
        return Ok(());
    };
    // A crashing canary fails its first step and is removed.
    let r = run_canary(&env, &crash(), "25,100", "5m").await?;
    r.assert_code(1);
    assert_stable(&env, good_1()).await;
    // `canary abort` during a step.
    let child = env.spawn(&canary(
        "deploy/shop",
        &good_2(),
        "30m",
        &["--steps", "50,100", "--timeout", "40m"],
    ))?;
    // The 50% step.
    env.wait_ready_replicas("shop-canary", 2).await;
    child.interrupt()?;
    finish(child).await?.assert_code(4);
    env.run(&["canary", "abort", "deploy/shop", "--timeout", "3m"])
        .await?
        .assert_code(0);
    assert_stable(&env, good_1()).await;
    ep.finish().await;
    env.cleanup().await;
    Ok(())
}
