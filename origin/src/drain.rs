//! Graceful shutdown. On SIGTERM (or Ctrl-C) the service drains: `/readyz` fails so load
//! balancers stop sending traffic, new questions get 503 `draining`, running streams continue.
//! When the drain deadline passes, streams still running end with an `error` event rather than
//! being cut silently, questions still waiting for a slot get their 503, and the process exits.
//!
//! The listener stays open while answers are in flight: a closed port would turn the readiness
//! probe and every new question into a connection error instead of the documented 503. It
//! closes once the last answer has ended ([`Drain::finished`]).

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
    /// Answers started and not yet ended.
    answering: Arc<watch::Sender<usize>>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            phase: Arc::new(watch::Sender::new(Phase::Running)),
            answering: Arc::new(watch::Sender::new(0)),
        }
    }
}

/// One answer in flight; the drain waits for it until dropped.
pub struct Answering {
    count: Arc<watch::Sender<usize>>,
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.count.send_modify(|n| *n -= 1);
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

    /// Counts an answer as in flight until the guard is dropped, or `None` when draining: the
    /// request must then be refused. Counting first and checking second leaves no instant in
    /// which an accepted answer is invisible to [`Drain::finished`].
    pub fn begin_answer(&self) -> Option<Answering> {
        self.answering.send_modify(|n| *n += 1);
        let guard = Answering {
            count: Arc::clone(&self.answering),
        };
        (!self.is_draining()).then_some(guard)
    }

    /// Resolves once draining has started and no answer is in flight.
    pub async fn finished(&self) {
        self.started().await;
        let mut rx = self.answering.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
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
        tokio::time::timeout(Duration::from_secs(2), d.expired())
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn finishes_when_the_last_answer_ends() {
        let d = Drain::default();
        let first = d.begin_answer().expect("running: accepted");
        let second = d.begin_answer().expect("running: accepted");
        d.start(Duration::from_secs(30));
        assert!(d.begin_answer().is_none(), "draining: refused");
        let finished = d.finished();
        tokio::pin!(finished);
        drop(first);
        assert!(
            tokio::time::timeout(Duration::from_millis(10), &mut finished)
                .await
                .is_err()
        );
        drop(second);
        tokio::time::timeout(Duration::from_millis(10), &mut finished)
            .await
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_server_finishes_at_once() {
        let d = Drain::default();
        d.start(Duration::from_secs(30));
        tokio::time::timeout(Duration::from_millis(10), d.finished())
            .await
            .unwrap();
    }
}
