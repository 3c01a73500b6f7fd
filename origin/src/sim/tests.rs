//! The simulator over real sockets, as clients meet it: pacing on the wire, disconnects that
//! must free slots, and a shutdown that closes everything like a crash. Real time here, so
//! timing is asserted as lower bounds only (a busy machine can only make things later).

use super::{spawn, FaultUpdate, SimArgs, SimHandle, DEFAULT_MODEL};
use futures::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn chat(question: &str) -> Value {
    json!({"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": question}]})
}

async fn start(args: SimArgs) -> SimHandle {
    match spawn(args).await {
        Ok(handle) => handle,
        Err(e) => panic!("simulator did not start: {e}"),
    }
}

/// Polls a condition on the counters for up to five seconds.
async fn eventually(handle: &SimHandle, what: &str, check: impl Fn(&super::StatsSnapshot) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check(&handle.stats()) {
        assert!(Instant::now() < deadline, "{what}: {:?}", handle.stats());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// NDJSON lines of a streamed response with their arrival times, and whether it ended cleanly.
async fn read_lines(response: reqwest::Response) -> (Vec<(Instant, Value)>, bool) {
    let mut out = Vec::new();
    let mut buffer = Vec::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            return (out, false);
        };
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            match serde_json::from_slice(&line) {
                Ok(value) => out.push((Instant::now(), value)),
                Err(e) => panic!("not JSON: {e}: {}", String::from_utf8_lossy(&line)),
            }
        }
    }
    (out, buffer.is_empty())
}

#[tokio::test]
async fn streams_a_paced_answer_over_http() {
    let sim = start(SimArgs {
        ttft_ms: 150,
        tokens_per_sec: 20.0,
        answer_tokens: 8,
        ..SimArgs::on_free_port()
    })
    .await;
    let client = reqwest::Client::new();
    let sent = Instant::now();
    let response = client
        .post(format!("{}/api/chat", sim.url()))
        .json(&chat("Proposez-vous la livraison à domicile ?"))
        .send()
        .await;
    let Ok(response) = response else {
        panic!("{response:?}")
    };
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/x-ndjson")
    );
    let (lines, clean) = read_lines(response).await;
    assert!(clean);
    assert_eq!(lines.len(), 9);
    assert!(lines[0].0 - sent >= Duration::from_millis(150));
    // Tokens are due 50 ms apart from the first; none can arrive early.
    for (i, (at, line)) in lines.iter().enumerate().skip(1) {
        assert!(
            *at - lines[0].0 >= Duration::from_millis(50 * i as u64 - 5),
            "line {i}"
        );
        assert_eq!(line["done"], i == 8);
    }
    let text: String = lines[..8]
        .iter()
        .filter_map(|(_, l)| l["message"]["content"].as_str())
        .collect();
    assert!(
        text.contains("livraison") || text.contains("domicile"),
        "{text}"
    );
    let last = &lines[8].1;
    assert_eq!(last["done_reason"], "stop");
    assert_eq!(last["eval_count"], 8);
    assert!(last["eval_duration"]
        .as_u64()
        .is_some_and(|ns| ns >= 400_000_000));
    assert!(last["prompt_eval_duration"]
        .as_u64()
        .is_some_and(|ns| ns >= 150_000_000));
    let total = last["total_duration"].as_u64().unwrap_or_default();
    let parts = ["load_duration", "prompt_eval_duration", "eval_duration"]
        .iter()
        .filter_map(|k| last[k].as_u64())
        .sum::<u64>();
    assert!(total >= parts && parts > 0, "{last}");
    let s = sim.stats();
    assert_eq!(
        (s.requests, s.generations_completed, s.in_flight),
        (1, 1, 0)
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_client_that_leaves_frees_its_slot_at_once() {
    let sim = start(SimArgs {
        slots: 1,
        ttft_ms: 0,
        tokens_per_sec: 2.0,
        answer_tokens: 100,
        ..SimArgs::on_free_port()
    })
    .await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/chat", sim.url());
    let response = client.post(&url).json(&chat("x")).send().await;
    let Ok(response) = response else {
        panic!("{response:?}")
    };
    let mut body = response.bytes_stream();
    assert!(body.next().await.is_some());
    assert_eq!(sim.stats().in_flight, 1);
    drop(body);
    // Far sooner than the 50 s the answer would take.
    eventually(&sim, "slot freed", |s| s.in_flight == 0 && s.cancelled == 1).await;

    // The freed slot serves the next request right away.
    let next = client.post(&url).json(&chat("y")).send().await;
    assert!(next.is_ok_and(|r| r.status() == 200));
    sim.shutdown().await;
}

#[tokio::test]
async fn hung_and_queued_requests_leave_when_their_client_does() {
    let sim = start(SimArgs {
        slots: 1,
        hang: true,
        ..SimArgs::on_free_port()
    })
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap_or_default();
    let url = format!("{}/api/chat", sim.url());
    let hung = tokio::spawn({
        let (client, url) = (client.clone(), url.clone());
        async move { client.post(url).json(&chat("x")).send().await.is_err() }
    });
    eventually(&sim, "hung request holds the slot", |s| s.in_flight == 1).await;
    let queued = tokio::spawn({
        let (client, url) = (client.clone(), url.clone());
        async move { client.post(url).json(&chat("y")).send().await.is_err() }
    });
    eventually(&sim, "second request queued", |s| s.queued == 1).await;

    // Like Ollama, the root answers while generation is stuck.
    let root = reqwest::get(sim.url()).await;
    let root = match root {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(root, "Ollama is running");

    assert!(matches!(hung.await, Ok(true)));
    assert!(matches!(queued.await, Ok(true)));
    eventually(&sim, "hung and queued requests gone", |s| {
        s.in_flight == 0 && s.queued == 0
    })
    .await;

    let faults = sim.set_faults(FaultUpdate {
        hang: Some(false),
        ..FaultUpdate::default()
    });
    assert!(faults.is_ok_and(|f| !f.hang));
    let served = client.post(&url).json(&chat("z")).send().await;
    assert!(served.is_ok_and(|r| r.status() == 200));
    sim.shutdown().await;
}

#[tokio::test]
async fn drop_after_breaks_the_connection_mid_stream() {
    let sim = start(SimArgs {
        ttft_ms: 0,
        tokens_per_sec: 0.0,
        drop_after: Some(3),
        ..SimArgs::on_free_port()
    })
    .await;
    let response = reqwest::Client::new()
        .post(format!("{}/api/generate", sim.url()))
        .json(&json!({"model": DEFAULT_MODEL, "prompt": "x"}))
        .send()
        .await;
    let Ok(response) = response else {
        panic!("{response:?}")
    };
    let (lines, clean) = read_lines(response).await;
    assert!(!clean);
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|(_, l)| l["done"] == false));
    eventually(&sim, "drop counted", |s| s.dropped == 1 && s.in_flight == 0).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn control_routes_work_over_http() {
    let sim = start(SimArgs::on_free_port()).await;
    let client = reqwest::Client::new();
    let set = client
        .post(format!("{}/sim/faults", sim.url()))
        .json(&json!({"fail_rate": 1}))
        .send()
        .await;
    assert!(set.is_ok_and(|r| r.status() == 200));
    let failed = client
        .post(format!("{}/api/chat", sim.url()))
        .json(&chat("x"))
        .send()
        .await;
    let Ok(failed) = failed else {
        panic!("{failed:?}")
    };
    assert_eq!(failed.status(), 500);
    let stats = client.get(format!("{}/sim/stats", sim.url())).send().await;
    let stats: Value = match stats {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(stats["requests"], 1);
    assert_eq!(stats["failed"], 1);
    assert_eq!(stats["generations_started"], 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_connections_and_the_port_can_be_reused() {
    let sim = start(SimArgs {
        hang: true,
        ..SimArgs::on_free_port()
    })
    .await;
    let addr = sim.addr();
    let url = format!("{}/api/chat", sim.url());
    let hung = tokio::spawn(async move {
        let client = reqwest::Client::new();
        client.post(url).json(&chat("x")).send().await.is_err()
    });
    eventually(&sim, "request in flight", |s| s.in_flight == 1).await;
    sim.shutdown().await;
    // The client sees the connection close instead of waiting forever.
    let outcome = tokio::time::timeout(Duration::from_secs(5), hung).await;
    assert!(matches!(outcome, Ok(Ok(true))), "{outcome:?}");

    let again = start(SimArgs {
        listen: addr,
        ..SimArgs::default()
    })
    .await;
    let tags = reqwest::get(format!("{}/api/tags", again.url())).await;
    assert!(tags.is_ok_and(|r| r.status() == 200));
    again.shutdown().await;
}

#[tokio::test]
async fn invalid_settings_are_refused_before_binding() {
    let refused = spawn(SimArgs {
        slots: 0,
        ..SimArgs::on_free_port()
    })
    .await;
    assert!(refused.is_err_and(|e| e.kind() == std::io::ErrorKind::InvalidInput));
}
