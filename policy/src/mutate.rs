//! The mutation engine: for rules in `mutate` mode, the JSON Patch that fixes an object.
//!
//! The rules decide and fix (`crate::rules`); this module runs them in registry order over one
//! view of the submitted object. Each fix emits its JSON Patch operations directly, touching
//! only what it fixes, so an already-fixed object yields an empty patch (safe with
//! `reinvocationPolicy: IfNeeded`). A rule is checked again just before its fix with what the
//! earlier fixes plan (RS202 covers the preStop hook RS201 adds).

use serde_json::Value;

use crate::change_cause::Actor;
use crate::check::{exempted, runs};
use crate::config::EffectivePolicy;
use crate::facts::Facts;
use crate::rule::{Action, RuleId};

pub use crate::finding::Mutation;
use crate::rules::{self, FixContext, Fixes, Report, WorkloadContext};
pub use crate::server_info::ServerInfo;
use crate::view::WorkloadView;
use crate::workload::{ObjectError, ObjectJson, Workload};

/// The mutator's answer for one object.
#[derive(Debug, Clone, Default)]
pub struct MutationOutcome {
    /// Operations that turn the submitted object into the fixed one (empty when nothing to do).
    pub patch: json_patch::Patch,
    pub mutations: Vec<Mutation>,
    /// Fixes that were wanted but could not be made, as messages for `response.warnings`.
    pub warnings: Vec<String>,
}

impl MutationOutcome {
    /// The object with the patch applied (for tests and previews; the webhook sends the patch).
    pub fn apply_to(&self, object: &Value) -> Result<Value, json_patch::PatchError> {
        let mut fixed = object.clone();
        json_patch::patch(&mut fixed, &self.patch)?;
        Ok(fixed)
    }
}

/// Fixes `object` for every rule in `mutate` mode. `old` is the object before an update.
/// Returns `Ok(None)` when `object` is not a workload.
pub fn mutate(
    object: &Value,
    old: Option<&Value>,
    policy: &EffectivePolicy,
    server: ServerInfo,
    actor: &Actor,
) -> Result<Option<MutationOutcome>, ObjectError> {
    mutate_json(
        ObjectJson::Value(object),
        old.map(ObjectJson::Value),
        policy,
        server,
        actor,
    )
}

/// [`mutate`] on an object as the admission request carries it: each object is decoded at
/// most once, straight into its typed form.
pub fn mutate_json(
    object: ObjectJson<'_>,
    old: Option<ObjectJson<'_>>,
    policy: &EffectivePolicy,
    server: ServerInfo,
    actor: &Actor,
) -> Result<Option<MutationOutcome>, ObjectError> {
    let new = object.outline()?;
    let Some(workload) = new.workload()? else {
        return Ok(None);
    };
    // Only a template change makes the old object matter (RS301 and the cause); comparing the
    // JSON first spares a typed parse on every scale, pause or annotation update.
    let old_workload = match old {
        Some(v) => v.outline()?.workload_if_template_changed(&new, &workload)?,
        None => None,
    };
    Ok(Some(mutate_workload(
        &workload,
        old_workload.as_ref(),
        old.is_some(),
        policy,
        server,
        actor,
    )))
}

/// [`mutate`] on a typed workload. `old` is the object before an update whose pod template
/// changed; `is_update` says whether the request is an update at all.
pub fn mutate_workload(
    workload: &Workload,
    old: Option<&Workload>,
    is_update: bool,
    policy: &EffectivePolicy,
    server: ServerInfo,
    actor: &Actor,
) -> MutationOutcome {
    let view = WorkloadView::new(workload);
    let facts = Facts::default();
    let fix_cx = FixContext {
        server,
        actor,
        old,
        is_update,
    };
    let exempt = exempted(view.skip.as_ref());
    let mut fixes = Fixes::default();
    for &rule in RuleId::WORKLOAD_RULES {
        if !rule.can_mutate()
            || runs(rule, policy, &exempt, |r| r.applies_to(view.kind())) != Some(Action::Mutate)
        {
            continue;
        }
        // This rule's findings, given what the fixes before it add.
        let cx = WorkloadContext {
            facts: &facts,
            old,
            planned_prestop_seconds: fixes.planned_prestop_seconds,
        };
        let mut findings = Vec::new();
        rules::check_workload(
            rule,
            &view,
            &policy.params,
            &cx,
            &mut Report::new(rule, Action::Mutate, &view.object, &mut findings),
        );
        rules::fix_workload(rule, &view, &policy.params, &fix_cx, &findings, &mut fixes);
    }
    MutationOutcome {
        patch: json_patch::Patch(fixes.ops),
        mutations: fixes.mutations,
        warnings: fixes.warnings,
    }
}

/// Whether the pod templates differ, compared as submitted JSON.
pub fn template_differs(new: &Value, old: &Value) -> bool {
    new.pointer("/spec/template") != old.pointer("/spec/template")
}
