//! The request headers the filter reads, taken from the one serialized header map Envoy hands
//! over (`proxy_get_header_map_pairs`), in a single pass and without copying: one host call
//! per request instead of one per header.
//!
//! A header present more than once reads as its first value, as Envoy's single-header call
//! (`proxy_get_header_map_value`) returns it. A value that is not UTF-8 reads as absent.

use crate::pairs;
use libriassist_protocol::headers::{CACHE_KEY, CONTENT_TYPE, REQUEST_ID};

/// What the filter needs from a request's headers, borrowed from the serialized map.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestView<'a> {
    /// `:path`; empty when absent.
    pub path: &'a str,
    pub method: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub content_length: Option<&'a str>,
    pub request_id: Option<&'a str>,
    pub forwarded_for: Option<&'a str>,
    /// The configured API key header's value.
    pub api_key: Option<&'a [u8]>,
    /// The client sent a cache-key header, which must be removed before the request goes on.
    /// Also true when the map could not be read, so that removal is never skipped by mistake.
    pub has_cache_key: bool,
}

fn text(value: &[u8]) -> Option<&str> {
    std::str::from_utf8(value).ok()
}

/// Reads `bytes` (a serialized header map). `api_key_header` is the configured API key
/// header, if any.
pub fn read<'a>(bytes: &'a [u8], api_key_header: Option<&str>) -> RequestView<'a> {
    // The first occurrence of each header, UTF-8 or not.
    const PATH: usize = 0;
    const METHOD: usize = 1;
    const TYPE: usize = 2;
    const LENGTH: usize = 3;
    const ID: usize = 4;
    const XFF: usize = 5;
    let mut found: [Option<&'a [u8]>; 6] = [None; 6];
    let (mut api_key, mut has_cache_key) = (None, false);
    let well_formed = pairs::for_each(bytes, |name, value| {
        let at = match name {
            b":path" => PATH,
            b":method" => METHOD,
            b"content-length" => LENGTH,
            b"x-forwarded-for" => XFF,
            n if n == CONTENT_TYPE.as_bytes() => TYPE,
            n if n == REQUEST_ID.as_bytes() => ID,
            n if n == CACHE_KEY.as_bytes() => {
                has_cache_key = true;
                return;
            }
            n if api_key_header.is_some_and(|h| h.as_bytes() == n) => {
                api_key = api_key.or(Some(value));
                return;
            }
            _ => return,
        };
        found[at] = found[at].or(Some(value));
    });
    let get = |at: usize| found[at].and_then(text);
    RequestView {
        path: get(PATH).unwrap_or_default(),
        method: get(METHOD),
        content_type: get(TYPE),
        content_length: get(LENGTH),
        request_id: get(ID),
        forwarded_for: get(XFF),
        api_key,
        has_cache_key: has_cache_key || !well_formed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_first_values() {
        let bytes = pairs::encode(&[
            (&b":method"[..], &b"POST"[..]),
            (b":path", b"/api/v1/chat"),
            (b"content-type", b"application/json"),
            (b"x-forwarded-for", b"1.1.1.1"),
            (b"x-forwarded-for", b"2.2.2.2"),
            (b"x-request-id", b"\xff"),
            (b"x-api-key", b"k\xff"),
            (b"content-length", b"12"),
        ]);
        let v = read(&bytes, Some("x-api-key"));
        assert_eq!(v.path, "/api/v1/chat");
        assert_eq!(v.method, Some("POST"));
        assert_eq!(v.content_type, Some("application/json"));
        assert_eq!(v.content_length, Some("12"));
        assert_eq!(v.forwarded_for, Some("1.1.1.1"));
        assert_eq!(v.request_id, None, "not UTF-8: absent");
        assert_eq!(v.api_key, Some(&b"k\xff"[..]));
        assert!(!v.has_cache_key);
        assert_eq!(read(&bytes, None).api_key, None);

        let with_key = pairs::encode(&[("x-libriassist-cache-key", "x"), (":path", "/")]);
        let v = read(&with_key, None);
        assert!(v.has_cache_key);
        assert_eq!(v.path, "/");
        let broken = read(&[3, 0, 0, 0, 1], None);
        assert!(broken.has_cache_key);
        assert_eq!(broken.path, "");
        assert_eq!(read(&[], None), RequestView::default());
    }
}
