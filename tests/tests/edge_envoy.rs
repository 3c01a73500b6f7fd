//! End to end through a real Envoy 1.40 running the built filter, in front of a real origin
//! (`libriassist serve`) with Redis and the Ollama simulator: edge hits after a first miss,
//! SSE passing unbuffered, rate limits per client, JSON errors from the edge, and failures of
//! the origin or of the cache lookup turned into clean answers.
//!
//! Every process is a child of this test process and is ended when its test ends. Without
//! Envoy the tests are skipped with a message, except under CI where that is a failure.

use libriassist_tests::edge::{envoy_or_skip, redis, EdgeSetup, Envoy};
use libriassist_tests::process::{free_port, origin, sim, Proc};
use libriassist_tests::sse::read_sse;
use libriassist_tests::wasm_host::filter_wasm;
use std::path::Path;
use std::time::Duration;

/// Limits high enough that only the test that is about them meets them.
const ROOMY: &str = r#"{"trusted_proxies":["127.0.0.1"],"rate_limits":{"chat":{"per_second":100,"burst":1000},"stream":{"per_second":100,"burst":1000},"other":{"per_second":100,"burst":1000}}}"#;

struct Stack {
    envoy: Envoy,
    _origin: Proc,
    _sim: Proc,
    _redis: Proc,
    client: reqwest::Client,
}

/// Redis, a simulator pacing tokens, an origin using both, and Envoy in front.
async fn stack(envoy: &Path, filter_config: &str, cache_reachable: bool) -> Stack {
    let redis = redis().await;
    let sim = sim(
        free_port(),
        &[
            "--slots",
            "4",
            "--tokens-per-sec",
            "25",
            "--answer-tokens",
            "20",
            "--ttft-ms",
            "50",
        ],
    )
    .await;
    let origin = origin(&[
        ("OLLAMA_URLS", sim.url()),
        ("REDIS_URL", format!("redis://{}/0", redis.addr)),
    ])
    .await;
    let cache = if cache_reachable {
        origin.addr
    } else {
        free_port()
    };
    let setup = EdgeSetup {
        origin: origin.addr,
        cache,
        wasm: filter_wasm().clone(),
        filter_config: filter_config.into(),
    };
    let envoy = Envoy::start(envoy, &setup).await;
    envoy.wait_origin_healthy().await;
    Stack {
        envoy,
        _origin: origin,
        _sim: sim,
        _redis: redis,
        client: reqwest::Client::new(),
    }
}

impl Stack {
    async fn chat(&self, path: &str, question: &str, client_ip: &str) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.envoy.url()))
            .header("x-forwarded-for", client_ip)
            .json(&serde_json::json!({ "question": question }))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("request through Envoy")
    }
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[tokio::test]
async fn repeated_questions_are_answered_at_the_edge() {
    let Some(envoy) = envoy_or_skip("repeated_questions_are_answered_at_the_edge") else {
        return;
    };
    let s = stack(&envoy, ROOMY, true).await;

    let first = s
        .chat(
            "/api/v1/chat",
            "Quels formats proposez-vous ?",
            "198.51.100.1",
        )
        .await;
    assert_eq!(first.status(), 200, "{}", s.envoy.log());
    assert_ne!(header(&first, "x-cache").as_deref(), Some("edge"));
    let first: serde_json::Value = first.json().await.unwrap();

    // The origin stores the answer as the first response completes; the same question, spelt
    // differently, is then answered by the edge without reaching the origin's chat route.
    let mut hit = None;
    for _ in 0..50 {
        let r = s
            .chat(
                "/api/v1/chat",
                "  quels formats proposez-vous?",
                "198.51.100.2",
            )
            .await;
        assert_eq!(r.status(), 200);
        if header(&r, "x-cache").as_deref() == Some("edge") {
            assert!(
                r.headers().get("x-envoy-upstream-service-time").is_none(),
                "answered at the edge"
            );
            hit = Some(r.json::<serde_json::Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hit = hit.unwrap_or_else(|| panic!("no edge hit after a miss:\n{}", s.envoy.log()));
    assert_eq!(hit["cache"], "edge");
    assert_eq!(hit["answer"], first["answer"]);

    // The stream route replays the same answer as the documented events.
    let r = s
        .chat(
            "/api/v1/chat/stream",
            "Quels formats proposez-vous ?",
            "198.51.100.3",
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-cache").as_deref(), Some("edge"));
    assert!(header(&r, "content-type")
        .unwrap_or_default()
        .starts_with("text/event-stream"));
    let events = read_sse(r).await;
    assert_eq!(events.first().map(|e| e.event.as_str()), Some("meta"));
    assert_eq!(events[0].data["cache"], "edge");
    assert_eq!(events.last().map(|e| e.event.as_str()), Some("done"));
    let replayed: String = events
        .iter()
        .filter(|e| e.event == "token")
        .filter_map(|e| e.data["text"].as_str())
        .collect();
    assert_eq!(replayed, first["answer"].as_str().unwrap());

    // Counters as Prometheus scrapes them from Envoy.
    assert!(
        s.envoy
            .counter_reaching("libriassist_edge_cache_hits", 2)
            .await
            >= 2,
        "{}",
        s.envoy.prometheus().await
    );
    assert!(
        s.envoy
            .counter_reaching("libriassist_edge_cache_misses", 1)
            .await
            >= 1
    );
}

#[tokio::test]
async fn streams_pass_through_unbuffered() {
    let Some(envoy) = envoy_or_skip("streams_pass_through_unbuffered") else {
        return;
    };
    let s = stack(&envoy, ROOMY, true).await;
    let r = s
        .chat(
            "/api/v1/chat/stream",
            "Livrez-vous en Belgique ?",
            "198.51.100.1",
        )
        .await;
    assert_eq!(r.status(), 200, "{}", s.envoy.log());
    assert_ne!(header(&r, "x-cache").as_deref(), Some("edge"));
    let events = read_sse(r).await;
    let tokens: Vec<_> = events.iter().filter(|e| e.event == "token").collect();
    assert!(tokens.len() >= 5, "{events:?}");
    assert_eq!(events.last().map(|e| e.event.as_str()), Some("done"));
    // At 25 tokens/s the simulator takes most of a second; buffered, they would all arrive
    // together at the end.
    let (first, last) = (tokens[0].at, tokens[tokens.len() - 1].at);
    assert!(
        last.duration_since(first) >= Duration::from_millis(300),
        "tokens arrived in one block"
    );
    let spaced = tokens
        .windows(2)
        .filter(|w| w[1].at.duration_since(w[0].at) >= Duration::from_millis(10))
        .count();
    assert!(
        spaced >= 3,
        "only {spaced} of {} tokens arrived apart",
        tokens.len()
    );
}

#[tokio::test]
async fn at_the_first_hop_a_client_cannot_rename_itself() {
    let Some(envoy) = envoy_or_skip("at_the_first_hop_a_client_cannot_rename_itself") else {
        return;
    };
    // Envoy is the first hop: the client is the peer it appended to X-Forwarded-For, whatever
    // the client wrote there itself.
    let config =
        r#"{"peer_from_forwarded_for":true,"rate_limits":{"chat":{"per_second":0.05,"burst":3}}}"#;
    let s = stack(&envoy, config, true).await;
    let names: Vec<String> = (0..8).map(|i| format!("198.51.100.{i}")).collect();
    let burst = names
        .iter()
        .map(|name| s.chat("/api/v1/chat", "Livrez-vous le dimanche ?", name));
    let statuses: Vec<u16> = futures::future::join_all(burst)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    // One extra request may pass when two workers create the bucket at the same instant.
    assert!(
        (4..=5).contains(&limited),
        "burst of 3 out of 8: {statuses:?}"
    );
}

#[tokio::test]
async fn a_bursting_client_is_limited_while_another_is_served() {
    let Some(envoy) = envoy_or_skip("a_bursting_client_is_limited_while_another_is_served") else {
        return;
    };
    let config =
        r#"{"trusted_proxies":["127.0.0.1"],"rate_limits":{"chat":{"per_second":0.05,"burst":3}}}"#;
    let s = stack(&envoy, config, true).await;
    let questions: Vec<String> = (0..8).map(|i| format!("Question {i} ?")).collect();
    let burst = questions
        .iter()
        .map(|q| s.chat("/api/v1/chat", q, "198.51.100.66"));
    let responses = futures::future::join_all(burst).await;
    let limited: Vec<_> = responses.iter().filter(|r| r.status() == 429).collect();
    // A burst of 3 out of 8. Two workers creating the client's bucket at the same instant can
    // each write it once (Envoy has no create-if-absent), so one extra request may pass.
    assert!(
        (4..=5).contains(&limited.len()),
        "burst of 3 out of 8: {:?}",
        responses.iter().map(|r| r.status()).collect::<Vec<_>>()
    );
    let r = limited[0];
    assert!(header(r, "retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|v| v >= 1));
    assert_eq!(header(r, "ratelimit-limit").as_deref(), Some("3"));
    assert_eq!(header(r, "ratelimit-remaining").as_deref(), Some("0"));
    assert!(header(r, "ratelimit-reset").is_some());
    let other = s.chat("/api/v1/chat", "Et moi ?", "198.51.100.67").await;
    let status = other.status();
    assert_eq!(
        status,
        200,
        "{:?} {}",
        other.headers().clone(),
        other.text().await.unwrap_or_default()
    );
    for r in responses.into_iter().filter(|r| r.status() == 429) {
        assert_eq!(
            header(&r, "content-type").as_deref(),
            Some("application/json")
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "rate_limited");
    }
    assert!(
        s.envoy
            .counter_reaching("libriassist_edge_rate_limited", 4)
            .await
            >= 4
    );
}

#[tokio::test]
async fn bad_inputs_get_their_json_error_from_the_edge() {
    let Some(envoy) = envoy_or_skip("bad_inputs_get_their_json_error_from_the_edge") else {
        return;
    };
    let s = stack(&envoy, ROOMY, true).await;
    let json = "application/json";
    for path in ["/api/v1/chat", "/api/v1/chat/stream"] {
        let url = format!("{}{path}", s.envoy.url());
        let long = format!(r#"{{"question":"{}"}}"#, "a".repeat(2001));
        let huge = format!(r#"{{"question":"{}"}}"#, "a".repeat(70_000));
        let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
            (b"{not json".to_vec(), json, 400, "invalid_json"),
            (b"\xff\xfe".to_vec(), json, 400, "invalid_json"),
            (b"".to_vec(), json, 400, "invalid_json"),
            (
                br#"{"question":"q"}"#.to_vec(),
                "text/plain",
                415,
                "unsupported_media_type",
            ),
            (br#"{"question":""}"#.to_vec(), json, 400, "invalid_request"),
            (br#"{"question":42}"#.to_vec(), json, 400, "invalid_request"),
            (long.into_bytes(), json, 400, "invalid_request"),
            (huge.into_bytes(), json, 413, "payload_too_large"),
            (
                br#"{"question":"q","history":[{"role":"system","content":"x"}]}"#.to_vec(),
                json,
                400,
                "invalid_request",
            ),
        ];
        for (body, ct, status, code) in cases {
            let r = s
                .client
                .post(&url)
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .unwrap();
            expect_edge_error(r, status, code).await;
        }
        expect_edge_error(
            s.client.get(&url).send().await.unwrap(),
            405,
            "method_not_allowed",
        )
        .await;
    }
    assert!(
        s.envoy
            .counter_reaching("libriassist_edge_rejected", 20)
            .await
            >= 20
    );
    // And the edge still serves good requests.
    assert_eq!(
        s.chat("/api/v1/chat", "Bonjour ?", "198.51.100.9")
            .await
            .status(),
        200
    );
}

async fn expect_edge_error(r: reqwest::Response, status: u16, code: &str) {
    assert_eq!(r.status().as_u16(), status, "expected {code}");
    assert!(
        r.headers().get("x-envoy-upstream-service-time").is_none(),
        "{code} came from the origin, not the edge"
    );
    assert_eq!(
        header(&r, "content-type").as_deref(),
        Some("application/json")
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn origin_down_is_a_clean_json_503() {
    let Some(envoy) = envoy_or_skip("origin_down_is_a_clean_json_503") else {
        return;
    };
    let nothing = free_port();
    let setup = EdgeSetup {
        origin: nothing,
        cache: nothing,
        wasm: filter_wasm().clone(),
        filter_config: ROOMY.into(),
    };
    let envoy = Envoy::start(&envoy, &setup).await;
    let client = reqwest::Client::new();
    let chat = client
        .post(format!("{}/api/v1/chat", envoy.url()))
        .json(&serde_json::json!({ "question": "Y a-t-il quelqu'un ?" }))
        .send();
    let page = client.get(format!("{}/", envoy.url())).send();
    for r in [chat.await.unwrap(), page.await.unwrap()] {
        assert_eq!(r.status(), 503, "{}", envoy.log());
        assert_eq!(
            header(&r, "content-type").as_deref(),
            Some("application/json")
        );
        assert!(header(&r, "retry-after").is_some());
        let body: serde_json::Value = r.json().await.expect("a JSON body");
        assert_eq!(body["error"]["code"], "overloaded", "{body}");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test]
async fn questions_are_answered_when_the_cache_lookup_is_down() {
    let Some(envoy) = envoy_or_skip("questions_are_answered_when_the_cache_lookup_is_down") else {
        return;
    };
    let s = stack(&envoy, ROOMY, false).await;
    for path in ["/api/v1/chat", "/api/v1/chat/stream"] {
        let r = s
            .chat(path, "Quels sont vos horaires ?", "198.51.100.4")
            .await;
        assert_eq!(r.status(), 200, "{}", s.envoy.log());
        assert_ne!(header(&r, "x-cache").as_deref(), Some("edge"));
        let _ = r.bytes().await;
    }
    assert!(
        s.envoy
            .counter_reaching("libriassist_edge_cache_errors", 2)
            .await
            >= 2
    );
}

#[tokio::test]
async fn stream_slots_are_given_back_when_streams_end() {
    let Some(envoy) = envoy_or_skip("stream_slots_are_given_back_when_streams_end") else {
        return;
    };
    let config =
        r#"{"trusted_proxies":["127.0.0.1"],"max_concurrent_streams":1,"cache":{"enabled":false}}"#;
    let s = stack(&envoy, config, true).await;
    // One at a time: each finished stream frees the client's only slot, whichever worker
    // served it.
    for i in 0..4 {
        let r = s
            .chat(
                "/api/v1/chat/stream",
                &format!("Suite {i} ?"),
                "198.51.100.20",
            )
            .await;
        assert_eq!(r.status(), 200, "stream {i}: {}", s.envoy.log());
        let _ = read_sse(r).await;
    }
    // Two at once: the second is refused while the first runs.
    let first = s
        .chat("/api/v1/chat/stream", "Long ?", "198.51.100.20")
        .await;
    assert_eq!(first.status(), 200);
    let second = s
        .chat("/api/v1/chat/stream", "Encore ?", "198.51.100.20")
        .await;
    assert_eq!(second.status(), 429);
    assert_eq!(header(&second, "retry-after").as_deref(), Some("1"));
    let body: serde_json::Value = second.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_streams");
    let _ = read_sse(first).await;
    let third = s
        .chat("/api/v1/chat/stream", "Enfin ?", "198.51.100.20")
        .await;
    assert_eq!(third.status(), 200);
}
