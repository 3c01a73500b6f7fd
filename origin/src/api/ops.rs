//! Operational endpoints: liveness, readiness, Prometheus metrics and the backend pool's state.

use crate::backends::Pool;
use crate::drain::Drain;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use std::sync::Arc;

pub struct Ops {
    pub pool: Pool,
    pub metrics: PrometheusHandle,
    pub drain: Drain,
}

pub fn routes(ops: Arc<Ops>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/backends", get(backends))
        .with_state(ops)
}

/// Ready when not draining and able to answer: at least one healthy backend.
async fn readyz(State(ops): State<Arc<Ops>>) -> impl IntoResponse {
    let draining = ops.drain.is_draining();
    let healthy = ops.pool.snapshot().iter().filter(|b| b.healthy).count();
    let ready = !draining && healthy > 0;
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({"ready": ready, "draining": draining, "healthy_backends": healthy, "backends": ops.pool.len()})))
}

async fn metrics(State(ops): State<Arc<Ops>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], ops.metrics.render())
}

async fn backends(State(ops): State<Arc<Ops>>) -> impl IntoResponse {
    Json(json!({"model": ops.pool.model(), "backends": ops.pool.snapshot()}))
}
