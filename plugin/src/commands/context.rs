//! What every command runs with.

use super::args::KubeArgs;
use crate::cluster::client::Cluster;
use crate::display::TerminalViews;
use crate::interrupt::Interrupt;
use crate::ops::session::Session;

/// What every command runs with: the connection flags and Ctrl-C.
pub struct Context {
    pub kube: KubeArgs,
    pub interrupt: Interrupt,
}

impl Context {
    /// An operation's session on `cluster`, its watches shown on the terminal.
    pub fn session(&self, cluster: Cluster) -> Session<'static> {
        Session {
            cluster,
            views: &TerminalViews,
            interrupt: self.interrupt.clone(),
        }
    }
}
