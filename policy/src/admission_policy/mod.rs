//! The policy file as in-cluster admission policies (`kubectl rollout-safe export
//! admission-policy`, and the chart's `admission.mode: policies`): each rule's CEL form
//! ([`crate::rules::cel`]) as ValidatingAdmissionPolicies with their bindings and, for the rules
//! the policy file sets to `mutate`, one MutatingAdmissionPolicy. Pure: a policy and options in,
//! Kubernetes objects out.
//!
//! How the policy file maps onto them:
//!
//! - **Actions.** `validationActions` sit on bindings, and a binding can neither match
//!   namespaces by glob nor tell a request's kind of update, so each rule has one policy (and
//!   binding) per action it can take: `rollout-safe-rs101-enforce` (Deny, Audit) and
//!   `rollout-safe-rs101-warn` (Warn, Audit). `mutate` exports as warn; with `--mutating` the
//!   MutatingAdmissionPolicy fixes the object first and the warn policy reports what is left.
//! - **Namespaces.** Which action applies where (`namespaceOverrides`) and
//!   `excludedNamespaces` are `matchConditions` on `namespaceObject.metadata.name`: a glob with
//!   `*` or `?` becomes an anchored regular expression, a plain name an equality.
//! - **Parameters** are variables named by their keys (`variables.minStartupSeconds`), literals,
//!   or conditionals on the namespace when overrides change them.
//! - **Exemptions.** `rollout-safe.dev/skip` with a `skip-reason` is a `matchCondition` of every
//!   exemptable rule's policies.
//! - **Updates that change no pod template** warn about a finding the object already had
//!   instead of denying it, as the webhook does: the enforce policy passes it and the warn
//!   policy reports it, with the webhook's "[not enforced: ...]" note.
//! - **Rules that need other objects** (their [`Input`] is `Surroundings`) are left out, each
//!   named in a comment with what it needs.

mod compose;
mod namespaces;

use std::fmt;
use std::str::FromStr;

use serde_json::{Value, json};

use crate::config::RolloutPolicy;

pub use compose::{
    GRANDFATHERED_NOTE, MUTATIONS_NAME, MutationPieces, NAME_PREFIX, RulePieces, policy_name,
};
pub use namespaces::{glob_regex, namespace_matches};

/// A Kubernetes minor version, e.g. `1.30`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KubeVersion {
    pub major: u32,
    pub minor: u32,
}

impl KubeVersion {
    pub const fn new(major: u32, minor: u32) -> Self {
        KubeVersion { major, minor }
    }

    /// ValidatingAdmissionPolicy is GA (`admissionregistration.k8s.io/v1`).
    pub const OLDEST: KubeVersion = KubeVersion::new(1, 30);
    /// MutatingAdmissionPolicy is beta (`v1beta1`, behind a feature gate).
    pub const MUTATING_BETA: KubeVersion = KubeVersion::new(1, 34);
    /// MutatingAdmissionPolicy is GA (`v1`).
    pub const MUTATING_GA: KubeVersion = KubeVersion::new(1, 36);

    /// The apiVersion of MutatingAdmissionPolicy in this version, if it has one.
    pub fn mutating_api_version(self) -> Option<&'static str> {
        if self >= Self::MUTATING_GA {
            Some("admissionregistration.k8s.io/v1")
        } else if self >= Self::MUTATING_BETA {
            Some("admissionregistration.k8s.io/v1beta1")
        } else {
            None
        }
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for KubeVersion {
    type Err = ExportError;

    /// `1.30`, `v1.31`, `1.32.4`, `v1.33.1-eks-1`.
    fn from_str(s: &str) -> Result<Self, ExportError> {
        let bad = || ExportError::Version {
            given: s.to_string(),
        };
        let v = s.trim().strip_prefix('v').unwrap_or(s.trim());
        let mut parts = v.split('.');
        let major: u32 = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let minor_text = parts.next().ok_or_else(bad)?;
        let digits = minor_text
            .find(|c: char| !c.is_ascii_digit())
            .map_or(minor_text, |i| &minor_text[..i]);
        let minor: u32 = digits.parse().map_err(|_| bad())?;
        Ok(KubeVersion { major, minor })
    }
}

/// What to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportOptions {
    /// The cluster's version: it decides the MutatingAdmissionPolicy's apiVersion.
    pub kubernetes_version: KubeVersion,
    /// Export the `mutate` rules' fixes as a MutatingAdmissionPolicy (Kubernetes ≥ 1.34).
    pub mutating: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            kubernetes_version: KubeVersion::OLDEST,
            mutating: false,
        }
    }
}

/// Why an export cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("Kubernetes version {given:?}: expected MAJOR.MINOR, e.g. 1.30")]
    Version { given: String },
    #[error(
        "Kubernetes {0}: admission policies need ValidatingAdmissionPolicy v1, GA since Kubernetes 1.30; use the webhook on older clusters"
    )]
    TooOld(KubeVersion),
    #[error(
        "--mutating needs Kubernetes 1.34 or newer (MutatingAdmissionPolicy is beta in 1.34 and 1.35, GA in 1.36), not {0}; leave --mutating out (the mutate rules then warn) or use the mutating webhook"
    )]
    MutatingTooOld(KubeVersion),
    #[error(
        "policy: {field}: namespace glob {glob:?} contains a control character, which no namespace name has"
    )]
    Glob { field: String, glob: String },
    #[error("cannot write the export as YAML")]
    Yaml(#[source] serde_saphyr::SerializeError),
}

/// The exported objects, with the notes that go before them.
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    /// What was exported for which version, and each rule left out and why: comment lines
    /// (without `# `) at the head of the YAML, on stderr beside JSON.
    pub notes: Vec<String>,
    /// The policies and bindings, ready to apply.
    pub objects: Vec<Value>,
}

impl Export {
    /// Multi-document YAML: the notes as comments, then one document per object.
    pub fn to_yaml(&self) -> Result<String, ExportError> {
        let mut out = String::new();
        for n in &self.notes {
            if n.is_empty() {
                out.push_str("#\n");
            } else {
                out.push_str("# ");
                out.push_str(n);
                out.push('\n');
            }
        }
        for o in &self.objects {
            out.push_str("---\n");
            let doc = serde_saphyr::to_string(o).map_err(ExportError::Yaml)?;
            out.push_str(doc.strip_prefix("---\n").unwrap_or(&doc));
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
        Ok(out)
    }

    /// A `v1` `List` of the objects (JSON has no comments: the notes are not in it).
    pub fn to_json(&self) -> Value {
        json!({"apiVersion": "v1", "kind": "List", "items": self.objects})
    }
}

/// The policy file as admission policies for `options.kubernetes_version`.
pub fn export(policy: &RolloutPolicy, options: &ExportOptions) -> Result<Export, ExportError> {
    let version = options.kubernetes_version;
    if version < KubeVersion::OLDEST {
        return Err(ExportError::TooOld(version));
    }
    if options.mutating && version.mutating_api_version().is_none() {
        return Err(ExportError::MutatingTooOld(version));
    }
    compose::compose(policy, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order() {
        for (s, v) in [
            ("1.30", (1, 30)),
            ("v1.31", (1, 31)),
            ("1.32.4", (1, 32)),
            ("v1.33+", (1, 33)),
            ("1.34.1-eks-3", (1, 34)),
        ] {
            assert_eq!(
                s.parse::<KubeVersion>().unwrap(),
                KubeVersion::new(v.0, v.1)
            );
        }
        for bad in ["", "1", "one.two", "1.x"] {
            let e = bad.parse::<KubeVersion>().unwrap_err().to_string();
            assert!(e.contains("MAJOR.MINOR"), "{e}");
        }
        assert_eq!(KubeVersion::new(1, 33).mutating_api_version(), None);
        assert_eq!(
            KubeVersion::new(1, 35).mutating_api_version(),
            Some("admissionregistration.k8s.io/v1beta1")
        );
        assert_eq!(
            KubeVersion::new(1, 37).mutating_api_version(),
            Some("admissionregistration.k8s.io/v1")
        );
        assert!(KubeVersion::new(2, 0) > KubeVersion::new(1, 99));
    }

    /// The YAML (folded long strings and all) reads back as the very objects, comments aside.
    #[test]
    fn yaml_reads_back_as_the_objects() {
        let p = RolloutPolicy::from_yaml(
            "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\nspec:\n  rules:\n    RS104: {minStartupSeconds: 45}\n  namespaceOverrides:\n    - namespaces: [\"dev-*\", \"it's\", \"a  b\"]\n      rules: {RS101: warn, RS201: {sleepSeconds: 2, handler: exec}}\n  excludedNamespaces: [\"kube-*\"]\n",
        )
        .unwrap();
        let e = export(
            &p,
            &ExportOptions {
                kubernetes_version: KubeVersion::MUTATING_GA,
                mutating: true,
            },
        )
        .unwrap();
        let yaml = e.to_yaml().unwrap();
        let docs: Vec<Value> = yaml
            .split("\n---\n")
            .skip(1)
            .map(|d| serde_saphyr::from_str(d).unwrap())
            .collect();
        assert_eq!(docs, e.objects);
        assert!(
            yaml.starts_with("# rollout-safe's rules as admission policies"),
            "{yaml}"
        );
        assert!(e.notes.iter().any(|n| n.contains("RS601")), "{:?}", e.notes);
    }

    #[test]
    fn refuses_old_clusters_and_mutating_before_1_34() {
        let p = RolloutPolicy::default();
        let old = ExportOptions {
            kubernetes_version: KubeVersion::new(1, 29),
            mutating: false,
        };
        assert!(matches!(export(&p, &old), Err(ExportError::TooOld(_))));
        let e = export(
            &p,
            &ExportOptions {
                kubernetes_version: KubeVersion::new(1, 33),
                mutating: true,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("1.34") && e.contains("1.33"), "{e}");
    }
}
