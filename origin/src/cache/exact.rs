//! The exact cache: one entry per (scope, cache key), in Redis when configured, else in a
//! bounded in-memory cache of this origin.
//!
//! An entry is a Redis hash: `answer` (the [`CachedAnswer`] JSON the edge also receives),
//! `question` (as first asked, for audits and the semantic guards), `created` (Unix seconds)
//! and `hits`. A hit increments `hits` and pushes the expiry back by the TTL in one atomic
//! script, so an entry that keeps being asked stays, and one never asked again leaves.
//!
//! Every operation is bounded by the Redis deadline and returns "nothing" when Redis is down or
//! slow: a cache can make an answer faster, never make it fail.

use super::keys::Scope;
use super::redis_link::{RedisLink, Unavailable};
use super::Purge;
use libriassist_protocol::{CacheKey, CachedAnswer};
use moka::sync::Cache;
use redis::aio::ConnectionManager;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Purges and counts walk the key space; they are admin operations, not on the request path.
const ADMIN_DEADLINE: Duration = Duration::from_secs(30);

/// A found entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub answer: CachedAnswer,
    /// Unix seconds when it was stored.
    pub created: u64,
    /// Hits including this one.
    pub hits: u64,
}

pub struct ExactCache {
    store: Store,
    ttl: Duration,
}

enum Store {
    Redis(RedisLink),
    Memory(Cache<String, Arc<MemoryEntry>>),
}

struct MemoryEntry {
    answer: CachedAnswer,
    created: u64,
    hits: AtomicU64,
}

/// Refreshes the TTL and counts the hit only if the entry exists (HINCRBY alone would create
/// a husk entry holding nothing but `hits`).
const GET_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local hits = redis.call('HINCRBY', KEYS[1], 'hits', 1)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return {redis.call('HGET', KEYS[1], 'answer'), redis.call('HGET', KEYS[1], 'created'), hits}
";

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ExactCache {
    pub fn redis(link: RedisLink, ttl: Duration) -> Self {
        ExactCache {
            store: Store::Redis(link),
            ttl,
        }
    }

    /// Bounded by entry count; an entry not asked for `ttl` leaves (the same "TTL refreshed on
    /// hit" rule as in Redis).
    pub fn memory(max_entries: usize, ttl: Duration) -> Self {
        let cache = Cache::builder()
            .max_capacity(max_entries as u64)
            .time_to_idle(ttl)
            .build();
        ExactCache {
            store: Store::Memory(cache),
            ttl,
        }
    }

    /// `redis` or `memory`, for stats and logs.
    pub fn backend(&self) -> &'static str {
        match self.store {
            Store::Redis(_) => "redis",
            Store::Memory(_) => "memory",
        }
    }

    pub fn redis_link(&self) -> Option<&RedisLink> {
        match &self.store {
            Store::Redis(link) => Some(link),
            Store::Memory(_) => None,
        }
    }

    /// The entry of `key` in `scope`; counts the hit and refreshes its TTL. `None` on a miss,
    /// and also when Redis is down or slow (the caller generates, as on a miss).
    pub async fn get(&self, scope: &Scope, key: &CacheKey) -> Option<Hit> {
        let redis_key = scope.exact(key);
        match &self.store {
            Store::Memory(cache) => {
                let entry = cache.get(&redis_key)?;
                let hits = entry.hits.fetch_add(1, Ordering::Relaxed) + 1;
                Some(Hit {
                    answer: entry.answer.clone(),
                    created: entry.created,
                    hits,
                })
            }
            Store::Redis(link) => {
                let ttl = self.ttl.as_secs();
                let found: Option<(String, u64, u64)> = link
                    .run("get", |mut c| async move {
                        redis::Script::new(GET_SCRIPT)
                            .key(redis_key)
                            .arg(ttl)
                            .invoke_async(&mut c)
                            .await
                    })
                    .await
                    .ok()?;
                let (json, created, hits) = found?;
                match serde_json::from_str::<CachedAnswer>(&json) {
                    Ok(answer) => Some(Hit {
                        answer,
                        created,
                        hits,
                    }),
                    Err(e) => {
                        // Written by another version of the code, or by hand: a miss, and the
                        // next successful answer overwrites it.
                        tracing::warn!(key = %key, error = %e, "unreadable exact cache entry ignored");
                        crate::metrics::cache_error("decode");
                        None
                    }
                }
            }
        }
    }

    /// Stores an answer for `key` in `scope` with a fresh TTL.
    ///
    /// # Errors
    /// Redis down, slow or failing; already counted and logged.
    pub async fn put(
        &self,
        scope: &Scope,
        key: &CacheKey,
        question: &str,
        answer: &CachedAnswer,
    ) -> Result<(), Unavailable> {
        let redis_key = scope.exact(key);
        let created = now_secs();
        match &self.store {
            Store::Memory(cache) => {
                let entry = MemoryEntry {
                    answer: answer.clone(),
                    created,
                    hits: AtomicU64::new(0),
                };
                cache.insert(redis_key, Arc::new(entry));
                Ok(())
            }
            Store::Redis(link) => {
                let json = serde_json::to_string(answer).map_err(|_| Unavailable::Failed)?;
                let ttl = self.ttl.as_secs();
                let question = question.to_owned();
                link.run("put", |mut c| async move {
                    redis::pipe()
                        .atomic()
                        .cmd("DEL")
                        .arg(&redis_key)
                        .ignore()
                        .cmd("HSET")
                        .arg(&redis_key)
                        .arg("answer")
                        .arg(json)
                        .arg("question")
                        .arg(question)
                        .arg("created")
                        .arg(created)
                        .arg("hits")
                        .arg(0)
                        .ignore()
                        .cmd("EXPIRE")
                        .arg(&redis_key)
                        .arg(ttl)
                        .ignore()
                        .query_async::<()>(&mut c)
                        .await
                })
                .await
            }
        }
    }

    /// Deletes the entries `purge` designates (for Redis: exact entries and semantic vectors
    /// alike, since both live under the same prefixes). Returns how many were deleted.
    ///
    /// # Errors
    /// Redis down or failing.
    pub async fn purge(&self, purge: &Purge) -> Result<u64, Unavailable> {
        let pattern = purge.pattern();
        match &self.store {
            Store::Memory(cache) => {
                let doomed: Vec<Arc<String>> = cache
                    .iter()
                    .map(|(k, _)| k)
                    .filter(|k| glob_match(&pattern, k))
                    .collect();
                for key in &doomed {
                    cache.invalidate(key.as_str());
                }
                Ok(doomed.len() as u64)
            }
            Store::Redis(link) => {
                link.run_within("purge", ADMIN_DEADLINE, |mut c| async move {
                    scan_unlink(&mut c, &pattern).await
                })
                .await
            }
        }
    }

    /// Entries currently stored (all scopes). Walks the key space on Redis: for the admin
    /// stats, not for the request path.
    ///
    /// # Errors
    /// Redis down or failing.
    pub async fn count(&self) -> Result<u64, Unavailable> {
        match &self.store {
            Store::Memory(cache) => {
                cache.run_pending_tasks();
                Ok(cache.entry_count())
            }
            Store::Redis(link) => {
                let pattern = Purge::All.pattern();
                link.run_within("count", ADMIN_DEADLINE, |mut c| async move {
                    let mut n = 0u64;
                    scan(&mut c, &pattern, |keys| {
                        n += keys.iter().filter(|k| is_exact_key(k)).count() as u64;
                    })
                    .await?;
                    Ok(n)
                })
                .await
            }
        }
    }
}

/// Exact entries end with the 64-hex-digit cache key right after the model segment; vectors
/// and indexes have a `sem:`/`semindex:` part before it.
fn is_exact_key(key: &str) -> bool {
    let Some((head, last)) = key.rsplit_once(':') else {
        return false;
    };
    CacheKey::parse(last).is_some() && !head.contains(":sem:")
}

async fn scan(
    c: &mut ConnectionManager,
    pattern: &str,
    mut each: impl FnMut(&[String]),
) -> redis::RedisResult<()> {
    let mut cursor: u64 = 0;
    loop {
        let (next, keys) = scan_page(c, pattern, cursor).await?;
        each(&keys);
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// One SCAN page of the keys matching `pattern` from `cursor`, and the cursor of the next page
/// (0 after the last).
async fn scan_page(
    c: &mut ConnectionManager,
    pattern: &str,
    cursor: u64,
) -> redis::RedisResult<(u64, Vec<String>)> {
    redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(1000)
        .query_async(c)
        .await
}

/// Deletes every key matching `pattern`, a batch per SCAN page. UNLINK frees memory off Redis's
/// main thread, so a large purge does not stall other clients.
pub(crate) async fn scan_unlink(
    c: &mut ConnectionManager,
    pattern: &str,
) -> redis::RedisResult<u64> {
    let mut cursor: u64 = 0;
    let mut deleted = 0u64;
    loop {
        let (next, keys) = scan_page(c, pattern, cursor).await?;
        if !keys.is_empty() {
            let n: u64 = redis::cmd("UNLINK").arg(&keys).query_async(c).await?;
            deleted += n;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// Glob matching with `*` only, which is all the purge patterns use; the same semantics as
/// Redis's MATCH for them, so both stores purge the same entries.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = match parts.split_first() {
        Some(split) => split,
        None => return text.is_empty(),
    };
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return remaining.is_empty();
    };
    for part in middle {
        match remaining.find(part) {
            Some(i) => remaining = &remaining[i + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use libriassist_protocol::{cache_key, ChatRequest, Mode};

    fn key(q: &str) -> CacheKey {
        cache_key(&ChatRequest {
            question: q.into(),
            history: vec![],
            session_id: None,
        })
    }

    fn answer(text: &str) -> CachedAnswer {
        CachedAnswer {
            answer: text.into(),
            sources: vec![],
            model: "m".into(),
            mode: Mode::Generated,
        }
    }

    #[test]
    fn glob() {
        assert!(glob_match("a*", "abc"));
        assert!(glob_match("a*:k", "a:x:y:k"));
        assert!(!glob_match("a*:k", "a:x:y:kk"));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(!glob_match("a*b*c", "aXcYb"));
        assert!(glob_match("abc", "abc"));
        assert!(!glob_match("abc", "abcd"));
        assert!(!glob_match("ab*b", "ab"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn exact_keys_are_told_apart_from_vectors() {
        let scope = Scope {
            corpus_version: "c".into(),
            model: "m:7b".into(),
        };
        let k = key("q");
        assert!(is_exact_key(&scope.exact(&k)));
        assert!(!is_exact_key(&scope.semantic_entry("e5", k.as_str())));
        assert!(!is_exact_key(&scope.semantic_index("e5")));
    }

    #[tokio::test]
    async fn memory_store_scopes_counts_and_purges() {
        let cache = ExactCache::memory(100, Duration::from_secs(60));
        let v1 = Scope {
            corpus_version: "v1".into(),
            model: "m".into(),
        };
        let v2 = Scope {
            corpus_version: "v2".into(),
            model: "m".into(),
        };
        let other_model = Scope {
            corpus_version: "v1".into(),
            model: "n".into(),
        };
        let (a, b) = (key("a"), key("b"));
        cache
            .put(&v1, &a, "a", &answer("A1"))
            .await
            .expect("memory put");
        cache
            .put(&v2, &a, "a", &answer("A2"))
            .await
            .expect("memory put");
        cache
            .put(&v1, &b, "b", &answer("B1"))
            .await
            .expect("memory put");
        assert_eq!(
            cache.get(&v1, &a).await.map(|h| h.answer.answer),
            Some("A1".into())
        );
        assert_eq!(
            cache.get(&v2, &a).await.map(|h| (h.answer.answer, h.hits)),
            Some(("A2".into(), 1))
        );
        assert_eq!(cache.get(&v2, &a).await.map(|h| h.hits), Some(2));
        assert_eq!(cache.get(&other_model, &a).await, None);
        assert_eq!(cache.count().await, Ok(3));

        assert_eq!(cache.purge(&Purge::Corpus("v1".into())).await, Ok(2));
        assert_eq!(cache.get(&v1, &a).await, None);
        assert!(cache.get(&v2, &a).await.is_some());
        cache
            .put(&v1, &a, "a", &answer("A1"))
            .await
            .expect("memory put");
        assert_eq!(cache.purge(&Purge::Key(a.clone())).await, Ok(2));
        assert_eq!(cache.get(&v2, &a).await, None);
        cache
            .put(&v1, &b, "b", &answer("B1"))
            .await
            .expect("memory put");
        assert_eq!(cache.purge(&Purge::All).await, Ok(1));
        assert_eq!(cache.count().await, Ok(0));
    }

    #[tokio::test]
    async fn memory_store_is_bounded() {
        let cache = ExactCache::memory(10, Duration::from_secs(60));
        let scope = Scope {
            corpus_version: "v".into(),
            model: "m".into(),
        };
        for i in 0..100 {
            cache
                .put(&scope, &key(&i.to_string()), "q", &answer("x"))
                .await
                .expect("memory put");
        }
        let n = cache.count().await.expect("memory count");
        assert!(n <= 10, "{n} entries");
    }
}
