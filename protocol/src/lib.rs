//! The contract between the LibriAssist edge filter (wasm32) and the origin (native).
//!
//! Everything both sides must agree on lives here, once: the JSON shapes of the public API, the
//! error body, SSE event names and their payloads, header names, the input limits, question
//! normalization and the cache key. The crate does no I/O and reads no clock, so the same table
//! of test cases holds on wasm32 and native, and the edge and the origin derive the same key for
//! the same question.

pub mod api;
pub mod cache_key;
pub mod error;
pub mod headers;
pub mod limits;
pub mod normalize;
pub mod paths;
pub mod sse;
pub mod validate;

pub use api::{
    CacheLayer, CachedAnswer, ChatRequest, ChatResponse, Mode, Role, Source, Timings, Turn,
};
pub use cache_key::{cache_key, CacheKey, KEY_VERSION};
pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use normalize::normalize_question;
pub use validate::parse_chat_request;
