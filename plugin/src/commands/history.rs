//! `kubectl rollout-safe history`: a workload's revisions with change-causes, images and times: a
//! Deployment's from its ReplicaSets, a StatefulSet's or DaemonSet's from its ControllerRevisions.

use clap::Args;
use comfy_table::{ContentArrangement, Table, presets};
use k8s_openapi::api::apps::v1::{DaemonSet, StatefulSet};
use rollout_safe_policy::WorkloadKind;
use serde_json::{Value, json};

use super::args::{DataFormat, DataOutput, WorkloadArg, json_text, yaml_text};
use super::context::Context;
use crate::cluster::client::Cluster;
use crate::cluster::deployments::get_deployment;
use crate::cluster::refs::WorkloadRef;
use crate::cluster::revisions::{Revision, owned_replica_sets, revisions};
use crate::cluster::sets::{RolledSet, get_set, owned_pods, owned_revisions, set_revisions};
use crate::error::Error;
use crate::exit::Outcome;
use crate::text::ts_text;

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub target: WorkloadArg,
    /// Show this revision only, with its whole pod template.
    #[arg(long, value_name = "N")]
    pub revision: Option<i64>,
    #[command(flatten)]
    pub output: DataOutput,
}

fn revision_json(kind: WorkloadKind, r: &Revision, with_template: bool) -> Value {
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
        "current": r.current,
    });
    if kind == WorkloadKind::Deployment {
        v["replicaSet"] = json!(r.replica_set);
        v["replicas"] = json!(r.replicas);
    } else {
        v["controllerRevision"] = json!(r.replica_set);
        v["pods"] = json!(r.replicas);
    }
    if with_template {
        v["template"] = serde_json::to_value(&r.template).unwrap_or(Value::Null);
    }
    v
}

pub async fn run(ctx: &Context, args: HistoryArgs) -> Result<Outcome, Error> {
    let target = WorkloadRef::parse(&args.target.workload)?;
    let cluster = ctx.kube.connect_one_namespace("history").await?;
    let revs = match target.kind {
        WorkloadKind::Deployment => {
            let d = get_deployment(&cluster, &target.name).await?;
            let rss = owned_replica_sets(&cluster, &d).await?;
            revisions(&d, &rss)
        }
        WorkloadKind::StatefulSet => {
            set_history(
                &cluster,
                &get_set::<StatefulSet>(&cluster, &target.name).await?,
            )
            .await?
        }
        WorkloadKind::DaemonSet => {
            set_history(
                &cluster,
                &get_set::<DaemonSet>(&cluster, &target.name).await?,
            )
            .await?
        }
    };
    let kind = target.kind;
    let (owner_noun, owner_header, count_noun) = if kind == WorkloadKind::Deployment {
        ("replicaset:  ", "REPLICAS", "replicas")
    } else {
        ("revision:    ", "PODS", "pods")
    };
    let shown: Vec<&Revision> = match args.revision {
        Some(n) => {
            let r = revs.iter().find(|r| r.number == n).ok_or_else(|| {
                let known: Vec<String> = revs.iter().map(|r| r.number.to_string()).collect();
                Error::usage(format!(
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
    match args.output.output {
        DataFormat::Json => {
            let v: Vec<Value> = shown
                .iter()
                .map(|r| revision_json(kind, r, detail))
                .collect();
            let out = if detail {
                v.into_iter().next().unwrap_or(Value::Null)
            } else {
                Value::Array(v)
            };
            println!("{}", json_text(&out)?);
        }
        DataFormat::Yaml => {
            let v: Vec<Value> = shown
                .iter()
                .map(|r| revision_json(kind, r, detail))
                .collect();
            let out = if detail {
                v.into_iter().next().unwrap_or(Value::Null)
            } else {
                Value::Array(v)
            };
            print!("{}", yaml_text(&out)?);
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
                "  {owner_noun} {} ({} {count_noun})",
                r.replica_set, r.replicas
            );
            for (c, i) in &r.images {
                println!("  image:        {c}={i}");
            }
            let template = yaml_text(&r.template)?;
            println!("  pod template:");
            for line in template.lines() {
                println!("    {line}");
            }
        }
        DataFormat::Table => {
            println!("{target} (namespace {})", cluster.namespace);
            if shown.is_empty() {
                println!(
                    "no revisions found (no {} controlled by it carries a revision)",
                    if kind == WorkloadKind::Deployment {
                        "ReplicaSet"
                    } else {
                        "ControllerRevision"
                    }
                );
                return Ok(Outcome::Succeeded);
            }
            let mut t = Table::new();
            t.load_preset(presets::UTF8_FULL_CONDENSED)
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_header([
                    "REVISION",
                    "CHANGE-CAUSE",
                    "IMAGES",
                    "CREATED",
                    owner_header,
                ]);
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
    Ok(Outcome::Succeeded)
}

/// A StatefulSet's or DaemonSet's revisions, from the ControllerRevisions it owns.
async fn set_history<K: RolledSet>(cluster: &Cluster, o: &K) -> Result<Vec<Revision>, Error> {
    let crs = owned_revisions(cluster, o).await?;
    let pods = owned_pods(cluster, o).await?;
    Ok(set_revisions(o, &crs, &pods))
}
