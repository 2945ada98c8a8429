//! Mutations as data: for rules in `mutate` mode, the JSON Patch that fixes an object.
//!
//! The rules decide (via [`check`]); this module only knows how to fix what they report. The
//! fixes are applied to a copy and the patch is the diff, so it touches only what changed and
//! an already-fixed object yields an empty patch (safe with `reinvocationPolicy: IfNeeded`).

use serde::Serialize;
use serde_json::{Value, json};

use crate::change_cause::{self, Actor};
use crate::check::{CHANGE_CAUSE_ANNOTATION, Facts, Skip, check, required_grace};
use crate::config::{EffectivePolicy, PreStopHandler};
use crate::finding::Finding;
use crate::rule::{Action, RuleId};
use crate::workload::{ObjectError, Workload};

/// What the mutator knows about the API server it mutates for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerInfo {
    /// `lifecycle.preStop.sleep` exists (Kubernetes >= 1.30).
    pub native_sleep: bool,
}

impl Default for ServerInfo {
    fn default() -> Self {
        ServerInfo { native_sleep: true }
    }
}

impl ServerInfo {
    /// From a server version such as `v1.29.3` or `1.30`; unknown versions are assumed current.
    pub fn from_version(version: &str) -> Self {
        let v = version.trim().trim_start_matches('v');
        let mut parts = v.split('.');
        let major: u32 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(1);
        let minor: u32 = parts
            .next()
            .map(|s| s.trim_end_matches(|c: char| !c.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .unwrap_or(u32::MAX);
        ServerInfo {
            native_sleep: major > 1 || minor >= 30,
        }
    }
}

/// One fix that was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mutation {
    pub rule: RuleId,
    /// The field written, e.g. `spec.template.spec.containers[0].lifecycle.preStop`.
    pub field: String,
    pub description: String,
}

/// The mutator's answer for one object.
#[derive(Debug, Clone, Default)]
pub struct MutationOutcome {
    /// Operations that turn the submitted object into the fixed one (empty when nothing to do).
    pub patch: json_patch::Patch,
    pub mutations: Vec<Mutation>,
    /// Fixes that were wanted but could not be made, as messages for `response.warnings`.
    pub warnings: Vec<String>,
    /// The object after the fixes.
    pub fixed: Value,
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
    let Some(workload) = Workload::from_value(object)? else {
        return Ok(None);
    };
    let is_update = old.is_some();
    // Only a template change makes the old object matter (RS301 and the cause); comparing the
    // JSON first spares a typed parse on every scale, pause or annotation update.
    let old = match old {
        Some(v) if template_differs(object, v) => Workload::from_value(v)?,
        _ => None,
    };
    let mut out = MutationOutcome {
        fixed: object.clone(),
        ..Default::default()
    };
    let to_fix = |f: &Finding, rule: RuleId| f.rule == rule && f.action == Action::Mutate;

    // RS201 first: the grace period RS202 asks for depends on the hook it adds.
    let mut findings = check(&workload, old.as_ref(), policy, &Facts::default());
    let mut workload = workload;
    for f in findings.iter().filter(|f| to_fix(f, RuleId::RS201)) {
        add_prestop(&mut out, &workload, f, policy, server);
    }
    if !out.mutations.is_empty() {
        // Judge the rest on the object with its new hooks.
        workload = match Workload::from_value(&out.fixed)? {
            Some(w) => w,
            None => return Ok(None),
        };
        findings = check(&workload, old.as_ref(), policy, &Facts::default());
    }
    for f in &findings {
        if f.action != Action::Mutate {
            continue;
        }
        match f.rule {
            RuleId::RS202 => {
                let need = required_grace(&workload, &policy.params);
                set(
                    &mut out.fixed,
                    "/spec/template/spec",
                    "terminationGracePeriodSeconds",
                    json!(need),
                );
                out.mutations.push(Mutation {
                    rule: RuleId::RS202,
                    field: f.field.clone(),
                    description: format!("terminationGracePeriodSeconds raised to {need}"),
                });
            }
            RuleId::RS403 => {
                let v = policy.params.history_default;
                set(&mut out.fixed, "/spec", "revisionHistoryLimit", json!(v));
                out.mutations.push(Mutation {
                    rule: RuleId::RS403,
                    field: f.field.clone(),
                    description: format!("revisionHistoryLimit set to {v}"),
                });
            }
            _ => {}
        }
    }
    // RS301: a stale or missing cause on a template change, and a first cause on creation.
    let wants_cause = policy.action(RuleId::RS301) == Action::Mutate
        && (findings.iter().any(|f| to_fix(f, RuleId::RS301))
            || (!is_update
                && workload.annotation(CHANGE_CAUSE_ANNOTATION).is_none()
                && !Skip::of(&workload).is_some_and(|s| s.exempts(RuleId::RS301))));
    if wants_cause {
        let cause = change_cause::describe(old.as_ref(), &workload, actor);
        set(&mut out.fixed, "/metadata", "annotations", json!({}));
        if let Some(a) = out
            .fixed
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            a.insert(CHANGE_CAUSE_ANNOTATION.into(), json!(cause));
        }
        out.mutations.push(Mutation {
            rule: RuleId::RS301,
            field: format!("metadata.annotations[{CHANGE_CAUSE_ANNOTATION}]"),
            description: format!("change-cause set to {cause:?}"),
        });
    }
    if !out.mutations.is_empty() {
        out.patch = json_patch::diff(object, &out.fixed);
    }
    Ok(Some(out))
}

/// Whether the pod templates differ, compared as submitted JSON.
pub fn template_differs(new: &Value, old: &Value) -> bool {
    new.pointer("/spec/template") != old.pointer("/spec/template")
}

/// Sets `parent[key] = value`, creating missing objects along `parent` (array elements are
/// followed, never created). A `{}` value only ensures the map exists without clearing it.
fn set(doc: &mut Value, parent: &str, key: &str, value: Value) {
    let mut cur = &mut *doc;
    for seg in parent.split('/').filter(|s| !s.is_empty()) {
        cur = match cur {
            Value::Array(items) => match seg.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                Some(item) => item,
                None => return,
            },
            Value::Object(map) => {
                let slot = map.entry(seg.to_string()).or_insert_with(|| json!({}));
                if slot.is_null() {
                    *slot = json!({});
                }
                slot
            }
            _ => return,
        };
    }
    let Some(map) = cur.as_object_mut() else {
        return;
    };
    let keep = value.as_object().is_some_and(|m| m.is_empty())
        && map.get(key).is_some_and(Value::is_object);
    if !keep {
        map.insert(key.to_string(), value);
    }
}

fn add_prestop(
    out: &mut MutationOutcome,
    workload: &Workload,
    finding: &Finding,
    policy: &EffectivePolicy,
    server: ServerInfo,
) {
    let Some(ac) = workload
        .app_containers()
        .into_iter()
        .find(|ac| Some(&ac.container.name) == finding.container.as_ref())
    else {
        return;
    };
    let secs = policy.params.prestop_sleep_seconds;
    let handler = match policy.params.prestop_handler {
        PreStopHandler::Sleep => json!({"sleep": {"seconds": secs}}),
        PreStopHandler::Exec => json!({"exec": {"command": ["sleep", secs.to_string()]}}),
        PreStopHandler::Auto if server.native_sleep => json!({"sleep": {"seconds": secs}}),
        PreStopHandler::Auto if policy.params.prestop_allow_exec => {
            json!({"exec": {"command": ["sleep", secs.to_string()]}})
        }
        PreStopHandler::Auto => {
            out.warnings.push(format!(
                "{} (not fixed: the API server predates the native preStop sleep action (Kubernetes 1.30) and the policy does not allow `exec sleep`; set RS201 allowExec: true if the image has a sleep binary)",
                finding.one_line()
            ));
            return;
        }
    };
    let pointer = ac.pointer();
    set(&mut out.fixed, &pointer, "lifecycle", json!({}));
    if let Some(l) = out
        .fixed
        .pointer_mut(&format!("{pointer}/lifecycle"))
        .and_then(Value::as_object_mut)
    {
        l.insert("preStop".into(), handler.clone());
    }
    out.mutations.push(Mutation {
        rule: RuleId::RS201,
        field: format!("{}.lifecycle.preStop", ac.field_path()),
        description: format!("container {:?}: preStop {}", ac.container.name, handler),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(ServerInfo::from_version("v1.30.0").native_sleep);
        assert!(ServerInfo::from_version("1.31+").native_sleep);
        assert!(!ServerInfo::from_version("v1.29.3-eks-1").native_sleep);
        assert!(!ServerInfo::from_version("1.24").native_sleep);
        assert!(ServerInfo::from_version("garbage").native_sleep);
    }
}
