//! The status board (`status` without a workload, or `-A`) against the stand-in API server,
//! seeded with many workloads in mixed states: complete, progressing (pods not ready yet),
//! crash-looping, a blue-green in its rollback window, a canary under way, a StatefulSet, a
//! DaemonSet, and a Deployment in another namespace. Table, JSON and watch modes.

mod common;

use std::time::Duration;

use common::{PLUGIN, TestResult};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use rollout_safe_standin::seed::{self, DeploymentBuilder};
use rollout_safe_standin::{Plugin, Standin, StandinError, Verb};
use serde_json::{Value, json};

const NS: &str = "shop";
const OTHER_NS: &str = "team";
const CRASHING: &str = "registry.example.com/team/pay:2.5.0-crash";
const NOT_READY: &str = "registry.example.com/team/search:1.1.0-unready";

fn ts(offset_secs: i64) -> String {
    let t = Timestamp::now() + SignedDuration::from_secs(offset_secs);
    Timestamp::from_second(t.as_second()).unwrap().to_string()
}

fn daemonset(name: &str, image: &str) -> Value {
    json!({"metadata": {"name": name, "generation": 1, "creationTimestamp": "2026-11-22T23:10:24Z"},
        "spec": {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": name, "image": image}]}},
            "updateStrategy": {"type": "RollingUpdate"}},
        "status": {"observedGeneration": 1, "desiredNumberScheduled": 2, "currentNumberScheduled": 2,
            "numberReady": 2, "numberAvailable": 2, "updatedNumberScheduled": 2, "numberMisscheduled": 0}})
}

/// The mixed cluster; `extra` changes the seed before the controllers settle it.
fn cluster() -> Result<(Standin, Plugin), StandinError> {
    let builder = Standin::builder(NS).kubernetes_controllers().seed(|s| {
        // Complete.
        s.put(
            "deployments",
            DeploymentBuilder::new("cart", "registry.example.com/team/cart:3.0.1").build(),
        )?;
        // Crash-looping from the start: every pod is new.
        s.put(
            "deployments",
            DeploymentBuilder::new("pay", CRASHING).replicas(2).build(),
        )?;
        // Running but not ready yet, well within the readiness budget.
        s.put(
            "deployments",
            DeploymentBuilder::new("search", NOT_READY)
                .replicas(1)
                .build(),
        )?;
        // A blue-green in its rollback window: traffic on green, blue kept 10 minutes more.
        s.put(
            "deployments",
            DeploymentBuilder::new("web", "registry.example.com/team/web:1.0.0")
                .replicas(2)
                .annotation("rollout-safe.dev/blue-green-service", "web")
                .annotation("rollout-safe.dev/blue-green-color", "blue")
                .annotation("rollout-safe.dev/blue-green-base", "web")
                .build(),
        )?;
        s.put(
            "deployments",
            DeploymentBuilder::new("web-green", "registry.example.com/team/web:1.1.0")
                .replicas(2)
                .edit(|d| {
                    let sel = json!({"app": "web", "rollout-safe.dev/color": "green"});
                    d["spec"]["selector"]["matchLabels"] = sel.clone();
                    d["spec"]["template"]["metadata"]["labels"] = sel;
                })
                .annotation("rollout-safe.dev/blue-green-service", "web")
                .annotation("rollout-safe.dev/blue-green-color", "green")
                .annotation("rollout-safe.dev/blue-green-base", "web")
                .build(),
        )?;
        let mut svc = seed::service(
            "web",
            &[("app", "web"), ("rollout-safe.dev/color", "green")],
        );
        svc["metadata"]["annotations"] = json!({
            "rollout-safe.dev/blue-green-phase": "switched",
            "rollout-safe.dev/blue-green-active": "green",
            "rollout-safe.dev/blue-green-previous": "blue",
            "rollout-safe.dev/blue-green-images": "app=registry.example.com/team/web:1.1.0",
            "rollout-safe.dev/blue-green-switched-at": ts(-60),
            "rollout-safe.dev/blue-green-keep-until": ts(600),
            "rollout-safe.dev/blue-green-workload": "web",
        });
        s.put("services", svc)?;
        // A canary under way: step 25% passed.
        s.put(
            "deployments",
            DeploymentBuilder::new("api", "registry.example.com/team/api:4.0.0")
                .replicas(3)
                .annotation("rollout-safe.dev/canary-phase", "running")
                .annotation("rollout-safe.dev/canary-step", "25")
                .annotation("rollout-safe.dev/canary-total", "4")
                .annotation(
                    "rollout-safe.dev/canary-images",
                    "app=registry.example.com/team/api:4.1.0",
                )
                .build(),
        )?;
        s.put(
            "deployments",
            DeploymentBuilder::new("api-canary", "registry.example.com/team/api:4.1.0")
                .replicas(1)
                .edit(|d| {
                    let sel = json!({"app": "api", "rollout-safe.dev/track": "canary"});
                    d["spec"]["selector"]["matchLabels"] = sel.clone();
                    d["spec"]["template"]["metadata"]["labels"] = sel;
                })
                .annotation("rollout-safe.dev/canary-of", "api")
                .build(),
        )?;
        s.put("statefulsets", seed::statefulset("db", 2, "postgres:16.4"))?;
        s.put(
            "daemonsets",
            daemonset("node-agent", "registry.example.com/team/agent:0.9"),
        )?;
        // Another namespace: only `-A` shows it.
        s.put(
            "deployments",
            DeploymentBuilder::new("billing", "registry.example.com/team/billing:7")
                .replicas(1)
                .edit(|d| d["metadata"]["namespace"] = json!(OTHER_NS))
                .build(),
        )?;
        Ok::<_, StandinError>(())
    })?;
    let standin = builder.start()?;
    let plugin = standin.plugin(PLUGIN);
    Ok((standin, plugin))
}

fn row<'a>(board: &'a Value, workload: &str) -> &'a Value {
    board["workloads"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["workload"] == workload))
        .unwrap_or_else(|| panic!("{workload} is not on the board: {board:#}"))
}

#[test]
fn stub_api_status_board_json_judges_every_workload() -> TestResult {
    let (standin, plugin) = cluster()?;
    let before = standin.requests().len();
    let r = plugin.run(&["status", "-o", "json"])?;
    // A crash-looping rollout is on the board: exit 1.
    r.assert_code(1);
    let board: Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}):\n{}", r.stdout));
    assert_eq!(board["namespace"], NS);
    assert_eq!(board["allNamespaces"], false);
    let rows = board["workloads"].as_array().unwrap();
    assert_eq!(rows.len(), 9, "{board:#}");
    // Failing first.
    assert_eq!(rows[0]["workload"], "deployment/pay");

    let pay = row(&board, "deployment/pay");
    assert_eq!(pay["state"], "failing");
    assert_eq!(pay["reason"], "CrashLoopBackOff");
    assert_eq!(
        pay["summary"],
        format!("2 pods CrashLoopBackOff, image {CRASHING}")
    );
    assert_eq!(pay["failingPods"].as_array().unwrap().len(), 2);

    let search = row(&board, "deployment/search");
    assert_eq!(search["state"], "progressing");
    assert_eq!(
        search["summary"], "1/1 updated, 0 available; 1 pod not ready yet",
        "{search:#}"
    );

    let cart = row(&board, "deployment/cart");
    assert_eq!(cart["state"], "complete");
    assert_eq!(cart["summary"], "3/3 ready");
    assert!(cart["inFlight"].is_null());
    assert!(cart["lastChange"].is_string());
    assert!(cart["ageSeconds"].as_u64().unwrap() < 600, "{cart:#}");
    assert_eq!(
        cart["images"]["app"],
        "registry.example.com/team/cart:3.0.1"
    );

    for (workload, color) in [
        ("deployment/web", "blue"),
        ("deployment/web-green", "green"),
    ] {
        let w = row(&board, workload);
        assert_eq!(w["state"], "complete", "{w:#}");
        let f = &w["inFlight"];
        assert_eq!(f["type"], "blue-green", "{w:#}");
        assert_eq!(f["phase"], "switched");
        assert_eq!(f["color"], color);
        assert_eq!(f["active"], "green");
        assert_eq!(f["previous"], "blue");
        assert!(f["keepUntil"].is_string());
        let text = f["text"].as_str().unwrap();
        assert!(
            text.starts_with("blue-green switched: traffic on green, blue kept "),
            "{text}"
        );
        // The colours were created after the (seeded) switch: their creation is the last change.
        assert!(w["ageSeconds"].as_u64().unwrap() < 59, "{w:#}");
    }
    for workload in ["deployment/api", "deployment/api-canary"] {
        let w = row(&board, workload);
        let f = &w["inFlight"];
        assert_eq!(f["type"], "canary", "{w:#}");
        assert_eq!(f["phase"], "running");
        assert_eq!(f["stepPassed"], 25);
        assert_eq!(f["stable"], "deployment/api");
    }
    assert_eq!(row(&board, "statefulset/db")["state"], "complete");
    assert_eq!(row(&board, "daemonset/node-agent")["state"], "complete");
    assert_eq!(board["counts"]["failing"], 1);
    assert_eq!(board["counts"]["progressing"], 1);
    assert_eq!(board["counts"]["complete"], 7);
    assert!(
        rows.iter().all(|r| r["namespace"] == NS),
        "-A was not given: {board:#}"
    );

    // One LIST per kind, namespace-wide (pods too), and nothing per workload.
    let requests = &standin.requests()[before..];
    let mut listed: Vec<&str> = requests
        .iter()
        .filter(|r| r.verb == Verb::List)
        .map(|r| r.resource.as_str())
        .collect();
    listed.sort_unstable();
    assert_eq!(
        listed,
        [
            "controllerrevisions",
            "daemonsets",
            "deployments",
            "pods",
            "replicasets",
            "services",
            "statefulsets"
        ],
        "{requests:#?}"
    );
    assert_eq!(requests.len(), 7, "{requests:#?}");
    assert!(requests.iter().all(|r| r.label_selector().is_none()));
    Ok(())
}

#[test]
fn stub_api_status_board_table_and_all_namespaces() -> TestResult {
    let (_standin, plugin) = cluster()?;
    // `-A` with no workload: what issue 13 found failing with "required arguments were not
    // provided".
    let r = plugin.run(&["status", "-A"])?;
    r.assert_code(1);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines[0].starts_with("NAMESPACE") && lines[0].contains("WORKLOAD"),
        "{}",
        r.stdout
    );
    let line_of = |w: &str| {
        lines
            .iter()
            .find(|l| l.contains(&format!("{w} ")))
            .unwrap_or_else(|| panic!("{w} missing:\n{}", r.stdout))
            .to_string()
    };
    let billing = line_of("deployment/billing");
    assert!(billing.starts_with(OTHER_NS), "{billing}");
    assert!(billing.contains("complete"), "{billing}");
    let pay = line_of("deployment/pay");
    assert!(
        pay.contains("failing")
            && pay.contains(&format!("2 pods CrashLoopBackOff, image {CRASHING}")),
        "{pay}"
    );
    let web = line_of("deployment/web");
    assert!(
        web.contains("blue-green switched: traffic on green, blue kept"),
        "{web}"
    );
    assert!(line_of("deployment/api-canary").contains("canary running: step 25% passed"));
    assert!(line_of("deployment/cart").contains(" ago"));
    assert!(
        r.stdout
            .contains("10 rollout(s) in every namespace: 1 failing, 1 progressing, 8 complete"),
        "{}",
        r.stdout
    );

    // One namespace, as `-n` says: no NAMESPACE column, no `billing`.
    let r = plugin.run(&["status", "-n", OTHER_NS])?;
    r.assert_code(0);
    assert!(r.stdout.starts_with("WORKLOAD"), "{}", r.stdout);
    assert!(r.stdout.contains("deployment/billing"), "{}", r.stdout);
    assert!(!r.stdout.contains("deployment/pay"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("1 rollout(s) in namespace team: 1 complete")
    );

    // An empty namespace says so.
    let r = plugin.run(&["status", "-n", "empty"])?;
    r.assert_code(0);
    assert!(
        r.stdout
            .contains("no Deployments, StatefulSets or DaemonSets in namespace empty"),
        "{}",
        r.stdout
    );

    // A workload and -A do not go together.
    let r = plugin.run(&["status", "deploy/cart", "-A"])?;
    r.assert_code(2)
        .assert_stderr_has("a workload is in one namespace");
    Ok(())
}

#[test]
fn stub_api_status_board_watch_rerenders_on_events() -> TestResult {
    let (standin, plugin) = cluster()?;
    for format in ["json", "table"] {
        let running = plugin.spawn(&["status", "--watch", "-o", format, "-n", OTHER_NS])?;
        running.wait_stderr(
            "status board: watching 1 rollout(s)",
            Duration::from_secs(30),
        )?;
        // A bad image for `billing`: the controllers roll it out, its new pod crash-loops, and
        // the watch events bring the board up to date.
        let image = format!("registry.example.com/team/billing:8-crash-{format}");
        standin.modify(|s| {
            let mut d = s.get("deployments", OTHER_NS, "billing").cloned().unwrap();
            d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
            s.put("deployments", d).map(drop)
        })?;
        let start = std::time::Instant::now();
        loop {
            let pods_crashing = standin.read(|s| {
                s.list("pods", Some(OTHER_NS))
                    .any(|p| p.to_string().contains("CrashLoopBackOff"))
            });
            if pods_crashing || start.elapsed() > Duration::from_secs(20) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Let the watch events arrive and the board be printed.
        std::thread::sleep(Duration::from_millis(1500));
        running.interrupt()?;
        let r = running.finish()?;
        // Ctrl-C ends a watch: exit 4, as `status --watch` of one workload.
        r.assert_code(4)
            .assert_stderr_has("status board: stopped (Ctrl-C)");
        match format {
            "json" => {
                // One JSON document a line, one per change.
                let boards: Vec<Value> = r
                    .stdout
                    .lines()
                    .map(serde_json::from_str)
                    .collect::<Result<_, _>>()
                    .unwrap_or_else(|e| panic!("not JSON lines ({e}):\n{}", r.stdout));
                assert!(boards.len() >= 2, "{}", r.stdout);
                assert_eq!(row(&boards[0], "deployment/billing")["state"], "complete");
                let last = boards.last().unwrap();
                let billing = row(last, "deployment/billing");
                assert_eq!(billing["state"], "failing", "{}", r.stdout);
                assert_eq!(billing["reason"], "CrashLoopBackOff");
                // Printed on change only: no two lines in a row say the same.
                for pair in boards.windows(2) {
                    assert_ne!(pair[0]["workloads"], pair[1]["workloads"]);
                }
            }
            _ => {
                let tables: Vec<&str> = r.stdout.split("\nWORKLOAD").collect();
                assert!(tables.len() >= 2, "{}", r.stdout);
                assert!(tables[0].contains("complete"), "{}", r.stdout);
                let last = tables.last().unwrap();
                assert!(
                    last.contains("failing") && last.contains("CrashLoopBackOff"),
                    "{}",
                    r.stdout
                );
            }
        }
        // Watches, not polling: after the initial lists, no LIST was repeated.
        let lists = standin
            .requests()
            .iter()
            .filter(|q| q.verb == Verb::List && q.resource == "deployments")
            .count();
        assert!(lists <= 2, "deployments listed {lists} times");
        // Back to a good image for the next format.
        standin.modify(|s| {
            let mut d = s.get("deployments", OTHER_NS, "billing").cloned().unwrap();
            d["spec"]["template"]["spec"]["containers"][0]["image"] =
                json!("registry.example.com/team/billing:7");
            s.put("deployments", d).map(drop)
        })?;
        standin.wait_until(Duration::from_secs(20), "billing back to 7", |s| {
            s.list("pods", Some(OTHER_NS))
                .all(|p| !p.to_string().contains("crash"))
        })?;
    }
    Ok(())
}
