//! RS403: revisionHistoryLimit keeps enough revisions to undo. Fix: set the configured default.

use serde_json::json;

use super::cel::{CelVariable, object_message, or_default};
use super::{
    ALL_WORKLOADS, Applies, CelForm, CelMutation, CelReads, FixContext, Fixes, Input, Report, Rule,
    RuleId, RuleMeta, WorkloadContext, WorkloadRule, rule_params,
};
use crate::finding::Finding;
use crate::finding::Mutation;
use crate::rule::Action;
use crate::view::WorkloadView;
use crate::workload::defaults;

pub struct RevisionHistory;

rule_params! {
    /// The least revisionHistoryLimit that passes
    minimum: i32 = 2 => "minimum", min 0;
    /// The revisionHistoryLimit the mutation writes
    default: i32 = 5 => "default", min 0;
}

impl Rule for RevisionHistory {
    const META: RuleMeta = RuleMeta {
        id: RuleId::RS403,
        title: "revisionHistoryLimit allows undo",
        default_action: Action::Mutate,
        applies_to: Applies::Workloads(ALL_WORKLOADS),
        summary: "revisionHistoryLimit ≥ `minimum`, so undo is possible",
        why: "`rollout undo` needs the old ReplicaSets or ControllerRevisions; with a limit of 0 or 1 the revision to go back to may already be garbage-collected when it is needed most.",
        fix: "set revisionHistoryLimit to at least the minimum",
        mutation: Some("set `default`"),
        input: Input::Object,
        exemptable: true,
    };
    type Params = Params;

    fn cel() -> Option<CelForm> {
        let limit = |root: &str| {
            or_default(
                &format!("{root}.spec.revisionHistoryLimit"),
                &defaults::REVISION_HISTORY_LIMIT.to_string(),
            )
        };
        Some(CelForm {
            variables: vec![CelVariable::new("limit", limit("object"))],
            violation: "variables.limit < variables.minimum".into(),
            message: object_message(
                "'keeps ' + string(variables.limit) + ' old revisions (revisionHistoryLimit), fewer than ' + string(variables.minimum) + ', so `rollout undo` may have nothing to go back to'",
                "spec.revisionHistoryLimit",
            ),
            fix: "'set revisionHistoryLimit to ' + string(variables.default)".into(),
            reads: CelReads::Object {
                old_same: format!("{} < variables.minimum", limit("oldObject")),
            },
            mutation: Some(CelMutation {
                variables: vec![],
                patches: "variables.limit < variables.minimum ? [JSONPatch{op: 'add', path: '/spec/revisionHistoryLimit', value: variables.default}] : []".into(),
            }),
            weaker: None,
        })
    }

    fn validate(p: &Params) -> Result<(), (&'static str, String)> {
        if p.default < p.minimum {
            return Err((
                "default",
                format!(
                    "the value written ({}) must be at least the minimum ({}) in force here",
                    p.default, p.minimum
                ),
            ));
        }
        Ok(())
    }
}

impl WorkloadRule for RevisionHistory {
    fn check(w: &WorkloadView<'_>, p: &Params, _: &WorkloadContext<'_>, out: &mut Report<'_>) {
        let limit = w
            .revision_history_limit()
            .unwrap_or(defaults::REVISION_HISTORY_LIMIT);
        if limit < p.minimum {
            out.object(
                "spec.revisionHistoryLimit",
                format!("keeps {limit} old revisions (revisionHistoryLimit), fewer than {}, so `rollout undo` may have nothing to go back to", p.minimum),
                format!("set revisionHistoryLimit to {}", p.default),
            );
        }
    }

    fn fix(
        w: &WorkloadView<'_>,
        p: &Params,
        _: &FixContext<'_>,
        findings: &[Finding],
        fixes: &mut Fixes,
    ) {
        let Some(f) = findings.first() else { return };
        let v = p.default;
        fixes.set(
            &["spec", "revisionHistoryLimit"],
            w.revision_history_limit().is_some(),
            json!(v),
        );
        fixes.mutations.push(Mutation {
            rule: RuleId::RS403,
            field: f.field.clone(),
            description: format!("revisionHistoryLimit set to {v}"),
        });
    }
}
