//! The edge's exact cache: what an L1 entry looks like in shared data, and how the answer of
//! the origin's internal cache endpoint is read.
//!
//! L1 is a fixed number of shared-data slots (one per key hash) for each of the two replies a
//! hit can be, the JSON answer and the event stream: bounded memory, no delete needed, and a
//! corpus change at the origin is seen at the edge within the TTL. An entry holds the reply
//! body ready to send, cut just before the one value that changes per request (the
//! `total_ms` timing, see `reply::hit_template`), so a hit decodes and encodes no JSON. An
//! entry can also say that the origin had no answer for the key a moment ago (see
//! [`encode_absent`]). No I/O here.

use crate::config::CacheConfig;
use crate::route::RouteClass;
use crate::shared::slot_key;
use libriassist_protocol::paths::CACHE_LOOKUP_PREFIX;
use libriassist_protocol::{CacheKey, CachedAnswer};

/// Larger lookup answers are not read at all; the request goes on to the origin.
pub const MAX_LOOKUP_BODY_BYTES: usize = 1 << 20;

/// Tag, expiry, key.
pub const HEADER_BYTES: usize = 1 + 8 + 64;
const TAG_ANSWER: u8 = 1;
const TAG_ABSENT: u8 = 2;

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

/// The shared-data key of the L1 slot for `key` and the reply of route `class`.
pub fn l1_key(config: &CacheConfig, key: &CacheKey, class: RouteClass) -> String {
    let prefix = match class {
        RouteClass::Stream => "l1:sse",
        _ => "l1:json",
    };
    slot_key(prefix, key.as_str(), config.l1_slots)
}

fn encode(tag: u8, key: &CacheKey, expires: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len() + 32);
    out.push(tag);
    out.extend_from_slice(&expires.to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(body);
    out
}

/// The L1 value for a reply template (`reply::hit_template`), or `None` when it is too large
/// to keep or the TTL is zero.
pub fn encode_l1(
    config: &CacheConfig,
    key: &CacheKey,
    template: &[u8],
    now_ns: u64,
) -> Option<Vec<u8>> {
    if config.l1_ttl_seconds == 0 || template.len() > config.l1_max_entry_bytes {
        return None;
    }
    let expires = now_ns.saturating_add(config.l1_ttl_seconds.saturating_mul(1_000_000_000));
    Some(encode(TAG_ANSWER, key, expires, template))
}

/// The L1 value saying the origin had no answer for `key`, or `None` when that is not kept
/// (`l1_negative_ttl_ms` 0).
///
/// A request that finds it goes straight to the origin without the lookup call. It cannot
/// make the edge serve a wrong or stale answer: it only ever sends a request to the origin,
/// which looks in its own cache as always; at worst an answer cached meanwhile is served by
/// the origin rather than the edge until the entry expires.
pub fn encode_absent(config: &CacheConfig, key: &CacheKey, now_ns: u64) -> Option<Vec<u8>> {
    if config.l1_negative_ttl_ms == 0 {
        return None;
    }
    let expires = now_ns.saturating_add(config.l1_negative_ttl_ms.saturating_mul(1_000_000));
    Some(encode(TAG_ABSENT, key, expires, &[]))
}

/// What an L1 value says about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L1 {
    /// A fresh reply template for the key, at `value[HEADER_BYTES..]`.
    Answer,
    /// The origin had no answer for the key a moment ago.
    Absent,
    /// Nothing usable: another key's entry, expired, or unreadable bytes.
    Nothing,
}

/// Reads an L1 value for `key` at `now_ns`.
pub fn decode_l1(bytes: &[u8], key: &CacheKey, now_ns: u64) -> L1 {
    let (Some(&tag), Some(expires), Some(stored_key)) =
        (bytes.first(), bytes.get(1..9), bytes.get(9..HEADER_BYTES))
    else {
        return L1::Nothing;
    };
    let Ok(expires) = <[u8; 8]>::try_from(expires) else {
        return L1::Nothing;
    };
    if u64::from_le_bytes(expires) <= now_ns || stored_key != key.as_bytes() {
        return L1::Nothing;
    }
    match tag {
        TAG_ANSWER if bytes.len() > HEADER_BYTES => L1::Answer,
        TAG_ABSENT => L1::Absent,
        _ => L1::Nothing,
    }
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
        let template = crate::reply::hit_template(RouteClass::Chat, &entry()).unwrap();
        let value = encode_l1(&config, &a, &template, 1_000).unwrap();
        assert_eq!(decode_l1(&value, &a, 1_001), L1::Answer);
        assert_eq!(&value[HEADER_BYTES..], &template[..]);
        assert_eq!(decode_l1(&value, &b, 1_001), L1::Nothing);
        assert_eq!(decode_l1(&value, &a, 1_000 + 5_000_000_000), L1::Nothing);
        assert_eq!(decode_l1(&value[..10], &a, 0), L1::Nothing);
        assert_eq!(decode_l1(&value[..HEADER_BYTES], &a, 0), L1::Nothing);
        assert_eq!(decode_l1(b"", &a, 0), L1::Nothing);
        let tiny = CacheConfig {
            l1_max_entry_bytes: 10,
            ..CacheConfig::default()
        };
        assert_eq!(encode_l1(&tiny, &a, &template, 0), None);
        let off = CacheConfig {
            l1_ttl_seconds: 0,
            l1_negative_ttl_ms: 0,
            ..CacheConfig::default()
        };
        assert_eq!(encode_l1(&off, &a, &template, 0), None);
        assert_eq!(encode_absent(&off, &a, 0), None);
        assert!(l1_key(&config, &a, RouteClass::Chat).starts_with("libriassist:l1:json:"));
        assert!(l1_key(&config, &a, RouteClass::Stream).starts_with("libriassist:l1:sse:"));
    }

    #[test]
    fn absent_entries_are_short_lived() {
        let config = CacheConfig::default();
        let (a, b) = (key("a"), key("b"));
        let value = encode_absent(&config, &a, 1_000).unwrap();
        assert_eq!(decode_l1(&value, &a, 1_001), L1::Absent);
        assert_eq!(decode_l1(&value, &b, 1_001), L1::Nothing);
        let ttl = config.l1_negative_ttl_ms * 1_000_000;
        assert_eq!(decode_l1(&value, &a, 1_000 + ttl - 1), L1::Absent);
        assert_eq!(decode_l1(&value, &a, 1_000 + ttl), L1::Nothing);
        let mut other_tag = value.clone();
        other_tag[0] = 9;
        assert_eq!(decode_l1(&other_tag, &a, 1_001), L1::Nothing);
    }
}
