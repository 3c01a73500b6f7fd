//! `GET /internal/v1/cache/{key}`: the edge filter's exact-cache lookup on an L1 miss.
//!
//! Answers 200 with the [`CachedAnswer`](libriassist_protocol::CachedAnswer) stored for the key
//! in the current scope (corpus version and model: the edge knows neither), or 404. Fast by
//! construction: one Redis round trip within the cache's deadline, and a Redis that is down or
//! slow is a 404, so the edge forwards the question instead of waiting. A hit here counts as an
//! `edge` hit and refreshes the entry's TTL like any other.
//!
//! Reached only through the edge's dedicated Envoy cluster; it reveals nothing a chat request
//! for the same question would not.

use crate::cache::Caches;
use crate::error::AppError;
use crate::metrics;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use libriassist_protocol::{paths, CacheKey, CacheLayer};
use std::sync::Arc;

pub fn routes(caches: Option<Arc<Caches>>) -> Router {
    Router::new()
        .route(
            &format!("{}{{key}}", paths::CACHE_LOOKUP_PREFIX),
            get(lookup),
        )
        .with_state(caches)
}

async fn lookup(
    State(caches): State<Option<Arc<Caches>>>,
    Path(key): Path<String>,
) -> Result<Response, AppError> {
    let (Some(caches), Some(key)) = (caches, CacheKey::parse(&key)) else {
        return Err(AppError::not_found("cache entry"));
    };
    let scope = caches.scope.current();
    match caches.exact.get(&scope, &key).await {
        Some(hit) => {
            metrics::cache_hit(CacheLayer::Edge.as_str());
            Ok(Json(hit.answer).into_response())
        }
        None => Err(AppError::not_found("cache entry")),
    }
}
