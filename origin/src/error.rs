//! The one place where errors become HTTP responses.
//!
//! Handlers return `Result<_, AppError>`; this file picks the status and the client-facing
//! message by the error's source (client 4xx, backends 502/503, internal 500). Detail for
//! operators goes to the log; clients see the documented JSON body and nothing internal.

use crate::backends::PoolError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use libriassist_protocol::headers::RETRY_ELSEWHERE;
use libriassist_protocol::{ErrorBody, ErrorCode, ErrorDetail};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request itself is wrong; the detail is safe to show.
    #[error("{}", .0.message)]
    Client(ErrorDetail),
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The answer failed after it had started; the detail says so.
    #[error("{}", .0.message)]
    Interrupted(ErrorDetail),
    #[error("the service is shutting down")]
    Draining,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ErrorDetail> for AppError {
    fn from(detail: ErrorDetail) -> Self {
        AppError::Client(detail)
    }
}

impl AppError {
    pub fn not_found(what: &str) -> AppError {
        AppError::Client(ErrorDetail::new(
            ErrorCode::NotFound,
            format!("{what} not found"),
        ))
    }

    pub fn unauthorized() -> AppError {
        AppError::Client(ErrorDetail::new(
            ErrorCode::Unauthorized,
            "missing or wrong bearer token",
        ))
    }

    /// The body a client sees, also used for the SSE `error` event of a failed stream.
    pub fn detail(&self) -> ErrorDetail {
        match self {
            AppError::Client(detail) | AppError::Interrupted(detail) => detail.clone(),
            AppError::Pool(PoolError::NoBackend) => ErrorDetail::new(
                ErrorCode::NoBackend,
                "no language model is available right now; please retry shortly",
            ),
            AppError::Pool(PoolError::QueueFull(_) | PoolError::QueueTimeout(_)) => {
                ErrorDetail::new(
                    ErrorCode::Overloaded,
                    "too many questions at once; please retry shortly",
                )
            }
            AppError::Pool(PoolError::Failed(_)) => ErrorDetail::new(
                ErrorCode::BackendFailed,
                "the language model failed to answer; please retry",
            ),
            AppError::Draining => ErrorDetail::new(
                ErrorCode::Draining,
                "the service is restarting; please retry",
            ),
            AppError::Internal(_) => ErrorDetail::new(ErrorCode::Internal, "internal error"),
        }
    }

    /// Seconds a client should wait before retrying, for the statuses where that makes sense.
    fn retry_after(&self) -> Option<u64> {
        match self {
            AppError::Pool(PoolError::NoBackend) => Some(10),
            AppError::Pool(PoolError::QueueFull(_) | PoolError::QueueTimeout(_)) => Some(5),
            AppError::Draining => Some(2),
            _ => None,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let detail = self.detail();
        match &self {
            AppError::Client(_) => {
                tracing::debug!(code = detail.code.as_str(), error = %self, "request refused")
            }
            AppError::Internal(_) => tracing::error!(error = %self, "request failed"),
            _ => tracing::warn!(code = detail.code.as_str(), error = %self, "request failed"),
        }
        let status =
            StatusCode::from_u16(detail.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            ErrorBody::from(detail).to_json(),
        )
            .into_response();
        if let Some(seconds) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        // A draining origin has sent nothing of the answer: another origin can take it.
        if matches!(self, AppError::Draining) {
            response
                .headers_mut()
                .insert(RETRY_ELSEWHERE, HeaderValue::from_static("draining"));
        }
        response
    }
}
