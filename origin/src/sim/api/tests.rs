//! Router-level tests without sockets, on a paused clock so durations are exact.

use super::super::args::SimArgs;
use super::super::error::{BUSY_MESSAGE, INJECTED_FAILURE};
use super::super::state::Sim;
use super::super::wire::tests::keys_in_order;
use super::app;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::response::Response;
use axum::Router;
use futures::StreamExt;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tower::ServiceExt;

const MODEL: &str = "mistral:7b-instruct-q4_0";

fn sim(args: SimArgs) -> (Router, Arc<Sim>) {
    let sim = Arc::new(Sim::new(&args));
    (app(sim.clone()), sim)
}

/// 100 ms to first token, then 10 tokens/s, 5-token answers.
fn paced() -> SimArgs {
    SimArgs {
        ttft_ms: 100,
        tokens_per_sec: 10.0,
        answer_tokens: 5,
        ..SimArgs::on_free_port()
    }
}

async fn call(app: &Router, method: Method, uri: &str, body: &str) -> Response {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body.to_string()));
    match request {
        Ok(request) => match app.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        Err(e) => panic!("bad test request: {e}"),
    }
}

async fn post(app: &Router, uri: &str, body: Value) -> Response {
    call(app, Method::POST, uri, &body.to_string()).await
}

fn chat_body(question: &str) -> Value {
    json!({"model": MODEL, "messages": [{"role": "user", "content": question}]})
}

/// Field order of each object as Ollama's Go structs write it.
fn ollama_order(v: &Value) -> Vec<&'static str> {
    let chat = v.get("message").is_some();
    let text = if chat { "message" } else { "response" };
    if v["done"] != true {
        return vec!["model", "created_at", text, "done"];
    }
    let mut order = if chat {
        vec!["model", "created_at", "message", "done_reason", "done"]
    } else {
        vec!["model", "created_at", "response", "done", "done_reason"]
    };
    if v.get("context").is_some() {
        order.push("context");
    }
    order.extend([
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_count",
        "eval_duration",
    ]);
    order
}

/// Each NDJSON line with the paused-clock instant it arrived, and whether the body ended
/// cleanly. Every line is checked against Ollama's field order on the way.
async fn lines(response: Response) -> (Vec<(Instant, Value)>, bool) {
    let mut out = Vec::new();
    let mut stream = response.into_body().into_data_stream();
    let mut buffer = Vec::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return (out, false);
        };
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let value: Value =
                serde_json::from_slice(&line).unwrap_or_else(|e| panic!("bad line {e}"));
            assert_eq!(keys_in_order(&line), ollama_order(&value), "{value}");
            out.push((Instant::now(), value));
        }
    }
    assert!(buffer.is_empty(), "unterminated line");
    (out, true)
}

/// A whole JSON body; an answer object (one with `done`) must also have Ollama's field order.
async fn json_of(response: Response) -> Value {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if value.get("done").is_some() && value.get("total_duration").is_some() {
        assert_eq!(keys_in_order(&bytes), ollama_order(&value), "{value}");
    }
    value
}

fn sorted_keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    keys
}

fn header<'a>(response: &'a Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test(start_paused = true)]
async fn chat_streams_paced_ndjson_with_exact_metrics() {
    let (app, sim) = sim(paced());
    let start = Instant::now();
    let response = post(
        &app,
        "/api/chat",
        chat_body("Avez-vous des romans policiers ?"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), "application/x-ndjson");
    // Headers leave with the first token, after prompt evaluation.
    assert_eq!(Instant::now() - start, Duration::from_millis(100));
    let (lines, clean) = lines(response).await;
    assert!(clean);
    assert_eq!(lines.len(), 6);
    for (i, (at, line)) in lines[..5].iter().enumerate() {
        assert_eq!(line["model"], MODEL);
        assert_eq!(line["done"], false);
        assert_eq!(line["message"]["role"], "assistant");
        assert!(line["message"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty()));
        assert_eq!(*at - start, Duration::from_millis(100 + 100 * i as u64));
    }
    let (at, last) = &lines[5];
    assert_eq!(*at - start, Duration::from_millis(600));
    assert_eq!(last["done"], true);
    assert_eq!(last["done_reason"], "stop");
    assert_eq!(last["message"], json!({"role": "assistant", "content": ""}));
    assert_eq!(last["eval_count"], 5);
    assert_eq!(last["total_duration"], 600_000_000);
    assert_eq!(last["load_duration"], 0);
    assert_eq!(last["prompt_eval_duration"], 100_000_000);
    assert_eq!(last["eval_duration"], 500_000_000);
    assert!(last["prompt_eval_count"].as_u64().is_some_and(|n| n > 4));
    let created = last["created_at"].as_str().unwrap_or_default();
    assert!(created.ends_with('Z') && created.len() >= 20, "{created}");
    let s = sim.stats.snapshot();
    assert_eq!(
        (s.requests, s.generations_started, s.generations_completed),
        (1, 1, 1)
    );
    assert_eq!((s.in_flight, s.max_in_flight_seen, s.cancelled), (0, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn num_predict_cuts_with_length_and_stream_false_returns_the_same_text() {
    let (app, _) = sim(paced());
    let mut body = chat_body("Quels sont vos horaires ?");
    body["options"] = json!({"num_predict": 3, "temperature": 0.1, "top_k": 20});
    let (streamed, _) = lines(post(&app, "/api/chat", body.clone()).await).await;
    assert_eq!(streamed.len(), 4);
    assert_eq!(streamed[3].1["done_reason"], "length");
    assert_eq!(streamed[3].1["eval_count"], 3);
    let text: String = streamed[..3]
        .iter()
        .filter_map(|(_, l)| l["message"]["content"].as_str())
        .collect();

    body["stream"] = json!(false);
    let start = Instant::now();
    let response = post(&app, "/api/chat", body).await;
    assert_eq!(Instant::now() - start, Duration::from_millis(400));
    assert_eq!(
        header(&response, "content-type"),
        "application/json; charset=utf-8"
    );
    let whole = json_of(response).await;
    assert_eq!(whole["message"]["content"], text);
    assert_eq!(whole["done"], true);
    assert_eq!(whole["done_reason"], "length");
    assert_eq!(whole["eval_duration"], 300_000_000);
}

#[tokio::test(start_paused = true)]
async fn answers_depend_on_seed_and_prompt_only() {
    let text = |seed, question: &'static str| async move {
        let (app, _) = sim(SimArgs { seed, ..paced() });
        let mut body = chat_body(question);
        body["stream"] = json!(false);
        json_of(post(&app, "/api/chat", body).await).await["message"]["content"].clone()
    };
    let a = text(1, "Livrez-vous à Lyon ?").await;
    assert_eq!(a, text(1, "Livrez-vous à Lyon ?").await);
    assert_ne!(a, text(2, "Livrez-vous à Lyon ?").await);
    assert_ne!(a, text(1, "Faites-vous des cartes cadeaux ?").await);
}

#[tokio::test(start_paused = true)]
async fn generate_uses_response_and_context() {
    let (app, _) = sim(paced());
    let body = json!({"model": MODEL, "prompt": "Bonjour, où est le rayon jeunesse ?"});
    let (lines, _) = lines(post(&app, "/api/generate", body).await).await;
    assert_eq!(lines.len(), 6);
    assert!(lines[0].1["response"].is_string());
    let last = &lines[5].1;
    assert_eq!(last["response"], "");
    assert_eq!(last["done_reason"], "stop");
    assert_eq!(last["context"].as_array().map(Vec::len), Some(5));
    assert_eq!(last["eval_count"], 5);

    let raw = json!({"model": MODEL, "prompt": "x", "raw": true, "stream": false});
    let whole = json_of(post(&app, "/api/generate", raw).await).await;
    assert!(whole["context"].is_null());
    assert!(whole["response"].as_str().is_some_and(|r| !r.is_empty()));
}

#[tokio::test(start_paused = true)]
async fn bad_requests_get_ollamas_errors() {
    let (app, sim) = sim(paced());
    let cases: [(&str, String, StatusCode, Option<&str>); 8] = [
        (
            "/api/chat",
            String::new(),
            StatusCode::BAD_REQUEST,
            Some("missing request body"),
        ),
        ("/api/chat", "{".into(), StatusCode::BAD_REQUEST, None),
        ("/api/chat", "[1]".into(), StatusCode::BAD_REQUEST, None),
        (
            "/api/generate",
            r#"{"model": 3}"#.into(),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            "/api/chat",
            r#"{"messages": []}"#.into(),
            StatusCode::BAD_REQUEST,
            Some("model is required"),
        ),
        (
            "/api/chat",
            chat_body("x").to_string().replace(MODEL, "llama3:8b"),
            StatusCode::NOT_FOUND,
            Some(r#"model "llama3:8b" not found, try pulling it first"#),
        ),
        (
            "/api/generate",
            json!({"model": "nope", "prompt": "x"}).to_string(),
            StatusCode::NOT_FOUND,
            Some(r#"model "nope" not found, try pulling it first"#),
        ),
        (
            "/api/chat",
            json!({"model": MODEL, "messages": [], "options": {"temperature": "chaud"}})
                .to_string(),
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(r#"option "temperature" must be of type float32"#),
        ),
    ];
    for (uri, body, status, message) in cases {
        let response = call(&app, Method::POST, uri, &body).await;
        assert_eq!(response.status(), status, "{body}");
        let error = json_of(response).await;
        assert_eq!(sorted_keys(&error), ["error"], "{body}");
        if let Some(message) = message {
            assert_eq!(error["error"], message);
        }
    }
    let big = "x".repeat(3 << 20);
    let response = call(&app, Method::POST, "/api/chat", &big).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(json_of(response).await["error"].is_string());
    let s = sim.stats.snapshot();
    assert_eq!((s.requests, s.generations_started), (9, 0));
}

#[tokio::test(start_paused = true)]
async fn empty_requests_load_and_unload_the_model() {
    let (app, _) = sim(paced());
    let ps = |app: Router| async move {
        json_of(call(&app, Method::GET, "/api/ps", "").await).await["models"].clone()
    };
    assert_eq!(ps(app.clone()).await, json!([]));
    let loaded = json_of(post(&app, "/api/chat", json!({"model": MODEL})).await).await;
    assert_eq!(loaded["done_reason"], "load");
    assert_eq!(loaded["done"], true);
    let models = ps(app.clone()).await;
    assert_eq!(models[0]["name"], MODEL);
    assert!(models[0]["expires_at"].is_string());
    let body = json!({"model": MODEL, "prompt": "", "keep_alive": 0});
    let unloaded = json_of(post(&app, "/api/generate", body).await).await;
    assert_eq!(unloaded["done_reason"], "unload");
    assert_eq!(unloaded["response"], "");
    assert_eq!(ps(app).await, json!([]));
}

#[tokio::test(start_paused = true)]
async fn listing_routes_answer() {
    let (app, _) = sim(SimArgs {
        models: vec![MODEL.into(), "qwen2.5:0.5b".into()],
        ..paced()
    });
    let root = call(&app, Method::GET, "/", "").await;
    assert_eq!(root.status(), StatusCode::OK);
    let text = axum::body::to_bytes(root.into_body(), 1024)
        .await
        .unwrap_or_default();
    assert_eq!(&text[..], b"Ollama is running");
    assert_eq!(
        call(&app, Method::HEAD, "/", "").await.status(),
        StatusCode::OK
    );
    let version = json_of(call(&app, Method::GET, "/api/version", "").await).await;
    assert!(version["version"].is_string());
    let tags = json_of(call(&app, Method::GET, "/api/tags", "").await).await;
    let names: Vec<_> = tags["models"]
        .as_array()
        .map(|m| m.iter().map(|m| m["name"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(names, [json!(MODEL), json!("qwen2.5:0.5b")]);
    // Ollama's field order, checked on the raw text since a `Value` may sort keys. The first
    // occurrence of each key is in the first entry, which has them all.
    let raw = call(&app, Method::GET, "/api/tags", "").await.into_body();
    let raw = axum::body::to_bytes(raw, 1 << 20).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&raw);
    let order = ["name", "model", "modified_at", "size", "digest", "details"];
    let positions: Vec<_> = order
        .iter()
        .map(|k| text.find(&format!("\"{k}\":")))
        .collect();
    assert!(positions.iter().all(Option::is_some), "{text}");
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert_eq!(sorted_keys(&tags["models"][0]).len(), order.len());
    let missing = call(&app, Method::GET, "/api/nothing", "").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let wrong = call(&app, Method::GET, "/api/chat", "").await;
    assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test(start_paused = true)]
async fn fail_rate_answers_500_before_any_slot() {
    let (app, sim) = sim(SimArgs {
        fail_rate: 1.0,
        ..paced()
    });
    let start = Instant::now();
    let response = post(&app, "/api/chat", chat_body("x")).await;
    assert_eq!(Instant::now(), start);
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(json_of(response).await, json!({"error": INJECTED_FAILURE}));
    let s = sim.stats.snapshot();
    assert_eq!((s.requests, s.failed, s.generations_started), (1, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn full_queue_answers_503_and_waiters_are_served_in_order() {
    let (app, sim) = sim(SimArgs {
        slots: 1,
        queue_max: 1,
        ..paced()
    });
    let first = post(&app, "/api/chat", chat_body("premier")).await;
    assert_eq!(sim.stats.snapshot().in_flight, 1);
    let waiting = tokio::spawn({
        let app = app.clone();
        async move {
            let response = post(&app, "/api/chat", chat_body("second")).await;
            (Instant::now(), lines(response).await.0.len())
        }
    });
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(sim.stats.snapshot().queued, 1);
    let refused = post(&app, "/api/chat", chat_body("troisième")).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json_of(refused).await, json!({"error": BUSY_MESSAGE}));
    let start = Instant::now();
    let (done_first, _) = lines(first).await;
    let first_done_at = done_first.last().map(|(t, _)| *t).unwrap_or(start);
    let (second_first_token, count) = waiting.await.unwrap_or((start, 0));
    assert_eq!(count, 6);
    // The second request took the slot when the first finished, then spent its TTFT.
    assert_eq!(
        second_first_token - first_done_at,
        Duration::from_millis(100)
    );
    let s = sim.stats.snapshot();
    assert_eq!((s.requests, s.rejected, s.generations_completed), (3, 1, 2));
    assert_eq!((s.max_in_flight_seen, s.in_flight, s.queued), (1, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn drop_after_cuts_the_stream_without_done() {
    let (app, sim) = sim(SimArgs {
        drop_after: Some(2),
        ..paced()
    });
    let (lines, clean) = lines(post(&app, "/api/chat", chat_body("x")).await).await;
    assert!(!clean);
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|(_, l)| l["done"] == false));
    let s = sim.stats.snapshot();
    assert_eq!((s.dropped, s.generations_completed, s.in_flight), (1, 0, 0));

    // Without streaming the body breaks instead of arriving.
    let mut body = chat_body("x");
    body["stream"] = json!(false);
    let response = post(&app, "/api/chat", body).await;
    let read = axum::body::to_bytes(response.into_body(), 1 << 20).await;
    assert!(read.is_err());
    assert_eq!(sim.stats.snapshot().dropped, 2);
}

#[tokio::test(start_paused = true)]
async fn drop_after_at_or_beyond_the_end_does_nothing() {
    let (app, sim) = sim(SimArgs {
        drop_after: Some(5),
        ..paced()
    });
    let (lines, clean) = lines(post(&app, "/api/chat", chat_body("x")).await).await;
    assert!(clean);
    assert_eq!(lines.len(), 6);
    assert_eq!(sim.stats.snapshot().dropped, 0);
}

#[tokio::test(start_paused = true)]
async fn hang_holds_a_slot_until_the_client_leaves() {
    let (app, sim) = sim(SimArgs {
        hang: true,
        ..paced()
    });
    let hung = tokio::time::timeout(
        Duration::from_secs(3600),
        post(&app, "/api/chat", chat_body("x")),
    )
    .await;
    assert!(hung.is_err());
    let s = sim.stats.snapshot();
    // Timing out dropped the request, which released the slot.
    assert_eq!((s.generations_started, s.cancelled, s.in_flight), (1, 1, 0));

    let pending = tokio::spawn({
        let app = app.clone();
        async move { post(&app, "/api/chat", chat_body("y")).await.status() }
    });
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(sim.stats.snapshot().in_flight, 1);
    let root = call(&app, Method::GET, "/", "").await;
    assert_eq!(root.status(), StatusCode::OK);
    pending.abort();
    let _ = pending.await;
    assert_eq!(sim.stats.snapshot().in_flight, 0);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_body_mid_stream_frees_the_slot() {
    let (app, sim) = sim(paced());
    let response = post(&app, "/api/chat", chat_body("x")).await;
    let mut body = response.into_body().into_data_stream();
    assert!(body.next().await.is_some());
    assert_eq!(sim.stats.snapshot().in_flight, 1);
    drop(body);
    let s = sim.stats.snapshot();
    assert_eq!(
        (s.in_flight, s.cancelled, s.generations_completed),
        (0, 1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn faults_switch_at_runtime() {
    let (app, sim) = sim(paced());
    let set = json_of(post(&app, "/sim/faults", json!({"fail_rate": 1.0})).await).await;
    assert_eq!(
        set,
        json!({"fail_rate": 1.0, "hang": false, "drop_after": null})
    );
    let failed = post(&app, "/api/chat", chat_body("x")).await;
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    post(
        &app,
        "/sim/faults",
        json!({"fail_rate": 0, "drop_after": 1}),
    )
    .await;
    let (lines, clean) = lines(post(&app, "/api/chat", chat_body("x")).await).await;
    assert_eq!((lines.len(), clean), (1, false));
    let current = json_of(call(&app, Method::GET, "/sim/faults", "").await).await;
    assert_eq!(current["drop_after"], 1);
    for bad in [
        r#"{"fail_rate": 3}"#,
        r#"{"hang": "yes"}"#,
        r#"{"other": 1}"#,
        "{",
    ] {
        let response = call(&app, Method::POST, "/sim/faults", bad).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(json_of(response).await["error"].is_string());
    }
    let stats = json_of(call(&app, Method::GET, "/sim/stats", "").await).await;
    assert_eq!(stats["requests"], 2);
    assert_eq!(stats["failed"], 1);
    assert_eq!(stats["dropped"], 1);
    let reset = json_of(post(&app, "/sim/stats/reset", json!({})).await).await;
    assert_eq!(reset["requests"], 0);
    assert_eq!(sim.stats.snapshot().failed, 0);
}

#[tokio::test(start_paused = true)]
async fn slots_run_generations_in_parallel() {
    let (app, sim) = sim(SimArgs {
        slots: 3,
        ..paced()
    });
    let start = Instant::now();
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let (lines, _) =
                    lines(post(&app, "/api/chat", chat_body(&format!("q{i}"))).await).await;
                lines.last().map(|(t, _)| *t)
            })
        })
        .collect();
    for task in tasks {
        let done = task.await.ok().flatten();
        assert_eq!(done.map(|t| t - start), Some(Duration::from_millis(600)));
    }
    assert_eq!(sim.stats.snapshot().max_in_flight_seen, 3);
}
