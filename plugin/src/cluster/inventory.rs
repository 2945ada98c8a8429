//! Listing every object of a kind in scope as policy documents (`audit --cluster`).

use kube::Api;
use kube::api::ListParams;
use rollout_safe_policy::Document;

use super::client::Cluster;
use super::errors::api_error;
use crate::error::Error;

/// Lists `K` in the namespace (or every namespace with `-A`) as documents located at
/// `cluster:NAMESPACE/KIND/NAME`, without server-managed fields.
pub async fn list_documents<K>(
    cluster: &Cluster,
    kind: &str,
    resource: &'static str,
) -> Result<Vec<Document>, Error>
where
    K: kube::Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + k8s_openapi::Resource
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = if cluster.all_namespaces {
        Api::all(cluster.client.clone())
    } else {
        Api::namespaced(cluster.client.clone(), &cluster.namespace)
    };
    let items = api.list(&ListParams::default()).await.map_err(|e| {
        let mut op = cluster.op("list", resource, None);
        if cluster.all_namespaces {
            op.namespace = String::new();
        }
        api_error(e, op)
    })?;
    let mut docs = Vec::with_capacity(items.items.len());
    for item in items.items {
        let mut value = serde_json::to_value(&item)
            .map_err(|e| Error::encode(format!("a listed {kind}"), e))?;
        value["apiVersion"] =
            serde_json::Value::String(<K as k8s_openapi::Resource>::API_VERSION.to_owned());
        value["kind"] = serde_json::Value::String(kind.to_owned());
        if let Some(m) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            m.remove("managedFields");
        }
        let name = value
            .pointer("/metadata/name")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let namespace = value
            .pointer("/metadata/namespace")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        docs.push(Document {
            source: format!("cluster:{namespace}/{kind}/{name}"),
            line: 0,
            value,
        });
    }
    Ok(docs)
}
