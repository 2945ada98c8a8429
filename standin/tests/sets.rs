//! The StatefulSet and DaemonSet controllers of the stand-in: revisions as recorded (16, 18),
//! ordered rolling updates, the stuck-pod trap, partitions, and the DaemonSet's availability
//! bound.

use rollout_safe_standin::scenarios::{
    AGENT_IMAGE_1, AGENT_IMAGE_2, DB_IMAGE_1, DB_IMAGE_2, NAMESPACE, recorded_sets,
};
use rollout_safe_standin::{Standin, StandinBuilder, Store};
use serde_json::{Value, json};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn sets() -> Result<StandinBuilder, Box<dyn std::error::Error>> {
    Ok(recorded_sets(
        Standin::builder(NAMESPACE).kubernetes_controllers(),
    )?)
}

fn pods(store: &Store, app: &str) -> Vec<Value> {
    store
        .list("pods", Some(NAMESPACE))
        .filter(|p| p["metadata"]["labels"]["app"] == app)
        .cloned()
        .collect()
}

fn image(p: &Value) -> &str {
    p["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
}

fn set_image(b: &mut StandinBuilder, resource: &str, name: &str, image: &str) {
    let store = b.store();
    let mut o = store.get(resource, NAMESPACE, name).cloned().unwrap();
    o["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
    store.put(resource, o).unwrap();
}

fn revisions(store: &Store, owner: &str) -> Vec<(i64, String)> {
    let mut v: Vec<(i64, String)> = store
        .list("controllerrevisions", Some(NAMESPACE))
        .filter(|r| r["metadata"]["ownerReferences"][0]["name"] == owner)
        .map(|r| {
            let t = &r["data"]["spec"]["template"]["spec"]["containers"][0]["image"];
            (
                r["revision"].as_i64().unwrap(),
                t.as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn recorded_sets_run_their_recorded_revision() -> TestResult {
    let mut b = sets()?;
    let store = b.store();
    let db = pods(store, "db");
    let mut names: Vec<&str> = db
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["db-0", "db-1", "db-2"]);
    for p in &db {
        assert_eq!(
            p["metadata"]["labels"]["controller-revision-hash"],
            "db-7cc9465d77"
        );
        assert_eq!(image(p), DB_IMAGE_2);
    }
    let s = store.get("statefulsets", NAMESPACE, "db").unwrap();
    assert_eq!(s["status"]["updateRevision"], "db-7cc9465d77");
    assert_eq!(s["status"]["currentRevision"], "db-7cc9465d77");
    assert_eq!(s["status"]["readyReplicas"], 3);
    assert_eq!(
        revisions(store, "db"),
        [(1, DB_IMAGE_1.to_owned()), (2, DB_IMAGE_2.to_owned())]
    );
    let agent = pods(store, "agent");
    assert_eq!(agent.len(), 3);
    for p in &agent {
        assert_eq!(
            p["metadata"]["labels"]["controller-revision-hash"],
            "69764bb99"
        );
        assert_eq!(p["metadata"]["labels"]["pod-template-generation"], "2");
        assert_eq!(image(p), AGENT_IMAGE_2);
    }
    let ds = store.get("daemonsets", NAMESPACE, "agent").unwrap();
    assert_eq!(ds["status"]["numberAvailable"], 3);
    assert_eq!(ds["status"]["updatedNumberScheduled"], 3);
    Ok(())
}

#[test]
fn a_statefulset_pod_that_never_becomes_ready_blocks_even_after_the_rollback() -> TestResult {
    let mut b = sets()?;
    set_image(
        &mut b,
        "statefulsets",
        "db",
        "registry.example.com/team/db:16.0-unready",
    );
    b = b.settle();
    let store = b.store();
    let by_name = |s: &Store, n: &str| s.get("pods", NAMESPACE, n).cloned().unwrap();
    // The highest ordinal went first and is stuck; the others wait.
    assert!(image(&by_name(store, "db-2")).ends_with("unready"));
    assert_eq!(image(&by_name(store, "db-1")), DB_IMAGE_2);
    let s = store.get("statefulsets", NAMESPACE, "db").unwrap().clone();
    assert_eq!(s["status"]["updatedReplicas"], 1);
    assert_eq!(s["status"]["readyReplicas"], 2);
    // The template back: a new number for revision 2, and db-2 still stuck.
    set_image(&mut b, "statefulsets", "db", DB_IMAGE_2);
    b = b.settle();
    let store = b.store();
    assert!(image(&by_name(store, "db-2")).ends_with("unready"));
    let s = store.get("statefulsets", NAMESPACE, "db").unwrap().clone();
    assert_eq!(s["status"]["updateRevision"], "db-7cc9465d77");
    assert_eq!(
        revisions(store, "db")
            .iter()
            .map(|r| r.0)
            .collect::<Vec<_>>(),
        [1, 3, 4]
    );
    // Deleted, it comes back on the restored revision.
    store.delete("pods", NAMESPACE, "db-2")?;
    b = b.settle();
    let store = b.store();
    assert_eq!(image(&by_name(store, "db-2")), DB_IMAGE_2);
    let s = store.get("statefulsets", NAMESPACE, "db").unwrap();
    assert_eq!(s["status"]["readyReplicas"], 3);
    assert_eq!(s["status"]["currentRevision"], "db-7cc9465d77");
    Ok(())
}

#[test]
fn a_partition_keeps_the_lower_ordinals() -> TestResult {
    let mut b = sets()?;
    {
        let store = b.store();
        let mut s = store.get("statefulsets", NAMESPACE, "db").cloned().unwrap();
        s["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = json!(2);
        s["spec"]["template"]["spec"]["containers"][0]["image"] = json!("db:16");
        store.put("statefulsets", s)?;
    }
    b = b.settle();
    let store = b.store();
    let images: Vec<(String, String)> = {
        let mut v: Vec<(String, String)> = pods(store, "db")
            .iter()
            .map(|p| {
                (
                    p["metadata"]["name"].as_str().unwrap().to_owned(),
                    image(p).to_owned(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        images,
        [
            ("db-0".to_owned(), DB_IMAGE_2.to_owned()),
            ("db-1".to_owned(), DB_IMAGE_2.to_owned()),
            ("db-2".to_owned(), "db:16".to_owned())
        ]
    );
    let s = store.get("statefulsets", NAMESPACE, "db").unwrap();
    assert_eq!(s["status"]["updatedReplicas"], 1);
    assert_eq!(s["status"]["currentRevision"], "db-7cc9465d77");
    Ok(())
}

#[test]
fn a_crash_looping_daemonset_stops_at_max_unavailable_and_recovers_on_rollback() -> TestResult {
    let mut b = sets()?;
    set_image(
        &mut b,
        "daemonsets",
        "agent",
        "registry.example.com/team/agent:1.2-crash",
    );
    b = b.settle();
    let store = b.store();
    let agent = pods(store, "agent");
    assert_eq!(agent.len(), 3);
    let crashing = agent.iter().filter(|p| image(p).ends_with("crash")).count();
    assert_eq!(crashing, 1, "maxUnavailable 1: one node at a time");
    let ds = store.get("daemonsets", NAMESPACE, "agent").unwrap().clone();
    assert_eq!(
        ds["metadata"]["annotations"]["deprecated.daemonset.template.generation"],
        "3"
    );
    assert_eq!(ds["status"]["numberUnavailable"], 1);
    set_image(&mut b, "daemonsets", "agent", AGENT_IMAGE_1);
    b = b.settle();
    let store = b.store();
    let agent = pods(store, "agent");
    assert!(agent.iter().all(|p| image(p) == AGENT_IMAGE_1), "{agent:?}");
    assert_eq!(
        revisions(store, "agent")
            .iter()
            .map(|r| r.0)
            .collect::<Vec<_>>(),
        [2, 3, 4]
    );
    Ok(())
}
