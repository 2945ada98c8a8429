//! API errors, told the way an operator needs them: what was refused, and what to do.

use anyhow::anyhow;
use kube::core::Status;

use crate::exit::{Exit, Failure};

/// What the plugin was doing when the API answered with an error.
#[derive(Debug, Clone, Copy)]
pub struct Op<'a> {
    /// RBAC verb: `get`, `list`, `watch`, `patch`.
    pub verb: &'a str,
    /// `deployments.apps`, `replicasets.apps`, `pods`, `events`.
    pub resource: &'a str,
    pub name: Option<&'a str>,
    pub namespace: &'a str,
    /// A 422 on this request comes from what the user asked for (exit 2) rather than from the
    /// cluster (exit 5).
    pub user_input: bool,
}

impl<'a> Op<'a> {
    pub fn new(
        verb: &'a str,
        resource: &'a str,
        name: Option<&'a str>,
        namespace: &'a str,
    ) -> Self {
        Op {
            verb,
            resource,
            name,
            namespace,
            user_input: false,
        }
    }

    pub fn user_input(mut self) -> Self {
        self.user_input = true;
        self
    }

    fn object(&self) -> String {
        match self.name {
            Some(n) => format!("{} {n:?} in namespace {:?}", self.resource, self.namespace),
            None => format!("{} in namespace {:?}", self.resource, self.namespace),
        }
    }
}

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

/// Turns an API error into the exit code and message the user sees:
/// 404 → "not found" (5), 403 → "forbidden: you need VERB on RESOURCE" (5), 401 → credentials (5),
/// 409 → conflict (5; the write paths retry before it gets here), 422 → the server's message with
/// its field causes (2 when it is about the user's input, else 5), an admission webhook's denial
/// (whatever its code) → 3, anything else → 5.
pub fn api_failure(e: kube::Error, op: Op<'_>) -> Failure {
    let Some(s) = status(&e) else {
        return Failure::new(
            Exit::Cluster,
            anyhow!("cannot {} {}: {e}", op.verb, op.object()),
        );
    };
    if s.is_not_found() {
        let what = match op.name {
            Some(n) => format!(
                "{} {n:?} not found in namespace {:?}",
                op.resource, op.namespace
            ),
            None => format!("{} not found: {}", op.resource, s.message),
        };
        return Failure::new(Exit::Cluster, anyhow!("{what}"));
    }
    if s.message.contains("admission webhook") && s.message.contains("denied the request") {
        // A policy webhook (rollout-safe's own, or another) refused the write: whatever code it
        // chose (often 400 or 403), this is not missing RBAC.
        return Failure::new(
            Exit::Violations,
            anyhow!(
                "the change to {} was denied by admission: {}",
                op.object(),
                s.message
            ),
        );
    }
    if s.is_forbidden() {
        return Failure::new(
            Exit::Cluster,
            anyhow!(
                "forbidden: you need {} on {} in namespace {:?} (the API server said: {})",
                op.verb,
                op.resource,
                op.namespace,
                s.message
            ),
        );
    }
    if s.code == 401 || s.reason == "Unauthorized" {
        return Failure::new(
            Exit::Cluster,
            anyhow!(
                "unauthorized: the API server rejected the kubeconfig's credentials ({})",
                s.message
            ),
        );
    }
    if s.is_conflict() {
        return Failure::new(
            Exit::Cluster,
            anyhow!("conflict writing {}: {}", op.object(), s.message),
        );
    }
    if s.is_invalid() {
        let exit = if op.user_input {
            Exit::Usage
        } else {
            Exit::Cluster
        };
        return Failure::new(
            exit,
            anyhow!(
                "the API server rejected the change to {}: {}",
                op.object(),
                invalid_detail(s)
            ),
        );
    }
    Failure::new(
        Exit::Cluster,
        anyhow!(
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::response::{StatusCause, StatusDetails};

    fn err(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(Status::failure(message, reason).with_code(code)))
    }

    #[test]
    fn mapping() {
        let op = Op::new("get", "deployments.apps", Some("good"), "api");
        let f = api_failure(
            err(404, "NotFound", "deployments.apps \"good\" not found"),
            op,
        );
        assert_eq!(f.exit, Exit::Cluster);
        assert!(f.to_string().contains("not found"));
        let f = api_failure(
            err(
                403,
                "Forbidden",
                "admission webhook \"validate.rollout-safe.dev\" denied the request: RS101 ...",
            ),
            Op::new("patch", "deployments.apps", Some("good"), "api"),
        );
        assert_eq!(f.exit, Exit::Violations);
        assert!(f.to_string().contains("denied by admission"), "{f}");
        let f = api_failure(err(403, "Forbidden", "nope"), op);
        assert!(
            f.to_string()
                .starts_with("forbidden: you need get on deployments.apps"),
            "{f}"
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
        let f = api_failure(
            kube::Error::Api(Box::new(s.clone())),
            Op::new("patch", "deployments.apps", Some("good"), "api").user_input(),
        );
        assert_eq!(f.exit, Exit::Usage);
        assert!(
            f.to_string().contains("spec.selector: field is immutable"),
            "{f}"
        );
        let f = api_failure(
            kube::Error::Api(Box::new(s)),
            Op::new("patch", "deployments.apps", Some("good"), "api"),
        );
        assert_eq!(f.exit, Exit::Cluster);
    }
}
