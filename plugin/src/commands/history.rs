//! `kubectl rollout-safe history`: a Deployment's revisions with change-causes, images and times.

use anyhow::anyhow;
use comfy_table::{ContentArrangement, Table, presets};
use serde_json::{Value, json};

use crate::cli::{DataFormat, HistoryArgs, KubeArgs};
use crate::cluster::revisions::{Revision, owned_replica_sets, revisions};
use crate::cluster::{self, Cluster, WorkloadRef};
use crate::display::ts_text;
use crate::exit::{CmdResult, Exit, Failure};

fn revision_json(r: &Revision, with_template: bool) -> Value {
    let images: Vec<Value> = r
        .images
        .iter()
        .map(|(c, i)| json!({"container": c, "image": i}))
        .collect();
    let mut v = json!({
        "revision": r.number,
        "changeCause": r.change_cause,
        "images": images,
        "created": r.created.map(ts_text),
        "replicaSet": r.replica_set,
        "replicas": r.replicas,
        "current": r.current,
    });
    if with_template {
        v["template"] = serde_json::to_value(&r.template).unwrap_or(Value::Null);
    }
    v
}

pub async fn run(kube: &KubeArgs, args: HistoryArgs) -> CmdResult {
    let target = WorkloadRef::parse(&args.target.workload)?;
    target.require_deployment("history")?;
    let cluster = Cluster::connect(kube).await?;
    cluster.reject_all_namespaces("history")?;
    let d = cluster::get_deployment(&cluster, &target.name).await?;
    let rss = owned_replica_sets(&cluster, &d).await?;
    let revs = revisions(&d, &rss);
    let shown: Vec<&Revision> = match args.revision {
        Some(n) => {
            let r = revs.iter().find(|r| r.number == n).ok_or_else(|| {
                let known: Vec<String> = revs.iter().map(|r| r.number.to_string()).collect();
                Failure::usage(format!(
                    "unable to find revision {n} in the history of {target} (revisions: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ))
            })?;
            vec![r]
        }
        None => revs.iter().collect(),
    };
    let detail = args.revision.is_some();
    match args.output {
        DataFormat::Json => {
            let v: Vec<Value> = shown.iter().map(|r| revision_json(r, detail)).collect();
            let out = if detail {
                v.into_iter().next().unwrap_or(Value::Null)
            } else {
                Value::Array(v)
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&out).map_err(anyhow::Error::from)?
            );
        }
        DataFormat::Yaml => {
            let v: Vec<Value> = shown.iter().map(|r| revision_json(r, detail)).collect();
            let out = if detail {
                v.into_iter().next().unwrap_or(Value::Null)
            } else {
                Value::Array(v)
            };
            print!(
                "{}",
                serde_saphyr::to_string(&out).map_err(|e| anyhow!("{e}"))?
            );
        }
        DataFormat::Table if detail => {
            let r = shown[0];
            println!(
                "{target} revision {}{}",
                r.number,
                if r.current { " (current)" } else { "" }
            );
            println!(
                "  change-cause: {}",
                r.change_cause.as_deref().unwrap_or("<none>")
            );
            println!(
                "  created:      {}",
                r.created.map(ts_text).unwrap_or_default()
            );
            println!(
                "  replicaset:   {} ({} replicas)",
                r.replica_set, r.replicas
            );
            for (c, i) in &r.images {
                println!("  image:        {c}={i}");
            }
            let template = serde_saphyr::to_string(&r.template).map_err(|e| anyhow!("{e}"))?;
            println!("  pod template:");
            for line in template.lines() {
                println!("    {line}");
            }
        }
        DataFormat::Table => {
            println!("{target} (namespace {})", cluster.namespace);
            if shown.is_empty() {
                println!("no revisions found (no ReplicaSet controlled by it carries a revision)");
                return Ok(Exit::Success);
            }
            let mut t = Table::new();
            t.load_preset(presets::UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_header(["REVISION", "CHANGE-CAUSE", "IMAGES", "CREATED", "REPLICAS"]);
            for r in &shown {
                let images: Vec<String> =
                    r.images.iter().map(|(c, i)| format!("{c}={i}")).collect();
                t.add_row([
                    format!("{}{}", r.number, if r.current { " (current)" } else { "" }),
                    r.change_cause
                        .clone()
                        .unwrap_or_else(|| "<none>".to_owned()),
                    images.join("\n"),
                    r.created.map(ts_text).unwrap_or_default(),
                    r.replicas.to_string(),
                ]);
            }
            println!("{t}");
        }
    }
    Ok(Exit::Success)
}
