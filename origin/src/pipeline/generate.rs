//! The last stage: run the prompt on the backend pool and turn its stream into answer events,
//! with the timings the client sees in `done`.

use super::{Answer, AnswerEvent, Passage, RequestContext};
use crate::backends::{BackendEvent, ChatMessage, GenerationOptions, GenerationRequest, Pool};
use crate::error::AppError;
use crate::metrics;
use futures::StreamExt;
use libriassist_protocol::sse::{DoneEvent, MetaEvent};
use libriassist_protocol::{CacheLayer, ErrorCode, ErrorDetail, Mode, Timings};
use std::time::Instant;

pub struct Generate {
    pool: Pool,
    options: GenerationOptions,
}

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl Generate {
    pub fn new(pool: Pool, options: GenerationOptions) -> Self {
        Generate { pool, options }
    }

    /// Starts generating; resolves at the first token.
    ///
    /// # Errors
    /// The pool's refusal or failure before any token was produced.
    pub async fn run(
        &self,
        messages: Vec<ChatMessage>,
        passages: Vec<Passage>,
        ctx: &RequestContext,
    ) -> Result<Answer, AppError> {
        let request = GenerationRequest {
            model: self.pool.model().to_owned(),
            messages,
            options: self.options,
        };
        let generation = self.pool.generate(request).await?;
        let received = ctx.received;
        let ttft = received.elapsed();
        metrics::ttft(CacheLayer::Miss.as_str(), ttft.as_secs_f64());
        tracing::debug!(request_id = %ctx.request_id, backend = %generation.backend, ttft_ms = ms(ttft), "first token");

        let meta = MetaEvent {
            sources: passages.into_iter().map(|p| p.source).collect(),
            cache: CacheLayer::Miss,
            model: generation.model.clone(),
            mode: Mode::Generated,
        };
        let queue_ms = ms(generation.queue_wait);
        let first_token_at = Instant::now();
        let request_id = ctx.request_id.clone();
        let events = generation
            .events
            .map(move |event| match event {
                Ok(BackendEvent::Token(text)) => AnswerEvent::Token(text),
                Ok(BackendEvent::Done(c)) => AnswerEvent::Done(DoneEvent {
                    timings: Timings {
                        total_ms: ms(received.elapsed()),
                        queue_ms: Some(queue_ms),
                        retrieval_ms: None,
                        ttft_ms: Some(ms(ttft)),
                        generation_ms: Some(ms(first_token_at.elapsed())),
                    },
                    prompt_tokens: c.prompt_tokens,
                    completion_tokens: c.completion_tokens,
                    finish_reason: c.finish_reason,
                }),
                Err(e) => {
                    tracing::warn!(request_id = %request_id, error = %e, "answer interrupted");
                    AnswerEvent::Error(ErrorDetail::new(
                        ErrorCode::BackendFailed,
                        "the answer was interrupted; please retry",
                    ))
                }
            })
            .boxed();
        Ok(Answer { meta, events })
    }
}
