//! The plugin under a big namespace, against the stand-in API server: Deployment `shop` (3
//! pods) shares its namespace with 5,000 other running pods and 20,000 events about them.
//! `status` and `update` read only what concerns the rollout: pods by the Deployment's selector,
//! events by field selectors on each involved object (never the namespace's whole list), so the
//! bytes read stay a small fraction of the namespace's.

mod common;

use std::time::Duration;

use common::{PLUGIN, TestResult, update_workload};
use rollout_safe_standin::{LoggedRequest, Standin, StandinError, Verb, scenarios, seed};

const V1: &str = "registry.example.com/team/shop:1.0.0";
const V2: &str = "registry.example.com/team/shop:2.0.0";
const OTHER_PODS: usize = 5_000;
const OTHER_EVENTS: usize = 20_000;

/// Seeds the crowd; returns the bytes of JSON it holds (pods and events).
fn crowd(standin: &Standin) -> Result<usize, StandinError> {
    standin.modify(|s| {
        let mut bytes = 0;
        let per_pod = OTHER_EVENTS / OTHER_PODS;
        for i in 0..OTHER_PODS {
            let app = format!("crowd-{}", i / 50);
            let pod = seed::running_pod(&format!("{app}-6d9f7c8b5-{i:05}"), &app, i, false);
            for (j, (reason, message)) in [
                ("Scheduled", "Successfully assigned the pod to node-001"),
                (
                    "Pulled",
                    "Container image \"crowd:1.4.2\" already present on machine",
                ),
                ("Created", "Created container: app"),
                ("Started", "Started container app"),
            ]
            .into_iter()
            .take(per_pod)
            .enumerate()
            {
                let e = seed::event_about(&pod, "Pod", reason, message, i * per_pod + j);
                bytes += e.to_string().len();
                s.put("events", e)?;
            }
            bytes += pod.to_string().len();
            s.put("pods", pod)?;
        }
        Ok(bytes)
    })
}

/// What the plugin read, and checks that each read concerns deployment/shop only.
#[track_caller]
fn assert_reads_only_the_rollout(requests: &[LoggedRequest], what: &str) -> u64 {
    let mut bytes = 0;
    for r in requests {
        bytes += r.response_bytes;
        if !matches!(r.verb, Verb::List | Verb::Watch) {
            continue;
        }
        match r.resource.as_str() {
            "pods" | "replicasets" => assert_eq!(
                r.label_selector(),
                Some("app=shop"),
                "{what}: {} {} reads more than shop's",
                r.verb,
                r.uri()
            ),
            "events" => {
                let fields = r.field_selector().unwrap_or_default();
                assert!(
                    fields.contains("involvedObject.uid=")
                        && fields.contains("involvedObject.name=shop"),
                    "{what}: {} {} reads events of the whole namespace",
                    r.verb,
                    r.uri()
                );
            }
            "deployments" => assert_eq!(
                r.field_selector(),
                Some("metadata.name=shop"),
                "{what}: {}",
                r.uri()
            ),
            _ => {}
        }
    }
    bytes
}

#[test]
fn stub_api_big_namespace_status_and_update_read_only_the_rollout() -> TestResult {
    // The controllers react 300 ms after a write, so the update watches the rollout go.
    let standin = scenarios::shop(
        Standin::builder(scenarios::NAMESPACE)
            .kubernetes_controllers()
            .reaction_delay(Duration::from_millis(300)),
        3,
        V1,
    )?
    .start()?;
    let plugin = standin.plugin(PLUGIN);
    let crowd_bytes = crowd(&standin)?;
    assert!(crowd_bytes > 20_000_000, "the crowd is {crowd_bytes} bytes");

    let from = standin.requests().len();
    plugin.run(&["status", "deploy/shop"])?.assert_code(0);
    let status = standin.requests().split_off(from);
    let status_bytes = assert_reads_only_the_rollout(&status, "status");
    assert!(
        status.iter().any(|r| r.resource == "events"),
        "status read no events"
    );

    let from = standin.requests().len();
    plugin
        .run(&update_workload(
            "deploy/shop",
            "app",
            V2,
            &["--timeout", "60s"],
        ))?
        .assert_code(0);
    // The watches' byte counters go on until the connections close.
    std::thread::sleep(Duration::from_millis(200));
    let update = standin.requests().split_off(from);
    let update_bytes = assert_reads_only_the_rollout(&update, "update");
    eprintln!(
        "bytes read in a namespace of {OTHER_PODS} other pods and {OTHER_EVENTS} events ({crowd_bytes} bytes of JSON): status {status_bytes} in {} requests, update {update_bytes} in {} requests",
        status.len(),
        update.len()
    );
    let event_watches = update
        .iter()
        .filter(|r| r.resource == "events" && r.verb == Verb::Watch)
        .count();
    // One per object: the Deployment, its two ReplicaSets, old and new pods.
    assert!(event_watches >= 4, "{event_watches} event watches");
    // A namespace-wide read of the events alone would be more than the crowd's fifth.
    assert!(
        (status_bytes as usize) < crowd_bytes / 100 && (update_bytes as usize) < crowd_bytes / 100,
        "status read {status_bytes} bytes, update {update_bytes}, of a namespace of {crowd_bytes}"
    );
    Ok(())
}
