//! Every refusal the simulator makes, mapped in one place to the status and `{"error": ...}`
//! body Ollama sends for the same situation, so clients are tested against the real messages.

use super::wire::error_body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// Ollama's own 503 text (two spaces included).
pub const BUSY_MESSAGE: &str = "server busy, please try again.  maximum pending requests exceeded";

/// What --fail-rate answers: the message Ollama gives when its runner dies before a token.
pub const INJECTED_FAILURE: &str = "llama runner process has terminated: exit status 2";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimError {
    /// Unreadable or incomplete request (400).
    BadRequest(String),
    /// Body above the size limit (413).
    TooLarge(String),
    /// The named model is not present (404).
    ModelNotFound(String),
    /// Ollama answers 500 for option type errors and runner failures alike.
    Internal(String),
    /// Queue full (503).
    Busy,
}

impl SimError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::ModelNotFound(_) => StatusCode::NOT_FOUND,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::BadRequest(m) | Self::TooLarge(m) | Self::Internal(m) => m.clone(),
            // Go's %q and Rust's {:?} quote ordinary names the same way.
            Self::ModelNotFound(name) => format!("model {name:?} not found, try pulling it first"),
            Self::Busy => BUSY_MESSAGE.to_string(),
        }
    }
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        (
            self.status(),
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            error_body(&self.message()),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_ollamas() {
        assert_eq!(
            SimError::ModelNotFound("llama3".into()).message(),
            r#"model "llama3" not found, try pulling it first"#
        );
        assert_eq!(SimError::Busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(SimError::Busy.message(), BUSY_MESSAGE);
    }
}
