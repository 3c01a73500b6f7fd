//! Every bad input gets the documented JSON error and status, and the service keeps serving.

use libriassist_tests::process::*;
use libriassist_tests::sse::ask;

const JSON: &str = "application/json";

/// Checks the documented error answer to `what`.
async fn expect_error(response: reqwest::Response, status: u16, code: &str, what: &str) {
    assert_eq!(response.status().as_u16(), status, "{what}");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(JSON),
        "{what}"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{what}: {body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn bad_inputs_get_documented_json_errors() {
    let origin = origin(&[]).await;
    let client = reqwest::Client::new();
    for path in ["/api/v1/chat", "/api/v1/chat/stream"] {
        let url = format!("{}{path}", origin.url());
        let long = format!(r#"{{"question":"{}"}}"#, "a".repeat(2001));
        let huge = format!(r#"{{"question":"{}"}}"#, "a".repeat(70_000));
        let bad_inputs: [(&[u8], &str, u16, &str); 10] = [
            (b"{not json", JSON, 400, "invalid_json"),
            (b"\xff\xfe", JSON, 400, "invalid_json"),
            (
                br#"{"question":"q"}"#,
                "text/plain",
                415,
                "unsupported_media_type",
            ),
            (br#"{"question":""}"#, JSON, 400, "invalid_request"),
            (br#"{"question":"   "}"#, JSON, 400, "invalid_request"),
            (br#"{"question":42}"#, JSON, 400, "invalid_request"),
            (long.as_bytes(), JSON, 400, "invalid_request"),
            (huge.as_bytes(), JSON, 413, "payload_too_large"),
            (
                br#"{"question":"q","history":[{"role":"system","content":"x"}]}"#,
                JSON,
                400,
                "invalid_request",
            ),
            (
                br#"{"question":"q","history":"not a list"}"#,
                JSON,
                400,
                "invalid_request",
            ),
        ];
        for (body, content_type, status, code) in bad_inputs {
            let response = client
                .post(&url)
                .header("content-type", content_type)
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            // The start of the body names the case; the huge one would bury the message.
            let start = String::from_utf8_lossy(&body[..body.len().min(60)]);
            let what = format!("{content_type} {start} on {path}");
            expect_error(response, status, code, &what).await;
        }
        expect_error(
            client.get(&url).send().await.unwrap(),
            405,
            "method_not_allowed",
            &format!("GET {path}"),
        )
        .await;
    }
    expect_error(
        client
            .get(format!("{}/nope", origin.url()))
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
        "an unknown path",
    )
    .await;
    // With no backend configured a valid question gets a clear 503, not a hang or a 500.
    let r = ask(&client, &origin.url(), "Bonjour ?").await;
    assert!(r.headers().get("retry-after").is_some());
    expect_error(r, 503, "no_backend", "a question without a backend").await;
    // Still alive and well after all that.
    assert_eq!(
        client
            .get(format!("{}/healthz", origin.url()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn responses_carry_a_request_id() {
    let origin = origin(&[]).await;
    let client = reqwest::Client::new();
    let healthz = format!("{}/healthz", origin.url());
    let r = client
        .get(&healthz)
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = client.get(&healthz).send().await.unwrap();
    assert!(!r.headers()["x-request-id"].is_empty());
}
