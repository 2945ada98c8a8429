//! `kubectl rollout-safe status`: where a rollout stands, judged by its pods; `--watch` follows
//! it to the end (observes only: it never rolls back — `update` and `undo` do).

use anyhow::anyhow;
use k8s_openapi::jiff::Timestamp;
use rollout_safe_policy::WorkloadKind;
use rollout_safe_policy::judge::{self, Verdict};

use crate::cli::{DataFormat, KubeArgs, StatusArgs};
use crate::cluster::watch::{Ending, snapshot, watch_rollout};
use crate::cluster::{Cluster, WorkloadRef};
use crate::commands::update::{judge_config, watch_options};
use crate::display::{Display, verdict_json, verdict_text};
use crate::exit::{CmdResult, Exit, Failure};

fn print(format: DataFormat, wl: &str, ns: &str, v: &Verdict) -> Result<(), Failure> {
    match format {
        DataFormat::Table => println!("{}", verdict_text(wl, v)),
        DataFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&verdict_json(wl, ns, v)).map_err(anyhow::Error::from)?
        ),
        DataFormat::Yaml => print!(
            "{}",
            serde_saphyr::to_string(&verdict_json(wl, ns, v)).map_err(|e| anyhow!("{e}"))?
        ),
    }
    Ok(())
}

/// How to roll `target` back: `undo` is for Deployments; kubectl's own `rollout undo` also
/// handles StatefulSets and DaemonSets (through their ControllerRevisions).
fn undo_hint(cluster: &Cluster, target: &WorkloadRef) -> String {
    let wl = target.to_string();
    match target.kind {
        WorkloadKind::Deployment => cluster.suggest("undo", &wl, ""),
        _ => format!("kubectl rollout undo {wl} {}", cluster.flags()),
    }
}

/// Exit codes: 0 complete / progressing / paused (without --watch); 1 failed; 4 timed out or
/// interrupted; 2 when kubectl cannot report status for the workload (OnDelete strategy).
pub async fn run(kube: &KubeArgs, args: StatusArgs) -> CmdResult {
    let target = WorkloadRef::parse(&args.target.workload)?;
    let cluster = Cluster::connect(kube).await?;
    cluster.reject_all_namespaces("status")?;
    let wl = target.to_string();
    let ns = cluster.namespace.clone();
    if !args.watch {
        let state = snapshot(&cluster, &target).await?;
        let v = judge::judge(&state, Timestamp::now(), &judge_config(&args.watch_args));
        print(args.output, &wl, &ns, &v)?;
        return Ok(match v {
            Verdict::Failed(_) => {
                eprintln!("to roll back: {}", undo_hint(&cluster, &target));
                Exit::RolloutFailed
            }
            Verdict::Unsupported(_) => Exit::Usage,
            _ => Exit::Success,
        });
    }
    let mut view = Display::new(wl.clone());
    let ending = watch_rollout(
        &cluster,
        &target,
        &watch_options(&args.watch_args),
        &mut view,
    )
    .await?;
    view.finish();
    drop(view);
    let exit = match &ending {
        Ending::Complete(_) | Ending::Paused(_) => Exit::Success,
        Ending::Failed { .. } => {
            eprintln!("to roll back: {}", undo_hint(&cluster, &target));
            Exit::RolloutFailed
        }
        Ending::Unsupported(_) => Exit::Usage,
        Ending::TimedOut(_) => {
            eprintln!(
                "{wl}: timed out after {}s",
                args.watch_args.timeout.as_secs()
            );
            Exit::Timeout
        }
        Ending::Interrupted(_) => {
            eprintln!("interrupted: stopped watching {wl}; nothing was changed.");
            eprintln!(
                "  watch it again: {}",
                cluster.suggest("status", &wl, "--watch")
            );
            eprintln!("  roll it back:   {}", undo_hint(&cluster, &target));
            Exit::Timeout
        }
        Ending::Deleted => {
            return Err(Failure::new(
                Exit::Cluster,
                anyhow!("{wl} was deleted while it was watched"),
            ));
        }
    };
    if let Some(v) = ending.into_verdict() {
        print(args.output, &wl, &ns, &v)?;
    }
    Ok(exit)
}
