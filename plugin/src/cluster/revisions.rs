//! A Deployment's revisions, from the ReplicaSets it controls, and kubectl's undo algorithm.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use rollout_safe_policy::check::CHANGE_CAUSE_ANNOTATION;
use rollout_safe_policy::judge::{
    REVISION_ANNOTATION, controlled_by, equal_ignore_hash, normalized_template,
};

use rollout_safe_policy::strategy::edit::{images_text, template_images};

use super::client::Cluster;
use super::errors::api_error;
use crate::error::Error;

/// One revision of a Deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    pub number: i64,
    pub replica_set: String,
    pub change_cause: Option<String>,
    /// `(container, image)`, init containers first.
    pub images: Vec<(String, String)>,
    pub created: Option<Timestamp>,
    /// The pod template, without the `pod-template-hash` label.
    pub template: PodTemplateSpec,
    /// Whether it is the Deployment's current template.
    pub current: bool,
    /// Pods the ReplicaSet currently wants.
    pub replicas: i32,
}

impl Revision {
    /// `image app=shop/web:1.4.2` (what the revision ran).
    pub fn images_text(&self) -> String {
        images_text(&self.images)
    }

    /// The revision's change-cause, or what it ran when it has none.
    pub fn describe(&self) -> String {
        match &self.change_cause {
            Some(c) if !c.trim().is_empty() => c.clone(),
            _ => self.images_text(),
        }
    }
}

/// A label selector as a query string (`app=web,tier in (a,b)`). `owner` (`deployment/web`) and
/// `namespace` name whose selector it is, for the error.
pub fn selector_string(sel: &LabelSelector, owner: &str, namespace: &str) -> Result<String, Error> {
    let s = kube::core::Selector::try_from(sel.clone()).map_err(|e| Error::Selector {
        owner: owner.to_owned(),
        namespace: namespace.to_owned(),
        source: Box::new(e),
    })?;
    Ok(s.to_string())
}

fn revision_of(meta: &ObjectMeta) -> Option<i64> {
    meta.annotations
        .as_ref()?
        .get(REVISION_ANNOTATION)?
        .parse()
        .ok()
}

fn owned_by(rs: &ReplicaSet, d: &Deployment) -> bool {
    controlled_by(&rs.metadata, "Deployment", &d.metadata)
}

/// The ReplicaSets the Deployment controls (listed by its selector, kept by owner reference).
pub async fn owned_replica_sets(
    cluster: &Cluster,
    d: &Deployment,
) -> Result<Vec<ReplicaSet>, Error> {
    let selector = selector_string(
        &d.spec.selector,
        &format!(
            "deployment/{}",
            d.metadata.name.as_deref().unwrap_or_default()
        ),
        &cluster.namespace,
    )?;
    let list = cluster
        .replicasets()
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| api_error(e, cluster.op("list", "replicasets.apps", None)))?;
    Ok(list
        .items
        .into_iter()
        .filter(|rs| owned_by(rs, d))
        .collect())
}

/// The Deployment's revisions, oldest first. ReplicaSets without a revision annotation are skipped.
pub fn revisions(d: &Deployment, rss: &[ReplicaSet]) -> Vec<Revision> {
    let current = Some(&d.spec.template);
    let mut out: Vec<Revision> = rss
        .iter()
        .filter(|rs| owned_by(rs, d))
        .filter_map(|rs| {
            let number = revision_of(&rs.metadata)?;
            let template = rs.spec.template.clone().unwrap_or_default();
            Some(Revision {
                number,
                replica_set: rs.metadata.name.clone().unwrap_or_default(),
                change_cause: rs
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(CHANGE_CAUSE_ANNOTATION))
                    .cloned(),
                images: template_images(&template),
                created: rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
                current: current.is_some_and(|c| equal_ignore_hash(c, &template)),
                template: normalized_template(&template),
                replicas: rs.spec.replicas.unwrap_or(0),
            })
        })
        .collect();
    out.sort_by_key(|r| r.number);
    // Two ReplicaSets cannot both be current; if templates collide, the highest revision is.
    if out.iter().filter(|r| r.current).count() > 1 {
        let top = out.iter().filter(|r| r.current).map(|r| r.number).max();
        for r in &mut out {
            r.current = Some(r.number) == top;
        }
    }
    out
}

/// kubectl's `deploymentRevision`: with `to_revision` the ReplicaSet of that revision, else the
/// one with the second-highest revision (the previous one). Errors are usage errors (exit 2).
pub fn undo_target(
    name: &str,
    revisions: &[Revision],
    to_revision: Option<i64>,
) -> Result<Revision, Error> {
    match to_revision {
        Some(n) if n < 0 => Err(Error::usage(format!("revision {n} is not valid; revisions count from 1"))),
        Some(n) if n > 0 => revisions.iter().find(|r| r.number == n).cloned().ok_or_else(|| {
            let known: Vec<String> = revisions.iter().map(|r| r.number.to_string()).collect();
            Error::usage(format!(
                "unable to find revision {n} in the history of deployment/{name} (revisions: {})",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            ))
        }),
        _ => {
            let mut sorted: Vec<&Revision> = revisions.iter().collect();
            sorted.sort_by_key(|r| std::cmp::Reverse(r.number));
            sorted.get(1).map(|r| (*r).clone()).ok_or_else(|| {
                Error::usage(format!("no previous revision found for deployment/{name}: nothing to roll back to"))
            })
        }
    }
}

/// The fresh change-cause of a rollback: `rollback to revision N (<its cause or images>)`.
pub fn rollback_cause(revision: i64, what: &str) -> String {
    format!("rollback to revision {revision} ({what})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(name: &str, rev: &str, image: &str, hash: &str) -> ReplicaSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "annotations": {REVISION_ANNOTATION: rev, CHANGE_CAUSE_ANNOTATION: format!("cause {rev}")},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u1", "controller": true}]},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": hash}},
                    "spec": {"containers": [{"name": "app", "image": image}]}}}
        }))
        .unwrap()
    }

    #[test]
    fn kubectl_undo_algorithm() {
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "uid": "u1"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "web:3"}]}}}
        }))
        .unwrap();
        let list = [
            rs("web-a", "1", "web:1", "a"),
            rs("web-c", "10", "web:3", "c"),
            rs("web-b", "9", "web:2", "b"),
        ];
        let revs = revisions(&d, &list);
        assert_eq!(
            revs.iter().map(|r| r.number).collect::<Vec<_>>(),
            [1, 9, 10]
        );
        assert!(revs[2].current && !revs[1].current);
        let prev = undo_target("web", &revs, None).unwrap();
        assert_eq!(prev.number, 9);
        assert!(
            !prev
                .template
                .metadata
                .as_ref()
                .unwrap()
                .labels
                .as_ref()
                .unwrap()
                .contains_key("pod-template-hash")
        );
        assert_eq!(
            undo_target("web", &revs, Some(1)).unwrap().replica_set,
            "web-a"
        );
        assert!(matches!(
            undo_target("web", &revs, Some(4)),
            Err(Error::Usage(_))
        ));
        assert!(matches!(
            undo_target("web", &revs[2..], None),
            Err(Error::Usage(_))
        ));
        assert_eq!(
            rollback_cause(9, &prev.describe()),
            "rollback to revision 9 (cause 9)"
        );
    }
}
