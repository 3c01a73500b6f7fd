//! Graceful shutdown. On SIGTERM (or Ctrl-C) the service drains: `/readyz` fails so load
//! balancers stop sending traffic, new questions get 503 `draining`, running streams continue.
//! When the drain deadline passes, streams still running end with an `error` event rather than
//! being cut silently, and the process exits.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    Draining,
    Expired,
}

#[derive(Clone)]
pub struct Drain {
    phase: Arc<watch::Sender<Phase>>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain { phase: Arc::new(watch::Sender::new(Phase::Running)) }
    }
}

impl Drain {
    pub fn is_draining(&self) -> bool {
        *self.phase.borrow() != Phase::Running
    }

    /// Enters the drain; the deadline starts now.
    pub fn start(&self, deadline: Duration) {
        if self.phase.send_replace(Phase::Draining) != Phase::Running {
            return;
        }
        let phase = Arc::clone(&self.phase);
        tokio::spawn(async move {
            tokio::time::sleep(deadline).await;
            phase.send_replace(Phase::Expired);
        });
    }

    /// Resolves when draining starts.
    pub async fn started(&self) {
        let mut rx = self.phase.subscribe();
        let _ = rx.wait_for(|p| *p != Phase::Running).await;
    }

    /// Resolves when the drain deadline has passed.
    pub async fn expired(&self) {
        let mut rx = self.phase.subscribe();
        let _ = rx.wait_for(|p| *p == Phase::Expired).await;
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn termination_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn phases() {
        let d = Drain::default();
        assert!(!d.is_draining());
        d.start(Duration::from_secs(5));
        assert!(d.is_draining());
        d.started().await;
        let expired = tokio::time::timeout(Duration::from_secs(4), d.expired()).await;
        assert!(expired.is_err());
        tokio::time::timeout(Duration::from_secs(2), d.expired()).await.unwrap();
    }
}
