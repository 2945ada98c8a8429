//! One module per command; each is a thin shell around rollout-safe-policy.

pub mod audit;
pub mod bluegreen;
pub mod canary;
pub mod export;
pub mod history;
pub mod pause;
pub mod plan;
pub mod status;
pub mod undo;
pub mod update;

use crate::cli::{Cli, Command};
use crate::exit::CmdResult;

pub async fn dispatch(cli: Cli) -> CmdResult {
    // First thing, before any request: the commands that write or watch take Ctrl-C through one
    // latch (see `signals`), so a Ctrl-C during a write is not lost. The others keep the default
    // action (Ctrl-C ends them at once).
    let latched = match &cli.command {
        Command::Update(_) | Command::Undo(_) | Command::BlueGreen(_) | Command::Canary(_) => true,
        Command::Status(s) => s.watch,
        _ => false,
    };
    if latched {
        crate::signals::install();
    }
    match cli.command {
        Command::Audit(a) => audit::run(&cli.kube, a).await,
        Command::Plan(p) => plan::run(&cli.kube, p).await,
        Command::Update(u) => update::run(&cli.kube, u).await,
        Command::Status(s) => status::run(&cli.kube, s).await,
        Command::History(h) => history::run(&cli.kube, h).await,
        Command::Undo(u) => undo::run(&cli.kube, u).await,
        Command::Pause(w) => pause::run(&cli.kube, w, true).await,
        Command::Resume(w) => pause::run(&cli.kube, w, false).await,
        Command::BlueGreen(b) => bluegreen::run(&cli.kube, b).await,
        Command::Canary(c) => canary::run(&cli.kube, c).await,
        Command::Export(e) => export::run(e),
    }
}
