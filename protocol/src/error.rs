//! The one error body of the public API, used by the origin and by the edge's local replies.

use serde::{Deserialize, Serialize};

/// `{"error": {"code": "snake_case", "message": "human readable"}}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The `error` object; also the payload of the SSE `error` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
}

/// Every error a client can see. The HTTP status is a property of the code so that the edge and
/// the origin cannot disagree on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidJson,
    InvalidRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    MethodNotAllowed,
    NotFound,
    Unauthorized,
    RateLimited,
    TooManyStreams,
    Overloaded,
    NoBackend,
    BackendFailed,
    Draining,
    Internal,
}

impl ErrorCode {
    pub const fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidJson | ErrorCode::InvalidRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::RateLimited | ErrorCode::TooManyStreams => 429,
            ErrorCode::BackendFailed => 502,
            ErrorCode::Overloaded | ErrorCode::NoBackend | ErrorCode::Draining => 503,
            ErrorCode::Internal => 500,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooManyStreams => "too_many_streams",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::NoBackend => "no_backend",
            ErrorCode::BackendFailed => "backend_failed",
            ErrorCode::Draining => "draining",
            ErrorCode::Internal => "internal",
        }
    }
}

impl ErrorDetail {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorDetail {
            code,
            message: message.into(),
        }
    }
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail::new(code, message),
        }
    }

    /// The serialized body. Serializing this plain struct cannot fail; the fallback keeps the
    /// signature infallible for callers on request paths that must never panic.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            format!(
                r#"{{"error":{{"code":"{}","message":"error"}}}}"#,
                self.error.code.as_str()
            )
        })
    }
}

impl From<ErrorDetail> for ErrorBody {
    fn from(error: ErrorDetail) -> Self {
        ErrorBody { error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_documented_shape() {
        let body = ErrorBody::new(ErrorCode::PayloadTooLarge, "too big");
        assert_eq!(
            body.to_json(),
            r#"{"error":{"code":"payload_too_large","message":"too big"}}"#
        );
        assert_eq!(ErrorCode::PayloadTooLarge.status(), 413);
    }

    #[test]
    fn serde_name_matches_as_str() {
        for code in [
            ErrorCode::InvalidJson,
            ErrorCode::InvalidRequest,
            ErrorCode::PayloadTooLarge,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::MethodNotAllowed,
            ErrorCode::NotFound,
            ErrorCode::Unauthorized,
            ErrorCode::RateLimited,
            ErrorCode::TooManyStreams,
            ErrorCode::Overloaded,
            ErrorCode::NoBackend,
            ErrorCode::BackendFailed,
            ErrorCode::Draining,
            ErrorCode::Internal,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }
}
