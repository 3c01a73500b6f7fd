//! Pipeline stage: the passages of the knowledge base an answer is grounded on.
//!
//! Runs after the caches and before the prompt. It embeds the question, runs the hybrid search
//! on the index version being served and applies the minimum-relevance rule
//! (`knowledge/retriever.rs`). Its outcome decides what follows: passages go to the prompt (and
//! to the extractive fallback), "not found" is answered at once with the configured "I don't
//! know" text, and without a knowledge base the question goes to the model ungrounded, as
//! before one existed.
//!
//! Only the question is searched, not the conversation: a follow-up that only makes sense with
//! its history ("Et en poche ?") retrieves less well, but an earlier topic never drags passages
//! into an answer about a new one.

use super::{Answer, AnswerEvent, Passage, RequestContext};
use crate::error::AppError;
use crate::knowledge::KnowledgeBase;
use futures::StreamExt;
use libriassist_protocol::{ChatRequest, Source};
use std::sync::Arc;
use std::time::Instant;

pub struct Retrieve {
    knowledge: Option<Arc<KnowledgeBase>>,
}

/// What retrieval found.
#[derive(Debug, Clone, PartialEq)]
pub enum Retrieved {
    /// Passages to ground the answer on, best first; the prompt numbers them [1], [2]...
    Passages {
        passages: Vec<Passage>,
        retrieval_ms: f64,
    },
    /// No passage is relevant enough: the answer must say it does not know.
    NotFound { retrieval_ms: f64 },
    /// No knowledge base is configured.
    NoIndex,
}

impl Retrieve {
    pub fn new(knowledge: Option<Arc<KnowledgeBase>>) -> Retrieve {
        Retrieve { knowledge }
    }

    /// Retrieves the passages for `request`'s question; `known` is its vector if the semantic
    /// cache embedded it already, with that model's id.
    ///
    /// # Errors
    /// [`AppError::Internal`] when the question cannot be embedded or the index search fails;
    /// the detail is logged, not shown.
    pub async fn run(
        &self,
        request: &ChatRequest,
        ctx: &RequestContext,
        known: Option<(&[f32], &str)>,
    ) -> Result<Retrieved, AppError> {
        let Some(knowledge) = &self.knowledge else {
            return Ok(Retrieved::NoIndex);
        };
        let started = Instant::now();
        let (index, retrieval) = knowledge
            .retrieve(request.question.trim(), known)
            .await
            .map_err(|e| AppError::Internal(format!("retrieval: {e}")))?;
        let retrieval_ms = ms(started);
        tracing::debug!(
            request_id = %ctx.request_id,
            corpus_version = %index.manifest.corpus_version,
            passages = retrieval.hits.len(),
            best_cosine = retrieval.best_cosine,
            embed_ms = retrieval.embed_ms,
            search_ms = retrieval.search_ms,
            "retrieved"
        );
        if retrieval.hits.is_empty() {
            return Ok(Retrieved::NotFound { retrieval_ms });
        }
        let passages = retrieval
            .hits
            .iter()
            .filter_map(|hit| {
                let chunk = index.chunks.get(hit.ord as usize)?;
                let title = match &chunk.heading {
                    Some(h) if !h.is_empty() && !chunk.title.is_empty() => {
                        format!("{} › {h}", chunk.title)
                    }
                    Some(h) if !h.is_empty() => h.clone(),
                    _ => chunk.title.clone(),
                };
                let score = (hit.score * 1000.0).round() / 1000.0;
                Some(Passage {
                    source: Source {
                        id: chunk.id.clone(),
                        title,
                        url: chunk.url.clone(),
                        score,
                    },
                    text: chunk.text.clone(),
                })
            })
            .collect();
        Ok(Retrieved::Passages {
            passages,
            retrieval_ms,
        })
    }
}

fn ms(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

/// `answer` with the retrieval time in its `done` timings, which the generation stage cannot
/// know.
pub fn with_retrieval_ms(answer: Answer, retrieval_ms: f64) -> Answer {
    let Answer { meta, events } = answer;
    let events = events
        .map(move |event| match event {
            AnswerEvent::Done(mut done) => {
                done.timings.retrieval_ms = Some(retrieval_ms);
                AnswerEvent::Done(done)
            }
            other => other,
        })
        .boxed();
    Answer { meta, events }
}
