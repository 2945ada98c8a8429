//! The rule engine: runs the registered rules (`crate::rules`) that the policy turns on and
//! the skip annotation does not exempt, over one shared view of the object.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::config::EffectivePolicy;
use crate::finding::Finding;
use crate::rule::Action;
use crate::rules::{self, Report, RuleId, ServiceContext, WorkloadContext};
use crate::view::{ServiceView, WorkloadView};
use crate::workload::Workload;

pub use crate::rules::rs202_grace_period::{MAX_KNOWN_PRESTOP_SECONDS, prestop_seconds};
pub use crate::rules::rs501_image_pinned::image_is_pinned;

pub const SKIP_ANNOTATION: &str = "rollout-safe.dev/skip";
pub const SKIP_REASON_ANNOTATION: &str = "rollout-safe.dev/skip-reason";
pub const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";

/// What is known about the workload's surroundings (other files in an audit, or the cluster).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// A HorizontalPodAutoscaler targets the workload (RS405 does not apply).
    pub autoscaled: bool,
    /// Whether a PodDisruptionBudget selects the workload's pods; `None` when unknown (RS601 is skipped).
    pub pdb_covered: Option<bool>,
}

impl Facts {
    /// The facts for `w` from what its namespace holds: the selectors of its
    /// PodDisruptionBudgets and the (kind, name) scale targets of its HPAs.
    pub fn gather<'a>(
        w: &Workload,
        pdb_selectors: impl IntoIterator<Item = &'a LabelSelector>,
        hpa_targets: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Facts {
        let autoscaled = hpa_targets
            .into_iter()
            .any(|(kind, name)| kind == w.kind().as_str() && name == w.name());
        Facts::from_lookups(w, Some(autoscaled), |labels| {
            Some(
                pdb_selectors
                    .into_iter()
                    .any(|s| crate::selector::selector_matches(s, labels)),
            )
        })
    }

    /// The facts for `w` from lookups that may not know: whether an HPA targets it, and
    /// whether a PDB selects pods with given labels. RS601 is only asked of workloads that run
    /// (or may scale to) several replicas, so `pdb_covers` is only called for those.
    pub fn from_lookups(
        w: &Workload,
        autoscaled: Option<bool>,
        pdb_covers: impl FnOnce(&BTreeMap<String, String>) -> Option<bool>,
    ) -> Facts {
        let autoscaled = autoscaled.unwrap_or(false);
        let multi = autoscaled || w.replicas().is_some_and(|r| r >= 2);
        Facts {
            autoscaled,
            pdb_covered: if multi {
                pdb_covers(&w.pod_labels())
            } else {
                None
            },
        }
    }
}

/// A `rollout-safe.dev/skip` annotation, read once for every place that honours it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// The annotation as written.
    pub list: String,
    pub rules: BTreeSet<RuleId>,
    /// Entries that name no rule.
    pub unknown: Vec<String>,
    /// A non-empty `rollout-safe.dev/skip-reason` is present; without it the skip is ignored.
    pub has_reason: bool,
}

impl Skip {
    /// Reads the annotations through `get`; `None` when there is no skip annotation.
    pub fn read<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<Skip> {
        let list = get(SKIP_ANNOTATION)?;
        let mut rules = BTreeSet::new();
        let mut unknown = Vec::new();
        for id in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match id.parse() {
                Ok(r) => {
                    rules.insert(r);
                }
                Err(_) => unknown.push(id.to_string()),
            }
        }
        Some(Skip {
            list: list.to_string(),
            rules,
            unknown,
            has_reason: get(SKIP_REASON_ANNOTATION).is_some_and(|r| !r.trim().is_empty()),
        })
    }

    /// Whether `rule` is exempted (named, with a reason).
    pub fn exempts(&self, rule: RuleId) -> bool {
        self.has_reason && self.rules.contains(&rule)
    }

    pub fn of(w: &Workload) -> Option<Skip> {
        Skip::read(|k| w.annotation(k))
    }
}

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
