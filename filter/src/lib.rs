//! LibriAssist's edge filter for Envoy (proxy-wasm, wasm32-wasip1).
//!
//! Built with `cargo build -p libriassist-filter --target wasm32-wasip1 --release`; Envoy loads
//! `target/wasm32-wasip1/release/libriassist_filter.wasm` (see `envoy/envoy.yaml`).
//!
//! What it does, per request: identify the client (API key or trusted address), take a token
//! from its bucket, and on the two chat routes check method, content type and size, validate
//! the body with `protocol`, derive the cache key, answer hits from L1 or the origin's cache
//! endpoint, and forward misses with the key. Everything it decides is in the pure modules
//! below, tested natively; `abi` (the exported entry points), `glue` (what each callback does)
//! and `host` (non-panicking host calls) exist on wasm32 only and only move data.
//!
//! Envoy must run the filter with `allow_on_headers_stop_iteration: true` (the filter holds a
//! chat request's headers while reading its body) and the connection manager with
//! `use_remote_address: true` (see `Config::forwarded_for_includes_peer`). The plugin
//! configuration is JSON, every field optional:
//!
//! ```json
//! {"cache": {"enabled": true, "cluster": "libriassist_cache", "authority": "libriassist-cache",
//!            "timeout_ms": 100, "l1_ttl_seconds": 5, "l1_negative_ttl_ms": 1000, "l1_slots": 1024,
//!            "l1_max_entry_bytes": 65536},
//!  "rate_limits": {"chat": {"per_second": 1, "burst": 10}, "stream": {"per_second": 1, "burst": 10},
//!                  "other": {"per_second": 20, "burst": 100}},
//!  "max_concurrent_streams": 4, "stream_lease_seconds": 900, "client_slots": 65536,
//!  "trusted_proxies": ["10.0.0.0/8"], "forwarded_for_includes_peer": true,
//!  "peer_from_forwarded_for": false,
//!  "api_key": {"header": "x-api-key", "keys_sha256": ["<64 hex digits>"], "required": true}}
//! ```
//!
//! Counters (Envoy `/stats`: `wasmcustom.<name>`; `/stats/prometheus`: `<name>`), added by
//! each worker on its 1 s tick (see `counters`): `libriassist_edge_cache_hits`,
//! `libriassist_edge_cache_misses`, `libriassist_edge_cache_errors`,
//! `libriassist_edge_rate_limited`, `libriassist_edge_rejected`.

pub mod config;
pub mod counters;
pub mod edge_cache;
pub mod identity;
pub mod pairs;
pub mod ratelimit;
pub mod reply;
pub mod request;
pub mod route;
pub mod shared;
pub mod token_bucket;

#[cfg(target_arch = "wasm32")]
mod abi;
#[cfg(target_arch = "wasm32")]
mod glue;
#[cfg(target_arch = "wasm32")]
mod host;
