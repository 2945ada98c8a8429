//! AdmissionReview glue: body → [`AdmissionRequest`], request → the policy engine's input, and
//! the engine's answer → [`AdmissionResponse`]. No decisions are made here; they all live in
//! `rollout_safe_policy::admission`.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kube::core::DynamicObject;
use kube::core::Status;
use kube::core::admission::{self as kadm, AdmissionRequest, AdmissionResponse, AdmissionReview};
use rollout_safe_policy::admission::{
    AdmissionInput, ClusterLookups, Operation, mutate_request, validate_request,
};
use rollout_safe_policy::{Action, Actor, RolloutPolicy, ServerInfo};
use serde_json::Value;

use crate::error::RequestError;
use crate::metrics::{Decision, Metrics};

/// The API version this webhook answers (the chart registers `admissionReviewVersions: [v1]`).
pub const API_VERSION: &str = kadm::META_API_VERSION_V1;

/// Reads a request body as an `admission.k8s.io/v1` AdmissionReview with a request.
pub fn parse_review(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, RequestError> {
    let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return Err(diagnose(body).unwrap_or_else(|| json_error(body, e))),
    };
    check_type(&review.types.api_version, &review.types.kind)?;
    review.try_into().map_err(|_| RequestError::MissingRequest)
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
    match serde_path_to_error::deserialize::<_, AdmissionReview<DynamicObject>>(&mut de) {
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

/// Request fields the policy needs, with the objects as JSON values.
struct Owned {
    object: Option<Value>,
    old_object: Option<Value>,
    actor: Actor,
}

/// A [`DynamicObject`] as the JSON value the policy reads, without a deep copy: the parsed
/// `data` map is moved and only the typed metadata is serialized again. `managedFields` is
/// dropped first: no rule reads it, it is a fifth of a typical object, and since the patch is
/// a diff of the value the policy sees, the patch never touches it either way.
fn object_value(obj: DynamicObject) -> Result<Value, serde_json::Error> {
    let DynamicObject {
        types,
        mut metadata,
        data,
    } = obj;
    metadata.managed_fields = None;
    let mut map = match data {
        Value::Object(m) => m,
        // `data` is the flattened rest of an object, so always a map; anything else is dropped.
        _ => serde_json::Map::new(),
    };
    if let Some(t) = types {
        map.insert("apiVersion".into(), Value::String(t.api_version));
        map.insert("kind".into(), Value::String(t.kind));
    }
    map.insert("metadata".into(), serde_json::to_value(&metadata)?);
    Ok(Value::Object(map))
}

impl Owned {
    /// Takes the objects out of `req` (it keeps everything the response needs).
    fn take(req: &mut AdmissionRequest<DynamicObject>) -> Result<Self, RequestError> {
        let to_value = |o: Option<DynamicObject>| {
            o.map(object_value)
                .transpose()
                .map_err(|e| RequestError::Internal(format!("re-encoding the object: {e}")))
        };
        let field_manager = req
            .options
            .as_ref()
            .and_then(|o| o.0.get("fieldManager"))
            .and_then(Value::as_str)
            .map(str::to_string);
        Ok(Owned {
            object: to_value(req.object.take())?,
            old_object: to_value(req.old_object.take())?,
            actor: Actor {
                username: req.user_info.username.clone().unwrap_or_default(),
                field_manager,
            },
        })
    }

    fn input<'a>(&'a self, req: &'a AdmissionRequest<DynamicObject>) -> AdmissionInput<'a> {
        AdmissionInput {
            operation: operation(&req.operation),
            group: &req.kind.group,
            kind: &req.kind.kind,
            sub_resource: req.sub_resource.as_deref(),
            namespace: req.namespace.as_deref(),
            object: self.object.as_ref(),
            old_object: self.old_object.as_ref(),
            actor: self.actor.clone(),
        }
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
fn deny(
    req: &AdmissionRequest<DynamicObject>,
    message: String,
    code: u16,
    reason: &str,
) -> AdmissionResponse {
    let mut resp = AdmissionResponse::from(req);
    resp.allowed = false;
    resp.result = Status::failure(&message, reason).with_code(code);
    resp
}

/// With `fail_open`, an internal error becomes an allowed response with a warning.
fn internal(
    req: &AdmissionRequest<DynamicObject>,
    err: RequestError,
    fail_open: bool,
) -> Result<Evaluated, RequestError> {
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
    req: &mut AdmissionRequest<DynamicObject>,
    metrics: &Metrics,
    fail_open: bool,
) -> Result<Evaluated, RequestError> {
    let owned = match Owned::take(req) {
        Ok(o) => o,
        Err(e) => return internal(req, e, fail_open),
    };
    let req = &*req;
    let input = owned.input(req);
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
    req: &mut AdmissionRequest<DynamicObject>,
    metrics: &Metrics,
    fail_open: bool,
) -> Result<Evaluated, RequestError> {
    let owned = match Owned::take(req) {
        Ok(o) => o,
        Err(e) => return internal(req, e, fail_open),
    };
    let req = &*req;
    let input = owned.input(req);
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
fn unreadable(req: &AdmissionRequest<DynamicObject>, e: &dyn std::fmt::Display) -> Evaluated {
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

    fn request() -> AdmissionRequest<DynamicObject> {
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
        let mut req = request();
        let owned = Owned::take(&mut req).expect("owned");
        let object = owned.object.expect("object");
        assert_eq!(object["kind"], "Deployment");
        assert_eq!(object["apiVersion"], "apps/v1");
        assert_eq!(object["metadata"]["name"], "web");
        assert!(object["metadata"].get("managedFields").is_none());
        assert_eq!(owned.actor.username, "alice");
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
