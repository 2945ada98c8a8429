//! `kubectl rollout-safe audit`: the policy over manifests (offline) or live workloads.

use std::io::Write;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::{ArgGroup, Args, ValueEnum};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use rollout_safe_policy::audit::audit_result;
use rollout_safe_policy::{AuditResult, Document, Notice, RolloutPolicy, Severity};
use wildmatch::WildMatch;

use super::args::PolicyArg;
use super::context::Context;
use crate::audit_files::{audit_files, default_jobs};
use crate::cluster::client::Cluster;
use crate::cluster::inventory::list_documents;
use crate::cluster::reports::{ReportResource, apply_reports};
use crate::error::{Error, chain};
use crate::exit::Outcome;
use crate::policy_report::{MANAGED_BY_SELECTOR, ReportApi, reports};
use crate::{input, report};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    Table,
    Json,
    Sarif,
    Junit,
    /// PolicyReport objects, one per workload (with --cluster).
    Policyreport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Any finding fails the audit.
    Warn,
    /// Only findings of rules in enforce mode fail it.
    Enforce,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("input").required(true).multiple(true).args(["paths", "files", "cluster"])))]
pub struct AuditArgs {
    /// Files or directories to audit, as with -f (pre-commit passes file names this way).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Files or directories to audit; `-` reads stdin. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Recurse into directories.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Leave out paths matching GLOB (`*` also matches `/`), matched against each path as
    /// walked and against its file name, e.g. `--exclude 'tests/*' --exclude '*.json'`. Repeatable.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Succeed when no workload is found (by default an audit that finds none exits 2, since
    /// it checked nothing).
    #[arg(long)]
    pub allow_empty: bool,
    /// Audit the live workloads of the cluster instead of files.
    #[arg(long, conflicts_with_all = ["files", "paths", "recursive", "exclude"])]
    pub cluster: bool,
    /// Output format of the findings.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = AuditFormat::Table)]
    pub output: AuditFormat,
    #[command(flatten)]
    pub policy: PolicyArg,
    /// The least severe finding that makes the audit fail (exit 3).
    #[arg(long, value_enum, default_value_t = FailOn::Enforce)]
    pub fail_on: FailOn,
    /// Threads reading and checking files (default: one per core).
    #[arg(short = 'j', long, value_name = "N")]
    pub jobs: Option<NonZeroUsize>,
    /// The report API of `-o policyreport` and `--write-reports`: wgpolicyk8s.io/v1alpha2
    /// PolicyReports, or their announced successor openreports.io/v1alpha1 Reports.
    #[arg(long, value_enum, default_value_t = ReportApi::Wgpolicyk8s)]
    pub report_api: ReportApi,
    /// With --cluster: apply a report per workload to the cluster (server-side apply, field
    /// manager rollout-safe), replacing the previous run's and deleting those of workloads
    /// that are gone.
    #[arg(long, requires = "cluster")]
    pub write_reports: bool,
}

pub async fn run(ctx: &Context, args: AuditArgs) -> Result<Outcome, Error> {
    if args.output == AuditFormat::Policyreport && !args.cluster {
        return Err(Error::usage(
            "-o policyreport needs --cluster: reports are named after and scoped to live workloads (their UIDs)",
        ));
    }
    let policy = args.policy.load()?;
    if args.cluster {
        let cluster = ctx.kube.connect().await?;
        let rep = cluster_report(&cluster, &policy).await?;
        let now = std::time::SystemTime::now();
        let objects = reports(&rep, &policy, args.report_api, now);
        if args.write_reports {
            let api = args.report_api;
            let resource = ReportResource {
                group: api.group(),
                version: api.version(),
                kind: api.kind(),
                plural: api.plural(),
                crd: api.crd(),
                managed_by: MANAGED_BY_SELECTOR,
            };
            let written = apply_reports(&cluster, &resource, &objects).await?;
            eprintln!(
                "{} {}(s) applied (server-side apply, field manager rollout-safe), {} stale one(s) deleted",
                written.applied.len(),
                api.kind(),
                written.deleted.len()
            );
        }
        return Ok(emit(
            &rep,
            args.output,
            args.fail_on,
            args.allow_empty,
            &objects,
        ));
    }
    let exclude = args.exclude.iter().map(|g| WildMatch::new(g)).collect();
    let mut paths = args.files;
    paths.extend(args.paths);
    let list = input::list_files(
        &paths,
        &input::WalkOptions {
            recursive: args.recursive,
            exclude,
        },
    );
    let jobs = args.jobs.map_or_else(default_jobs, usize::from);
    let rep = audit_files(&policy, list, jobs);
    Ok(emit(&rep, args.output, args.fail_on, args.allow_empty, &[]))
}

/// `audit --cluster`: the live Deployments, StatefulSets and DaemonSets of the namespace (`-n`,
/// else the context's) or of every namespace (`-A`), audited together with the live
/// PodDisruptionBudgets, HorizontalPodAutoscalers and Services (RS601, RS405, RS603). Each
/// object's location is `cluster:NAMESPACE/KIND/NAME`. Kinds the user may not list are skipped
/// with a note (workload kinds: a cluster error when none can be listed).
async fn cluster_report(cluster: &Cluster, policy: &RolloutPolicy) -> Result<AuditResult, Error> {
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
    let mut rep = audit_result(policy, &docs, Vec::new());
    for message in notes {
        rep.notices.push(Notice {
            file: format!("cluster ({scope})"),
            line: 0,
            message,
        });
    }
    Ok(rep)
}

/// Prints the report and says how the audit ended: unreadable input, or no workload at all
/// unless `allow_empty` (exit 2), else findings at or above the fail level (exit 3), else
/// success. `policy_reports` are what `-o policyreport` prints.
pub fn emit(
    rep: &AuditResult,
    format: AuditFormat,
    fail_on: FailOn,
    allow_empty: bool,
    policy_reports: &[serde_json::Value],
) -> Outcome {
    let fail_at = match fail_on {
        FailOn::Warn => Severity::Warning,
        FailOn::Enforce => Severity::Error,
    };
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    // A closed pipe (`| head`) is not an error worth a message.
    let _ = match format {
        AuditFormat::Table => writeln!(stdout, "{}", report::table(rep).trim_end()),
        AuditFormat::Json => report::write_json(rep, &mut stdout).map_err(std::io::Error::from),
        AuditFormat::Sarif => report::write_sarif(rep, &mut stdout).map_err(std::io::Error::from),
        AuditFormat::Junit => writeln!(stdout, "{}", report::junit(rep, fail_at).trim_end()),
        AuditFormat::Policyreport => crate::policy_report::write_yaml(policy_reports, &mut stdout),
    };
    let _ = stdout.flush();
    drop(stdout);
    // Everything for people goes to stderr when stdout is data.
    if format != AuditFormat::Table {
        for n in &rep.notices {
            eprintln!("note: {}", report::notice_text(n));
        }
        for e in &rep.errors {
            eprintln!("error: {e}");
        }
        eprintln!("{}", report::summary(rep));
    }
    if !rep.errors.is_empty() {
        Outcome::UnreadableInput
    } else if rep.workloads == 0 && !allow_empty {
        eprintln!(
            "error: no workload found ({} object(s) read), so nothing was audited; check the paths (and -R, --exclude), or pass --allow-empty if that is expected",
            rep.objects
        );
        Outcome::UnreadableInput
    } else if rep.any_at_least(fail_at) {
        Outcome::Violations
    } else {
        Outcome::Succeeded
    }
}
