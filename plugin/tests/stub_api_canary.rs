//! `canary` against the stand-in API server (`rollout-safe-standin`).

mod common;

use std::time::Duration;

use common::{
    COLOR, TestResult, annotation, blue_green, canary, deployment, image, min_ready, replicas,
    shop, spawn_until, traffic, writes,
};
use rollout_safe_standin::store::EventType;
use rollout_safe_standin::traffic::service_history;
use rollout_safe_standin::{Standin, Verb};
use serde_json::json;

const V1: &str = "registry.example.com/team/shop:1.0.0";
const V2: &str = "registry.example.com/team/shop:2.0.0";
const CRASH: &str = "registry.example.com/team/shop:2.0.0-crash";
const PHASE: &str = "rollout-safe.dev/canary-phase";
const WAIT: Duration = Duration::from_secs(30);

/// `(canary replicas, stable replicas)` each time either Deployment's spec.replicas changed.
fn replica_steps(standin: &Standin) -> Vec<(i64, i64)> {
    standin.read(|s| {
        let mut canary = 0;
        let mut stable = -1;
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

#[test]
fn stub_api_canary_steps_then_promotes_with_the_safe_update() -> TestResult {
    let (standin, plugin) = shop(4, V1)?;
    let r = plugin.run(&canary("deploy/shop", V2, "1s", &["--steps", "25,50,100"]))?;
    r.assert_code(0)
        .assert_stderr_has("step 25%: canary 1, stable 3 (of 4)")
        .assert_stderr_has("step 50%: canary 2, stable 2 (of 4)")
        .assert_stderr_has("step 100%: canary 4, stable 0 (of 4)")
        .assert_stdout_has("canary promoted");
    // Canary up first, stable down after: the total never drops below 4.
    let steps = replica_steps(&standin);
    let mut canary_sizes: Vec<i64> = steps.iter().map(|s| s.0).filter(|c| *c > 0).collect();
    canary_sizes.dedup();
    assert_eq!(canary_sizes, [1, 2, 4], "{steps:?}");
    assert!(steps.iter().skip(1).all(|(c, s)| c + s >= 4), "{steps:?}");
    assert!(min_ready(&standin) >= 4, "{:#?}", traffic(&standin));
    // The canary's pods carry every label the Service selects, plus the track label.
    let stable = deployment(&standin, "shop");
    assert_eq!((replicas(&stable), image(&stable)), (4, V2.to_owned()));
    assert!(common::cause_of(&stable).contains("canary promoted"));
    assert_eq!(annotation(&stable, PHASE).as_deref(), Some("done"));
    assert!(
        standin.get("deployments", "shop-canary").is_none(),
        "canary deleted"
    );
    assert!(standin.pods_of("shop-canary").is_empty());
    // The promotion went through `update`: a JSON Patch guarded by the resourceVersion.
    let promoted = standin
        .requests()
        .into_iter()
        .find(|r| {
            r.method == "PATCH" && r.uri().contains("/deployments/shop?") && r.body.contains(V2)
        })
        .expect("the stable Deployment was patched to the new image");
    assert!(
        promoted
            .content_type
            .starts_with("application/json-patch+json")
    );
    let ops = promoted.json_body().expect("a JSON body");
    assert_eq!(ops[0]["op"], "test");
    assert_eq!(ops[0]["path"], "/metadata/resourceVersion");
    // The created canary selected its own pods only.
    let created = standin.requests_with(Verb::Create);
    let c = created[0].json_body().expect("a JSON body");
    assert_eq!(
        c["spec"]["selector"]["matchLabels"],
        json!({"app": "shop", "rollout-safe.dev/track": "canary"})
    );
    assert_eq!(c["spec"]["template"]["metadata"]["labels"]["app"], "shop");

    // Same images again: nothing to do.
    let r = plugin.run(&canary("deploy/shop", V2, "1s", &[]))?;
    r.assert_code(0).assert_stdout_has("nothing to canary");
    Ok(())
}

#[test]
fn stub_api_canary_failing_step_aborts() -> TestResult {
    let (standin, plugin) = shop(4, V1)?;
    let r = plugin.run(&canary(
        "deploy/shop",
        CRASH,
        "1s",
        &["--steps", "10,50,100", "--timeout", "60s"],
    ))?;
    r.assert_code(1)
        .assert_stderr_has("CrashLoopBackOff")
        .assert_stderr_has("canary aborted");
    let stable = deployment(&standin, "shop");
    assert_eq!((replicas(&stable), image(&stable)), (4, V1.to_owned()));
    assert_eq!(annotation(&stable, PHASE).as_deref(), Some("aborted"));
    assert!(annotation(&stable, "rollout-safe.dev/canary-total").is_none());
    assert!(standin.get("deployments", "shop-canary").is_none());
    let steps = replica_steps(&standin);
    assert!(
        steps.iter().all(|(c, _)| *c <= 1),
        "never past the first step: {steps:?}"
    );
    assert!(min_ready(&standin) >= 4);
    Ok(())
}

#[test]
fn stub_api_canary_interrupt_resume_and_abort() -> TestResult {
    let (standin, plugin) = shop(4, V1)?;
    let start = |interval: &str| canary("deploy/shop", V2, interval, &["--steps", "25,50,100"]);
    // Ctrl-C while the first step holds: the state stays, resumable.
    let child = spawn_until(
        &plugin,
        &start("1h"),
        "deployment/shop-canary: all 1 new pods ready; holding until",
    )?;
    assert_eq!(replicas(&deployment(&standin, "shop")), 3);
    child.interrupt()?;
    child.finish()?.assert_code(4);
    let stable = deployment(&standin, "shop");
    assert_eq!(annotation(&stable, PHASE).as_deref(), Some("running"));
    assert_eq!(
        annotation(&stable, "rollout-safe.dev/canary-total").as_deref(),
        Some("4")
    );

    // Other images while it is under way: refused.
    let r = plugin.run(&canary("deploy/shop", "other:1", "1s", &[]))?;
    r.assert_code(2).assert_stderr_has("under way");

    // Resume (step 25% was not passed: it is held again, 3s from when its pod became ready),
    // Ctrl-C again while step 50% holds.
    let child = plugin.spawn(&start("3s"))?;
    standin.wait_until(WAIT, "step 50% on resume", |s| {
        s.get("deployments", "api", "shop").is_some_and(|d| {
            d["metadata"]["annotations"]["rollout-safe.dev/canary-step"] == "25"
                && d["spec"]["replicas"] == 2
        })
    })?;
    child.interrupt()?;
    let r = child.finish()?;
    r.assert_code(4)
        .assert_stderr_has("resuming the canary of deployment/shop")
        // The canary is reused.
        .assert_stderr_lacks("shop-canary created");
    assert_eq!(
        standin.requests_with(Verb::Create).len(),
        1,
        "the canary was created once"
    );

    // Abort: the stable Deployment gets its 4 replicas back, the canary goes.
    plugin
        .run(&["canary", "abort", "deploy/shop"])?
        .assert_code(0);
    let stable = deployment(&standin, "shop");
    assert_eq!((replicas(&stable), image(&stable)), (4, V1.to_owned()));
    assert_eq!(annotation(&stable, PHASE).as_deref(), Some("aborted"));
    assert!(standin.get("deployments", "shop-canary").is_none());
    assert!(min_ready(&standin) >= 4, "{:#?}", traffic(&standin));
    // Idempotent.
    let r = plugin.run(&["canary", "abort", "deploy/shop"])?;
    r.assert_code(0).assert_stdout_has("no canary");
    Ok(())
}

#[test]
fn stub_api_canary_and_blue_green_do_not_mix() -> TestResult {
    let (standin, plugin) = shop(2, V1)?;
    plugin.run(&blue_green(V2, "0s", "0s", &[]))?.assert_code(0);
    // The original Deployment is now the idle blue colour: no canary there.
    let r = plugin.run(&canary("deploy/shop", "shop:3", "1s", &[]))?;
    r.assert_code(2).assert_stderr_has("idle blue colour");
    // On the live colour, the canary's pods join the Service's endpoints…
    let child = plugin.spawn(&canary(
        "deploy/shop-green",
        "shop:3",
        "1h",
        &["--steps", "50,100"],
    ))?;
    standin.wait_until(WAIT, "the canary in the Service", |s| {
        service_history(s, "api", "shop", COLOR)
            .last()
            .is_some_and(|v| v.ready.keys().any(|p| p.starts_with("shop-green-canary-")))
    })?;
    // …and no blue-green starts meanwhile.
    let r = plugin.run(&blue_green("shop:3", "0s", "0s", &[]))?;
    r.assert_code(2).assert_stderr_has("canary under way");
    child.interrupt()?;
    child.finish()?.assert_code(4);
    plugin
        .run(&["canary", "abort", "deploy/shop-green-canary"])?
        .assert_code(0);
    let green = deployment(&standin, "shop-green");
    assert_eq!((replicas(&green), image(&green)), (2, V2.to_owned()));
    assert!(standin.get("deployments", "shop-green-canary").is_none());
    assert!(min_ready(&standin) >= 2, "{:#?}", traffic(&standin));
    Ok(())
}

#[test]
fn stub_api_canary_refuses_an_unsafe_spec_before_writing_anything() -> TestResult {
    let (standin, plugin) = shop(4, V1)?;
    standin.modify(|s| common::drop_readiness_probe(s, "shop"))?;
    let r = plugin.run(&canary("deploy/shop", V2, "1s", &[]))?;
    r.assert_code(3)
        .assert_stderr_has("RS101")
        .assert_stderr_has("refusing to start a canary of deployment/shop");
    assert_eq!(writes(&standin), Vec::<String>::new(), "nothing is written");
    assert!(standin.get("deployments", "shop-canary").is_none());
    Ok(())
}
