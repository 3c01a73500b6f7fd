//! The answer pipeline: the stages a question goes through, each in its own file with one
//! entry point, in the order DESIGN.md draws them. A stage either passes the request on or
//! answers it.
//!
//! Live and cached answers leave the pipeline in the same shape, an [`Answer`]: its `meta`
//! is known before the first token, its events are the tokens and one final `Done` or `Error`.

pub mod coalesce;
pub mod exact_cache;
pub mod extractive;
pub mod generate;
pub mod prompt;
pub mod retrieve;
pub mod semantic_cache;

use crate::cache::{Scope, ScopeSource};
use crate::error::AppError;
use crate::metrics;
use coalesce::{Coalesced, Completed};
use exact_cache::ExactOutcome;
use futures::stream::BoxStream;
use libriassist_protocol::sse::{DoneEvent, MetaEvent};
use libriassist_protocol::{
    CacheKey, CacheLayer, CachedAnswer, ChatRequest, ErrorDetail, Mode, Source,
};
use semantic_cache::SemanticOutcome;
use std::sync::Arc;
use std::time::Instant;

/// Per-request state carried between stages.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// Envoy's `x-request-id` or one we made; in every log line of the request.
    pub request_id: String,
    pub received: Instant,
    /// Derived from the request with `protocol` (the edge sends the same value).
    pub cache_key: CacheKey,
}

/// A passage of the knowledge base chosen for the prompt, with what the client sees of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    pub source: Source,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AnswerEvent {
    Token(String),
    Done(DoneEvent),
    /// The answer failed midway; always the last event.
    Error(ErrorDetail),
}

/// The answer's text: its tokens, in order. What the tests compare with what was cached or
/// generated.
#[cfg(test)]
pub(crate) fn token_text(events: &[AnswerEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            AnswerEvent::Token(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

pub struct Answer {
    pub meta: MetaEvent,
    pub events: BoxStream<'static, AnswerEvent>,
}

/// The stages, assembled once at start-up.
pub struct Pipeline {
    /// The corpus version and model answers are produced with; caches are keyed by it.
    pub scope: ScopeSource,
    pub exact_cache: exact_cache::ExactCacheStage,
    pub coalesce: coalesce::Coalesce,
    pub semantic_cache: semantic_cache::SemanticCacheStage,
    pub retrieve: retrieve::Retrieve,
    pub prompt: prompt::PromptBuilder,
    pub generate: generate::Generate,
    pub extractive: extractive::Extractive,
}

impl Pipeline {
    /// Answers one question: from the exact cache, by joining an identical question being
    /// answered, or by leading a new answer (semantic cache, then generation) that others may
    /// join and that is stored in the caches once complete.
    ///
    /// # Errors
    /// Anything that stops the answer before its first token (no backend, overload, backend
    /// failure on every attempt); the caller turns it into an HTTP error.
    pub async fn answer(
        self: &Arc<Self>,
        request: &ChatRequest,
        ctx: &RequestContext,
    ) -> Result<Answer, AppError> {
        let scope = self.scope.current();
        if let ExactOutcome::Answered(answer) = self.exact_cache.run(&scope, ctx).await {
            return Ok(answer);
        }
        let flight = format!(
            "{}\n{}\n{}",
            scope.corpus_version, scope.model, ctx.cache_key
        );
        let lead = match self.coalesce.run(flight, ctx).await {
            Coalesced::Joined(answer) => return answer,
            Coalesced::Lead(lead) => lead,
        };
        let (this, store) = (Arc::clone(self), Arc::clone(self));
        let (request, key) = (request.clone(), ctx.cache_key.clone());
        let (task_ctx, task_scope, question) =
            (ctx.clone(), scope.clone(), request.question.clone());
        lead.drive(
            ctx,
            async move { this.fresh(&request, &task_scope, &task_ctx).await },
            move |completed, vector| {
                Box::pin(async move {
                    store
                        .remember(&scope, &key, &question, completed, vector)
                        .await
                })
            },
        )
        .await
    }

    /// What no cache answered: the semantic cache, then retrieval and generation. Returns the
    /// question's embedding beside the answer, to store it once the answer is complete.
    async fn fresh(
        &self,
        request: &ChatRequest,
        scope: &Scope,
        ctx: &RequestContext,
    ) -> Result<(Answer, Option<Vec<f32>>), AppError> {
        let vector = match self.semantic_cache.run(request, scope, ctx).await {
            SemanticOutcome::Answered(answer) => return Ok((answer, None)),
            SemanticOutcome::Next { vector } => vector,
        };
        metrics::cache_miss();
        // The semantic cache's vector of the question serves retrieval too (same model).
        let embedder = self.semantic_cache.embedder_id();
        let known = vector.as_deref().zip(embedder.as_deref());
        let (passages, retrieval_ms) = match self.retrieve.run(request, ctx, known).await? {
            retrieve::Retrieved::Passages {
                passages,
                retrieval_ms,
            } => (passages, Some(retrieval_ms)),
            retrieve::Retrieved::NotFound { retrieval_ms } => {
                return Ok((
                    retrieve::with_retrieval_ms(self.extractive.not_found(ctx), retrieval_ms),
                    vector,
                ));
            }
            retrieve::Retrieved::NoIndex => (Vec::new(), None),
        };
        let messages = self.prompt.build(request, &passages);
        let answer = match self.generate.run(messages, passages.clone(), ctx).await {
            Ok(answer) => answer,
            // No model can answer: the passages themselves are better than an error page.
            Err(e) if !passages.is_empty() && extractive::falls_back(&e) => {
                tracing::warn!(request_id = %ctx.request_id, error = %e, "answering extractively");
                self.extractive.answer(&passages, ctx)
            }
            Err(e) => return Err(e),
        };
        let answer = match retrieval_ms {
            Some(ms) => retrieve::with_retrieval_ms(answer, ms),
            None => answer,
        };
        Ok((answer, vector))
    }

    /// Stores a complete answer in both caches. Only what a customer could be served again
    /// as is: generated answers (an extractive one is the degraded fallback for when no model
    /// answers; cached, it would outlive the outage by a TTL) that the model ended itself (one
    /// cut by the token budget is partial) and that came from a model, not from a cache.
    async fn remember(
        &self,
        scope: &Scope,
        key: &CacheKey,
        question: &str,
        completed: Completed,
        vector: Option<Vec<f32>>,
    ) {
        let Completed { meta, text, done } = completed;
        let cut = done.finish_reason.as_deref() == Some("length");
        if meta.cache != CacheLayer::Miss
            || meta.mode != Mode::Generated
            || cut
            || text.trim().is_empty()
        {
            return;
        }
        let entry = CachedAnswer {
            answer: text,
            sources: meta.sources,
            model: meta.model,
            mode: meta.mode,
        };
        self.exact_cache
            .remember(scope, key, question, &entry)
            .await;
        if let Some(vector) = vector {
            self.semantic_cache
                .remember(scope, key, question, vector)
                .await;
        }
    }
}
