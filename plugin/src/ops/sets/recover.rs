//! The StatefulSet trap: a pod of a broken revision that never becomes Running and Ready stops
//! the controller, which then replaces nothing, not even after the template is rolled back
//! (Kubernetes documents it: "you must delete the pods the controller created with the bad
//! configuration"). After putting a template back, the plugin does that: once the controller
//! names the restored revision, it deletes the pods that are not on it.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use rollout_safe_policy::strategy::hold::pod_ready;

use crate::cluster::client::Cluster;
use crate::cluster::sets::{
    delete_pod, get_set, owned_pods, pod_revision, pods_off_revision, wait_update_revision,
};
use crate::error::Error;

/// Which pods off the restored revision go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replace {
    /// After a failed update or an aborted canary: the pods of the revision just abandoned
    /// (`Some`: its name, as the controller named it before the rollback; `None`: unknown, then
    /// every pod off the restored revision), and any pod off the restored one that is not
    /// Ready. Ready pods of an older revision kept below a partition stay.
    Abandoned(Option<String>),
    /// Only those that are not Ready (after an `undo`: the controller replaces the others).
    Unready,
}

/// Waits (up to `limit`) for StatefulSet `name`'s controller to name the restored revision,
/// then deletes its pods not on it (as `which` says), highest ordinal first, saying so.
/// Returns the pods deleted.
pub async fn replace_pods_off_revision(
    cluster: &Cluster,
    name: &str,
    limit: Duration,
    which: Replace,
) -> Result<Vec<String>, Error> {
    let Some(revision) = wait_update_revision(cluster, name, limit).await? else {
        eprintln!(
            "statefulset/{name}: the controller has not taken up the restored template within {}s; \
             no pod deleted (delete the pods still on the broken revision yourself if they stay unready)",
            limit.as_secs()
        );
        return Ok(Vec::new());
    };
    let s: StatefulSet = get_set(cluster, name).await?;
    let pods = owned_pods(cluster, &s).await?;
    let mut deleted = Vec::new();
    let doomed: Vec<_> = match &which {
        Replace::Unready => pods_off_revision(&pods, &revision, true),
        Replace::Abandoned(None) => pods_off_revision(&pods, &revision, false),
        Replace::Abandoned(Some(broken)) => pods_off_revision(&pods, &revision, false)
            .into_iter()
            .filter(|p| pod_revision(p) == Some(broken.as_str()) || !pod_ready(p))
            .collect(),
    };
    for p in doomed {
        let pod = p.metadata.name.clone().unwrap_or_default();
        if delete_pod(cluster, &pod).await? {
            eprintln!(
                "statefulset/{name}: deleted pod {pod} (still on revision {}, not the restored {revision}); \
                 the StatefulSet controller does not replace a pod stuck on a broken revision by itself, \
                 it recreates it on the restored one",
                pod_revision(p).unwrap_or("?")
            );
            deleted.push(pod);
        }
    }
    Ok(deleted)
}
