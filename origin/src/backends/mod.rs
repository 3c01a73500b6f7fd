//! LLM backends and the pool that routes generations across them.
//!
//! Split like a load balancer: each backend is a client behind one [`Backend`] trait
//! (`ollama.rs`, `openai.rs`); the pool (`pool.rs`) admits requests (`admission.rs`), picks the
//! least-loaded healthy member (`selection.rs`), tracks health (`breaker.rs`, `health.rs`) and
//! retries a request that failed before its first token; replicas share their counts
//! (`shared_load.rs`).

pub mod admission;
pub mod breaker;
pub mod health;
pub mod ollama;
pub mod openai;
pub mod pool;
pub mod selection;
pub mod shared_load;
mod stream;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde::Serialize;

pub use pool::{Generation, Pool, PoolError};

/// The kind of server behind a URL; decides the wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Ollama,
    Openai,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub role: MessageRole,
    pub content: String,
}

/// Sampling options, mapped to each protocol's names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenerationOptions {
    pub num_predict: u32,
    pub temperature: f32,
    pub top_k: u32,
}

/// One generation to run: the prompt as chat messages, and how to sample.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub options: GenerationOptions,
}

/// What a backend stream yields: text pieces, then one `Done`.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendEvent {
    Token(String),
    Done(Completion),
}

/// The end of a generation as the backend reported it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Completion {
    pub prompt_tokens: Option<u32>,
    pub completion_tokens: Option<u32>,
    /// `stop` or `length`.
    pub finish_reason: Option<String>,
}

pub type TokenStream = BoxStream<'static, Result<BackendEvent, BackendError>>;

/// Why a backend call failed. The pool classifies these to decide on retries and ejection.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    #[error("cannot connect to {url}: {message}")]
    Connect { url: String, message: String },
    #[error("{url} answered HTTP {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    /// The connection broke after the response had started.
    #[error("{url} interrupted the response: {message}")]
    Interrupted { url: String, message: String },
    #[error("{url} sent an invalid response: {message}")]
    Protocol { url: String, message: String },
    #[error("{url} sent no token for {seconds:.1} s")]
    Timeout { url: String, seconds: f64 },
    #[error("{url} does not serve model {model:?}")]
    ModelMissing { url: String, model: String },
}

impl BackendError {
    /// Whether this says something about the backend's health (and so counts against its
    /// circuit), as opposed to a problem with this one request, like a prompt too long for the
    /// context (HTTP 400), which another backend would refuse too.
    pub fn is_backend_fault(&self) -> bool {
        match self {
            BackendError::Status { status, .. } => {
                *status >= 500 || *status == 404 || *status == 429
            }
            _ => true,
        }
    }
}

/// One LLM server. Implementations only speak the protocol; the pool decides when to call.
pub trait Backend: Send + Sync + 'static {
    fn kind(&self) -> BackendKind;
    fn url(&self) -> &str;
    /// Starts a streamed generation. Resolves once the server accepted the request (response
    /// headers received); tokens then come from the stream. Dropping the stream closes the
    /// connection, which makes Ollama and llama-server cancel the generation.
    fn generate(
        &self,
        request: GenerationRequest,
    ) -> BoxFuture<'_, Result<TokenStream, BackendError>>;
    /// Whether the server is up and lists `model` (GET /api/tags or /v1/models).
    fn check_model<'a>(&'a self, model: &'a str) -> BoxFuture<'a, Result<(), BackendError>>;
}

/// The HTTP client shared by all backends. No overall timeout: answers stream for a long
/// time; the pool enforces first-token and idle deadlines instead.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(2))
        .pool_idle_timeout(std::time::Duration::from_secs(30))
        .tcp_nodelay(true)
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// Sends a request, turning a connection failure or a non-2xx answer into a [`BackendError`].
async fn send(
    url: &str,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, BackendError> {
    let response = request.send().await.map_err(|e| connect_error(url, &e))?;
    if !response.status().is_success() {
        return Err(status_error(url, response).await);
    }
    Ok(response)
}

/// Starts a streamed generation: POSTs `body` to `path` and turns each line of the answer
/// (NDJSON or SSE) into at most one event with `decode`, which is given the backend's URL.
async fn post_streaming<D>(
    client: &reqwest::Client,
    url: &str,
    path: &str,
    body: &serde_json::Value,
    mut decode: D,
) -> Result<TokenStream, BackendError>
where
    D: FnMut(&str, &str) -> Option<Result<BackendEvent, BackendError>> + Send + 'static,
{
    let response = send(url, client.post(format!("{url}{path}")).json(body)).await?;
    let url = url.to_owned();
    let events = stream::lines(url.clone(), response.bytes_stream()).filter_map(move |line| {
        let event = match line {
            Ok(line) => decode(&url, &line),
            Err(e) => Some(Err(e)),
        };
        futures::future::ready(event)
    });
    Ok(events.boxed())
}

/// A piece of answer text as an event; an empty piece (a role-only delta, a closing line)
/// makes none.
fn token(text: String) -> Option<Result<BackendEvent, BackendError>> {
    (!text.is_empty()).then_some(Ok(BackendEvent::Token(text)))
}

/// What `check_model` reports once the server's listing has been searched for `model`.
fn listed_or_missing(url: &str, model: &str, listed: bool) -> Result<(), BackendError> {
    if listed {
        Ok(())
    } else {
        Err(BackendError::ModelMissing {
            url: url.to_owned(),
            model: model.to_owned(),
        })
    }
}

/// GETs a model listing (`/api/tags`, `/v1/models`) with a short timeout: a health check must
/// not hang on a stuck server.
async fn get_listing<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    path: &str,
) -> Result<T, BackendError> {
    let request = client
        .get(format!("{url}{path}"))
        .timeout(std::time::Duration::from_secs(3));
    send(url, request)
        .await?
        .json()
        .await
        .map_err(|e| BackendError::Protocol {
            url: url.to_owned(),
            message: e.to_string(),
        })
}

fn connect_error(url: &str, e: &reqwest::Error) -> BackendError {
    BackendError::Connect {
        url: url.to_owned(),
        message: e.to_string(),
    }
}

/// Reads an error response's body (bounded) for the error message.
async fn status_error(url: &str, response: reqwest::Response) -> BackendError {
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    let message: String = body.chars().take(300).collect();
    BackendError::Status {
        url: url.to_owned(),
        status,
        message,
    }
}
