//! Writes guarded by a resourceVersion precondition, recomputed on conflict, never clobbering:
//! one loop ([`guarded_write`]) for Deployments (JSON Patch) and Services (merge patch, see
//! `services::write_service`).
//!
//! Every write is a JSON Patch whose first operation is
//! `{"op":"test","path":"/metadata/resourceVersion","value":RV}` followed by the minimal
//! operations that turn the object as read into the object wanted (`json_patch::diff`).
//! The API server applies it atomically: if anyone wrote in between, the test fails and
//! nothing changes. A real server answers a failed `test` with a bare 422 `Invalid` (recorded in
//! `api-responses/05`), and a stale `metadata.resourceVersion` with 409 `Conflict` (`04`), so
//! both are treated as "changed under us" when a fresh read shows a new resourceVersion: the
//! caller's `build` is run again on the fresh object, at most [`MAX_ATTEMPTS`] times.
//!
//! JSON Patch rather than a merge patch: a merge patch replaces lists whole, so
//! `{"spec":{"template":{"spec":{"containers":[{"name":"app","image":…}]}}}}` drops every
//! other field of the container (probes, ports, preStop — `api-responses/03` shows exactly
//! that), and it cannot remove a label or an env var without knowing its whole list.

use std::fmt::Debug;
use std::time::Duration;

use json_patch::jsonptr::PointerBuf;
use json_patch::{PatchOperation, TestOperation};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::client::{Cluster, FIELD_MANAGER};
use super::errors::{api_error, is_conflict, is_invalid};
use crate::error::Error;

/// How many times a write is computed and sent before giving up on an object that keeps changing.
pub const MAX_ATTEMPTS: usize = 5;

/// An object the plugin writes with a resourceVersion precondition.
pub trait Guarded:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
{
    /// How messages name the kind: `deployment`, `service`.
    const NOUN: &'static str;
    /// How RBAC and API errors name the resource: `deployments.apps`, `services`.
    const RESOURCE: &'static str;
}

impl Guarded for Deployment {
    const NOUN: &'static str = "deployment";
    const RESOURCE: &'static str = "deployments.apps";
}

impl Guarded for StatefulSet {
    const NOUN: &'static str = "statefulset";
    const RESOURCE: &'static str = "statefulsets.apps";
}

impl Guarded for DaemonSet {
    const NOUN: &'static str = "daemonset";
    const RESOURCE: &'static str = "daemonsets.apps";
}

impl Guarded for Service {
    const NOUN: &'static str = "service";
    const RESOURCE: &'static str = "services";
}

/// `deployment/web`
fn named<K: Guarded>(o: &K) -> String {
    format!(
        "{}/{}",
        K::NOUN,
        o.meta().name.as_deref().unwrap_or_default()
    )
}

/// A write that went through.
#[derive(Debug, Clone)]
pub struct Written<K> {
    /// The object the successful patch was computed from.
    pub before: K,
    /// The server's answer (the object as stored, or as it would be stored on a dry run).
    pub after: K,
    /// 1 when nothing got in the way.
    pub attempts: usize,
}

fn value<K: Guarded>(d: &K) -> Result<serde_json::Value, Error> {
    serde_json::to_value(d).map_err(|e| Error::encode(named(d), e))
}

/// The patch that turns `before` into `after`, guarded by `before`'s resourceVersion.
/// `None` when there is nothing to change.
pub fn precondition_patch<K: Guarded>(
    before: &K,
    after: &K,
) -> Result<Option<json_patch::Patch>, Error> {
    let rv = before
        .meta()
        .resource_version
        .clone()
        .ok_or_else(|| Error::NoResourceVersion {
            what: named(before),
            namespace: before.meta().namespace.clone().unwrap_or_default(),
        })?;
    let mut ops = json_patch::diff(&value(before)?, &value(after)?).0;
    // Never carry the server-managed fields of the read object into the write.
    ops.retain(|op| {
        let p = op.path().as_str();
        !(p.starts_with("/status")
            || p.starts_with("/metadata/managedFields")
            || p == "/metadata/resourceVersion")
    });
    if ops.is_empty() {
        return Ok(None);
    }
    let mut all = vec![PatchOperation::Test(TestOperation {
        path: PointerBuf::from_tokens(["metadata", "resourceVersion"]),
        value: serde_json::Value::String(rv),
    })];
    all.extend(ops);
    Ok(Some(json_patch::Patch(all)))
}

/// The one guarded-write loop. Reads nothing itself: starts from `first` (just read by the
/// caller), asks `build` for the wanted change, `encode`s it as a patch that carries the
/// resourceVersion it was computed from, and sends it. On a conflict (409, or the bare 422 a
/// failed JSON Patch `test` gets) it re-reads; if the resourceVersion moved it says so on stderr
/// and asks `build` again with the fresh object and the attempt number (so the change is
/// re-validated), at most [`MAX_ATTEMPTS`] times. `build` or `encode` returning `Ok(None)` means
/// "nothing to write" (the result is then `Ok(None)`); an `Err` ends the write.
pub async fn guarded_write<K, W>(
    cluster: &Cluster,
    first: K,
    dry_run: bool,
    user_input: bool,
    mut build: impl FnMut(&K, usize) -> Result<Option<W>, Error>,
    encode: impl Fn(&K, &W) -> Result<Option<Patch<serde_json::Value>>, Error>,
) -> Result<Option<Written<K>>, Error>
where
    K: Guarded,
{
    let api: Api<K> = Api::namespaced(cluster.client.clone(), &cluster.namespace);
    let name = first.meta().name.clone().unwrap_or_default();
    let what = named(&first);
    let mut current = first;
    let mut params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    params.dry_run = dry_run;
    let op = {
        let o = cluster.op("patch", K::RESOURCE, Some(&name));
        if user_input { o.user_input() } else { o }
    };
    for attempt in 1..=MAX_ATTEMPTS {
        let Some(wanted) = build(&current, attempt)? else {
            return Ok(None);
        };
        let Some(patch) = encode(&current, &wanted)? else {
            return Ok(None);
        };
        let sent_rv = current.meta().resource_version.clone().unwrap_or_default();
        let err = match api.patch(&name, &params, &patch).await {
            Ok(after) => {
                return Ok(Some(Written {
                    before: current,
                    after,
                    attempts: attempt,
                }));
            }
            Err(e) => e,
        };
        if !is_conflict(&err) && !is_invalid(&err) {
            return Err(api_error(err, op));
        }
        let fresh = api
            .get(&name)
            .await
            .map_err(|e| api_error(e, cluster.op("get", K::RESOURCE, Some(&name))))?;
        let fresh_rv = fresh.meta().resource_version.clone().unwrap_or_default();
        if fresh_rv == sent_rv {
            // Not a stale precondition: the change itself was refused.
            return Err(api_error(err, op));
        }
        if attempt < MAX_ATTEMPTS {
            eprintln!(
                "conflict: {what} changed since it was read (resourceVersion {sent_rv} → {fresh_rv}); \
                 re-reading and recomputing the change (attempt {} of {MAX_ATTEMPTS})",
                attempt + 1
            );
            tokio::time::sleep(Duration::from_millis(50 * attempt as u64)).await;
        }
        current = fresh;
    }
    Err(Error::KeepsChanging {
        what,
        attempts: MAX_ATTEMPTS,
    })
}

/// [`guarded_write`] for any workload (a StatefulSet, a DaemonSet): `build` returns the wanted
/// object; the difference goes out as a JSON Patch whose first operation tests the
/// resourceVersion.
pub async fn write_object<K, F>(
    cluster: &Cluster,
    first: K,
    dry_run: bool,
    user_input: bool,
    build: F,
) -> Result<Option<Written<K>>, Error>
where
    K: Guarded,
    F: FnMut(&K, usize) -> Result<Option<K>, Error>,
{
    guarded_write(cluster, first, dry_run, user_input, build, |cur, wanted| {
        Ok(precondition_patch(cur, wanted)?.map(Patch::Json))
    })
    .await
}

/// [`guarded_write`] for a Deployment: `build` returns the wanted Deployment; the difference goes
/// out as a JSON Patch whose first operation tests the resourceVersion.
pub async fn write_deployment<F>(
    cluster: &Cluster,
    first: Deployment,
    dry_run: bool,
    user_input: bool,
    build: F,
) -> Result<Option<Written<Deployment>>, Error>
where
    F: FnMut(&Deployment, usize) -> Result<Option<Deployment>, Error>,
{
    guarded_write(cluster, first, dry_run, user_input, build, |cur, wanted| {
        Ok(precondition_patch(cur, wanted)?.map(Patch::Json))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep() -> Deployment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "410"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "web:1", "env": [{"name": "A", "value": "1"}]}]}}},
            "status": {"replicas": 3}
        }))
        .unwrap()
    }

    #[test]
    fn precondition_first_then_minimal_ops() {
        let before = dep();
        let mut after = before.clone();
        let c = &mut after.spec.template.spec.as_mut().unwrap().containers[0];
        c.image = Some("web:2".into());
        after.status = None;
        after
            .metadata
            .annotations
            .get_or_insert_default()
            .insert("kubernetes.io/change-cause".into(), "x".into());
        let p = precondition_patch(&before, &after).unwrap().unwrap();
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v[0],
            serde_json::json!({"op": "test", "path": "/metadata/resourceVersion", "value": "410"})
        );
        let paths: Vec<&str> = v.as_array().unwrap()[1..]
            .iter()
            .map(|o| o["path"].as_str().unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "/metadata/annotations",
                "/spec/template/spec/containers/0/image"
            ]
        );
        assert!(precondition_patch(&before, &before).unwrap().is_none());
    }
}
