//! Which kind of request this is, and the checks that need only its headers.
//!
//! The two chat routes are validated and may be answered from the cache; everything else
//! (static pages, health, other API calls) is only identified and rate limited. Envoy
//! normalizes the path before filters run (`normalize_path`, `merge_slashes`), so an exact
//! comparison is enough here.

use libriassist_protocol::limits::MAX_BODY_BYTES;
use libriassist_protocol::paths::{CHAT, CHAT_STREAM};
use libriassist_protocol::validate::is_json_content_type;
use libriassist_protocol::{ErrorCode, ErrorDetail};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    /// `POST /api/v1/chat`: one JSON answer.
    Chat,
    /// `POST /api/v1/chat/stream`: server-sent events.
    Stream,
    Other,
}

impl RouteClass {
    pub const fn as_str(self) -> &'static str {
        match self {
            RouteClass::Chat => "chat",
            RouteClass::Stream => "stream",
            RouteClass::Other => "other",
        }
    }

    pub const fn is_chat(self) -> bool {
        matches!(self, RouteClass::Chat | RouteClass::Stream)
    }
}

/// The path without its query string.
pub fn path_only(path: &str) -> &str {
    path.split(['?', '#']).next().unwrap_or(path)
}

pub fn classify(path: &str) -> RouteClass {
    match path_only(path) {
        CHAT => RouteClass::Chat,
        CHAT_STREAM => RouteClass::Stream,
        _ => RouteClass::Other,
    }
}

/// Routes an API key protects: the API, not the pages a browser loads before it has one.
pub fn needs_api_key(path: &str) -> bool {
    path_only(path).starts_with("/api/")
}

/// The headers of a chat request that can be judged before its body arrives.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestHead<'a> {
    pub method: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub content_length: Option<&'a str>,
}

/// Checks a chat request's method, content type and declared size, in the order the origin
/// does, so a request wrong in several ways gets the same error from both.
///
/// # Errors
/// `method_not_allowed` unless POST, `unsupported_media_type` unless JSON, `payload_too_large`
/// when `content-length` already exceeds the limit.
pub fn check_head(head: RequestHead<'_>) -> Result<(), ErrorDetail> {
    if head.method != Some("POST") {
        return Err(ErrorDetail::new(
            ErrorCode::MethodNotAllowed,
            "this endpoint only accepts POST",
        ));
    }
    if !head.content_type.is_some_and(is_json_content_type) {
        return Err(ErrorDetail::new(
            ErrorCode::UnsupportedMediaType,
            "the request body must be JSON, sent with `content-type: application/json`",
        ));
    }
    // An unreadable content-length is the HTTP codec's business; Envoy refuses those itself.
    if let Some(length) = head
        .content_length
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        if length > MAX_BODY_BYTES as u64 {
            return Err(too_large());
        }
    }
    Ok(())
}

/// The error for a body over the limit, whether seen in `content-length` or while buffering.
pub fn too_large() -> ErrorDetail {
    ErrorDetail::new(
        ErrorCode::PayloadTooLarge,
        format!("request body is larger than {MAX_BODY_BYTES} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(method: &str, ct: Option<&str>, len: Option<&str>) -> Option<ErrorCode> {
        check_head(RequestHead {
            method: Some(method),
            content_type: ct,
            content_length: len,
        })
        .err()
        .map(|e| e.code)
    }

    #[test]
    fn classification() {
        assert_eq!(classify("/api/v1/chat"), RouteClass::Chat);
        assert_eq!(classify("/api/v1/chat?x=1"), RouteClass::Chat);
        assert_eq!(classify("/api/v1/chat/stream"), RouteClass::Stream);
        assert_eq!(classify("/api/v1/chat/"), RouteClass::Other);
        assert_eq!(classify("/api/v1/chatter"), RouteClass::Other);
        assert_eq!(classify("/"), RouteClass::Other);
        assert_eq!(classify(""), RouteClass::Other);
        assert!(needs_api_key("/api/v1/backends?x"));
        assert!(!needs_api_key("/healthz"));
    }

    #[test]
    fn head_checks_in_order() {
        let json = Some("application/json; charset=utf-8");
        assert_eq!(code("POST", json, Some("10")), None);
        assert_eq!(code("POST", json, None), None);
        assert_eq!(code("GET", None, None), Some(ErrorCode::MethodNotAllowed));
        assert_eq!(code("post", json, None), Some(ErrorCode::MethodNotAllowed));
        assert_eq!(
            code("POST", Some("text/plain"), None),
            Some(ErrorCode::UnsupportedMediaType)
        );
        assert_eq!(
            code("POST", None, None),
            Some(ErrorCode::UnsupportedMediaType)
        );
        assert_eq!(
            code("POST", json, Some("65537")),
            Some(ErrorCode::PayloadTooLarge)
        );
        assert_eq!(code("POST", json, Some("65536")), None);
        assert_eq!(code("POST", json, Some("junk")), None);
    }
}
