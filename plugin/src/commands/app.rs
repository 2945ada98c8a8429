//! `kubectl rollout-safe`: the parser, and the dispatch to the commands.

use clap::{Parser, Subcommand};

use super::args::{KubeArgs, WorkloadArg};
use super::audit::AuditArgs;
use super::bluegreen::BlueGreenArgs;
use super::canary::CanaryArgs;
use super::completion::CompletionArgs;
use super::context::Context;
use super::export::ExportArgs;
use super::history::HistoryArgs;
use super::plan::PlanArgs;
use super::status::StatusArgs;
use super::undo::UndoArgs;
use super::update::UpdateArgs;
use crate::error::Error;
use crate::exit::Outcome;
use crate::interrupt::Interrupt;
use crate::signals;

#[derive(Debug, Parser)]
#[command(
    name = "kubectl rollout-safe",
    bin_name = "kubectl rollout-safe",
    version,
    about = "Safe Kubernetes rollouts: policy-checked updates that watch the pods and roll back on their own, blue-green, canary, undo, and an offline manifest audit.",
    after_help = "Exit codes: 0 success, 1 rollout failed (rolled back unless --no-rollback), 2 bad input or usage, 3 policy violations (audit; or update, blue-green, canary refusing an unsafe spec before writing it), 4 timed out, 5 cluster/API error (the kubeconfig included: no file, an unknown --context)."
)]
pub struct App {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Show library log lines on stderr: -v warnings, -vv info, -vvv debug
    /// (ROLLOUT_SAFE_LOG, a tracing filter, overrides it).
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check manifests (offline) or live workloads against the rollout policy.
    Audit(AuditArgs),
    /// Show how a rolling update will proceed, step by step.
    Plan(PlanArgs),
    /// Update images/env under the policy, watch the rollout, roll back on failure.
    Update(UpdateArgs),
    /// Watch a rollout, judging it by its pods (crash loops, image pulls, readiness); without a
    /// workload (or with -A), the status board of every rollout in scope.
    Status(StatusArgs),
    /// Revisions with their change-causes and images.
    History(HistoryArgs),
    /// Roll back to the previous (or a given) revision, guarded and watched.
    Undo(UndoArgs),
    /// Pause a Deployment's rollout.
    Pause(WorkloadArg),
    /// Resume a paused Deployment's rollout.
    Resume(WorkloadArg),
    /// Blue-green on a plain Deployment and Service.
    #[command(name = "blue-green")]
    BlueGreen(BlueGreenArgs),
    /// Canary by replica ratio behind the same Service.
    Canary(CanaryArgs),
    /// Export the policy for in-cluster use without the webhook (admission-policy).
    Export(ExportArgs),
    /// Print a shell completion script (bash, zsh, fish); see the README for kubectl's own
    /// plugin completion.
    Completion(CompletionArgs),
}

/// Runs a parsed command line.
pub async fn run(app: App) -> Result<Outcome, Error> {
    // First thing, before any request: the commands that write or watch take Ctrl-C through one
    // latch (see `signals`), so a Ctrl-C during a write is not lost. The others keep the default
    // action (Ctrl-C ends them at once).
    let latched = match &app.command {
        Command::Update(_) | Command::Undo(_) | Command::BlueGreen(_) | Command::Canary(_) => true,
        Command::Status(s) => s.watch,
        _ => false,
    };
    let ctx = Context {
        kube: app.kube,
        interrupt: if latched {
            signals::install()
        } else {
            Interrupt::never()
        },
    };
    match app.command {
        Command::Audit(a) => super::audit::run(&ctx, a).await,
        Command::Plan(p) => super::plan::run(&ctx, p).await,
        Command::Update(u) => super::update::run(&ctx, u).await,
        Command::Status(s) => super::status::run(&ctx, s).await,
        Command::History(h) => super::history::run(&ctx, h).await,
        Command::Undo(u) => super::undo::run(&ctx, u).await,
        Command::Pause(w) => super::pause::run(&ctx, w, true).await,
        Command::Resume(w) => super::pause::run(&ctx, w, false).await,
        Command::BlueGreen(b) => super::bluegreen::run(&ctx, b).await,
        Command::Canary(c) => super::canary::run(&ctx, c).await,
        Command::Export(e) => super::export::run(e),
        Command::Completion(c) => {
            super::completion::run(c, <App as clap::CommandFactory>::command())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::update::DryRunArg;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        App::command().debug_assert();
    }

    #[test]
    fn global_flags_anywhere() {
        let c = App::try_parse_from([
            "kubectl-rollout_safe",
            "status",
            "deploy/web",
            "-n",
            "shop",
            "--context",
            "prod",
        ])
        .unwrap();
        assert_eq!(c.kube.namespace.as_deref(), Some("shop"));
        assert_eq!(c.kube.context.as_deref(), Some("prod"));
        assert_eq!(
            c.kube.connect_options().config.context.as_deref(),
            Some("prod")
        );
        let c = App::try_parse_from([
            "x",
            "update",
            "deploy/web",
            "--image",
            "web=a:1",
            "--dry-run",
        ])
        .unwrap();
        let Command::Update(u) = c.command else {
            panic!()
        };
        assert_eq!(u.dry_run, Some(DryRunArg::Client));
    }
}
