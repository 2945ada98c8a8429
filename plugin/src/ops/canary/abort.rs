//! Ending a canary early: the stable replicas restored (and waited for), the canary deleted.

use std::time::Duration;

use rollout_safe_policy::judge::JudgeConfig;
use rollout_safe_policy::strategy::canary::{
    CanaryPhase, CanaryState, abort_needed, abort_total, canary_name,
};
use rollout_safe_policy::strategy::schema::{ann, annotation, replicas};

use crate::cluster::deployments::{
    annotate, delete_deployment, get_deployment, set_replicas, try_get_deployment,
};
use crate::cluster::refs::WorkloadRef;
use crate::cluster::watch::{Ending, WatchOptions};
use crate::error::Error;
use crate::exit::Outcome;
use crate::ops::session::Session;

/// How an abort ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aborted {
    /// The stable Deployment is back to its total; the canary is gone.
    Restored,
    /// The stable Deployment did not come back in time; the canary was deleted anyway.
    NotRestored,
    /// Ctrl-C while the stable replicas came back: the canary is kept (for capacity).
    Interrupted,
}

/// Restores the stable replicas (and waits for them, up to `timeout`), then deletes the canary.
pub async fn abort(
    s: &Session<'_>,
    stable_name: &str,
    timeout: Duration,
) -> Result<Aborted, Error> {
    let cluster = &s.cluster;
    let stable = get_deployment(cluster, stable_name).await?;
    let cname = canary_name(stable_name);
    let canary = try_get_deployment(cluster, &cname).await?;
    let total = abort_total(&stable, canary.as_ref());
    let restored = if replicas(&stable) != total {
        eprintln!("deployment/{stable_name}: restoring {total} replica(s)");
        set_replicas(cluster, stable_name, total).await?;
        let opts = WatchOptions {
            timeout,
            judge: JudgeConfig::default(),
            stop_when_paused: true,
            hold: None,
            interrupt: s.interrupt.clone(),
        };
        let ending = s
            .watch(
                &WorkloadRef::deployment(stable_name),
                format!("deployment/{stable_name} (restoring {total})"),
                &opts,
            )
            .await?;
        match ending {
            Ending::Complete(_) => Aborted::Restored,
            Ending::Interrupted(_) => {
                eprintln!(
                    "interrupted while deployment/{stable_name} comes back to {total} replica(s); deployment/{cname} is kept for capacity"
                );
                eprintln!(
                    "  finish the abort: {}",
                    cluster.suggest("canary abort", &format!("deployment/{stable_name}"), "")
                );
                return Ok(Aborted::Interrupted);
            }
            other => {
                eprintln!(
                    "deployment/{stable_name} is not back to {total} ready replicas ({}); deleting the canary anyway",
                    other
                        .into_verdict()
                        .map(|v| v.to_string())
                        .unwrap_or_default()
                );
                Aborted::NotRestored
            }
        }
    } else {
        Aborted::Restored
    };
    let deleted = delete_deployment(cluster, &cname).await?;
    annotate(
        cluster,
        stable_name,
        &CanaryState::ended(CanaryPhase::Aborted),
    )
    .await?;
    eprintln!(
        "canary aborted: deployment/{stable_name} back to {total} replica(s){}",
        if deleted {
            format!(", deployment/{cname} deleted")
        } else {
            String::new()
        }
    );
    Ok(restored)
}

/// `canary abort deployment/NAME` (the stable Deployment, or its canary), typed.
#[derive(Debug, Clone)]
pub struct CanaryAbort {
    pub name: String,
    /// How long to wait for the stable pods.
    pub timeout: Duration,
}

impl CanaryAbort {
    pub async fn run(&self, s: &Session<'_>) -> Result<Outcome, Error> {
        let cluster = &s.cluster;
        let named = get_deployment(cluster, &self.name).await?;
        let stable_name = annotation(&named, ann::CANARY_OF)
            .unwrap_or(&self.name)
            .to_owned();
        let stable = get_deployment(cluster, &stable_name).await?;
        let canary_exists = try_get_deployment(cluster, &canary_name(&stable_name))
            .await?
            .is_some();
        if !abort_needed(&stable, canary_exists) {
            println!("no canary of deployment/{stable_name} to abort");
            return Ok(Outcome::Succeeded);
        }
        Ok(match abort(s, &stable_name, self.timeout).await? {
            Aborted::Restored => {
                println!("canary of deployment/{stable_name} aborted");
                Outcome::Succeeded
            }
            Aborted::NotRestored => {
                println!("canary of deployment/{stable_name} aborted");
                Outcome::RolloutFailed
            }
            Aborted::Interrupted => Outcome::Interrupted,
        })
    }
}
