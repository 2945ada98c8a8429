//! Ctrl-C, through one latch for the whole command.
//!
//! Once a process listens for SIGINT the default action (exit) is gone for good, so a Ctrl-C
//! that arrives while nothing waits for it — during a write, between two watches — would be
//! lost. [`install`] starts the one listener first thing (for the commands that write or
//! watch); it latches the first Ctrl-C into the [`Interrupt`] it returns, which every wait and
//! every check reads. A second Ctrl-C ends the process at once (exit 4), for a step that is not
//! looking at the latch (a slow API call).

use tokio::sync::watch;

use crate::exit::{Outcome, exit_code};
use crate::interrupt::Interrupt;

/// Starts listening for Ctrl-C. Must be called inside the runtime, once.
pub fn install() -> Interrupt {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if tx.send_replace(true) {
                eprintln!(
                    "interrupted again: exiting now, in the middle of the step; re-run the command to see where things stand"
                );
                std::process::exit(exit_code(&Ok(Outcome::Interrupted)) as i32);
            }
        }
    });
    Interrupt::from_latch(rx)
}
