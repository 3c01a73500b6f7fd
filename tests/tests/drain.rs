//! SIGTERM during running answers, with a real `libriassist serve` and simulators: the streams
//! finish (or, past the drain deadline, end with an `error` event), `/readyz` and new questions
//! get 503 `draining` meanwhile — on fresh and on kept-alive connections — and the process then
//! exits by itself.

use libriassist_tests::process::*;
use libriassist_tests::sse::*;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

const STREAMS: usize = 10;

async fn in_flight(client: &reqwest::Client, origin: &Proc) -> u64 {
    let backends = json(client, &format!("{}/api/v1/backends", origin.url())).await;
    backends["backends"].as_array().map_or(0, |b| {
        b.iter().filter_map(|b| b["in_flight"].as_u64()).sum()
    })
}

/// Starts `STREAMS` distinct questions and returns once every one holds a backend slot.
async fn start_streams(client: &reqwest::Client, origin: &Proc) -> Vec<JoinHandle<Vec<SseEvent>>> {
    let streams = (0..STREAMS)
        .map(|i| spawn_stream(client, origin.url(), format!("Question numéro {i} ?")))
        .collect();
    eventually(Duration::from_secs(10), || async {
        in_flight(client, origin).await == STREAMS as u64
    })
    .await;
    streams
}

async fn expect_draining(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), 503, "{what}");
    assert!(
        response.headers().get("retry-after").is_some(),
        "{what}: no Retry-After"
    );
    // Nothing of the answer was sent: the proxy in front may give the question to another origin.
    assert_eq!(
        response
            .headers()
            .get("x-libriassist-retry-elsewhere")
            .and_then(|v| v.to_str().ok()),
        Some("draining"),
        "{what}: no retry marker"
    );
    let body: serde_json::Value = response.json().await.expect("JSON body");
    assert_eq!(body["error"]["code"], "draining", "{what}: {body}");
}

/// While the drain runs: readiness fails and every new question is refused with 503 `draining`,
/// on a kept-alive connection (`pooled`, which has just been used) as on a fresh one.
async fn check_refusals(pooled: &reqwest::Client, origin: &Proc) -> Instant {
    let fresh = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    let readyz = format!("{}/readyz", origin.url());
    // The signal is handled asynchronously: readiness fails a moment after it is sent.
    eventually(Duration::from_secs(2), || async {
        pooled
            .get(&readyz)
            .send()
            .await
            .expect("/readyz answers during the drain")
            .status()
            == 503
    })
    .await;
    let ready: serde_json::Value = pooled
        .get(&readyz)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["draining"], true, "{ready}");
    let fresh_ready = fresh()
        .get(&readyz)
        .send()
        .await
        .expect("a new connection is accepted");
    assert_eq!(fresh_ready.status(), 503);

    for (client, how) in [
        (pooled.clone(), "kept-alive connection"),
        (fresh(), "new connection"),
    ] {
        let chat = ask(&client, &origin.url(), "Une nouvelle question ?").await;
        expect_draining(chat, &format!("/api/v1/chat on a {how}")).await;
        let stream = ask_stream(&client, &origin.url(), "Une autre question ?").await;
        expect_draining(stream, &format!("/api/v1/chat/stream on a {how}")).await;
    }
    Instant::now()
}

/// A simulator of `STREAMS` slots answering `answer_tokens` at `tokens_per_sec`, behind an
/// origin without a cache (every question reaches it) that drains for up to `drain_timeout_ms`.
async fn sim_and_origin(
    tokens_per_sec: u32,
    answer_tokens: u32,
    drain_timeout_ms: u32,
) -> (Proc, Proc) {
    let flags = slots_and_pace(STREAMS as u32, 100, tokens_per_sec, answer_tokens);
    let sim = sim(free_port(), &flags).await;
    let origin = origin(&[
        ("OLLAMA_URLS", sim.url()),
        ("LIBRIASSIST_BACKEND_SLOTS", STREAMS.to_string()),
        ("LIBRIASSIST_CACHE_ENABLED", "false".into()),
        ("LIBRIASSIST_DRAIN_TIMEOUT_MS", drain_timeout_ms.to_string()),
    ])
    .await;
    (sim, origin)
}

/// Waits up to 5 s for the origin to exit by itself (`when` says when it should), successfully.
async fn expect_clean_exit(origin: &mut Proc, when: &str) {
    let status = origin
        .exited(Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("the origin exits {when}"));
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn sigterm_lets_running_streams_finish_and_refuses_new_questions_meanwhile() {
    // Each answer: 30 tokens at 10/s, about 3 s; the drain deadline is far away.
    let (_sim, mut origin) = sim_and_origin(10, 30, 20_000).await;
    let client = reqwest::Client::new();
    let streams = start_streams(&client, &origin).await;

    origin.signal("TERM");
    let refused_by = check_refusals(&client, &origin).await;
    assert_eq!(
        in_flight(&client, &origin).await,
        STREAMS as u64,
        "the running answers continue"
    );

    for stream in streams {
        let events = stream.await.unwrap();
        assert_eq!(
            events.first().map(|e| e.event.as_str()),
            Some("meta"),
            "{events:?}"
        );
        assert_eq!(
            events.iter().filter(|e| e.event == "token").count(),
            30,
            "every token arrives: {events:?}"
        );
        assert_eq!(last_event(&events), "done", "{events:?}");
        assert!(
            events.last().unwrap().at > refused_by,
            "the stream was still running when new questions were refused"
        );
    }
    expect_clean_exit(&mut origin, "once its streams are done").await;
}

#[tokio::test]
async fn streams_still_running_at_the_drain_deadline_end_with_an_error_event() {
    // Each answer would take 40 s; the drain deadline is 1.5 s.
    let (_sim, mut origin) = sim_and_origin(5, 200, 1500).await;
    let client = reqwest::Client::new();
    let streams = start_streams(&client, &origin).await;
    // Two more wait for a slot when the drain starts: accepted, so not refused at once, but
    // still without an answer at the deadline.
    let queued: Vec<_> = ["/api/v1/chat", "/api/v1/chat/stream"]
        .into_iter()
        .map(|path| {
            let request = client
                .post(format!("{}{path}", origin.url()))
                .json(&serde_json::json!({"question": format!("En attente sur {path} ?")}));
            tokio::spawn(async move { request.send().await })
        })
        .collect();
    wait_for_queue_depth(&client, &origin, 2).await;

    let term = Instant::now();
    origin.signal("TERM");
    check_refusals(&client, &origin).await;

    for request in queued {
        let response = request
            .await
            .unwrap()
            .expect("a queued question gets an answer, not a cut connection");
        expect_draining(response, "a question still queued at the deadline").await;
        assert!(
            term.elapsed() >= Duration::from_millis(1400),
            "refused at the deadline, not before"
        );
    }

    for stream in streams {
        let events = stream.await.unwrap();
        assert!(events.iter().any(|e| e.event == "token"), "{events:?}");
        assert_eq!(
            last_event(&events),
            "error",
            "cut at the deadline, and saying so: {events:?}"
        );
        assert_eq!(events.last().unwrap().data["code"], "draining");
        let ended = events.last().unwrap().at.duration_since(term);
        assert!(
            ended >= Duration::from_millis(1400) && ended < Duration::from_secs(5),
            "ended {ended:?} after SIGTERM"
        );
    }
    expect_clean_exit(&mut origin, "after the deadline").await;
    assert!(
        term.elapsed() < Duration::from_secs(8),
        "exited {:?} after SIGTERM",
        term.elapsed()
    );
}
