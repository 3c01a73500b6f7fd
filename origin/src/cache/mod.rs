//! Answer caches: an exact cache (same normalized question, same corpus, same model), a guarded
//! semantic cache (a paraphrase of such a question), shared by all origins through Redis, with
//! an in-memory fallback when no Redis is configured.
//!
//! The rule everything here follows: a cache may make an answer faster, never wrong and never
//! failed. Entries are scoped by corpus version and model (`keys.rs`); a semantic candidate
//! must pass the guards (`guards.rs`) on top of the similarity threshold; Redis trouble is a
//! bypass (`redis_link.rs`, `outage.rs`).
//!
//! Layout: `exact.rs` and `semantic.rs` are the two caches, `index.rs` the vector search,
//! `sync.rs` the replicas' shared view, `text.rs`/`lexicon.rs`/`guards.rs` the guards,
//! `settings.rs` the `[cache]` configuration, `eval/` and `bench.rs` the `libriassist eval cache`
//! and `bench cache` commands.
//! The pipeline stages that use them are in `crate::pipeline` (`exact_cache.rs`, `coalesce.rs`,
//! `semantic_cache.rs`).

pub mod bench;
pub mod eval;
pub mod exact;
pub mod guards;
pub mod index;
pub mod keys;
pub mod lexicon;
pub mod outage;
pub mod redis_link;
pub mod semantic;
pub mod settings;
mod sync;
pub mod text;

pub use keys::{Scope, ScopeSource};
pub use settings::{CacheConfig, CacheOverrides, SemanticConfig};

use exact::ExactCache;
use libriassist_protocol::CacheKey;
use semantic::{QueryEmbedder, SemanticCache, SemanticSettings, SemanticStats};
use serde::Serialize;
use std::sync::{Arc, OnceLock};

/// What an admin purge removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purge {
    /// Every entry of every scope.
    All,
    /// One question (its cache key), in every scope.
    Key(CacheKey),
    /// Every entry produced with one corpus version.
    Corpus(String),
}

impl Purge {
    /// The key pattern of the entries it removes (Redis `SCAN MATCH` syntax).
    pub fn pattern(&self) -> String {
        match self {
            Purge::All => keys::all_pattern(),
            Purge::Key(key) => keys::key_pattern(key),
            Purge::Corpus(version) => keys::corpus_pattern(version),
        }
    }
}

/// The caches of one origin. The semantic cache joins when its embedding model is loaded
/// ([`Caches::attach_embedder`]), which may be after the origin started serving: loading the
/// model takes seconds, and the exact cache need not wait for it.
pub struct Caches {
    pub exact: Arc<ExactCache>,
    semantic: SemanticSlot,
    pub scope: ScopeSource,
    link: Option<redis_link::RedisLink>,
    semantic_settings: Option<SemanticSettings>,
}

/// Where the semantic cache appears once loaded; the pipeline stage holds the same slot.
pub type SemanticSlot = Arc<OnceLock<Arc<SemanticCache>>>;

#[derive(Debug, Clone, Serialize)]
pub struct CacheStats {
    /// `redis` or `memory`.
    pub backend: &'static str,
    pub redis_down: bool,
    pub corpus_version: String,
    pub model: String,
    /// Exact entries stored, all scopes; absent when Redis did not answer.
    pub exact_entries: Option<u64>,
    pub semantic: Option<SemanticStats>,
}

impl Caches {
    /// Builds the caches `config` describes; the semantic cache is added by
    /// [`Caches::attach_embedder`].
    ///
    /// # Errors
    /// An invalid Redis URL. A Redis that is down is not an error: it is bypassed until it answers.
    pub fn build(
        config: &CacheConfig,
        scope: ScopeSource,
    ) -> Result<Caches, redis_link::RedisSetupError> {
        let link = match &config.redis_url {
            Some(url) => Some(redis_link::RedisLink::connect(url, config.redis_timeout())?),
            None => None,
        };
        let exact = Arc::new(match &link {
            Some(link) => ExactCache::redis(link.clone(), config.ttl()),
            None => ExactCache::memory(config.max_entries, config.ttl()),
        });
        let semantic_settings = config.semantic.enabled.then(|| SemanticSettings {
            threshold: config.semantic.threshold,
            candidates: config.semantic.candidates,
            guards: config.semantic.guards.clone(),
            max_entries: config.max_entries,
            ttl: config.ttl(),
        });
        tracing::info!(
            backend = exact.backend(),
            ttl_secs = config.ttl_secs,
            "answer caches ready"
        );
        Ok(Caches {
            exact,
            semantic: Arc::default(),
            scope,
            link,
            semantic_settings,
        })
    }

    /// Whether the configuration wants a semantic cache (and so an embedding model).
    pub fn wants_semantic(&self) -> bool {
        self.semantic_settings.is_some()
    }

    /// Turns the semantic cache on with `embedder`. Does nothing when it is off in the
    /// configuration or already on. Call it from within the Tokio runtime: with Redis, it
    /// starts loading the current scope's entries in the background.
    pub fn attach_embedder(&self, embedder: Arc<dyn QueryEmbedder>) {
        let Some(settings) = self.semantic_settings.clone() else {
            return;
        };
        let model = embedder.model_id().to_owned();
        let cache = Arc::new(SemanticCache::new(
            embedder,
            Arc::clone(&self.exact),
            self.link.clone(),
            settings,
        ));
        if self.semantic.set(Arc::clone(&cache)).is_ok() {
            tracing::info!(embedder = %model, "semantic cache ready");
            if self.link.is_some() {
                // Warm from what the other origins (or this one before a restart) learnt.
                let scope = self.scope.current();
                tokio::spawn(async move {
                    let _ = cache.preload(&scope).await;
                });
            }
        }
    }

    pub fn semantic(&self) -> Option<&Arc<SemanticCache>> {
        self.semantic.get()
    }

    pub fn semantic_slot(&self) -> SemanticSlot {
        Arc::clone(&self.semantic)
    }

    /// Removes entries here and (through Redis) on every origin. Returns the number of
    /// stored keys deleted (exact entries and question vectors).
    ///
    /// # Errors
    /// Redis unavailable: nothing was purged there, so the caller must report a failure.
    pub async fn purge(&self, purge: &Purge) -> Result<u64, redis_link::Unavailable> {
        let deleted = self.exact.purge(purge).await?;
        if let Some(semantic) = self.semantic() {
            semantic.purged(purge).await;
        }
        tracing::info!(?purge, deleted, "cache purged");
        Ok(deleted)
    }

    pub async fn stats(&self) -> CacheStats {
        let scope = self.scope.current();
        CacheStats {
            backend: self.exact.backend(),
            redis_down: self.exact.redis_link().is_some_and(|l| l.is_down()),
            corpus_version: scope.corpus_version,
            model: scope.model,
            exact_entries: self.exact.count().await.ok(),
            semantic: self.semantic().map(|s| s.stats()),
        }
    }
}
