//! AdmissionReview glue: body → [`AdmissionRequest`], request → the policy engine's input, and
//! the engine's answer → [`AdmissionResponse`]. No decisions are made here; they all live in
//! `rollout_safe_policy::admission`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::admission::{self as kadm, AdmissionRequest, AdmissionResponse};
use kube::core::{DynamicResourceScope, Resource, Status, TypeMeta};
use rollout_safe_policy::admission::{
    AdmissionInput, ClusterLookups, ObjectJson, Operation, mutate_request, validate_request,
};
use rollout_safe_policy::{Action, Actor, RolloutPolicy, ServerInfo};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::RequestError;
use crate::metrics::{Decision, Metrics};

/// The API version this webhook answers (the chart registers `admissionReviewVersions: [v1]`).
pub const API_VERSION: &str = kadm::META_API_VERSION_V1;

/// An object in an admission request, kept as the JSON text the API server sent. The policy
/// decodes it once, straight into its typed form (`rollout_safe_policy::Workload`), and only
/// when the request is one it looks at; kube's `DynamicObject` would build a `Value` tree of
/// every object first, `managedFields` and all.
///
/// kube's [`AdmissionRequest`] wants a [`Resource`], which must lend its metadata: this one
/// has none decoded, so [`Resource::meta`] is empty, and the resource functions answer `""`
/// (an admission request names its kind in `request.kind`).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct RawObject {
    json: Box<RawValue>,
    #[serde(skip)]
    meta: ObjectMeta,
}

impl RawObject {
    /// The object's JSON text.
    pub fn json(&self) -> &RawValue {
        &self.json
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let json = Box::<RawValue>::deserialize(d)?;
        // A Kubernetes object is a JSON map (as kube's `DynamicObject` requires too).
        let unexpected = match json.get().as_bytes().first() {
            Some(b'{') => None,
            Some(b'[') => Some(de::Unexpected::Seq),
            Some(b'"') => Some(de::Unexpected::Other("string")),
            Some(b't' | b'f') => Some(de::Unexpected::Other("boolean")),
            _ => Some(de::Unexpected::Other("number")),
        };
        if let Some(u) = unexpected {
            return Err(de::Error::invalid_type(
                u,
                &"a Kubernetes object (a JSON map)",
            ));
        }
        Ok(RawObject {
            json,
            meta: ObjectMeta::default(),
        })
    }
}

impl Resource for RawObject {
    type DynamicType = ();
    type Scope = DynamicResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

/// A request as this webhook reads it.
pub type Request = AdmissionRequest<RawObject>;

/// kube's `AdmissionReview`, read in one pass. kube's type flattens `apiVersion`/`kind` into
/// itself, which makes serde buffer the whole body as generic content before reading any of
/// it (and rules out raw objects inside); these are the same fields, with kube's
/// [`AdmissionRequest`] inside, read directly. Only a JSON map is a review.
struct Review {
    types: TypeMeta,
    request: Option<Request>,
}

impl<'de> Deserialize<'de> for Review {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Fields {
            api_version: String,
            kind: String,
            #[serde(default)]
            request: Option<Request>,
        }
        struct MapOnly;
        impl<'de> Visitor<'de> for MapOnly {
            type Value = Review;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an AdmissionReview (a JSON map)")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Review, A::Error> {
                let fields = Fields::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Review {
                    types: TypeMeta {
                        api_version: fields.api_version,
                        kind: fields.kind,
                    },
                    request: fields.request,
                })
            }
        }
        d.deserialize_map(MapOnly)
    }
}

/// Reads a request body as an `admission.k8s.io/v1` AdmissionReview with a request.
pub fn parse_review(body: &[u8]) -> Result<Request, RequestError> {
    let review: Review = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return Err(diagnose(body).unwrap_or_else(|| json_error(body, e))),
    };
    check_type(&review.types.api_version, &review.types.kind)?;
    let mut request = review.request.ok_or(RequestError::MissingRequest)?;
    // What kube's `TryInto<AdmissionRequest>` does: the response copies these.
    request.types = review.types;
    Ok(request)
}

fn check_type(api_version: &str, kind: &str) -> Result<(), RequestError> {
    if kind != kadm::META_KIND {
        return Err(RequestError::Kind(kind.to_string()));
    }
    if api_version != API_VERSION {
        return Err(RequestError::ApiVersion(api_version.to_string()));
    }
    Ok(())
}

/// When the body is JSON but not a v1 AdmissionReview (an older version's request shape, or
/// another object), name the wrong `kind`/`apiVersion` rather than the first field serde
/// tripped over. Only runs on the error path.
fn diagnose(body: &[u8]) -> Option<RequestError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Head {
        #[serde(default)]
        api_version: String,
        #[serde(default)]
        kind: String,
    }
    let head: Head = serde_json::from_slice(body).ok()?;
    check_type(&head.api_version, &head.kind).err()
}

/// The parse error with the path of the offending field (`request.uid: invalid type ...`).
/// The path is tracked only here, on the error path, by parsing again: tracking it on every
/// request would slow down the common case.
fn json_error(body: &[u8], plain: serde_json::Error) -> RequestError {
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, Review>(&mut de) {
        Err(e) if e.path().iter().next().is_some() => {
            RequestError::Json(format!("{}: {}", e.path(), e.inner()))
        }
        _ => RequestError::Json(plain.to_string()),
    }
}

/// A request the policy engine has answered.
#[derive(Debug)]
pub struct Evaluated {
    pub response: AdmissionResponse,
    pub decision: Decision,
}

/// The policy engine's view of `req`: the objects stay JSON text until the policy reads them.
fn input(req: &Request) -> AdmissionInput<'_> {
    let field_manager = req
        .options
        .as_ref()
        .and_then(|o| o.0.get("fieldManager"))
        .and_then(Value::as_str)
        .map(str::to_string);
    AdmissionInput {
        operation: operation(&req.operation),
        group: &req.kind.group,
        kind: &req.kind.kind,
        sub_resource: req.sub_resource.as_deref(),
        namespace: req.namespace.as_deref(),
        object: req.object.as_ref().map(|o| ObjectJson::Text(o.json())),
        old_object: req.old_object.as_ref().map(|o| ObjectJson::Text(o.json())),
        actor: Actor {
            username: req.user_info.username.clone().unwrap_or_default(),
            field_manager,
        },
    }
}

fn operation(op: &kadm::Operation) -> Operation {
    match op {
        kadm::Operation::Create => Operation::Create,
        kadm::Operation::Update => Operation::Update,
        kadm::Operation::Delete => Operation::Delete,
        kadm::Operation::Connect => Operation::Connect,
    }
}

/// The `operation` metric label.
pub fn operation_label(op: &kadm::Operation) -> &'static str {
    match op {
        kadm::Operation::Create => "CREATE",
        kadm::Operation::Update => "UPDATE",
        kadm::Operation::Delete => "DELETE",
        kadm::Operation::Connect => "CONNECT",
    }
}

fn action_label(a: Action) -> &'static str {
    match a {
        Action::Off => "off",
        Action::Warn => "warn",
        Action::Mutate => "mutate",
        Action::Enforce => "enforce",
    }
}

/// Runs a policy function, turning a panic into an error: a bug in one rule must not take
/// down the connection (and with it every request multiplexed on it).
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, RequestError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        RequestError::Internal(format!("policy evaluation failed: {what}"))
    })
}

/// A denial with an HTTP-style code the API server passes on to the client.
fn deny(req: &Request, message: String, code: u16, reason: &str) -> AdmissionResponse {
    let mut resp = AdmissionResponse::from(req);
    resp.allowed = false;
    resp.result = Status::failure(&message, reason).with_code(code);
    resp
}

/// With `fail_open`, an internal error becomes an allowed response with a warning.
fn internal(req: &Request, err: RequestError, fail_open: bool) -> Result<Evaluated, RequestError> {
    tracing::error!(error = %err, "could not evaluate the request");
    if !fail_open {
        return Err(err);
    }
    let mut response = AdmissionResponse::from(req);
    response.warnings = Some(vec![format!(
        "rollout-safe could not check this request ({err}); allowed because the webhook runs with --fail-open"
    )]);
    Ok(Evaluated {
        response,
        decision: Decision::Error,
    })
}

/// The mutating webhook: the policy's JSONPatch for rules in `mutate` mode.
pub fn mutate(
    policy: &RolloutPolicy,
    server: ServerInfo,
    req: &Request,
    metrics: &Metrics,
    fail_open: bool,
) -> Result<Evaluated, RequestError> {
    let input = input(req);
    let outcome = match guarded(|| mutate_request(policy, &input, server)) {
        Ok(o) => o,
        Err(e) => return internal(req, e, fail_open),
    };
    let outcome = match outcome {
        Ok(Some(o)) => o,
        Ok(None) => {
            return Ok(Evaluated {
                response: AdmissionResponse::from(req),
                decision: Decision::Allowed,
            });
        }
        Err(e) => return Ok(unreadable(req, &e)),
    };
    let mut response = AdmissionResponse::from(req);
    for m in &outcome.mutations {
        metrics.mutation(m.rule.as_str());
    }
    if !outcome.warnings.is_empty() {
        response.warnings = Some(outcome.warnings);
    }
    let decision = if outcome.patch.0.is_empty() {
        if response.warnings.is_some() {
            Decision::Warned
        } else {
            Decision::Allowed
        }
    } else {
        let rules: Vec<&str> = outcome.mutations.iter().map(|m| m.rule.as_str()).collect();
        tracing::debug!(mutations = ?outcome.mutations, "patched");
        response.audit_annotations = HashMap::from([("mutations".to_string(), rules.join(","))]);
        response = match response.with_patch(outcome.patch) {
            Ok(r) => r,
            Err(e) => return internal(req, RequestError::Internal(e.to_string()), fail_open),
        };
        Decision::Patched
    };
    Ok(Evaluated { response, decision })
}

/// The validating webhook: deny on `enforce` findings, everything else as warnings.
pub fn validate(
    policy: &RolloutPolicy,
    lookups: &dyn ClusterLookups,
    req: &Request,
    metrics: &Metrics,
    fail_open: bool,
) -> Result<Evaluated, RequestError> {
    let input = input(req);
    let verdict = match guarded(|| validate_request(policy, &input, lookups)) {
        Ok(v) => v,
        Err(e) => return internal(req, e, fail_open),
    };
    let verdict = match verdict {
        Ok(v) => v,
        Err(e) => return Ok(unreadable(req, &e)),
    };
    for f in verdict.denied.iter().chain(&verdict.warnings) {
        metrics.finding(f.rule.as_str(), action_label(f.action));
    }
    let mut response = if verdict.allowed() {
        AdmissionResponse::from(req)
    } else {
        let rules: Vec<&str> = verdict.denied.iter().map(|f| f.rule.as_str()).collect();
        tracing::info!(rules = %rules.join(","), "denied");
        let mut r = deny(req, verdict.deny_message(), 403, "Forbidden");
        r.audit_annotations = HashMap::from([("denied".to_string(), rules.join(","))]);
        r
    };
    // Warnings go out with denials too: kubectl prints them either way, and they say what
    // else will need fixing once the denial is addressed.
    let warnings = verdict.warning_lines();
    let warned = !warnings.is_empty();
    if warned {
        response.warnings = Some(warnings);
    }
    let decision = match (verdict.allowed(), warned) {
        (false, _) => Decision::Denied,
        (true, true) => Decision::Warned,
        (true, false) => Decision::Allowed,
    };
    Ok(Evaluated { response, decision })
}

/// The answer for an object with a field the policy cannot read (a wrong type): denied, with
/// the field's path, counted as `invalid`.
fn unreadable(req: &Request, e: &dyn std::fmt::Display) -> Evaluated {
    tracing::info!(error = %e, "object cannot be read; denied");
    Evaluated {
        response: deny(
            req,
            format!("rollout-safe cannot read {e}"),
            400,
            "BadRequest",
        ),
        decision: Decision::Invalid,
    }
}

/// The review sent back, as JSON: `apiVersion`/`kind` copied from the request, as the API
/// server requires, and `response.patch` base64-encoded. kube-core derives `Serialize` for its
/// `patch: Vec<u8>`, which writes a JSON array of numbers (kube-rs/kube#1781); the API server
/// documents base64 (Go's `[]byte` encoding), which is also a third of the size, so the patch
/// is written in that form here, in the one serialization pass.
pub fn encode_review(mut response: AdmissionResponse) -> Result<Vec<u8>, serde_json::Error> {
    let Some(patch) = response.patch.take() else {
        return serde_json::to_vec(&response.into_review());
    };
    #[derive(serde::Serialize)]
    struct Patched<'a> {
        #[serde(flatten)]
        response: &'a AdmissionResponse,
        patch: String,
    }
    #[derive(serde::Serialize)]
    struct Review<'a> {
        #[serde(flatten)]
        types: &'a kube::core::TypeMeta,
        response: Patched<'a>,
    }
    serde_json::to_vec(&Review {
        types: &response.types,
        response: Patched {
            response: &response,
            patch: BASE64.encode(patch),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
            "uid":"u-1","kind":{"group":"apps","version":"v1","kind":"Deployment"},
            "resource":{"group":"apps","version":"v1","resource":"deployments"},
            "operation":"CREATE","userInfo":{"username":"alice"},
            "object":{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","managedFields":[{"manager":"x"}]},"spec":{}}}}"#;
        parse_review(body).expect("review")
    }

    #[test]
    fn a_panicking_rule_is_an_internal_error_or_fails_open() {
        let err = guarded(|| -> () { panic!("boom") }).expect_err("caught");
        assert!(err.to_string().contains("boom"), "{err}");
        let req = request();
        assert!(matches!(
            internal(&req, RequestError::Internal("x".into()), false),
            Err(RequestError::Internal(_))
        ));
        let open = internal(&req, RequestError::Internal("x".into()), true).expect("fail open");
        assert!(open.response.allowed);
        assert_eq!(open.response.uid, "u-1");
        assert_eq!(open.decision, Decision::Error);
        assert!(
            open.response
                .warnings
                .as_ref()
                .is_some_and(|w| w[0].contains("--fail-open"))
        );
    }

    #[test]
    fn the_policy_sees_the_object_without_managed_fields() {
        let req = request();
        let input = input(&req);
        let object = input.object.expect("object");
        let ObjectJson::Text(text) = object else {
            panic!("the object stays JSON text: {object:?}");
        };
        assert!(
            text.get().starts_with(r#"{"apiVersion":"apps/v1""#),
            "{text}"
        );
        let workload = object
            .outline()
            .and_then(|o| o.workload())
            .expect("readable")
            .expect("a workload");
        assert_eq!(
            workload.kind(),
            rollout_safe_policy::WorkloadKind::Deployment
        );
        assert_eq!(workload.name(), "web");
        assert!(workload.metadata().managed_fields.is_none());
        assert_eq!(input.actor.username, "alice");
    }

    #[test]
    fn reviews_are_json_maps_and_objects_too() {
        let body = String::from_utf8(
            serde_json::to_vec(&serde_json::json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {
                    "uid": "u-2", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                    "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
                    "operation": "CREATE", "userInfo": {}, "object": [1, 2], "oldObject": null
                }
            }))
            .expect("json"),
        )
        .expect("utf-8");
        let err = parse_review(body.as_bytes()).expect_err("an array is no object");
        assert!(
            err.to_string()
                .contains("request.object: invalid type: sequence"),
            "{err}"
        );
        // The path of a bad field after a raw object is still named.
        let late = body
            .replace("[1, 2]", r#"{"kind":"Deployment"}"#)
            .replace("[1,2]", r#"{"kind":"Deployment"}"#)
            .replace(r#""oldObject":null"#, r#""oldObject":null,"dryRun":"yes""#);
        let err = parse_review(late.as_bytes()).expect_err("dryRun is a bool");
        assert!(
            err.to_string().contains("request.dryRun: invalid type"),
            "{err}"
        );
        // An array holding a review's fields is not a review.
        let err = parse_review(br#"["admission.k8s.io/v1","AdmissionReview",null]"#)
            .expect_err("an array");
        assert!(matches!(err, RequestError::Json(_)), "{err}");
        let ok = late.replace(r#","dryRun":"yes""#, "");
        let req = parse_review(ok.as_bytes()).expect("a review");
        assert_eq!(req.uid, "u-2");
        assert_eq!(req.types.kind, "AdmissionReview");
        assert!(req.old_object.is_none());
        assert_eq!(
            req.object.expect("object").json().get(),
            r#"{"kind":"Deployment"}"#
        );
    }

    #[test]
    fn patch_is_base64() {
        let resp = AdmissionResponse::from(&request())
            .with_patch(json_patch::Patch(vec![]))
            .expect("patch");
        let json: Value =
            serde_json::from_slice(&encode_review(resp).expect("encode")).expect("JSON");
        assert_eq!(json["response"]["patch"], "W10=", "base64 of []");
        assert_eq!(json["response"]["patchType"], "JSONPatch");
        assert_eq!(json["apiVersion"], "admission.k8s.io/v1");
    }
}
