//! StatefulSets and DaemonSets: reading them, their pods, and their revision history from the
//! ControllerRevisions they own, the way `kubectl rollout history` / `undo` read it (`revision`,
//! the template in `data.spec.template`, the change-cause annotation copied from the owner); and
//! deleting the pods a StatefulSet will not replace by itself. Writes go through
//! `patch::write_object` (a resourceVersion precondition).

use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use rollout_safe_policy::check::CHANGE_CAUSE_ANNOTATION;
use rollout_safe_policy::judge::{
    CONTROLLER_REVISION_HASH_LABEL, controlled_by, equal_ignore_hash, normalized_template,
};
use rollout_safe_policy::strategy::edit::template_images;
use rollout_safe_policy::strategy::hold::pod_ready;
use rollout_safe_policy::{Workload, WorkloadKind};

use super::client::Cluster;
use super::errors::{api_error, is_not_found};
use super::patch::{Guarded, write_object};
use super::refs::WorkloadRef;
use super::revisions::{Revision, selector_string};
use crate::error::Error;

/// A StatefulSet or a DaemonSet: what the operations read of either.
pub trait RolledSet: Guarded + Send + Sync + 'static {
    const KIND: WorkloadKind;
    fn template(&self) -> &PodTemplateSpec;
    fn template_mut(&mut self) -> &mut PodTemplateSpec;
    fn selector(&self) -> &LabelSelector;
    /// The update strategy is `OnDelete`: a new template replaces no pod by itself.
    fn on_delete(&self) -> bool;
    fn workload(&self) -> Workload;
    /// The revision the controller rolls to, once it has seen the latest spec
    /// (`status.updateRevision` of a StatefulSet; `None` for a DaemonSet, whose pods carry
    /// the hash of the revision of its template).
    fn observed_update_revision(&self) -> Option<String>;
}

fn observed(generation: Option<i64>, observed: Option<i64>) -> bool {
    observed.unwrap_or(0) >= generation.unwrap_or(0) && observed.is_some()
}

impl RolledSet for StatefulSet {
    const KIND: WorkloadKind = WorkloadKind::StatefulSet;
    fn template(&self) -> &PodTemplateSpec {
        &self.spec.template
    }
    fn template_mut(&mut self) -> &mut PodTemplateSpec {
        &mut self.spec.template
    }
    fn selector(&self) -> &LabelSelector {
        &self.spec.selector
    }
    fn on_delete(&self) -> bool {
        rollout_safe_policy::strategy::partition::is_on_delete(self)
    }
    fn workload(&self) -> Workload {
        Workload::StatefulSet(Box::new(self.clone()))
    }
    fn observed_update_revision(&self) -> Option<String> {
        let status = self.status.as_ref()?;
        if !observed(self.metadata.generation, status.observed_generation) {
            return None;
        }
        status.update_revision.clone()
    }
}

impl RolledSet for DaemonSet {
    const KIND: WorkloadKind = WorkloadKind::DaemonSet;
    fn template(&self) -> &PodTemplateSpec {
        &self.spec.template
    }
    fn template_mut(&mut self) -> &mut PodTemplateSpec {
        &mut self.spec.template
    }
    fn selector(&self) -> &LabelSelector {
        &self.spec.selector
    }
    fn on_delete(&self) -> bool {
        self.spec
            .update_strategy
            .as_ref()
            .and_then(|u| u.type_.as_deref())
            == Some("OnDelete")
    }
    fn workload(&self) -> Workload {
        Workload::DaemonSet(Box::new(self.clone()))
    }
    fn observed_update_revision(&self) -> Option<String> {
        None
    }
}

/// `statefulset/db`
pub fn reference<K: RolledSet>(o: &K) -> WorkloadRef {
    WorkloadRef {
        kind: K::KIND,
        name: o.meta().name.clone().unwrap_or_default(),
    }
}

fn kind_name(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment => "Deployment",
        WorkloadKind::StatefulSet => "StatefulSet",
        WorkloadKind::DaemonSet => "DaemonSet",
    }
}

fn api<K: RolledSet>(cluster: &Cluster) -> Api<K> {
    Api::namespaced(cluster.client.clone(), &cluster.namespace)
}

/// Reads a StatefulSet or DaemonSet; 404/403 become the plugin's messages (exit 5).
pub async fn get_set<K: RolledSet>(cluster: &Cluster, name: &str) -> Result<K, Error> {
    api::<K>(cluster)
        .get(name)
        .await
        .map_err(|e| api_error(e, cluster.op("get", K::RESOURCE, Some(name))))
}

fn list_params<K: RolledSet>(cluster: &Cluster, o: &K) -> Result<ListParams, Error> {
    let selector = selector_string(o.selector(), &reference(o).to_string(), &cluster.namespace)?;
    Ok(ListParams::default().labels(&selector))
}

/// The ControllerRevisions `o` controls (listed by its selector, kept by owner reference).
pub async fn owned_revisions<K: RolledSet>(
    cluster: &Cluster,
    o: &K,
) -> Result<Vec<ControllerRevision>, Error> {
    let lp = list_params(cluster, o)?;
    let api: Api<ControllerRevision> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let list = api
        .list(&lp)
        .await
        .map_err(|e| api_error(e, cluster.op("list", "controllerrevisions.apps", None)))?;
    Ok(list
        .items
        .into_iter()
        .filter(|r| controlled_by(&r.metadata, kind_name(K::KIND), o.meta()))
        .collect())
}

/// The pods `o` controls.
pub async fn owned_pods<K: RolledSet>(cluster: &Cluster, o: &K) -> Result<Vec<Pod>, Error> {
    let lp = list_params(cluster, o)?;
    let list = cluster
        .pods()
        .list(&lp)
        .await
        .map_err(|e| api_error(e, cluster.op("list", "pods", None)))?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| controlled_by(&p.metadata, kind_name(K::KIND), o.meta()))
        .collect())
}

/// The template a ControllerRevision holds (`data.spec.template`, without the strategic-merge
/// `$patch` directive). `None` when it holds none or not a pod template.
pub fn revision_template(r: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = r.data.0.get("spec")?.get("template")?.clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

/// The `controller-revision-hash` a pod of revision `r` carries: the revision's name for a
/// StatefulSet, its hash label for a DaemonSet.
pub fn pod_hash_of(kind: WorkloadKind, r: &ControllerRevision) -> Option<String> {
    match kind {
        WorkloadKind::DaemonSet => r
            .metadata
            .labels
            .as_ref()?
            .get(CONTROLLER_REVISION_HASH_LABEL)
            .cloned(),
        _ => r.metadata.name.clone(),
    }
}

/// The pod's `controller-revision-hash`.
pub fn pod_revision(p: &Pod) -> Option<&str> {
    p.metadata
        .labels
        .as_ref()?
        .get(CONTROLLER_REVISION_HASH_LABEL)
        .map(String::as_str)
}

/// The revisions of `o`, oldest first, as `history` shows them: `replica_set` holds the
/// ControllerRevision's name and `replicas` the pods on it. Revisions without a template are
/// skipped.
pub fn set_revisions<K: RolledSet>(
    o: &K,
    crs: &[ControllerRevision],
    pods: &[Pod],
) -> Vec<Revision> {
    let mut out: Vec<Revision> = crs
        .iter()
        .filter(|r| controlled_by(&r.metadata, kind_name(K::KIND), o.meta()))
        .filter_map(|r| {
            let template = revision_template(r)?;
            let hash = pod_hash_of(K::KIND, r);
            let on_it = pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| hash.is_some() && pod_revision(p) == hash.as_deref())
                .count();
            Some(Revision {
                number: r.revision?,
                replica_set: r.metadata.name.clone().unwrap_or_default(),
                change_cause: r
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(CHANGE_CAUSE_ANNOTATION))
                    .cloned(),
                images: template_images(&template),
                created: r.metadata.creation_timestamp.as_ref().map(|t| t.0),
                current: equal_ignore_hash(o.template(), &template),
                template: normalized_template(&template),
                replicas: i32::try_from(on_it).unwrap_or(i32::MAX),
            })
        })
        .collect();
    out.sort_by_key(|r| r.number);
    if out.iter().filter(|r| r.current).count() > 1 {
        let top = out.iter().filter(|r| r.current).map(|r| r.number).max();
        for r in &mut out {
            r.current = Some(r.number) == top;
        }
    }
    out
}

/// kubectl's rollback target for a StatefulSet or DaemonSet: revision `to_revision`, else the
/// one before the highest. Errors are usage errors (exit 2).
pub fn set_undo_target(
    target: &WorkloadRef,
    revisions: &[Revision],
    to_revision: Option<i64>,
) -> Result<Revision, Error> {
    match to_revision {
        Some(n) if n < 0 => Err(Error::usage(format!(
            "revision {n} is not valid; revisions count from 1"
        ))),
        Some(n) if n > 0 => revisions
            .iter()
            .find(|r| r.number == n)
            .cloned()
            .ok_or_else(|| {
                let known: Vec<String> = revisions.iter().map(|r| r.number.to_string()).collect();
                Error::usage(format!(
                    "unable to find revision {n} in the history of {target} (revisions: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ))
            }),
        _ => {
            let mut sorted: Vec<&Revision> = revisions.iter().collect();
            sorted.sort_by_key(|r| std::cmp::Reverse(r.number));
            sorted.get(1).map(|r| (*r).clone()).ok_or_else(|| {
                Error::usage(format!(
                    "no previous revision found for {target}: nothing to roll back to"
                ))
            })
        }
    }
}

/// Waits (polling, up to `limit`) until the StatefulSet controller has seen the latest spec and
/// names its update revision; `None` if it has not within `limit`.
pub async fn wait_update_revision(
    cluster: &Cluster,
    name: &str,
    limit: Duration,
) -> Result<Option<String>, Error> {
    let until = tokio::time::Instant::now() + limit;
    loop {
        let s: StatefulSet = get_set(cluster, name).await?;
        if let Some(r) = s.observed_update_revision() {
            return Ok(Some(r));
        }
        if tokio::time::Instant::now() >= until {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The pods of a StatefulSet that are not on `revision` (and, with `only_unready`, not
/// Ready either), highest ordinal first.
pub fn pods_off_revision<'a>(pods: &'a [Pod], revision: &str, only_unready: bool) -> Vec<&'a Pod> {
    let mut v: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| pod_revision(p) != Some(revision))
        .filter(|p| !only_unready || !pod_ready(p))
        .collect();
    v.sort_by(|a, b| b.metadata.name.cmp(&a.metadata.name));
    v
}

/// Sets (`Some`) or removes (`None`) annotations on a StatefulSet or DaemonSet `name`, guarded.
pub async fn annotate_set(
    cluster: &Cluster,
    kind: WorkloadKind,
    name: &str,
    set: &[(&str, Option<String>)],
) -> Result<(), Error> {
    async fn write<K: RolledSet>(
        cluster: &Cluster,
        name: &str,
        set: &[(&str, Option<String>)],
    ) -> Result<(), Error> {
        let current: K = get_set(cluster, name).await?;
        write_object(cluster, current, false, false, |cur: &K, _| {
            let mut o = cur.clone();
            let a = o.meta_mut().annotations.get_or_insert_default();
            for (k, v) in set {
                match v {
                    Some(v) => a.insert((*k).to_owned(), v.clone()),
                    None => a.remove(*k),
                };
            }
            Ok((o.meta().annotations != cur.meta().annotations).then_some(o))
        })
        .await?;
        Ok(())
    }
    match kind {
        WorkloadKind::StatefulSet => write::<StatefulSet>(cluster, name, set).await,
        WorkloadKind::DaemonSet => write::<DaemonSet>(cluster, name, set).await,
        WorkloadKind::Deployment => Err(Error::usage(format!(
            "deployment/{name}: not a StatefulSet or DaemonSet"
        ))),
    }
}

/// Deletes a pod. `Ok(false)`: it was already gone.
pub async fn delete_pod(cluster: &Cluster, name: &str) -> Result<bool, Error> {
    match cluster.pods().delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(api_error(e, cluster.op("delete", "pods", Some(name)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_from_controller_revisions() {
        let sts: StatefulSet = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db", "uid": "u1"},
            "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "db:2"}]}}}
        }))
        .unwrap();
        let cr = |name: &str, rev: i64, image: &str| -> ControllerRevision {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "annotations": {CHANGE_CAUSE_ANNOTATION: format!("cause {rev}")},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "uid": "u1", "controller": true}]},
                "data": {"spec": {"template": {"$patch": "replace", "metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "db", "image": image}]}}}},
                "revision": rev
            }))
            .unwrap()
        };
        let pod = |name: &str, rev: &str| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "labels": {CONTROLLER_REVISION_HASH_LABEL: rev}}
            }))
            .unwrap()
        };
        let crs = [cr("db-b", 3, "db:2"), cr("db-a", 1, "db:1")];
        let pods = [
            pod("db-0", "db-b"),
            pod("db-1", "db-b"),
            pod("db-2", "db-a"),
        ];
        let revs = set_revisions(&sts, &crs, &pods);
        assert_eq!(revs.iter().map(|r| r.number).collect::<Vec<_>>(), [1, 3]);
        assert!(revs[1].current && !revs[0].current);
        assert_eq!(revs[1].replicas, 2);
        assert_eq!(revs[0].change_cause.as_deref(), Some("cause 1"));
        let target = WorkloadRef::parse("sts/db").unwrap();
        assert_eq!(set_undo_target(&target, &revs, None).unwrap().number, 1);
        let e = set_undo_target(&target, &revs, Some(2)).unwrap_err();
        assert!(
            e.to_string().contains("statefulset/db (revisions: 1, 3)"),
            "{e}"
        );
        assert!(set_undo_target(&target, &revs[1..], None).is_err());
        let off: Vec<&str> = pods_off_revision(&pods, "db-b", false)
            .iter()
            .map(|p| p.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(off, ["db-2"]);
    }
}
