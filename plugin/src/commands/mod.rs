//! One module per command; each is a thin shell around rollout-safe-policy.

pub mod audit;
pub mod plan;

use crate::cli::{Cli, Command};
use crate::exit::{CmdResult, Failure};

pub async fn dispatch(cli: Cli) -> CmdResult {
    match cli.command {
        Command::Audit(a) => audit::run(&cli.kube, a).await,
        Command::Plan(p) => plan::run(&cli.kube, p).await,
        other => Err(Failure::usage(format!(
            "{other:?}: this command is not available in this build yet"
        ))),
    }
}
