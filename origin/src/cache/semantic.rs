//! The semantic cache: a paraphrase of a question answered recently is served that answer, if
//! the embeddings are close enough *and* the guards agree (`guards.rs`).
//!
//! What is stored per question: its vector and its original text, under the question's cache
//! key. The answer itself stays in the exact cache under that same key, so a hit is "nearest
//! question, guards, then the exact entry of that question": purging or expiring an answer
//! also ends its semantic hits, and an answer is never stored twice.
//!
//! Sharing between origins: each origin searches its own in-memory index (`index.rs`), kept in
//! step through Redis. An insert writes the vector (with the TTL), records it in the scope's
//! sorted set (bounded: the least recently used leave first) and appends it to a stream; every
//! origin reads the stream (`sync.rs`) and adds what others learnt, and loads a scope's
//! existing vectors the first time it serves that scope, so a restart starts warm.
//!
//! Not here: the embedding model (`crate::embed`), deciding whether a request may use the
//! semantic cache at all (the pipeline stage skips questions with history).

use super::exact::{now_secs, ExactCache};
use super::guards::{self, Guard, GuardSettings};
use super::index::{Entry, FlatIndex, Neighbour};
use super::keys::{Scope, STREAM};
use super::redis_link::{RedisLink, Unavailable};
use super::sync;
use super::text::Analysis;
use super::Purge;
use crate::metrics;
use futures::future::BoxFuture;
use libriassist_protocol::{CacheKey, CachedAnswer};
use serde::Serialize;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

/// Turns a question into a vector; implemented by [`crate::embed::Embedder`] and by test doubles.
pub trait QueryEmbedder: Send + Sync + 'static {
    /// Vectors of different models are not comparable: part of every semantic key.
    fn model_id(&self) -> &str;
    fn dimensions(&self) -> usize;
    /// An L2-normalised vector.
    fn embed<'a>(&'a self, question: &'a str) -> BoxFuture<'a, Result<Vec<f32>, String>>;
}

impl QueryEmbedder for crate::embed::Embedder {
    fn model_id(&self) -> &str {
        crate::embed::Embedder::model_id(self)
    }

    fn dimensions(&self) -> usize {
        crate::embed::Embedder::dimensions(self)
    }

    fn embed<'a>(&'a self, question: &'a str) -> BoxFuture<'a, Result<Vec<f32>, String>> {
        Box::pin(async move { self.embed_query(question).await.map_err(|e| e.to_string()) })
    }
}

/// Searches above this many entries run on the blocking pool: a scan of tens of thousands of
/// vectors takes milliseconds, too long to hold an async worker.
const BLOCKING_SEARCH_ABOVE: usize = 10_000;
/// Stream entries kept for replicas that fall behind (approximate trim, cheap for Redis).
const STREAM_MAX_LEN: usize = 10_000;
/// Recent hits kept for the admin stats: what an operator reads to audit false hits.
const RECENT_HITS: usize = 50;
/// Single-word vectors kept for the content guard's substitutions (a few KiB each); the cache
/// is emptied when full.
const WORD_VECTORS: usize = 20_000;

#[derive(Debug, Clone)]
pub struct SemanticSettings {
    pub threshold: f32,
    pub candidates: usize,
    pub guards: GuardSettings,
    pub max_entries: usize,
    pub ttl: Duration,
}

/// What a lookup found.
pub enum Lookup {
    Hit(SemanticHit),
    /// No cached paraphrase: the vector is kept to store this question once it is answered.
    Miss {
        vector: Vec<f32>,
    },
    /// The embedding failed; the question is answered as if there were no semantic cache.
    Unavailable,
}

#[derive(Debug, Clone)]
pub struct SemanticHit {
    pub answer: CachedAnswer,
    /// The cache key of the cached question whose answer is served.
    pub key: String,
    pub question: Arc<str>,
    pub similarity: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecentHit {
    pub at: u64,
    pub question: String,
    pub matched_question: String,
    pub matched_key: String,
    pub similarity: f32,
}

#[derive(Debug, Default)]
struct Counters {
    lookups: AtomicU64,
    hits: AtomicU64,
    below_threshold: AtomicU64,
    rejected: [AtomicU64; 5],
}

/// Counters for `GET /admin/v1/cache/stats`.
#[derive(Debug, Clone, Serialize)]
pub struct SemanticStats {
    pub embedder: String,
    pub entries: usize,
    pub threshold: f32,
    pub lookups: u64,
    pub hits: u64,
    /// Lookups whose best candidate was below the threshold (or that had none).
    pub below_threshold: u64,
    pub rejected_by_guard: HashMap<&'static str, u64>,
    pub recent_hits: Vec<RecentHit>,
}

pub struct SemanticCache {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) embedder: Arc<dyn QueryEmbedder>,
    pub(super) index: RwLock<FlatIndex>,
    pub(super) scopes: Mutex<Scopes>,
    pub(super) redis: Option<RedisLink>,
    pub(super) settings: SemanticSettings,
    exact: Arc<ExactCache>,
    counters: Counters,
    recent: Mutex<VecDeque<RecentHit>>,
    words: Mutex<HashMap<String, Arc<Vec<f32>>>>,
}

/// Scopes are interned as small numbers for the index.
#[derive(Default)]
pub(super) struct Scopes {
    ids: HashMap<Scope, u32>,
    /// Scopes whose existing entries were loaded from Redis (or are being loaded).
    pub(super) loaded: HashSet<u32>,
}

impl Scopes {
    pub(super) fn id(&mut self, scope: &Scope) -> (u32, bool) {
        if let Some(&id) = self.ids.get(scope) {
            return (id, false);
        }
        let id = u32::try_from(self.ids.len()).unwrap_or(u32::MAX - 1);
        self.ids.insert(scope.clone(), id);
        (id, true)
    }

    pub(super) fn known(&self, scope: &Scope) -> Option<u32> {
        self.ids.get(scope).copied()
    }

    pub(super) fn all(&self) -> Vec<(Scope, u32)> {
        self.ids.iter().map(|(s, i)| (s.clone(), *i)).collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Counters and small maps, each updated in one step: a panic cannot leave them torn.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes a vector, keeps the scope's set bounded (least recently used out, with their
/// vectors) and tells the other origins, atomically.
const INSERT_SCRIPT: &str = r"
redis.call('HSET', KEYS[1], 'q', ARGV[2], 'v', ARGV[3], 't', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[5])
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[6])
if excess > 0 then
  local old = redis.call('ZPOPMIN', KEYS[2], excess)
  for i = 1, #old, 2 do redis.call('UNLINK', ARGV[11] .. old[i]) end
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[10], '*', 'op', 'add', 'corpus', ARGV[7], 'model', ARGV[8],
  'embedder', ARGV[9], 'key', ARGV[1], 'q', ARGV[2], 'v', ARGV[3])
return 1
";

pub(super) fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(super) fn decode_vector(bytes: &[u8], dim: usize) -> Option<Vec<f32>> {
    if bytes.len() != dim * 4 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

impl SemanticCache {
    /// A semantic cache answering from `exact`. With `redis`, shared with the other origins
    /// (a background task follows their inserts); without, local to this origin.
    pub fn new(
        embedder: Arc<dyn QueryEmbedder>,
        exact: Arc<ExactCache>,
        redis: Option<RedisLink>,
        settings: SemanticSettings,
    ) -> Self {
        let index = FlatIndex::new(embedder.dimensions(), settings.max_entries);
        let inner = Arc::new(Inner {
            embedder,
            index: RwLock::new(index),
            scopes: Mutex::new(Scopes::default()),
            redis,
            settings,
            exact,
            counters: Counters::default(),
            recent: Mutex::new(VecDeque::new()),
            words: Mutex::new(HashMap::new()),
        });
        if inner.redis.is_some() {
            sync::spawn_reader(Arc::downgrade(&inner));
        }
        SemanticCache { inner }
    }

    pub fn embedder_id(&self) -> &str {
        self.inner.embedder.model_id()
    }

    pub fn len(&self) -> usize {
        self.inner.read_index().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The best guarded paraphrase of `question` in `scope`.
    pub async fn lookup(&self, scope: &Scope, question: &str) -> Lookup {
        let inner = &self.inner;
        let scope_id = inner.scope_id(scope);
        inner.counters.lookups.fetch_add(1, Ordering::Relaxed);
        let vector = match inner.embedder.embed(question).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "question embedding failed; semantic cache skipped");
                metrics::cache_error("embed");
                return Lookup::Unavailable;
            }
        };
        let neighbours = inner.search(scope_id, vector.clone()).await;
        if neighbours.is_empty() {
            inner
                .counters
                .below_threshold
                .fetch_add(1, Ordering::Relaxed);
            return Lookup::Miss { vector };
        }
        let new = Analysis::of(question);
        for candidate in neighbours {
            let cached = Analysis::of(&candidate.entry.question);
            if let Err(guard) = inner.check(&new, &cached, candidate.similarity).await {
                inner.rejected(guard, question, &candidate);
                continue;
            }
            let Some(key) = CacheKey::parse(&candidate.entry.key) else {
                continue;
            };
            match inner.exact.get(scope, &key).await {
                Some(found) => {
                    inner.hit(scope, scope_id, question, &candidate);
                    return Lookup::Hit(SemanticHit {
                        answer: found.answer,
                        key: candidate.entry.key,
                        question: candidate.entry.question,
                        similarity: candidate.similarity,
                    });
                }
                None => {
                    // The answer expired or was purged (or Redis is unreachable): the vector
                    // alone can serve nothing. Another origin may still hold it; that is fine.
                    if inner.redis.as_ref().is_none_or(|r| !r.is_down()) {
                        inner.write_index().remove(scope_id, &candidate.entry.key);
                    }
                }
            }
        }
        Lookup::Miss { vector }
    }

    /// Remembers `question` (already answered and stored in the exact cache under `key`).
    pub async fn insert(&self, scope: &Scope, key: &CacheKey, question: &str, vector: Vec<f32>) {
        let inner = &self.inner;
        let scope_id = inner.scope_id(scope);
        let entry = Entry {
            scope: scope_id,
            key: key.as_str().to_owned(),
            question: Arc::from(question),
        };
        if !inner.write_index().insert(entry, &vector) {
            tracing::warn!(
                dimensions = vector.len(),
                "question vector of an unexpected dimension not cached"
            );
            return;
        }
        metrics::semantic_entries(self.len());
        let Some(link) = &inner.redis else { return };
        let embedder = inner.embedder.model_id().to_owned();
        let s = &inner.settings;
        let (ttl, max) = (s.ttl.as_secs(), s.max_entries);
        let (entry_key, index_key) = (
            scope.semantic_entry(&embedder, key.as_str()),
            scope.semantic_index(&embedder),
        );
        let entry_prefix = scope.semantic_entry(&embedder, "");
        let (scope, key, question) = (scope.clone(), key.as_str().to_owned(), question.to_owned());
        let _ = link
            .run("semantic_put", |mut c| async move {
                redis::Script::new(INSERT_SCRIPT)
                    .key(entry_key)
                    .key(index_key)
                    .key(STREAM)
                    .arg(key)
                    .arg(question)
                    .arg(encode_vector(&vector))
                    .arg(now_secs())
                    .arg(ttl)
                    .arg(max)
                    .arg(scope.corpus_version)
                    .arg(scope.model)
                    .arg(embedder)
                    .arg(STREAM_MAX_LEN)
                    .arg(entry_prefix)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await;
    }

    /// Applies a purge to this origin's index and, with Redis, tells the other origins.
    pub async fn purged(&self, purge: &Purge) {
        self.inner.apply_purge(purge);
        let Some(link) = &self.inner.redis else {
            return;
        };
        let (op, arg) = match purge {
            Purge::All => ("purge_all", String::new()),
            Purge::Corpus(c) => ("purge_corpus", c.clone()),
            Purge::Key(k) => ("purge_key", k.as_str().to_owned()),
        };
        let _ = link
            .run_within("purge", Duration::from_secs(5), |mut c| async move {
                redis::cmd("XADD")
                    .arg(STREAM)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(STREAM_MAX_LEN)
                    .arg("*")
                    .arg("op")
                    .arg(op)
                    .arg("arg")
                    .arg(arg)
                    .query_async::<String>(&mut c)
                    .await
            })
            .await;
    }

    pub fn stats(&self) -> SemanticStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SemanticStats {
            embedder: self.embedder_id().to_owned(),
            entries: self.len(),
            threshold: self.inner.settings.threshold,
            lookups: get(&c.lookups),
            hits: get(&c.hits),
            below_threshold: get(&c.below_threshold),
            rejected_by_guard: Guard::ALL
                .iter()
                .zip(&c.rejected)
                .map(|(g, n)| (g.as_str(), get(n)))
                .collect(),
            recent_hits: lock(&self.inner.recent).iter().cloned().collect(),
        }
    }

    /// Waits until the existing entries of `scope` are loaded (tests, benchmarks); lookups do
    /// not wait, they start the load and search what is there.
    ///
    /// # Errors
    /// Redis unavailable.
    pub async fn preload(&self, scope: &Scope) -> Result<usize, Unavailable> {
        let id = {
            let mut scopes = lock(&self.inner.scopes);
            let (id, _) = scopes.id(scope);
            scopes.loaded.insert(id);
            id
        };
        sync::load_scope(&self.inner, scope, id).await
    }
}

impl Inner {
    pub(super) fn read_index(&self) -> std::sync::RwLockReadGuard<'_, FlatIndex> {
        // The index is only mutated through its own methods, each of which leaves it whole.
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn write_index(&self) -> std::sync::RwLockWriteGuard<'_, FlatIndex> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The scope's number; the first time a scope is seen, its entries are loaded from Redis
    /// in the background.
    fn scope_id(self: &Arc<Self>, scope: &Scope) -> u32 {
        let (id, load) = {
            let mut scopes = lock(&self.scopes);
            let (id, _) = scopes.id(scope);
            let load = self.redis.is_some() && scopes.loaded.insert(id);
            (id, load)
        };
        if load {
            let inner = Arc::clone(self);
            let scope = scope.clone();
            tokio::spawn(async move {
                let _ = sync::load_scope(&inner, &scope, id).await;
            });
        }
        id
    }

    async fn search(self: &Arc<Self>, scope_id: u32, vector: Vec<f32>) -> Vec<Neighbour> {
        let (k, min) = (self.settings.candidates, self.settings.threshold);
        if self.read_index().len() <= BLOCKING_SEARCH_ABOVE {
            return self.read_index().search(scope_id, &vector, k, min);
        }
        let inner = Arc::clone(self);
        tokio::task::spawn_blocking(move || inner.read_index().search(scope_id, &vector, k, min))
            .await
            .unwrap_or_default()
    }

    /// The guards, with the single-word vectors a substitution needs: only computed when the
    /// content guard alone refuses and a substitution could change that (a few words, each
    /// embedded once and then cached).
    async fn check(&self, new: &Analysis, cached: &Analysis, similarity: f32) -> Result<(), Guard> {
        let settings = &self.settings.guards;
        let verdict = guards::check_with(new, cached, similarity, settings, &|_, _| None);
        if verdict != Err(Guard::Content) {
            return verdict;
        }
        let words = guards::substitution_words(new, cached, similarity, settings);
        if words.is_empty() {
            return verdict;
        }
        let mut vectors: HashMap<String, Arc<Vec<f32>>> = HashMap::new();
        for word in words {
            match self.word_vector(&word).await {
                Some(v) => {
                    vectors.insert(word, v);
                }
                None => return verdict,
            }
        }
        guards::check_with(new, cached, similarity, settings, &|a, b| {
            Some(crate::vectors::dot(vectors.get(a)?, vectors.get(b)?))
        })
    }

    async fn word_vector(&self, word: &str) -> Option<Arc<Vec<f32>>> {
        if let Some(v) = lock(&self.words).get(word) {
            return Some(Arc::clone(v));
        }
        let v = Arc::new(self.embedder.embed(word).await.ok()?);
        let mut words = lock(&self.words);
        if words.len() >= WORD_VECTORS {
            words.clear();
        }
        words.insert(word.to_owned(), Arc::clone(&v));
        Some(v)
    }

    fn rejected(&self, guard: Guard, question: &str, candidate: &Neighbour) {
        metrics::semantic_rejected(guard.as_str());
        if let Some(n) = self
            .counters
            .rejected
            .get(Guard::ALL.iter().position(|g| *g == guard).unwrap_or(0))
        {
            n.fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(guard = guard.as_str(), similarity = candidate.similarity, question, cached = %candidate.entry.question, "semantic candidate refused by a guard");
    }

    fn hit(&self, scope: &Scope, scope_id: u32, question: &str, candidate: &Neighbour) {
        self.counters.hits.fetch_add(1, Ordering::Relaxed);
        metrics::semantic_similarity(candidate.similarity);
        self.write_index().touch(scope_id, &candidate.entry.key);
        let mut recent = lock(&self.recent);
        if recent.len() >= RECENT_HITS {
            recent.pop_front();
        }
        recent.push_back(RecentHit {
            at: now_secs(),
            question: question.to_owned(),
            matched_question: candidate.entry.question.to_string(),
            matched_key: candidate.entry.key.clone(),
            similarity: candidate.similarity,
        });
        drop(recent);
        // Keep the vector alive and last in line for eviction, off the request's path.
        if let Some(link) = self.redis.clone() {
            let embedder = self.embedder.model_id().to_owned();
            let (entry_key, index_key) = (
                scope.semantic_entry(&embedder, &candidate.entry.key),
                scope.semantic_index(&embedder),
            );
            let (member, ttl) = (candidate.entry.key.clone(), self.settings.ttl.as_secs());
            tokio::spawn(async move {
                let _ = link
                    .run("semantic_touch", |mut c| async move {
                        redis::pipe()
                            .cmd("EXPIRE")
                            .arg(&entry_key)
                            .arg(ttl)
                            .ignore()
                            .cmd("ZADD")
                            .arg(&index_key)
                            .arg("XX")
                            .arg(now_secs())
                            .arg(member)
                            .ignore()
                            .query_async::<()>(&mut c)
                            .await
                    })
                    .await;
            });
        }
    }

    pub(super) fn apply_purge(&self, purge: &Purge) {
        let removed = match purge {
            Purge::All => self.write_index().retain(|_| false),
            Purge::Key(k) => self.write_index().retain(|e| e.key != k.as_str()),
            Purge::Corpus(c) => {
                let ids: HashSet<u32> = lock(&self.scopes)
                    .all()
                    .into_iter()
                    .filter(|(s, _)| &s.corpus_version == c)
                    .map(|(_, id)| id)
                    .collect();
                self.write_index().retain(|e| !ids.contains(&e.scope))
            }
        };
        metrics::semantic_entries(self.read_index().len());
        tracing::info!(removed, ?purge, "semantic index purged");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use libriassist_protocol::{cache_key, ChatRequest, Mode};

    /// A stand-in embedder: bag of folded words hashed into 64 dimensions. Word overlap decides
    /// similarity, which is all these tests need (the real model is measured by the evaluation).
    pub(crate) struct BagOfWords;

    impl QueryEmbedder for BagOfWords {
        fn model_id(&self) -> &str {
            "bag-of-words-64"
        }
        fn dimensions(&self) -> usize {
            64
        }
        fn embed<'a>(&'a self, question: &'a str) -> BoxFuture<'a, Result<Vec<f32>, String>> {
            Box::pin(async move { Ok(bag_of_words(question)) })
        }
    }

    pub(crate) fn bag_of_words(text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; 64];
        for t in super::super::text::tokenize(text) {
            let h = t.folded.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            v[(h % 64) as usize] += 1.0;
        }
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        v.iter().map(|x| x / n).collect()
    }

    fn settings(threshold: f32) -> SemanticSettings {
        SemanticSettings {
            threshold,
            candidates: 5,
            guards: GuardSettings::default(),
            max_entries: 100,
            ttl: Duration::from_secs(60),
        }
    }

    async fn answered(
        cache: &SemanticCache,
        exact: &ExactCache,
        scope: &Scope,
        question: &str,
        answer: &str,
    ) {
        let key = cache_key(&ChatRequest {
            question: question.into(),
            history: vec![],
            session_id: None,
        });
        let entry = CachedAnswer {
            answer: answer.into(),
            sources: vec![],
            model: "m".into(),
            mode: Mode::Generated,
        };
        exact
            .put(scope, &key, question, &entry)
            .await
            .expect("memory put");
        cache
            .insert(scope, &key, question, bag_of_words(question))
            .await;
    }

    /// A semantic cache over an in-memory exact cache, and the scope both tests answer in.
    fn in_memory() -> (Arc<ExactCache>, SemanticCache, Scope) {
        let exact = Arc::new(ExactCache::memory(100, Duration::from_secs(60)));
        let cache = SemanticCache::new(
            Arc::new(BagOfWords),
            Arc::clone(&exact),
            None,
            settings(0.6),
        );
        let scope = Scope {
            corpus_version: "v".into(),
            model: "m".into(),
        };
        (exact, cache, scope)
    }

    #[tokio::test]
    async fn paraphrase_hits_and_guarded_lookalikes_miss() {
        let (exact, cache, scope) = in_memory();
        answered(
            &cache,
            &exact,
            &scope,
            "Quels formats proposez-vous ?",
            "Poche et numérique.",
        )
        .await;

        let Lookup::Hit(hit) = cache
            .lookup(&scope, "Quels formats proposez-vous donc ?")
            .await
        else {
            panic!("paraphrase should hit")
        };
        assert_eq!(hit.answer.answer, "Poche et numérique.");
        assert!(hit.similarity >= 0.6);
        assert_eq!(&*hit.question, "Quels formats proposez-vous ?");

        assert!(matches!(
            cache
                .lookup(&scope, "Quels formats ne proposez-vous pas ?")
                .await,
            Lookup::Miss { .. }
        ));
        let other = Scope {
            corpus_version: "v2".into(),
            model: "m".into(),
        };
        assert!(matches!(
            cache.lookup(&other, "Quels formats proposez-vous ?").await,
            Lookup::Miss { .. }
        ));

        let stats = cache.stats();
        assert_eq!((stats.lookups, stats.hits), (3, 1));
        assert_eq!(stats.rejected_by_guard["negation"], 1);
        assert_eq!(stats.recent_hits.len(), 1);
    }

    #[tokio::test]
    async fn a_purged_answer_ends_its_semantic_hits() {
        let (exact, cache, scope) = in_memory();
        answered(
            &cache,
            &exact,
            &scope,
            "Quels formats proposez-vous ?",
            "Poche.",
        )
        .await;
        exact.purge(&Purge::All).await.expect("memory purge");
        assert!(matches!(
            cache
                .lookup(&scope, "Quels formats proposez-vous donc ?")
                .await,
            Lookup::Miss { .. }
        ));
        assert_eq!(cache.len(), 0, "the orphan vector was dropped");
        answered(
            &cache,
            &exact,
            &scope,
            "Quels formats proposez-vous ?",
            "Poche.",
        )
        .await;
        cache.purged(&Purge::Corpus("v".into())).await;
        assert!(cache.is_empty());
    }

    #[test]
    fn vectors_round_trip_as_bytes() {
        let v = vec![0.25f32, -1.0, 3.5];
        assert_eq!(decode_vector(&encode_vector(&v), 3), Some(v));
        assert_eq!(decode_vector(&[0, 1, 2], 3), None);
    }
}
