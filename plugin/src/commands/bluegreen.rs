//! `kubectl rollout-safe blue-green`: blue-green on a plain Deployment and Service
//! (`ops::bluegreen`), and the rendering of `blue-green status`.

use std::time::Duration;

use clap::{Args, Subcommand};
use k8s_openapi::jiff::Timestamp;
use rollout_safe_policy::board::age_text;
use rollout_safe_policy::selector::map_text;
use rollout_safe_policy::strategy::bluegreen::{
    Color, Phase, Window, rollback_window, window_next_step,
};
use rollout_safe_policy::strategy::edit::{images_text, template_images};
use rollout_safe_policy::strategy::schema::{ann, annotation_i32, replicas};
use serde_json::{Value, json};

use super::args::{
    DataFormat, DataOutput, GateArgs, GitopsArgs, ImageArgs, PolicyArg, WatchArgs, WorkloadArg,
    json_text, parse_duration, yaml_text,
};
use super::context::Context;
use crate::cluster::client::Cluster;
use crate::cluster::refs::WorkloadRef;
use crate::error::Error;
use crate::exit::Outcome;
use crate::ops::bluegreen::actions::{BlueGreenFinish, BlueGreenRollback};
use crate::ops::bluegreen::common::BlueGreen;
use crate::ops::bluegreen::status::{BlueGreenReport, ColourReport, inspect};
use crate::text::ts_text;

// Not `Option<BlueGreenStart>`: clap 4.6 never fills a flattened `Option<T>` whose `T` flattens
// other structs (no implicit group is made for it), so the start arguments are optional fields
// made required unless a subcommand is given.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BlueGreenArgs {
    #[command(subcommand)]
    pub action: Option<BlueGreenAction>,
    #[command(flatten)]
    pub start: BlueGreenStart,
}

/// `blue-green WORKLOAD --service SVC --image C=IMG…`: the new colour is a second Deployment
/// (`NAME-green`, or the original one when green is live) with a `rollout-safe.dev/color` label;
/// the Service's selector is switched once every new pod stayed ready for `--bake`.
#[derive(Debug, Args)]
pub struct BlueGreenStart {
    /// deploy/NAME: the original Deployment (or either colour's).
    #[arg(required = true, value_name = "WORKLOAD")]
    pub workload: Option<String>,
    /// The Service whose selector is switched.
    #[arg(long, required = true)]
    pub service: Option<String>,
    #[command(flatten)]
    pub images: ImageArgs,
    /// How long every new pod must stay ready before the switch.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub bake: Duration,
    /// How long the old colour stays scaled after the switch (rollback window).
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub keep_old: Duration,
    /// Return once the switch is verified (for CI): the old colour stays scaled until the window
    /// (--keep-old) recorded on the Service is over; `blue-green finish` scales it down, and so
    /// does the next blue-green of the workload once the window is over.
    #[arg(long)]
    pub detach: bool,
    /// How long the Service's EndpointSlices may take to show only the new colour after the
    /// switch (else the switch is undone).
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub verify_timeout: Duration,
    /// Bring up the new colour even when its spec violates enforced rules.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub watch: WatchArgs,
    /// Boxed: the flags are many, and clap's command enum holds every command's args.
    #[command(flatten)]
    pub gates: Box<GateArgs>,
    #[command(flatten)]
    pub policy: PolicyArg,
    #[command(flatten)]
    pub gitops: GitopsArgs,
}

#[derive(Debug, Subcommand)]
pub enum BlueGreenAction {
    /// Switch the Service back to the old colour (scaling it back up first if it was scaled down).
    Rollback(BlueGreenActionArgs),
    /// Scale the old colour down now (after checking the metric gates the run recorded, and
    /// any --gate given here, once more).
    Finish(BlueGreenFinishArgs),
    /// Where the blue-green stands.
    Status(BlueGreenStatusArgs),
}

#[derive(Debug, Clone, Args)]
pub struct BlueGreenActionArgs {
    #[command(flatten)]
    pub target: WorkloadArg,
    /// Give up waiting for pods after this long (e.g. 90s, 5m): exit 4.
    #[arg(long, value_parser = parse_duration, default_value = "10m")]
    pub timeout: Duration,
    /// How long the Service's EndpointSlices may take to show the switched-to colour.
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub verify_timeout: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct BlueGreenFinishArgs {
    #[command(flatten)]
    pub action: BlueGreenActionArgs,
    /// Finish even when a metric gate has no answer (a failing gate still refuses).
    #[arg(long)]
    pub ignore_inconclusive_gates: bool,
    /// Boxed: the flags are many, and clap's command enum holds every command's args.
    #[command(flatten)]
    pub gates: Box<GateArgs>,
}

#[derive(Debug, Args)]
pub struct BlueGreenStatusArgs {
    #[command(flatten)]
    pub target: WorkloadArg,
    #[command(flatten)]
    pub output: DataOutput,
}

pub async fn run(ctx: &Context, args: BlueGreenArgs) -> Result<Outcome, Error> {
    match (args.action, args.start) {
        (Some(BlueGreenAction::Rollback(a)), _) => {
            let (cluster, name) = connect_to(ctx, &a.target, "blue-green rollback").await?;
            BlueGreenRollback {
                name,
                timeout: a.timeout,
                verify_timeout: a.verify_timeout,
            }
            .run(&ctx.session(cluster))
            .await
        }
        (Some(BlueGreenAction::Finish(a)), _) => {
            let gates = a.gates.settings()?;
            let (cluster, name) = connect_to(ctx, &a.action.target, "blue-green finish").await?;
            BlueGreenFinish {
                name,
                gates,
                ignore_inconclusive_gates: a.ignore_inconclusive_gates,
            }
            .run(&ctx.session(cluster))
            .await
        }
        (Some(BlueGreenAction::Status(a)), _) => status(ctx, a).await,
        (None, s) => start(ctx, s).await,
    }
}

/// Connects, then names the Deployment (in this order, as `blue-green` always did).
async fn connect_to(
    ctx: &Context,
    target: &WorkloadArg,
    command: &str,
) -> Result<(Cluster, String), Error> {
    let cluster = ctx.kube.connect().await?;
    let name = WorkloadRef::parse_deployment(&target.workload, command)?.name;
    cluster.reject_all_namespaces(command)?;
    Ok((cluster, name))
}

async fn start(ctx: &Context, a: BlueGreenStart) -> Result<Outcome, Error> {
    let usage = || {
        Error::usage(
            "blue-green needs WORKLOAD --service SVC --image C=IMG, or one of rollback|finish|status WORKLOAD",
        )
    };
    let workload = a.workload.clone().ok_or_else(usage)?;
    let service = a.service.clone().ok_or_else(usage)?;
    let images = a.images.parse()?;
    let policy = a.policy.load()?;
    let gates = a.gates.settings()?;
    let (cluster, name) = connect_to(ctx, &WorkloadArg { workload }, "blue-green").await?;
    BlueGreen {
        name,
        service,
        images,
        bake: a.bake,
        keep_old: a.keep_old,
        detach: a.detach,
        verify_timeout: a.verify_timeout,
        force: a.force,
        watch: a.watch.settings(),
        policy,
        gates,
        gitops: a.gitops.settings(),
    }
    .run(&ctx.session(cluster))
    .await
}

async fn status(ctx: &Context, a: BlueGreenStatusArgs) -> Result<Outcome, Error> {
    let (cluster, name) = connect_to(ctx, &a.target, "blue-green status").await?;
    let report = inspect(&ctx.session(cluster), &name).await?;
    match a.output.output {
        DataFormat::Json => println!("{}", json_text(&status_json(&report, Timestamp::now()))?),
        DataFormat::Yaml => print!("{}", yaml_text(&status_json(&report, Timestamp::now()))?),
        DataFormat::Table => print!("{}", status_table(&report, Timestamp::now())),
    }
    Ok(Outcome::Succeeded)
}

fn color_json(c: &ColourReport, live: Option<Color>) -> Value {
    match &c.object {
        None => json!({"color": c.color.as_str(), "deployment": c.deployment, "exists": false}),
        Some(d) => {
            let st = d.status.clone().unwrap_or_default();
            json!({
                "color": c.color.as_str(),
                "deployment": c.deployment,
                "exists": true,
                "live": live == Some(c.color),
                "replicas": replicas(d),
                "readyReplicas": st.ready_replicas.unwrap_or(0),
                "updatedReplicas": st.updated_replicas.unwrap_or(0),
                "images": template_images(&d.spec.template).into_iter().map(|(c, i)| format!("{c}={i}")).collect::<Vec<_>>(),
                "restoreReplicas": annotation_i32(d, ann::RESTORE_REPLICAS),
            })
        }
    }
}

/// The rollback window as data: open (seconds left), over, unbounded, or none; whether a
/// detached run left it; and what to run next.
fn window_json(r: &BlueGreenReport, now: Timestamp) -> Value {
    let window = rollback_window(&r.state, now);
    let (state, left, until) = match window {
        Window::NotSwitched => return Value::Null,
        Window::Open { until, left } => ("open", Some(left.as_secs()), Some(until)),
        Window::Unbounded => ("unbounded", None, None),
        Window::Over { ended } => ("over", Some(0), Some(ended)),
    };
    json!({
        "state": state,
        "secondsLeft": left,
        "until": until.map(ts_text),
        "detached": r.state.detached,
        "next": window_next_step(window, &r.finish_command, &r.rollback_command),
    })
}

fn status_json(r: &BlueGreenReport, now: Timestamp) -> Value {
    let state = &r.state;
    json!({
        "window": window_json(r, now),
        "workload": format!("deployment/{}", r.base),
        "namespace": r.namespace,
        "service": r.service,
        "selector": r.selector,
        "live": r.live.map(Color::as_str),
        "phase": state.phase.map(Phase::as_str),
        "active": state.active.map(Color::as_str),
        "previous": state.previous.map(Color::as_str),
        "target": state.target.map(Color::as_str),
        "images": state.images,
        "switchedAt": state.switched_at.map(ts_text),
        "keepUntil": state.keep_until.map(ts_text),
        "colors": r.colours.iter().map(|c| color_json(c, r.live)).collect::<Vec<_>>(),
        "endpoints": {"ready": r.endpoints.ready.len(), "readyLive": r.endpoints.ready_wanted.len(),
            "readyOther": r.endpoints.ready_other.iter().collect::<Vec<_>>(), "notReady": r.endpoints.not_ready.len()},
    })
}

fn status_table(r: &BlueGreenReport, now: Timestamp) -> String {
    let state = &r.state;
    let color = |c: Option<Color>| c.map_or("?", Color::as_str);
    let time = |t: Option<Timestamp>| t.map_or("?".into(), ts_text);
    let mut out = format!(
        "blue-green of deployment/{} behind service/{} (namespace {})\n",
        r.base, r.service, r.namespace
    );
    let phase = state.phase.map_or("none", Phase::as_str);
    let detail = match state.phase {
        Some(Phase::Switched) => format!(
            " — traffic on {} since {}, {} kept until {}{}",
            color(state.active),
            time(state.switched_at),
            color(state.previous),
            time(state.keep_until),
            match state.keep_until {
                Some(t) if t > now => format!(" (in {}s)", t.duration_since(now).as_secs()),
                Some(_) => " (window over: `blue-green finish` or a re-run scales it down)".into(),
                None => String::new(),
            }
        ),
        Some(Phase::Deploying) => format!(
            " — {} coming up beside {} (no traffic yet), images {}",
            color(state.target),
            color(state.active),
            state.images.as_deref().unwrap_or("?")
        ),
        Some(Phase::Finished) => format!(
            " — traffic on {} since {}, {} scaled down",
            color(state.active),
            time(state.switched_at),
            color(state.previous)
        ),
        Some(Phase::Abandoned) => {
            format!(" — {} was abandoned before any switch", color(state.target))
        }
        Some(Phase::RolledBack) => format!(
            " — back on {} since {}",
            color(state.active),
            time(state.switched_at)
        ),
        _ => String::new(),
    };
    out.push_str(&format!("  phase:     {phase}{detail}\n"));
    let window = rollback_window(state, now);
    match window {
        Window::Open { until, left } => out.push_str(&format!(
            "  window:    {} left (until {}){}\n",
            age_text(left.as_secs()),
            ts_text(until),
            if state.detached {
                "; detached: nothing watches it"
            } else {
                ""
            }
        )),
        Window::Over { ended } => out.push_str(&format!(
            "  window:    over since {}; {} is still scaled\n",
            ts_text(ended),
            color(state.previous)
        )),
        Window::Unbounded | Window::NotSwitched => {}
    }
    if let Some(next) = window_next_step(window, &r.finish_command, &r.rollback_command) {
        out.push_str(&format!("  next:      {next}\n"));
    }
    out.push_str(&format!("  selector:  {}\n", map_text(&r.selector)));
    for c in &r.colours {
        let mark = if r.live == Some(c.color) {
            "  ← live"
        } else {
            ""
        };
        let label = format!("{}:", c.color);
        match &c.object {
            None => out.push_str(&format!(
                "  {label:<10} deployment/{} (not created){mark}\n",
                c.deployment
            )),
            Some(d) => {
                let st = d.status.clone().unwrap_or_default();
                out.push_str(&format!(
                    "  {label:<10} deployment/{}: {}/{} ready, {}{mark}\n",
                    c.deployment,
                    st.ready_replicas.unwrap_or(0),
                    replicas(d),
                    images_text(&template_images(&d.spec.template))
                ));
            }
        }
    }
    out.push_str(&format!(
        "  endpoints: {}\n",
        r.endpoints.summary(r.live.map_or("live", Color::as_str))
    ));
    match state.phase {
        Some(Phase::Switched) => {
            out.push_str(&format!("  finish:    {}\n", r.finish_command));
            out.push_str(&format!("  rollback:  {}\n", r.rollback_command));
        }
        Some(Phase::Deploying) => {
            out.push_str(&format!("  abandon:   {}\n", r.rollback_command));
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::app::{App, Command};
    use clap::Parser;
    use rollout_safe_policy::strategy::bluegreen::BgState;
    use rollout_safe_policy::strategy::endpoints::EndpointReport;
    use std::collections::BTreeMap;

    #[test]
    fn command_lines() {
        let c = App::try_parse_from([
            "x",
            "blue-green",
            "deploy/shop",
            "--service",
            "shop",
            "--image",
            "app=shop:2",
            "--bake",
            "5s",
            "--keep-old",
            "0",
        ])
        .unwrap();
        let Command::BlueGreen(b) = c.command else {
            panic!()
        };
        let s = b.start;
        assert_eq!(s.workload.as_deref(), Some("deploy/shop"));
        assert_eq!(s.bake, Duration::from_secs(5));
        assert_eq!(s.keep_old, Duration::ZERO);
        for action in ["rollback", "finish", "status"] {
            let c = App::try_parse_from(["x", "blue-green", action, "deploy/shop", "-n", "shop"])
                .unwrap();
            let Command::BlueGreen(b) = c.command else {
                panic!()
            };
            assert!(b.start.workload.is_none() && b.action.is_some(), "{action}");
        }
        assert!(
            App::try_parse_from(["x", "blue-green", "deploy/shop", "--image", "app=x:1"]).is_err()
        );
        let c = App::try_parse_from(["x", "blue-green", "status", "deploy/shop", "-o", "json"])
            .unwrap();
        let Command::BlueGreen(b) = c.command else {
            panic!()
        };
        assert!(matches!(
            b.action,
            Some(BlueGreenAction::Status(BlueGreenStatusArgs {
                output: DataOutput {
                    output: DataFormat::Json
                },
                ..
            }))
        ));
    }

    #[test]
    fn status_renders_the_window() {
        let now: Timestamp = "2026-11-22T23:10:24Z".parse().unwrap();
        let r = BlueGreenReport {
            base: "shop".into(),
            namespace: "web".into(),
            service: "shop".into(),
            selector: BTreeMap::from([
                ("app".into(), "shop".into()),
                ("rollout-safe.dev/color".into(), "green".into()),
            ]),
            state: BgState {
                phase: Some(Phase::Switched),
                active: Some(Color::Green),
                previous: Some(Color::Blue),
                keep_until: Some("2026-11-22T23:20:24Z".parse().unwrap()),
                ..BgState::default()
            },
            live: Some(Color::Green),
            colours: vec![
                ColourReport {
                    color: Color::Blue,
                    deployment: "shop".into(),
                    object: None,
                },
                ColourReport {
                    color: Color::Green,
                    deployment: "shop-green".into(),
                    object: None,
                },
            ],
            endpoints: EndpointReport::default(),
            finish_command: "kubectl rollout-safe blue-green finish deployment/shop -n web".into(),
            rollback_command: "kubectl rollout-safe blue-green rollback deployment/shop -n web"
                .into(),
        };
        let t = status_table(&r, now);
        assert!(
            t.contains("  phase:     switched — traffic on green since ?, blue kept until 2026-11-22T23:20:24Z (in 600s)"),
            "{t}"
        );
        assert!(
            t.contains("  green:     deployment/shop-green (not created)  ← live"),
            "{t}"
        );
        assert!(
            t.contains("  finish:    kubectl rollout-safe blue-green finish"),
            "{t}"
        );
        assert!(
            t.contains("  window:    10m left (until 2026-11-22T23:20:24Z)\n"),
            "{t}"
        );
        assert!(
            t.contains("  next:      `kubectl rollout-safe blue-green finish deployment/shop -n web` scales the old colour down now"),
            "{t}"
        );
        let j = status_json(&r, now);
        assert_eq!(j["window"]["state"], "open");
        assert_eq!(j["window"]["secondsLeft"], 600);
        assert_eq!(j["window"]["detached"], false);
        // Once the window is over, status says so and what to run.
        let later: Timestamp = "2026-11-22T23:30:00Z".parse().unwrap();
        let t = status_table(&r, later);
        assert!(
            t.contains("  window:    over since 2026-11-22T23:20:24Z; blue is still scaled"),
            "{t}"
        );
        assert!(
            t.contains("  next:      the window is over: `kubectl rollout-safe blue-green finish"),
            "{t}"
        );
        assert_eq!(status_json(&r, later)["window"]["state"], "over");
        assert_eq!(j["live"], "green");
        assert_eq!(j["colors"][1]["exists"], false);
        assert_eq!(j["keepUntil"], "2026-11-22T23:20:24Z");
    }
}
