//! Ctrl-C, through one latch for the whole command.
//!
//! Once a process listens for SIGINT the default action (exit) is gone for good, so a Ctrl-C
//! that arrives while nothing waits for it — during a write, between two watches — would be
//! lost. [`install`] starts the one listener first thing in `commands::dispatch` (for the
//! commands that write or watch); it latches the first Ctrl-C, and every wait ([`interrupt`],
//! which the watch loop selects on) and every check ([`interrupted`]) reads that latch. A second
//! Ctrl-C ends the process at once (exit 4), for a step that is not looking at the latch (a slow
//! API call).

use std::sync::OnceLock;

use tokio::sync::watch;

use crate::exit::Exit;

static LATCH: OnceLock<watch::Receiver<bool>> = OnceLock::new();

fn latch() -> watch::Receiver<bool> {
    LATCH
        .get_or_init(|| {
            let (tx, rx) = watch::channel(false);
            tokio::spawn(async move {
                while tokio::signal::ctrl_c().await.is_ok() {
                    if tx.send_replace(true) {
                        eprintln!(
                            "interrupted again: exiting now, in the middle of the step; re-run the command to see where things stand"
                        );
                        std::process::exit(Exit::Timeout as i32);
                    }
                }
            });
            rx
        })
        .clone()
}

/// Starts listening for Ctrl-C (idempotent). Must be called inside the runtime.
pub fn install() {
    latch();
}

/// Whether Ctrl-C was pressed since the command started.
pub fn interrupted() -> bool {
    *latch().borrow()
}

/// Resolves on Ctrl-C: at once if it was already pressed.
pub async fn interrupt() {
    let mut rx = latch();
    if rx.wait_for(|pressed| *pressed).await.is_err() {
        std::future::pending::<()>().await;
    }
}
