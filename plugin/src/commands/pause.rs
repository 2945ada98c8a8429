//! `kubectl rollout-safe pause|resume`: flip `spec.paused`, guarded by a resourceVersion precondition.

use crate::cli::{KubeArgs, WorkloadArg};
use crate::cluster::patch::write_deployment;
use crate::cluster::{self, Cluster, WorkloadRef};
use crate::exit::{CmdResult, Exit};

pub async fn run(kube: &KubeArgs, args: WorkloadArg, pause: bool) -> CmdResult {
    let target = WorkloadRef::parse(&args.workload)?;
    let verb = if pause { "pause" } else { "resume" };
    target.require_deployment(verb)?;
    let cluster = Cluster::connect(kube).await?;
    cluster.reject_all_namespaces(verb)?;
    let wl = target.to_string();
    let d = cluster::get_deployment(&cluster, &target.name).await?;
    let written = write_deployment(&cluster, d, false, false, |cur, _| {
        if cur.spec.paused.unwrap_or(false) == pause {
            return Ok(None);
        }
        let mut new = cur.clone();
        new.spec.paused = if pause { Some(true) } else { None };
        Ok(Some(new))
    })
    .await?;
    match (written, pause) {
        (None, true) => println!("{wl} is already paused"),
        (None, false) => println!("{wl} is not paused"),
        (Some(_), true) => println!(
            "{wl} paused: changes to it are recorded but not rolled out until `{}`",
            cluster.suggest("resume", &wl, "")
        ),
        (Some(_), false) => println!(
            "{wl} resumed; follow the rollout with `{}`",
            cluster.suggest("status", &wl, "--watch")
        ),
    }
    Ok(Exit::Success)
}
