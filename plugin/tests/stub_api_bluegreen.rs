//! `blue-green` against the stub API server (see `stub_api_bluegreen_server/mod.rs`): the real
//! binary, a kubeconfig pointing at the stub, and assertions on what the Service could send
//! traffic to at every moment (the stub records each selector and set of ready endpoints).

mod stub_api_bluegreen_server;

use std::time::Duration;

use serde_json::Value;
use stub_api_bluegreen_server::{
    COLOR, Stub, annotation, assert_never_without_endpoints, finish, image, interrupt, replicas,
    selector_of,
};

const V1: &str = "registry.example.com/team/shop:1.0.0";
const V2: &str = "registry.example.com/team/shop:2.0.0";
const V3: &str = "registry.example.com/team/shop:3.0.0";
const UNREADY: &str = "registry.example.com/team/shop:2.0.0-unready";

fn color_of_selector(svc: &Value) -> Option<String> {
    selector_of(svc).get(COLOR).cloned()
}

fn phase(svc: &Value) -> Option<String> {
    annotation(svc, "rollout-safe.dev/blue-green-phase")
}

/// Index of the first recorded view whose selector selects `color`.
fn first_selecting(stub: &Stub, color: &str) -> Option<usize> {
    stub.history("shop")
        .iter()
        .position(|v| v.selector.get(COLOR).map(String::as_str) == Some(color))
}

/// Before the Service selected `color`, no pod of that colour was ever a ready endpoint.
fn assert_no_traffic_before_switch(stub: &Stub, color: &str) {
    let h = stub.history("shop");
    let until = first_selecting(stub, color).unwrap_or(h.len());
    for (i, v) in h[..until].iter().enumerate() {
        assert!(
            v.ready.values().all(|c| c != color),
            "a {color} pod was a ready endpoint at step {i}, before the switch: {h:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_bluegreen_switch_verifies_endpoints_and_alternates() {
    let stub = Stub::shop(3, V1);
    let s = stub.serve().await;
    let r = s
        .run(&[
            "blue-green",
            "deploy/shop",
            "--service",
            "shop",
            "--image",
            &format!("app={V2}"),
            "--bake",
            "1s",
            "--keep-old",
            "0s",
            "-n",
            "api",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("selector narrowed from app=shop to app=shop,rollout-safe.dev/color=blue"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("endpoints verified: 3 ready (3 green)"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("blue-green done"), "{}", r.stdout);

    // The original Deployment is blue by its pod labels only: its selector is untouched.
    let blue = stub.get("deployments", "shop").unwrap();
    assert_eq!(
        blue["spec"]["selector"]["matchLabels"],
        serde_json::json!({"app": "shop"})
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
    let green = stub.get("deployments", "shop-green").unwrap();
    assert_eq!(
        green["spec"]["selector"]["matchLabels"],
        serde_json::json!({"app": "shop", COLOR: "green"})
    );
    assert_eq!(replicas(&green), 3);
    assert_eq!(image(&green), V2);
    let svc = stub.get("services", "shop").unwrap();
    assert_eq!(color_of_selector(&svc).as_deref(), Some("green"));
    assert_eq!(phase(&svc).as_deref(), Some("finished"));
    assert_eq!(
        annotation(&svc, "rollout-safe.dev/blue-green-active").as_deref(),
        Some("green")
    );
    assert_eq!(
        annotation(&svc, "rollout-safe.dev/blue-green-previous").as_deref(),
        Some("blue")
    );
    assert!(annotation(&svc, "rollout-safe.dev/blue-green-switched-at").is_some());
    assert!(annotation(&svc, "rollout-safe.dev/blue-green-keep-until").is_some());

    // The switch was ONE merge patch, guarded by the resourceVersion, carrying the state.
    let reqs = stub.requests();
    let switches: Vec<_> = reqs
        .iter()
        .filter(|r| {
            r.method == "PATCH"
                && r.uri.contains("/services/shop")
                && r.body.contains(r#""rollout-safe.dev/color":"green""#)
        })
        .collect();
    assert_eq!(switches.len(), 1, "{switches:#?}");
    let body: Value = serde_json::from_str(&switches[0].body).unwrap();
    assert!(
        switches[0]
            .content_type
            .starts_with("application/merge-patch+json")
    );
    assert!(body["metadata"]["resourceVersion"].is_string(), "{body}");
    assert_eq!(
        body["metadata"]["annotations"]["rollout-safe.dev/blue-green-phase"],
        "switched"
    );
    assert_eq!(
        body["spec"]["selector"],
        serde_json::json!({COLOR: "green"})
    );
    // …and it was verified through the EndpointSlices afterwards.
    let at = reqs
        .iter()
        .position(|r| std::ptr::eq(r, switches[0]))
        .unwrap();
    assert!(
        reqs[at..].iter().any(|r| r.method == "GET"
            && r.uri.contains("/endpointslices?")
            && r.uri.contains("kubernetes.io%2Fservice-name%3Dshop")),
        "no EndpointSlice read after the switch"
    );
    assert_never_without_endpoints(&stub.history("shop"));
    assert_no_traffic_before_switch(&stub, "green");

    // Re-running the same command is a no-op.
    let writes = stub
        .requests()
        .iter()
        .filter(|r| r.method != "GET" && r.method != "WATCH")
        .count();
    let r = s
        .run(&[
            "blue-green",
            "deploy/shop",
            "--service",
            "shop",
            "--image",
            &format!("app={V2}"),
            "--bake",
            "1s",
            "--keep-old",
            "0s",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("nothing to do"), "{}", r.stdout);
    assert_eq!(
        writes,
        stub.requests()
            .iter()
            .filter(|r| r.method != "GET" && r.method != "WATCH")
            .count()
    );

    // The next blue-green goes into the idle colour: blue (the original Deployment) again.
    let r = s
        .run(&[
            "blue-green",
            "deploy/shop",
            "--service",
            "shop",
            "--image",
            &format!("app={V3}"),
            "--bake",
            "0s",
            "--keep-old",
            "0s",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let blue = stub.get("deployments", "shop").unwrap();
    assert_eq!((replicas(&blue), image(&blue)), (3, V3.to_owned()));
    let green = stub.get("deployments", "shop-green").unwrap();
    assert_eq!(replicas(&green), 0);
    let svc = stub.get("services", "shop").unwrap();
    assert_eq!(color_of_selector(&svc).as_deref(), Some("blue"));
    assert_eq!(
        annotation(&svc, "rollout-safe.dev/blue-green-previous").as_deref(),
        Some("green")
    );
    assert_never_without_endpoints(&stub.history("shop"));
    // Every ready endpoint after the last switch is blue and runs V3.
    let last = stub.history("shop").last().cloned().unwrap();
    assert_eq!(last.ready.len(), 3);
    assert!(last.ready.values().all(|c| c == "blue"));

    // status, as data.
    let r = s
        .run(&["blue-green", "status", "deploy/shop", "-o", "json"])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let st: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(st["live"], "blue");
    assert_eq!(st["phase"], "finished");
    assert_eq!(st["endpoints"]["readyLive"], 3);
    assert_eq!(st["colors"][1]["deployment"], "shop-green");
    let r = s.run(&["blue-green", "status", "deploy/shop-green"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("behind service/shop") && r.stdout.contains("← live"),
        "{}",
        r.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_bluegreen_conflict_on_switch_rereads_and_retries() {
    let stub = Stub::shop(2, V1);
    stub.with(|st| st.service_conflicts = 1);
    let s = stub.serve().await;
    // The narrowing write is the first selector write: make the switch the conflicting one.
    let r = s
        .run(&[
            "blue-green",
            "deploy/shop",
            "--service",
            "shop",
            "--image",
            &format!("app={V2}"),
            "--bake",
            "0s",
            "--keep-old",
            "0s",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let reqs = stub.requests();
    let selector_writes: Vec<_> = reqs
        .iter()
        .filter(|r| {
            r.method == "PATCH"
                && r.uri.contains("/services/shop")
                && r.body.contains("\"selector\"")
        })
        .collect();
    assert_eq!(
        selector_writes[0].status, 409,
        "the first selector write met the other writer: {selector_writes:#?}"
    );
    assert_eq!(selector_writes[1].status, 200);
    let a: Value = serde_json::from_str(&selector_writes[0].body).unwrap();
    let b: Value = serde_json::from_str(&selector_writes[1].body).unwrap();
    assert_ne!(
        a["metadata"]["resourceVersion"], b["metadata"]["resourceVersion"],
        "re-read before retrying"
    );
    assert!(
        r.stderr
            .contains("conflict: service/shop changed since it was read"),
        "{}",
        r.stderr
    );
    let svc = stub.get("services", "shop").unwrap();
    assert_eq!(color_of_selector(&svc).as_deref(), Some("green"));
    assert!(
        annotation(&svc, "example.com/other-writer").is_some(),
        "the other writer's change survives"
    );

    // Now on the switch proper.
    stub.with(|st| st.service_conflicts = 1);
    let r = s
        .run(&[
            "blue-green",
            "deploy/shop",
            "--service",
            "shop",
            "--image",
            &format!("app={V3}"),
            "--bake",
            "0s",
            "--keep-old",
            "0s",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("after 2 attempts"), "{}", r.stderr);
    let svc = stub.get("services", "shop").unwrap();
    assert_eq!(color_of_selector(&svc).as_deref(), Some("blue"));
    assert_never_without_endpoints(&stub.history("shop"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_bluegreen_never_ready_colour_is_never_switched() {
    let stub = Stub::shop(3, V1);
    let s = stub.serve().await;
    let r = s
        .run(&[
            "blue-green",
            "deploy/shop",
            "--service",
            "shop",
            "--image",
            &format!("app={UNREADY}"),
            "--bake",
            "1s",
            "--keep-old",
            "0s",
            "--readiness-budget",
            "2s",
            "--timeout",
            "60s",
        ])
        .await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("NeverReady"), "{}", r.stderr);
    assert!(r.stderr.contains("blue-green abandoned"), "{}", r.stderr);
    // The Service never selected green, and no green pod was ever a ready endpoint.
    assert_eq!(
        first_selecting(&stub, "green"),
        None,
        "{:#?}",
        stub.history("shop")
    );
    assert!(
        stub.history("shop")
            .iter()
            .all(|v| v.ready.values().all(|c| c != "green"))
    );
    assert_never_without_endpoints(&stub.history("shop"));
    let svc = stub.get("services", "shop").unwrap();
    assert_eq!(color_of_selector(&svc).as_deref(), Some("blue"));
    assert_eq!(phase(&svc).as_deref(), Some("abandoned"));
    assert_eq!(replicas(&stub.get("deployments", "shop-green").unwrap()), 0);
    assert_eq!(replicas(&stub.get("deployments", "shop").unwrap()), 3);
    assert!(stub.pods_of("shop-green").is_empty());

    // A rollback now has nothing to switch; a fixed image goes through.
    let r = s.run(&["blue-green", "rollback", "deploy/shop"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("nothing to roll back"), "{}", r.stdout);
    let r = s
        .run(&[
            "blue-green",
            "deploy/shop",
            "--service",
            "shop",
            "--image",
            &format!("app={V2}"),
            "--bake",
            "0s",
            "--keep-old",
            "0s",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        color_of_selector(&stub.get("services", "shop").unwrap()).as_deref(),
        Some("green")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_bluegreen_interrupted_runs_resume_from_annotations() {
    let stub = Stub::shop(2, V1);
    let s = stub.serve().await;
    let args = |bake: &'static str, keep: &'static str| {
        vec![
            "blue-green",
            "deploy/shop",
            "--service",
            "shop",
            "--image",
            "app=registry.example.com/team/shop:2.0.0",
            "--bake",
            bake,
            "--keep-old",
            keep,
        ]
    };
    // 1. Ctrl-C while the new colour bakes: nothing switched, state says deploying.
    let child = s.spawn(&args("1h", "0s"));
    child
        .wait_stderr(
            "deployment/shop-green: all 2 new pods ready; holding until",
            Duration::from_secs(30),
        )
        .await;
    interrupt(&child);
    let r = finish(child).await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("interrupted: while deployment/shop-green (green) was baking"),
        "{}",
        r.stderr
    );
    let svc = stub.get("services", "shop").unwrap();
    assert_eq!(phase(&svc).as_deref(), Some("deploying"));
    assert_eq!(color_of_selector(&svc).as_deref(), Some("blue"));
    let green_rv = stub.get("deployments", "shop-green").unwrap()["metadata"]["generation"].clone();

    // 2. Re-run: resumes (green is not created again), switches; Ctrl-C in the rollback window.
    let child = s.spawn(&args("0s", "1h"));
    child
        .wait_stderr(
            "keeping deployment/shop (blue) scaled for a rollback until",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(
        color_of_selector(&stub.get("services", "shop").unwrap()).as_deref(),
        Some("green"),
        "switched (and verified) before the rollback window"
    );
    interrupt(&child);
    let r = finish(child).await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "resuming: deployment/shop-green (green) was being brought up beside deployment/shop (blue)"
        ) && !r.stderr.contains("deployment/shop-green created"),
        "resumed, and green was not created again: {}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("interrupted: traffic is on deployment/shop-green (green)"),
        "{}",
        r.stderr
    );
    assert_eq!(
        stub.get("deployments", "shop-green").unwrap()["metadata"]["generation"],
        green_rv
    );
    let svc = stub.get("services", "shop").unwrap();
    assert_eq!(phase(&svc).as_deref(), Some("switched"));
    assert_eq!(
        replicas(&stub.get("deployments", "shop").unwrap()),
        2,
        "blue is kept in the window"
    );

    // 3. The window ends (as if time passed): a re-run verifies and scales blue down.
    stub.with(|st| {
        let mut svc = st.get("services", "shop").cloned().unwrap();
        svc["metadata"]["annotations"]["rollout-safe.dev/blue-green-keep-until"] =
            serde_json::json!("2020-01-01T00:00:00Z");
        st.put("services", svc);
    });
    let r = s.run(&args("0s", "1h")).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("resuming: service/shop was already switched"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("endpoints verified"), "{}", r.stderr);
    assert_eq!(replicas(&stub.get("deployments", "shop").unwrap()), 0);
    assert_eq!(
        phase(&stub.get("services", "shop").unwrap()).as_deref(),
        Some("finished")
    );
    let switches = stub
        .requests()
        .iter()
        .filter(|r| {
            r.method == "PATCH"
                && r.uri.contains("/services/shop")
                && r.body.contains(r#""rollout-safe.dev/color":"green""#)
        })
        .count();
    assert_eq!(switches, 1, "switched exactly once across the three runs");
    assert_never_without_endpoints(&stub.history("shop"));
    assert_no_traffic_before_switch(&stub, "green");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_bluegreen_rollback_within_and_after_the_window() {
    let stub = Stub::shop(2, V1);
    let s = stub.serve().await;
    // In the window (blue still scaled): rollback switches straight back.
    let child = s.spawn(&[
        "blue-green",
        "deploy/shop",
        "--service",
        "shop",
        "--image",
        &format!("app={V2}"),
        "--bake",
        "0s",
        "--keep-old",
        "1h",
    ]);
    // Once it waits out the rollback window…
    child
        .wait_stderr(
            "keeping deployment/shop (blue) scaled for a rollback until",
            Duration::from_secs(30),
        )
        .await;
    // …the waiting run notices the rollback done elsewhere and ends.
    let r = s.run(&["blue-green", "rollback", "deploy/shop"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("rolled back: service/shop sends traffic to deployment/shop (blue)"),
        "{}",
        r.stdout
    );
    assert!(
        !r.stderr.contains("scaling back up"),
        "blue was still scaled: {}",
        r.stderr
    );
    let first = finish(child).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(
        first.stdout.contains("ended meanwhile (phase rolled-back)"),
        "{}",
        first.stdout
    );
    let svc = stub.get("services", "shop").unwrap();
    assert_eq!(color_of_selector(&svc).as_deref(), Some("blue"));
    assert_eq!(phase(&svc).as_deref(), Some("rolled-back"));
    assert_eq!(replicas(&stub.get("deployments", "shop-green").unwrap()), 0);
    assert_eq!(replicas(&stub.get("deployments", "shop").unwrap()), 2);
    // Idempotent.
    let r = s.run(&["blue-green", "rollback", "deploy/shop"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("already rolled back"), "{}", r.stdout);

    // After the window (`finish` scaled the old colour to 0): rollback scales it back up first.
    let child = s.spawn(&[
        "blue-green",
        "deploy/shop",
        "--service",
        "shop",
        "--image",
        &format!("app={V3}"),
        "--bake",
        "0s",
        "--keep-old",
        "1h",
    ]);
    stub.wait_for(Duration::from_secs(30), "the second switch", |st| {
        st.get("services", "shop").is_some_and(|s| {
            s["metadata"]["annotations"]["rollout-safe.dev/blue-green-phase"] == "switched"
        })
    })
    .await;
    let r = s.run(&["blue-green", "finish", "deploy/shop"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("deployment/shop (blue) is scaled to 0"),
        "{}",
        r.stdout
    );
    let first = finish(child).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(replicas(&stub.get("deployments", "shop").unwrap()), 0);
    assert_eq!(image(&stub.get("deployments", "shop-green").unwrap()), V3);
    let r = s.run(&["blue-green", "finish", "deploy/shop"]).await;
    assert_eq!(r.code, 0, "finish is idempotent: {}", r.stderr);

    let r = s.run(&["blue-green", "rollback", "deploy/shop"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("deployment/shop (blue): scaling back up to 2"),
        "{}",
        r.stderr
    );
    let svc = stub.get("services", "shop").unwrap();
    assert_eq!(color_of_selector(&svc).as_deref(), Some("blue"));
    let blue = stub.get("deployments", "shop").unwrap();
    assert_eq!((replicas(&blue), image(&blue)), (2, V1.to_owned()));
    assert_eq!(replicas(&stub.get("deployments", "shop-green").unwrap()), 0);
    // Blue was ready before the Service was switched back to it: never without endpoints.
    assert_never_without_endpoints(&stub.history("shop"));
    let last = stub.history("shop").last().cloned().unwrap();
    assert!(
        last.ready.len() == 2 && last.ready.values().all(|c| c == "blue"),
        "{last:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_bluegreen_unverified_switch_is_switched_back() {
    let stub = Stub::shop(2, V1);
    let s = stub.serve().await;
    // Label and narrow first (a finished blue-green), then freeze the EndpointSlice controller.
    let r = s
        .run(&[
            "blue-green",
            "deploy/shop",
            "--service",
            "shop",
            "--image",
            &format!("app={V2}"),
            "--bake",
            "0s",
            "--keep-old",
            "0s",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    stub.with(|st| st.freeze_endpoints = true);
    let r = s
        .run(&[
            "blue-green",
            "deploy/shop",
            "--service",
            "shop",
            "--image",
            &format!("app={V3}"),
            "--bake",
            "0s",
            "--keep-old",
            "0s",
            "--verify-timeout",
            "2s",
        ])
        .await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("its endpoints are still not only blue pods"),
        "{}",
        r.stderr
    );
    let svc = stub.get("services", "shop").unwrap();
    assert_eq!(
        color_of_selector(&svc).as_deref(),
        Some("green"),
        "switched back"
    );
    assert_eq!(phase(&svc).as_deref(), Some("abandoned"));
    assert_eq!(
        replicas(&stub.get("deployments", "shop").unwrap()),
        0,
        "the unverified colour is scaled down"
    );
    assert_eq!(
        replicas(&stub.get("deployments", "shop-green").unwrap()),
        2,
        "the live colour was never touched"
    );
}

/// Requests that change something.
fn writes(stub: &Stub) -> Vec<String> {
    stub.requests()
        .iter()
        .filter(|r| matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
        .map(|r| format!("{} {}", r.method, r.uri))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_bluegreen_refuses_an_unsafe_spec_before_writing_anything() {
    let stub = Stub::shop(2, V1);
    let s = stub.serve().await;
    // An unsafe image under a stricter policy (`--policy`): an unpinned tag is enforced.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\nmetadata: {name: strict}\n\
         spec:\n  rules:\n    RS501: enforce\n",
    )
    .unwrap();
    let r = s
        .run(&[
            "blue-green",
            "deploy/shop",
            "--service",
            "shop",
            "--image",
            "app=registry.example.com/team/shop:latest",
            "--policy",
            policy.to_str().unwrap(),
        ])
        .await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("RS501")
            && r.stderr
                .contains("refusing to bring up deployment/shop-green (green)"),
        "{}",
        r.stderr
    );
    assert_eq!(writes(&stub), Vec::<String>::new(), "nothing is written");

    // An unsafe spec under the default policy: no readiness probe.
    stub.with(|st| {
        let mut d = st.get("deployments", "shop").cloned().unwrap();
        d["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("readinessProbe");
        st.put("deployments", d);
    });
    let r = s
        .run(&[
            "blue-green",
            "deploy/shop",
            "--service",
            "shop",
            "--image",
            &format!("app={V2}"),
        ])
        .await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("RS101"), "{}", r.stderr);
    assert_eq!(writes(&stub), Vec::<String>::new(), "nothing is written");
    let svc = stub.get("services", "shop").unwrap();
    assert_eq!(
        selector_of(&svc).get(COLOR),
        None,
        "the Service is untouched"
    );
    assert!(stub.get("deployments", "shop-green").is_none());
}
