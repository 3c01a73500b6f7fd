//! Cache administration, behind `Authorization: Bearer <server.admin_token>`:
//!
//! - `GET /admin/v1/cache/stats`: backend, entries, semantic hits and guard refusals, recent
//!   semantic hits (question, matched question, similarity) to audit;
//! - `DELETE /admin/v1/cache`: every entry;
//! - `DELETE /admin/v1/cache/keys/{key}`: one question (its cache key), in every scope;
//! - `DELETE /admin/v1/cache/corpus/{version}`: every entry of a corpus version;
//! - `POST /admin/v1/backends/reload`: re-reads the configuration and applies its backend
//!   lists, as SIGHUP does (see `server::BackendsReload`).
//!
//! Purges reach every origin: Redis entries are deleted, and the other origins drop the
//! questions from their semantic indexes when they read the purge on the stream.
//! Without an admin token configured these routes do not exist (404), so an unconfigured
//! deployment exposes nothing.

use crate::cache::{Caches, Purge};
use crate::error::AppError;
use crate::server::BackendsReload;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use libriassist_protocol::{CacheKey, ErrorBody, ErrorCode, ErrorDetail};
use serde_json::json;
use std::sync::Arc;

pub const CACHE_STATS: &str = "/admin/v1/cache/stats";
pub const CACHE: &str = "/admin/v1/cache";
pub const CACHE_KEY: &str = "/admin/v1/cache/keys/{key}";
pub const CACHE_CORPUS: &str = "/admin/v1/cache/corpus/{version}";
pub const BACKENDS_RELOAD: &str = "/admin/v1/backends/reload";

pub fn routes(caches: Option<Arc<Caches>>, admin_token: Option<String>) -> Router {
    let (Some(caches), Some(token)) = (caches, admin_token.filter(|t| !t.is_empty())) else {
        return Router::new();
    };
    let token: Arc<str> = Arc::from(token);
    Router::new()
        .route(CACHE_STATS, get(stats))
        .route(CACHE, delete(purge_all))
        .route(CACHE_KEY, delete(purge_key))
        .route(CACHE_CORPUS, delete(purge_corpus))
        .with_state(caches)
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            let token = Arc::clone(&token);
            async move { authorize(&token, request, next).await }
        }))
}

/// The backends reload; like the cache routes, absent without an admin token.
pub fn backends_routes(reload: Arc<BackendsReload>, admin_token: Option<String>) -> Router {
    let Some(token) = admin_token.filter(|t| !t.is_empty()) else {
        return Router::new();
    };
    let token: Arc<str> = Arc::from(token);
    Router::new()
        .route(BACKENDS_RELOAD, post(reload_backends))
        .with_state(reload)
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            let token = Arc::clone(&token);
            async move { authorize(&token, request, next).await }
        }))
}

async fn reload_backends(State(reload): State<Arc<BackendsReload>>) -> Response {
    match reload.reload().await {
        Ok(done) => Json(done).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "configuration not reloaded; the running one stays");
            // The caller is the authenticated operator: the file's problem is worth showing.
            let body = ErrorBody::from(ErrorDetail::new(
                ErrorCode::Internal,
                format!("configuration not reloaded, nothing changed: {e}"),
            ));
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "application/json")],
                body.to_json(),
            )
                .into_response()
        }
    }
}

pub(super) async fn authorize(token: &str, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        return AppError::unauthorized().into_response();
    }
    next.run(request).await
}

/// Compares without stopping at the first difference, so response time says nothing about
/// how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, &x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    diff == 0
}

async fn stats(State(caches): State<Arc<Caches>>) -> Response {
    Json(caches.stats().await).into_response()
}

async fn purge_all(State(caches): State<Arc<Caches>>) -> Response {
    purge(&caches, Purge::All).await
}

async fn purge_key(
    State(caches): State<Arc<Caches>>,
    Path(key): Path<String>,
) -> Result<Response, AppError> {
    let key = CacheKey::parse(&key).ok_or_else(|| {
        AppError::Client(ErrorDetail::new(
            ErrorCode::InvalidRequest,
            "a cache key is 64 lowercase hex digits",
        ))
    })?;
    Ok(purge(&caches, Purge::Key(key)).await)
}

async fn purge_corpus(State(caches): State<Arc<Caches>>, Path(version): Path<String>) -> Response {
    purge(&caches, Purge::Corpus(version)).await
}

async fn purge(caches: &Caches, what: Purge) -> Response {
    match caches.purge(&what).await {
        Ok(deleted) => Json(json!({"purged": deleted})).into_response(),
        Err(e) => {
            tracing::warn!(?what, error = ?e, "purge failed: Redis unavailable");
            let body = ErrorBody::from(ErrorDetail::new(
                ErrorCode::Internal,
                "the cache store did not answer; nothing was purged, please retry",
            ));
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "application/json")],
                body.to_json(),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret-longer", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
        assert!(!constant_time_eq(b"x", b""));
    }
}
