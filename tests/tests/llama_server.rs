//! End to end against a REAL llama.cpp `llama-server` (OpenAI-compatible path) running
//! SmolLM2-135M, both installed by `scripts/setup.sh test`. Asserts protocol behaviour — routing,
//! streaming, token budget, cancellation — never the quality of the (tiny) model's answers.

use libriassist_tests::process::*;
use libriassist_tests::sse::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn installed() -> Option<(PathBuf, PathBuf)> {
    let cache = std::env::var_os("LIBRIASSIST_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/libriassist"))
        })?;
    let server = cache.join("llama-server");
    let model = cache.join("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    (server.exists() && model.exists()).then_some((server, model))
}

async fn llama_server(server: &PathBuf, model: &PathBuf) -> Proc {
    let addr = free_port();
    let child = Command::new(server)
        .args(["-m"])
        .arg(model)
        .args(["--host", "127.0.0.1", "--port", &addr.port().to_string()])
        .args([
            "-c",
            "2048",
            "-np",
            "2",
            "-t",
            "2",
            "-a",
            "smollm2",
            "--metrics",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start llama-server");
    let proc = Proc::from_child(child, addr);
    wait_http(&format!("{}/health", proc.url()), 200).await;
    proc
}

#[tokio::test]
async fn answers_stream_through_a_real_llama_server() {
    let Some((server, model)) = installed() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "llama-server is not installed: run scripts/setup.sh test"
        );
        eprintln!(
            "skipped: llama-server or SmolLM2 not installed (scripts/setup.sh test installs them)"
        );
        return;
    };
    let llama = llama_server(&server, &model).await;
    let origin = origin(&[
        ("OPENAI_URLS", llama.url()),
        ("OLLAMA_MODEL", "smollm2".into()),
        ("LIBRIASSIST_BACKEND_SLOTS", "2".into()),
        ("LIBRIASSIST_NUM_PREDICT", "12".into()),
        ("LIBRIASSIST_FIRST_TOKEN_TIMEOUT_MS", "60000".into()),
    ])
    .await;
    let client = reqwest::Client::new();

    let backends = json(&client, &format!("{}/api/v1/backends", origin.url())).await;
    assert_eq!(backends["backends"][0]["kind"], "openai");
    assert_eq!(backends["backends"][0]["healthy"], true, "{backends}");

    let events = read_sse(
        ask_stream(
            &client,
            &origin.url(),
            "What is a book? Answer in one long sentence.",
        )
        .await,
    )
    .await;
    assert_eq!(events[0].event, "meta");
    assert_eq!(events[0].data["model"], "smollm2");
    let tokens = events.iter().filter(|e| e.event == "token").count();
    assert!(
        (1..=12).contains(&tokens),
        "{tokens} tokens for a budget of 12"
    );
    let done = events.last().unwrap();
    assert_eq!(done.event, "done", "{events:?}");
    assert!(
        done.data["completion_tokens"]
            .as_u64()
            .is_some_and(|n| n <= 12),
        "{}",
        done.data
    );
    assert!(done.data["timings"]["ttft_ms"].as_f64().is_some());

    let r = client
        .post(format!("{}/api/v1/chat", origin.url()))
        .json(&serde_json::json!({"question": "Name a famous novel.", "history": [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hello! How can I help?"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(!body["answer"].as_str().unwrap_or("").is_empty());
    assert_eq!(body["cache"], "miss");

    // A client that leaves mid-answer frees llama-server's slot (the origin closes the upstream
    // connection, which makes llama-server cancel the generation).
    let origin_url = origin.url();
    let long = client
        .post(format!("{origin_url}/api/v1/chat/stream"))
        .json(&serde_json::json!({"question": "Tell a very long story about a library."}))
        .send()
        .await
        .unwrap();
    drop(long);
    eventually(Duration::from_secs(20), || async {
        let slots = json(&client, &format!("{}/slots", llama.url())).await;
        slots
            .as_array()
            .is_some_and(|s| s.iter().all(|slot| slot["is_processing"] == false))
    })
    .await;
    let backends = json(&client, &format!("{}/api/v1/backends", origin.url())).await;
    assert_eq!(backends["backends"][0]["in_flight"], 0, "{backends}");
}
