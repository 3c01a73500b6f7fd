//! Header names the edge and the origin exchange. Lowercase, as HTTP/2 and Envoy carry them.

/// Request id Envoy assigns (or keeps from a trusted client); logged on both sides.
pub const REQUEST_ID: &str = "x-request-id";
/// The cache key the edge derived, forwarded on a miss so the origin does not recompute it.
pub const CACHE_KEY: &str = "x-libriassist-cache-key";
/// Which layer answered: `edge`, `exact`, `semantic`, `coalesced` or `miss`.
pub const X_CACHE: &str = "x-cache";
/// Set by the origin on a refusal that comes before any work the client could see (a draining
/// origin): the proxy in front may send the same request to another origin. Envoy's route
/// retry policy matches it with `retriable-headers`.
pub const RETRY_ELSEWHERE: &str = "x-libriassist-retry-elsewhere";
/// Bearer token for the origin's admin endpoints.
pub const AUTHORIZATION: &str = "authorization";
pub const RETRY_AFTER: &str = "retry-after";
pub const RATELIMIT_LIMIT: &str = "ratelimit-limit";
pub const RATELIMIT_REMAINING: &str = "ratelimit-remaining";
pub const RATELIMIT_RESET: &str = "ratelimit-reset";
pub const CONTENT_TYPE: &str = "content-type";
pub const JSON: &str = "application/json";
pub const EVENT_STREAM: &str = "text/event-stream";
