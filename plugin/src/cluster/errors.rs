//! API errors, told the way an operator needs them: what was refused, and what to do.

use kube::core::Status;

use crate::error::{ApiOp, Error, Refused};

/// The `Status` of an API error, if the error is one.
pub fn status(e: &kube::Error) -> Option<&Status> {
    match e {
        kube::Error::Api(s) => Some(s),
        _ => None,
    }
}

pub fn is_conflict(e: &kube::Error) -> bool {
    status(e).is_some_and(|s| s.is_conflict())
}

pub fn is_invalid(e: &kube::Error) -> bool {
    status(e).is_some_and(|s| s.is_invalid())
}

pub fn is_forbidden(e: &kube::Error) -> bool {
    status(e).is_some_and(|s| s.is_forbidden())
}

pub fn is_not_found(e: &kube::Error) -> bool {
    status(e).is_some_and(|s| s.is_not_found())
}

/// The message and the field causes of a 422.
pub fn invalid_detail(s: &Status) -> String {
    let mut out = s.message.clone();
    if let Some(d) = &s.details {
        for c in &d.causes {
            let field = if c.field.is_empty() {
                "(object)"
            } else {
                c.field.as_str()
            };
            out.push_str(&format!("\n  {field}: {}", c.message));
        }
    }
    out
}

/// Turns an API error into the plugin's error:
/// 404 → "not found", 403 → "forbidden: you need VERB on RESOURCE", 401 → credentials,
/// 409 → conflict (the write paths retry before it gets here), 422 → the server's message with
/// its field causes, an admission webhook's denial (whatever its code) → denied by admission;
/// no answer at all → what was asked, of which server, with the whole cause chain (TLS,
/// connection). `exit::exit_code` decides the exit codes.
pub fn api_error(e: kube::Error, op: ApiOp) -> Error {
    let Some(s) = status(&e) else {
        return Error::ApiUnreachable {
            op: Box::new(op),
            source: e,
        };
    };
    let (refused, message) = if s.is_not_found() {
        let what = match &op.name {
            Some(n) => format!(
                "{} {n:?} not found in namespace {:?}",
                op.resource, op.namespace
            ),
            None => format!("{} not found: {}", op.resource, s.message),
        };
        (Refused::NotFound, what)
    } else if s.message.contains("admission webhook") && s.message.contains("denied the request") {
        // A policy webhook (rollout-safe's own, or another) refused the write: whatever code it
        // chose (often 400 or 403), this is not missing RBAC.
        (
            Refused::AdmissionDenied,
            format!(
                "the change to {} was denied by admission: {}",
                op.object(),
                s.message
            ),
        )
    } else if s.is_forbidden() {
        (
            Refused::Forbidden,
            format!(
                "forbidden: you need {} on {} in namespace {:?} (the API server said: {})",
                op.verb, op.resource, op.namespace, s.message
            ),
        )
    } else if s.code == 401 || s.reason == "Unauthorized" {
        (
            Refused::Unauthorized,
            format!(
                "unauthorized: the API server rejected the kubeconfig's credentials ({})",
                s.message
            ),
        )
    } else if s.is_conflict() {
        (
            Refused::Conflict,
            format!("conflict writing {}: {}", op.object(), s.message),
        )
    } else if s.is_invalid() {
        (
            Refused::Invalid,
            format!(
                "the API server rejected the change to {}: {}",
                op.object(),
                invalid_detail(s)
            ),
        )
    } else {
        (
            Refused::Other,
            format!(
                "cannot {} {}: {} ({} {})",
                op.verb,
                op.object(),
                if s.message.is_empty() {
                    "error"
                } else {
                    s.message.as_str()
                },
                s.code,
                s.reason
            ),
        )
    };
    Error::ApiStatus {
        op: Box::new(op),
        refused,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{Exit, exit_code};
    use kube::core::response::{StatusCause, StatusDetails};

    fn err(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(Status::failure(message, reason).with_code(code)))
    }

    fn op(verb: &'static str) -> ApiOp {
        ApiOp {
            verb,
            resource: "deployments.apps",
            name: Some("good".into()),
            namespace: "api".into(),
            server: "https://127.0.0.1:6443/".into(),
            user_input: false,
        }
    }

    fn exit(e: Error) -> Exit {
        exit_code(&Err(e))
    }

    #[test]
    fn mapping() {
        let f = api_error(
            err(404, "NotFound", "deployments.apps \"good\" not found"),
            op("get"),
        );
        assert!(f.to_string().contains("not found"));
        assert_eq!(exit(f), Exit::Cluster);
        let f = api_error(
            err(
                403,
                "Forbidden",
                "admission webhook \"validate.rollout-safe.dev\" denied the request: RS101 ...",
            ),
            op("patch"),
        );
        assert!(f.to_string().contains("denied by admission"), "{f}");
        assert_eq!(exit(f), Exit::Violations);
        let f = api_error(err(403, "Forbidden", "nope"), op("get"));
        assert!(
            f.to_string()
                .starts_with("forbidden: you need get on deployments.apps"),
            "{f}"
        );
        let f = api_error(err(401, "Unauthorized", "who?"), op("get"));
        assert!(f.to_string().starts_with("unauthorized:"), "{f}");
        let f = api_error(err(500, "InternalError", ""), op("get"));
        assert_eq!(
            f.to_string(),
            "cannot get deployments.apps \"good\" in namespace \"api\": error (500 InternalError)"
        );
        let mut s =
            Status::failure("Deployment.apps \"good\" is invalid", "Invalid").with_code(422);
        s.details = Some(StatusDetails {
            name: "good".into(),
            group: "apps".into(),
            kind: "Deployment".into(),
            uid: String::new(),
            causes: vec![StatusCause {
                reason: "FieldValueInvalid".into(),
                message: "field is immutable".into(),
                field: "spec.selector".into(),
            }],
            retry_after_seconds: 0,
        });
        let f = api_error(
            kube::Error::Api(Box::new(s.clone())),
            op("patch").user_input(),
        );
        assert!(
            f.to_string().contains("spec.selector: field is immutable"),
            "{f}"
        );
        assert_eq!(exit(f), Exit::Usage);
        let f = api_error(kube::Error::Api(Box::new(s)), op("patch"));
        assert_eq!(exit(f), Exit::Cluster);
    }

    #[test]
    fn no_answer_names_the_server_and_keeps_the_cause() {
        let io = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        let f = api_error(kube::Error::ReadEvents(io), op("get"));
        let text = crate::error::chain(&f);
        assert!(
            text.starts_with(
                "cannot get deployments.apps \"good\" in namespace \"api\" (API server https://127.0.0.1:6443/)"
            ),
            "{text}"
        );
        assert!(text.contains("UnknownIssuer"), "{text}");
        assert_eq!(exit(f), Exit::Cluster);
    }
}
