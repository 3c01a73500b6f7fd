//! Keeps each origin's semantic index in step with Redis: loads a scope's existing vectors when
//! the origin first serves that scope (so a restarted origin starts warm), and follows the
//! stream on which every origin announces new vectors and purges.
//!
//! The stream is read with `XREAD BLOCK` on a connection of its own: a blocking read on the
//! shared request-path connection would hold every cache lookup queued behind it.
//! Stream entries are idempotent (adding a known vector replaces it), so reading an entry that
//! a load already covered, or one this origin wrote itself, is harmless.

use super::index::Entry;
use super::keys::{Scope, STREAM};
use super::redis_link::Unavailable;
use super::semantic::{decode_vector, Inner};
use super::Purge;
use libriassist_protocol::CacheKey;
use redis::streams::StreamReadReply;
use redis::{AsyncConnectionConfig, Value};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Vectors fetched per round trip while loading.
const LOAD_BATCH: usize = 500;
/// How long one XREAD waits for news before asking again (also how quickly the reader notices
/// that its cache was dropped).
const BLOCK: Duration = Duration::from_secs(2);
const RETRY: Duration = Duration::from_secs(1);
const LOAD_DEADLINE: Duration = Duration::from_secs(10);

/// Loads the most recently used vectors of `scope` (up to the index bound) into the index.
/// Returns how many were loaded.
///
/// # Errors
/// Redis unavailable; the index keeps what it had.
pub(super) async fn load_scope(
    inner: &Arc<Inner>,
    scope: &Scope,
    scope_id: u32,
) -> Result<usize, Unavailable> {
    let Some(link) = &inner.redis else {
        return Ok(0);
    };
    let embedder = inner.embedder.model_id().to_owned();
    let index_key = scope.semantic_index(&embedder);
    let max = inner.settings.max_entries;
    let members: Vec<String> = link
        .run_within("load", LOAD_DEADLINE, |mut c| {
            let index_key = index_key.clone();
            async move {
                redis::cmd("ZREVRANGE")
                    .arg(index_key)
                    .arg(0)
                    .arg(max.saturating_sub(1))
                    .query_async(&mut c)
                    .await
            }
        })
        .await?;
    let dim = inner.embedder.dimensions();
    let mut loaded = 0;
    // Oldest first, so that the index's own eviction order matches Redis's.
    let members: Vec<String> = members.into_iter().rev().collect();
    for batch in members.chunks(LOAD_BATCH) {
        let keys: Vec<String> = batch
            .iter()
            .map(|m| scope.semantic_entry(&embedder, m))
            .collect();
        let rows: Vec<(Option<String>, Option<Vec<u8>>)> = link
            .run_within("load", LOAD_DEADLINE, |mut c| async move {
                let mut pipe = redis::pipe();
                for key in &keys {
                    pipe.cmd("HMGET").arg(key).arg("q").arg("v");
                }
                pipe.query_async(&mut c).await
            })
            .await?;
        let mut gone = Vec::new();
        {
            let mut index = inner.write_index();
            for (member, row) in batch.iter().zip(rows) {
                match row {
                    (Some(question), Some(bytes)) => {
                        if let Some(vector) = decode_vector(&bytes, dim) {
                            let entry = Entry {
                                scope: scope_id,
                                key: member.clone(),
                                question: Arc::from(question),
                            };
                            if index.insert(entry, &vector) {
                                loaded += 1;
                            }
                        }
                    }
                    // Expired: its place in the set is stale.
                    _ => gone.push(member.clone()),
                }
            }
        }
        if !gone.is_empty() {
            let index_key = index_key.clone();
            let _ = link
                .run("load", |mut c| async move {
                    redis::cmd("ZREM")
                        .arg(index_key)
                        .arg(gone)
                        .query_async::<i64>(&mut c)
                        .await
                })
                .await;
        }
    }
    crate::metrics::semantic_entries(inner.read_index().len());
    tracing::info!(corpus = %scope.corpus_version, model = %scope.model, loaded, "semantic cache entries loaded from Redis");
    Ok(loaded)
}

/// Starts the stream reader; it ends when the cache it feeds is dropped.
pub(super) fn spawn_reader(inner: Weak<Inner>) {
    tokio::spawn(async move {
        let mut down_logged = false;
        loop {
            match read_stream(&inner).await {
                Ok(()) => return,
                Err(e) => {
                    if !down_logged {
                        tracing::warn!(error = %e, "semantic cache stream unreadable; other origins' entries are not learnt until Redis answers");
                        down_logged = true;
                    }
                }
            }
            tokio::time::sleep(RETRY).await;
            if inner.strong_count() == 0 {
                return;
            }
        }
    });
}

/// Reads the stream until the cache is dropped (Ok) or Redis fails (Err).
async fn read_stream(weak: &Weak<Inner>) -> redis::RedisResult<()> {
    let Some(client) = weak
        .upgrade()
        .and_then(|i| i.redis.as_ref().map(|r| r.client().clone()))
    else {
        return Ok(());
    };
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(BLOCK + Duration::from_secs(3)));
    let mut connection = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    // Start from the present: what came before is in Redis already and is loaded per scope.
    let last: Value = redis::cmd("XREVRANGE")
        .arg(STREAM)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut connection)
        .await?;
    let mut last_id = first_id(&last).unwrap_or_else(|| "0-0".to_owned());
    // A reconnection may have missed entries: reload every scope served so far.
    if let Some(inner) = weak.upgrade() {
        let scopes = inner.scopes.lock().map(|s| s.all()).unwrap_or_default();
        for (scope, id) in scopes {
            let _ = load_scope(&inner, &scope, id).await;
        }
    }
    tracing::debug!(from = %last_id, "following the semantic cache stream");
    loop {
        let reply: Option<StreamReadReply> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(512)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(STREAM)
            .arg(&last_id)
            .query_async(&mut connection)
            .await?;
        let Some(inner) = weak.upgrade() else {
            return Ok(());
        };
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            for id in key.ids {
                apply(&inner, &id.map);
                last_id = id.id;
            }
        }
    }
}

fn first_id(value: &Value) -> Option<String> {
    let Value::Array(entries) = value else {
        return None;
    };
    let Value::Array(entry) = entries.first()? else {
        return None;
    };
    match entry.first()? {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn text(map: &std::collections::HashMap<String, Value>, field: &str) -> Option<String> {
    match map.get(field)? {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// One stream entry: an insert by some origin, or a purge.
fn apply(inner: &Arc<Inner>, map: &std::collections::HashMap<String, Value>) {
    match text(map, "op").as_deref() {
        Some("add") => {
            let (Some(corpus), Some(model), Some(embedder), Some(key), Some(question)) = (
                text(map, "corpus"),
                text(map, "model"),
                text(map, "embedder"),
                text(map, "key"),
                text(map, "q"),
            ) else {
                return;
            };
            if embedder != inner.embedder.model_id() {
                return;
            }
            let scope = Scope {
                corpus_version: corpus,
                model,
            };
            // Only scopes this origin serves: others are loaded if and when it does.
            let Some(scope_id) = inner.scopes.lock().ok().and_then(|s| s.known(&scope)) else {
                return;
            };
            let Some(Value::BulkString(bytes)) = map.get("v") else {
                return;
            };
            let Some(vector) = decode_vector(bytes, inner.embedder.dimensions()) else {
                return;
            };
            let entry = Entry {
                scope: scope_id,
                key,
                question: Arc::from(question),
            };
            inner.write_index().insert(entry, &vector);
            crate::metrics::semantic_entries(inner.read_index().len());
        }
        Some("purge_all") => inner.apply_purge(&Purge::All),
        Some("purge_corpus") => {
            if let Some(corpus) = text(map, "arg") {
                inner.apply_purge(&Purge::Corpus(corpus));
            }
        }
        Some("purge_key") => {
            if let Some(key) = text(map, "arg").as_deref().and_then(CacheKey::parse) {
                inner.apply_purge(&Purge::Key(key));
            }
        }
        _ => {}
    }
}
