//! Active health checks: every backend is asked, on a timer, whether it is up and serves the
//! configured model (GET /api/tags or /v1/models). A port that answers is not enough: a server
//! without the model cannot generate. Failed checks eject a backend at once; once its back-off
//! has passed, a passing check re-admits it gradually (see `breaker.rs`).
//!
//! A hung server still lists its model, so each round also asks the pool which backends owe
//! first tokens and have sent none for `stall_timeout`: those are ejected the same way.

use super::Pool;
use std::time::Duration;

/// Checks every backend once, concurrently. Run before serving so that traffic starts only on
/// backends known to work.
pub async fn check_all(pool: &Pool) {
    let model = pool.model().to_owned();
    let checks = pool.members().into_iter().map(|(index, backend)| {
        let model = model.clone();
        async move { (index, backend.check_model(&model).await) }
    });
    for (index, result) in futures::future::join_all(checks).await {
        pool.record_check(index, result);
    }
}

/// Runs [`check_all`] every `interval` until the task is aborted.
pub fn spawn(pool: Pool, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            pool.eject_stalled(std::time::Instant::now());
            check_all(&pool).await;
        }
    })
}
