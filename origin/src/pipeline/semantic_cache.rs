//! Semantic stage: a guarded paraphrase of a question answered recently is replayed with
//! `cache: semantic` (see `crate::cache::semantic` for what "guarded" means).
//!
//! Runs after the exact cache and coalescing, only for the leader of a flight, so one
//! embedding serves every identical question asked at once. Questions with history are not
//! looked up nor stored: "Et en poche ?" means something else after each earlier question,
//! and the exact key (which includes the history) already covers repeats of a whole exchange.

use super::exact_cache::replay;
use super::{Answer, RequestContext};
use crate::cache::semantic::Lookup;
use crate::cache::{Scope, SemanticSlot};
use crate::metrics;
use libriassist_protocol::{CacheKey, CacheLayer, ChatRequest};

pub enum SemanticOutcome {
    Answered(Answer),
    /// Go on. `vector` is the question's embedding when it may be stored once answered.
    Next {
        vector: Option<Vec<f32>>,
    },
}

pub struct SemanticCacheStage {
    cache: SemanticSlot,
}

impl SemanticCacheStage {
    /// The slot stays empty while there is no semantic cache (off, or its embedding model is
    /// not loaded yet); questions then go on as on a miss.
    pub fn new(cache: SemanticSlot) -> Self {
        SemanticCacheStage { cache }
    }

    pub async fn run(
        &self,
        request: &ChatRequest,
        scope: &Scope,
        ctx: &RequestContext,
    ) -> SemanticOutcome {
        let Some(cache) = self.cache.get() else {
            return SemanticOutcome::Next { vector: None };
        };
        if !request.history.is_empty() {
            return SemanticOutcome::Next { vector: None };
        }
        match cache.lookup(scope, request.question.trim()).await {
            Lookup::Hit(hit) => {
                metrics::cache_hit(CacheLayer::Semantic.as_str());
                tracing::info!(
                    request_id = %ctx.request_id,
                    key = %ctx.cache_key,
                    matched_key = %hit.key,
                    matched_question = %hit.question,
                    similarity = hit.similarity,
                    "semantic cache hit"
                );
                SemanticOutcome::Answered(replay(hit.answer, CacheLayer::Semantic, ctx.received))
            }
            Lookup::Miss { vector } => SemanticOutcome::Next {
                vector: Some(vector),
            },
            Lookup::Unavailable => SemanticOutcome::Next { vector: None },
        }
    }

    /// The model the vectors of [`SemanticOutcome::Next`] come from, while the cache is on.
    pub fn embedder_id(&self) -> Option<String> {
        self.cache.get().map(|c| c.embedder_id().to_owned())
    }

    /// Stores the question's vector once its answer is in the exact cache under `key`.
    pub async fn remember(&self, scope: &Scope, key: &CacheKey, question: &str, vector: Vec<f32>) {
        if let Some(cache) = self.cache.get() {
            cache.insert(scope, key, question.trim(), vector).await;
        }
    }
}
