//! Typed views of the workloads the rules read, with Kubernetes' defaults and arithmetic.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use serde_json::Value;

use crate::rule::WorkloadKind;

/// kind/namespace/name of an object, for messages and reports.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {}/{}", self.kind, ns, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// An object that could not be read as the kind it claims to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {name}: field {path}: {message}")]
pub struct ObjectError {
    pub kind: String,
    pub name: String,
    /// The JSON path of the offending field, e.g. `spec.template.spec.containers[0].ports`.
    pub path: String,
    pub message: String,
}

/// An invalid field: its path and what is wrong with it.
pub type FieldError = (&'static str, String);

/// A Deployment, StatefulSet or DaemonSet.
#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    Deployment(Box<Deployment>),
    StatefulSet(Box<StatefulSet>),
    DaemonSet(Box<DaemonSet>),
}

/// Where a container lives in the pod spec, for messages and JSON Patch paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerList {
    Containers,
    InitContainers,
}

impl ContainerList {
    pub fn field(self) -> &'static str {
        match self {
            ContainerList::Containers => "containers",
            ContainerList::InitContainers => "initContainers",
        }
    }
}

/// An app container: a regular container or a sidecar (init container with `restartPolicy: Always`).
#[derive(Debug, Clone, Copy)]
pub struct AppContainer<'a> {
    pub list: ContainerList,
    pub index: usize,
    pub container: &'a Container,
}

impl AppContainer<'_> {
    /// `spec.template.spec.containers[0]`
    pub fn field_path(&self) -> String {
        format!("spec.template.spec.{}[{}]", self.list.field(), self.index)
    }

    /// `/spec/template/spec/containers/0`
    pub fn pointer(&self) -> String {
        format!("/spec/template/spec/{}/{}", self.list.field(), self.index)
    }
}

/// Kubernetes' defaults for fields a manifest may leave out (the API server fills them in
/// before admission, so the audit applies the same values).
pub mod defaults {
    pub const REVISION_HISTORY_LIMIT: i32 = 10;
    pub const PROGRESS_DEADLINE_SECONDS: i32 = 600;
    pub const TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;
    pub const MAX_SURGE: &str = "25%";
    pub const MAX_UNAVAILABLE: &str = "25%";
    pub const REPLICAS: i32 = 1;
    pub const PROBE_INITIAL_DELAY_SECONDS: i32 = 0;
    pub const PROBE_TIMEOUT_SECONDS: i32 = 1;
    pub const PROBE_PERIOD_SECONDS: i32 = 10;
    pub const PROBE_SUCCESS_THRESHOLD: i32 = 1;
    pub const PROBE_FAILURE_THRESHOLD: i32 = 3;
}

/// A probe's timing with Kubernetes' defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeTiming {
    pub initial_delay: i32,
    pub period: i32,
    pub failure_threshold: i32,
}

impl ProbeTiming {
    pub fn of(p: &k8s_openapi::api::core::v1::Probe) -> Self {
        ProbeTiming {
            initial_delay: p
                .initial_delay_seconds
                .unwrap_or(defaults::PROBE_INITIAL_DELAY_SECONDS),
            period: p.period_seconds.unwrap_or(defaults::PROBE_PERIOD_SECONDS),
            failure_threshold: p
                .failure_threshold
                .unwrap_or(defaults::PROBE_FAILURE_THRESHOLD),
        }
    }

    /// Seconds from container start until the probe can have failed `failureThreshold` times:
    /// initialDelaySeconds + periodSeconds × failureThreshold.
    pub fn failure_budget(&self) -> i64 {
        i64::from(self.initial_delay).saturating_add(
            i64::from(self.period).saturating_mul(i64::from(self.failure_threshold)),
        )
    }
}

/// [`ProbeTiming::failure_budget`] of a probe.
pub fn probe_failure_budget(p: &k8s_openapi::api::core::v1::Probe) -> i64 {
    ProbeTiming::of(p).failure_budget()
}

impl Workload {
    /// Reads `value` as a workload. `Ok(None)` for any other kind (Services, CRDs, ...).
    pub fn from_value(value: &Value) -> Result<Option<Workload>, ObjectError> {
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        // Only apps/v1 has these shapes; extensions/v1beta1 and friends are long gone.
        if api_version != "apps/v1" {
            return Ok(None);
        }
        let Some(wk) = WorkloadKind::from_kind(kind) else {
            return Ok(None);
        };
        Ok(Some(match wk {
            WorkloadKind::Deployment => Workload::Deployment(Box::new(typed(value, kind)?)),
            WorkloadKind::StatefulSet => Workload::StatefulSet(Box::new(typed(value, kind)?)),
            WorkloadKind::DaemonSet => Workload::DaemonSet(Box::new(typed(value, kind)?)),
        }))
    }

    pub fn kind(&self) -> WorkloadKind {
        match self {
            Workload::Deployment(_) => WorkloadKind::Deployment,
            Workload::StatefulSet(_) => WorkloadKind::StatefulSet,
            Workload::DaemonSet(_) => WorkloadKind::DaemonSet,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Workload::Deployment(d) => &d.metadata,
            Workload::StatefulSet(s) => &s.metadata,
            Workload::DaemonSet(d) => &d.metadata,
        }
    }

    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or("")
    }

    pub fn namespace(&self) -> Option<&str> {
        self.metadata().namespace.as_deref()
    }

    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef {
            kind: self.kind().as_str().to_string(),
            namespace: self.namespace().map(str::to_string),
            name: self.name().to_string(),
        }
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.metadata()
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .map(String::as_str)
    }

    pub fn template(&self) -> Option<&PodTemplateSpec> {
        match self {
            Workload::Deployment(d) => Some(&d.spec.template),
            Workload::StatefulSet(s) => Some(&s.spec.template),
            Workload::DaemonSet(d) => Some(&d.spec.template),
        }
    }

    pub fn pod_spec(&self) -> Option<&PodSpec> {
        self.template().and_then(|t| t.spec.as_ref())
    }

    /// Pod labels of the template.
    pub fn pod_labels(&self) -> BTreeMap<String, String> {
        self.template()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default()
    }

    /// Containers and sidecars: the ones that serve, so the ones that need probes and hooks.
    pub fn app_containers(&self) -> Vec<AppContainer<'_>> {
        let Some(spec) = self.pod_spec() else {
            return Vec::new();
        };
        let mut out: Vec<AppContainer<'_>> = spec
            .containers
            .iter()
            .enumerate()
            .map(|(index, container)| AppContainer {
                list: ContainerList::Containers,
                index,
                container,
            })
            .collect();
        out.extend(
            spec.init_containers
                .iter()
                .flatten()
                .enumerate()
                .filter(|(_, c)| c.restart_policy.as_deref() == Some("Always"))
                .map(|(index, container)| AppContainer {
                    list: ContainerList::InitContainers,
                    index,
                    container,
                }),
        );
        out
    }

    /// Desired replicas; `None` for a DaemonSet (one per node).
    pub fn replicas(&self) -> Option<i32> {
        match self {
            Workload::Deployment(d) => Some(d.spec.replicas.unwrap_or(defaults::REPLICAS)),
            Workload::StatefulSet(s) => Some(s.spec.replicas.unwrap_or(defaults::REPLICAS)),
            Workload::DaemonSet(_) => None,
        }
    }

    pub fn revision_history_limit(&self) -> Option<i32> {
        match self {
            Workload::Deployment(d) => d.spec.revision_history_limit,
            Workload::StatefulSet(s) => s.spec.revision_history_limit,
            Workload::DaemonSet(d) => d.spec.revision_history_limit,
        }
    }

    /// For a Deployment with the RollingUpdate strategy (the default): the effective
    /// (maxSurge, maxUnavailable), or the invalid field's path and the problem.
    /// `None` for Recreate and for other kinds.
    pub fn rolling_fenceposts(&self) -> Option<Result<(i32, i32), FieldError>> {
        let Workload::Deployment(d) = self else {
            return None;
        };
        let strategy = d.spec.strategy.as_ref();
        if strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate") {
            return None;
        }
        let replicas = d.spec.replicas.unwrap_or(defaults::REPLICAS);
        let ru = strategy.and_then(|s| s.rolling_update.as_ref());
        let surge = ru.and_then(|r| r.max_surge.as_ref());
        let unavailable = ru.and_then(|r| r.max_unavailable.as_ref());
        // Each field is checked on its own so an error names the right one.
        if let Some(Err(e)) = surge.map(|v| scaled_value(v, replicas, true)) {
            return Some(Err(("spec.strategy.rollingUpdate.maxSurge", e)));
        }
        if let Some(Err(e)) = unavailable.map(|v| scaled_value(v, replicas, false)) {
            return Some(Err(("spec.strategy.rollingUpdate.maxUnavailable", e)));
        }
        Some(
            resolve_fenceposts(surge, unavailable, replicas)
                .map_err(|e| ("spec.strategy.rollingUpdate", e)),
        )
    }

    /// Whether this is a Deployment with the Recreate strategy.
    pub fn is_recreate(&self) -> bool {
        matches!(self, Workload::Deployment(d)
            if d.spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate"))
    }

    pub fn termination_grace_period(&self) -> Option<i64> {
        self.pod_spec()
            .and_then(|s| s.termination_grace_period_seconds)
    }
}

fn typed<T: serde::de::DeserializeOwned>(value: &Value, kind: &str) -> Result<T, ObjectError> {
    // The fast path; only a failure pays for tracking the path to the bad field.
    if let Ok(t) = T::deserialize(value) {
        return Ok(t);
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("<unnamed>")
            .to_string();
        ObjectError {
            kind: kind.to_string(),
            name,
            path: e.path().to_string(),
            message: e.inner().to_string(),
        }
    })
}

/// Resolves an IntOrString against `total` the way Kubernetes does
/// (`intstr.GetScaledValueFromIntOrPercent`): percentages round up for surge, down for unavailable.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let Some(pct) = s.strip_suffix('%') else {
                return Err(format!("{s:?} is neither an integer nor a percentage"));
            };
            let pct: i64 = pct
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} is not a valid percentage"))?;
            let scaled = pct
                .checked_mul(i64::from(total))
                .ok_or_else(|| format!("{s:?} of {total} is out of range"))?;
            let v = if round_up {
                (scaled + 99).div_euclid(100)
            } else {
                scaled.div_euclid(100)
            };
            i32::try_from(v).map_err(|_| format!("{s:?} of {total} is out of range"))
        }
    }
}

/// Effective (maxSurge, maxUnavailable) for a RollingUpdate Deployment, as the controller
/// computes them (`deploymentutil.ResolveFenceposts`): surge rounds up, unavailable down, and
/// if both come out 0, maxUnavailable becomes 1.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    replicas: i32,
) -> Result<(i32, i32), String> {
    let surge_default = IntOrString::String(defaults::MAX_SURGE.into());
    let unavail_default = IntOrString::String(defaults::MAX_UNAVAILABLE.into());
    let surge = scaled_value(max_surge.unwrap_or(&surge_default), replicas, true)?;
    let unavailable = scaled_value(max_unavailable.unwrap_or(&unavail_default), replicas, false)?;
    if surge == 0 && unavailable == 0 {
        return Ok((0, 1));
    }
    Ok((surge, unavailable))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn kubernetes_rounding() {
        // replicas 10, 25 % / 25 %: at most 13 pods, at least 8 available.
        assert_eq!(
            resolve_fenceposts(Some(&pct("25%")), Some(&pct("25%")), 10),
            Ok((3, 2))
        );
        assert_eq!(resolve_fenceposts(None, None, 10), Ok((3, 2)));
        assert_eq!(resolve_fenceposts(None, None, 1), Ok((1, 0)));
        assert_eq!(
            resolve_fenceposts(Some(&IntOrString::Int(0)), Some(&IntOrString::Int(0)), 3),
            Ok((0, 1))
        );
        assert_eq!(
            resolve_fenceposts(Some(&pct("0%")), Some(&pct("100%")), 4),
            Ok((0, 4))
        );
        assert!(resolve_fenceposts(Some(&pct("abc")), None, 4).is_err());
        assert!(resolve_fenceposts(Some(&pct("25")), None, 4).is_err());
    }

    #[test]
    fn wrong_types_name_the_field() {
        let v = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
            "spec": {"replicas": "three", "selector": {}, "template": {}}
        });
        let e = Workload::from_value(&v).unwrap_err();
        assert_eq!(e.path, "spec.replicas");
        assert!(e.to_string().contains("Deployment x: field spec.replicas"));
    }

    #[test]
    fn other_kinds_are_not_workloads() {
        let v =
            serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}});
        assert_eq!(Workload::from_value(&v), Ok(None));
        let v = serde_json::json!({"apiVersion": "extensions/v1beta1", "kind": "Deployment"});
        assert_eq!(Workload::from_value(&v), Ok(None));
    }
}
