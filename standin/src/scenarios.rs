//! Ready-made clusters for tests.

use serde_json::json;

use crate::controllers::deployment::REVISION;
use crate::recording::files;
use crate::seed::{self, DeploymentBuilder};
use crate::server::{StandinBuilder, StandinError};

/// The namespace of the recordings.
pub const NAMESPACE: &str = "api";
/// The image of revision 1 of the recorded Deployment `good`.
pub const GOOD_IMAGE_1: &str = "registry.example.com/team/good:2.3.1";
/// The image of its revision 2.
pub const GOOD_IMAGE_2: &str = "registry.example.com/team/good:2.4.0";
/// The resourceVersion Deployment `good` has when a [`recorded_good`] stand-in starts.
pub const GOOD_RESOURCE_VERSION: u64 = 400;

/// The recorded Deployment `good` (01), its ReplicaSets (07), Pods (08) and Events (14), made
/// consistent: it runs revision 2 (image 2.4.0, ReplicaSet `good-7bd446db9`, 3 ready pods) after
/// revision 1 (2.3.1, `good-69bb684dd9`, created 2026-11-22T23:10:24Z), and it is at
/// resourceVersion [`GOOD_RESOURCE_VERSION`], as is the whole store.
pub fn recorded_good(builder: StandinBuilder) -> Result<StandinBuilder, StandinError> {
    let d = DeploymentBuilder::recorded()?
        .annotation(REVISION, "2")
        .annotation(
            "kubernetes.io/change-cause",
            &format!("image app={GOOD_IMAGE_2}"),
        )
        .image(GOOD_IMAGE_2)
        .edit(|d| {
            d["metadata"]["generation"] = json!(2);
            d["status"]["observedGeneration"] = json!(2);
        })
        .build();
    let mut replicasets = seed::recorded_items(files::LIST_REPLICASETS)?;
    for rs in &mut replicasets {
        let current = rs["spec"]["template"]["spec"]["containers"][0]["image"] == GOOD_IMAGE_2;
        if current {
            // The recorded revision 2 was made by the merge patch of 03, which replaced the
            // container list and so lost probes, ports and preStop. Here it carries the whole
            // template, as a careful client would have left it.
            let hash = rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"].clone();
            let mut t = d["spec"]["template"].clone();
            t["metadata"]["labels"]["pod-template-hash"] = hash;
            rs["spec"]["template"] = t;
        }
        rs["spec"]["replicas"] = json!(if current { 3 } else { 0 });
    }
    let mut pods = seed::recorded_items(files::LIST_PODS)?;
    for p in &mut pods {
        // Recorded mid-rollout; here every pod has become ready.
        for c in p["status"]["conditions"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            c["status"] = json!("True");
        }
        for c in p["status"]["containerStatuses"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            c["ready"] = json!(true);
        }
    }
    let events = seed::recorded_items(files::LIST_EVENTS)?;
    let mut builder = builder.seed(|store| {
        store.put("deployments", d)?;
        for rs in replicasets {
            store.put("replicasets", rs)?;
        }
        for p in pods {
            store.put("pods", p)?;
        }
        for e in events {
            store.put("events", e)?;
        }
        Ok::<_, StandinError>(())
    })?;
    // The controllers catch up (old pods go, revision 2 gets its 3 pods); then the Deployment is
    // written once more, at the resourceVersion the tests know.
    builder = builder.settle();
    builder
        .store()
        .advance_resource_version_to(GOOD_RESOURCE_VERSION - 1)?;
    builder.store().rewrite("deployments", NAMESPACE, "good")?;
    Ok(builder)
}

/// Deployment `shop` (the recorded one, renamed: `replicas` pods of `image`, selector
/// `app: shop`, `minReadySeconds: 0`) behind Service `shop` (selector `app: shop`).
pub fn shop(
    builder: StandinBuilder,
    replicas: i64,
    image: &str,
) -> Result<StandinBuilder, StandinError> {
    let d = DeploymentBuilder::recorded()?
        .name("shop")
        .without_annotation(REVISION)
        .annotation(
            "kubernetes.io/change-cause",
            &format!("initial release {image}"),
        )
        .replicas(replicas)
        .app("shop")
        .image(image)
        .edit(|d| d["spec"]["minReadySeconds"] = json!(0))
        .build();
    builder.seed(|store| {
        store.put("deployments", d)?;
        store.put("services", seed::service("shop", &[("app", "shop")]))?;
        Ok::<_, StandinError>(())
    })
}

/// The image of revision 1 of the recorded StatefulSet `db` (15, 16).
pub const DB_IMAGE_1: &str = "registry.example.com/team/db:15.4";
/// The image of its revision 2, which it runs.
pub const DB_IMAGE_2: &str = "registry.example.com/team/db:15.5";
/// The image of revision 1 of the recorded DaemonSet `agent` (17, 18).
pub const AGENT_IMAGE_1: &str = "registry.example.com/team/agent:1.0";
/// The image of its revision 2, which it runs.
pub const AGENT_IMAGE_2: &str = "registry.example.com/team/agent:1.1";

/// The recorded StatefulSet `db` (15: 3 replicas, readiness probe, partition 0) and DaemonSet
/// `agent` (17: maxUnavailable 1, maxSurge 0) with their recorded ControllerRevisions (16, 18):
/// both at revision 2 after revision 1, with the change-causes of both. The controllers then
/// create their pods (ordinals `db-0..2`; one `agent` pod on each of the three nodes), of
/// revision 2.
pub fn recorded_sets(builder: StandinBuilder) -> Result<StandinBuilder, StandinError> {
    let mut db = seed::recorded_object(files::GET_STATEFULSET)?;
    let mut agent = seed::recorded_object(files::GET_DAEMONSET)?;
    for o in [&mut db, &mut agent] {
        if let Some(a) = o["metadata"]["annotations"].as_object_mut() {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
        // Recorded before the controllers counted the pods, which they do again here.
        o["status"] = json!({});
    }
    let mut revisions = seed::recorded_items(files::LIST_STATEFULSET_REVISIONS)?;
    revisions.extend(seed::recorded_items(files::LIST_DAEMONSET_REVISIONS)?);
    for r in &mut revisions {
        if let Some(a) = r["metadata"]["annotations"].as_object_mut() {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
        }
    }
    builder
        .seed(|store| {
            store.put("statefulsets", db)?;
            store.put("daemonsets", agent)?;
            for r in revisions {
                store.put("controllerrevisions", r)?;
            }
            Ok::<_, StandinError>(())
        })
        .map(StandinBuilder::settle)
}
