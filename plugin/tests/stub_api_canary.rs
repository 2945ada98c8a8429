//! `canary` against the stub API server (see `stub_api_bluegreen_server/mod.rs`).

mod stub_api_bluegreen_server;

use std::time::Duration;

use serde_json::Value;
use stub_api_bluegreen_server::{Stub, annotation, finish, image, interrupt, replicas};

const V1: &str = "registry.example.com/team/shop:1.0.0";
const V2: &str = "registry.example.com/team/shop:2.0.0";
const CRASH: &str = "registry.example.com/team/shop:2.0.0-crash";

/// `(canary replicas, stable replicas)` each time either Deployment's spec.replicas changed.
fn replica_steps(stub: &Stub) -> Vec<(i64, i64)> {
    let st = stub.state.lock().unwrap();
    let mut canary = 0;
    let mut stable = -1;
    let mut out: Vec<(i64, i64)> = Vec::new();
    for (_, resource, t, o) in &st.log {
        if *resource != "deployments" {
            continue;
        }
        let r = if *t == "DELETED" { 0 } else { replicas(o) };
        match o["metadata"]["name"].as_str() {
            Some("shop-canary") => canary = r,
            Some("shop") => stable = r,
            _ => continue,
        }
        if out.last() != Some(&(canary, stable)) {
            out.push((canary, stable));
        }
    }
    out
}

fn min_ready(stub: &Stub) -> usize {
    let h = stub.history("shop");
    h.iter()
        .skip_while(|v| v.ready.is_empty())
        .map(|v| v.ready.len())
        .min()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_canary_steps_then_promotes_with_the_safe_update() {
    let stub = Stub::shop(4, V1);
    let s = stub.serve().await;
    let r = s
        .run(&[
            "canary",
            "deploy/shop",
            "--image",
            &format!("app={V2}"),
            "--steps",
            "25,50,100",
            "--interval",
            "1s",
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
    assert!(r.stdout.contains("canary promoted"), "{}", r.stdout);
    // Canary up first, stable down after: the total never drops below 4.
    let steps = replica_steps(&stub);
    let canary_sizes: Vec<i64> =
        steps
            .iter()
            .map(|s| s.0)
            .filter(|c| *c > 0)
            .fold(Vec::new(), |mut v, c| {
                if v.last() != Some(&c) {
                    v.push(c);
                }
                v
            });
    assert_eq!(canary_sizes, [1, 2, 4], "{steps:?}");
    assert!(steps.iter().skip(1).all(|(c, s)| c + s >= 4), "{steps:?}");
    assert!(min_ready(&stub) >= 4, "{:#?}", stub.history("shop"));
    // The canary's pods carry every label the Service selects, plus the track label.
    let stable = stub.get("deployments", "shop").unwrap();
    assert_eq!((replicas(&stable), image(&stable)), (4, V2.to_owned()));
    assert!(
        annotation(&stable, "kubernetes.io/change-cause")
            .unwrap()
            .contains("canary promoted")
    );
    assert_eq!(
        annotation(&stable, "rollout-safe.dev/canary-phase").as_deref(),
        Some("done")
    );
    assert!(
        stub.get("deployments", "shop-canary").is_none(),
        "canary deleted"
    );
    assert!(stub.pods_of("shop-canary").is_empty());
    // The promotion went through `update`: a JSON Patch guarded by the resourceVersion.
    let promoted = stub
        .requests()
        .into_iter()
        .find(|r| {
            r.method == "PATCH" && r.uri.contains("/deployments/shop?") && r.body.contains(V2)
        })
        .expect("the stable Deployment was patched to the new image");
    assert!(
        promoted
            .content_type
            .starts_with("application/json-patch+json")
    );
    let ops: Value = serde_json::from_str(&promoted.body).unwrap();
    assert_eq!(ops[0]["op"], "test");
    assert_eq!(ops[0]["path"], "/metadata/resourceVersion");
    // The created canary selected its own pods only.
    let created = stub
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    let c: Value = serde_json::from_str(&created.body).unwrap();
    assert_eq!(
        c["spec"]["selector"]["matchLabels"],
        serde_json::json!({"app": "shop", "rollout-safe.dev/track": "canary"})
    );
    assert_eq!(c["spec"]["template"]["metadata"]["labels"]["app"], "shop");

    // Same images again: nothing to do.
    let r = s
        .run(&[
            "canary",
            "deploy/shop",
            "--image",
            &format!("app={V2}"),
            "--interval",
            "1s",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("nothing to canary"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_canary_failing_step_aborts() {
    let stub = Stub::shop(4, V1);
    let s = stub.serve().await;
    let r = s
        .run(&[
            "canary",
            "deploy/shop",
            "--image",
            &format!("app={CRASH}"),
            "--steps",
            "10,50,100",
            "--interval",
            "1s",
            "--timeout",
            "60s",
        ])
        .await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("CrashLoopBackOff"), "{}", r.stderr);
    assert!(r.stderr.contains("canary aborted"), "{}", r.stderr);
    let stable = stub.get("deployments", "shop").unwrap();
    assert_eq!((replicas(&stable), image(&stable)), (4, V1.to_owned()));
    assert_eq!(
        annotation(&stable, "rollout-safe.dev/canary-phase").as_deref(),
        Some("aborted")
    );
    assert!(annotation(&stable, "rollout-safe.dev/canary-total").is_none());
    assert!(stub.get("deployments", "shop-canary").is_none());
    assert!(
        replica_steps(&stub).iter().all(|(c, _)| *c <= 1),
        "never past the first step: {:?}",
        replica_steps(&stub)
    );
    assert!(min_ready(&stub) >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_canary_interrupt_resume_and_abort() {
    let stub = Stub::shop(4, V1);
    let s = stub.serve().await;
    let start = |interval: &'static str| {
        vec![
            "canary",
            "deploy/shop",
            "--image",
            "app=registry.example.com/team/shop:2.0.0",
            "--steps",
            "25,50,100",
            "--interval",
            interval,
        ]
    };
    // Ctrl-C while the first step holds: the state stays, resumable.
    let child = s.spawn(&start("1h"));
    child
        .wait_stderr(
            "deployment/shop-canary: all 1 new pods ready; holding until",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(replicas(&stub.get("deployments", "shop").unwrap()), 3);
    interrupt(&child);
    let r = finish(child).await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    let stable = stub.get("deployments", "shop").unwrap();
    assert_eq!(
        annotation(&stable, "rollout-safe.dev/canary-phase").as_deref(),
        Some("running")
    );
    assert_eq!(
        annotation(&stable, "rollout-safe.dev/canary-total").as_deref(),
        Some("4")
    );

    // Other images while it is under way: refused.
    let r = s
        .run(&[
            "canary",
            "deploy/shop",
            "--image",
            "app=other:1",
            "--interval",
            "1s",
        ])
        .await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("under way"), "{}", r.stderr);

    // Resume (step 25% was not passed: it is held again, 3s from when its pod became ready),
    // Ctrl-C again while step 50% holds.
    let child = s.spawn(&start("3s"));
    stub.wait_for(Duration::from_secs(30), "step 50% on resume", |st| {
        st.get("deployments", "shop").is_some_and(|d| {
            d["metadata"]["annotations"]["rollout-safe.dev/canary-step"] == "25"
                && d["spec"]["replicas"] == 2
        })
    })
    .await;
    interrupt(&child);
    let r = finish(child).await;
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(
        r.stderr.contains("resuming the canary of deployment/shop"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("shop-canary created"),
        "the canary is reused: {}",
        r.stderr
    );
    let posts = stub
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 1, "the canary was created once");

    // Abort: the stable Deployment gets its 4 replicas back, the canary goes.
    let r = s.run(&["canary", "abort", "deploy/shop"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let stable = stub.get("deployments", "shop").unwrap();
    assert_eq!((replicas(&stable), image(&stable)), (4, V1.to_owned()));
    assert_eq!(
        annotation(&stable, "rollout-safe.dev/canary-phase").as_deref(),
        Some("aborted")
    );
    assert!(stub.get("deployments", "shop-canary").is_none());
    assert!(min_ready(&stub) >= 4, "{:#?}", stub.history("shop"));
    // Idempotent.
    let r = s.run(&["canary", "abort", "deploy/shop"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("no canary"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_canary_and_blue_green_do_not_mix() {
    let stub = Stub::shop(2, V1);
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
            "0s",
            "--keep-old",
            "0s",
        ])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The original Deployment is now the idle blue colour: no canary there.
    let r = s
        .run(&[
            "canary",
            "deploy/shop",
            "--image",
            "app=shop:3",
            "--interval",
            "1s",
        ])
        .await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("idle blue colour"), "{}", r.stderr);
    // On the live colour, the canary's pods join the Service's endpoints…
    let child = s.spawn(&[
        "canary",
        "deploy/shop-green",
        "--image",
        "app=shop:3",
        "--steps",
        "50,100",
        "--interval",
        "1h",
    ]);
    stub.wait_for(Duration::from_secs(30), "the canary in the Service", |st| {
        st.history
            .get("shop")
            .and_then(|h| h.last())
            .is_some_and(|v| v.ready.keys().any(|p| p.starts_with("shop-green-canary-")))
    })
    .await;
    // …and no blue-green starts meanwhile.
    let r = s
        .run(&[
            "blue-green",
            "deploy/shop",
            "--service",
            "shop",
            "--image",
            "app=shop:3",
            "--bake",
            "0s",
            "--keep-old",
            "0s",
        ])
        .await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("canary under way"), "{}", r.stderr);
    interrupt(&child);
    assert_eq!(finish(child).await.code, 4);
    let r = s
        .run(&["canary", "abort", "deploy/shop-green-canary"])
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let green = stub.get("deployments", "shop-green").unwrap();
    assert_eq!((replicas(&green), image(&green)), (2, V2.to_owned()));
    assert!(stub.get("deployments", "shop-green-canary").is_none());
    assert!(min_ready(&stub) >= 2, "{:#?}", stub.history("shop"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stub_api_canary_refuses_an_unsafe_spec_before_writing_anything() {
    let stub = Stub::shop(4, V1);
    stub.with(|st| {
        let mut d = st.get("deployments", "shop").cloned().unwrap();
        d["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("readinessProbe");
        st.put("deployments", d);
    });
    let s = stub.serve().await;
    let r = s
        .run(&[
            "canary",
            "deploy/shop",
            "--image",
            &format!("app={V2}"),
            "--interval",
            "1s",
        ])
        .await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("RS101")
            && r.stderr
                .contains("refusing to start a canary of deployment/shop"),
        "{}",
        r.stderr
    );
    let writes: Vec<String> = stub
        .requests()
        .iter()
        .filter(|r| matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
        .map(|r| format!("{} {}", r.method, r.uri))
        .collect();
    assert_eq!(writes, Vec::<String>::new(), "nothing is written");
    assert!(stub.get("deployments", "shop-canary").is_none());
}
