//! Coalescing seen from outside: identical questions asked at once cost one generation,
//! counted at the simulator, and every client gets the whole answer.

mod cache_support;

use cache_support::*;
use futures::future::join_all;
use std::time::Duration;

#[tokio::test]
async fn twenty_identical_concurrent_questions_make_one_backend_generation() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // Slow enough that all twenty arrive while the first answer is still being written.
    let sim = sim(|a| {
        a.ttft_ms = 300;
        a.tokens_per_sec = 40.0;
        a.answer_tokens = 30;
    })
    .await;
    let origin = Origin::start(&config(&sim, Some(&redis))).await;
    let client = reqwest::Client::new();
    let question = "Quels sont les délais de livraison en Belgique ?";

    let asks = (0..20).map(|i| {
        let (client, origin) = (client.clone(), &origin);
        async move {
            // Stagger a little: late joiners must get what was generated before they came.
            tokio::time::sleep(Duration::from_millis(20 * i)).await;
            ask_stream(&client, origin, question).await
        }
    });
    let answers = join_all(asks).await;

    let texts: Vec<String> = answers
        .iter()
        .map(|(_, events)| streamed_text(events))
        .collect();
    assert!(!texts[0].is_empty());
    for (i, (layer, events)) in answers.iter().enumerate() {
        assert_eq!(
            events.last().map(|e| e.0.as_str()),
            Some("done"),
            "request {i}: {events:?}"
        );
        assert_eq!(texts[i], texts[0], "request {i} got the whole answer");
        assert_eq!(
            events[0].1["cache"].as_str(),
            Some(layer.as_str()),
            "meta and header agree"
        );
    }
    let layers: Vec<&str> = answers.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        layers.iter().filter(|l| **l == "miss").count(),
        1,
        "{layers:?}"
    );
    assert_eq!(
        layers.iter().filter(|l| **l == "coalesced").count(),
        19,
        "{layers:?}"
    );
    let stats = sim.stats();
    assert_eq!(stats.generations_started, 1, "{stats:?}");
    assert_eq!(stats.requests, 1, "{stats:?}");

    // Once stored, the next one is an exact hit, still without a generation.
    assert_stored(&client, &origin, question).await;
    assert_eq!(ask(&client, &origin, question).await.1, "exact");
    assert_eq!(sim.stats().generations_started, 1);
    // The recorder is per process and other tests here coalesce too: at least these 19.
    let m = metrics(&client, &origin).await;
    let coalesced = m
        .lines()
        .find_map(|l| l.strip_prefix("libriassist_cache_hits_total{layer=\"coalesced\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(coalesced >= 19.0, "{m}");
}

#[tokio::test]
async fn a_generation_that_fails_midway_fails_every_joiner_cleanly_and_is_not_cached() {
    let sim = sim(|a| {
        a.ttft_ms = 300;
        a.tokens_per_sec = 10.0;
        a.answer_tokens = 20;
        a.drop_after = Some(3);
    })
    .await;
    let origin = Origin::start(&config(&sim, None)).await;
    let client = reqwest::Client::new();
    let question = "Acceptez-vous les chèques cadeaux ?";
    let asks = (0..5).map(|_| ask_stream(&client, &origin, question));
    for (layer, events) in join_all(asks).await {
        assert!(layer == "miss" || layer == "coalesced", "{layer}");
        let last = events.last().expect("events");
        assert_eq!(
            (last.0.as_str(), last.1["code"].as_str()),
            ("error", Some("backend_failed")),
            "{events:?}"
        );
    }
    assert_eq!(sim.stats().requests, 1, "{:?}", sim.stats());
    assert_eq!(
        internal_lookup(&client, &origin, &key_of(question)).await,
        404,
        "a failed answer is never cached"
    );
}

#[tokio::test]
async fn a_generation_that_fails_before_its_first_token_fails_every_joiner_with_the_same_error() {
    let sim = sim(|a| a.hang = true).await;
    let mut config = config(&sim, None);
    config.backends.first_token_timeout_ms = 800;
    config.backends.max_attempts = 1;
    let origin = Origin::start(&config).await;
    let client = reqwest::Client::new();
    let question = "Acceptez-vous les tickets restaurant ?";
    let asks = (0..5).map(|_| ask(&client, &origin, question));
    let answers = join_all(asks).await;
    for (status, _, body) in &answers {
        assert_eq!(
            (*status, &body["error"]["code"]),
            (answers[0].0, &answers[0].2["error"]["code"]),
            "{body}"
        );
        assert!(*status >= 500, "{status} {body}");
    }
    assert_eq!(sim.stats().requests, 1, "{:?}", sim.stats());
}
