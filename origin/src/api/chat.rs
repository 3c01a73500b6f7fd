//! `POST /api/v1/chat` (one JSON answer) and `POST /api/v1/chat/stream` (SSE). Both run the
//! same pipeline; they differ only in how the answer events reach the client.

use super::extract::ValidChat;
use crate::drain::{Answering, Drain};
use crate::error::AppError;
use crate::metrics;
use crate::pipeline::{Answer, AnswerEvent, Pipeline, RequestContext};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use futures::StreamExt;
use libriassist_protocol::headers::{CACHE_KEY, REQUEST_ID, X_CACHE};
use libriassist_protocol::sse::{self, TokenEvent};
use libriassist_protocol::{
    cache_key, paths, CacheKey, ChatRequest, ChatResponse, ErrorCode, ErrorDetail, Timings,
};
use serde::Serialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

pub struct ChatService {
    pub pipeline: Arc<Pipeline>,
    pub drain: Drain,
}

pub fn routes(service: Arc<ChatService>) -> Router {
    Router::new()
        .route(paths::CHAT, post(chat))
        .route(paths::CHAT_STREAM, post(chat_stream))
        .method_not_allowed_fallback(|| async {
            AppError::Client(ErrorDetail::new(
                ErrorCode::MethodNotAllowed,
                "use POST with a JSON body",
            ))
        })
        .with_state(service)
}

/// The request context. The edge's cache key is trusted only if it is the key of this very
/// request: a client that forges the header must not be able to poison another question's entry.
fn context(headers: &HeaderMap, request: &ChatRequest) -> RequestContext {
    let request_id = headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let key = cache_key(request);
    if let Some(sent) = headers
        .get(CACHE_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(CacheKey::parse)
    {
        if sent != key {
            tracing::warn!(request_id = %request_id, "cache key header does not match the request; ignored");
        }
    }
    RequestContext {
        request_id,
        received: Instant::now(),
        cache_key: key,
    }
}

/// Starts an answer, counted by the drain until the returned guard is dropped: hold it until
/// the last byte of the answer is produced.
async fn start(
    service: &ChatService,
    headers: &HeaderMap,
    request: &ChatRequest,
) -> Result<(Answering, Answer), AppError> {
    let answering = service.drain.begin_answer().ok_or(AppError::Draining)?;
    let ctx = context(headers, request);
    // The process exits shortly after the drain deadline: a question still waiting for a slot
    // then gets its 503 instead of a cut connection.
    tokio::select! {
        answer = service.pipeline.answer(request, &ctx) => Ok((answering, answer?)),
        () = service.drain.expired() => Err(AppError::Draining),
    }
}

fn x_cache(answer: &Answer) -> [(&'static str, HeaderValue); 1] {
    [(
        X_CACHE,
        HeaderValue::from_static(answer.meta.cache.as_str()),
    )]
}

async fn chat(
    State(service): State<Arc<ChatService>>,
    headers: HeaderMap,
    ValidChat(request): ValidChat,
) -> Result<Response, AppError> {
    let (_answering, answer) = start(&service, &headers, &request).await?;
    let cache_header = x_cache(&answer);
    let mut text = String::new();
    let mut events = answer.events;
    let mut timings = Timings::default();
    let expired = service.drain.expired();
    tokio::pin!(expired);
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            // Nothing was sent yet: the whole answer can still be refused cleanly.
            () = &mut expired => return Err(AppError::Draining),
        };
        let Some(event) = event else { break };
        match event {
            AnswerEvent::Token(t) => text.push_str(&t),
            AnswerEvent::Done(done) => {
                timings = done.timings;
                break;
            }
            AnswerEvent::Error(detail) => return Err(AppError::Interrupted(detail)),
        }
    }
    let meta = answer.meta;
    metrics::answer(meta.mode.as_str(), meta.cache.as_str());
    let body = ChatResponse {
        answer: text,
        sources: meta.sources,
        cache: meta.cache,
        model: meta.model,
        mode: meta.mode,
        timings,
    };
    Ok((cache_header, Json(body)).into_response())
}

fn event(name: &'static str, data: &impl Serialize) -> Result<Event, Infallible> {
    let json = serde_json::to_string(data).unwrap_or_else(|_| "{}".to_owned());
    Ok(Event::default().event(name).data(json))
}

async fn chat_stream(
    State(service): State<Arc<ChatService>>,
    headers: HeaderMap,
    ValidChat(request): ValidChat,
) -> Result<Response, AppError> {
    let (answering, answer) = start(&service, &headers, &request).await?;
    let cache_header = x_cache(&answer);
    let drain = service.drain.clone();
    let Answer { meta, mut events } = answer;
    let stream = async_stream::stream! {
        // Dropped with the stream: when it ends, or when the client goes away.
        let _answering = answering;
        yield event(sse::META, &meta);
        let expired = drain.expired();
        tokio::pin!(expired);
        loop {
            tokio::select! {
                next = events.next() => match next {
                    Some(AnswerEvent::Token(text)) => yield event(sse::TOKEN, &TokenEvent { text }),
                    Some(AnswerEvent::Done(done)) => {
                        metrics::answer(meta.mode.as_str(), meta.cache.as_str());
                        yield event(sse::DONE, &done);
                        break;
                    }
                    Some(AnswerEvent::Error(detail)) => {
                        yield event(sse::ERROR, &detail);
                        break;
                    }
                    None => {
                        yield event(sse::ERROR, &ErrorDetail::new(ErrorCode::Internal, "the answer ended unexpectedly"));
                        break;
                    }
                },
                () = &mut expired => {
                    yield event(sse::ERROR, &AppError::Draining.detail());
                    break;
                }
            }
        }
    };
    // Proxies that honour it (nginx) must not buffer the stream either.
    let no_buffering = [("x-accel-buffering", HeaderValue::from_static("no"))];
    Ok((
        cache_header,
        no_buffering,
        Sse::new(stream).keep_alive(KeepAlive::default()),
    )
        .into_response())
}
