//! How a StatefulSet or a DaemonSet rolling update proceeds, for `plan`: the order in which a
//! StatefulSet's pods are replaced (highest ordinal first, down to the partition, one at a time,
//! each Running and Ready before the next), and how much of a DaemonSet is unavailable at once
//! (`maxUnavailable` nodes without a ready pod, or `maxSurge` nodes running two).

use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use crate::plan::PlanError;
use crate::workload::{Workload, scaled_value};

/// The plan of a StatefulSet or DaemonSet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum SetPlan {
    StatefulSet(StatefulSetPlan),
    DaemonSet(DaemonSetPlan),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetPlan {
    pub replicas: i32,
    /// `RollingUpdate` or `OnDelete`.
    pub strategy: String,
    /// `OrderedReady` or `Parallel`.
    pub pod_management_policy: String,
    pub partition: i32,
    /// The pods a rolling update replaces, in order.
    pub replaced: Vec<String>,
    /// The pods below the partition, which keep their revision.
    pub kept: Vec<String>,
    /// At most this many pods are down at once during the update.
    pub max_unavailable: i32,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetPlan {
    /// `RollingUpdate` or `OnDelete`.
    pub strategy: String,
    /// Nodes it runs on, when known (the live object's `desiredNumberScheduled`).
    pub nodes: Option<i32>,
    /// As written (`1`, `10%`).
    pub max_unavailable: String,
    pub max_surge: String,
    /// Resolved against [`DaemonSetPlan::nodes`], when known.
    pub max_unavailable_nodes: Option<i32>,
    pub max_surge_nodes: Option<i32>,
    pub notes: Vec<String>,
}

fn int_or_string(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => i.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

/// The plan for a StatefulSet or a DaemonSet; a Deployment has [`crate::plan::plan_for`].
pub fn set_plan(w: &Workload) -> Result<SetPlan, PlanError> {
    match w {
        Workload::StatefulSet(s) => Ok(SetPlan::StatefulSet(statefulset_plan(s))),
        Workload::DaemonSet(d) => daemonset_plan(d, w).map(SetPlan::DaemonSet),
        Workload::Deployment(_) => Err(PlanError::Invalid {
            object: w.object_ref().to_string(),
            message: "a Deployment's plan is the rolling-update table".to_owned(),
        }),
    }
}

fn statefulset_plan(s: &StatefulSet) -> StatefulSetPlan {
    let name = s.metadata.name.clone().unwrap_or_default();
    let replicas = s.spec.replicas.unwrap_or(1).max(0);
    let strategy = s.spec.update_strategy.as_ref();
    let strategy_type = strategy
        .and_then(|u| u.type_.clone())
        .unwrap_or_else(|| "RollingUpdate".to_owned());
    let ru = strategy.and_then(|u| u.rolling_update.as_ref());
    let partition = ru.and_then(|r| r.partition).unwrap_or(0).max(0);
    let policy = s
        .spec
        .pod_management_policy
        .clone()
        .unwrap_or_else(|| "OrderedReady".to_owned());
    let max_unavailable = ru
        .and_then(|r| r.max_unavailable.as_ref())
        .and_then(|v| scaled_value(v, replicas, false).ok())
        .unwrap_or(1)
        .max(1);
    let pod = |o: i32| format!("{name}-{o}");
    let mut notes = Vec::new();
    let (replaced, kept) = if strategy_type == "OnDelete" {
        notes.push(format!(
            "OnDelete: a new template replaces no pod by itself; each pod takes it when deleted \
             (update refuses it: switch to RollingUpdate, or delete the pods yourself, {} first)",
            pod(replicas - 1)
        ));
        (Vec::new(), (0..replicas).map(pod).collect())
    } else {
        let replaced: Vec<String> = (partition.min(replicas)..replicas).rev().map(pod).collect();
        let kept: Vec<String> = (0..partition.min(replicas)).map(pod).collect();
        notes.push(format!(
            "highest ordinal first: each pod is deleted and recreated on the new revision, and \
             must be Running and Ready before the next one goes (at most {max_unavailable} down at once)"
        ));
        if partition > 0 {
            notes.push(format!(
                "partition {partition}: ordinals below it ({}) keep their revision, even when recreated",
                if kept.is_empty() {
                    "none".to_owned()
                } else {
                    kept.join(", ")
                }
            ));
        }
        notes.push(
            "a replaced pod that never becomes Ready stops the update, and a rollback does not \
             replace it by itself: rollout-safe deletes it after rolling back"
                .to_owned(),
        );
        if policy == "Parallel" {
            notes.push(
                "Parallel pod management: pods are created and deleted without waiting for each \
                 other, but updates still go one ordinal at a time"
                    .to_owned(),
            );
        }
        (replaced, kept)
    };
    StatefulSetPlan {
        replicas,
        strategy: strategy_type,
        pod_management_policy: policy,
        partition,
        replaced,
        kept,
        max_unavailable,
        notes,
    }
}

fn daemonset_plan(d: &DaemonSet, w: &Workload) -> Result<DaemonSetPlan, PlanError> {
    let strategy = d.spec.update_strategy.as_ref();
    let strategy_type = strategy
        .and_then(|u| u.type_.clone())
        .unwrap_or_else(|| "RollingUpdate".to_owned());
    let ru = strategy.and_then(|u| u.rolling_update.as_ref());
    let unavailable = ru
        .and_then(|r| r.max_unavailable.clone())
        .unwrap_or(IntOrString::Int(1));
    let surge = ru
        .and_then(|r| r.max_surge.clone())
        .unwrap_or(IntOrString::Int(0));
    let nodes = d
        .status
        .as_ref()
        .map(|s| s.desired_number_scheduled)
        .filter(|n| *n > 0);
    let invalid = |field: &str, message: String| PlanError::Invalid {
        object: w.object_ref().to_string(),
        message: format!("spec.updateStrategy.rollingUpdate.{field}: {message}"),
    };
    // Checked even without a node count, so a bad value is reported.
    let probe = nodes.unwrap_or(100);
    let unavailable_n =
        scaled_value(&unavailable, probe, false).map_err(|e| invalid("maxUnavailable", e))?;
    let surge_n = scaled_value(&surge, probe, true).map_err(|e| invalid("maxSurge", e))?;
    let mut notes = Vec::new();
    if strategy_type == "OnDelete" {
        notes.push(
            "OnDelete: a new template replaces no pod by itself; each node's pod takes it when deleted"
                .to_owned(),
        );
    } else if surge_n > 0 {
        notes.push(format!(
            "maxSurge {}: on up to {} node(s) at once the new pod starts beside the old one, which \
             goes once the new one is available; no node is left without a ready pod{}",
            int_or_string(&surge),
            nodes.map_or_else(|| int_or_string(&surge), |_| surge_n.to_string()),
            if unavailable_n > 0 {
                format!(
                    " beyond maxUnavailable {} (nodes whose pod is not ready)",
                    int_or_string(&unavailable)
                )
            } else {
                String::new()
            }
        ));
    } else {
        notes.push(format!(
            "maxUnavailable {}: the old pod is deleted before the new one starts, on at most {} \
             node(s) at a time; those nodes run no ready pod meanwhile",
            int_or_string(&unavailable),
            nodes.map_or_else(
                || format!("{} of the", int_or_string(&unavailable)),
                |_| unavailable_n.max(1).to_string()
            )
        ));
        notes.push(
            "new pods that never become available (a crash loop) stop the update there: \
             the other nodes keep the old pod"
                .to_owned(),
        );
    }
    Ok(DaemonSetPlan {
        strategy: strategy_type,
        nodes,
        max_unavailable: int_or_string(&unavailable),
        max_surge: int_or_string(&surge),
        max_unavailable_nodes: nodes.map(|_| {
            if surge_n > 0 {
                unavailable_n
            } else {
                unavailable_n.max(1)
            }
        }),
        max_surge_nodes: nodes.map(|_| surge_n),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statefulset_order_and_partition() {
        let w = Workload::from_value(&json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db"},
            "spec": {"replicas": 4, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "db", "image": "db:1"}]}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}}
        }))
        .unwrap()
        .unwrap();
        let SetPlan::StatefulSet(p) = set_plan(&w).unwrap() else {
            panic!()
        };
        assert_eq!(p.replaced, ["db-3", "db-2", "db-1"]);
        assert_eq!(p.kept, ["db-0"]);
        assert_eq!(p.max_unavailable, 1);
        assert!(p.notes.iter().any(|n| n.contains("partition 1")));
    }

    #[test]
    fn daemonset_bounds() {
        let ds = |ru: serde_json::Value, nodes: i32| {
            Workload::from_value(&json!({
                "apiVersion": "apps/v1", "kind": "DaemonSet",
                "metadata": {"name": "agent"},
                "spec": {"selector": {"matchLabels": {"app": "agent"}},
                    "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "a", "image": "a:1"}]}},
                    "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": ru}},
                "status": {"desiredNumberScheduled": nodes, "currentNumberScheduled": nodes, "numberMisscheduled": 0, "numberReady": nodes}
            }))
            .unwrap()
            .unwrap()
        };
        let SetPlan::DaemonSet(p) =
            set_plan(&ds(json!({"maxUnavailable": "25%", "maxSurge": 0}), 10)).unwrap()
        else {
            panic!()
        };
        assert_eq!(p.max_unavailable_nodes, Some(2));
        assert!(p.notes[0].contains("at most 2 node(s)"), "{:?}", p.notes);
        let SetPlan::DaemonSet(p) =
            set_plan(&ds(json!({"maxUnavailable": 0, "maxSurge": "10%"}), 10)).unwrap()
        else {
            panic!()
        };
        assert_eq!(p.max_surge_nodes, Some(1));
        assert!(p.notes[0].contains("no node is left without a ready pod"));
        assert!(set_plan(&ds(json!({"maxUnavailable": "x"}), 3)).is_err());
    }
}
