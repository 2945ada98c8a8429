//! `kubectl rollout-safe plan`: how a rolling update will proceed.

use comfy_table::{Table, presets};
use rollout_safe_policy::Workload;
use rollout_safe_policy::plan::{RolloutPlan, plan_for};

use crate::cli::{DataFormat, KubeArgs, PlanArgs};
use crate::cluster::{self, Cluster, WorkloadRef};
use crate::exit::{CmdResult, Exit, Failure};
use crate::input;

pub async fn run(kube: &KubeArgs, args: PlanArgs) -> CmdResult {
    let Some(file) = args.file else {
        return from_cluster(
            kube,
            args.workload.as_deref().unwrap_or_default(),
            args.output,
        )
        .await;
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
        return Err(Failure::usage(format!(
            "{}: no Deployment found",
            file.display()
        )));
    }
    match args.output {
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
            println!(
                "{}",
                serde_json::to_string_pretty(&v).map_err(anyhow::Error::from)?
            );
        }
        DataFormat::Yaml => {
            for (n, p) in &plans {
                let v = serde_json::json!({"object": n, "plan": p});
                println!(
                    "---\n{}",
                    serde_saphyr::to_string(&v).map_err(|e| anyhow::anyhow!("{e}"))?
                );
            }
        }
    }
    Ok(if m.errors.is_empty() {
        Exit::Success
    } else {
        Exit::Usage
    })
}

/// `plan WORKLOAD`: the plan of a live Deployment.
async fn from_cluster(kube: &KubeArgs, workload: &str, output: DataFormat) -> CmdResult {
    let target = WorkloadRef::parse(workload)?;
    target.require_deployment("plan")?;
    let cluster = Cluster::connect(kube).await?;
    cluster.reject_all_namespaces("plan")?;
    let d = cluster::get_deployment(&cluster, &target.name).await?;
    let w = Workload::Deployment(Box::new(d));
    let p = plan_for(&w).map_err(|e| Failure::usage(format!("{target}: {e}")))?;
    let name = w.object_ref().to_string();
    match output {
        DataFormat::Table => println!("{}", render(&name, &p)),
        DataFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!([{"object": name, "plan": p}]))
                .map_err(anyhow::Error::from)?
        ),
        DataFormat::Yaml => println!(
            "---\n{}",
            serde_saphyr::to_string(&serde_json::json!({"object": name, "plan": p}))
                .map_err(|e| anyhow::anyhow!("{e}"))?
        ),
    }
    Ok(Exit::Success)
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
