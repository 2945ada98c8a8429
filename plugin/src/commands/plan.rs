//! `kubectl rollout-safe plan`: how a rolling update will proceed.

use std::path::PathBuf;

use clap::Args;
use comfy_table::{Table, presets};
use rollout_safe_policy::Workload;
use rollout_safe_policy::plan::{RolloutPlan, plan_for};

use super::args::{DataFormat, DataOutput, json_text, yaml_text};
use super::context::Context;
use crate::cluster::deployments::get_deployment;
use crate::cluster::refs::WorkloadRef;
use crate::error::Error;
use crate::exit::Outcome;
use crate::input;

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// A Deployment in the cluster (deploy/NAME).
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    pub workload: Option<String>,
    /// A manifest file holding Deployments (`-` for stdin).
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
    for doc in &m.documents {
        match Workload::from_value(&doc.value) {
            Ok(Some(w @ Workload::Deployment(_))) => match plan_for(&w) {
                Ok(p) => plans.push((w.object_ref().to_string(), p)),
                Err(e) => eprintln!("error: {}:{}: {e}", doc.source, doc.line),
            },
            Ok(_) => {}
            Err(e) => eprintln!("error: {}:{}: {e}", doc.source, doc.line),
        }
    }
    for e in &m.errors {
        eprintln!("error: {e}");
    }
    if plans.is_empty() {
        return Err(Error::usage(format!(
            "{}: no Deployment found",
            file.display()
        )));
    }
    match format {
        DataFormat::Table => {
            for (name, p) in &plans {
                println!("{}", render(name, p));
            }
        }
        DataFormat::Json => {
            let v: Vec<_> = plans
                .iter()
                .map(|(n, p)| serde_json::json!({"object": n, "plan": p}))
                .collect();
            println!("{}", json_text(&v)?);
        }
        DataFormat::Yaml => {
            for (n, p) in &plans {
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

/// `plan WORKLOAD`: the plan of a live Deployment.
async fn from_cluster(ctx: &Context, workload: &str, format: DataFormat) -> Result<Outcome, Error> {
    let target = WorkloadRef::parse_deployment(workload, "plan")?;
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
