//! Putting a previous pod template back: `undo`, and the automatic rollback after a failed update.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use rollout_safe_policy::check::CHANGE_CAUSE_ANNOTATION;
use rollout_safe_policy::judge::equal_ignore_hash;

use super::client::Cluster;
use super::patch::{Written, write_deployment};
use crate::error::Error;

/// What to put back.
#[derive(Debug, Clone)]
pub struct RollbackPlan {
    /// The pod template to restore (already without `pod-template-hash`).
    pub template: PodTemplateSpec,
    /// The fresh `kubernetes.io/change-cause`.
    pub cause: String,
    /// Only roll back while the Deployment still runs this template (the one the failed update
    /// wrote): if someone else changed it since, their change is not undone.
    pub only_if_template: Option<PodTemplateSpec>,
}

/// The Deployment with `plan` applied (template and change-cause; nothing else is touched —
/// unlike kubectl, the ReplicaSet's other annotations are not copied back, so annotations other
/// tools keep on the Deployment survive an undo).
fn apply_plan(current: &Deployment, plan: &RollbackPlan) -> Deployment {
    let mut d = current.clone();
    d.spec.template = plan.template.clone();
    d.metadata
        .annotations
        .get_or_insert_default()
        .insert(CHANGE_CAUSE_ANNOTATION.to_owned(), plan.cause.clone());
    d
}

/// What a rollback would write to `cur` (as read): refuses a paused Deployment (exit 2, "resume
/// first") and, with [`RollbackPlan::only_if_template`], one whose template someone else changed
/// (exit 1). `Ok(None)`: the template is already in place. Both `undo --dry-run` and the guarded
/// write go through here, so they agree.
pub fn planned(
    cluster: &Cluster,
    cur: &Deployment,
    plan: &RollbackPlan,
) -> Result<Option<Deployment>, Error> {
    let name = cur.metadata.name.clone().unwrap_or_default();
    if cur.spec.paused == Some(true) {
        return Err(Error::usage(format!(
            "deployment/{name} is paused: a rollback would not roll out; resume first ({})",
            cluster.suggest("resume", &format!("deployment/{name}"), "")
        )));
    }
    if let Some(expected) = &plan.only_if_template
        && !equal_ignore_hash(expected, &cur.spec.template)
    {
        return Err(Error::RolloutFailed(format!(
            "not rolling back deployment/{name}: its pod template was changed by someone else since the update \
             (their change is left in place)"
        )));
    }
    if equal_ignore_hash(&plan.template, &cur.spec.template) {
        return Ok(None);
    }
    Ok(Some(apply_plan(cur, plan)))
}

/// Writes the rollback with the resourceVersion precondition (recomputed on conflict), checked
/// by [`planned`] against the Deployment as read on every attempt. `Ok(None)`: the template is
/// already in place.
pub async fn write_rollback(
    cluster: &Cluster,
    current: Deployment,
    plan: &RollbackPlan,
    dry_run: bool,
) -> Result<Option<Written<Deployment>>, Error> {
    write_deployment(cluster, current, dry_run, false, |cur, _| {
        planned(cluster, cur, plan)
    })
    .await
}
