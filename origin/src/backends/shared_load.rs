//! One view of each backend's load across the origin replicas.
//!
//! Ollama exposes no in-flight count, so each origin counts what it sends (`pool.rs`). Alone,
//! two origins would each fill a 4-slot backend with 4 requests, and the extra ones would wait
//! inside the backend, where no origin can see them, move them to a freer backend or time them
//! out cleanly. So every origin publishes its per-backend counts on a Redis channel whenever
//! they change (and every second as a heartbeat), and counts what the others report as taken.
//! Each report also says how long the origin's oldest queued request has waited: a free slot
//! goes to the oldest request of all origins, so the origins' queues drain as one line.
//!
//! Reports are small (a count per backend URL) and absolute, so a lost message costs nothing
//! once the next arrives. A report expires after [`EXPIRES`]: the load of an origin that
//! crashed or lost Redis stops holding slots on its own. Without Redis every origin counts
//! alone again, as a single origin does. Two origins can still take the same last free slot
//! in the same millisecond; the backend then queues one request briefly, which is what
//! happened to every request beyond the slots before.

use super::pool::Load;
use super::Pool;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// The channel every origin of a deployment publishes on and follows.
pub const CHANNEL: &str = "libriassist:backends:load";
/// A report is renewed at least this often, even when nothing changed.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// A report not renewed within this is forgotten (three heartbeats).
const EXPIRES: Duration = Duration::from_secs(3);
/// Deadline of one Redis operation; the request path never waits on it.
const OPERATION: Duration = Duration::from_millis(500);
/// Pause before connecting again after Redis failed.
const RECONNECT: Duration = Duration::from_secs(1);

/// What one origin publishes. The wait is an age, not a time: origins' clocks may differ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Report {
    origin: String,
    in_flight: BTreeMap<String, usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    oldest_wait_ms: Option<u64>,
}

/// Starts publishing this origin's load and following the others' through the Redis at `url`.
///
/// # Errors
/// `url` is not a Redis URL.
pub fn spawn(pool: Pool, url: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let origin = uuid::Uuid::new_v4().simple().to_string();
    tracing::info!(
        origin,
        channel = CHANNEL,
        "sharing backend load with the other origins"
    );
    tokio::spawn(publish(pool.clone(), client.clone(), origin.clone()));
    tokio::spawn(follow(pool, client, origin));
    Ok(())
}

async fn publish(pool: Pool, client: redis::Client, origin: String) {
    let mut changes = pool.changes();
    let mut connection = None;
    let mut sent: Option<(Load, Instant)> = None;
    loop {
        if let Some((_, at)) = &sent {
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                () = tokio::time::sleep_until(*at + HEARTBEAT) => {}
            }
        }
        let load = pool.local_load();
        // Dispatching after a peer's report touches the pool too: answering that with the
        // same load would echo reports between origins forever.
        if let Some((last, at)) = &sent {
            if *last == load && at.elapsed() < HEARTBEAT {
                continue;
            }
        }
        let report = Report {
            origin: origin.clone(),
            in_flight: load.in_flight.clone(),
            oldest_wait_ms: load
                .oldest_waiting
                .map(|since| since.elapsed().as_millis() as u64),
        };
        let payload = serde_json::to_string(&report).unwrap_or_default();
        match send(&client, &mut connection, &payload).await {
            Ok(()) => sent = Some((load, Instant::now())),
            Err(e) => {
                tracing::debug!(error = %e, "backend load not published");
                connection = None;
                // Retried at the next heartbeat, not at once: Redis is down or slow.
                let nothing = Load {
                    in_flight: BTreeMap::new(),
                    oldest_waiting: None,
                };
                sent = Some((nothing, Instant::now()));
            }
        }
    }
}

async fn send(
    client: &redis::Client,
    connection: &mut Option<redis::aio::MultiplexedConnection>,
    payload: &str,
) -> redis::RedisResult<()> {
    let conn = match connection {
        Some(conn) => conn,
        None => connection.insert(within(client.get_multiplexed_async_connection()).await?),
    };
    let mut publish = redis::cmd("PUBLISH");
    publish.arg(CHANNEL).arg(payload);
    within(publish.query_async::<i64>(conn)).await.map(drop)
}

async fn within<T>(
    operation: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> redis::RedisResult<T> {
    tokio::time::timeout(OPERATION, operation)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()))
}

async fn follow(pool: Pool, client: redis::Client, origin: String) {
    use futures::StreamExt;
    loop {
        match within(client.get_async_pubsub()).await {
            Ok(mut pubsub) => match within(pubsub.subscribe(CHANNEL)).await {
                Ok(()) => {
                    let mut messages = pubsub.on_message();
                    let mut sweep = tokio::time::interval(HEARTBEAT);
                    loop {
                        tokio::select! {
                            message = messages.next() => {
                                let Some(message) = message else { break };
                                take_in(&pool, &origin, message.get_payload_bytes());
                            }
                            _ = sweep.tick() => pool.expire_peers(std::time::Instant::now()),
                        }
                    }
                    tracing::warn!(
                        "lost the backend load channel; counting alone until it is back"
                    );
                }
                Err(e) => tracing::debug!(error = %e, "cannot follow the backend load channel"),
            },
            Err(e) => tracing::debug!(error = %e, "cannot follow the backend load channel"),
        }
        pool.expire_peers(std::time::Instant::now());
        tokio::time::sleep(RECONNECT).await;
    }
}

/// Records another origin's report; ours and unreadable ones are ignored.
fn take_in(pool: &Pool, origin: &str, payload: &[u8]) {
    match serde_json::from_slice::<Report>(payload) {
        Ok(report) if report.origin != origin => {
            let now = std::time::Instant::now();
            let load = Load {
                in_flight: report.in_flight,
                oldest_waiting: report
                    .oldest_wait_ms
                    .and_then(|ms| now.checked_sub(Duration::from_millis(ms))),
            };
            pool.record_peer(report.origin, load, now + EXPIRES);
        }
        Ok(_) => {}
        Err(e) => tracing::debug!(error = %e, "unreadable backend load report"),
    }
}
