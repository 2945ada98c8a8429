//! Reading and writing Deployments: get, create-or-refresh, scale, annotate, delete — every
//! write guarded by a resourceVersion precondition (`patch`).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{DeleteParams, PostParams};
use rollout_safe_policy::strategy::schema::{ann, replicas, set_annotation};

use super::client::{Cluster, FIELD_MANAGER};
use super::errors::{api_error, is_not_found, status};
use super::patch::write_deployment;
use crate::error::Error;

/// Reads a Deployment; 404/403 become the plugin's messages (exit 5).
pub async fn get_deployment(cluster: &Cluster, name: &str) -> Result<Deployment, Error> {
    cluster
        .deployments()
        .get(name)
        .await
        .map_err(|e| api_error(e, cluster.op("get", "deployments.apps", Some(name))))
}

/// Reads a Deployment that may not exist.
pub async fn try_get_deployment(
    cluster: &Cluster,
    name: &str,
) -> Result<Option<Deployment>, Error> {
    match cluster.deployments().get(name).await {
        Ok(d) => Ok(Some(d)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(api_error(
            e,
            cluster.op("get", "deployments.apps", Some(name)),
        )),
    }
}

/// Creates `wanted`, or when it exists brings it to `refresh(existing)` with a precondition.
/// Returns the Deployment as stored.
pub async fn create_or_refresh<F>(
    cluster: &Cluster,
    wanted: Deployment,
    mut refresh: F,
) -> Result<Deployment, Error>
where
    F: FnMut(&Deployment) -> Result<Option<Deployment>, Error>,
{
    let name = wanted.metadata.name.clone().unwrap_or_default();
    let api = cluster.deployments();
    let existing = match try_get_deployment(cluster, &name).await? {
        Some(d) => d,
        None => {
            let pp = PostParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PostParams::default()
            };
            match api.create(&pp, &wanted).await {
                Ok(d) => {
                    eprintln!("deployment/{name} created");
                    return Ok(d);
                }
                Err(e) if status(&e).is_some_and(|s| s.code == 409) => {
                    get_deployment(cluster, &name).await?
                }
                Err(e) => {
                    return Err(api_error(
                        e,
                        cluster.op("create", "deployments.apps", Some(&name)),
                    ));
                }
            }
        }
    };
    let first = existing.clone();
    match write_deployment(cluster, existing, false, false, |cur, _| refresh(cur)).await? {
        Some(w) => {
            eprintln!("deployment/{name} updated");
            Ok(w.after)
        }
        None => Ok(first),
    }
}

/// Scales a Deployment (guarded), recording the replicas it had in `RESTORE_REPLICAS` when scaling
/// to 0 and dropping that record otherwise. `Ok(false)`: it was already there.
pub async fn scale(cluster: &Cluster, name: &str, to: i32) -> Result<bool, Error> {
    let current = get_deployment(cluster, name).await?;
    let written = write_deployment(cluster, current, false, false, |cur, _| {
        let mut d = cur.clone();
        let had = replicas(cur);
        d.spec.replicas = Some(to);
        if to == 0 {
            if had > 0 {
                set_annotation(&mut d, ann::RESTORE_REPLICAS, Some(&had.to_string()));
            }
        } else {
            set_annotation(&mut d, ann::RESTORE_REPLICAS, None);
        }
        if d.metadata
            .annotations
            .as_ref()
            .is_some_and(BTreeMap::is_empty)
            && cur.metadata.annotations.is_none()
        {
            d.metadata.annotations = None;
        }
        Ok((d != *cur).then_some(d))
    })
    .await?;
    if written.is_some() {
        eprintln!("deployment/{name} scaled to {to}");
    }
    Ok(written.is_some())
}

/// Sets a Deployment's replicas (guarded), nothing else.
pub async fn set_replicas(cluster: &Cluster, name: &str, to: i32) -> Result<(), Error> {
    let current = get_deployment(cluster, name).await?;
    write_deployment(cluster, current, false, false, |cur, _| {
        if cur.spec.replicas == Some(to) {
            return Ok(None);
        }
        let mut d = cur.clone();
        d.spec.replicas = Some(to);
        Ok(Some(d))
    })
    .await?;
    Ok(())
}

/// Sets (`Some`) or removes (`None`) annotations on a Deployment, guarded.
pub async fn annotate(
    cluster: &Cluster,
    name: &str,
    set: &[(&str, Option<String>)],
) -> Result<(), Error> {
    let current = get_deployment(cluster, name).await?;
    write_deployment(cluster, current, false, false, |cur, _| {
        let mut d = cur.clone();
        for (k, v) in set {
            set_annotation(&mut d, k, v.as_deref());
        }
        Ok((d != *cur).then_some(d))
    })
    .await?;
    Ok(())
}

/// Deletes a Deployment (its pods in the background). `Ok(false)`: it was not there.
pub async fn delete_deployment(cluster: &Cluster, name: &str) -> Result<bool, Error> {
    match cluster
        .deployments()
        .delete(name, &DeleteParams::background())
        .await
    {
        Ok(_) => {
            eprintln!("deployment/{name} deleted");
            Ok(true)
        }
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(api_error(
            e,
            cluster.op("delete", "deployments.apps", Some(name)),
        )),
    }
}
