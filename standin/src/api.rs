//! Routing and the verbs other than watch: GET, LIST, CREATE, UPDATE (PUT), PATCH (JSON Patch
//! and merge patch), DELETE, and the `scale` subresource, answered from the store the way the
//! real API server answers (statuses and `Status` bodies from the recordings).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::Verb;
use crate::faults::{OTHER_WRITER_ANNOTATION, StaleAnswer};
use crate::resources::{self, ResourceType};
use crate::selector::{FieldSelector, LabelSelector};
use crate::server::State;
use crate::status::{self, Answer, Cause, RecordedAnswers};
use crate::store::{with_kind, without_kind};
use crate::validate::validate;

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Version,
    Collection {
        rt: &'static ResourceType,
        /// `None`: every namespace (or a cluster-scoped type).
        namespace: Option<String>,
    },
    Object {
        rt: &'static ResourceType,
        namespace: Option<String>,
        name: String,
        subresource: Option<String>,
    },
    Unknown,
}

impl Route {
    pub fn parse(path: &str) -> Route {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (group, version, rest) = match segments.as_slice() {
            ["version"] => return Route::Version,
            ["api", version, rest @ ..] => ("", *version, rest),
            ["apis", group, version, rest @ ..] => (*group, *version, rest),
            _ => return Route::Unknown,
        };
        let find = |plural: &str| resources::by_path(group, version, plural);
        let (rt, namespace, rest) = match rest {
            ["namespaces", ns, plural, rest @ ..] => match find(plural) {
                Some(rt) if rt.namespaced => (rt, Some((*ns).to_owned()), rest),
                _ => return Route::Unknown,
            },
            [plural, rest @ ..] => match find(plural) {
                // `namespaces/<name>` is an object; other namespaced types are listed here
                // across namespaces only.
                Some(rt) if !rt.namespaced || rest.is_empty() => (rt, None, rest),
                _ => return Route::Unknown,
            },
            [] => return Route::Unknown,
        };
        match rest {
            [] => Route::Collection { rt, namespace },
            [name] => Route::Object {
                rt,
                namespace,
                name: (*name).to_owned(),
                subresource: None,
            },
            [name, sub] => Route::Object {
                rt,
                namespace,
                name: (*name).to_owned(),
                subresource: Some((*sub).to_owned()),
            },
            _ => Route::Unknown,
        }
    }

    pub fn resource(&self) -> Option<&'static ResourceType> {
        match self {
            Route::Collection { rt, .. } | Route::Object { rt, .. } => Some(rt),
            _ => None,
        }
    }

    pub fn verb(&self, method: &str, query: &BTreeMap<String, String>) -> Verb {
        let watch = query.get("watch").is_some_and(|w| w == "true" || w == "1");
        match (self, method) {
            (Route::Collection { .. }, "GET") if watch => Verb::Watch,
            (Route::Collection { .. }, "GET") => Verb::List,
            (Route::Collection { .. }, "POST") => Verb::Create,
            (Route::Object { .. }, "GET") => Verb::Get,
            (Route::Object { .. }, "PUT") => Verb::Update,
            (Route::Object { .. }, "PATCH") => Verb::Patch,
            (Route::Object { .. }, "DELETE") => Verb::Delete,
            _ => Verb::Other,
        }
    }
}

/// A request, decoded.
pub struct ApiRequest<'a> {
    pub method: &'a str,
    pub route: &'a Route,
    pub verb: Verb,
    pub query: &'a BTreeMap<String, String>,
    pub content_type: &'a str,
    pub body: &'a [u8],
}

impl ApiRequest<'_> {
    fn dry_run(&self) -> bool {
        self.query.contains_key("dryRun")
    }

    /// A server-side apply (`application/apply-patch+yaml`).
    fn is_apply(&self) -> bool {
        self.content_type
            .split(';')
            .next()
            .is_some_and(|m| m.trim() == "application/apply-patch+yaml")
    }
}

/// The answer to a request other than a watch, and whether it changed the store.
pub fn answer(st: &mut State, rec: &RecordedAnswers, req: &ApiRequest) -> (Answer, bool) {
    let (rt, namespace, name, subresource) = match req.route {
        Route::Version => return (rec.version(), false),
        Route::Unknown => return (status::no_such_path(), false),
        Route::Collection { rt, namespace } => (*rt, namespace.as_deref(), None, None),
        Route::Object {
            rt,
            namespace,
            name,
            subresource,
        } => (
            *rt,
            namespace.as_deref(),
            Some(name.as_str()),
            subresource.as_deref(),
        ),
    };
    if st.faults.forbidden(req.verb, rt.plural) {
        return (rec.forbidden(req.verb, rt, namespace, name), false);
    }
    let ns = namespace.unwrap_or_default();
    let target = Target { rt, ns, rec };
    match (req.verb, name, subresource) {
        (Verb::List, _, _) => (target.list(st, namespace, req.query), false),
        (Verb::Create, _, _) => target.create(st, req),
        (Verb::Get, Some(n), None | Some("status")) => (target.get(st, n), false),
        (Verb::Get, Some(n), Some("scale")) if rt.has_scale => (target.scale(st, n, None), false),
        (Verb::Patch | Verb::Update, Some(n), Some("scale")) if rt.has_scale => {
            target.scale_write(st, n, req)
        }
        (Verb::Update, Some(n), None) => target.update(st, n, req),
        (Verb::Patch, Some(n), None) if req.is_apply() => target.apply(st, n, req),
        (Verb::Patch, Some(n), None) => target.patch(st, n, req),
        (Verb::Delete, Some(n), None) => target.delete(st, n, req),
        (_, Some(_), Some(_)) => (status::no_such_path(), false),
        _ => (status::method_not_allowed(req.method), false),
    }
}

struct Target<'a> {
    rt: &'static ResourceType,
    ns: &'a str,
    rec: &'a RecordedAnswers,
}

fn parse_json(body: &[u8]) -> Result<Value, Answer> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(status::bad_request("the request body is not a JSON object")),
        Err(e) => Err(status::bad_request(&format!(
            "the request body is not JSON: {e}"
        ))),
    }
}

fn rv_of(v: &Value) -> &Value {
    &v["metadata"]["resourceVersion"]
}

impl Target<'_> {
    fn current(&self, st: &State, name: &str) -> Result<Value, Answer> {
        st.store
            .get(self.rt.plural, self.ns, name)
            .cloned()
            .ok_or_else(|| self.rec.not_found(self.rt, name))
    }

    fn get(&self, st: &State, name: &str) -> Answer {
        match self.current(st, name) {
            Ok(o) => Answer::ok(with_kind(self.rt, o)),
            Err(a) => a,
        }
    }

    fn list(
        &self,
        st: &State,
        namespace: Option<&str>,
        query: &BTreeMap<String, String>,
    ) -> Answer {
        let labels =
            match LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str)) {
                Ok(s) => s,
                Err(e) => return status::bad_request(&e.to_string()),
            };
        let fields = match FieldSelector::parse(
            query.get("fieldSelector").map_or("", String::as_str),
            self.rt.plural,
        ) {
            Ok(s) => s,
            Err(e) => return status::bad_request(&e.to_string()),
        };
        let items: Vec<&Value> = st
            .store
            .list(self.rt.plural, namespace)
            .filter(|o| labels.selects(o) && fields.selects(o))
            .collect();
        let mut metadata = json!({"resourceVersion": st.store.resource_version().to_string()});
        // `resourceVersion=0` is served from the watch cache, which does not paginate.
        let from_cache = query.get("resourceVersion").is_some_and(|v| v == "0");
        let limit = match query.get("limit").map(|l| l.parse::<usize>()) {
            None => 0,
            Some(Ok(l)) => l,
            Some(Err(_)) => return status::bad_request("limit must be a non-negative integer"),
        };
        let page: &[&Value] = if !from_cache && limit > 0 {
            let start = match query.get("continue") {
                None => 0,
                Some(token) => match token
                    .strip_prefix("standin-")
                    .and_then(|o| o.parse::<usize>().ok())
                {
                    Some(o) if o <= items.len() => o,
                    _ => {
                        return status::bad_request(&format!(
                            "continue key is not valid: {token:?}"
                        ));
                    }
                },
            };
            let end = (start + limit).min(items.len());
            if end < items.len() {
                metadata["continue"] = json!(format!("standin-{end}"));
                metadata["remainingItemCount"] = json!(items.len() - end);
            }
            &items[start..end]
        } else {
            &items
        };
        Answer::ok(
            json!({"kind": self.rt.list_kind(), "apiVersion": self.rt.api_version(),
            "metadata": metadata, "items": page}),
        )
    }

    fn create(&self, st: &mut State, req: &ApiRequest) -> (Answer, bool) {
        let mut obj = match parse_json(req.body) {
            Ok(o) => without_kind(o),
            Err(a) => return (a, false),
        };
        if self.rt.namespaced
            && obj["metadata"]["namespace"]
                .as_str()
                .is_some_and(|n| n != self.ns)
        {
            return (
                status::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ),
                false,
            );
        }
        let causes = validate(self.rt, None, &obj);
        if !causes.is_empty() {
            return (
                self.rec.invalid(
                    self.rt,
                    obj["metadata"]["name"].as_str().unwrap_or_default(),
                    &causes,
                ),
                false,
            );
        }
        if obj["metadata"]["name"].as_str().is_none_or(str::is_empty) {
            let prefix = obj["metadata"]["generateName"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            obj["metadata"]["name"] = json!(format!("{prefix}{}", st.store.name_suffix()));
        }
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if st.store.get(self.rt.plural, self.ns, &name).is_some() {
            return (status::already_exists(self.rt, &name), false);
        }
        if let Some(meta) = obj["metadata"].as_object_mut() {
            // Set by the server.
            for field in ["resourceVersion", "uid", "creationTimestamp", "generation"] {
                meta.remove(field);
            }
            if self.rt.namespaced {
                meta.insert("namespace".into(), json!(self.ns));
            }
        }
        if self.rt.has_status
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        if req.dry_run() {
            return (
                Answer {
                    status: 201,
                    body: with_kind(self.rt, obj),
                },
                false,
            );
        }
        if let Err(e) = st.store.put(self.rt.plural, obj) {
            return (status::bad_request(&e.to_string()), false);
        }
        let stored = st
            .store
            .get(self.rt.plural, self.ns, &name)
            .cloned()
            .unwrap_or_default();
        (
            Answer {
                status: 201,
                body: with_kind(self.rt, stored),
            },
            true,
        )
    }

    fn update(&self, st: &mut State, name: &str, req: &ApiRequest) -> (Answer, bool) {
        let (current, wrote) = match self.other_writer(st, name, req) {
            Ok(c) => c,
            Err(a) => return a,
        };
        let new = match parse_json(req.body) {
            Ok(o) => without_kind(o),
            Err(a) => return (a, wrote),
        };
        if new["metadata"]["name"] != name {
            return (
                status::bad_request(&format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    new["metadata"]["name"]
                )),
                wrote,
            );
        }
        if rv_of(&new).is_null() {
            let cause = Cause {
                field: "metadata.resourceVersion".into(),
                message: "Invalid value: 0x0: must be specified for an update".into(),
            };
            return (self.rec.invalid(self.rt, name, &[cause]), wrote);
        }
        if rv_of(&new) != rv_of(&current) {
            return (self.rec.conflict(self.rt, name), wrote);
        }
        let (answer, stored) = self.finish_write(st, name, &current, new, req.dry_run());
        (answer, wrote || stored)
    }

    fn patch(&self, st: &mut State, name: &str, req: &ApiRequest) -> (Answer, bool) {
        let (current, wrote) = match self.other_writer(st, name, req) {
            Ok(c) => c,
            Err(a) => return a,
        };
        let mut new = with_kind(self.rt, current.clone());
        if let Err(a) = self.apply_patch(&mut new, req) {
            return (a, wrote);
        }
        if rv_of(&new) != rv_of(&current) {
            return (self.rec.conflict(self.rt, name), wrote);
        }
        let (answer, stored) =
            self.finish_write(st, name, &current, without_kind(new), req.dry_run());
        (answer, wrote || stored)
    }

    /// Server-side apply, for a single field manager: the applied configuration becomes the
    /// object (server-set metadata kept), creating it when absent. Conflicts between managers
    /// and `managedFields` are not modelled; `fieldManager` is required, as on a real server.
    fn apply(&self, st: &mut State, name: &str, req: &ApiRequest) -> (Answer, bool) {
        if req.query.get("fieldManager").is_none_or(String::is_empty) {
            return (
                status::bad_request("PATCH, fieldManager is required for apply requests"),
                false,
            );
        }
        // JSON is YAML: kube-rs sends the applied configuration as JSON.
        let applied = match parse_json(req.body) {
            Ok(o) => o,
            Err(a) => return (a, false),
        };
        if applied["metadata"]["name"].as_str() != Some(name) {
            return (
                status::bad_request("the name of the object does not match the name on the URL"),
                false,
            );
        }
        match self.current(st, name) {
            Err(_) => self.create(st, req),
            Ok(current) => {
                self.finish_write(st, name, &current, without_kind(applied), req.dry_run())
            }
        }
    }

    /// Applies a JSON Patch or merge patch to `target`.
    fn apply_patch(&self, target: &mut Value, req: &ApiRequest) -> Result<(), Answer> {
        let media = req
            .content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        match media {
            "application/json-patch+json" => {
                let ops: json_patch::Patch = serde_json::from_slice(req.body).map_err(|e| {
                    status::bad_request(&format!("the request body is not a JSON Patch: {e}"))
                })?;
                // What a real server says when a `test` op (or any op) fails: 05.
                json_patch::patch(target, &ops).map_err(|_| self.rec.json_patch_failed())
            }
            "application/merge-patch+json" => {
                let patch = parse_json(req.body)?;
                json_patch::merge(target, &patch);
                Ok(())
            }
            other => Err(status::unsupported_media_type(other)),
        }
    }

    /// The object as stored, after the other writer of a [`crate::Fault::ConcurrentWrite`]
    /// (if one strikes) changed it; `Err` when the fault answers at once.
    #[allow(clippy::type_complexity)]
    fn other_writer(
        &self,
        st: &mut State,
        name: &str,
        req: &ApiRequest,
    ) -> Result<(Value, bool), (Answer, bool)> {
        let current = self.current(st, name).map_err(|a| (a, false))?;
        let body = String::from_utf8_lossy(req.body);
        let Some((touch, answer)) = st.faults.concurrent_write(self.rt.plural, &body) else {
            return Ok((current, false));
        };
        let mut other = current;
        other["metadata"]["annotations"][OTHER_WRITER_ANNOTATION] = json!(touch);
        if let Err(e) = st.store.put(self.rt.plural, other) {
            return Err((status::bad_request(&e.to_string()), false));
        }
        if answer == StaleAnswer::Conflict {
            return Err((self.rec.conflict(self.rt, name), true));
        }
        let current = self.current(st, name).map_err(|a| (a, true))?;
        Ok((current, true))
    }

    /// Validates and stores a new state of an existing object; server-set metadata and (for
    /// types with a status subresource) `status` stay as they were.
    fn finish_write(
        &self,
        st: &mut State,
        name: &str,
        current: &Value,
        mut new: Value,
        dry_run: bool,
    ) -> (Answer, bool) {
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
            "resourceVersion",
        ] {
            new["metadata"][field] = current["metadata"][field].clone();
        }
        if let Some(meta) = new["metadata"].as_object_mut() {
            meta.retain(|_, v| !v.is_null());
        }
        if self.rt.has_status {
            new["status"] = current["status"].clone();
            if let Some(m) = new.as_object_mut() {
                m.retain(|k, v| k != "status" || !v.is_null());
            }
        }
        let causes = validate(self.rt, Some(current), &new);
        if !causes.is_empty() {
            return (self.rec.invalid(self.rt, name, &causes), false);
        }
        if dry_run {
            return (Answer::ok(with_kind(self.rt, new)), false);
        }
        let wrote = match st.store.put(self.rt.plural, new) {
            Ok(w) => w,
            Err(e) => return (status::bad_request(&e.to_string()), false),
        };
        let stored = st
            .store
            .get(self.rt.plural, self.ns, name)
            .cloned()
            .unwrap_or_default();
        (Answer::ok(with_kind(self.rt, stored)), wrote)
    }

    fn delete(&self, st: &mut State, name: &str, req: &ApiRequest) -> (Answer, bool) {
        let current = match self.current(st, name) {
            Ok(c) => c,
            Err(a) => return (a, false),
        };
        let options: Value = serde_json::from_slice(req.body).unwrap_or(Value::Null);
        let pre = &options["preconditions"];
        if (pre["resourceVersion"].is_string() && pre["resourceVersion"] != *rv_of(&current))
            || (pre["uid"].is_string() && pre["uid"] != current["metadata"]["uid"])
        {
            return (self.rec.conflict(self.rt, name), false);
        }
        if req.dry_run() {
            return (Answer::ok(with_kind(self.rt, current)), false);
        }
        if options["propagationPolicy"] == "Orphan" || options["orphanDependents"] == true {
            let uid = current["metadata"]["uid"].clone();
            let dependents: Vec<(&'static str, Value)> = resources::ALL
                .iter()
                .flat_map(|rt| {
                    st.store
                        .list(rt.plural, Some(self.ns))
                        .map(move |o| (rt.plural, o))
                })
                .filter(|(_, o)| {
                    o["metadata"]["ownerReferences"]
                        .as_array()
                        .is_some_and(|r| r.iter().any(|r| r["uid"] == uid))
                })
                .map(|(p, o)| (p, o.clone()))
                .collect();
            for (plural, mut o) in dependents {
                if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                    refs.retain(|r| r["uid"] != uid);
                }
                if let Err(e) = st.store.put(plural, o) {
                    return (status::bad_request(&e.to_string()), true);
                }
            }
        }
        match st.store.delete(self.rt.plural, self.ns, name) {
            Ok(_) => (Answer::ok(with_kind(self.rt, current)), true),
            Err(e) => (status::bad_request(&e.to_string()), false),
        }
    }

    /// The `autoscaling/v1` Scale of a workload (`replicas` overriding its spec).
    fn scale(&self, st: &State, name: &str, replicas: Option<i64>) -> Answer {
        let o = match self.current(st, name) {
            Ok(o) => o,
            Err(a) => return a,
        };
        let m = &o["metadata"];
        Answer::ok(json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
                "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
            "spec": {"replicas": replicas.unwrap_or_else(|| o["spec"]["replicas"].as_i64().unwrap_or(1))},
            "status": {"replicas": o["status"]["replicas"].as_i64().unwrap_or(0),
                "selector": selector_text(&o["spec"]["selector"])}}))
    }

    fn scale_write(&self, st: &mut State, name: &str, req: &ApiRequest) -> (Answer, bool) {
        let current = self.scale(st, name, None);
        if current.status != 200 {
            return (current, false);
        }
        let mut scale = current.body.clone();
        let patched = if req.verb == Verb::Patch {
            self.apply_patch(&mut scale, req).map(|()| scale)
        } else {
            parse_json(req.body)
        };
        let scale = match patched {
            Ok(s) => s,
            Err(a) => return (a, false),
        };
        let rv = rv_of(&scale);
        if !rv.is_null() && rv != rv_of(&current.body) {
            return (self.rec.conflict(self.rt, name), false);
        }
        let Some(replicas) = scale["spec"]["replicas"].as_i64().filter(|r| *r >= 0) else {
            let cause = Cause {
                field: "spec.replicas".into(),
                message: format!(
                    "Invalid value: {}: must be greater than or equal to 0",
                    scale["spec"]["replicas"]
                ),
            };
            return (self.rec.invalid(self.rt, name, &[cause]), false);
        };
        let mut obj = st
            .store
            .get(self.rt.plural, self.ns, name)
            .cloned()
            .unwrap_or_default();
        obj["spec"]["replicas"] = json!(replicas);
        if req.dry_run() {
            return (self.scale(st, name, Some(replicas)), false);
        }
        let wrote = match st.store.put(self.rt.plural, obj) {
            Ok(w) => w,
            Err(e) => return (status::bad_request(&e.to_string()), false),
        };
        (self.scale(st, name, None), wrote)
    }
}

/// A selector object as query text: `app=shop,track in (canary)`.
pub fn selector_text(selector: &Value) -> String {
    let mut terms: Vec<String> = crate::selector::string_map(&selector["matchLabels"])
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = e["key"].as_str().unwrap_or_default();
        let values = || {
            e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        };
        terms.push(match e["operator"].as_str() {
            Some("In") => format!("{key} in ({})", values()),
            Some("NotIn") => format!("{key} notin ({})", values()),
            Some("DoesNotExist") => format!("!{key}"),
            _ => key.to_owned(),
        });
    }
    terms.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{DEPLOYMENTS, NAMESPACES, PODS};

    #[test]
    fn routes() {
        assert_eq!(Route::parse("/version"), Route::Version);
        assert_eq!(
            Route::parse("/apis/apps/v1/namespaces/api/deployments"),
            Route::Collection {
                rt: &DEPLOYMENTS,
                namespace: Some("api".into())
            }
        );
        assert_eq!(
            Route::parse("/api/v1/pods"),
            Route::Collection {
                rt: &PODS,
                namespace: None
            }
        );
        assert_eq!(
            Route::parse("/apis/apps/v1/namespaces/api/deployments/good/scale"),
            Route::Object {
                rt: &DEPLOYMENTS,
                namespace: Some("api".into()),
                name: "good".into(),
                subresource: Some("scale".into())
            }
        );
        assert_eq!(
            Route::parse("/api/v1/namespaces/api"),
            Route::Object {
                rt: &NAMESPACES,
                namespace: None,
                name: "api".into(),
                subresource: None
            }
        );
        assert_eq!(
            Route::parse("/api/v1/namespaces"),
            Route::Collection {
                rt: &NAMESPACES,
                namespace: None
            }
        );
        assert_eq!(
            Route::parse("/apis/apps/v1/namespaces/api/pods"),
            Route::Unknown
        );
        assert_eq!(
            Route::parse("/apis/apps/v1/deployments/good"),
            Route::Unknown
        );
        assert_eq!(Route::parse("/healthz"), Route::Unknown);
    }

    #[test]
    fn selector_text_round_trips() {
        let s = json!({"matchLabels": {"app": "shop"}, "matchExpressions": [{"key": "track", "operator": "NotIn", "values": ["canary", "x"]}, {"key": "old", "operator": "DoesNotExist"}]});
        let text = selector_text(&s);
        assert_eq!(text, "app=shop,track notin (canary,x),!old");
        assert_eq!(
            LabelSelector::parse(&text).unwrap(),
            LabelSelector::from_object(&s)
        );
    }
}
