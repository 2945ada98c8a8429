//! Workload references as kubectl spells them: `deploy/web`, `deployment.apps/web`, `sts/db`, `ds/agent`.

use std::fmt;

use rollout_safe_policy::WorkloadKind;

use crate::error::Error;

/// A workload named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    pub name: String,
}

const TYPES_HELP: &str = "deploy, deployment, deployment.apps, sts, statefulset, statefulset.apps, ds, daemonset, daemonset.apps";

fn kind_of(token: &str) -> Option<WorkloadKind> {
    let t = token.to_ascii_lowercase();
    let t = t.strip_suffix(".apps").unwrap_or(&t);
    Some(match t {
        "deploy" | "deployment" | "deployments" => WorkloadKind::Deployment,
        "sts" | "statefulset" | "statefulsets" => WorkloadKind::StatefulSet,
        "ds" | "daemonset" | "daemonsets" => WorkloadKind::DaemonSet,
        _ => return None,
    })
}

/// A DNS-1123 subdomain: what Kubernetes accepts as a workload name.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

impl WorkloadRef {
    /// A Deployment by name.
    pub fn deployment(name: &str) -> Self {
        WorkloadRef {
            kind: WorkloadKind::Deployment,
            name: name.to_owned(),
        }
    }

    /// Parses `TYPE/NAME`. A bad reference is a usage error (exit 2) that says what is accepted.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let Some((kind, name)) = s.split_once('/') else {
            return Err(Error::usage(format!(
                "{s:?}: expected TYPE/NAME such as deploy/{s} (types: {TYPES_HELP})"
            )));
        };
        let Some(kind) = kind_of(kind) else {
            return Err(Error::usage(format!(
                "{s:?}: unknown workload type {kind:?} (types: {TYPES_HELP})"
            )));
        };
        if !valid_name(name) {
            return Err(Error::usage(format!(
                "{s:?}: {name:?} is not a valid object name (lower-case letters, digits, '-' and '.')"
            )));
        }
        Ok(WorkloadRef {
            kind,
            name: name.to_owned(),
        })
    }

    /// Parses `TYPE/NAME` and requires a Deployment (`pause`, `resume`, `blue-green` work on
    /// Deployments only).
    pub fn parse_deployment(s: &str, command: &str) -> Result<Self, Error> {
        let r = Self::parse(s)?;
        r.require_deployment(command)?;
        Ok(r)
    }

    pub fn require_deployment(&self, command: &str) -> Result<(), Error> {
        if self.kind == WorkloadKind::Deployment {
            return Ok(());
        }
        Err(Error::usage(format!(
            "{command} works on Deployments only ({self} is a {}); `status`, `update`, `history`, `undo` and `plan` \
             take StatefulSets and DaemonSets too, `canary` StatefulSets",
            self.kind.as_str()
        )))
    }

    /// kubectl's resource name: `deployments.apps`.
    pub fn resource(&self) -> &'static str {
        resource_name(self.kind)
    }
}

/// The plural resource name with its group, as RBAC and API errors spell it.
pub fn resource_name(kind: WorkloadKind) -> &'static str {
    match kind {
        WorkloadKind::Deployment => "deployments.apps",
        WorkloadKind::StatefulSet => "statefulsets.apps",
        WorkloadKind::DaemonSet => "daemonsets.apps",
    }
}

impl fmt::Display for WorkloadRef {
    /// `deployment/web`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = match self.kind {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::DaemonSet => "daemonset",
        };
        write!(f, "{t}/{}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_spellings() {
        for s in [
            "deploy/web",
            "deployment/web",
            "deployment.apps/web",
            "Deployments/web",
        ] {
            let r = WorkloadRef::parse(s).unwrap();
            assert_eq!(r.kind, WorkloadKind::Deployment, "{s}");
            assert_eq!(r.name, "web");
        }
        assert_eq!(
            WorkloadRef::parse("sts/db").unwrap().kind,
            WorkloadKind::StatefulSet
        );
        assert_eq!(
            WorkloadRef::parse("statefulset.apps/db").unwrap().kind,
            WorkloadKind::StatefulSet
        );
        assert_eq!(
            WorkloadRef::parse("ds/agent").unwrap().kind,
            WorkloadKind::DaemonSet
        );
        assert_eq!(
            WorkloadRef::parse("daemonset/agent").unwrap().to_string(),
            "daemonset/agent"
        );
        assert_eq!(WorkloadRef::deployment("web").to_string(), "deployment/web");
    }

    #[test]
    fn bad_refs_are_usage_errors() {
        for s in [
            "web",
            "pod/web",
            "deploy/",
            "deploy/Web",
            "deploy/-x",
            "svc/web",
        ] {
            let e = WorkloadRef::parse(s).unwrap_err();
            assert!(matches!(e, Error::Usage(_)), "{s}");
        }
        let e = WorkloadRef::parse("web").unwrap_err();
        assert!(e.to_string().contains("deploy/web"), "{e}");
        let e = WorkloadRef::parse_deployment("sts/db", "undo").unwrap_err();
        assert!(matches!(e, Error::Usage(_)));
        assert!(
            e.to_string().starts_with("undo works on Deployments only"),
            "{e}"
        );
    }
}
