//! `kubectl rollout-safe plan`: how a rolling update will proceed: a Deployment's steps, a
//! StatefulSet's pod replacement order, a DaemonSet's availability bound.

use std::path::PathBuf;

use clap::Args;
use comfy_table::{Table, presets};
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use rollout_safe_policy::plan::{RolloutPlan, plan_for};
use rollout_safe_policy::strategy::set_plan::{SetPlan, set_plan};
use rollout_safe_policy::{Workload, WorkloadKind};

use super::args::{DataFormat, DataOutput, json_text, yaml_text};
use super::context::Context;
use crate::cluster::deployments::get_deployment;
use crate::cluster::refs::WorkloadRef;
use crate::cluster::sets::{RolledSet, get_set};
use crate::error::Error;
use crate::exit::Outcome;
use crate::input;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// A workload in the cluster (deploy/NAME, sts/NAME, ds/NAME).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub workload: Option<String>,
    /// A manifest file holding Deployments, StatefulSets or DaemonSets (`-` for stdin).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub output: DataOutput,
}

pub async fn run(ctx: &Context, args: PlanArgs) -> Result<Outcome, Error> {
    let format = args.output.output;
    let Some(file) = args.file else {
        return from_cluster(ctx, args.workload.as_deref().unwrap_or_default(), format).await;
    };
    let m = input::read_manifests(std::slice::from_ref(&file), false);
    let mut plans = Vec::new();
    let mut set_plans = Vec::new();
    for doc in &m.documents {
        match Workload::from_value(&doc.value) {
            Ok(Some(w @ Workload::Deployment(_))) => match plan_for(&w) {
                Ok(p) => plans.push((w.object_ref().to_string(), p)),
                Err(e) => eprintln!("error: {}:{}: {e}", doc.source, doc.line),
            },
            Ok(Some(w)) => match set_plan(&w) {
                Ok(p) => set_plans.push((w.object_ref().to_string(), p)),
                Err(e) => eprintln!("error: {}:{}: {e}", doc.source, doc.line),
            },
            Ok(None) => {}
            Err(e) => eprintln!("error: {}:{}: {e}", doc.source, doc.line),
        }
    }
    for e in &m.errors {
        eprintln!("error: {e}");
    }
    if plans.is_empty() && set_plans.is_empty() {
        return Err(Error::usage(format!(
            "{}: no Deployment, StatefulSet or DaemonSet found",
            file.display()
        )));
    }
    match format {
        DataFormat::Table => {
            for (name, p) in &plans {
                println!("{}", render(name, p));
            }
            for (name, p) in &set_plans {
                println!("{}", render_set(name, p));
            }
        }
        DataFormat::Json => {
            let v: Vec<_> = plans
                .iter()
                .map(|(n, p)| serde_json::json!({"object": n, "plan": p}))
                .chain(
                    set_plans
                        .iter()
                        .map(|(n, p)| serde_json::json!({"object": n, "plan": p})),
                )
                .collect();
            println!("{}", json_text(&v)?);
        }
        DataFormat::Yaml => {
            for (n, p) in &plans {
                let v = serde_json::json!({"object": n, "plan": p});
                println!("---\n{}", yaml_text(&v)?);
            }
            for (n, p) in &set_plans {
                let v = serde_json::json!({"object": n, "plan": p});
                println!("---\n{}", yaml_text(&v)?);
            }
        }
    }
    Ok(if m.errors.is_empty() {
        Outcome::Succeeded
    } else {
        Outcome::UnreadableInput
    })
}

/// `plan sts/NAME|ds/NAME`: the plan of a live StatefulSet or DaemonSet.
async fn set_from_cluster(
    ctx: &Context,
    target: &WorkloadRef,
    format: DataFormat,
) -> Result<Outcome, Error> {
    let cluster = ctx.kube.connect_one_namespace("plan").await?;
    let w = match target.kind {
        WorkloadKind::DaemonSet => get_set::<DaemonSet>(&cluster, &target.name)
            .await?
            .workload(),
        _ => get_set::<StatefulSet>(&cluster, &target.name)
            .await?
            .workload(),
    };
    let p = set_plan(&w).map_err(|e| Error::usage(format!("{target}: {e}")))?;
    let name = w.object_ref().to_string();
    match format {
        DataFormat::Table => println!("{}", render_set(&name, &p)),
        DataFormat::Json => println!(
            "{}",
            json_text(&serde_json::json!([{"object": name, "plan": p}]))?
        ),
        DataFormat::Yaml => println!(
            "---\n{}",
            yaml_text(&serde_json::json!({"object": name, "plan": p}))?
        ),
    }
    Ok(Outcome::Succeeded)
}

/// A StatefulSet's replacement order, or a DaemonSet's availability bound, as text.
pub fn render_set(name: &str, p: &SetPlan) -> String {
    let mut out = String::new();
    match p {
        SetPlan::StatefulSet(s) => {
            out.push_str(&format!(
                "{name}: {} replicas, {} ({}), partition {}\n",
                s.replicas, s.strategy, s.pod_management_policy, s.partition
            ));
            out.push_str(&format!(
                "  replaced, in order: {}\n",
                if s.replaced.is_empty() {
                    "none (until their pods are deleted)".to_owned()
                } else {
                    s.replaced.join(", ")
                }
            ));
            if !s.kept.is_empty() {
                out.push_str(&format!(
                    "  kept on their revision: {}\n",
                    s.kept.join(", ")
                ));
            }
            for n in &s.notes {
                out.push_str(&format!("  - {n}\n"));
            }
        }
        SetPlan::DaemonSet(d) => {
            let nodes = d.nodes.map_or_else(
                || "every matching node".to_owned(),
                |n| format!("{n} node(s)"),
            );
            out.push_str(&format!(
                "{name}: {}, on {nodes}, maxUnavailable {} / maxSurge {}{}\n",
                d.strategy,
                d.max_unavailable,
                d.max_surge,
                match (d.max_unavailable_nodes, d.max_surge_nodes) {
                    (Some(u), Some(0)) => format!(" → at most {u} node(s) without a ready pod at a time"),
                    (Some(u), Some(s)) => format!(
                        " → at most {s} node(s) running two pods and {u} without a ready pod at a time"
                    ),
                    _ => String::new(),
                }
            ));
            for n in &d.notes {
                out.push_str(&format!("  - {n}\n"));
            }
        }
    }
    out.trim_end().to_owned()
}

/// `plan WORKLOAD`: the plan of a live workload.
async fn from_cluster(ctx: &Context, workload: &str, format: DataFormat) -> Result<Outcome, Error> {
    let target = WorkloadRef::parse(workload)?;
    if target.kind != WorkloadKind::Deployment {
        return set_from_cluster(ctx, &target, format).await;
    }
    let cluster = ctx.kube.connect_one_namespace("plan").await?;
    let d = get_deployment(&cluster, &target.name).await?;
    let w = Workload::Deployment(Box::new(d));
    let p = plan_for(&w).map_err(|e| Error::usage(format!("{target}: {e}")))?;
    let name = w.object_ref().to_string();
    match format {
        DataFormat::Table => println!("{}", render(&name, &p)),
        DataFormat::Json => println!(
            "{}",
            json_text(&serde_json::json!([{"object": name, "plan": p}]))?
        ),
        DataFormat::Yaml => println!(
            "---\n{}",
            yaml_text(&serde_json::json!({"object": name, "plan": p}))?
        ),
    }
    Ok(Outcome::Succeeded)
}

pub fn render(name: &str, p: &RolloutPlan) -> String {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED).set_header([
        "STEP",
        "ACTION",
        "OLD",
        "NEW (READY)",
        "TOTAL",
        "AVAILABLE",
    ]);
    for s in &p.steps {
        t.add_row([
            s.step.to_string(),
            s.action.clone(),
            s.old_pods.to_string(),
            format!("{} ({})", s.new_pods, s.new_ready),
            s.total_pods.to_string(),
            s.available.to_string(),
        ]);
    }
    format!(
        "{name}: {} replicas, {}, maxSurge {} / maxUnavailable {} → at most {} pods, at least {} available\n{t}",
        p.replicas, p.strategy, p.max_surge, p.max_unavailable, p.max_pods, p.min_available
    )
}
