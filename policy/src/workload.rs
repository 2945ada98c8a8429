//! Typed views of the workloads the rules read, with Kubernetes' defaults and arithmetic.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

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

/// An object of an admission request, in the form its caller holds it.
#[derive(Debug, Clone, Copy)]
pub enum ObjectJson<'a> {
    /// JSON text as the API server sent it (the webhook): decoded straight into its typed
    /// form, without an intermediate `Value`.
    Text(&'a RawValue),
    /// A parsed value (tests and tools).
    Value(&'a Value),
}

impl<'a> From<&'a RawValue> for ObjectJson<'a> {
    fn from(text: &'a RawValue) -> Self {
        ObjectJson::Text(text)
    }
}

impl<'a> From<&'a Value> for ObjectJson<'a> {
    fn from(value: &'a Value) -> Self {
        ObjectJson::Value(value)
    }
}

impl<'a> ObjectJson<'a> {
    /// Reads, in one pass over the text, what decides how to decode the object: its
    /// `apiVersion` and `kind`, where its `managedFields` are, and its pod template's JSON.
    /// Text the outline cannot read (duplicate keys, a field of an unexpected shape) is
    /// read as a `Value` instead, which is what every answer is defined by.
    pub fn outline(self) -> Result<AdmissionObject<'a>, ObjectError> {
        let text = match self {
            ObjectJson::Value(v) => {
                return Ok(AdmissionObject {
                    shape: Shape::Value(without_managed_fields(Cow::Borrowed(v))),
                });
            }
            ObjectJson::Text(raw) => raw.get(),
        };
        match outline::outline(text) {
            Some(o) => Ok(AdmissionObject {
                shape: Shape::Text {
                    text,
                    api_version: o.api_version,
                    kind: o.kind,
                    managed_fields: o.managed_fields,
                    template: o.template.and_then(|t| text.get(t)),
                },
            }),
            None => Ok(AdmissionObject {
                shape: Shape::Value(without_managed_fields(Cow::Owned(parse_value(text)?))),
            }),
        }
    }

    /// The object as a JSON value (the Service rules read values).
    pub fn to_value(self) -> Result<Cow<'a, Value>, ObjectError> {
        match self {
            ObjectJson::Value(v) => Ok(Cow::Borrowed(v)),
            ObjectJson::Text(raw) => parse_value(raw.get()).map(Cow::Owned),
        }
    }
}

/// An admission object, outlined: decoded into a [`Workload`] only when asked, and its pod
/// template compared with another object's without decoding either.
#[derive(Debug)]
pub struct AdmissionObject<'a> {
    shape: Shape<'a>,
}

#[derive(Debug)]
enum Shape<'a> {
    Text {
        text: &'a str,
        api_version: Option<Cow<'a, str>>,
        kind: Option<Cow<'a, str>>,
        /// Byte range of `metadata.managedFields`' value in `text`.
        managed_fields: Option<Range<usize>>,
        /// `spec.template`'s JSON text (`null` included) when `spec` has one.
        template: Option<&'a str>,
    },
    /// Read as a value, `managedFields` removed.
    Value(Cow<'a, Value>),
}

impl AdmissionObject<'_> {
    /// The object as a workload, with the same answers as [`Workload::from_value`]:
    /// `Ok(None)` for any other kind, an [`ObjectError`] naming the field of a wrong type.
    /// `metadata.managedFields` is not read: no rule looks at it, and it is often half the
    /// object.
    pub fn workload(&self) -> Result<Option<Workload>, ObjectError> {
        let (text, api_version, kind, managed_fields) = match &self.shape {
            Shape::Value(v) => return Workload::from_value(v),
            Shape::Text {
                text,
                api_version,
                kind,
                managed_fields,
                ..
            } => (*text, api_version, kind, managed_fields),
        };
        if api_version.as_deref() != Some("apps/v1") {
            return Ok(None);
        }
        let Some(wk) = kind.as_deref().and_then(WorkloadKind::from_kind) else {
            return Ok(None);
        };
        let text: Cow<'_, str> = match managed_fields {
            Some(r) => Cow::Owned([&text[..r.start], "null", &text[r.end..]].concat()),
            None => Cow::Borrowed(text),
        };
        let decoded = match wk {
            WorkloadKind::Deployment => {
                serde_json::from_str(&text).map(|d| Workload::Deployment(Box::new(d)))
            }
            WorkloadKind::StatefulSet => {
                serde_json::from_str(&text).map(|s| Workload::StatefulSet(Box::new(s)))
            }
            WorkloadKind::DaemonSet => {
                serde_json::from_str(&text).map(|d| Workload::DaemonSet(Box::new(d)))
            }
        };
        match decoded {
            Ok(w) => Ok(Some(w)),
            // Only a failure pays for the value: reading it names the bad field exactly as
            // `from_value` does (and stands by its answer should the two ever differ).
            Err(_) => Workload::from_value(&parse_value(&text)?),
        }
    }

    /// Whether the pod templates (`spec.template`) differ as JSON values, like
    /// [`crate::mutate::template_differs`]. Byte-equal templates, what the API server sends
    /// for an update that leaves the template alone, are equal without decoding either.
    pub fn template_differs(&self, old: &AdmissionObject<'_>) -> bool {
        if let (Some(new), Some(old)) = (self.template_text(), old.template_text())
            && new == old
        {
            return false;
        }
        self.template_value() != old.template_value()
    }

    /// For the object before an update: its workload when the update changes the pod
    /// template (as JSON values, like [`AdmissionObject::template_differs`]), `None` when it
    /// does not or when this is no workload. `new` is the updated object, `new_workload` its
    /// workload. A changed template needs the old workload anyway (RS301), and typed
    /// templates that differ differ as JSON too, so the JSON is only compared when the typed
    /// templates are equal (they drop unknown fields and nulls).
    pub fn workload_if_template_changed(
        &self,
        new: &AdmissionObject<'_>,
        new_workload: &Workload,
    ) -> Result<Option<Workload>, ObjectError> {
        if let (Some(new), Some(old)) = (new.template_text(), self.template_text())
            && new == old
        {
            return Ok(None);
        }
        match self.workload() {
            Ok(Some(old)) if old.template() != new_workload.template() => Ok(Some(old)),
            Ok(Some(old)) => Ok(new.template_differs(self).then_some(old)),
            Ok(None) => Ok(None),
            // An unreadable old object only matters when the template changed.
            Err(e) if new.template_differs(self) => Err(e),
            Err(_) => Ok(None),
        }
    }

    /// `Some` for outlined text: the template's JSON text, when there is one.
    fn template_text(&self) -> Option<Option<&str>> {
        match &self.shape {
            Shape::Text { template, .. } => Some(*template),
            Shape::Value(_) => None,
        }
    }

    fn template_value(&self) -> Option<Cow<'_, Value>> {
        match &self.shape {
            Shape::Text { template, .. } => {
                // Text the outline captured is valid JSON, so this parse does not fail; were
                // it to, the templates would count as different (a rollout: every rule runs).
                template.map(|t| Cow::Owned(serde_json::from_str(t).unwrap_or(Value::Null)))
            }
            Shape::Value(v) => v.pointer("/spec/template").map(Cow::Borrowed),
        }
    }
}

fn parse_value(text: &str) -> Result<Value, ObjectError> {
    serde_json::from_str(text).map_err(|e| ObjectError {
        kind: "object".into(),
        name: "<unnamed>".into(),
        path: ".".into(),
        message: format!("not valid JSON: {e}"),
    })
}

fn without_managed_fields(mut v: Cow<'_, Value>) -> Cow<'_, Value> {
    if v.pointer("/metadata/managedFields").is_some()
        && let Some(Value::Object(meta)) = v.to_mut().get_mut("metadata")
    {
        meta.remove("managedFields");
    }
    v
}

/// The outline of an object's JSON text: the few members that decide how to decode it, found
/// by a scan of the text. The text is valid JSON (it comes as a `RawValue`), so where a value
/// ends takes only string ends and bracket depth to find; serde's `IgnoredAny` walks every
/// token of `managedFields` through its visitors instead (that scan was a third of a request's
/// policy time). Whatever is not plainly read (an object that is not a JSON map, a repeated
/// key, `metadata` or `spec` of another type than map or null) gives `None`, and the caller
/// reads the text as a `Value` instead.
mod outline {
    use std::borrow::Cow;
    use std::ops::Range;

    #[derive(Debug, Default)]
    pub(super) struct Outline<'a> {
        /// `apiVersion` and `kind` when they are strings (`Value::as_str`).
        pub api_version: Option<Cow<'a, str>>,
        pub kind: Option<Cow<'a, str>>,
        /// Byte range of `metadata.managedFields`' value.
        pub managed_fields: Option<Range<usize>>,
        /// Byte range of `spec.template`'s value (`null` included).
        pub template: Option<Range<usize>>,
    }

    pub(super) fn outline(text: &str) -> Option<Outline<'_>> {
        let mut scan = Scan { text, at: 0 };
        let mut out = Outline::default();
        let mut seen = [false; 4];
        scan.members(|scan, key| {
            let Some(i) = ["apiVersion", "kind", "metadata", "spec"]
                .iter()
                .position(|k| key == *k)
            else {
                return scan.value().map(drop);
            };
            if std::mem::replace(&mut seen[i], true) {
                return None;
            }
            match i {
                0 => out.api_version = scan.maybe_str()?,
                1 => out.kind = scan.maybe_str()?,
                2 => out.managed_fields = scan.member("managedFields")?,
                _ => out.template = scan.member("template")?,
            }
            Some(())
        })?;
        scan.skip_ws();
        (scan.at == text.len()).then_some(out)
    }

    /// A position in valid JSON text. Every step checks its bounds: on anything unexpected it
    /// answers `None` rather than guess.
    struct Scan<'a> {
        text: &'a str,
        at: usize,
    }

    impl<'a> Scan<'a> {
        fn peek(&self) -> Option<u8> {
            self.text.as_bytes().get(self.at).copied()
        }

        fn skip_ws(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
                self.at += 1;
            }
        }

        /// At an opening quote: the string's contents and whether they hold escapes; moves
        /// past the closing quote.
        fn string(&mut self) -> Option<(Range<usize>, bool)> {
            let bytes = self.text.as_bytes();
            if bytes.get(self.at) != Some(&b'"') {
                return None;
            }
            let start = self.at + 1;
            let end = string_end(bytes, start)?;
            self.at = end + 1;
            let escaped = bytes.get(start..end)?.contains(&b'\\');
            Some((start..end, escaped))
        }

        /// A string's value: borrowed, or unescaped by serde_json when it has escapes.
        fn string_value(&mut self) -> Option<Cow<'a, str>> {
            let (span, escaped) = self.string()?;
            if escaped {
                serde_json::from_str(self.text.get(span.start - 1..span.end + 1)?)
                    .ok()
                    .map(Cow::Owned)
            } else {
                self.text.get(span).map(Cow::Borrowed)
            }
        }

        /// Any value: its byte range; moves past it.
        fn value(&mut self) -> Option<Range<usize>> {
            self.skip_ws();
            let bytes = self.text.as_bytes();
            let start = self.at;
            let end = match *bytes.get(start)? {
                b'"' => string_end(bytes, start + 1)? + 1,
                b'{' | b'[' => container_end(bytes, start)?,
                _ => {
                    let len = bytes
                        .get(start..)?
                        .iter()
                        .position(|c| {
                            matches!(c, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
                        })
                        .unwrap_or(bytes.len() - start);
                    if len == 0 {
                        return None;
                    }
                    start + len
                }
            };
            self.at = end;
            Some(start..end)
        }

        /// A string value, or `None` for a value of any other type.
        fn maybe_str(&mut self) -> Option<Option<Cow<'a, str>>> {
            self.skip_ws();
            if self.peek()? == b'"' {
                self.string_value().map(Some)
            } else {
                self.value().map(|_| None)
            }
        }

        /// Calls `each` with every key of the object here, `each` reading its value.
        fn members(
            &mut self,
            mut each: impl FnMut(&mut Self, Cow<'a, str>) -> Option<()>,
        ) -> Option<()> {
            self.skip_ws();
            if self.peek()? != b'{' {
                return None;
            }
            self.at += 1;
            self.skip_ws();
            if self.peek()? == b'}' {
                self.at += 1;
                return Some(());
            }
            loop {
                self.skip_ws();
                let key = self.string_value()?;
                self.skip_ws();
                if self.peek()? != b':' {
                    return None;
                }
                self.at += 1;
                each(self, key)?;
                self.skip_ws();
                let next = self.peek()?;
                self.at += 1;
                match next {
                    b',' => {}
                    b'}' => return Some(()),
                    _ => return None,
                }
            }
        }

        /// The byte range of member `name` of the object here (`None` inside when it has no
        /// such member, or is `null`); `None` for a value of any other type or a repeated key.
        fn member(&mut self, name: &str) -> Option<Option<Range<usize>>> {
            self.skip_ws();
            if self.peek()? != b'{' {
                return (self.text.get(self.at..)?.starts_with("null")).then(|| {
                    self.at += 4;
                    None
                });
            }
            let mut found = None;
            self.members(|scan, key| {
                let value = scan.value()?;
                if key == name && found.replace(value).is_some() {
                    return None;
                }
                Some(())
            })?;
            Some(found)
        }
    }

    /// The index of the closing quote of the string whose contents start at `at`.
    fn string_end(bytes: &[u8], mut at: usize) -> Option<usize> {
        loop {
            at = quote_or_backslash(bytes, at)?;
            if bytes[at] == b'"' {
                return Some(at);
            }
            // A backslash and the byte it escapes (`\uXXXX` has no quote or backslash after).
            at += 2;
        }
    }

    /// The index of the first `"` or `\` at or after `at`, eight bytes at a time: a byte of
    /// the word is flagged when it equals either (the classic "has a zero byte" test on the
    /// word xor-ed with each); the lowest flag is exact.
    pub(super) fn quote_or_backslash(bytes: &[u8], mut at: usize) -> Option<usize> {
        const ONES: u64 = u64::from_le_bytes([0x01; 8]);
        const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
        while let Some(word) = bytes.get(at..at + 8) {
            let word = u64::from_le_bytes(word.try_into().ok()?);
            let quote = word ^ (ONES * u64::from(b'"'));
            let backslash = word ^ (ONES * u64::from(b'\\'));
            let flags = ((quote.wrapping_sub(ONES) & !quote)
                | (backslash.wrapping_sub(ONES) & !backslash))
                & HIGHS;
            if flags != 0 {
                return Some(at + (flags.trailing_zeros() / 8) as usize);
            }
            at += 8;
        }
        let rest = bytes.get(at..)?;
        rest.iter()
            .position(|&b| b == b'"' || b == b'\\')
            .map(|i| at + i)
    }

    /// The index just past the object or array opening at `at`. Outside strings compact
    /// JSON has only a few bytes between strings, so those go one at a time.
    fn container_end(bytes: &[u8], mut at: usize) -> Option<usize> {
        let mut depth = 0usize;
        loop {
            match *bytes.get(at)? {
                b'"' => at = string_end(bytes, at + 1)?,
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        return Some(at + 1);
                    }
                }
                _ => {}
            }
            at += 1;
        }
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

    /// What the webhook hands over (the JSON text) reads exactly as the same JSON as a value,
    /// whatever the outline makes of it.
    #[test]
    fn text_reads_as_the_value_does() {
        let cases = [
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x","managedFields":[{"manager":"m","fieldsV1":{"f:spec":{}}}]},"spec":{"replicas":2,"selector":{},"template":{}}}"#,
            // Escapes in what the outline reads.
            r#"{"api\u0056ersion":"apps\/v1","kin\u0064":"StatefulSet","metadata":{"name":"x"},"spec":{"template":{}}}"#,
            // Repeated keys: the value keeps the last one.
            r#"{"apiVersion":"apps/v1","kind":"Deployment","kind":"Service","metadata":{"name":"x"}}"#,
            r#"{"apiVersion":"apps/v1","kind":"Service","kind":"DaemonSet","metadata":{"name":"x"},"spec":{"template":{}}}"#,
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x","managedFields":[],"managedFields":5}}"#,
            r#"{"apiVersion":"apps/v1","kind":"Deployment","spec":{"replicas":1},"spec":{"replicas":"two"}}"#,
            // Shapes the outline leaves to the value.
            r#"["apps/v1","Deployment"]"#,
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":["x"]}"#,
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":["template"]}"#,
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":null,"spec":null}"#,
            // Wrong types: the same error, naming the same field.
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x","managedFields":"junk"},"spec":{"replicas":"three"}}"#,
            r#"{"apiVersion":"apps/v1","kind":"DaemonSet","metadata":{"name":"x","labels":{"a":1}}}"#,
            r#"{"apiVersion":5,"kind":"Deployment"}"#,
            r#"{"apiVersion":"apps/v1","kind":["Deployment"]}"#,
            // Whitespace everywhere, and strings holding brackets, quotes and backslashes.
            "{ \"apiVersion\" : \"apps/v1\" ,\n\t\"kind\":\"Deployment\", \"metadata\" : { \"annotations\" : {\"a\":\"{\\\"b\\\":[\\\"}\\\\\\\"]}\"} ,\"managedFields\" : [ {\"f:{\":{}} ] , \"name\":\"x\" } ,\"spec\":{\"replicas\" : 3 , \"template\" : { } } , \"status\" : { } }\n",
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{},"spec":{},"status":null,"x":[[],{},"",0,-1.5e3,true,false,null]}"#,
            "null",
            "5",
            r#""Deployment""#,
        ];
        for text in cases {
            let raw = RawValue::from_string(text.to_string()).expect("JSON");
            let value: Value = serde_json::from_str(text).expect("JSON");
            let from_text = ObjectJson::Text(&raw).outline().and_then(|o| o.workload());
            let from_value = ObjectJson::Value(&value)
                .outline()
                .and_then(|o| o.workload());
            assert_eq!(from_text, from_value, "{text}");
        }
        let raw = RawValue::from_string(cases[0].to_string()).expect("JSON");
        let w = ObjectJson::Text(&raw)
            .outline()
            .and_then(|o| o.workload())
            .expect("readable")
            .expect("a Deployment");
        assert_eq!((w.name(), w.replicas()), ("x", Some(2)));
        assert!(
            w.metadata().managed_fields.is_none(),
            "managedFields are not read"
        );
        let e = ObjectJson::Text(&RawValue::from_string(cases[10].to_string()).expect("JSON"))
            .outline()
            .and_then(|o| o.workload())
            .expect_err("replicas is no number");
        assert_eq!(e.path, "spec.replicas");
    }

    /// The scan finds what serde finds, in the recorded objects and in odd spacing; shapes it
    /// does not read plainly are left to the value.
    #[test]
    fn the_outline_finds_the_members() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/admission-reviews"
        );
        let mut texts = Vec::new();
        for entry in std::fs::read_dir(dir).expect("recorded reviews") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                let review: Value =
                    serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("JSON");
                for key in ["object", "oldObject"] {
                    if review["request"][key].is_object() {
                        texts.push(review["request"][key].to_string());
                        texts.push(
                            serde_json::to_string_pretty(&review["request"][key]).expect("JSON"),
                        );
                    }
                }
            }
        }
        assert!(texts.len() >= 40, "{} objects", texts.len());
        for text in &texts {
            let value: Value = serde_json::from_str(text).expect("JSON");
            let o = outline::outline(text).unwrap_or_else(|| panic!("not outlined: {text}"));
            assert_eq!(o.api_version.as_deref(), value["apiVersion"].as_str());
            assert_eq!(o.kind.as_deref(), value["kind"].as_str());
            let at = |r: Option<std::ops::Range<usize>>| {
                r.map(|r| serde_json::from_str::<Value>(&text[r]).expect("a JSON value"))
            };
            assert_eq!(
                at(o.managed_fields).as_ref(),
                value.pointer("/metadata/managedFields")
            );
            assert_eq!(at(o.template).as_ref(), value.pointer("/spec/template"));
        }
        for odd in [
            "[]",
            r#"{"kind":"a","kind":"b"}"#,
            r#"{"metadata":[]}"#,
            r#"{"metadata":{"managedFields":1,"managedFields":2}}"#,
            r#"{"spec":"x"}"#,
            r#"{"a":1} x"#,
        ] {
            assert!(outline::outline(odd).is_none(), "{odd}");
        }
        let o = outline::outline(r#" { "kin\u0064" : "Deployment" , "metadata" : null , "spec" : { "template" : null } } "#)
            .expect("outlined");
        assert_eq!(o.kind.as_deref(), Some("Deployment"));
        assert_eq!(
            (o.managed_fields, o.template.map(|r| r.len())),
            (None, Some(4))
        );
    }

    fn arb_object() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let key = prop_oneof![
            Just("apiVersion".to_string()),
            Just("kind".to_string()),
            Just("metadata".to_string()),
            Just("managedFields".to_string()),
            Just("spec".to_string()),
            Just("template".to_string()),
            ".{0,6}",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-1e9f64..1e9).prop_map(Value::from),
            ".{0,8}".prop_map(Value::String),
            prop_oneof![Just("\"}]"), Just("\\"), Just("{["), Just("apps/v1")]
                .prop_map(|s| Value::String(s.into())),
        ];
        leaf.prop_recursive(4, 40, 5, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(key.clone(), inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Any JSON, compact or pretty: the outline reads what the value holds, or leaves it
        /// to the value.
        #[test]
        fn the_outline_agrees_with_the_value(value in arb_object(), pretty in proptest::bool::ANY) {
            let text = if pretty {
                serde_json::to_string_pretty(&value).expect("JSON")
            } else {
                value.to_string()
            };
            // The value the text reads as (floats need not read back bit for bit).
            let value: Value = serde_json::from_str(&text).expect("JSON");
            if let Some(o) = outline::outline(&text) {
                let at = |r: Option<std::ops::Range<usize>>| {
                    r.map(|r| serde_json::from_str::<Value>(&text[r]).expect("a JSON value"))
                };
                proptest::prop_assert_eq!(o.api_version.as_deref(), value.get("apiVersion").and_then(Value::as_str));
                proptest::prop_assert_eq!(o.kind.as_deref(), value.get("kind").and_then(Value::as_str));
                let (managed_fields, template) = (at(o.managed_fields), at(o.template));
                proptest::prop_assert_eq!(managed_fields.as_ref(), value.pointer("/metadata/managedFields"));
                proptest::prop_assert_eq!(template.as_ref(), value.pointer("/spec/template"));
            } else {
                // Only shapes the outline leaves alone: not a map, or metadata/spec of another type.
                let odd = |k: &str| value.get(k).is_some_and(|v| !v.is_object() && !v.is_null());
                proptest::prop_assert!(!value.is_object() || odd("metadata") || odd("spec"), "{}", text);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn the_word_scan_finds_the_first_quote_or_backslash(
            bytes in proptest::collection::vec(proptest::prop_oneof![
                proptest::prelude::Just(b'"'),
                proptest::prelude::Just(b'\\'),
                proptest::prelude::any::<u8>(),
            ], 0..40),
            at in 0usize..42,
        ) {
            let naive = bytes
                .get(at..)
                .and_then(|r| r.iter().position(|&b| b == b'"' || b == b'\\'))
                .map(|i| at + i);
            proptest::prop_assert_eq!(outline::quote_or_backslash(&bytes, at), naive);
        }
    }

    #[test]
    fn the_old_workload_is_read_when_the_template_changed() {
        let deployment = |spec: &str| {
            let text = format!(
                r#"{{"apiVersion":"apps/v1","kind":"Deployment","metadata":{{"name":"x"}},"spec":{spec}}}"#
            );
            RawValue::from_string(text).expect("JSON")
        };
        let changed = |new: &str, old: &str| {
            let (new, old) = (deployment(new), deployment(old));
            let new = ObjectJson::Text(&new).outline().expect("outline");
            let w = new.workload().expect("readable").expect("a workload");
            let old = ObjectJson::Text(&old).outline().expect("outline");
            old.workload_if_template_changed(&new, &w)
                .map(|o| o.map(|o| o.name().to_string()))
        };
        let image = |i: &str| {
            format!(r#"{{"template":{{"spec":{{"containers":[{{"name":"c","image":"{i}"}}]}}}}}}"#)
        };
        assert_eq!(changed(&image("a"), &image("a")), Ok(None), "byte-equal");
        assert_eq!(
            changed(&image("a"), &image("b")),
            Ok(Some("x".into())),
            "typed differ"
        );
        // Equal typed (an unknown field, a null), different JSON: changed, like the values.
        assert_eq!(
            changed(r#"{"template":{"x":1}}"#, r#"{"template":{}}"#),
            Ok(Some("x".into()))
        );
        assert_eq!(
            changed(r#"{"template":{"spec":null}}"#, r#"{"template":{}}"#),
            Ok(Some("x".into()))
        );
        // Equal JSON, different bytes: unchanged.
        assert_eq!(
            changed(
                r#"{"template":{"metadata":{"labels":{"a":"1","b":"2"}}}}"#,
                r#"{"template":{ "metadata":{"labels":{"b":"2","a":"1"}}}}"#
            ),
            Ok(None)
        );
        // An unreadable old object matters only when the template changed.
        let bad_old = r#"{"replicas":"two","template":{}}"#;
        assert_eq!(changed(r#"{"template":{}}"#, bad_old), Ok(None));
        let e = changed(r#"{"template":{"x":1}}"#, bad_old).expect_err("unreadable");
        assert_eq!(e.path, "spec.replicas");
    }

    #[test]
    fn templates_compare_as_values() {
        let pairs = [
            (
                r#"{"spec":{"template":{"a":1}}}"#,
                r#"{"spec":{"template":{"a":1}}}"#,
                false,
            ),
            (
                r#"{"spec":{"template":{"a":1,"b":2}}}"#,
                r#"{"spec":{"template":{ "b" : 2, "a":1}}}"#,
                false,
            ),
            (
                r#"{"spec":{"template":{"a":1}}}"#,
                r#"{"spec":{"template":{"a":2}}}"#,
                true,
            ),
            (
                r#"{"spec":{"template":{"a":1.0}}}"#,
                r#"{"spec":{"template":{"a":1}}}"#,
                true,
            ),
            (r#"{"spec":{"template":null}}"#, r#"{"spec":{}}"#, true),
            (r#"{"spec":null}"#, r#"{"spec":{}}"#, false),
            (r#"{"spec":[1]}"#, r#"{"spec":{"template":{}}}"#, true),
            (r#"{"spec":[1]}"#, r#"{}"#, false),
            (
                r#"{"kind":"a","kind":"b","spec":{"template":{}}}"#,
                r#"{"spec":{"template":{}}}"#,
                false,
            ),
        ];
        for (new, old, differs) in pairs {
            let (new_raw, old_raw) = (
                RawValue::from_string(new.to_string()).expect("JSON"),
                RawValue::from_string(old.to_string()).expect("JSON"),
            );
            let (new_value, old_value): (Value, Value) = (
                serde_json::from_str(new).expect("JSON"),
                serde_json::from_str(old).expect("JSON"),
            );
            assert_eq!(
                crate::mutate::template_differs(&new_value, &old_value),
                differs,
                "{new} / {old}"
            );
            for (a, b) in [
                (ObjectJson::Text(&new_raw), ObjectJson::Text(&old_raw)),
                (ObjectJson::Text(&new_raw), ObjectJson::Value(&old_value)),
                (ObjectJson::Value(&new_value), ObjectJson::Text(&old_raw)),
                (ObjectJson::Value(&new_value), ObjectJson::Value(&old_value)),
            ] {
                let (a, b) = (a.outline().expect("outline"), b.outline().expect("outline"));
                assert_eq!(a.template_differs(&b), differs, "{new} / {old}");
            }
        }
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
