//! URL paths of the origin that the edge must know.

pub const CHAT: &str = "/api/v1/chat";
pub const CHAT_STREAM: &str = "/api/v1/chat/stream";
/// Internal exact-cache lookup for the edge: `GET {CACHE_LOOKUP_PREFIX}{key}` answers 200 with a
/// [`crate::CachedAnswer`] or 404. Served on the origin's own listener, reached by the edge
/// through a separate Envoy cluster so that its timeout and failures stay apart from chat traffic.
pub const CACHE_LOOKUP_PREFIX: &str = "/internal/v1/cache/";
