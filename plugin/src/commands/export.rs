//! `kubectl rollout-safe export admission-policy`: the policy file as ValidatingAdmissionPolicies
//! (and, with `--mutating`, a MutatingAdmissionPolicy) for clusters that run the rules without
//! the webhook. The policy crate builds the objects (`admission_policy`); this renders them.

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use rollout_safe_policy::admission_policy::{ExportError, ExportOptions, KubeVersion, export};

use crate::error::Error;
use crate::exit::Outcome;
use crate::input;

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub what: ExportWhat,
}

#[derive(Debug, Subcommand)]
pub enum ExportWhat {
    /// The rules as ValidatingAdmissionPolicies with bindings (Kubernetes 1.30+), ready for
    /// `kubectl apply -f -`; rules that need cluster lookups are named in a comment.
    #[command(name = "admission-policy")]
    AdmissionPolicy(AdmissionPolicyArgs),
}

#[derive(Debug, Args)]
pub struct AdmissionPolicyArgs {
    /// A RolloutPolicy YAML file (default: the built-in defaults).
    #[arg(long, value_name = "FILE", env = "ROLLOUT_SAFE_POLICY")]
    pub policy: Option<PathBuf>,
    /// The cluster's Kubernetes version (1.30 or newer): the MutatingAdmissionPolicy is
    /// admissionregistration.k8s.io/v1beta1 on 1.34 and 1.35, v1 from 1.36.
    #[arg(long, value_name = "VERSION", default_value = "1.30")]
    pub kubernetes_version: String,
    /// Also export the fixes of the rules set to `mutate` as a MutatingAdmissionPolicy
    /// (Kubernetes 1.34+; on 1.34 and 1.35 it needs the MutatingAdmissionPolicy feature gate).
    #[arg(long)]
    pub mutating: bool,
    /// Output format. JSON is a v1 List; the notes (rules left out and why) then go to stderr.
    #[arg(short = 'o', long, value_enum, default_value_t = ExportFormat::Yaml)]
    pub output: ExportFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Yaml,
    Json,
}

pub fn run(args: ExportArgs) -> Result<Outcome, Error> {
    match args.what {
        ExportWhat::AdmissionPolicy(a) => admission_policy(a),
    }
}

fn admission_policy(args: AdmissionPolicyArgs) -> Result<Outcome, Error> {
    let policy = input::load_policy(args.policy.as_deref())?;
    let failed = |source: ExportError| Error::Export {
        context: args.policy.as_ref().map(|p| format!("in {}", p.display())),
        source,
    };
    let kubernetes_version: KubeVersion =
        args.kubernetes_version
            .parse()
            .map_err(|source| Error::Export {
                context: None,
                source,
            })?;
    let exported = export(
        &policy,
        &ExportOptions {
            kubernetes_version,
            mutating: args.mutating,
        },
    )
    .map_err(failed)?;
    let text = match args.output {
        ExportFormat::Yaml => exported.to_yaml().map_err(failed)?,
        ExportFormat::Json => {
            for note in &exported.notes {
                eprintln!("# {note}");
            }
            let mut json = serde_json::to_string_pretty(&exported.to_json())
                .map_err(|e| Error::encode("the export as JSON", e))?;
            json.push('\n');
            json
        }
    };
    write_stdout(&text)
}

/// Writes to stdout; a reader that went away (`| head`) ends the command quietly.
fn write_stdout(text: &str) -> Result<Outcome, Error> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(Outcome::Succeeded),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Outcome::Succeeded),
        Err(e) => Err(Error::Stdout(e)),
    }
}
