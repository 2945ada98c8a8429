//! A cancellation token: whether Ctrl-C was pressed, and a future that resolves when it is.
//! `signals` feeds it; the watch loop and the operations read it.

use tokio::sync::watch;

/// Cheap to clone; every clone sees the same latch.
#[derive(Debug, Clone)]
pub struct Interrupt(Option<watch::Receiver<bool>>);

impl Interrupt {
    /// A token that is never set (commands that keep the default Ctrl-C action, tests).
    pub fn never() -> Self {
        Interrupt(None)
    }

    /// A token that is set once `latch` turns true.
    pub fn from_latch(latch: watch::Receiver<bool>) -> Self {
        Interrupt(Some(latch))
    }

    /// Whether it is set.
    pub fn is_set(&self) -> bool {
        self.0.as_ref().is_some_and(|rx| *rx.borrow())
    }

    /// Resolves once it is set: at once if it already is; never for [`Interrupt::never`].
    pub async fn wait(&self) {
        let Some(rx) = &self.0 else {
            return std::future::pending().await;
        };
        let mut rx = rx.clone();
        if rx.wait_for(|set| *set).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn latched() {
        let never = Interrupt::never();
        assert!(!never.is_set());
        assert!(
            tokio::time::timeout(Duration::from_millis(20), never.wait())
                .await
                .is_err()
        );
        let (tx, rx) = watch::channel(false);
        let token = Interrupt::from_latch(rx);
        assert!(!token.is_set());
        let waiting = tokio::spawn({
            let token = token.clone();
            async move { token.wait().await }
        });
        tx.send_replace(true);
        waiting.await.unwrap();
        assert!(token.is_set());
        // Set before anyone waits: resolves at once.
        token.wait().await;
    }
}
