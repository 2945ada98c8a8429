//! RS001: a `rollout-safe.dev/skip` annotation needs a `rollout-safe.dev/skip-reason`.

use super::cel::{CelVariable, debug_quoted, has_path, lit, not_white_space, prefixed, re_lit};
use super::{
    ALL_WORKLOADS, Applies, CelForm, CelReads, Input, Report, Rule, RuleId, RuleMeta,
    WorkloadContext, WorkloadRule, rule_params,
};
use crate::rule::Action;
use crate::skip::{SKIP_ANNOTATION, SKIP_REASON_ANNOTATION};
use crate::view::WorkloadView;

pub struct SkipHasReason;

rule_params! {}

impl Rule for SkipHasReason {
    const META: RuleMeta = RuleMeta {
        id: RuleId::RS001,
        title: "skip annotation needs a reason",
        default_action: Action::Warn,
        applies_to: Applies::Workloads(ALL_WORKLOADS),
        summary: "a `rollout-safe.dev/skip` annotation has a `rollout-safe.dev/skip-reason` (otherwise the skip is ignored), and names only known rule IDs",
        why: "An exemption nobody can explain outlives the reason for it. Without a reason the skip is ignored, so the rules it names still apply; an unknown ID is most likely a typo that exempts nothing.",
        fix: "add rollout-safe.dev/skip-reason saying why the rules do not apply, and use IDs from the catalogue",
        mutation: None,
        input: Input::Object,
        // The rule about skips cannot itself be skipped.
        exemptable: false,
    };
    type Params = Params;

    fn cel() -> Option<CelForm> {
        let mut variables = skip_variables("object", "");
        variables.extend(skip_variables("oldObject", "old"));
        let what = format!(
            "!variables.hasReason ? 'skips ' + {} + {} : 'skip names unknown rule IDs ' + variables.unknown.join(', ')",
            debug_quoted("variables.skip"),
            lit(&format!(
                " without a {SKIP_REASON_ANNOTATION} annotation, so the skip is ignored"
            ))
        );
        Some(CelForm {
            variables,
            violation: "variables.hasSkip && (!variables.hasReason || size(variables.unknown) > 0)"
                .into(),
            message: format!(
                "variables.ref + ': ' + ({what}) + {}",
                lit(&format!(" (metadata.annotations[{SKIP_ANNOTATION}])"))
            ),
            fix: "!variables.hasReason ? 'add rollout-safe.dev/skip-reason saying why these rules do not apply' : 'use IDs from the catalogue, e.g. RS102,RS501'".into(),
            reads: CelReads::Object {
                old_same: "variables.oldHasSkip && (!variables.oldHasReason || size(variables.oldUnknown) > 0)".into(),
            },
            mutation: None,
            weaker: None,
        })
    }
}

/// The variables that read `root`'s skip annotation as [`crate::check::Skip`] does, named
/// with `prefix`: `hasSkip`, `skip`, `hasReason` and `unknown` (entries that name no rule).
fn skip_variables(root: &str, prefix: &str) -> Vec<CelVariable> {
    let n = |name: &str| prefixed(prefix, name);
    let ann = format!("{root}.metadata.annotations");
    let (skip, reason) = (lit(SKIP_ANNOTATION), lit(SKIP_REASON_ANNOTATION));
    let known: Vec<String> = RuleId::ALL.iter().map(|r| lit(r.as_str())).collect();
    vec![
        CelVariable::new(
            n("hasSkip"),
            format!("{} && {skip} in {ann}", has_path(&ann)),
        ),
        CelVariable::new(n("skip"), format!("{ann}[{skip}]")),
        CelVariable::new(
            n("hasReason"),
            format!(
                "{reason} in {ann} && {ann}[{reason}].matches({})",
                re_lit(&not_white_space())
            ),
        ),
        CelVariable::new(
            n("unknown"),
            format!(
                "variables.{}.split(',').map(e, e.trim()).filter(e, e != '' && !(e.upperAscii() in [{}]))",
                n("skip"),
                known.join(", ")
            ),
        ),
    ]
}

impl WorkloadRule for SkipHasReason {
    fn check(w: &WorkloadView<'_>, _: &Params, _: &WorkloadContext<'_>, out: &mut Report<'_>) {
        let Some(skip) = &w.skip else { return };
        let field = format!("metadata.annotations[{SKIP_ANNOTATION}]");
        if !skip.has_reason {
            out.object(
                field.clone(),
                format!(
                    "skips {:?} without a {SKIP_REASON_ANNOTATION} annotation, so the skip is ignored",
                    skip.list
                ),
                "add rollout-safe.dev/skip-reason saying why these rules do not apply",
            );
        }
        if !skip.unknown.is_empty() {
            out.object(
                field,
                format!("skip names unknown rule IDs {}", skip.unknown.join(", ")),
                "use IDs from the catalogue, e.g. RS102,RS501",
            );
        }
    }
}
