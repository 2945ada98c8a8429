//! StatefulSets and DaemonSets against the stand-in API server (`rollout-safe-standin`), seeded
//! with the recorded StatefulSet `db` (15, 16: 3 replicas at revision 2 after revision 1) and
//! DaemonSet `agent` (17, 18: one pod on each of 3 nodes, maxUnavailable 1); the stand-in's
//! controllers behave as the real ones, the StatefulSet trap included (a pod of a broken
//! revision that never becomes ready blocks the StatefulSet, even after a rollback, until it is
//! deleted). Images whose tag contains `crash` crash-loop, `unready` never become ready.

mod common;

use std::time::Duration;

use common::{PLUGIN, TestResult};
use rollout_safe_standin::faults::OTHER_WRITER_ANNOTATION;
use rollout_safe_standin::scenarios::{
    AGENT_IMAGE_1, AGENT_IMAGE_2, DB_IMAGE_1, DB_IMAGE_2, NAMESPACE, recorded_sets,
};
use rollout_safe_standin::{Fault, Plugin, StaleAnswer, Standin, StandinError, Times, Verb};
use serde_json::{Value, json};

const DB_BROKEN: &str = "registry.example.com/team/db:16.0-unready";
const DB_CRASHING: &str = "registry.example.com/team/db:16.0-crash";
const DB_NEXT: &str = "registry.example.com/team/db:16.0";
const AGENT_CRASHING: &str = "registry.example.com/team/agent:1.2-crash";

fn sets() -> Result<(Standin, Plugin), StandinError> {
    let standin = recorded_sets(
        Standin::builder(NAMESPACE)
            .kubernetes_controllers()
            .reaction_delay(Duration::from_millis(200)),
    )?
    .start()?;
    let plugin = standin.plugin(PLUGIN);
    Ok((standin, plugin))
}

fn pod_image(standin: &Standin, pod: &str) -> String {
    standin
        .get("pods", pod)
        .map(|p| {
            p["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_default()
}

fn images_of(standin: &Standin, app: &str) -> Vec<String> {
    let mut v: Vec<String> = standin.read(|s| {
        s.list("pods", Some(NAMESPACE))
            .filter(|p| p["metadata"]["labels"]["app"] == app)
            .map(|p| {
                p["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    });
    v.sort();
    v
}

fn partition(standin: &Standin) -> Value {
    standin.get("statefulsets", "db").unwrap()["spec"]["updateStrategy"]["rollingUpdate"]["partition"].clone()
}

fn template_image(standin: &Standin, resource: &str, name: &str) -> Value {
    standin.get(resource, name).unwrap()["spec"]["template"]["spec"]["containers"][0]["image"]
        .clone()
}

#[test]
fn stub_api_sts_update_broken_is_rolled_back_and_the_stuck_pod_replaced() -> TestResult {
    let (standin, plugin) = sets()?;
    let r = plugin.run(&[
        "update",
        "sts/db",
        "--image",
        &format!("db={DB_BROKEN}"),
        "--readiness-budget",
        "3s",
        "--timeout",
        "90s",
    ])?;
    r.assert_code(1)
        .assert_stderr_has("rolling back statefulset/db: rollback to revision 2")
        .assert_stderr_has("deleted pod db-2")
        .assert_stderr_has("statefulset/db rolled back to revision 2 and healthy again");
    // The write carried the precondition and the fresh cause.
    let patches = standin.requests_with(Verb::Patch);
    let first = patches[0].json_body().unwrap();
    assert_eq!(first[0]["op"], "test");
    assert_eq!(first[0]["path"], "/metadata/resourceVersion");
    assert!(first.to_string().contains("alice: image db="), "{first}");
    // Every pod back on the restored revision, ready.
    assert_eq!(images_of(&standin, "db"), vec![DB_IMAGE_2.to_owned(); 3]);
    let s = standin.get("statefulsets", "db").unwrap();
    assert_eq!(s["status"]["readyReplicas"], 3);
    assert_eq!(
        template_image(&standin, "statefulsets", "db"),
        json!(DB_IMAGE_2)
    );
    // The history shows both revisions with their causes.
    let h = plugin.run(&["history", "sts/db", "-o", "json"])?;
    h.assert_code(0);
    let v = h.json()?;
    let rows = v.as_array().unwrap();
    let causes: Vec<(i64, String)> = rows
        .iter()
        .map(|r| {
            (
                r["revision"].as_i64().unwrap(),
                r["changeCause"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(causes.len(), 3, "{causes:?}");
    assert_eq!(causes[0], (1, "initial release 15.4".to_owned()));
    assert!(
        causes[1]
            .1
            .starts_with("alice: image db=registry.example.com/team/db:16.0-unready"),
        "{causes:?}"
    );
    assert_eq!(causes[2].0, 4);
    assert!(causes[2].1.contains("15.5"), "{causes:?}");
    assert_eq!(rows[2]["current"], true);
    let table = plugin.run(&["history", "statefulset/db"])?;
    table
        .assert_code(0)
        .assert_stdout_has("initial release 15.4")
        .assert_stdout_has("4 (current)");
    Ok(())
}

#[test]
fn stub_api_sts_update_good_completes() -> TestResult {
    let (standin, plugin) = sets()?;
    let r = plugin.run(&[
        "update",
        "sts/db",
        "--image",
        &format!("db={DB_NEXT}"),
        "--timeout",
        "60s",
    ])?;
    r.assert_code(0)
        .assert_stderr_has("statefulset/db rolled out");
    assert_eq!(images_of(&standin, "db"), vec![DB_NEXT.to_owned(); 3]);
    Ok(())
}

#[test]
fn stub_api_sts_on_delete_is_refused_with_what_to_do() -> TestResult {
    let (standin, plugin) = sets()?;
    standin.modify(|s| {
        let mut db = s.get("statefulsets", NAMESPACE, "db").cloned().unwrap();
        db["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        s.put("statefulsets", db).map(drop)
    })?;
    let r = plugin.run(&["update", "sts/db", "--image", &format!("db={DB_NEXT}")])?;
    r.assert_code(2)
        .assert_stderr_has("OnDelete")
        .assert_stderr_has("RollingUpdate");
    assert!(standin.requests_with(Verb::Patch).is_empty());
    Ok(())
}

#[test]
fn stub_api_ds_crashloop_update_is_rolled_back() -> TestResult {
    let (standin, plugin) = sets()?;
    let r = plugin.run(&[
        "update",
        "ds/agent",
        "--image",
        &format!("agent={AGENT_CRASHING}"),
        "--timeout",
        "60s",
    ])?;
    r.assert_code(1)
        .assert_stderr_has("rolling back daemonset/agent")
        .assert_stderr_has("daemonset/agent rolled back to revision 2 and healthy again");
    assert_eq!(
        images_of(&standin, "agent"),
        vec![AGENT_IMAGE_2.to_owned(); 3]
    );
    Ok(())
}

#[test]
fn stub_api_undo_ds_to_revision_1_restores_the_old_image() -> TestResult {
    let (standin, plugin) = sets()?;
    let r = plugin.run(&["undo", "ds/agent", "--to-revision", "1", "--timeout", "60s"])?;
    r.assert_code(0)
        .assert_stderr_has("daemonset/agent rolled back to revision 1");
    assert_eq!(
        template_image(&standin, "daemonsets", "agent"),
        json!(AGENT_IMAGE_1)
    );
    assert_eq!(
        images_of(&standin, "agent"),
        vec![AGENT_IMAGE_1.to_owned(); 3]
    );
    let patch = &standin.requests_with(Verb::Patch)[0];
    let ops = patch.json_body().unwrap();
    assert_eq!(ops[0]["op"], "test");
    let ds = standin.get("daemonsets", "agent").unwrap();
    let cause = ds["metadata"]["annotations"]["kubernetes.io/change-cause"]
        .as_str()
        .unwrap();
    assert!(
        cause.starts_with("rollback to revision 1 (initial release 1.0) by alice"),
        "{cause}"
    );
    // The history now has revision 1 again as the newest number.
    let h = plugin.run(&["history", "ds/agent", "-o", "json"])?;
    let v = h.json()?;
    let revisions: Vec<i64> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["revision"].as_i64().unwrap())
        .collect();
    assert_eq!(revisions, [2, 3]);
    // A revision that does not exist: exit 2, naming those that do.
    plugin
        .run(&["undo", "ds/agent", "--to-revision", "7"])?
        .assert_code(2)
        .assert_stderr_has("revisions: 2, 3");
    Ok(())
}

#[test]
fn stub_api_undo_sts_previous_revision() -> TestResult {
    let (standin, plugin) = sets()?;
    let r = plugin.run(&["undo", "sts/db", "--timeout", "60s"])?;
    r.assert_code(0)
        .assert_stderr_has("statefulset/db rolled back to revision 1");
    assert_eq!(images_of(&standin, "db"), vec![DB_IMAGE_1.to_owned(); 3]);
    Ok(())
}

#[test]
fn stub_api_partition_canary_stops_at_its_first_step_when_the_top_ordinal_fails() -> TestResult {
    let (standin, plugin) = sets()?;
    let r = plugin.run(&[
        "canary",
        "sts/db",
        "--image",
        &format!("db={DB_CRASHING}"),
        "--steps",
        "1,2,100%",
        "--timeout",
        "60s",
    ])?;
    r.assert_code(1)
        .assert_stderr_has("step 1: partition 2")
        .assert_stderr_has("canary failed")
        .assert_stderr_has("deleted pod db-2");
    // Only the first step was written; the abort put back the partition and the template.
    let partitions: Vec<Value> = standin
        .requests_with(Verb::Patch)
        .iter()
        .filter_map(|p| p.json_body())
        .flat_map(|ops| ops.as_array().cloned().unwrap_or_default())
        .filter(|o| {
            o["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/partition"))
        })
        .map(|o| o["value"].clone())
        .collect();
    assert!(!partitions.contains(&json!(1)), "{partitions:?}");
    assert_eq!(partition(&standin), json!(0));
    assert_eq!(
        template_image(&standin, "statefulsets", "db"),
        json!(DB_IMAGE_2)
    );
    assert_eq!(images_of(&standin, "db"), vec![DB_IMAGE_2.to_owned(); 3]);
    assert_eq!(pod_image(&standin, "db-2"), DB_IMAGE_2);
    let s = standin.get("statefulsets", "db").unwrap();
    assert!(s["metadata"]["annotations"]["rollout-safe.dev/canary-partition"].is_null());
    Ok(())
}

#[test]
fn stub_api_partition_canary_promotes_step_by_step() -> TestResult {
    let (standin, plugin) = sets()?;
    let r = plugin.run(&[
        "canary",
        "sts/db",
        "--image",
        &format!("db={DB_NEXT}"),
        "--steps",
        "1,2,100%",
        "--interval",
        "0s",
        "--timeout",
        "90s",
    ])?;
    r.assert_code(0)
        .assert_stderr_has("step 1: partition 2")
        .assert_stderr_has("step 2: partition 1")
        .assert_stderr_has("step 100%: partition 0");
    assert_eq!(images_of(&standin, "db"), vec![DB_NEXT.to_owned(); 3]);
    assert_eq!(partition(&standin), json!(0));
    Ok(())
}

#[test]
fn stub_api_plan_sets() -> TestResult {
    let (_standin, plugin) = sets()?;
    plugin
        .run(&["plan", "sts/db"])?
        .assert_code(0)
        .assert_stdout_has("db-2, db-1, db-0");
    let r = plugin.run(&["plan", "ds/agent", "-o", "json"])?;
    r.assert_code(0);
    let v = r.json()?;
    assert_eq!(v[0]["plan"]["maxUnavailableNodes"], 1);
    assert_eq!(v[0]["plan"]["nodes"], 3);
    Ok(())
}

#[test]
fn stub_api_partition_write_with_a_stale_precondition_is_recomputed() -> TestResult {
    // Another writer changes the StatefulSet just before the first partition write lands: the
    // server answers 409 Conflict (as recorded in 20); the plugin re-reads, recomputes and
    // writes again, keeping the other writer's change.
    let standin = recorded_sets(
        Standin::builder(NAMESPACE)
            .kubernetes_controllers()
            .reaction_delay(Duration::from_millis(200)),
    )?
    .fault(
        Fault::ConcurrentWrite {
            resource: "statefulsets".into(),
            body_contains: Some("partition".into()),
            answer: StaleAnswer::Conflict,
        },
        Times::Next(1),
    )
    .start()?;
    let plugin = standin.plugin(PLUGIN);
    let r = plugin.run(&[
        "canary",
        "sts/db",
        "--image",
        &format!("db={DB_NEXT}"),
        "--steps",
        "1,100%",
        "--timeout",
        "60s",
    ])?;
    r.assert_code(0)
        .assert_stderr_has("conflict: statefulset/db changed since it was read");
    let s = standin.get("statefulsets", "db").unwrap();
    assert!(
        s["metadata"]["annotations"][OTHER_WRITER_ANNOTATION].is_string(),
        "the other writer's change was clobbered: {s}"
    );
    assert_eq!(images_of(&standin, "db"), vec![DB_NEXT.to_owned(); 3]);
    Ok(())
}

#[test]
fn stub_api_canary_abort_and_refusals() -> TestResult {
    let (standin, plugin) = sets()?;
    plugin
        .run(&["canary", "abort", "sts/db"])?
        .assert_code(0)
        .assert_stdout_has("no canary of statefulset/db to abort");
    plugin
        .run(&["canary", "ds/agent", "--image", "agent=x:1"])?
        .assert_code(2)
        .assert_stderr_has("DaemonSet, which has no partition");
    // Steps that never move every pod: refused before anything is written.
    plugin
        .run(&[
            "canary",
            "sts/db",
            "--image",
            &format!("db={DB_NEXT}"),
            "--steps",
            "1,2",
        ])?
        .assert_code(2)
        .assert_stderr_has("end with one that moves them all");
    assert!(standin.requests_with(Verb::Patch).is_empty());
    Ok(())
}

#[test]
fn stub_api_sts_rollback_keeps_healthy_pods_below_a_partition() -> TestResult {
    // An operator's staged rollout: partition 2, so db-2 runs 16.0 and db-0, db-1 stay on 15.5.
    let (standin, plugin) = sets()?;
    standin.modify(|s| {
        let mut db = s.get("statefulsets", NAMESPACE, "db").cloned().unwrap();
        db["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = json!(2);
        db["spec"]["template"]["spec"]["containers"][0]["image"] = json!(DB_NEXT);
        s.put("statefulsets", db).map(drop)
    })?;
    standin.wait_until(Duration::from_secs(20), "db-2 on 16.0, ready", |s| {
        s.get("statefulsets", NAMESPACE, "db").is_some_and(|d| {
            d["status"]["updatedReplicas"] == 1 && d["status"]["readyReplicas"] == 3
        })
    })?;
    let uid = |pod: &str| standin.get("pods", pod).unwrap()["metadata"]["uid"].clone();
    let (uid_0, uid_1) = (uid("db-0"), uid("db-1"));
    let r = plugin.run(&[
        "update",
        "sts/db",
        "--image",
        &format!("db={DB_BROKEN}"),
        "--readiness-budget",
        "2s",
        "--timeout",
        "60s",
    ])?;
    r.assert_code(1)
        .assert_stderr_has("deleted pod db-2")
        .assert_stderr_lacks("deleted pod db-1")
        .assert_stderr_lacks("deleted pod db-0");
    assert_eq!((uid("db-0"), uid("db-1")), (uid_0, uid_1));
    assert_eq!(pod_image(&standin, "db-2"), DB_NEXT);
    assert_eq!(pod_image(&standin, "db-0"), DB_IMAGE_2);
    Ok(())
}
