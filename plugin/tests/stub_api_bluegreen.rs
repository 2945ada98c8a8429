//! `blue-green` against the stand-in API server (`rollout-safe-standin`): the real binary, a
//! kubeconfig pointing at the stand-in, and assertions on what the Service could send traffic to
//! at every moment (replayed from the stand-in's log of Service and EndpointSlice changes).

mod common;

use std::time::Duration;

use common::{
    COLOR, TestResult, annotation, assert_never_without_endpoints, assert_no_traffic_before_switch,
    blue_green, color_of_selector, deployment, first_selecting, image, phase, replicas,
    selector_of, service, shop, spawn_until, traffic, writes,
};
use rollout_safe_standin::controllers::endpointslice::NAME as ENDPOINTSLICE_CONTROLLER;
use rollout_safe_standin::{Fault, LoggedRequest, StaleAnswer, Times, Verb};
use serde_json::json;

const V1: &str = "registry.example.com/team/shop:1.0.0";
const V2: &str = "registry.example.com/team/shop:2.0.0";
const V3: &str = "registry.example.com/team/shop:3.0.0";
const UNREADY: &str = "registry.example.com/team/shop:2.0.0-unready";
const KEEP_UNTIL: &str = "rollout-safe.dev/blue-green-keep-until";
const PREVIOUS: &str = "rollout-safe.dev/blue-green-previous";
const WAIT: Duration = Duration::from_secs(30);

/// Indices of the PATCHes of Service `shop` that switch its selector to `color`.
fn switches_to(reqs: &[LoggedRequest], color: &str) -> Vec<usize> {
    let needle = format!(r#""{COLOR}":"{color}""#);
    reqs.iter()
        .enumerate()
        .filter(|(_, r)| {
            r.method == "PATCH" && r.uri().contains("/services/shop") && r.body.contains(&needle)
        })
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn stub_api_bluegreen_switch_verifies_endpoints_and_alternates() -> TestResult {
    let (standin, plugin) = shop(3, V1)?;
    let r = plugin.run(&blue_green(V2, "1s", "0s", &["-n", "api"]))?;
    r.assert_code(0)
        .assert_stderr_has(
            "selector narrowed from app=shop to app=shop,rollout-safe.dev/color=blue",
        )
        .assert_stderr_has("endpoints verified: 3 ready (3 green)")
        .assert_stdout_has("blue-green done");

    // The original Deployment is blue by its pod labels only: its selector is untouched.
    let blue = deployment(&standin, "shop");
    assert_eq!(
        blue["spec"]["selector"]["matchLabels"],
        json!({"app": "shop"})
    );
    assert_eq!(
        blue["spec"]["template"]["metadata"]["labels"][COLOR],
        "blue"
    );
    assert_eq!(replicas(&blue), 0, "blue scaled down after --keep-old 0s");
    assert_eq!(
        annotation(&blue, "rollout-safe.dev/blue-green-replicas").as_deref(),
        Some("3")
    );
    assert_eq!(image(&blue), V1);
    let green = deployment(&standin, "shop-green");
    assert_eq!(
        green["spec"]["selector"]["matchLabels"],
        json!({"app": "shop", COLOR: "green"})
    );
    assert_eq!((replicas(&green), image(&green)), (3, V2.to_owned()));
    let svc = service(&standin);
    assert_eq!(color_of_selector(&svc).as_deref(), Some("green"));
    assert_eq!(phase(&svc).as_deref(), Some("finished"));
    assert_eq!(
        annotation(&svc, "rollout-safe.dev/blue-green-active").as_deref(),
        Some("green")
    );
    assert_eq!(annotation(&svc, PREVIOUS).as_deref(), Some("blue"));
    assert!(annotation(&svc, "rollout-safe.dev/blue-green-switched-at").is_some());
    assert!(annotation(&svc, KEEP_UNTIL).is_some());

    // The switch was ONE merge patch, guarded by the resourceVersion, carrying the state.
    let reqs = standin.requests();
    let switches = switches_to(&reqs, "green");
    assert_eq!(switches.len(), 1, "{switches:#?}");
    let switch = &reqs[switches[0]];
    let body = switch.json_body().expect("a JSON body");
    assert!(
        switch
            .content_type
            .starts_with("application/merge-patch+json")
    );
    assert!(body["metadata"]["resourceVersion"].is_string(), "{body}");
    assert_eq!(
        body["metadata"]["annotations"]["rollout-safe.dev/blue-green-phase"],
        "switched"
    );
    assert_eq!(body["spec"]["selector"], json!({COLOR: "green"}));
    // …and it was verified through the EndpointSlices afterwards.
    assert!(
        reqs[switches[0]..].iter().any(|r| r.verb == Verb::List
            && r.uri().contains("/endpointslices?")
            && r.uri().contains("kubernetes.io%2Fservice-name%3Dshop")),
        "no EndpointSlice read after the switch"
    );
    assert_never_without_endpoints(&traffic(&standin));
    assert_no_traffic_before_switch(&traffic(&standin), "green");

    // Re-running the same command is a no-op.
    let written = standin.writes().len();
    plugin
        .run(&blue_green(V2, "1s", "0s", &[]))?
        .assert_code(0)
        .assert_stdout_has("nothing to do");
    assert_eq!(written, standin.writes().len());

    // The next blue-green goes into the idle colour: blue (the original Deployment) again.
    plugin.run(&blue_green(V3, "0s", "0s", &[]))?.assert_code(0);
    let blue = deployment(&standin, "shop");
    assert_eq!((replicas(&blue), image(&blue)), (3, V3.to_owned()));
    assert_eq!(replicas(&deployment(&standin, "shop-green")), 0);
    let svc = service(&standin);
    assert_eq!(color_of_selector(&svc).as_deref(), Some("blue"));
    assert_eq!(annotation(&svc, PREVIOUS).as_deref(), Some("green"));
    assert_never_without_endpoints(&traffic(&standin));
    // Every ready endpoint after the last switch is blue and runs V3.
    let last = traffic(&standin)
        .last()
        .cloned()
        .expect("a traffic history");
    assert_eq!(last.ready.len(), 3);
    assert!(last.ready.values().all(|c| c == "blue"));

    // status, as data.
    let r = plugin.run(&["blue-green", "status", "deploy/shop", "-o", "json"])?;
    let st = r.assert_code(0).json()?;
    assert_eq!(st["live"], "blue");
    assert_eq!(st["phase"], "finished");
    assert_eq!(st["endpoints"]["readyLive"], 3);
    assert_eq!(st["colors"][1]["deployment"], "shop-green");
    let r = plugin.run(&["blue-green", "status", "deploy/shop-green"])?;
    r.assert_code(0)
        .assert_stdout_has("behind service/shop")
        .assert_stdout_has("← live");
    Ok(())
}

#[test]
fn stub_api_bluegreen_conflict_on_switch_rereads_and_retries() -> TestResult {
    let (standin, plugin) = shop(2, V1)?;
    let selector_writer = || Fault::ConcurrentWrite {
        resource: "services".into(),
        body_contains: Some("\"selector\"".into()),
        answer: StaleAnswer::Evaluate,
    };
    // The narrowing write is the first selector write: it meets the other writer.
    standin.inject(selector_writer(), Times::Next(1));
    let r = plugin.run(&blue_green(V2, "0s", "0s", &[]))?;
    r.assert_code(0);
    let reqs = standin.requests();
    let selector_writes: Vec<_> = reqs
        .iter()
        .filter(|r| {
            r.method == "PATCH"
                && r.uri().contains("/services/shop")
                && r.body.contains("\"selector\"")
        })
        .collect();
    assert_eq!(
        selector_writes[0].status, 409,
        "the first selector write met the other writer: {selector_writes:#?}"
    );
    assert_eq!(selector_writes[1].status, 200);
    let (a, b) = (
        selector_writes[0].json_body().unwrap(),
        selector_writes[1].json_body().unwrap(),
    );
    assert_ne!(
        a["metadata"]["resourceVersion"], b["metadata"]["resourceVersion"],
        "re-read before retrying"
    );
    r.assert_stderr_has("conflict: service/shop changed since it was read");
    let svc = service(&standin);
    assert_eq!(color_of_selector(&svc).as_deref(), Some("green"));
    assert!(
        annotation(&svc, "example.com/other-writer").is_some(),
        "the other writer's change survives"
    );

    // Now on the switch proper.
    standin.inject(selector_writer(), Times::Next(1));
    plugin
        .run(&blue_green(V3, "0s", "0s", &[]))?
        .assert_code(0)
        .assert_stderr_has("after 2 attempts");
    assert_eq!(
        color_of_selector(&service(&standin)).as_deref(),
        Some("blue")
    );
    assert_never_without_endpoints(&traffic(&standin));
    Ok(())
}

#[test]
fn stub_api_bluegreen_never_ready_colour_is_never_switched() -> TestResult {
    let (standin, plugin) = shop(3, V1)?;
    let r = plugin.run(&blue_green(
        UNREADY,
        "1s",
        "0s",
        &["--readiness-budget", "2s", "--timeout", "60s"],
    ))?;
    r.assert_code(1)
        .assert_stderr_has("NeverReady")
        .assert_stderr_has("blue-green abandoned");
    // The Service never selected green, and no green pod was ever a ready endpoint.
    let history = traffic(&standin);
    assert_eq!(first_selecting(&history, "green"), None, "{history:#?}");
    assert!(
        history
            .iter()
            .all(|v| v.ready.values().all(|c| c != "green"))
    );
    assert_never_without_endpoints(&history);
    let svc = service(&standin);
    assert_eq!(color_of_selector(&svc).as_deref(), Some("blue"));
    assert_eq!(phase(&svc).as_deref(), Some("abandoned"));
    assert_eq!(replicas(&deployment(&standin, "shop-green")), 0);
    assert_eq!(replicas(&deployment(&standin, "shop")), 3);
    assert!(standin.pods_of("shop-green").is_empty());

    // A rollback now has nothing to switch; a fixed image goes through.
    let r = plugin.run(&["blue-green", "rollback", "deploy/shop"])?;
    r.assert_code(0).assert_stdout_has("nothing to roll back");
    plugin.run(&blue_green(V2, "0s", "0s", &[]))?.assert_code(0);
    assert_eq!(
        color_of_selector(&service(&standin)).as_deref(),
        Some("green")
    );
    Ok(())
}

#[test]
fn stub_api_bluegreen_interrupted_runs_resume_from_annotations() -> TestResult {
    let (standin, plugin) = shop(2, V1)?;
    // 1. Ctrl-C while the new colour bakes: nothing switched, state says deploying.
    let child = spawn_until(
        &plugin,
        &blue_green(V2, "1h", "0s", &[]),
        "deployment/shop-green: all 2 new pods ready; holding until",
    )?;
    child.interrupt()?;
    let r = child.finish()?;
    r.assert_code(4)
        .assert_stderr_has("interrupted: while deployment/shop-green (green) was baking");
    let svc = service(&standin);
    assert_eq!(phase(&svc).as_deref(), Some("deploying"));
    assert_eq!(color_of_selector(&svc).as_deref(), Some("blue"));
    let green_generation = deployment(&standin, "shop-green")["metadata"]["generation"].clone();

    // 2. Re-run: resumes (green is not created again), switches; Ctrl-C in the rollback window.
    let child = spawn_until(
        &plugin,
        &blue_green(V2, "0s", "1h", &[]),
        "keeping deployment/shop (blue) scaled for a rollback until",
    )?;
    assert_eq!(
        color_of_selector(&service(&standin)).as_deref(),
        Some("green"),
        "switched (and verified) before the rollback window"
    );
    child.interrupt()?;
    let r = child.finish()?;
    // Resumed, and green was not created again.
    r.assert_code(4)
        .assert_stderr_has("resuming: deployment/shop-green (green) was being brought up beside deployment/shop (blue)")
        .assert_stderr_lacks("deployment/shop-green created")
        .assert_stderr_has("interrupted: traffic is on deployment/shop-green (green)");
    assert_eq!(
        deployment(&standin, "shop-green")["metadata"]["generation"],
        green_generation
    );
    assert_eq!(phase(&service(&standin)).as_deref(), Some("switched"));
    assert_eq!(
        replicas(&deployment(&standin, "shop")),
        2,
        "blue is kept in the window"
    );

    // 3. The window ends (as if time passed): a re-run verifies and scales blue down.
    standin.modify(|s| {
        let mut svc = s
            .get("services", "api", "shop")
            .cloned()
            .expect("service/shop exists");
        svc["metadata"]["annotations"][KEEP_UNTIL] = json!("2020-01-01T00:00:00Z");
        s.put("services", svc)
    })?;
    let r = plugin.run(&blue_green(V2, "0s", "1h", &[]))?;
    r.assert_code(0)
        .assert_stderr_has("resuming: service/shop was already switched")
        .assert_stderr_has("endpoints verified");
    assert_eq!(replicas(&deployment(&standin, "shop")), 0);
    assert_eq!(phase(&service(&standin)).as_deref(), Some("finished"));
    assert_eq!(
        switches_to(&standin.requests(), "green").len(),
        1,
        "switched exactly once across the three runs"
    );
    assert_never_without_endpoints(&traffic(&standin));
    assert_no_traffic_before_switch(&traffic(&standin), "green");
    Ok(())
}

#[test]
fn stub_api_bluegreen_rollback_within_and_after_the_window() -> TestResult {
    let (standin, plugin) = shop(2, V1)?;
    // In the window (blue still scaled): rollback switches straight back. Once the run waits
    // out the rollback window…
    let child = spawn_until(
        &plugin,
        &blue_green(V2, "0s", "1h", &[]),
        "keeping deployment/shop (blue) scaled for a rollback until",
    )?;
    // …the waiting run notices the rollback done elsewhere and ends.
    let r = plugin.run(&["blue-green", "rollback", "deploy/shop"])?;
    r.assert_code(0)
        .assert_stdout_has("rolled back: service/shop sends traffic to deployment/shop (blue)")
        // Blue was still scaled.
        .assert_stderr_lacks("scaling back up");
    let first = child.finish()?;
    first
        .assert_code(0)
        .assert_stdout_has("ended meanwhile (phase rolled-back)");
    let svc = service(&standin);
    assert_eq!(color_of_selector(&svc).as_deref(), Some("blue"));
    assert_eq!(phase(&svc).as_deref(), Some("rolled-back"));
    assert_eq!(replicas(&deployment(&standin, "shop-green")), 0);
    assert_eq!(replicas(&deployment(&standin, "shop")), 2);
    // Idempotent.
    let r = plugin.run(&["blue-green", "rollback", "deploy/shop"])?;
    r.assert_code(0).assert_stdout_has("already rolled back");

    // After the window (`finish` scaled the old colour to 0): rollback scales it back up first.
    let child = plugin.spawn(&blue_green(V3, "0s", "1h", &[]))?;
    standin.wait_until(WAIT, "the second switch", |s| {
        s.get("services", "api", "shop")
            .is_some_and(|s| phase(s).as_deref() == Some("switched"))
    })?;
    let r = plugin.run(&["blue-green", "finish", "deploy/shop"])?;
    r.assert_code(0)
        .assert_stdout_has("deployment/shop (blue) is scaled to 0");
    child.finish()?.assert_code(0);
    assert_eq!(replicas(&deployment(&standin, "shop")), 0);
    assert_eq!(image(&deployment(&standin, "shop-green")), V3);
    // `finish` is idempotent.
    plugin
        .run(&["blue-green", "finish", "deploy/shop"])?
        .assert_code(0);

    let r = plugin.run(&["blue-green", "rollback", "deploy/shop"])?;
    r.assert_code(0)
        .assert_stderr_has("deployment/shop (blue): scaling back up to 2");
    assert_eq!(
        color_of_selector(&service(&standin)).as_deref(),
        Some("blue")
    );
    let blue = deployment(&standin, "shop");
    assert_eq!((replicas(&blue), image(&blue)), (2, V1.to_owned()));
    assert_eq!(replicas(&deployment(&standin, "shop-green")), 0);
    // Blue was ready before the Service was switched back to it: never without endpoints.
    assert_never_without_endpoints(&traffic(&standin));
    let last = traffic(&standin)
        .last()
        .cloned()
        .expect("a traffic history");
    assert!(
        last.ready.len() == 2 && last.ready.values().all(|c| c == "blue"),
        "{last:?}"
    );
    Ok(())
}

#[test]
fn stub_api_bluegreen_unverified_switch_is_switched_back() -> TestResult {
    let (standin, plugin) = shop(2, V1)?;
    // Label and narrow first (a finished blue-green), then freeze the EndpointSlice controller.
    plugin.run(&blue_green(V2, "0s", "0s", &[]))?.assert_code(0);
    standin.set_stuck(ENDPOINTSLICE_CONTROLLER, true)?;
    let r = plugin.run(&blue_green(V3, "0s", "0s", &["--verify-timeout", "2s"]))?;
    r.assert_code(1)
        .assert_stderr_has("its endpoints are still not only blue pods");
    let svc = service(&standin);
    assert_eq!(
        color_of_selector(&svc).as_deref(),
        Some("green"),
        "switched back"
    );
    assert_eq!(phase(&svc).as_deref(), Some("abandoned"));
    assert_eq!(
        replicas(&deployment(&standin, "shop")),
        0,
        "the unverified colour is scaled down"
    );
    assert_eq!(
        replicas(&deployment(&standin, "shop-green")),
        2,
        "the live colour was never touched"
    );
    Ok(())
}

#[test]
fn stub_api_bluegreen_refuses_an_unsafe_spec_before_writing_anything() -> TestResult {
    let (standin, plugin) = shop(2, V1)?;
    // An unsafe image under a stricter policy (`--policy`): an unpinned tag is enforced.
    let dir = tempfile::tempdir()?;
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\nmetadata: {name: strict}\n\
         spec:\n  rules:\n    RS501: enforce\n",
    )?;
    let policy = policy.to_str().expect("a UTF-8 path");
    let r = plugin.run(&common::with(
        &[
            "blue-green",
            "deploy/shop",
            "--service",
            "shop",
            "--image",
            "app=registry.example.com/team/shop:latest",
        ],
        &["--policy", policy],
    ))?;
    r.assert_code(3)
        .assert_stderr_has("RS501")
        .assert_stderr_has("refusing to bring up deployment/shop-green (green)");
    assert_eq!(writes(&standin), Vec::<String>::new(), "nothing is written");

    // An unsafe spec under the default policy: no readiness probe.
    standin.modify(|s| common::drop_readiness_probe(s, "shop"))?;
    let r = plugin.run(&[
        "blue-green",
        "deploy/shop",
        "--service",
        "shop",
        "--image",
        &format!("app={V2}"),
    ])?;
    r.assert_code(3).assert_stderr_has("RS101");
    let written: Vec<String> = writes(&standin);
    assert_eq!(written, Vec::<String>::new(), "nothing is written");
    assert_eq!(
        selector_of(&service(&standin)).get(COLOR),
        None,
        "the Service is untouched"
    );
    assert!(standin.get("deployments", "shop-green").is_none());
    Ok(())
}
