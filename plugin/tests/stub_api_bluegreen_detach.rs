//! `blue-green --detach` against the stand-in API server: the command returns after the verified
//! switch with the old colour still scaled and the window's end on the Service; `blue-green
//! status` shows the time left and what to run; `blue-green finish` scales the old colour down;
//! and the next blue-green scales it down itself once the window is over, saying so.

mod common;

use std::time::{Duration, Instant};

use common::{
    TestResult, annotation, blue_green, color_of_selector, deployment, image, phase, replicas,
    service, shop,
};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

const V1: &str = "registry.example.com/team/shop:1.0.0";
const V2: &str = "registry.example.com/team/shop:2.0.0";
const V3: &str = "registry.example.com/team/shop:3.0.0";
const KEEP_UNTIL: &str = "rollout-safe.dev/blue-green-keep-until";
const DETACHED: &str = "rollout-safe.dev/blue-green-detached";

fn seconds_until(t: &str) -> i64 {
    let t: Timestamp = t.parse().unwrap();
    t.as_second() - Timestamp::now().as_second()
}

#[test]
fn stub_api_bluegreen_detach_returns_after_the_switch_and_finish_ends_it() -> TestResult {
    let (standin, plugin) = shop(3, V1)?;
    let started = Instant::now();
    let r = plugin.run(&blue_green(V2, "1s", "10m", &["--detach"]))?;
    r.assert_code(0)
        .assert_stderr_has("endpoints verified: 3 ready (3 green)")
        .assert_stdout_has(
            "blue-green switched (detached): service/shop sends traffic to deployment/shop-green (green); \
             deployment/shop (blue) stays scaled for a rollback until ",
        )
        .assert_stderr_has("finish:   kubectl rollout-safe blue-green finish deployment/shop")
        .assert_stderr_lacks("blue-green done");
    // It did not wait through the 10-minute window.
    assert!(started.elapsed() < Duration::from_secs(120));

    let svc = service(&standin);
    assert_eq!(color_of_selector(&svc).as_deref(), Some("green"));
    assert_eq!(phase(&svc).as_deref(), Some("switched"));
    assert_eq!(annotation(&svc, DETACHED).as_deref(), Some("true"));
    let left = seconds_until(&annotation(&svc, KEEP_UNTIL).unwrap());
    assert!((540..=600).contains(&left), "keep-until {left}s from now");
    let blue = deployment(&standin, "shop");
    assert_eq!((replicas(&blue), image(&blue)), (3, V1.to_owned()));
    let green = deployment(&standin, "shop-green");
    assert_eq!((replicas(&green), image(&green)), (3, V2.to_owned()));

    // `blue-green status`: the time left, and the commands.
    let r = plugin.run(&["blue-green", "status", "deploy/shop"])?;
    r.assert_code(0)
        .assert_stdout_has("  window:    ")
        .assert_stdout_has("m left (until ")
        .assert_stdout_has("; detached: nothing watches it")
        .assert_stdout_has("  next:      `kubectl rollout-safe blue-green finish deployment/shop");
    let r = plugin.run(&["blue-green", "status", "deploy/shop", "-o", "json"])?;
    r.assert_code(0);
    let status: Value = serde_json::from_str(&r.stdout)?;
    assert_eq!(status["window"]["state"], "open");
    assert_eq!(status["window"]["detached"], true);
    assert!(status["window"]["secondsLeft"].as_u64().unwrap() >= 540);

    // The status board shows the blue-green in flight.
    let r = plugin.run(&["status", "-o", "json"])?;
    r.assert_code(0);
    let board: Value = serde_json::from_str(&r.stdout)?;
    let shop_row = board["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["workload"] == "deployment/shop")
        .unwrap();
    assert_eq!(shop_row["inFlight"]["phase"], "switched", "{shop_row:#}");
    assert_eq!(shop_row["inFlight"]["active"], "green");

    // Other images within the window: refused, nothing written.
    let writes_before = standin.writes().len();
    let r = plugin.run(&blue_green(V3, "1s", "0s", &[]))?;
    r.assert_code(2)
        .assert_stderr_has("is still in its rollback window");
    assert_eq!(standin.writes().len(), writes_before);

    // `finish` scales the old colour down now.
    let r = plugin.run(&["blue-green", "finish", "deploy/shop"])?;
    r.assert_code(0)
        .assert_stdout_has("deployment/shop (blue) is scaled to 0");
    let svc = service(&standin);
    assert_eq!(phase(&svc).as_deref(), Some("finished"));
    assert_eq!(annotation(&svc, DETACHED), None);
    assert_eq!(replicas(&deployment(&standin, "shop")), 0);
    assert_eq!(replicas(&deployment(&standin, "shop-green")), 3);
    Ok(())
}

#[test]
fn stub_api_bluegreen_next_run_ends_an_elapsed_window_first() -> TestResult {
    let (standin, plugin) = shop(2, V1)?;
    plugin
        .run(&blue_green(V2, "1s", "1s", &["--detach"]))?
        .assert_code(0);
    assert_eq!(replicas(&deployment(&standin, "shop")), 2, "blue kept");
    std::thread::sleep(Duration::from_millis(1500));
    let r = plugin.run(&blue_green(V3, "1s", "10m", &["--detach"]))?;
    r.assert_code(0)
        .assert_stderr_has(&format!(
            "the rollback window of the last blue-green (to green, images app={V2}) ended at "
        ))
        .assert_stderr_has("deployment/shop (blue) scaled to 0 before this one")
        .assert_stdout_has(
            "blue-green switched (detached): service/shop sends traffic to deployment/shop (blue)",
        );
    // Blue was scaled down, then brought up again with V3 and switched to; green is kept.
    let blue = deployment(&standin, "shop");
    assert_eq!((replicas(&blue), image(&blue)), (2, V3.to_owned()));
    assert_eq!(
        annotation(&blue, "rollout-safe.dev/blue-green-replicas"),
        None,
        "brought back to strength"
    );
    // Scaling to 0 records the replica count to restore (2) in the same guarded write.
    let scaled_to_zero = standin.writes().iter().any(|w| {
        w.uri().contains("/deployments/shop?")
            && w.body.contains("/spec/replicas")
            && w.body.contains("blue-green-replicas")
            && w.body.contains(r#""value":"2""#)
    });
    assert!(scaled_to_zero, "blue was scaled to 0 when the window ended");
    let svc = service(&standin);
    assert_eq!(color_of_selector(&svc).as_deref(), Some("blue"));
    assert_eq!(phase(&svc).as_deref(), Some("switched"));
    assert_eq!(annotation(&svc, DETACHED).as_deref(), Some("true"));
    assert_eq!(replicas(&deployment(&standin, "shop-green")), 2);
    Ok(())
}
