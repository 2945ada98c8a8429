//! `kubectl rollout-safe audit`: the policy over manifests (offline) or live workloads.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use rollout_safe_policy::{Document, Notice, RolloutPolicy, Severity, audit::AuditReport};

use super::args::PolicyArg;
use super::context::Context;
use crate::cluster::client::Cluster;
use crate::cluster::inventory::list_documents;
use crate::error::{Error, chain};
use crate::exit::Outcome;
use crate::{input, report};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    Table,
    Json,
    Sarif,
    Junit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Any finding fails the audit.
    Warn,
    /// Only findings of rules in enforce mode fail it.
    Enforce,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Files or directories to audit; `-` reads stdin. Repeatable.
    #[arg(
        short = 'f',
        long = "filename",
        value_name = "PATH",
        required_unless_present = "cluster"
    )]
    pub files: Vec<PathBuf>,
    /// Recurse into directories.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Audit the live workloads of the cluster instead of files.
    #[arg(long, conflicts_with = "files")]
    pub cluster: bool,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = AuditFormat::Table)]
    pub output: AuditFormat,
    #[command(flatten)]
    pub policy: PolicyArg,
    /// The least severe finding that makes the audit fail (exit 3).
    #[arg(long, value_enum, default_value_t = FailOn::Enforce)]
    pub fail_on: FailOn,
}

pub async fn run(ctx: &Context, args: AuditArgs) -> Result<Outcome, Error> {
    let policy = args.policy.load()?;
    let rep = if args.cluster {
        cluster_report(&ctx.kube.connect().await?, &policy).await?
    } else {
        let m = input::read_manifests(&args.files, args.recursive);
        rollout_safe_policy::audit(&policy, &m.documents, m.errors)
    };
    Ok(emit(&rep, args.output, args.fail_on))
}

/// `audit --cluster`: the live Deployments, StatefulSets and DaemonSets of the namespace (`-n`,
/// else the context's) or of every namespace (`-A`), audited together with the live
/// PodDisruptionBudgets, HorizontalPodAutoscalers and Services (RS601, RS405, RS603). Each
/// object's location is `cluster:NAMESPACE/KIND/NAME`. Kinds the user may not list are skipped
/// with a note (workload kinds: a cluster error when none can be listed).
async fn cluster_report(cluster: &Cluster, policy: &RolloutPolicy) -> Result<AuditReport, Error> {
    let scope = if cluster.all_namespaces {
        "all namespaces".to_owned()
    } else {
        format!("namespace {}", cluster.namespace)
    };
    let mut docs: Vec<Document> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut workload_errors = Vec::new();
    let workloads = [
        (
            "deployments.apps",
            list_documents::<Deployment>(cluster, "Deployment", "deployments.apps").await,
        ),
        (
            "statefulsets.apps",
            list_documents::<StatefulSet>(cluster, "StatefulSet", "statefulsets.apps").await,
        ),
        (
            "daemonsets.apps",
            list_documents::<DaemonSet>(cluster, "DaemonSet", "daemonsets.apps").await,
        ),
    ];
    for (resource, listed) in workloads {
        match listed {
            Ok(d) => docs.extend(d),
            Err(e) => {
                notes.push(format!("{resource} not audited: {}", chain(&e)));
                workload_errors.push(e);
            }
        }
    }
    if workload_errors.len() == 3 {
        return Err(workload_errors.remove(0));
    }
    let extra = [
        (
            "poddisruptionbudgets.policy",
            list_documents::<PodDisruptionBudget>(
                cluster,
                "PodDisruptionBudget",
                "poddisruptionbudgets.policy",
            )
            .await,
        ),
        (
            "horizontalpodautoscalers.autoscaling",
            list_documents::<HorizontalPodAutoscaler>(
                cluster,
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers.autoscaling",
            )
            .await,
        ),
        (
            "services",
            list_documents::<Service>(cluster, "Service", "services").await,
        ),
    ];
    for (resource, listed) in extra {
        match listed {
            Ok(d) => docs.extend(d),
            Err(e) => notes.push(format!(
                "{resource} not read (the rules that use them are skipped or may over-report): {}",
                chain(&e)
            )),
        }
    }
    let mut rep = rollout_safe_policy::audit(policy, &docs, Vec::new());
    for message in notes {
        rep.notices.push(Notice {
            file: format!("cluster ({scope})"),
            line: 0,
            message,
        });
    }
    Ok(rep)
}

/// Prints the report and says how the audit ended: unreadable input (exit 2), else findings at
/// or above the fail level (exit 3), else success.
pub fn emit(rep: &AuditReport, format: AuditFormat, fail_on: FailOn) -> Outcome {
    let fail_at = match fail_on {
        FailOn::Warn => Severity::Warning,
        FailOn::Enforce => Severity::Error,
    };
    let text = match format {
        AuditFormat::Table => report::table(rep),
        AuditFormat::Json => report::json(rep),
        AuditFormat::Sarif => report::sarif(rep),
        AuditFormat::Junit => report::junit(rep, fail_at),
    };
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a message.
    let _ = writeln!(stdout, "{}", text.trim_end());
    if format != AuditFormat::Table {
        for e in &rep.errors {
            eprintln!("error: {e}");
        }
        eprintln!("{}", report::summary(rep));
    }
    if !rep.errors.is_empty() {
        Outcome::UnreadableInput
    } else if rep.findings.iter().any(|f| f.finding.severity >= fail_at) {
        Outcome::Violations
    } else {
        Outcome::Succeeded
    }
}
