//! Prometheus metrics. Every name is defined here, once, prefixed `libriassist_`; the Grafana
//! dashboard and the operations guide refer to these names.
//!
//! The exporter renders only series that were touched: a family that is merely described does
//! not appear. Series whose labels are known in advance are therefore created at zero on
//! install (see [`initialize`]), so a fresh origin exports every family the dashboard queries,
//! and `rate()` sees the first event instead of a series that appears already at 1.

use libriassist_protocol::{CacheLayer, Mode};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

pub const HTTP_REQUESTS: &str = "libriassist_http_requests_total";
pub const HTTP_DURATION: &str = "libriassist_http_request_duration_seconds";
pub const ANSWERS: &str = "libriassist_answers_total";
pub const TTFT: &str = "libriassist_ttft_seconds";
pub const BACKEND_IN_FLIGHT: &str = "libriassist_backend_in_flight";
pub const BACKEND_CAPACITY: &str = "libriassist_backend_capacity";
pub const BACKEND_HEALTHY: &str = "libriassist_backend_healthy";
pub const BACKEND_REQUESTS: &str = "libriassist_backend_requests_total";
pub const QUEUE_DEPTH: &str = "libriassist_queue_depth";
pub const QUEUE_REJECTED: &str = "libriassist_queue_rejected_total";
pub const CACHE_HITS: &str = "libriassist_cache_hits_total";
pub const CACHE_MISSES: &str = "libriassist_cache_misses_total";
pub const CACHE_ERRORS: &str = "libriassist_cache_errors_total";
pub const CACHE_SEMANTIC_REJECTED: &str = "libriassist_cache_semantic_rejected_total";
pub const CACHE_SEMANTIC_SIMILARITY: &str = "libriassist_cache_semantic_similarity";
pub const CACHE_SEMANTIC_ENTRIES: &str = "libriassist_cache_semantic_entries";

/// Latency buckets from a cache hit (sub-millisecond) to a long generation (a minute).
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Semantic hits live above the threshold (0.9 and up with multilingual-e5); finer steps there
/// show whether hits crowd the threshold, the first sign that it is set too low.
const SIMILARITY_BUCKETS: &[f64] = &[0.85, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 1.0];

/// `route` labels of the answer endpoints (`api::route_label`).
pub const ANSWER_ROUTES: [&str; 2] = ["chat", "chat_stream"];
const CACHE_LAYERS: [CacheLayer; 5] = [
    CacheLayer::Miss,
    CacheLayer::Edge,
    CacheLayer::Exact,
    CacheLayer::Semantic,
    CacheLayer::Coalesced,
];
const MODES: [Mode; 2] = [Mode::Generated, Mode::Extractive];
const BACKEND_OUTCOMES: [&str; 3] = ["success", "failure", "cancelled"];
const QUEUE_REJECTIONS: [&str; 2] = ["full", "timeout"];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the global recorder once and returns the handle that renders `/metrics`. Later
/// calls (tests starting several servers in one process) share the first recorder.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(CACHE_SEMANTIC_SIMILARITY.into()),
                        SIMILARITY_BUCKETS,
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; the handle still renders ours.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            initialize();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests by route and status");
    metrics::describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "HTTP request duration by route (streams: until the body ends)"
    );
    metrics::describe_counter!(
        ANSWERS,
        "answers delivered, by mode (generated|extractive) and cache layer"
    );
    metrics::describe_histogram!(
        TTFT,
        metrics::Unit::Seconds,
        "time to first token, by cache layer"
    );
    metrics::describe_gauge!(BACKEND_IN_FLIGHT, "generations running on a backend");
    metrics::describe_gauge!(BACKEND_CAPACITY, "parallel slots of a backend");
    metrics::describe_gauge!(BACKEND_HEALTHY, "1 when the backend takes traffic");
    metrics::describe_counter!(
        BACKEND_REQUESTS,
        "generations by backend and outcome (success|failure|cancelled)"
    );
    metrics::describe_gauge!(QUEUE_DEPTH, "requests waiting for a generation slot");
    metrics::describe_counter!(
        QUEUE_REJECTED,
        "requests refused by admission (full|timeout)"
    );
    metrics::describe_counter!(
        CACHE_HITS,
        "answers served from a cache, by layer (edge|exact|semantic|coalesced)"
    );
    metrics::describe_counter!(
        CACHE_MISSES,
        "questions no cache layer could answer (a generation was started)"
    );
    metrics::describe_counter!(
        CACHE_ERRORS,
        "cache operations that failed or timed out and were bypassed, by operation"
    );
    metrics::describe_counter!(
        CACHE_SEMANTIC_REJECTED,
        "semantic candidates above the threshold refused by a guard, by guard"
    );
    metrics::describe_histogram!(
        CACHE_SEMANTIC_SIMILARITY,
        "cosine similarity of semantic cache hits"
    );
    metrics::describe_gauge!(
        CACHE_SEMANTIC_ENTRIES,
        "questions in this origin's semantic index"
    );
}

/// Creates at zero the series whose labels are known before any traffic. Per-backend series
/// start when the pool takes the backend ([`backend_added`]).
fn initialize() {
    for route in ANSWER_ROUTES {
        metrics::counter!(HTTP_REQUESTS, "route" => route, "status" => "200").increment(0);
        let _ = metrics::histogram!(HTTP_DURATION, "route" => route);
    }
    for mode in MODES {
        for cache in CACHE_LAYERS {
            metrics::counter!(ANSWERS, "mode" => mode.as_str(), "cache" => cache.as_str())
                .increment(0);
        }
    }
    for cache in CACHE_LAYERS {
        let _ = metrics::histogram!(TTFT, "cache" => cache.as_str());
        if cache != CacheLayer::Miss {
            metrics::counter!(CACHE_HITS, "layer" => cache.as_str()).increment(0);
        }
    }
    metrics::counter!(CACHE_MISSES).increment(0);
    for reason in QUEUE_REJECTIONS {
        metrics::counter!(QUEUE_REJECTED, "reason" => reason).increment(0);
    }
    queue_depth(0);
}

/// Creates a backend's request counters at zero, for every outcome.
pub fn backend_added(url: &str) {
    for outcome in BACKEND_OUTCOMES {
        metrics::counter!(BACKEND_REQUESTS, "backend" => url.to_owned(), "outcome" => outcome)
            .increment(0);
    }
}

pub fn http_request(route: &'static str, status: u16, seconds: f64) {
    metrics::counter!(HTTP_REQUESTS, "route" => route, "status" => status.to_string()).increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route).record(seconds);
}

pub fn answer(mode: &'static str, cache: &'static str) {
    metrics::counter!(ANSWERS, "mode" => mode, "cache" => cache).increment(1);
}

pub fn ttft(cache: &'static str, seconds: f64) {
    metrics::histogram!(TTFT, "cache" => cache).record(seconds);
}

pub fn backend_state(url: &str, in_flight: usize, capacity: usize, healthy: bool) {
    let backend = url.to_owned();
    metrics::gauge!(BACKEND_IN_FLIGHT, "backend" => backend.clone()).set(in_flight as f64);
    metrics::gauge!(BACKEND_CAPACITY, "backend" => backend.clone()).set(capacity as f64);
    metrics::gauge!(BACKEND_HEALTHY, "backend" => backend).set(if healthy { 1.0 } else { 0.0 });
}

pub fn backend_request(url: &str, outcome: &'static str) {
    metrics::counter!(BACKEND_REQUESTS, "backend" => url.to_owned(), "outcome" => outcome)
        .increment(1);
}

pub fn queue_depth(depth: usize) {
    metrics::gauge!(QUEUE_DEPTH).set(depth as f64);
}

pub fn queue_rejected(reason: &'static str) {
    metrics::counter!(QUEUE_REJECTED, "reason" => reason).increment(1);
}

/// `layer` is `edge` (the edge's lookup on the internal endpoint found the entry), `exact`,
/// `semantic` or `coalesced`.
pub fn cache_hit(layer: &'static str) {
    metrics::counter!(CACHE_HITS, "layer" => layer).increment(1);
}

pub fn cache_miss() {
    metrics::counter!(CACHE_MISSES).increment(1);
}

pub fn cache_error(op: &'static str) {
    metrics::counter!(CACHE_ERRORS, "op" => op).increment(1);
}

pub fn semantic_rejected(guard: &'static str) {
    metrics::counter!(CACHE_SEMANTIC_REJECTED, "guard" => guard).increment(1);
}

pub fn semantic_similarity(similarity: f32) {
    metrics::histogram!(CACHE_SEMANTIC_SIMILARITY).record(f64::from(similarity));
}

pub fn semantic_entries(count: usize) {
    metrics::gauge!(CACHE_SEMANTIC_ENTRIES).set(count as f64);
}
