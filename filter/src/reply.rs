//! The responses the edge sends itself: errors in the origin's JSON shape, 429s with their
//! rate-limit headers, and cache hits as JSON or as the SSE replay. Built as plain data so
//! they are tested natively; the glue hands them to Envoy's local reply unchanged.

use crate::route::RouteClass;
use crate::token_bucket::Outcome;
use libriassist_protocol::headers::{
    CONTENT_TYPE, EVENT_STREAM, JSON, RATELIMIT_LIMIT, RATELIMIT_REMAINING, RATELIMIT_RESET,
    RETRY_AFTER, X_CACHE,
};
use libriassist_protocol::sse::encode_replay;
use libriassist_protocol::{CacheLayer, CachedAnswer, ErrorBody, ErrorCode, ErrorDetail, Timings};

/// A complete response for Envoy to send in place of the upstream's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    pub status: u32,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// An error in the public API's JSON shape, with the status its code implies.
pub fn error(detail: ErrorDetail) -> LocalReply {
    let mut headers = vec![(CONTENT_TYPE, JSON.to_owned())];
    if detail.code == ErrorCode::MethodNotAllowed {
        headers.push(("allow", "POST".to_owned()));
    }
    LocalReply {
        status: u32::from(detail.code.status()),
        headers,
        body: ErrorBody::from(detail).to_json().into_bytes(),
    }
}

/// The 429 for an empty bucket, with `Retry-After` and the `RateLimit-*` headers.
pub fn rate_limited(outcome: &Outcome) -> LocalReply {
    let mut reply = error(ErrorDetail::new(
        ErrorCode::RateLimited,
        format!(
            "too many requests; retry in {} s",
            outcome.retry_after_seconds
        ),
    ));
    reply.headers.extend([
        (RETRY_AFTER, outcome.retry_after_seconds.to_string()),
        (RATELIMIT_LIMIT, outcome.limit.to_string()),
        (RATELIMIT_REMAINING, outcome.remaining.to_string()),
        (RATELIMIT_RESET, outcome.reset_seconds.to_string()),
    ]);
    reply
}

/// The 429 for a client already at its cap of open streams.
pub fn too_many_streams(max: u32) -> LocalReply {
    let mut reply = error(ErrorDetail::new(
        ErrorCode::TooManyStreams,
        format!("at most {max} answers can stream at once; wait for one to finish"),
    ));
    reply.headers.push((RETRY_AFTER, "1".to_owned()));
    reply
}

/// A cache hit answered at the edge: a `ChatResponse` on the JSON route, the documented event
/// sequence on the stream route, both marked `x-cache: edge`.
pub fn cache_hit(class: RouteClass, entry: CachedAnswer, elapsed_ms: f64) -> LocalReply {
    let timings = Timings {
        total_ms: elapsed_ms,
        ..Timings::default()
    };
    let (content_type, body) = match class {
        RouteClass::Stream => (
            EVENT_STREAM,
            encode_replay(&entry, CacheLayer::Edge, timings).into_bytes(),
        ),
        _ => {
            let response = entry.into_response(CacheLayer::Edge, timings);
            // Serializing plain data cannot fail; an empty object keeps the path panic-free.
            (
                JSON,
                serde_json::to_vec(&response).unwrap_or_else(|_| b"{}".to_vec()),
            )
        }
    };
    let mut headers = vec![
        (CONTENT_TYPE, content_type.to_owned()),
        (X_CACHE, CacheLayer::Edge.as_str().to_owned()),
    ];
    if class == RouteClass::Stream {
        headers.push(("cache-control", "no-cache".to_owned()));
    }
    LocalReply {
        status: 200,
        headers,
        body,
    }
}

/// The headers of a cache hit on route `class`, as [`cache_hit`] sets them.
pub fn hit_headers(class: RouteClass) -> &'static [(&'static str, &'static str)] {
    match class {
        RouteClass::Stream => &[
            (CONTENT_TYPE, EVENT_STREAM),
            (X_CACHE, "edge"),
            ("cache-control", "no-cache"),
        ],
        _ => &[(CONTENT_TYPE, JSON), (X_CACHE, "edge")],
    }
}

/// What ends a hit body after its `total_ms` value: the `timings` and response objects, and
/// on the stream route the end of the `done` event.
fn hit_tail(class: RouteClass) -> &'static [u8] {
    match class {
        RouteClass::Stream => b"}}\n\n",
        _ => b"}}",
    }
}

/// The body [`cache_hit`] sends for `entry`, cut just after `"total_ms":`: the only value
/// that differs between two hits on the same entry is the time, and it is the last one in
/// both bodies (`timings` ends the JSON answer and the `done` event ends the stream). Kept in
/// L1 so that a hit only appends the time ([`finish_hit`]). `None` if the encoding does not
/// end as expected (then nothing is kept and the hit is encoded in full).
pub fn hit_template(class: RouteClass, entry: &CachedAnswer) -> Option<Vec<u8>> {
    let mut body = cache_hit(class, entry.clone(), 0.0).body;
    let tail = hit_tail(class);
    let end = body.len().checked_sub(tail.len() + 3)?;
    if body.get(end..)?.strip_prefix(b"0.0")? != tail
        || !body.get(..end)?.ends_with(b"\"total_ms\":")
    {
        return None;
    }
    body.truncate(end);
    Some(body)
}

/// Completes a body from [`hit_template`] (at the end of `body`) with the elapsed time,
/// written exactly as the JSON encoder writes it.
pub fn finish_hit(class: RouteClass, body: &mut Vec<u8>, elapsed_ms: f64) {
    let ms = if elapsed_ms.is_finite() {
        elapsed_ms
    } else {
        0.0
    };
    if serde_json::to_writer(&mut *body, &ms).is_err() {
        body.extend_from_slice(b"0.0");
    }
    body.extend_from_slice(hit_tail(class));
}

#[cfg(test)]
mod tests {
    use super::*;
    use libriassist_protocol::{ChatResponse, Mode};

    fn header<'a>(r: &'a LocalReply, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn errors_match_the_origin_shape() {
        let r = error(ErrorDetail::new(
            ErrorCode::UnsupportedMediaType,
            "json please",
        ));
        assert_eq!(r.status, 415);
        assert_eq!(header(&r, "content-type"), Some("application/json"));
        let body: ErrorBody = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body.error.code, ErrorCode::UnsupportedMediaType);
        assert_eq!(
            header(
                &error(ErrorDetail::new(ErrorCode::MethodNotAllowed, "")),
                "allow"
            ),
            Some("POST")
        );
    }

    #[test]
    fn rate_limited_headers() {
        let outcome = Outcome {
            allowed: false,
            limit: 10,
            remaining: 0,
            reset_seconds: 7,
            retry_after_seconds: 2,
        };
        let r = rate_limited(&outcome);
        assert_eq!(r.status, 429);
        assert_eq!(header(&r, "retry-after"), Some("2"));
        assert_eq!(header(&r, "ratelimit-limit"), Some("10"));
        assert_eq!(header(&r, "ratelimit-remaining"), Some("0"));
        assert_eq!(header(&r, "ratelimit-reset"), Some("7"));
        assert_eq!(too_many_streams(3).status, 429);
    }

    #[test]
    fn hits_as_json_and_as_events() {
        let entry = CachedAnswer {
            answer: "Oui, bien sûr.".into(),
            sources: vec![],
            model: "m".into(),
            mode: Mode::Generated,
        };
        let r = cache_hit(RouteClass::Chat, entry.clone(), 0.2);
        let response: ChatResponse = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(response.cache, CacheLayer::Edge);
        assert_eq!(response.answer, entry.answer);
        assert_eq!(header(&r, "x-cache"), Some("edge"));
        for class in [RouteClass::Chat, RouteClass::Stream, RouteClass::Other] {
            let template = hit_template(class, &entry).unwrap();
            for ms in [0.0, 0.2, 1.0, 12.345_678_9, 1e-7, 3e9] {
                let mut body = template.clone();
                finish_hit(class, &mut body, ms);
                let full = cache_hit(class, entry.clone(), ms);
                assert_eq!(body, full.body, "{class:?} {ms}");
                let headers: Vec<(&str, &str)> =
                    full.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                assert_eq!(hit_headers(class), &headers[..]);
            }
        }
        let r = cache_hit(RouteClass::Stream, entry, 0.2);
        assert_eq!(header(&r, "content-type"), Some("text/event-stream"));
        let text = String::from_utf8(r.body).unwrap();
        assert!(text.starts_with("event: meta\n") && text.contains("event: done\n"));
    }
}
