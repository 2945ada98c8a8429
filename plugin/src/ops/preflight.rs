//! The policy pre-flight of a spec about to be written (SPEC: the plugin "checks the spec before
//! it applies it"). `update`, `blue-green` (the new colour) and `canary` (what it will promote)
//! all go through [`Preflight::check`] before they write anything; what it refuses is what the
//! admission webhook would deny ([`Verdict`]).

use rollout_safe_policy::admission::Verdict;
use rollout_safe_policy::{EffectivePolicy, Facts, Finding, Workload, check};

use crate::error::Error;

pub struct Preflight {
    policy: EffectivePolicy,
    facts: Facts,
    force: bool,
    /// The findings last printed, so a re-check (after a conflict) prints only what changed.
    shown: Option<Vec<Finding>>,
}

impl Preflight {
    /// `facts`: the workload's surroundings (`cluster::facts::facts_for`); `force`: apply
    /// despite enforced findings (`--force`).
    pub fn new(policy: EffectivePolicy, facts: Facts, force: bool) -> Self {
        Preflight {
            policy,
            facts,
            force,
            shown: None,
        }
    }

    /// Checks `new` against the policy (`old`: the object it replaces, for RS301), prints the
    /// findings (again only when they changed), and refuses what admission would deny — exit 3
    /// — unless `--force`. `action` says what is refused: `update deployment/web`.
    pub fn check(
        &mut self,
        action: &str,
        new: &Workload,
        old: Option<&Workload>,
    ) -> Result<(), Error> {
        let findings = check(new, old, &self.policy, &self.facts);
        let verdict = Verdict::from_findings(findings.clone());
        if self.shown.as_ref() != Some(&findings) {
            for f in &findings {
                let level = if verdict.denied.contains(f) {
                    "error"
                } else {
                    "warning"
                };
                eprintln!("{level}: {}", f.one_line());
            }
        }
        self.shown = Some(findings);
        if verdict.allowed() {
            return Ok(());
        }
        let enforced = verdict.denied.len();
        if !self.force {
            return Err(Error::Violations {
                action: action.to_owned(),
                enforced,
            });
        }
        eprintln!("warning: --force: going ahead despite {enforced} enforced finding(s)");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollout_safe_policy::RolloutPolicy;

    fn unsafe_deployment() -> Workload {
        // No readiness probe (RS101, enforced by default).
        Workload::from_value(&serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "web:1.0.0"}]}}}
        }))
        .unwrap()
        .unwrap()
    }

    #[test]
    fn refuses_what_admission_would_deny_unless_forced() {
        let policy = RolloutPolicy::default().for_namespace(Some("shop"));
        let w = unsafe_deployment();
        let mut p = Preflight::new(policy.clone(), Facts::default(), false);
        match p.check("update deployment/web", &w, None) {
            Err(Error::Violations { action, enforced }) => {
                assert_eq!(action, "update deployment/web");
                assert!(enforced >= 1);
            }
            other => panic!("{other:?}"),
        }
        let mut forced = Preflight::new(policy, Facts::default(), true);
        assert!(forced.check("update deployment/web", &w, None).is_ok());
    }
}
