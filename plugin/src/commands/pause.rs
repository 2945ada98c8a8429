//! `kubectl rollout-safe pause|resume`: flip `spec.paused`, guarded (`ops::pause`).

use super::args::WorkloadArg;
use super::context::Context;
use crate::cluster::refs::WorkloadRef;
use crate::error::Error;
use crate::exit::Outcome;
use crate::ops::pause::set_paused;

pub async fn run(ctx: &Context, args: WorkloadArg, pause: bool) -> Result<Outcome, Error> {
    let verb = if pause { "pause" } else { "resume" };
    let target = WorkloadRef::parse_deployment(&args.workload, verb)?;
    let cluster = ctx.kube.connect_one_namespace(verb).await?;
    let wl = target.to_string();
    let changed = set_paused(&cluster, &target.name, pause).await?;
    match (changed, pause) {
        (false, true) => println!("{wl} is already paused"),
        (false, false) => println!("{wl} is not paused"),
        (true, true) => println!(
            "{wl} paused: changes to it are recorded but not rolled out until `{}`",
            cluster.suggest("resume", &wl, "")
        ),
        (true, false) => println!(
            "{wl} resumed; follow the rollout with `{}`",
            cluster.suggest("status", &wl, "--watch")
        ),
    }
    Ok(Outcome::Succeeded)
}
