//! How a rolling update will proceed, step by step, from replicas / maxSurge / maxUnavailable.
//!
//! A model of the Deployment controller's `reconcileNewReplicaSet` / `reconcileOldReplicaSets`
//! loop in which every new pod becomes ready before the next sync: the best case, and the
//! bounds (most pods at once, fewest available) hold in every case.

use serde::Serialize;

use crate::workload::{Workload, defaults};

/// Plans longer than this stop early (`complete: false`); nobody reads 10,000 rows.
pub const MAX_STEPS: i32 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanStep {
    pub step: usize,
    pub action: String,
    pub old_pods: i32,
    pub new_pods: i32,
    pub new_ready: i32,
    pub total_pods: i32,
    pub available: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutPlan {
    pub replicas: i32,
    pub strategy: String,
    pub max_surge: i32,
    pub max_unavailable: i32,
    /// The most pods that exist at once (replicas + maxSurge).
    pub max_pods: i32,
    /// The fewest available pods during the update (replicas - maxUnavailable).
    pub min_available: i32,
    pub steps: Vec<PlanStep>,
    /// False when the plan was cut at [`MAX_STEPS`].
    pub complete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("{0}: only Deployments have a rolling-update plan")]
    NotADeployment(String),
    #[error("{object}: {message}")]
    Invalid { object: String, message: String },
}

/// The plan for a Deployment.
pub fn plan_for(w: &Workload) -> Result<RolloutPlan, PlanError> {
    let Workload::Deployment(d) = w else {
        return Err(PlanError::NotADeployment(w.object_ref().to_string()));
    };
    let replicas = d.spec.replicas.unwrap_or(defaults::REPLICAS);
    let Some(fence) = w.rolling_fenceposts() else {
        return Ok(recreate(replicas));
    };
    let (surge, unavailable) = fence.map_err(|(field, message)| PlanError::Invalid {
        object: w.object_ref().to_string(),
        message: format!("{field}: {message}"),
    })?;
    Ok(rolling(replicas, surge, unavailable))
}

fn recreate(replicas: i32) -> RolloutPlan {
    let row = |step, action: &str, old, new, ready| PlanStep {
        step,
        action: action.into(),
        old_pods: old,
        new_pods: new,
        new_ready: ready,
        total_pods: old + new,
        available: old + ready,
    };
    RolloutPlan {
        replicas,
        strategy: "Recreate".into(),
        max_surge: 0,
        max_unavailable: replicas,
        max_pods: replicas,
        min_available: 0,
        steps: vec![
            row(0, "start", replicas, 0, 0),
            row(1, "scale old to 0", 0, 0, 0),
            row(2, &format!("scale new to {replicas}"), 0, replicas, 0),
            row(3, "new pods ready", 0, replicas, replicas),
        ],
        complete: true,
    }
}

/// The rolling plan for already-resolved fenceposts.
pub fn rolling(replicas: i32, surge: i32, unavailable: i32) -> RolloutPlan {
    // Clamp so that the arithmetic below cannot overflow on absurd inputs.
    let replicas = replicas.clamp(0, 1_000_000);
    let surge = surge.clamp(0, 1_000_000);
    let unavailable = unavailable.clamp(0, 1_000_000);
    let max_pods = replicas + surge;
    let min_available = (replicas - unavailable).max(0);
    let (mut old, mut new, mut ready) = (replicas, 0, 0);
    let mut steps = Vec::new();
    let push = |steps: &mut Vec<PlanStep>, action: String, old: i32, new: i32, ready: i32| {
        steps.push(PlanStep {
            step: steps.len(),
            action,
            old_pods: old,
            new_pods: new,
            new_ready: ready,
            total_pods: old + new,
            available: old + ready,
        })
    };
    push(&mut steps, "start".into(), old, new, ready);
    // Each sync either grows the new ReplicaSet, shrinks the old one, or waits for readiness;
    // the bound keeps a degenerate input from looping.
    for _ in 0..(4 * replicas + 8).min(MAX_STEPS) {
        if old == 0 && new == replicas && ready == replicas {
            break;
        }
        let grow = (replicas - new).min(max_pods - (old + new)).max(0);
        if grow > 0 {
            new += grow;
            push(
                &mut steps,
                format!("scale new up to {new}"),
                old,
                new,
                ready,
            );
        }
        let shrink = (old + ready - min_available).min(old).max(0);
        if shrink > 0 {
            old -= shrink;
            push(
                &mut steps,
                format!("scale old down to {old}"),
                old,
                new,
                ready,
            );
        }
        if ready < new {
            ready = new;
            push(&mut steps, format!("{new} new pods ready"), old, new, ready);
        } else if grow == 0 && shrink == 0 {
            break; // cannot progress (e.g. replicas 0)
        }
    }
    let complete = old == 0 && new == replicas && ready == replicas;
    RolloutPlan {
        replicas,
        strategy: "RollingUpdate".into(),
        max_surge: surge,
        max_unavailable: unavailable,
        max_pods,
        min_available,
        steps,
        complete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::resolve_fenceposts;

    fn bounds_hold(p: &RolloutPlan) {
        let last = p.steps.last().unwrap();
        assert_eq!(
            (last.old_pods, last.new_pods, last.new_ready),
            (0, p.replicas, p.replicas),
            "{p:#?}"
        );
        for s in &p.steps {
            assert!(s.total_pods <= p.max_pods, "{s:?}");
            assert!(s.available >= p.min_available, "{s:?}");
        }
    }

    #[test]
    fn ten_at_25_percent() {
        let (surge, unavail) = resolve_fenceposts(None, None, 10).unwrap();
        let p = rolling(10, surge, unavail);
        assert_eq!((p.max_pods, p.min_available), (13, 8));
        assert_eq!(p.steps[1].action, "scale new up to 3");
        assert_eq!(p.steps[2].action, "scale old down to 8");
        bounds_hold(&p);
    }

    #[test]
    fn many_shapes_finish_within_bounds() {
        for replicas in 0..=12 {
            for surge in 0..=3 {
                for unavail in 0..=3 {
                    if surge == 0 && unavail == 0 {
                        continue;
                    }
                    bounds_hold(&rolling(replicas, surge, unavail));
                }
            }
        }
    }

    #[test]
    fn huge_inputs_stop_early() {
        let p = rolling(i32::MAX, i32::MAX, 1);
        assert!(p.complete);
        let p = rolling(1_000_000, 1, 0);
        assert!(!p.complete);
        assert!(p.steps.len() <= 3 * MAX_STEPS as usize + 1);
    }

    #[test]
    fn surge_zero_scales_down_first() {
        let p = rolling(3, 0, 1);
        assert_eq!(p.steps[1].action, "scale old down to 2");
        bounds_hold(&p);
    }
}
