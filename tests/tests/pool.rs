//! The backend pool seen from outside: routing, queueing, failover, retries, disconnects and
//! health, with real `libriassist sim` processes behind a real `libriassist serve`.

use futures::StreamExt;
use libriassist_tests::process::*;
use libriassist_tests::sse::*;
use std::ffi::OsStr;
use std::time::Duration;

fn urls(sims: &[Proc]) -> String {
    sims.iter().map(Proc::url).collect::<Vec<_>>().join(",")
}

async fn sims(n: usize, flags: &[impl AsRef<OsStr>]) -> Vec<Proc> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(sim(free_port(), flags).await);
    }
    out
}

async fn stats(client: &reqwest::Client, sim: &Proc) -> serde_json::Value {
    json(client, &format!("{}/sim/stats", sim.url())).await
}

/// A refusal for lack of room: 503, when to retry, and the JSON error `overloaded`.
async fn expect_overloaded(response: reqwest::Response) {
    assert_eq!(response.status(), 503);
    assert!(response.headers().get("retry-after").is_some());
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "overloaded", "{body}");
}

#[tokio::test]
async fn six_streams_spread_two_per_simulator_and_all_succeed() {
    let sims = sims(3, &slots_and_pace(2, 300, 20, 20)).await;
    let origin = origin(&[
        ("OLLAMA_URLS", urls(&sims)),
        ("LIBRIASSIST_BACKEND_SLOTS", "2".into()),
    ])
    .await;
    let client = reqwest::Client::new();

    let asks: Vec<_> = (0..6)
        .map(|i| spawn_stream(&client, origin.url(), format!("Question numéro {i} ?")))
        .collect();
    for ask in asks {
        let events = ask.await.unwrap();
        assert_eq!(events.first().map(|e| e.event.as_str()), Some("meta"));
        assert!(events.iter().filter(|e| e.event == "token").count() > 1);
        assert_eq!(last_event(&events), "done");
    }
    for sim in &sims {
        let s = stats(&client, sim).await;
        assert_eq!(
            s["generations_started"], 2,
            "each simulator takes exactly two: {s}"
        );
        assert_eq!(s["max_in_flight_seen"], 2, "{s}");
    }
}

#[tokio::test]
async fn full_queue_answers_503_with_retry_after_and_a_json_error() {
    let sims = sims(1, &slots_and_pace(1, 100, 10, 20)).await;
    let origin = origin(&[
        ("OLLAMA_URLS", urls(&sims)),
        ("LIBRIASSIST_BACKEND_SLOTS", "1".into()),
        ("LIBRIASSIST_QUEUE_MAX", "1".into()),
    ])
    .await;
    let client = reqwest::Client::new();
    // One generating, one waiting: the third finds the line full.
    let running = ask_stream(&client, &origin.url(), "Première question ?").await;
    let waiting = {
        let client = client.clone();
        let url = origin.url();
        tokio::spawn(async move {
            ask_stream(&client, &url, "Deuxième question ?")
                .await
                .status()
        })
    };
    wait_for_queue_depth(&client, &origin, 1).await;
    let refused = ask_stream(&client, &origin.url(), "Troisième question ?").await;
    expect_overloaded(refused).await;
    assert_eq!(last_event(&read_sse(running).await), "done");
    assert_eq!(
        waiting.await.unwrap(),
        200,
        "the queued request is served when the slot frees"
    );
}

#[tokio::test]
async fn queue_timeout_answers_503() {
    let sims = sims(1, &slots_and_pace(1, 100, 5, 20)).await;
    let origin = origin(&[
        ("OLLAMA_URLS", urls(&sims)),
        ("LIBRIASSIST_BACKEND_SLOTS", "1".into()),
        ("LIBRIASSIST_QUEUE_TIMEOUT_MS", "300".into()),
    ])
    .await;
    let client = reqwest::Client::new();
    let _running = ask_stream(&client, &origin.url(), "Longue réponse ?").await;
    expect_overloaded(ask_stream(&client, &origin.url(), "Et moi ?").await).await;
}

#[tokio::test]
async fn a_failing_backend_is_retried_elsewhere_and_ejected() {
    let bad = sim(free_port(), &["--fail-rate", "1.0"]).await;
    let good = sim(free_port(), &pace(20, 200, 5)).await;
    let origin = origin(&[("OLLAMA_URLS", format!("{},{}", bad.url(), good.url()))]).await;
    let client = reqwest::Client::new();
    for i in 0..8 {
        let events = stream_events(&client, &origin.url(), &format!("Question {i} ?")).await;
        assert_eq!(last_event(&events), "done", "request {i}: {events:?}");
    }
    let backends = json(&client, &format!("{}/api/v1/backends", origin.url())).await;
    let bad_state = &backends["backends"][0];
    assert_eq!(bad_state["healthy"], false, "{backends}");
    assert!(bad_state["failures"].as_u64().unwrap() >= 1);
    assert!(
        stats(&client, &bad).await["requests"].as_u64().unwrap() < 8,
        "the circuit opened"
    );
}

#[tokio::test]
async fn a_stream_that_fails_midway_ends_with_an_error_event() {
    let sims = sims(1, &["--drop-after", "3", "--tokens-per-sec", "50"]).await;
    let origin = origin(&[("OLLAMA_URLS", urls(&sims))]).await;
    let client = reqwest::Client::new();
    let events = stream_events(&client, &origin.url(), "Question ?").await;
    assert_eq!(events[0].event, "meta");
    assert!(events.iter().any(|e| e.event == "token"));
    assert_eq!(last_event(&events), "error", "{events:?}");
    assert_eq!(events.last().unwrap().data["code"], "backend_failed");
    // The JSON endpoint cannot send half an answer: it answers 502.
    assert_eq!(ask(&client, &origin.url(), "Q ?").await.status(), 502);
}

#[tokio::test]
async fn a_hanging_backend_times_out_before_the_first_token_and_the_request_is_retried() {
    let hung = sim(free_port(), &["--hang"]).await;
    let good = sim(free_port(), &pace(20, 200, 5)).await;
    let origin = origin(&[
        ("OLLAMA_URLS", format!("{},{}", hung.url(), good.url())),
        ("LIBRIASSIST_FIRST_TOKEN_TIMEOUT_MS", "500".into()),
    ])
    .await;
    let client = reqwest::Client::new();
    let asks: Vec<_> = (0..4)
        .map(|i| spawn_stream(&client, origin.url(), format!("Q{i} ?")))
        .collect();
    for ask in asks {
        let events = ask.await.unwrap();
        assert_eq!(last_event(&events), "done", "{events:?}");
    }
}

#[tokio::test]
async fn a_client_disconnect_cancels_the_generation_and_frees_the_slot() {
    let sims = sims(1, &slots_and_pace(1, 50, 5, 100)).await;
    let origin = origin(&[
        ("OLLAMA_URLS", urls(&sims)),
        ("LIBRIASSIST_BACKEND_SLOTS", "1".into()),
    ])
    .await;
    let client = reqwest::Client::new();
    let response = ask_stream(&client, &origin.url(), "Une longue réponse ?").await;
    let mut body = response.bytes_stream();
    let _ = body.next().await; // meta and the first token are on their way: the slot is taken
    drop(body);
    eventually(Duration::from_secs(5), || async {
        stats(&client, &sims[0]).await["in_flight"] == 0
    })
    .await;
    // The only slot is free again: a new question gets its first token at once instead of
    // queueing behind a 20 s answer nobody reads.
    let started = std::time::Instant::now();
    let next = ask_stream(&client, &origin.url(), "Courte ?").await;
    assert_eq!(next.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "waited {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_killed_simulator_loses_no_waiting_request_and_is_readmitted_after_restart() {
    let flags = slots_and_pace(2, 100, 40, 20);
    let mut sims = sims(3, &flags).await;
    let origin = origin(&[
        ("OLLAMA_URLS", urls(&sims)),
        ("LIBRIASSIST_BACKEND_SLOTS", "2".into()),
        ("LIBRIASSIST_HEALTH_INTERVAL_MS", "1000".into()),
    ])
    .await;
    let client = reqwest::Client::new();
    // 24 questions on 6 slots: most wait in the queue when the simulator dies.
    let asks: Vec<_> = (0..24)
        .map(|i| spawn_stream(&client, origin.url(), format!("Question {i} ?")))
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let victim_addr = sims[1].addr;
    sims[1].kill();

    let mut done = 0;
    for ask in asks {
        let events = ask.await.unwrap();
        match last_event(&events) {
            "done" => done += 1,
            // Only a stream that was already running on the killed simulator may fail, and it
            // must say so with an error event after its tokens.
            "error" => assert!(
                events.iter().any(|e| e.event == "token"),
                "a request failed before streaming: {events:?}"
            ),
            other => panic!("unexpected end {other:?}: {events:?}"),
        }
    }
    assert!(
        done >= 22,
        "at most the two running streams fail, {done} of 24 done"
    );

    let backends_url = format!("{}/api/v1/backends", origin.url());
    let unhealthy = eventually(Duration::from_secs(5), || async {
        json(&client, &backends_url).await["backends"][1]["healthy"] == false
    })
    .await;
    assert!(unhealthy <= Duration::from_secs(5));

    sims[1] = sim(victim_addr, &flags).await;
    let back = eventually(Duration::from_secs(30), || async {
        json(&client, &backends_url).await["backends"][1]["healthy"] == true
    })
    .await;
    assert!(back <= Duration::from_secs(30));
}

/// Two origins in front of one 2-slot backend: the second origin keeps its questions in its
/// own queue while the first one's generations hold the slots, instead of piling them up
/// inside the backend where no origin can see them.
#[tokio::test]
async fn two_origins_sharing_redis_never_send_a_backend_more_than_its_slots() {
    let redis = libriassist_tests::edge::redis().await;
    let sims = sims(1, &slots_and_pace(2, 100, 20, 20)).await;
    let env = [
        ("OLLAMA_URLS", urls(&sims)),
        ("LIBRIASSIST_BACKEND_SLOTS", "2".into()),
        ("REDIS_URL", format!("redis://{}", redis.addr)),
    ];
    let (first, second) = (origin(&env).await, origin(&env).await);
    let client = reqwest::Client::new();
    // Each origin's report reaches the other within a heartbeat (1 s) at most.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let ask = |url: String, i: usize| {
        spawn_stream(&client, url, format!("Question partagée numéro {i} ?"))
    };
    let mut asks: Vec<_> = (0..2).map(|i| ask(first.url(), i)).collect();
    eventually(Duration::from_secs(5), || async {
        stats(&client, &sims[0]).await["in_flight"] == 2
    })
    .await;
    // The first origin's report of its two generations reaches the second one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    asks.extend((2..6).map(|i| ask(second.url(), i)));

    let mut most_waiting_inside = 0;
    while !asks.iter().all(|a| a.is_finished()) {
        let s = stats(&client, &sims[0]).await;
        most_waiting_inside = most_waiting_inside.max(s["queued"].as_u64().unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for ask in asks {
        assert_eq!(last_event(&ask.await.unwrap()), "done");
    }
    let s = stats(&client, &sims[0]).await;
    assert_eq!(s["generations_completed"], 6, "{s}");
    assert_eq!(
        most_waiting_inside, 0,
        "no request waited inside the backend: {s}"
    );
}
