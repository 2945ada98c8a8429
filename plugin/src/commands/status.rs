//! `kubectl rollout-safe status`: where a rollout stands, judged by its pods; `--watch` follows
//! it to the end (observes only: it never rolls back — `update` and `undo` do). Without a
//! workload, or with `-A`, the status board: every rollout in scope (`ops::board`), kept live by
//! `--watch`.

use std::io::{IsTerminal, Write};

use clap::Args;
use k8s_openapi::jiff::Timestamp;
use rollout_safe_policy::WorkloadKind;
use rollout_safe_policy::board::{BoardRow, InFlight, age_text, counts, kind_resource};
use rollout_safe_policy::judge::{self, RolloutState, Verdict};
use rollout_safe_policy::strategy::bluegreen::Color;
use rollout_safe_policy::strategy::gates::{GATES_ANNOTATION, GatesRecord};

use super::args::{DataFormat, DataOutput, WatchArgs, json_text, yaml_text};
use super::context::Context;
use crate::cluster::client::Cluster;
use crate::cluster::refs::WorkloadRef;
use crate::cluster::watch::{Ending, snapshot};
use crate::display::verdict_json;
use crate::error::Error;
use crate::exit::Outcome;
use crate::ops::board::{self, BoardView};
use crate::ops::session::{outcome_of, outcome_of_verdict};
use crate::text::{ts_text, verdict_text};

#[derive(Debug, Args)]
#[command(
    after_help = "Without WORKLOAD (or with -A): the status board, every Deployment, StatefulSet and DaemonSet \
in the namespace (-A: every namespace) with its verdict, the blue-green or canary in flight and the age of the \
last change; --watch keeps it live until Ctrl-C or --timeout.

Exit codes: 0 complete (without --watch: also still progressing or paused; the board: nothing failing); 1 failed \
(the board: some rollout is failing; status never rolls back, `undo` does); 2 bad input, or the workload's strategy \
has no rollout status (OnDelete); 4 --watch timed out or was interrupted with Ctrl-C; 5 cluster/API error."
)]
pub struct StatusArgs {
    /// deploy/NAME, sts/NAME or ds/NAME; without it, the status board of the namespace (-A:
    /// of every namespace).
    #[arg(value_name = "WORKLOAD")]
    pub workload: Option<String>,
    /// Keep watching until the rollout ends (the board: keep it live until Ctrl-C or --timeout).
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
    let Some(workload) = args.workload.as_deref() else {
        return board_status(ctx, &args).await;
    };
    if ctx.kube.all_namespaces {
        return Err(Error::usage(format!(
            "status {workload} -A: a workload is in one namespace; leave out -A (with -n NS), or leave out the workload for the status board of every namespace"
        )));
    }
    let target = WorkloadRef::parse(workload)?;
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

/// The status board: once, or live with `--watch`.
async fn board_status(ctx: &Context, args: &StatusArgs) -> Result<Outcome, Error> {
    let cluster = ctx.kube.connect().await?;
    let settings = args.watch_args.settings();
    let mut view = BoardPrinter {
        format: args.output.output,
        scope: (!cluster.all_namespaces).then(|| cluster.namespace.clone()),
        live: args.watch,
        terminal: args.watch && std::io::stdout().is_terminal(),
        last_shown: None,
    };
    if !args.watch {
        return board::snapshot(&cluster, &settings.judge(), &mut view).await;
    }
    let outcome = board::live(
        &cluster,
        &settings.judge(),
        settings.timeout,
        &ctx.interrupt,
        &mut view,
    )
    .await?;
    match outcome {
        Outcome::TimedOut => eprintln!(
            "status board: stopped after --timeout {}s",
            settings.timeout.as_secs()
        ),
        Outcome::Interrupted => eprintln!("status board: stopped (Ctrl-C)"),
        _ => {}
    }
    Ok(outcome)
}

/// Prints boards: a table (live on a terminal: redrawn in place; else a new table whenever a
/// verdict, count or strategy changes), or JSON (one document; live: one line per change).
struct BoardPrinter {
    format: DataFormat,
    /// The namespace, or `None` for every namespace.
    scope: Option<String>,
    live: bool,
    terminal: bool,
    /// The last board shown, without its times (what "changed" means off a terminal).
    last_shown: Option<serde_json::Value>,
}

impl BoardView for BoardPrinter {
    fn show(&mut self, rows: &[BoardRow], now: Timestamp) -> Result<(), Error> {
        let data = board_json(self.scope.as_deref(), rows, now);
        if self.live && self.last_shown.is_none() && !self.terminal {
            eprintln!(
                "status board: watching {} rollout(s); a new board is printed on every change; Ctrl-C stops",
                rows.len()
            );
        }
        if self.live && !self.terminal {
            let timeless = without_times(&data);
            if self.last_shown.as_ref() == Some(&timeless) {
                return Ok(());
            }
            self.last_shown = Some(timeless);
        }
        let mut out = std::io::stdout().lock();
        let written = match (self.format, self.live) {
            (DataFormat::Json, true) => writeln!(
                out,
                "{}",
                serde_json::to_string(&data)
                    .map_err(|e| Error::encode("the status board as JSON", e))?
            ),
            (DataFormat::Json, false) => writeln!(out, "{}", json_text(&data)?),
            (DataFormat::Yaml, live) => {
                write!(
                    out,
                    "{}{}",
                    if live { "---\n" } else { "" },
                    yaml_text(&data)?
                )
            }
            (DataFormat::Table, _) => {
                let table = board_table(self.scope.as_deref(), rows, now);
                if self.terminal {
                    // Home, clear, redraw: the board stays in place.
                    write!(out, "\x1b[H\x1b[2J{table}")
                } else {
                    writeln!(out, "{table}")
                }
            }
        };
        written
            .and_then(|()| out.flush())
            .map_err(|e| Error::encode("the status board (stdout)", e))
    }

    fn note(&mut self, line: &str) {
        eprintln!("{line}");
    }
}

fn workload_name(r: &BoardRow) -> String {
    format!("{}/{}", kind_resource(r.kind), r.name)
}

fn age_of(t: Option<Timestamp>, now: Timestamp) -> Option<u64> {
    t.map(|t| now.duration_since(t).as_secs().max(0).unsigned_abs())
}

fn in_flight_json(f: &InFlight, now: Timestamp) -> serde_json::Value {
    let c = |c: Option<Color>| c.map(Color::as_str);
    match f {
        InFlight::BlueGreen {
            service,
            color,
            phase,
            active,
            target,
            previous,
            switched_at,
            keep_until,
        } => serde_json::json!({
            "type": "blue-green",
            "service": service,
            "color": c(*color),
            "phase": phase.as_str(),
            "active": c(*active),
            "target": c(*target),
            "previous": c(*previous),
            "switchedAt": switched_at.map(ts_text),
            "keepUntil": keep_until.map(ts_text),
            "text": f.text(now),
        }),
        InFlight::Canary {
            stable,
            phase,
            step,
            total,
            images,
        } => serde_json::json!({
            "type": "canary",
            "stable": format!("deployment/{stable}"),
            "phase": phase.as_str(),
            "stepPassed": step,
            "total": total,
            "images": images,
            "text": f.text(now),
        }),
    }
}

/// The board as data: the scope, the counts by state, and a row per workload.
fn board_json(scope: Option<&str>, rows: &[BoardRow], now: Timestamp) -> serde_json::Value {
    let workloads: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let p = r.verdict.progress();
            let failure = r.verdict.failure();
            serde_json::json!({
                "workload": workload_name(r),
                "kind": r.kind.as_str(),
                "namespace": r.namespace,
                "name": r.name,
                "state": r.state.as_str(),
                "summary": r.summary,
                "reason": failure.map(|f| f.reason.as_str()),
                "message": failure.map_or(p.message.as_str(), |f| f.message.as_str()),
                "failingPods": failure.map(|f| f.failing_pods.clone()).unwrap_or_default(),
                "desired": p.desired,
                "updated": p.updated,
                "ready": p.ready,
                "available": p.available,
                "revision": p.new_revision,
                "images": r.images.iter().map(|(c, i)| (c.clone(), serde_json::Value::from(i.as_str()))).collect::<serde_json::Map<_, _>>(),
                "inFlight": r.in_flight.as_ref().map(|f| in_flight_json(f, now)),
                "lastChange": r.last_change.map(ts_text),
                "ageSeconds": age_of(r.last_change, now),
            })
        })
        .collect();
    let counts: serde_json::Map<String, serde_json::Value> = counts(rows)
        .into_iter()
        .map(|(s, n)| (s.as_str().to_owned(), n.into()))
        .collect();
    serde_json::json!({
        "namespace": scope,
        "allNamespaces": scope.is_none(),
        "at": ts_text(now),
        "counts": counts,
        "workloads": workloads,
    })
}

/// The board without the fields that change with the clock alone.
fn without_times(v: &serde_json::Value) -> serde_json::Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("at");
    }
    for w in v["workloads"].as_array_mut().into_iter().flatten() {
        if let Some(o) = w.as_object_mut() {
            o.remove("ageSeconds");
            if let Some(f) = o.get_mut("inFlight").and_then(|f| f.as_object_mut()) {
                f.remove("text");
            }
        }
    }
    v
}

/// `NAMESPACE  WORKLOAD  STATE  DETAIL  IN FLIGHT  AGE` (NAMESPACE with -A only), then the
/// counts.
fn board_table(scope: Option<&str>, rows: &[BoardRow], now: Timestamp) -> String {
    let mut header = vec!["WORKLOAD", "STATE", "DETAIL", "IN FLIGHT", "LAST CHANGE"];
    if scope.is_none() {
        header.insert(0, "NAMESPACE");
    }
    let mut lines: Vec<Vec<String>> = vec![header.into_iter().map(str::to_owned).collect()];
    for r in rows {
        let mut line = vec![
            workload_name(r),
            r.state.as_str().to_owned(),
            r.summary.clone(),
            r.in_flight.as_ref().map_or("-".to_owned(), |f| f.text(now)),
            age_of(r.last_change, now).map_or("?".to_owned(), |s| format!("{} ago", age_text(s))),
        ];
        if scope.is_none() {
            line.insert(0, r.namespace.clone());
        }
        lines.push(line);
    }
    let columns = lines[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in &lines {
        let mut text = String::new();
        for (i, cell) in l.iter().enumerate() {
            if i + 1 == columns {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    let where_ = scope.map_or("every namespace".to_owned(), |ns| format!("namespace {ns}"));
    if rows.is_empty() {
        out = format!("no Deployments, StatefulSets or DaemonSets in {where_}\n");
    } else {
        let counts: Vec<String> = counts(rows)
            .into_iter()
            .map(|(s, n)| format!("{n} {}", s.as_str()))
            .collect();
        out.push_str(&format!(
            "{} rollout(s) in {where_}: {} (as of {})\n",
            rows.len(),
            counts.join(", "),
            ts_text(now)
        ));
    }
    out
}
