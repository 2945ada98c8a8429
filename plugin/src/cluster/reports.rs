//! Writing report objects (`audit --cluster --write-reports`): server-side apply of each, then
//! deleting the ones an earlier run wrote for workloads that are gone. API I/O only: what the
//! reports say is decided above.

use std::collections::BTreeSet;

use kube::Api;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::Value;

use super::client::Cluster;
use super::errors::{api_error, is_not_found};
use crate::error::{Error, Refused};

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "rollout-safe";

/// A report resource type, as its CustomResourceDefinition names it.
#[derive(Debug, Clone, Copy)]
pub struct ReportResource {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    /// `<plural>.<group>`, for messages and RBAC.
    pub crd: &'static str,
    /// `key=value`: the label every report this tool writes carries.
    pub managed_by: &'static str,
}

/// What a write did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Written {
    /// `namespace/name` of each report applied.
    pub applied: Vec<String>,
    /// `namespace/name` of each stale report deleted.
    pub deleted: Vec<String>,
}

fn api_resource(r: &ReportResource) -> ApiResource {
    ApiResource {
        group: r.group.to_owned(),
        version: r.version.to_owned(),
        api_version: format!("{}/{}", r.group, r.version),
        kind: r.kind.to_owned(),
        plural: r.plural.to_owned(),
    }
}

/// The error for a cluster without the report API: a 404 on a collection means the
/// resource type is not served.
fn missing_crd(cluster: &Cluster, r: &ReportResource, verb: &'static str) -> Error {
    Error::ApiStatus {
        op: Box::new(cluster.op(verb, r.crd, None)),
        refused: Refused::NotFound,
        message: format!(
            "the cluster does not serve {}/{} {}s: the CustomResourceDefinition {} is not installed (it comes with Kyverno, Policy Reporter or the report API's own chart); install it, or choose the other API with --report-api",
            r.group, r.version, r.kind, r.crd
        ),
    }
}

/// Applies `reports` (each names its namespace) and deletes the reports this tool wrote
/// earlier in scope (the cluster's namespace, or every namespace with `-A`) that are not
/// among them.
pub async fn apply_reports(
    cluster: &Cluster,
    resource: &ReportResource,
    reports: &[Value],
) -> Result<Written, Error> {
    let ar = api_resource(resource);
    let scoped: Api<DynamicObject> = if cluster.all_namespaces {
        Api::all_with(cluster.client.clone(), &ar)
    } else {
        Api::namespaced_with(cluster.client.clone(), &cluster.namespace, &ar)
    };
    // Listed first: a missing CRD is told before anything is written.
    let previous = scoped
        .list(&ListParams::default().labels(resource.managed_by))
        .await
        .map_err(|e| {
            if is_not_found(&e) {
                missing_crd(cluster, resource, "list")
            } else {
                api_error(e, cluster.op("list", resource.crd, None))
            }
        })?;

    let mut written = Written::default();
    let mut current = BTreeSet::new();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for report in reports {
        let meta = &report["metadata"];
        let (Some(name), Some(namespace)) = (meta["name"].as_str(), meta["namespace"].as_str())
        else {
            continue;
        };
        let api: Api<DynamicObject> = Api::namespaced_with(cluster.client.clone(), namespace, &ar);
        api.patch(name, &params, &Patch::Apply(report))
            .await
            .map_err(|e| {
                let mut op = cluster.op("patch", resource.crd, Some(name));
                op.namespace = namespace.to_owned();
                if is_not_found(&e) {
                    missing_crd(cluster, resource, "patch")
                } else {
                    api_error(e, op)
                }
            })?;
        current.insert((namespace.to_owned(), name.to_owned()));
        written.applied.push(format!("{namespace}/{name}"));
    }

    for old in previous.items {
        let (Some(name), Some(namespace)) = (
            old.metadata.name.as_deref(),
            old.metadata.namespace.as_deref(),
        ) else {
            continue;
        };
        if current.contains(&(namespace.to_owned(), name.to_owned())) {
            continue;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(cluster.client.clone(), namespace, &ar);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => written.deleted.push(format!("{namespace}/{name}")),
            // Deleted meanwhile: what was wanted.
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                let mut op = cluster.op("delete", resource.crd, Some(name));
                op.namespace = namespace.to_owned();
                return Err(api_error(e, op));
            }
        }
    }
    Ok(written)
}
