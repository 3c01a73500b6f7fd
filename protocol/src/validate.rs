//! Validation of chat requests, shared by the edge and the origin so that a bad request gets
//! the same status and the same error body wherever it is stopped.

use crate::api::ChatRequest;
use crate::error::{ErrorCode, ErrorDetail};
use crate::limits::{
    MAX_BODY_BYTES, MAX_HISTORY_TURNS, MAX_QUESTION_CHARS, MAX_SESSION_ID_CHARS, MAX_TURN_CHARS,
};

/// True for `application/json`, with or without parameters (`; charset=utf-8`), in any case.
pub fn is_json_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

/// Parses and validates a chat request body.
///
/// # Errors
/// `payload_too_large` over [`MAX_BODY_BYTES`]; `invalid_json` when the body is not UTF-8 JSON;
/// `invalid_request` when it is JSON of the wrong shape, the question is empty or too long, or
/// the history or session id is out of bounds. Messages say which field and which bound.
pub fn parse_chat_request(body: &[u8]) -> Result<ChatRequest, ErrorDetail> {
    if body.len() > MAX_BODY_BYTES {
        return Err(ErrorDetail::new(
            ErrorCode::PayloadTooLarge,
            format!("request body is larger than {MAX_BODY_BYTES} bytes"),
        ));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ErrorDetail::new(ErrorCode::InvalidJson, "request body is not valid UTF-8"))?;
    let request: ChatRequest = serde_json::from_str(text).map_err(|e| {
        let code = if e.is_data() {
            ErrorCode::InvalidRequest
        } else {
            ErrorCode::InvalidJson
        };
        ErrorDetail::new(
            code,
            format!("request body is not a valid chat request: {e}"),
        )
    })?;
    check(&request)?;
    Ok(request)
}

fn check(request: &ChatRequest) -> Result<(), ErrorDetail> {
    let invalid = |message: String| Err(ErrorDetail::new(ErrorCode::InvalidRequest, message));
    if request.question.trim().is_empty() {
        return invalid("`question` must not be empty".into());
    }
    let chars = request.question.chars().count();
    if chars > MAX_QUESTION_CHARS {
        return invalid(format!(
            "`question` has {chars} characters; the limit is {MAX_QUESTION_CHARS}"
        ));
    }
    if request.history.len() > MAX_HISTORY_TURNS {
        return invalid(format!(
            "`history` has {} turns; the limit is {MAX_HISTORY_TURNS}",
            request.history.len()
        ));
    }
    for (i, turn) in request.history.iter().enumerate() {
        if turn.content.trim().is_empty() {
            return invalid(format!("`history[{i}].content` must not be empty"));
        }
        if turn.content.chars().count() > MAX_TURN_CHARS {
            return invalid(format!(
                "`history[{i}].content` is longer than {MAX_TURN_CHARS} characters"
            ));
        }
    }
    if let Some(session) = &request.session_id {
        if session.chars().count() > MAX_SESSION_ID_CHARS {
            return invalid(format!(
                "`session_id` is longer than {MAX_SESSION_ID_CHARS} characters"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(body: &[u8]) -> ErrorCode {
        parse_chat_request(body).unwrap_err().code
    }

    #[test]
    fn accepts_a_question_with_history() {
        let r = parse_chat_request(
            br#"{"question":"Et en poche ?","history":[{"role":"user","content":"Germinal ?"},{"role":"assistant","content":"Oui."}],"session_id":"s1","extra":1}"#,
        )
        .unwrap();
        assert_eq!(r.history.len(), 2);
    }

    #[test]
    fn rejections_have_the_documented_codes() {
        assert_eq!(code_of(b"{"), ErrorCode::InvalidJson);
        assert_eq!(code_of(b"\xff\xfe"), ErrorCode::InvalidJson);
        assert_eq!(code_of(b"[]"), ErrorCode::InvalidRequest);
        assert_eq!(code_of(br#"{"question":42}"#), ErrorCode::InvalidRequest);
        assert_eq!(code_of(br#"{}"#), ErrorCode::InvalidRequest);
        assert_eq!(code_of(br#"{"question":"   "}"#), ErrorCode::InvalidRequest);
        assert_eq!(
            code_of(br#"{"question":"q","history":[{"role":"system","content":"x"}]}"#),
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            code_of(br#"{"question":"q","history":[{"role":"user","content":""}]}"#),
            ErrorCode::InvalidRequest
        );
        assert_eq!(
            code_of(br#"{"question":"q","history":{}}"#),
            ErrorCode::InvalidRequest
        );
        let long = format!(r#"{{"question":"{}"}}"#, "é".repeat(MAX_QUESTION_CHARS + 1));
        assert_eq!(code_of(long.as_bytes()), ErrorCode::InvalidRequest);
        let ok = format!(r#"{{"question":"{}"}}"#, "é".repeat(MAX_QUESTION_CHARS));
        assert!(parse_chat_request(ok.as_bytes()).is_ok());
        assert_eq!(
            code_of(&vec![b' '; MAX_BODY_BYTES + 1]),
            ErrorCode::PayloadTooLarge
        );
    }

    #[test]
    fn content_type() {
        assert!(is_json_content_type("application/json"));
        assert!(is_json_content_type("Application/JSON; charset=utf-8"));
        assert!(!is_json_content_type("text/plain"));
        assert!(!is_json_content_type("application/jsonx"));
    }
}
