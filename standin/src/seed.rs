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

/// A deterministic uid for the `index`th object of a kind (`tag`: one hex digit per kind), so
/// that seeds can refer to what they made before it is stored.
pub fn seeded_uid(tag: u8, index: usize) -> String {
    format!("5eed{:04x}-0000-4000-8000-{index:012x}", tag)
}

/// A running, ready pod as a real cluster stores it (a Deployment's pod: owner reference,
/// full spec with probes, resources, volumes and tolerations, status with conditions and
/// container statuses, managed fields of the kubelet and the controller): about 4 KB of JSON.
/// Labels `app: <app>` and `pod-template-hash`; uid [`seeded_uid`]`(1, index)`. Without
/// `owned`, no owner reference (a stand-in with the garbage collector would delete pods whose
/// ReplicaSet does not exist).
pub fn running_pod(name: &str, app: &str, index: usize, owned: bool) -> Value {
    let node = format!("node-{:03}", index % 200);
    let ip = format!(
        "10.{}.{}.{}",
        64 + (index >> 16) % 64,
        (index >> 8) % 256,
        index % 256
    );
    let started = "2026-11-22T23:10:24Z";
    json!({
        "metadata": {
            "name": name, "uid": seeded_uid(1, index), "creationTimestamp": started,
            "generateName": format!("{app}-6d9f7c8b5-"),
            "labels": {"app": app, "pod-template-hash": "6d9f7c8b5", "app.kubernetes.io/part-of": "crowd"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": started},
            "ownerReferences": if owned { json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-6d9f7c8b5"),
                "uid": seeded_uid(2, index / 50), "controller": true, "blockOwnerDeletion": true}]) } else { json!([]) },
            "managedFields": [
                {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1", "time": started,
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:generateName": {}, "f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}},
                    "f:ownerReferences": {".": {}, "k:{\"uid\":\"x\"}": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:imagePullPolicy": {}, "f:livenessProbe": {}, "f:name": {},
                        "f:ports": {}, "f:readinessProbe": {}, "f:resources": {}, "f:terminationMessagePath": {}, "f:terminationMessagePolicy": {}}},
                        "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:restartPolicy": {}, "f:schedulerName": {}, "f:securityContext": {},
                        "f:terminationGracePeriodSeconds": {}}}},
                {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": started, "subresource": "status",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {"f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:lastProbeTime": {}, "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}}},
                    "f:containerStatuses": {}, "f:hostIP": {}, "f:hostIPs": {}, "f:phase": {}, "f:podIP": {}, "f:podIPs": {".": {}, "k:{\"ip\":\"x\"}": {}}, "f:startTime": {}}}}
            ]
        },
        "spec": {
            "containers": [{
                "name": "app", "image": format!("registry.example.com/crowd/{app}:1.4.2"), "imagePullPolicy": "IfNotPresent",
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}, {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}],
                "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                        {"name": "LOG_LEVEL", "value": "info"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                "readinessProbe": {"httpGet": {"path": "/ready", "port": "http", "scheme": "HTTP"}, "periodSeconds": 5, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
                "livenessProbe": {"httpGet": {"path": "/live", "port": "http", "scheme": "HTTP"}, "initialDelaySeconds": 10, "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3},
                "lifecycle": {"preStop": {"exec": {"command": ["sleep", "10"]}}},
                "volumeMounts": [{"name": "kube-api-access-x2b4z", "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"
            }],
            "volumes": [{"name": "kube-api-access-x2b4z", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 40, "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default", "serviceAccount": "default", "nodeName": node, "securityContext": {},
            "schedulerName": "default-scheduler", "enableServiceLinks": true, "preemptionPolicy": "PreemptLowerPriority", "priority": 0,
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
        },
        "status": {
            "phase": "Running", "qosClass": "Burstable", "hostIP": "192.168.0.10", "hostIPs": [{"ip": "192.168.0.10"}],
            "podIP": ip, "podIPs": [{"ip": ip}], "startTime": started,
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": started},
                {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": started},
                {"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": started},
                {"type": "ContainersReady", "status": "True", "lastProbeTime": null, "lastTransitionTime": started},
                {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": started}],
            "containerStatuses": [{"name": "app", "state": {"running": {"startedAt": started}}, "lastState": {}, "ready": true,
                "restartCount": 0, "image": format!("registry.example.com/crowd/{app}:1.4.2"),
                "imageID": "registry.example.com/crowd/app@sha256:4f1b0c8e2d6a5b3c9e7f1a2d4c6b8e0f2a4c6e8b0d2f4a6c8e0b2d4f6a8c0e2d",
                "containerID": format!("containerd://{:064x}", index), "started": true,
                "volumeMounts": [{"name": "kube-api-access-x2b4z", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true, "recursiveReadOnly": "Disabled"}]}]
        }
    })
}

/// An event about `involved` (an object with `kind`, as stored: `metadata.name`, `uid`), as
/// the kubelet or a controller records it; named uniquely by `index`.
pub fn event_about(
    involved: &Value,
    kind: &str,
    reason: &str,
    message: &str,
    index: usize,
) -> Value {
    let name = involved["metadata"]["name"].as_str().unwrap_or_default();
    json!({
        "metadata": {"name": format!("{name}.{index:016x}"), "creationTimestamp": "2026-11-22T23:10:30Z"},
        "involvedObject": {"kind": kind, "name": name, "uid": involved["metadata"]["uid"],
            "apiVersion": if kind == "Pod" { "v1" } else { "apps/v1" }, "resourceVersion": "1000", "fieldPath": "spec.containers{app}"},
        "reason": reason, "message": message, "type": "Normal", "count": 1,
        "source": {"component": "kubelet", "host": "node-001"}, "reportingComponent": "kubelet", "reportingInstance": "node-001",
        "firstTimestamp": "2026-11-22T23:10:30Z", "lastTimestamp": "2026-11-22T23:10:30Z"
    })
}

/// A PodDisruptionBudget for the pods labelled `app: <app>` (`maxUnavailable: 1`).
pub fn pdb(name: &str, app: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": app}}},
        "status": {"currentHealthy": 3, "desiredHealthy": 2, "disruptionsAllowed": 1, "expectedPods": 3, "observedGeneration": 1}})
}

/// A HorizontalPodAutoscaler (autoscaling/v2) of Deployment `deployment`, 2 to 10 replicas on CPU.
pub fn hpa(name: &str, deployment: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "minReplicas": 2, "maxReplicas": 10,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]},
        "status": {"currentReplicas": 3, "desiredReplicas": 3}})
}
