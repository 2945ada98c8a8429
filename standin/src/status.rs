//! The `Status` bodies the stand-in answers errors with. The ones a real server was recorded
//! giving are taken from the recordings and reworded for the object at hand (same fields, same
//! sentence); the others (400, 405, 409 AlreadyExists, 415) are shaped the same way.

use serde_json::{Value, json};

use crate::Verb;
use crate::recording::{Recording, RecordingError, files};
use crate::resources::ResourceType;

/// A status code and JSON body to answer with.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn ok(body: Value) -> Answer {
        Answer { status: 200, body }
    }
}

/// One field error of a 422 `Invalid`, as in recording 06.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub field: String,
    /// `Invalid value: …: why`.
    pub message: String,
}

/// The recorded error answers, loaded once.
#[derive(Debug, Clone)]
pub struct RecordedAnswers {
    not_found: Value,
    conflict: Value,
    test_failed: Answer,
    invalid: Value,
    forbidden: Value,
    forbidden_user: String,
    version: Value,
}

impl RecordedAnswers {
    pub fn load() -> Result<RecordedAnswers, RecordingError> {
        let body = |file: &str| Recording::load(file)?.json();
        let forbidden = body(files::FORBIDDEN)?;
        // `… is forbidden: User "system:serviceaccount:api:viewer" cannot get …`
        let forbidden_user = forbidden["message"]
            .as_str()
            .and_then(|m| m.split("User \"").nth(1))
            .and_then(|m| m.split('"').next())
            .unwrap_or("system:serviceaccount:api:viewer")
            .to_owned();
        let test_failed = Recording::load(files::JSON_PATCH_TEST_FAILED)?;
        Ok(RecordedAnswers {
            not_found: body(files::NOT_FOUND)?,
            conflict: body(files::CONFLICT)?,
            test_failed: Answer {
                status: test_failed.response.status,
                body: test_failed.json()?,
            },
            invalid: body(files::INVALID)?,
            forbidden,
            forbidden_user,
            version: body(files::VERSION)?,
        })
    }

    /// 404 NotFound (02).
    pub fn not_found(&self, rt: &ResourceType, name: &str) -> Answer {
        let mut body = self.not_found.clone();
        body["message"] = json!(format!("{} {name:?} not found", rt.qualified()));
        body["details"] = details(rt, name);
        Answer { status: 404, body }
    }

    /// 409 Conflict for a stale resourceVersion (04).
    pub fn conflict(&self, rt: &ResourceType, name: &str) -> Answer {
        let mut body = self.conflict.clone();
        body["message"] = json!(format!(
            "Operation cannot be fulfilled on {} {name:?}: the object has been modified; please apply your changes to the latest version and try again",
            rt.qualified()
        ));
        body["details"] = details(rt, name);
        Answer { status: 409, body }
    }

    /// The bare 422 a JSON Patch whose `test` (or any) op fails gets (05), verbatim.
    pub fn json_patch_failed(&self) -> Answer {
        self.test_failed.clone()
    }

    /// 422 Invalid with field causes (06).
    pub fn invalid(&self, rt: &ResourceType, name: &str, causes: &[Cause]) -> Answer {
        let mut body = self.invalid.clone();
        let listed: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let what = match listed.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let kind_group = if rt.group.is_empty() {
            rt.kind.to_owned()
        } else {
            format!("{}.{}", rt.kind, rt.group)
        };
        body["message"] = json!(format!("{kind_group} {name:?} is invalid: {what}"));
        let mut d = details(rt, name);
        d["kind"] = json!(rt.kind);
        d["causes"] = causes
            .iter()
            .map(|c| json!({"reason": "FieldValueInvalid", "message": c.message, "field": c.field}))
            .collect();
        body["details"] = d;
        Answer { status: 422, body }
    }

    /// 403 Forbidden (09), for `verb` on `rt` (`name` when the request names one).
    pub fn forbidden(
        &self,
        verb: Verb,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> Answer {
        let mut body = self.forbidden.clone();
        let what = match name {
            Some(n) => format!("{} {n:?}", rt.qualified()),
            None => rt.qualified(),
        };
        let scope = match namespace {
            Some(ns) if rt.namespaced => format!(" in the namespace {ns:?}"),
            _ => " at the cluster scope".to_owned(),
        };
        body["message"] = json!(format!(
            "{what} is forbidden: User {:?} cannot {verb} resource {:?} in API group {:?}{scope}",
            self.forbidden_user, rt.plural, rt.group
        ));
        body["details"] = details(rt, name.unwrap_or_default());
        if name.is_none() {
            body["details"].as_object_mut().map(|d| d.remove("name"));
        }
        Answer { status: 403, body }
    }

    /// `/version` (13).
    pub fn version(&self) -> Answer {
        Answer::ok(self.version.clone())
    }
}

fn details(rt: &ResourceType, name: &str) -> Value {
    let mut d = json!({"name": name, "group": rt.group, "kind": rt.plural});
    if rt.group.is_empty() {
        d.as_object_mut().map(|m| m.remove("group"));
    }
    d
}

/// A `Status` failure that was not recorded, shaped like the recorded ones.
pub fn failure(status: u16, reason: &str, message: &str) -> Answer {
    Answer {
        status,
        body: json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "details": {}, "code": status}),
    }
}

pub fn bad_request(message: &str) -> Answer {
    failure(400, "BadRequest", message)
}

pub fn already_exists(rt: &ResourceType, name: &str) -> Answer {
    let mut a = failure(
        409,
        "AlreadyExists",
        &format!("{} {name:?} already exists", rt.qualified()),
    );
    a.body["details"] = details(rt, name);
    a
}

pub fn method_not_allowed(method: &str) -> Answer {
    failure(
        405,
        "MethodNotAllowed",
        &format!("the server does not allow this method on the requested resource ({method})"),
    )
}

pub fn unsupported_media_type(content_type: &str) -> Answer {
    failure(
        415,
        "UnsupportedMediaType",
        &format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json (the stand-in does not model {content_type:?})"
        ),
    )
}

/// What the server says for a path it does not serve.
pub fn no_such_path() -> Answer {
    failure(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{DEPLOYMENTS, PODS};

    #[test]
    fn recorded_answers_are_reworded_for_the_object() {
        let r = RecordedAnswers::load().unwrap();
        let nf = r.not_found(&PODS, "p1");
        assert_eq!(nf.status, 404);
        assert_eq!(nf.body["message"], "pods \"p1\" not found");
        assert_eq!(nf.body["reason"], "NotFound");
        assert!(nf.body["details"].get("group").is_none());
        let c = r.conflict(&DEPLOYMENTS, "good");
        assert_eq!(c.body["reason"], "Conflict");
        assert_eq!(c.body["details"]["group"], "apps");
        let f = r.forbidden(Verb::Get, &DEPLOYMENTS, Some("api"), Some("good"));
        assert_eq!(
            f.body["message"],
            "deployments.apps \"good\" is forbidden: User \"system:serviceaccount:api:viewer\" cannot get resource \"deployments\" in API group \"apps\" in the namespace \"api\"",
            "the recorded message, rebuilt"
        );
        let l = r.forbidden(Verb::List, &PODS, Some("api"), None);
        assert!(
            l.body["message"]
                .as_str()
                .unwrap()
                .starts_with("pods is forbidden")
        );
        let i = r.invalid(
            &DEPLOYMENTS,
            "good",
            &[Cause {
                field: "spec.x".into(),
                message: "Invalid value: 1: no".into(),
            }],
        );
        assert_eq!(
            i.body["message"],
            "Deployment.apps \"good\" is invalid: spec.x: Invalid value: 1: no"
        );
        assert_eq!(i.body["details"]["causes"][0]["field"], "spec.x");
        assert_eq!(r.json_patch_failed().status, 422);
        assert_eq!(r.json_patch_failed().body["details"], json!({}));
    }
}
