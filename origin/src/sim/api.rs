//! The simulator's HTTP surface: Ollama's routes with Ollama's checks in Ollama's order (body,
//! model name, model presence, options, then load/unload shortcuts), and the `/sim/*` control
//! routes tests use to flip faults and read counters. Request handling ends here; timing and
//! streaming belong to `generation`.

use super::error::SimError;
use super::faults::FaultUpdate;
use super::generate::{budget, count_tokens};
use super::generation::{self, Job};
use super::models::ModelId;
use super::state::Sim;
use super::stats::Stats;
use super::wire::{self, ChatRequest, Endpoint, GenerateRequest, Object};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::time::Instant;

/// The Ollama release whose API this simulator follows, for `GET /api/version`.
pub const OLLAMA_VERSION: &str = "0.12.6";

/// Tokens a chat template adds around each message (role markers and separators).
const TEMPLATE_TOKENS_PER_MESSAGE: u32 = 4;

pub fn app(sim: Arc<Sim>) -> Router {
    Router::new()
        // Like Ollama, this answers even while every slot is stuck.
        .route("/", get(|| async { "Ollama is running" }))
        .route("/api/version", get(version))
        .route("/api/tags", get(tags))
        .route("/api/ps", get(ps))
        .route("/api/chat", post(chat))
        .route("/api/generate", post(generate))
        .route("/sim/stats", get(stats))
        .route("/sim/stats/reset", post(reset_stats))
        .route("/sim/faults", get(faults).post(set_faults))
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found") })
        .method_not_allowed_fallback(|| async {
            (StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed")
        })
        .with_state(sim)
}

async fn version() -> Json<Value> {
    Json(json!({ "version": OLLAMA_VERSION }))
}

/// `{"models": [...]}` with each entry's fields in Ollama's order (a `Value` would sort them).
#[derive(Serialize)]
struct Models<T> {
    models: Vec<T>,
}

async fn tags(State(sim): State<Arc<Sim>>) -> impl IntoResponse {
    Json(Models {
        models: sim.catalog.tags(),
    })
}

async fn ps(State(sim): State<Arc<Sim>>) -> impl IntoResponse {
    Json(Models {
        models: sim.catalog.ps(),
    })
}

async fn stats(State(sim): State<Arc<Sim>>) -> impl IntoResponse {
    Json(sim.stats.snapshot())
}

async fn reset_stats(State(sim): State<Arc<Sim>>) -> impl IntoResponse {
    sim.stats.reset();
    Json(sim.stats.snapshot())
}

async fn faults(State(sim): State<Arc<Sim>>) -> impl IntoResponse {
    Json(sim.faults.settings())
}

async fn set_faults(
    State(sim): State<Arc<Sim>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, SimError> {
    let update: FaultUpdate = wire::parse(&read(body)?).map_err(SimError::BadRequest)?;
    let settings = sim.faults.update(update).map_err(SimError::BadRequest)?;
    Ok(Json(settings))
}

fn read(body: Result<Bytes, BytesRejection>) -> Result<Bytes, SimError> {
    body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => SimError::TooLarge(rejection.body_text()),
        _ => SimError::BadRequest(rejection.body_text()),
    })
}

/// The checks both generation endpoints share, once their body is decoded.
struct Common<'a> {
    sim: &'a Sim,
    endpoint: Endpoint,
    model: Option<String>,
    options: Option<&'a serde_json::Map<String, Value>>,
    keep_alive: Option<&'a Value>,
    stream: Option<bool>,
}

/// A request either becomes a generation or is answered at once (load/unload).
enum Next {
    Generate(Job),
    Answered(Response),
}

impl Common<'_> {
    fn check(
        mut self,
        empty: bool,
        prompt: String,
        focus: String,
        prompt_tokens: u32,
        with_context: bool,
    ) -> Result<Next, SimError> {
        let model = self.model.take().unwrap_or_default();
        if model.trim().is_empty() {
            return Err(SimError::BadRequest("model is required".into()));
        }
        let model_id = self
            .sim
            .catalog
            .find(&model)
            .ok_or_else(|| SimError::ModelNotFound(model.clone()))?;
        let options = wire::options(self.options).map_err(SimError::Internal)?;
        if empty {
            return Ok(Next::Answered(self.load_or_unload(&model, model_id)));
        }
        Ok(Next::Generate(Job {
            endpoint: self.endpoint,
            model,
            model_id,
            prompt,
            focus,
            prompt_tokens,
            stream: self.stream.unwrap_or(true),
            budget: budget(self.sim.answer_tokens, options.num_predict),
            with_context,
            arrival: Instant::now(),
        }))
    }

    /// Ollama's reply to a request with nothing to generate: it loads the model, or unloads it
    /// when keep_alive is zero, and says so in `done_reason`.
    fn load_or_unload(&self, model: &str, id: ModelId) -> Response {
        let reason = if wire::keep_alive_is_zero(self.keep_alive) {
            self.sim.catalog.unload(id);
            "unload"
        } else {
            self.sim.catalog.touch(id);
            "load"
        };
        let object = Object {
            done_reason: Some(reason),
            ..Object::chunk(self.endpoint, model, "")
        };
        (
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            object.to_json(),
        )
            .into_response()
    }
}

async fn run(sim: Arc<Sim>, next: Result<Next, SimError>) -> Result<Response, SimError> {
    match next? {
        Next::Answered(response) => Ok(response),
        Next::Generate(job) => generation::serve(sim, job).await,
    }
}

async fn chat(
    State(sim): State<Arc<Sim>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, SimError> {
    Stats::bump(&sim.stats.requests);
    let next = chat_next(&sim, body);
    run(sim, next).await
}

fn chat_next(sim: &Sim, body: Result<Bytes, BytesRejection>) -> Result<Next, SimError> {
    let req: ChatRequest = wire::parse(&read(body)?).map_err(SimError::BadRequest)?;
    let messages = req.messages.unwrap_or_default();
    let mut prompt = String::new();
    let mut prompt_tokens: u32 = 0;
    for m in &messages {
        let role = m.role.as_deref().unwrap_or_default();
        let content = m.content.as_deref().unwrap_or_default();
        prompt.push_str(&format!("{role}: {content}\n"));
        prompt_tokens = prompt_tokens
            .saturating_add(count_tokens(content))
            .saturating_add(TEMPLATE_TOKENS_PER_MESSAGE);
    }
    let focus = messages
        .iter()
        .rev()
        .find(|m| m.role.as_deref() == Some("user"))
        .or(messages.last())
        .and_then(|m| m.content.clone())
        .unwrap_or_default();
    Common {
        sim,
        endpoint: Endpoint::Chat,
        model: req.model,
        options: req.options.as_ref(),
        keep_alive: req.keep_alive.as_ref(),
        stream: req.stream,
    }
    .check(messages.is_empty(), prompt, focus, prompt_tokens, false)
}

async fn generate(
    State(sim): State<Arc<Sim>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, SimError> {
    Stats::bump(&sim.stats.requests);
    let next = generate_next(&sim, body);
    run(sim, next).await
}

fn generate_next(sim: &Sim, body: Result<Bytes, BytesRejection>) -> Result<Next, SimError> {
    let req: GenerateRequest = wire::parse(&read(body)?).map_err(SimError::BadRequest)?;
    let raw = req.raw.unwrap_or(false);
    let user = req.prompt.unwrap_or_default();
    let system = req.system.unwrap_or_default();
    let template = if raw { 0 } else { TEMPLATE_TOKENS_PER_MESSAGE };
    let prompt_tokens = count_tokens(&system)
        .saturating_add(count_tokens(&user))
        .saturating_add(template);
    let prompt = format!("{system}\n{user}");
    Common {
        sim,
        endpoint: Endpoint::Generate,
        model: req.model,
        options: req.options.as_ref(),
        keep_alive: req.keep_alive.as_ref(),
        stream: req.stream,
    }
    .check(user.is_empty(), prompt, user, prompt_tokens, !raw)
}

#[cfg(test)]
mod tests;
