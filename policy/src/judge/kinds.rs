//! kubectl's `rollout status` viewers, one per workload kind, each feeding
//! [`super::conclude::conclude`].

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::conclude::conclude;
use super::config::{
    CONTROLLER_REVISION_HASH_LABEL, DAEMONSET_TEMPLATE_GENERATION_ANNOTATION,
    DAEMONSET_TEMPLATE_GENERATION_LABEL, JudgeConfig, PROGRESS_DEADLINE_EXCEEDED,
    REVISION_ANNOTATION,
};
use super::sets::{PodSets, StatusView};
use super::state::{RolloutState, annotation, controlled_by, deployment_observed, label};
use super::verdict::{Progress, Verdict};
use crate::rule::WorkloadKind;
use crate::workload::Workload;

/// Judges the rollout in `state` at time `now`.
pub fn judge(state: &RolloutState, now: Timestamp, cfg: &JudgeConfig) -> Verdict {
    let Some(workload) = state.workload() else {
        return Verdict::Progressing(Progress {
            message: "Waiting for the workload to be observed...".to_owned(),
            ..Progress::default()
        });
    };
    let budget = SignedDuration::try_from(cfg.readiness_budget_for(Some(workload)))
        .unwrap_or(SignedDuration::MAX);
    match workload {
        Workload::Deployment(d) => judge_deployment(state, d, now, budget, cfg),
        Workload::StatefulSet(s) => judge_statefulset(state, s, now, budget, cfg),
        Workload::DaemonSet(d) => judge_daemonset(state, d, now, budget, cfg),
    }
}

fn judge_deployment(
    state: &RolloutState,
    d: &Deployment,
    now: Timestamp,
    budget: SignedDuration,
    cfg: &JudgeConfig,
) -> Verdict {
    let name = d.metadata.name.clone().unwrap_or_default();
    let spec = &d.spec;
    let status = d.status.clone().unwrap_or_default();
    let observed = deployment_observed(d);
    let paused = spec.paused.unwrap_or(false);

    let new_rs = state.new_replica_set();
    let owned = state.owned_replica_sets();
    let mut sets = PodSets::default();
    sets.related.push(("Deployment".to_owned(), name.clone()));
    if let Some(rs) = new_rs {
        sets.related.push((
            "ReplicaSet".to_owned(),
            rs.metadata.name.clone().unwrap_or_default(),
        ));
        sets.since = rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
    }
    for pod in state.pods() {
        let Some(rs) = owned
            .iter()
            .find(|rs| controlled_by(&pod.metadata, "ReplicaSet", &rs.metadata))
        else {
            continue;
        };
        let terminating = pod.metadata.deletion_timestamp.is_some();
        if terminating {
            sets.terminating += 1;
        }
        let is_new = new_rs.is_some_and(|n| std::ptr::eq(n, *rs));
        if is_new {
            if !terminating {
                sets.new.push(pod);
            }
        } else {
            sets.old.push(pod);
        }
    }

    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let mut progress = Progress {
        kind: Some(WorkloadKind::Deployment),
        name: name.clone(),
        desired: spec.replicas.unwrap_or(1),
        updated,
        ready: status.ready_replicas.unwrap_or(0),
        available,
        total,
        old_replicas: total.saturating_sub(updated).max(0),
        old_pods: sets.old.len(),
        terminating_pods: sets.terminating,
        new_revision: new_rs
            .and_then(|rs| annotation(&rs.metadata, REVISION_ANNOTATION))
            .or_else(|| annotation(&d.metadata, REVISION_ANNOTATION))
            .map(str::to_owned),
        new_replica_set: new_rs.and_then(|rs| rs.metadata.name.clone()),
        observed,
        paused,
        ..Progress::default()
    };

    // kubectl's DeploymentStatusViewer.
    let conditions = status.conditions.clone().unwrap_or_default();
    let mut view = StatusView {
        complete: false,
        message: String::new(),
        deadline: None,
        replica_failure: None,
        unsupported: false,
    };
    if observed {
        if let Some(c) = conditions
            .iter()
            .find(|c| c.type_.as_deref() == Some("Progressing"))
            && c.reason.as_deref() == Some(PROGRESS_DEADLINE_EXCEEDED)
        {
            let at = c
                .last_update_time
                .as_ref()
                .or(c.last_transition_time.as_ref())
                .map(|t| t.0);
            let mut msg = format!("deployment {name:?} exceeded its progress deadline");
            if let Some(m) = c.message.as_deref().filter(|m| !m.is_empty()) {
                msg.push_str(": ");
                msg.push_str(m);
            }
            view.deadline = Some((msg, at));
        }
        let spec_replicas = spec.replicas;
        view.message = match spec_replicas {
            Some(r) if updated < r => {
                format!(
                    "Waiting for deployment {name:?} rollout to finish: {updated} out of {r} new replicas have been updated..."
                )
            }
            _ if total > updated => format!(
                "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
                total.saturating_sub(updated)
            ),
            _ if available < updated => format!(
                "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
            ),
            _ => {
                view.complete = true;
                format!("deployment {name:?} successfully rolled out")
            }
        };
        if view.complete && cfg.wait_for_old_pods && !sets.old.is_empty() {
            view.complete = false;
            view.message = format!(
                "Waiting for deployment {name:?} rollout to finish: {} old pods are still terminating...",
                sets.old.len()
            );
        }
    } else {
        view.message = "Waiting for deployment spec update to be observed...".to_owned();
    }
    if let Some(c) = conditions.iter().find(|c| {
        c.type_.as_deref() == Some("ReplicaFailure") && c.status.as_deref() == Some("True")
    }) {
        let at = c
            .last_transition_time
            .as_ref()
            .or(c.last_update_time.as_ref())
            .map(|t| t.0);
        let msg = format!(
            "deployment {name:?} cannot create pods: {}",
            c.message
                .as_deref()
                .or(c.reason.as_deref())
                .unwrap_or("ReplicaFailure")
        );
        view.replica_failure = Some((msg, at));
    }
    if paused && !view.complete {
        view.message = format!(
            "deployment {name:?} is paused; resume it to continue the rollout ({})",
            view.message
        );
    }
    progress.message = view.message.clone();
    conclude(
        state,
        WorkloadKind::Deployment,
        view,
        sets,
        progress,
        now,
        budget,
        cfg,
    )
}

fn judge_statefulset(
    state: &RolloutState,
    s: &StatefulSet,
    now: Timestamp,
    budget: SignedDuration,
    cfg: &JudgeConfig,
) -> Verdict {
    let name = s.metadata.name.clone().unwrap_or_default();
    let spec = &s.spec;
    let status = s.status.clone().unwrap_or_default();
    let strategy = spec.update_strategy.as_ref();
    let strategy_type = strategy
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate");
    let update_revision = status.update_revision.clone();

    let mut sets = PodSets::default();
    sets.related.push(("StatefulSet".to_owned(), name.clone()));
    for pod in state
        .pods()
        .filter(|p| controlled_by(&p.metadata, "StatefulSet", &s.metadata))
    {
        let terminating = pod.metadata.deletion_timestamp.is_some();
        if terminating {
            sets.terminating += 1;
        }
        let is_new = update_revision.is_some()
            && label(&pod.metadata, CONTROLLER_REVISION_HASH_LABEL) == update_revision.as_deref();
        if is_new {
            if !terminating {
                sets.new.push(pod);
            }
        } else {
            sets.old.push(pod);
        }
    }

    let generation = s.metadata.generation.unwrap_or(0);
    let observed_generation = status.observed_generation.unwrap_or(0);
    let observed = observed_generation != 0 && generation <= observed_generation;
    let replicas = spec.replicas;
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let mut progress = Progress {
        kind: Some(WorkloadKind::StatefulSet),
        name: name.clone(),
        desired: replicas.unwrap_or(1),
        updated,
        ready,
        available: status.available_replicas.unwrap_or(0),
        total: status.replicas,
        old_replicas: status.replicas.saturating_sub(updated).max(0),
        old_pods: sets.old.len(),
        terminating_pods: sets.terminating,
        new_revision: update_revision.clone(),
        observed,
        ..Progress::default()
    };

    // kubectl's StatefulSetStatusViewer.
    let mut view = StatusView {
        complete: false,
        message: String::new(),
        deadline: None,
        replica_failure: None,
        unsupported: false,
    };
    if strategy_type != "RollingUpdate" {
        view.unsupported = true;
        view.message =
            "rollout status is only available for RollingUpdate strategy type".to_owned();
    } else if !observed {
        view.message = "Waiting for statefulset spec update to be observed...".to_owned();
    } else if let Some(r) = replicas.filter(|r| ready < *r) {
        view.message = format!(
            "Waiting for {} pods to be ready...",
            r.saturating_sub(ready)
        );
    } else if let Some(ru) = strategy.and_then(|u| u.rolling_update.as_ref()) {
        match (replicas, ru.partition) {
            (Some(r), Some(p)) if updated < r.saturating_sub(p) => {
                view.message = format!(
                    "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                    r.saturating_sub(p)
                );
            }
            _ => {
                view.complete = true;
                view.message = format!(
                    "partitioned roll out complete: {updated} new pods have been updated..."
                );
            }
        }
    } else if status.update_revision != status.current_revision {
        view.message = format!(
            "waiting for statefulset rolling update to complete {updated} pods at revision {}...",
            status.update_revision.as_deref().unwrap_or_default()
        );
    } else {
        view.complete = true;
        view.message = format!(
            "statefulset rolling update complete {} pods at revision {}...",
            status.current_replicas.unwrap_or(0),
            status.current_revision.as_deref().unwrap_or_default()
        );
    }
    progress.message = view.message.clone();
    conclude(
        state,
        WorkloadKind::StatefulSet,
        view,
        sets,
        progress,
        now,
        budget,
        cfg,
    )
}

fn judge_daemonset(
    state: &RolloutState,
    ds: &DaemonSet,
    now: Timestamp,
    budget: SignedDuration,
    cfg: &JudgeConfig,
) -> Verdict {
    let name = ds.metadata.name.clone().unwrap_or_default();
    let spec = &ds.spec;
    let status = ds.status.clone().unwrap_or_default();
    let strategy_type = spec
        .update_strategy
        .as_ref()
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate");
    let template_generation =
        annotation(&ds.metadata, DAEMONSET_TEMPLATE_GENERATION_ANNOTATION).map(str::to_owned);

    let mut sets = PodSets::default();
    sets.related.push(("DaemonSet".to_owned(), name.clone()));
    for pod in state
        .pods()
        .filter(|p| controlled_by(&p.metadata, "DaemonSet", &ds.metadata))
    {
        let terminating = pod.metadata.deletion_timestamp.is_some();
        if terminating {
            sets.terminating += 1;
        }
        let is_new = template_generation.is_some()
            && label(&pod.metadata, DAEMONSET_TEMPLATE_GENERATION_LABEL)
                == template_generation.as_deref();
        if is_new {
            if !terminating {
                sets.new.push(pod);
            }
        } else {
            sets.old.push(pod);
        }
    }

    let generation = ds.metadata.generation.unwrap_or(0);
    let observed = generation <= status.observed_generation.unwrap_or(0);
    let desired = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let available = status.number_available.unwrap_or(0);
    let mut progress = Progress {
        kind: Some(WorkloadKind::DaemonSet),
        name: name.clone(),
        desired,
        updated,
        ready: status.number_ready,
        available,
        total: status.current_number_scheduled,
        old_replicas: status
            .current_number_scheduled
            .saturating_sub(updated)
            .max(0),
        old_pods: sets.old.len(),
        terminating_pods: sets.terminating,
        new_revision: template_generation,
        observed,
        ..Progress::default()
    };

    // kubectl's DaemonSetStatusViewer.
    let mut view = StatusView {
        complete: false,
        message: String::new(),
        deadline: None,
        replica_failure: None,
        unsupported: false,
    };
    if strategy_type != "RollingUpdate" {
        view.unsupported = true;
        view.message =
            "rollout status is only available for RollingUpdate strategy type".to_owned();
    } else if !observed {
        view.message = "Waiting for daemon set spec update to be observed...".to_owned();
    } else if updated < desired {
        view.message = format!(
            "Waiting for daemon set {name:?} rollout to finish: {updated} out of {desired} new pods have been updated..."
        );
    } else if available < desired {
        view.message = format!(
            "Waiting for daemon set {name:?} rollout to finish: {available} of {desired} updated pods are available..."
        );
    } else {
        view.complete = true;
        view.message = format!("daemon set {name:?} successfully rolled out");
    }
    progress.message = view.message.clone();
    conclude(
        state,
        WorkloadKind::DaemonSet,
        view,
        sets,
        progress,
        now,
        budget,
        cfg,
    )
}
