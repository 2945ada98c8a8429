//! Objects to seed the store with: the recorded ones (managed fields left out), and builders
//! for what tests make up.

use serde_json::{Value, json};

use crate::recording::{Recording, RecordingError, files};
use crate::resources::ResourceType;

/// Leaves out `metadata.managedFields` (noise for every test).
pub fn strip_managed_fields(v: &mut Value) {
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
}

/// The object a recording answered with, without managed fields.
pub fn recorded_object(file: &str) -> Result<Value, RecordingError> {
    let mut v = Recording::load(file)?.json()?;
    strip_managed_fields(&mut v);
    Ok(v)
}

/// The items of a recorded list, without managed fields.
pub fn recorded_items(file: &str) -> Result<Vec<Value>, RecordingError> {
    let list = Recording::load(file)?.json()?;
    let mut items = list["items"].as_array().cloned().unwrap_or_default();
    items.iter_mut().for_each(strip_managed_fields);
    Ok(items)
}

/// Builds a Deployment.
#[derive(Debug, Clone)]
pub struct DeploymentBuilder {
    object: Value,
}

impl DeploymentBuilder {
    /// A Deployment an experienced operator would write: label `app: <name>`, one container
    /// `app` with readiness and liveness probes, a preStop hook and a grace period that covers
    /// it, `maxSurge: 1`, `maxUnavailable: 0`, 3 replicas, a change-cause.
    pub fn new(name: &str, image: &str) -> DeploymentBuilder {
        DeploymentBuilder {
            object: json!({
                "metadata": {"name": name, "annotations": {"kubernetes.io/change-cause": format!("initial release {image}")}},
                "spec": {
                    "replicas": 3, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 300, "minReadySeconds": 0,
                    "selector": {"matchLabels": {"app": name}},
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                    "template": {"metadata": {"labels": {"app": name}}, "spec": {
                        "terminationGracePeriodSeconds": 40,
                        "containers": [{"name": "app", "image": image,
                            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                            "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5},
                            "livenessProbe": {"httpGet": {"path": "/live", "port": "http"}, "initialDelaySeconds": 10, "periodSeconds": 10},
                            "lifecycle": {"preStop": {"exec": {"command": ["sleep", "10"]}}}}]}}}
            }),
        }
    }

    /// The recorded Deployment `good` (01), as it was (uid, resourceVersion, status and all),
    /// without its managed fields and `last-applied-configuration`.
    pub fn recorded() -> Result<DeploymentBuilder, RecordingError> {
        let object = recorded_object(files::GET_DEPLOYMENT)?;
        Ok(DeploymentBuilder { object }
            .without_annotation("kubectl.kubernetes.io/last-applied-configuration"))
    }

    /// Another name (and a fresh identity: no uid, resourceVersion or status).
    pub fn name(mut self, name: &str) -> DeploymentBuilder {
        let meta = &mut self.object["metadata"];
        meta["name"] = json!(name);
        if let Some(m) = meta.as_object_mut() {
            m.remove("uid");
            m.remove("resourceVersion");
        }
        if let Some(m) = self.object.as_object_mut() {
            m.remove("status");
        }
        self
    }

    pub fn replicas(mut self, n: i64) -> DeploymentBuilder {
        self.object["spec"]["replicas"] = json!(n);
        self
    }

    /// The image of the first container.
    pub fn image(mut self, image: &str) -> DeploymentBuilder {
        self.object["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
        self
    }

    /// `app: <app>` as the whole selector and template labels.
    pub fn app(mut self, app: &str) -> DeploymentBuilder {
        self.object["spec"]["selector"] = json!({"matchLabels": {"app": app}});
        self.object["spec"]["template"]["metadata"]["labels"] = json!({"app": app});
        self
    }

    pub fn annotation(mut self, key: &str, value: &str) -> DeploymentBuilder {
        self.object["metadata"]["annotations"][key] = json!(value);
        self
    }

    pub fn without_annotation(mut self, key: &str) -> DeploymentBuilder {
        if let Some(a) = self.object["metadata"]["annotations"].as_object_mut() {
            a.remove(key);
        }
        self
    }

    /// Any other change.
    pub fn edit(mut self, f: impl FnOnce(&mut Value)) -> DeploymentBuilder {
        f(&mut self.object);
        self
    }

    pub fn build(self) -> Value {
        self.object
    }
}

/// A ClusterIP Service `name` selecting `selector`, port 80 to the pods' port `http`.
pub fn service(name: &str, selector: &[(&str, &str)]) -> Value {
    let selector: serde_json::Map<String, Value> = selector
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    json!({"metadata": {"name": name, "labels": {"app": name}},
        "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            "type": "ClusterIP", "clusterIP": "10.96.12.34", "clusterIPs": ["10.96.12.34"], "sessionAffinity": "None"},
        "status": {"loadBalancer": {}}})
}

/// A StatefulSet `name` with `replicas` pods of `image` (no probes), rolled out.
pub fn statefulset(name: &str, replicas: i64, image: &str) -> Value {
    json!({"metadata": {"name": name, "generation": 1, "creationTimestamp": "2026-11-22T23:10:24Z"},
        "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": name, "image": image}]}},
            "updateStrategy": {"type": "RollingUpdate"}},
        "status": {"observedGeneration": 1, "replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
            "currentReplicas": replicas, "updatedReplicas": replicas,
            "currentRevision": format!("{name}-5d8f"), "updateRevision": format!("{name}-5d8f")}})
}

/// `object` with the `apiVersion` and `kind` of `rt` (for bodies a test sends itself).
pub fn typed(rt: &ResourceType, object: Value) -> Value {
    crate::store::with_kind(rt, object)
}
