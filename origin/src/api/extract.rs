//! The chat request extractor: content type, size and shape checked with the same rules and
//! the same error body as the edge filter (`protocol::validate`).

use crate::error::AppError;
use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use libriassist_protocol::limits::MAX_BODY_BYTES;
use libriassist_protocol::validate::{is_json_content_type, parse_chat_request};
use libriassist_protocol::{ChatRequest, ErrorCode, ErrorDetail};

pub struct ValidChat(pub ChatRequest);

impl<S: Send + Sync> FromRequest<S> for ValidChat {
    type Rejection = AppError;

    async fn from_request(req: Request<Body>, _state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !is_json_content_type(content_type) {
            return Err(ErrorDetail::new(
                ErrorCode::UnsupportedMediaType,
                "content-type must be application/json",
            )
            .into());
        }
        // Read one byte past the limit so an oversized body is told apart from a body at the limit.
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES + 1)
            .await
            .map_err(|_| {
                ErrorDetail::new(
                    ErrorCode::PayloadTooLarge,
                    format!("request body is larger than {MAX_BODY_BYTES} bytes"),
                )
            })?;
        Ok(ValidChat(parse_chat_request(&bytes)?))
    }
}
