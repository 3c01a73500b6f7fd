//! LibriAssist's edge filter for Envoy (proxy-wasm, wasm32-wasip1).
//!
//! Built with `cargo build -p libriassist-filter --target wasm32-wasip1 --release`.
//! The request logic lives in pure modules tested natively; the Envoy glue (`glue`, `host`)
//! only moves data and exists on wasm32 only.

pub mod config;
pub mod edge_cache;
pub mod identity;
pub mod pairs;
pub mod ratelimit;
pub mod reply;
pub mod route;
pub mod shared;
pub mod token_bucket;

#[cfg(target_arch = "wasm32")]
mod glue;
#[cfg(target_arch = "wasm32")]
mod host;
