//! The status board (`status` with no workload, or `-A`): every rollout in scope judged from
//! one listing per kind ([`snapshot`]), or kept live from watches ([`live`]): re-judged after
//! every batch of watch events, and at the times a verdict or a blue-green window names (a
//! readiness budget running out, a window ending), never by polling the API.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use rollout_safe_policy::board::{BoardRow, InFlight, Inventory, RowState, board};
use rollout_safe_policy::judge::JudgeConfig;

use crate::cluster::board::{BoardUpdate, BoardWatch, list_board};
use crate::cluster::client::Cluster;
use crate::error::Error;
use crate::exit::Outcome;
use crate::interrupt::Interrupt;

/// How the board is shown: every new board, and lines worth keeping.
pub trait BoardView {
    fn show(&mut self, rows: &[BoardRow], now: Timestamp) -> Result<(), Error>;
    fn note(&mut self, line: &str);
}

/// What the board means as an exit: a failing rollout is exit 1, else success.
pub fn board_outcome(rows: &[BoardRow]) -> Outcome {
    if rows.iter().any(|r| r.state == RowState::Failing) {
        Outcome::RolloutFailed
    } else {
        Outcome::Succeeded
    }
}

/// The board once, from one LIST per kind.
pub async fn snapshot(
    cluster: &Cluster,
    judge: &JudgeConfig,
    view: &mut dyn BoardView,
) -> Result<Outcome, Error> {
    let listing = list_board(cluster).await?;
    for n in &listing.notes {
        view.note(n);
    }
    let now = Timestamp::now();
    let rows = board(&listing.inventory, now, judge);
    view.show(&rows, now)?;
    Ok(board_outcome(&rows))
}

/// The next time the board changes without an event: a verdict's recheck, a blue-green window
/// ending.
fn next_due(rows: &[BoardRow]) -> Option<Timestamp> {
    rows.iter()
        .flat_map(|r| {
            let window = match &r.in_flight {
                Some(InFlight::BlueGreen { keep_until, .. }) => *keep_until,
                _ => None,
            };
            r.verdict.recheck_at().into_iter().chain(window)
        })
        .filter(|t| *t > Timestamp::now())
        .min()
}

/// How often the ages are brought up to date when nothing happens (no request is made).
const AGE_REFRESH: Duration = Duration::from_secs(30);

/// The board kept live until `timeout` or Ctrl-C (exit 4, as `status --watch`), shown after
/// every change.
pub async fn live(
    cluster: &Cluster,
    judge: &JudgeConfig,
    timeout: Duration,
    interrupt: &Interrupt,
    view: &mut dyn BoardView,
) -> Result<Outcome, Error> {
    let mut watch = BoardWatch::start(cluster);
    let deadline = tokio::time::Instant::now() + timeout;
    let ctrl_c = interrupt.wait();
    tokio::pin!(ctrl_c);
    let mut inventory: Option<Inventory> = None;
    let mut rows: Vec<BoardRow> = Vec::new();
    loop {
        let wake = next_due(&rows)
            .map(|t| {
                let wait = t.duration_since(Timestamp::now()).unsigned_abs();
                tokio::time::Instant::now() + wait + Duration::from_millis(100)
            })
            .into_iter()
            .chain(
                inventory
                    .as_ref()
                    .map(|_| tokio::time::Instant::now() + AGE_REFRESH),
            )
            .min();
        tokio::select! {
            biased;
            () = &mut ctrl_c => return Ok(Outcome::Interrupted),
            _ = tokio::time::sleep_until(deadline) => return Ok(Outcome::TimedOut),
            update = watch.next() => match update? {
                BoardUpdate::Note(line) => {
                    view.note(&line);
                    continue;
                }
                BoardUpdate::Changed(inv) => inventory = Some(inv),
            },
            _ = tokio::time::sleep_until(wake.unwrap_or(deadline)), if wake.is_some() => {}
        }
        let Some(inv) = &inventory else { continue };
        let now = Timestamp::now();
        rows = board(inv, now, judge);
        view.show(&rows, now)?;
    }
}
