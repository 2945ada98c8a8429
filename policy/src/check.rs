//! The rule engine: runs the registered rules (`crate::rules`) that the policy turns on and
//! the skip annotation does not exempt, over one shared view of the object.

use std::collections::BTreeSet;

use crate::config::EffectivePolicy;
use crate::finding::Finding;
use crate::rule::Action;
use crate::rules::{self, Report, RuleId, ServiceContext, WorkloadContext};
use crate::view::{ServiceView, WorkloadView};
use crate::workload::Workload;

pub use crate::change_cause::CHANGE_CAUSE_ANNOTATION;
pub use crate::facts::Facts;
pub use crate::rules::rs202_grace_period::{MAX_KNOWN_PRESTOP_SECONDS, prestop_seconds};
pub use crate::rules::rs501_image_pinned::image_is_pinned;
pub use crate::skip::{SKIP_ANNOTATION, SKIP_REASON_ANNOTATION, Skip};

/// Runs every applicable workload rule. `old` is the object before an update whose pod
/// template changed (RS301 needs it).
pub fn check(
    workload: &Workload,
    old: Option<&Workload>,
    policy: &EffectivePolicy,
    facts: &Facts,
) -> Vec<Finding> {
    let view = WorkloadView::new(workload);
    let cx = WorkloadContext {
        facts,
        old,
        planned_prestop_seconds: None,
    };
    check_view(&view, &cx, policy)
}

/// [`check`] over a view that is already built.
pub fn check_view(
    view: &WorkloadView<'_>,
    cx: &WorkloadContext<'_>,
    policy: &EffectivePolicy,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let exempt = exempted(view.skip.as_ref());
    for &rule in RuleId::WORKLOAD_RULES {
        if let Some(action) = runs(rule, policy, &exempt, |r| r.applies_to(view.kind())) {
            rules::check_workload(
                rule,
                view,
                &policy.params,
                cx,
                &mut Report::new(rule, action, &view.object, &mut out),
            );
        }
    }
    out
}

/// Runs every Service rule.
pub fn check_service(
    service: &ServiceView,
    cx: &ServiceContext<'_>,
    policy: &EffectivePolicy,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let exempt = exempted(service.skip.as_ref());
    for &rule in RuleId::SERVICE_RULES {
        if let Some(action) = runs(rule, policy, &exempt, |_| true) {
            rules::check_service(
                rule,
                service,
                &policy.params,
                cx,
                &mut Report::new(rule, action, &service.object, &mut out),
            );
        }
    }
    out
}

/// The rules a skip annotation exempts: only with a reason (RS001 reports one without).
pub(crate) fn exempted(skip: Option<&Skip>) -> BTreeSet<RuleId> {
    match skip {
        Some(s) if s.has_reason => s.rules.clone(),
        _ => BTreeSet::new(),
    }
}

/// The action `rule` runs with, or `None` when it does not run: not for this object, turned
/// off, or exempted by the object's skip annotation.
pub(crate) fn runs(
    rule: RuleId,
    policy: &EffectivePolicy,
    exempt: &BTreeSet<RuleId>,
    applies: impl FnOnce(RuleId) -> bool,
) -> Option<Action> {
    let action = policy.action(rule);
    let exempted = rule.meta().exemptable && exempt.contains(&rule);
    (action != Action::Off && !exempted && applies(rule)).then_some(action)
}
