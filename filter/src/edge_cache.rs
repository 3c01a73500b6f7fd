//! The edge's exact cache: what an L1 entry looks like in shared data, and how the answer of
//! the origin's internal cache endpoint is read.
//!
//! L1 is a fixed number of shared-data slots (one per key hash), each holding one answer with
//! its full key and an expiry a few seconds out: bounded memory, no delete needed, and a
//! corpus change at the origin is seen at the edge within the TTL. Entries are `CachedAnswer`
//! JSON exactly as the origin serves them. No I/O here.

use crate::config::CacheConfig;
use crate::shared::slot_key;
use libriassist_protocol::paths::CACHE_LOOKUP_PREFIX;
use libriassist_protocol::{CacheKey, CachedAnswer};

/// Larger lookup answers are not read at all; the request goes on to the origin.
pub const MAX_LOOKUP_BODY_BYTES: usize = 1 << 20;

const HEADER_BYTES: usize = 8 + 64;

/// What a cache lookup came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Hit(CachedAnswer),
    Miss,
    /// The endpoint failed, timed out or answered something unreadable: forward the request
    /// (fail open), never turn a cache problem into an error for the customer.
    Failed(String),
}

/// `GET` path of the origin's internal cache endpoint for `key`.
pub fn lookup_path(key: &CacheKey) -> String {
    format!("{CACHE_LOOKUP_PREFIX}{key}")
}

/// Reads the internal endpoint's answer: 200 with a `CachedAnswer`, or 404.
pub fn classify_lookup(status: Option<&[u8]>, body: &[u8]) -> Lookup {
    match status {
        Some(b"200") => match serde_json::from_slice::<CachedAnswer>(body) {
            Ok(entry) => Lookup::Hit(entry),
            Err(e) => Lookup::Failed(format!("unreadable cache entry: {e}")),
        },
        Some(b"404") => Lookup::Miss,
        Some(other) => Lookup::Failed(format!(
            "cache lookup answered {}",
            String::from_utf8_lossy(other)
        )),
        // Envoy reports a reset or a refused connection as a response without headers.
        None => Lookup::Failed("cache lookup failed before any response".into()),
    }
}

/// The shared-data key of the L1 slot for `key`.
pub fn l1_key(config: &CacheConfig, key: &CacheKey) -> String {
    slot_key("l1", key.as_str(), config.l1_slots)
}

/// The L1 value for `entry`, or `None` when it is too large to keep or the TTL is zero.
pub fn encode_l1(
    config: &CacheConfig,
    key: &CacheKey,
    entry: &CachedAnswer,
    now_ns: u64,
) -> Option<Vec<u8>> {
    if config.l1_ttl_seconds == 0 {
        return None;
    }
    let json = serde_json::to_vec(entry).ok()?;
    if json.len() > config.l1_max_entry_bytes {
        return None;
    }
    let expires = now_ns.saturating_add(config.l1_ttl_seconds.saturating_mul(1_000_000_000));
    let mut out = Vec::with_capacity(HEADER_BYTES + json.len());
    out.extend_from_slice(&expires.to_le_bytes());
    out.extend_from_slice(key.as_str().as_bytes());
    out.extend_from_slice(&json);
    Some(out)
}

/// The answer in an L1 value, if it is for `key` and still fresh. Anything else, including a
/// slot now holding another key or bytes that do not parse, is a miss.
pub fn decode_l1(bytes: &[u8], key: &CacheKey, now_ns: u64) -> Option<CachedAnswer> {
    let expires: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    if u64::from_le_bytes(expires) <= now_ns {
        return None;
    }
    if bytes.get(8..HEADER_BYTES)? != key.as_str().as_bytes() {
        return None;
    }
    serde_json::from_slice(bytes.get(HEADER_BYTES..)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use libriassist_protocol::{cache_key, ChatRequest, Mode};

    fn key(q: &str) -> CacheKey {
        cache_key(&ChatRequest {
            question: q.into(),
            history: vec![],
            session_id: None,
        })
    }

    fn entry() -> CachedAnswer {
        CachedAnswer {
            answer: "Oui.".into(),
            sources: vec![],
            model: "m".into(),
            mode: Mode::Generated,
        }
    }

    #[test]
    fn lookup_answers() {
        let body = serde_json::to_vec(&entry()).unwrap();
        assert_eq!(classify_lookup(Some(b"200"), &body), Lookup::Hit(entry()));
        assert_eq!(classify_lookup(Some(b"404"), b"whatever"), Lookup::Miss);
        assert!(matches!(
            classify_lookup(Some(b"200"), b"{"),
            Lookup::Failed(_)
        ));
        assert!(matches!(
            classify_lookup(Some(b"503"), b""),
            Lookup::Failed(_)
        ));
        assert!(matches!(
            classify_lookup(Some(b"504"), b"upstream request timeout"),
            Lookup::Failed(_)
        ));
        assert!(matches!(classify_lookup(None, b""), Lookup::Failed(_)));
        assert_eq!(
            lookup_path(&key("a")),
            format!("/internal/v1/cache/{}", key("a"))
        );
    }

    #[test]
    fn l1_round_trip_expiry_and_slot_reuse() {
        let config = CacheConfig::default();
        let (a, b) = (key("a"), key("b"));
        let value = encode_l1(&config, &a, &entry(), 1_000).unwrap();
        assert_eq!(decode_l1(&value, &a, 1_001), Some(entry()));
        assert_eq!(decode_l1(&value, &b, 1_001), None);
        assert_eq!(decode_l1(&value, &a, 1_000 + 5_000_000_000), None);
        assert_eq!(decode_l1(&value[..10], &a, 0), None);
        assert_eq!(decode_l1(b"", &a, 0), None);
        let tiny = CacheConfig {
            l1_max_entry_bytes: 10,
            ..CacheConfig::default()
        };
        assert_eq!(encode_l1(&tiny, &a, &entry(), 0), None);
        let off = CacheConfig {
            l1_ttl_seconds: 0,
            ..CacheConfig::default()
        };
        assert_eq!(encode_l1(&off, &a, &entry(), 0), None);
        assert!(l1_key(&config, &a).starts_with("libriassist:l1:"));
    }
}
