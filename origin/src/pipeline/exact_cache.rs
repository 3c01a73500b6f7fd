//! First stage: the same normalized question (and history) already answered for this corpus
//! and model is replayed from the exact cache, in the same event shape as a live answer.
//!
//! A lookup that fails (Redis down or slow) is a miss, never an error: the request goes on to
//! be generated. Storing happens after a successful generation ([`ExactCacheStage::remember`]).

use super::{Answer, AnswerEvent, RequestContext};
use crate::cache::exact::ExactCache;
use crate::cache::keys::Scope;
use crate::metrics;
use futures::StreamExt;
use libriassist_protocol::sse::{replay_pieces, DoneEvent, MetaEvent};
use libriassist_protocol::{CacheKey, CacheLayer, CachedAnswer, Timings};
use std::sync::Arc;
use std::time::Instant;

pub enum ExactOutcome {
    /// Found: replay it.
    Answered(Answer),
    /// Not found (or the cache is unavailable): go on.
    Next,
}

pub struct ExactCacheStage {
    cache: Option<Arc<ExactCache>>,
}

impl ExactCacheStage {
    /// `None`: caching is off and every request goes on.
    pub fn new(cache: Option<Arc<ExactCache>>) -> Self {
        ExactCacheStage { cache }
    }

    pub async fn run(&self, scope: &Scope, ctx: &RequestContext) -> ExactOutcome {
        let Some(cache) = &self.cache else {
            return ExactOutcome::Next;
        };
        match cache.get(scope, &ctx.cache_key).await {
            Some(hit) => {
                metrics::cache_hit(CacheLayer::Exact.as_str());
                tracing::debug!(request_id = %ctx.request_id, key = %ctx.cache_key, hits = hit.hits, created = hit.created, "exact cache hit");
                ExactOutcome::Answered(replay(hit.answer, CacheLayer::Exact, ctx.received))
            }
            None => ExactOutcome::Next,
        }
    }

    /// Stores a complete generated answer; a failure is logged by the cache and otherwise
    /// ignored (the client already has its answer).
    pub async fn remember(
        &self,
        scope: &Scope,
        key: &CacheKey,
        question: &str,
        answer: &CachedAnswer,
    ) {
        if let Some(cache) = &self.cache {
            let _ = cache.put(scope, key, question, answer).await;
        }
    }
}

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// A cached answer as an [`Answer`]: `meta` with `layer`, the text in word-sized tokens (as the
/// edge replays it, `protocol::sse::replay_pieces`), then `done` with this request's time.
pub fn replay(entry: CachedAnswer, layer: CacheLayer, received: Instant) -> Answer {
    metrics::ttft(layer.as_str(), received.elapsed().as_secs_f64());
    let tokens: Vec<AnswerEvent> = replay_pieces(&entry.answer)
        .map(|p| AnswerEvent::Token(p.to_owned()))
        .collect();
    let meta = MetaEvent {
        sources: entry.sources,
        cache: layer,
        model: entry.model,
        mode: entry.mode,
    };
    let done = futures::stream::once(async move {
        AnswerEvent::Done(DoneEvent {
            timings: Timings {
                total_ms: ms(received.elapsed()),
                ..Timings::default()
            },
            ..DoneEvent::default()
        })
    });
    Answer {
        meta,
        events: futures::stream::iter(tokens).chain(done).boxed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libriassist_protocol::{cache_key, ChatRequest, Mode};

    #[tokio::test]
    async fn hit_replays_the_answer_and_miss_goes_on() {
        let cache = Arc::new(ExactCache::memory(10, std::time::Duration::from_secs(60)));
        let stage = ExactCacheStage::new(Some(cache));
        let scope = Scope {
            corpus_version: "v".into(),
            model: "m".into(),
        };
        let request = ChatRequest {
            question: "Quels formats ?".into(),
            history: vec![],
            session_id: None,
        };
        let ctx = RequestContext {
            request_id: "r".into(),
            received: Instant::now(),
            cache_key: cache_key(&request),
        };
        assert!(matches!(stage.run(&scope, &ctx).await, ExactOutcome::Next));
        let entry = CachedAnswer {
            answer: "Poche et numérique.".into(),
            sources: vec![],
            model: "m".into(),
            mode: Mode::Generated,
        };
        stage
            .remember(&scope, &ctx.cache_key, &request.question, &entry)
            .await;
        let ExactOutcome::Answered(answer) = stage.run(&scope, &ctx).await else {
            panic!("expected a hit")
        };
        assert_eq!(answer.meta.cache, CacheLayer::Exact);
        let events: Vec<AnswerEvent> = answer.events.collect().await;
        assert_eq!(super::super::token_text(&events), entry.answer);
        assert!(matches!(events.last(), Some(AnswerEvent::Done(_))));
        assert!(matches!(
            ExactCacheStage::new(None).run(&scope, &ctx).await,
            ExactOutcome::Next
        ));
    }
}
