//! One generation request from admission to its last byte, timed like Ollama: faults are
//! drawn, a slot is taken (or the request waits, or is refused), prompt evaluation takes the
//! time to first token, then tokens follow at the slot's pace. As with Ollama, response headers
//! leave with the first token, so a client sees nothing while a request queues or hangs.
//!
//! The slot permit travels inside the response body, so the moment hyper drops the body (the
//! client went away, or the connection broke) the slot is free for the next request.

use super::error::{SimError, INJECTED_FAILURE};
use super::generate::{answer, context_ids, Budget};
use super::models::ModelId;
use super::slots::SlotPermit;
use super::state::Sim;
use super::stats::Stats;
use super::wire::{Endpoint, Metrics, Object};
use axum::body::Body;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{sleep_until, Instant};

/// A validated generation request.
#[derive(Debug, Clone)]
pub struct Job {
    pub endpoint: Endpoint,
    /// The model as the request spelled it: Ollama echoes that spelling back.
    pub model: String,
    pub model_id: ModelId,
    /// Everything the model reads; the answer is a function of it and the seed.
    pub prompt: String,
    /// The text whose key words the answer repeats (the last user message).
    pub focus: String,
    pub prompt_tokens: u32,
    pub stream: bool,
    pub budget: Budget,
    /// /api/generate's deprecated `context`, left out for raw prompts as Ollama does.
    pub with_context: bool,
    pub arrival: Instant,
}

/// Instants that become the last object's durations.
#[derive(Debug, Clone, Copy)]
struct Timeline {
    arrival: Instant,
    slot_taken: Instant,
    first_token: Instant,
}

impl Timeline {
    fn metrics(&self, prompt_tokens: u32, eval_count: usize, done: Instant) -> Metrics {
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Metrics {
            total_duration: ns(done - self.arrival),
            // No model load is simulated; time spent waiting for a slot is what delays a loaded
            // model's start, so it is reported here rather than lost.
            load_duration: ns(self.slot_taken - self.arrival),
            prompt_eval_count: u64::from(prompt_tokens),
            prompt_eval_duration: ns(self.first_token - self.slot_taken),
            eval_count: eval_count as u64,
            eval_duration: ns(done - self.first_token),
        }
    }
}

/// Serves one job.
///
/// # Errors
/// [`SimError::Internal`] for an injected failure, [`SimError::Busy`] when the queue is full;
/// both before any token, as Ollama fails.
pub async fn serve(sim: Arc<Sim>, job: Job) -> Result<Response, SimError> {
    let plan = sim.faults.plan();
    if plan.fail {
        Stats::bump(&sim.stats.failed);
        return Err(SimError::Internal(INJECTED_FAILURE.into()));
    }
    let slot = sim.slots.acquire().await.map_err(|_| SimError::Busy)?;
    let slot_taken = Instant::now();
    sim.catalog.touch(job.model_id);
    if plan.hang {
        // Holds the slot until the client gives up and hyper drops this future.
        std::future::pending::<()>().await;
    }
    sleep_until(slot_taken + sim.pace.prompt_eval(job.prompt_tokens)).await;
    let timeline = Timeline {
        arrival: job.arrival,
        slot_taken,
        first_token: Instant::now(),
    };
    let tokens = answer(sim.seed, &job.prompt, &job.focus, job.budget.tokens);
    let context = job.with_context.then(|| context_ids(sim.seed, &tokens));
    // A drop point at or past the end never triggers: the answer completes.
    let drop_at = plan
        .drop_after
        .map(|n| n as usize)
        .filter(|n| *n < tokens.len());
    let answer = Answer {
        job,
        tokens,
        context,
        timeline,
        interval: sim.pace.token_interval(),
        drop_at,
    };
    Ok(if answer.job.stream {
        answer.streamed(slot)
    } else {
        answer.whole(slot).await
    })
}

struct Answer {
    job: Job,
    tokens: Vec<String>,
    context: Option<Vec<u32>>,
    timeline: Timeline,
    interval: Duration,
    drop_at: Option<usize>,
}

fn cut() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection dropped by --drop-after",
    )
}

impl Answer {
    /// When token `i` is due; the done line is due one interval after the last token, the time
    /// a model spends producing its end-of-sequence token.
    fn due(&self, i: usize) -> Instant {
        self.timeline.first_token
            + self
                .interval
                .saturating_mul(u32::try_from(i).unwrap_or(u32::MAX))
    }

    fn last_object(&self, text: &str, done: Instant) -> Vec<u8> {
        let reason = self.job.budget.reason.as_str();
        Object {
            done_reason: Some(reason),
            metrics: Some(
                self.timeline
                    .metrics(self.job.prompt_tokens, self.tokens.len(), done),
            ),
            context: self.context.as_deref(),
            ..Object::chunk(self.job.endpoint, &self.job.model, text)
        }
        .to_json()
    }

    fn streamed(self, mut slot: SlotPermit) -> Response {
        let body = async_stream::stream! {
            for i in 0..self.tokens.len() {
                sleep_until(self.due(i)).await;
                if self.drop_at == Some(i) {
                    // Lets hyper flush the lines already yielded; an error discards its buffer.
                    tokio::task::yield_now().await;
                    slot.dropped();
                    yield Err(cut());
                    return;
                }
                let line = Object::chunk(self.job.endpoint, &self.job.model, &self.tokens[i]).to_line();
                yield Ok::<Bytes, io::Error>(Bytes::from(line));
            }
            let done = self.due(self.tokens.len());
            sleep_until(done).await;
            let mut line = self.last_object("", done);
            line.push(b'\n');
            slot.complete();
            drop(slot);
            yield Ok(Bytes::from(line));
        };
        (
            [(header::CONTENT_TYPE, "application/x-ndjson")],
            Body::from_stream(body),
        )
            .into_response()
    }

    async fn whole(self, mut slot: SlotPermit) -> Response {
        if let Some(at) = self.drop_at {
            sleep_until(self.due(at)).await;
            slot.dropped();
            drop(slot);
            let broken = futures::stream::once(async { Err::<Bytes, io::Error>(cut()) });
            return Body::from_stream(broken).into_response();
        }
        let done = self.due(self.tokens.len());
        sleep_until(done).await;
        let body = self.last_object(&self.tokens.concat(), done);
        slot.complete();
        (
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body,
        )
            .into_response()
    }
}
