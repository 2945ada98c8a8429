//! `kubectl rollout-safe status`: where a rollout stands, judged by its pods; `--watch` follows
//! it to the end (observes only: it never rolls back — `update` and `undo` do).

use clap::Args;
use k8s_openapi::jiff::Timestamp;
use rollout_safe_policy::WorkloadKind;
use rollout_safe_policy::judge::{self, RolloutState, Verdict};
use rollout_safe_policy::strategy::gates::{GATES_ANNOTATION, GatesRecord};

use super::args::{DataFormat, DataOutput, WatchArgs, WorkloadArg, json_text, yaml_text};
use super::context::Context;
use crate::cluster::client::Cluster;
use crate::cluster::refs::WorkloadRef;
use crate::cluster::watch::{Ending, snapshot};
use crate::display::verdict_json;
use crate::error::Error;
use crate::exit::Outcome;
use crate::ops::session::{outcome_of, outcome_of_verdict};
use crate::text::verdict_text;

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 complete (without --watch: also still progressing or paused); 1 failed \
(status never rolls back; `undo` does); 2 bad input, or the workload's strategy has no rollout status (OnDelete); \
4 --watch timed out or was interrupted with Ctrl-C; 5 cluster/API error."
)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: WorkloadArg,
    /// Keep watching until the rollout ends (default: report once).
    #[arg(short = 'w', long)]
    pub watch: bool,
    #[command(flatten)]
    pub watch_args: WatchArgs,
    #[command(flatten)]
    pub output: DataOutput,
}

fn print(
    format: DataFormat,
    wl: &str,
    ns: &str,
    v: &Verdict,
    gates: Option<&GatesRecord>,
) -> Result<(), Error> {
    let data = || {
        let mut j = verdict_json(wl, ns, v);
        if let (Some(g), Some(obj)) = (gates, j.as_object_mut()) {
            obj.insert(
                "gates".into(),
                serde_json::to_value(g).unwrap_or(serde_json::Value::Null),
            );
        }
        j
    };
    match format {
        DataFormat::Table => {
            println!("{}", verdict_text(wl, v));
            if let Some(g) = gates {
                println!("{}", gates_text(g));
            }
        }
        DataFormat::Json => println!("{}", json_text(&data())?),
        DataFormat::Yaml => print!("{}", yaml_text(&data())?),
    }
    Ok(())
}

/// The metric gates a running (or the last) update, canary or blue-green recorded on the
/// workload (`rollout-safe.dev/gates`): `None` when there is no such annotation; a record that
/// cannot be read is said on stderr and left out.
fn recorded_gates(state: &RolloutState) -> Option<GatesRecord> {
    let text = state
        .workload()?
        .metadata()
        .annotations
        .as_ref()?
        .get(GATES_ANNOTATION)?;
    match GatesRecord::from_json(text) {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("warning: {}", crate::error::chain(&e));
            None
        }
    }
}

/// `metric gates (deployment/shop-canary, step 25%):` and a line per gate.
fn gates_text(r: &GatesRecord) -> String {
    let mut out = format!("  metric gates ({}, step {}):", r.workload, r.step);
    for g in &r.gates {
        out.push_str(&format!(
            "\n    {} {}: {} (needs {} {}) · failures {}/{} · checks {}{}",
            g.name,
            g.result.as_deref().unwrap_or("not checked"),
            g.value.as_deref().or(g.reason.as_deref()).unwrap_or("-"),
            g.op,
            g.threshold,
            g.consecutive_failures,
            r.gate_failures,
            g.checks,
            g.at.as_deref()
                .map(|t| format!(" · at {t}"))
                .unwrap_or_default()
        ));
    }
    out
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

pub async fn run(ctx: &Context, args: StatusArgs) -> Result<Outcome, Error> {
    let target = WorkloadRef::parse(&args.target.workload)?;
    let cluster = ctx.kube.connect_one_namespace("status").await?;
    let wl = target.to_string();
    let ns = cluster.namespace.clone();
    let format = args.output.output;
    let watch = args.watch_args.settings();
    if !args.watch {
        let state = snapshot(&cluster, &target).await?;
        let v = judge::judge(&state, Timestamp::now(), &watch.judge());
        print(format, &wl, &ns, &v, recorded_gates(&state).as_ref())?;
        let outcome = outcome_of_verdict(&v);
        if outcome == Outcome::RolloutFailed {
            eprintln!("to roll back: {}", undo_hint(&cluster, &target));
        }
        return Ok(outcome);
    }
    let session = ctx.session(cluster);
    let cluster = &session.cluster;
    let ending = session
        .watch(&target, wl.clone(), &watch.options(&session.interrupt))
        .await?;
    let outcome = outcome_of(&ending, &wl, " while it was watched")?;
    match &ending {
        Ending::Failed { .. } => {
            eprintln!("to roll back: {}", undo_hint(cluster, &target));
        }
        Ending::TimedOut(_) => {
            eprintln!("{wl}: timed out after {}s", watch.timeout.as_secs());
        }
        Ending::Interrupted(_) => {
            eprintln!("interrupted: stopped watching {wl}; nothing was changed.");
            eprintln!(
                "  watch it again: {}",
                cluster.suggest("status", &wl, "--watch")
            );
            eprintln!("  roll it back:   {}", undo_hint(cluster, &target));
        }
        Ending::Complete(_) | Ending::Paused(_) | Ending::Unsupported(_) | Ending::Deleted => {}
    }
    if let Some(v) = ending.into_verdict() {
        // The gates as recorded now, read once more at the end of the watch.
        let gates = snapshot(cluster, &target)
            .await
            .ok()
            .and_then(|state| recorded_gates(&state));
        print(format, &wl, &ns, &v, gates.as_ref())?;
    }
    Ok(outcome)
}
