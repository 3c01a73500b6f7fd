//! Every bad input gets the documented JSON error and status, and the service keeps serving.

use libriassist_tests::process::*;

async fn expect_error(response: reqwest::Response, status: u16, code: &str) {
    assert_eq!(response.status().as_u16(), status);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
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
        let post = |body: Vec<u8>, ct: &'static str| {
            client
                .post(&url)
                .header("content-type", ct)
                .body(body)
                .send()
        };
        expect_error(
            post(b"{not json".to_vec(), "application/json")
                .await
                .unwrap(),
            400,
            "invalid_json",
        )
        .await;
        expect_error(
            post(b"\xff\xfe".to_vec(), "application/json")
                .await
                .unwrap(),
            400,
            "invalid_json",
        )
        .await;
        expect_error(
            post(br#"{"question":"q"}"#.to_vec(), "text/plain")
                .await
                .unwrap(),
            415,
            "unsupported_media_type",
        )
        .await;
        expect_error(
            post(br#"{"question":""}"#.to_vec(), "application/json")
                .await
                .unwrap(),
            400,
            "invalid_request",
        )
        .await;
        expect_error(
            post(br#"{"question":"   "}"#.to_vec(), "application/json")
                .await
                .unwrap(),
            400,
            "invalid_request",
        )
        .await;
        expect_error(
            post(br#"{"question":42}"#.to_vec(), "application/json")
                .await
                .unwrap(),
            400,
            "invalid_request",
        )
        .await;
        let long = format!(r#"{{"question":"{}"}}"#, "a".repeat(2001));
        expect_error(
            post(long.into_bytes(), "application/json").await.unwrap(),
            400,
            "invalid_request",
        )
        .await;
        let huge = format!(r#"{{"question":"{}"}}"#, "a".repeat(70_000));
        expect_error(
            post(huge.into_bytes(), "application/json").await.unwrap(),
            413,
            "payload_too_large",
        )
        .await;
        let bad_history = br#"{"question":"q","history":[{"role":"system","content":"x"}]}"#;
        expect_error(
            post(bad_history.to_vec(), "application/json")
                .await
                .unwrap(),
            400,
            "invalid_request",
        )
        .await;
        let bad_history = br#"{"question":"q","history":"not a list"}"#;
        expect_error(
            post(bad_history.to_vec(), "application/json")
                .await
                .unwrap(),
            400,
            "invalid_request",
        )
        .await;
        expect_error(
            client.get(&url).send().await.unwrap(),
            405,
            "method_not_allowed",
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
    )
    .await;
    // With no backend configured a valid question gets a clear 503, not a hang or a 500.
    let r = client
        .post(format!("{}/api/v1/chat", origin.url()))
        .json(&serde_json::json!({"question": "Bonjour ?"}))
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("retry-after").is_some());
    expect_error(r, 503, "no_backend").await;
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
    let r = client
        .get(format!("{}/healthz", origin.url()))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = client
        .get(format!("{}/healthz", origin.url()))
        .send()
        .await
        .unwrap();
    assert!(!r.headers()["x-request-id"].is_empty());
}
