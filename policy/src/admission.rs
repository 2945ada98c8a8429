//! The admission decisions, as pure functions of the request: what to patch (mutating) and
//! what to deny or warn about (validating). The webhook only translates to and from
//! AdmissionReview and supplies cluster lookups.

use std::collections::BTreeMap;

use crate::change_cause::Actor;
use crate::check::{Facts, check, check_service};
use crate::config::RolloutPolicy;
use crate::finding::Finding;
use crate::mutate::{MutationOutcome, ServerInfo, mutate_json};
use crate::rule::Severity;
use crate::rules::ServiceContext;
use crate::view::ServiceView;
use crate::workload::ObjectError;
pub use crate::workload::{AdmissionObject, ObjectJson};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

/// The parts of an AdmissionRequest the decisions read.
#[derive(Debug, Clone)]
pub struct AdmissionInput<'a> {
    pub operation: Operation,
    /// `group` of the request's kind (`apps`, `` for core).
    pub group: &'a str,
    /// `kind` of the request's kind (`Deployment`, `Scale`, `Service`).
    pub kind: &'a str,
    /// Set for subresource requests (`scale`, `status`): those never change the template.
    pub sub_resource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    /// `request.object`: read once, straight into its typed form, and only as far as needed.
    pub object: Option<ObjectJson<'a>>,
    /// `request.oldObject`: decoded only when the pod template changed, or to grandfather
    /// what an update that changes no template did not introduce.
    pub old_object: Option<ObjectJson<'a>>,
    pub actor: Actor,
}

/// What the webhook may know about the cluster (through watch-fed caches). Each answer is
/// `None` when unknown, and the rule that needs it is then skipped rather than guessed.
pub trait ClusterLookups {
    /// Whether an HPA in `namespace` targets `kind`/`name`.
    fn autoscaled(&self, _namespace: &str, _kind: &str, _name: &str) -> Option<bool> {
        None
    }
    /// Whether a PodDisruptionBudget in `namespace` selects pods with `labels`.
    fn pdb_covers(&self, _namespace: &str, _labels: &BTreeMap<String, String>) -> Option<bool> {
        None
    }
    /// How many ready pods in `namespace` a Service selector selects.
    fn ready_pods(&self, _namespace: &str, _selector: &BTreeMap<String, String>) -> Option<usize> {
        None
    }
}

/// No cluster lookups: RS601, RS602 and the HPA exemption are skipped.
pub struct NoLookups;
impl ClusterLookups for NoLookups {}

/// Whether this request is one the rules look at: a create or update of the workload itself.
fn is_workload_write(input: &AdmissionInput<'_>) -> bool {
    input.group == "apps"
        && crate::rule::WorkloadKind::from_kind(input.kind).is_some()
        && input.sub_resource.is_none()
        && matches!(input.operation, Operation::Create | Operation::Update)
}

/// The mutating decision. `Ok(None)`: not ours, allow untouched.
pub fn mutate_request(
    policy: &RolloutPolicy,
    input: &AdmissionInput<'_>,
    server: ServerInfo,
) -> Result<Option<MutationOutcome>, ObjectError> {
    if !is_workload_write(input) {
        return Ok(None);
    }
    let Some(object) = input.object else {
        return Ok(None);
    };
    let eff = policy.for_namespace(input.namespace);
    if eff.excluded {
        return Ok(None);
    }
    let old = match input.operation {
        Operation::Update => input.old_object,
        _ => None,
    };
    mutate_json(object, old, &eff, server, &input.actor)
}

/// The validating decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Findings of rules in `enforce` mode: the request is denied when this is not empty.
    pub denied: Vec<Finding>,
    /// Everything else, for `response.warnings`.
    pub warnings: Vec<Finding>,
}

impl Verdict {
    /// Sorts findings as admission does: enforced ones (errors) deny, the rest warn.
    pub fn from_findings(findings: Vec<Finding>) -> Verdict {
        let (denied, warnings) = findings
            .into_iter()
            .partition(|f| f.severity == Severity::Error);
        Verdict { denied, warnings }
    }

    pub fn allowed(&self) -> bool {
        self.denied.is_empty()
    }

    /// The denial message: every violated rule with its message and fix.
    pub fn deny_message(&self) -> String {
        let Some(first) = self.denied.first() else {
            return String::new();
        };
        let mut msg = format!(
            "rollout-safe denied {}: {} rule(s) violated",
            first.object,
            self.denied.len()
        );
        for f in &self.denied {
            msg.push_str("\n  ");
            msg.push_str(&f.one_line());
        }
        msg
    }

    /// One string per warning, as kubectl prints them (`Warning: ...`).
    pub fn warning_lines(&self) -> Vec<String> {
        self.warnings.iter().map(Finding::one_line).collect()
    }
}

/// Validates a request. Workloads get every rule; a Service update whose selector changes gets RS602.
pub fn validate_request(
    policy: &RolloutPolicy,
    input: &AdmissionInput<'_>,
    lookups: &dyn ClusterLookups,
) -> Result<Verdict, ObjectError> {
    let eff = policy.for_namespace(input.namespace);
    if eff.excluded {
        return Ok(Verdict::default());
    }
    let findings = if is_workload_write(input) {
        let Some(object) = input.object else {
            return Ok(Verdict::default());
        };
        let new = object.outline()?;
        let Some(w) = new.workload()? else {
            return Ok(Verdict::default());
        };
        let before = match (input.operation, input.old_object) {
            (Operation::Update, Some(v)) => Some(v.outline()?),
            _ => None,
        };
        // Only a template change makes the old object matter to the rules (RS301).
        let old = match &before {
            Some(b) => b.workload_if_template_changed(&new, &w)?,
            None => None,
        };
        let ns = w.namespace().or(input.namespace).unwrap_or("default");
        let facts = Facts::from_lookups(
            &w,
            lookups.autoscaled(ns, w.kind().as_str(), w.name()),
            |labels| lookups.pdb_covers(ns, labels),
        );
        let mut findings = check(&w, old.as_ref(), &eff, &facts);
        if let (Some(before), None) = (&before, &old) {
            grandfather(&mut findings, before, &eff, &facts)?;
        }
        findings
    } else if input.group.is_empty()
        && input.kind == "Service"
        && input.operation == Operation::Update
        && input.sub_resource.is_none()
    {
        service_switch(input, &eff, lookups)?
    } else {
        Vec::new()
    };
    let (denied, warnings) = findings
        .into_iter()
        .partition(|f| f.severity == Severity::Error);
    Ok(Verdict { denied, warnings })
}

/// An update that leaves the pod template alone (pause, resume, an annotation, a replica
/// count) starts no rollout: violations the object already had are reported as warnings
/// instead of blocking it, so legacy workloads stay operable. Violations the update
/// introduces (say, maxUnavailable raised to 100 %) and every violation of an update that
/// changes the template are enforced as usual.
/// The old object is only decoded when there is something to grandfather.
fn grandfather(
    findings: &mut [Finding],
    before: &AdmissionObject<'_>,
    eff: &crate::config::EffectivePolicy,
    facts: &Facts,
) -> Result<(), ObjectError> {
    if !findings.iter().any(|f| f.severity == Severity::Error) {
        return Ok(());
    }
    let Some(old) = before.workload()? else {
        return Ok(());
    };
    let existing = check(&old, None, eff, facts);
    for f in findings
        .iter_mut()
        .filter(|f| f.severity == Severity::Error)
    {
        let had = existing
            .iter()
            .any(|e| e.rule == f.rule && e.field == f.field && e.container == f.container);
        if had {
            f.severity = Severity::Warning;
            f.message.push_str(
                " [not enforced: already so before this update, which changes no pod template; enforced on the next rollout]",
            );
        }
    }
    Ok(())
}

/// The Service rules on a Service update (RS602: a selector switch must keep ready endpoints).
fn service_switch(
    input: &AdmissionInput<'_>,
    eff: &crate::config::EffectivePolicy,
    lookups: &dyn ClusterLookups,
) -> Result<Vec<Finding>, ObjectError> {
    let Some(object) = input.object else {
        return Ok(Vec::new());
    };
    let ns = input.namespace.unwrap_or("default");
    let service = ServiceView::from_value(&*object.to_value()?, Some(ns));
    let old_selector = match input.old_object {
        Some(old) => Some(ServiceView::from_value(&*old.to_value()?, Some(ns)).selector),
        None => None,
    };
    let ready_pods = |selector: &BTreeMap<String, String>| lookups.ready_pods(ns, selector);
    let cx = ServiceContext {
        old_selector: old_selector.as_ref(),
        ready_pods: Some(&ready_pods),
        workloads: None,
    };
    Ok(check_service(&service, &cx, eff))
}
