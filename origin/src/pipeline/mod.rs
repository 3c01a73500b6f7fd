//! The answer pipeline: the stages a question goes through, each in its own file with one
//! entry point, in the order DESIGN.md draws them. A stage either passes the request on or
//! answers it.
//!
//! Live and cached answers leave the pipeline in the same shape, an [`Answer`]: its `meta`
//! is known before the first token, its events are the tokens and one final `Done` or `Error`.

pub mod generate;
pub mod prompt;

use crate::error::AppError;
use futures::stream::BoxStream;
use libriassist_protocol::sse::{DoneEvent, MetaEvent};
use libriassist_protocol::{CacheKey, ChatRequest, ErrorDetail, Source};
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

pub struct Answer {
    pub meta: MetaEvent,
    pub events: BoxStream<'static, AnswerEvent>,
}

/// The stages, assembled once at start-up.
pub struct Pipeline {
    pub prompt: prompt::PromptBuilder,
    pub generate: generate::Generate,
}

impl Pipeline {
    /// Answers one question.
    ///
    /// # Errors
    /// Anything that stops the answer before its first token (no backend, overload, backend
    /// failure on every attempt); the caller turns it into an HTTP error.
    pub async fn answer(&self, request: &ChatRequest, ctx: &RequestContext) -> Result<Answer, AppError> {
        let passages: Vec<Passage> = Vec::new();
        let messages = self.prompt.build(request, &passages);
        self.generate.run(messages, passages, ctx).await
    }
}
