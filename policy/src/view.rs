//! The views the rules read: each object is read once into a typed form, with what several
//! rules need (its reference, its app containers, its skip annotation) worked out once.

use std::collections::BTreeMap;
use std::ops::Deref;

use serde_json::Value;

use crate::skip::Skip;
use crate::workload::{AppContainer, ObjectRef, Workload};

/// A workload as the rules read it.
#[derive(Debug)]
pub struct WorkloadView<'a> {
    pub workload: &'a Workload,
    pub object: ObjectRef,
    /// Containers and sidecars (init containers with `restartPolicy: Always`).
    pub app_containers: Vec<AppContainer<'a>>,
    /// The `rollout-safe.dev/skip` annotation, when there is one.
    pub skip: Option<Skip>,
}

impl<'a> WorkloadView<'a> {
    pub fn new(workload: &'a Workload) -> Self {
        WorkloadView {
            workload,
            object: workload.object_ref(),
            app_containers: workload.app_containers(),
            skip: Skip::of(workload),
        }
    }
}

impl Deref for WorkloadView<'_> {
    type Target = Workload;
    fn deref(&self) -> &Workload {
        self.workload
    }
}

/// A Service as the rules read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    pub object: ObjectRef,
    /// `spec.selector`; values that are not strings are kept as their JSON text.
    pub selector: BTreeMap<String, String>,
    pub skip: Option<Skip>,
}

impl ServiceView {
    /// Reads a Service from its JSON; `namespace` stands in when the object names none.
    pub fn from_value(v: &Value, namespace: Option<&str>) -> Self {
        let meta = v.get("metadata");
        let meta_str = |key: &str| meta.and_then(|m| m.get(key)).and_then(Value::as_str);
        let selector = v
            .pointer("/spec/selector")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            v.as_str().map_or_else(|| v.to_string(), str::to_string),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let annotations = meta.and_then(|m| m.get("annotations"));
        let skip = Skip::read(|k| annotations?.get(k)?.as_str());
        ServiceView {
            object: ObjectRef {
                kind: "Service".into(),
                namespace: meta_str("namespace").or(namespace).map(str::to_string),
                name: meta_str("name").unwrap_or("<unnamed>").into(),
            },
            selector,
            skip,
        }
    }
}
