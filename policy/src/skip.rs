//! The `rollout-safe.dev/skip` annotation: rules an object opts out of, with a reason.

use std::collections::BTreeSet;

use crate::rule::RuleId;
use crate::workload::Workload;

pub const SKIP_ANNOTATION: &str = "rollout-safe.dev/skip";
pub const SKIP_REASON_ANNOTATION: &str = "rollout-safe.dev/skip-reason";

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
