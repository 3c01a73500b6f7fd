//! Operational endpoints: liveness, readiness, Prometheus metrics, the backend pool's state, and
//! the knowledge index reload (`POST /admin/v1/reload`, behind the admin token like every
//! `/admin/` route, absent without one).

use crate::backends::Pool;
use crate::drain::Drain;
use crate::knowledge::KnowledgeBase;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use std::sync::Arc;

pub struct Ops {
    pub pool: Pool,
    pub metrics: PrometheusHandle,
    pub drain: Drain,
    /// The knowledge base being served, if one is configured.
    pub knowledge: Option<Arc<KnowledgeBase>>,
    pub admin_token: Option<String>,
}

pub const RELOAD: &str = "/admin/v1/reload";

pub fn routes(ops: Arc<Ops>) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/backends", get(backends));
    if let (Some(knowledge), Some(token)) = (
        &ops.knowledge,
        ops.admin_token.as_deref().filter(|t| !t.is_empty()),
    ) {
        let token: Arc<str> = Arc::from(token);
        let reload = Router::new()
            .route(RELOAD, post(reload))
            .with_state(Arc::clone(knowledge))
            .layer(middleware::from_fn(move |request: Request, next: Next| {
                let token = Arc::clone(&token);
                async move { super::admin::authorize(&token, request, next).await }
            }));
        router = router.merge(reload);
    }
    router.with_state(ops)
}

/// Ready when not draining and able to answer: at least one healthy backend, or a loaded
/// knowledge index (answers are then extractive).
async fn readyz(State(ops): State<Arc<Ops>>) -> impl IntoResponse {
    let draining = ops.drain.is_draining();
    let healthy = ops.pool.snapshot().iter().filter(|b| b.healthy).count();
    let index = ops.knowledge.as_ref().map(|k| {
        let i = k.index();
        json!({"version": i.version, "corpus_version": i.manifest.corpus_version, "passages": i.chunks.len()})
    });
    let ready = !draining && (healthy > 0 || index.is_some());
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mode = if healthy > 0 {
        "generated"
    } else if index.is_some() {
        "extractive"
    } else {
        "none"
    };
    (
        status,
        Json(
            json!({"ready": ready, "draining": draining, "healthy_backends": healthy, "backends": ops.pool.len(), "index": index, "mode": mode}),
        ),
    )
}

/// Loads the version `CURRENT` names and serves it; requests already running finish on the
/// version they started with. On failure the running version stays and the operator sees why.
async fn reload(State(knowledge): State<Arc<KnowledgeBase>>) -> Response {
    match knowledge.reload().await {
        Ok(outcome) => Json(outcome).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "knowledge index not reloaded; the running version stays");
            // The caller is the authenticated operator: the index's problem is worth showing.
            let body = libriassist_protocol::ErrorBody::new(
                libriassist_protocol::ErrorCode::Internal,
                format!("index not reloaded, the running version stays: {e}"),
            );
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "application/json")],
                body.to_json(),
            )
                .into_response()
        }
    }
}

async fn metrics(State(ops): State<Arc<Ops>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        ops.metrics.render(),
    )
}

async fn backends(State(ops): State<Arc<Ops>>) -> impl IntoResponse {
    Json(json!({"model": ops.pool.model(), "backends": ops.pool.snapshot()}))
}
