//! `kubectl rollout-safe audit`: the policy over manifests (offline) or live workloads.

use std::io::Write;

use rollout_safe_policy::{Severity, audit::AuditReport};

use crate::cli::{AuditArgs, AuditFormat, FailOn, KubeArgs};
use crate::exit::{CmdResult, Exit, Failure};
use crate::{input, report};

pub async fn run(kube: &KubeArgs, args: AuditArgs) -> CmdResult {
    let policy = input::load_policy(args.policy.policy.as_deref())?;
    let rep = if args.cluster {
        cluster_report(kube, &policy).await?
    } else {
        let m = input::read_manifests(&args.files, args.recursive);
        rollout_safe_policy::audit(&policy, &m.documents, m.errors)
    };
    emit(&rep, args.output, args.fail_on)
}

/// Live workloads are audited through the cluster module when this build has it.
async fn cluster_report(
    _kube: &KubeArgs,
    _policy: &rollout_safe_policy::RolloutPolicy,
) -> Result<AuditReport, Failure> {
    Err(Failure::usage("audit --cluster is not available in this build yet"))
}

/// Prints the report and picks the exit code: 2 when an input could not be read, else 3
/// when a finding is at or above the fail level, else 0.
pub fn emit(rep: &AuditReport, format: AuditFormat, fail_on: FailOn) -> CmdResult {
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
    Ok(if !rep.errors.is_empty() {
        Exit::Usage
    } else if rep.findings.iter().any(|f| f.finding.severity >= fail_at) {
        Exit::Violations
    } else {
        Exit::Success
    })
}
