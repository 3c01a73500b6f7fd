//! The HTTP API: routes, and the layers every request goes through (request id, tracing,
//! metrics). Each group of routes gets only the state it uses.

pub mod admin;
mod assets;
mod chat;
mod extract;
mod internal;
mod ops;

use crate::metrics;
use axum::extract::{MatchedPath, Request};
use axum::http::HeaderName;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use libriassist_protocol::headers::REQUEST_ID;
use std::sync::Arc;
use std::time::Instant;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use chat::ChatService;
pub use ops::Ops;

/// What the cache endpoints need: the caches (`None`: caching is off) and the admin token.
pub struct CacheApi {
    pub caches: Option<Arc<crate::cache::Caches>>,
    pub admin_token: Option<String>,
}

pub fn router(
    chat: Arc<ChatService>,
    ops: Arc<Ops>,
    cache: CacheApi,
    reload: Arc<crate::server::BackendsReload>,
) -> Router {
    let request_id = HeaderName::from_static(REQUEST_ID);
    Router::new()
        .merge(chat::routes(chat))
        .merge(ops::routes(ops))
        .merge(internal::routes(cache.caches.clone()))
        .merge(admin::backends_routes(reload, cache.admin_token.clone()))
        .merge(admin::routes(cache.caches, cache.admin_token))
        .merge(assets::router())
        .fallback(|| async { crate::error::AppError::not_found("route") })
        .layer(middleware::from_fn(record_metrics))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// Counts requests by route template (not raw path: cache keys in paths would explode label
/// cardinality) and status.
async fn record_metrics(request: Request, next: Next) -> Response {
    let route = match request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
    {
        Some(path) => route_label(path),
        None => "unmatched",
    };
    let started = Instant::now();
    let response = next.run(request).await;
    metrics::http_request(
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// Static labels for the known routes.
fn route_label(path: &str) -> &'static str {
    match path {
        "/api/v1/chat" => "chat",
        "/api/v1/chat/stream" => "chat_stream",
        "/api/v1/backends" => "backends",
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        p if p.starts_with("/internal/") => "internal",
        p if p.starts_with("/admin/") => "admin",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libriassist_protocol::paths;

    #[test]
    fn answer_routes_are_labelled_as_the_metrics_expect() {
        assert_eq!(
            [route_label(paths::CHAT), route_label(paths::CHAT_STREAM)],
            metrics::ANSWER_ROUTES
        );
    }
}
