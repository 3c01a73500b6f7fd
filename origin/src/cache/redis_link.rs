//! The one place that talks to Redis on the request path: a lazily connected, self-healing
//! connection, a deadline on every operation, and the outage state that turns a dead or slow
//! Redis into a cache bypass instead of a failed request.
//!
//! Not here: what is stored (`exact.rs`, `semantic.rs`) and the replicas' stream reader, which
//! blocks on its own connection (`sync.rs`) so that a long `XREAD BLOCK` never queues behind it
//! the lookups of customers.

use super::outage::{Admit, Outage, Transition};
use crate::metrics;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::RedisResult;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often a down Redis is probed by a real operation.
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// Connecting may take longer than one operation's deadline; the operation that waits for it
/// gives up at its own deadline, the connection attempt goes on for the next one.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    #[error("invalid Redis URL: {0}")]
    Url(String),
}

/// Why an operation did not reach a result; the caller bypasses the cache in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// Redis is known to be down; not even tried.
    Bypassed,
    Timeout,
    Failed,
}

#[derive(Clone)]
pub struct RedisLink {
    client: redis::Client,
    manager: ConnectionManager,
    timeout: Duration,
    outage: Arc<Mutex<Outage>>,
    /// For log lines: the URL without credentials.
    display: Arc<str>,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink")
            .field("url", &self.display)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisLink {
    /// Prepares the connection without opening it: a Redis that is down at start-up only means
    /// a cold cache until it comes up.
    ///
    /// # Errors
    /// The URL does not parse.
    pub fn connect(url: &str, timeout: Duration) -> Result<RedisLink, RedisSetupError> {
        let client = redis::Client::open(url).map_err(|e| RedisSetupError::Url(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            // Our own deadline (below) is what bounds a request; this one only frees the
            // connection from replies that will never come.
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| RedisSetupError::Url(e.to_string()))?;
        Ok(RedisLink {
            client,
            manager,
            timeout,
            outage: Arc::new(Mutex::new(Outage::new(PROBE_EVERY))),
            display: Arc::from(redact(url)),
        })
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn is_down(&self) -> bool {
        self.lock().is_down()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Outage> {
        // The outage state is a few plain fields updated in one step each; a panic elsewhere
        // cannot leave it half-written.
        self.outage.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs one request-path operation within the deadline. `op` names it in the
    /// `libriassist_cache_errors_total{op}` metric.
    ///
    /// # Errors
    /// [`Unavailable`]: skipped during an outage, timed out, or failed; already counted and
    /// (once per outage) logged.
    pub async fn run<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, Unavailable>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.run_within(op, self.timeout, f).await
    }

    /// As [`RedisLink::run`] with another deadline, for admin operations (purges scan the
    /// whole key space) and loading at start-up.
    ///
    /// # Errors
    /// As [`RedisLink::run`].
    pub async fn run_within<T, F, Fut>(
        &self,
        op: &'static str,
        deadline: Duration,
        f: F,
    ) -> Result<T, Unavailable>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if self.lock().admit(Instant::now()) == Admit::Skip {
            metrics::cache_error(op);
            return Err(Unavailable::Bypassed);
        }
        let outcome = tokio::time::timeout(deadline, f(self.manager.clone())).await;
        let now = Instant::now();
        let (result, error) = match outcome {
            Ok(Ok(value)) => {
                let transition = self.lock().success(now);
                self.log(transition, None);
                return Ok(value);
            }
            Ok(Err(e)) => (Unavailable::Failed, e.to_string()),
            Err(_) => (
                Unavailable::Timeout,
                format!("no answer within {} ms", deadline.as_millis()),
            ),
        };
        metrics::cache_error(op);
        let transition = self.lock().failure(now);
        self.log(transition, Some((op, &error)));
        Err(result)
    }

    fn log(&self, transition: Option<Transition>, error: Option<(&str, &str)>) {
        match transition {
            Some(Transition::WentDown) => {
                let (op, error) = error.unwrap_or(("", ""));
                tracing::warn!(redis = %self.display, op, error, "Redis unavailable: caches bypassed until it answers again");
            }
            Some(Transition::CameBack { down_for, bypassed }) => {
                tracing::info!(redis = %self.display, down_ms = down_for.as_millis() as u64, bypassed, "Redis is back: caches in use again");
            }
            None => {}
        }
    }
}

/// `redis://user:secret@host/0` -> `redis://host/0`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_stay_out_of_logs() {
        assert_eq!(
            redact("redis://:pw@10.0.0.1:6379/0"),
            "redis://10.0.0.1:6379/0"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[tokio::test]
    async fn a_dead_redis_is_a_bypass_not_an_error_and_is_then_skipped() {
        // Port 1 on loopback: nothing listens there, the connection is refused at once.
        let link = RedisLink::connect("redis://127.0.0.1:1/0", Duration::from_millis(50))
            .expect("valid URL");
        let first: Result<Option<String>, _> = link
            .run("get", |mut c| async move {
                redis::cmd("GET").arg("k").query_async(&mut c).await
            })
            .await;
        assert!(
            matches!(first, Err(Unavailable::Failed | Unavailable::Timeout)),
            "{first:?}"
        );
        assert!(link.is_down());
        let second: Result<Option<String>, _> = link
            .run("get", |mut c| async move {
                redis::cmd("GET").arg("k").query_async(&mut c).await
            })
            .await;
        assert_eq!(second, Err(Unavailable::Bypassed));
    }
}
