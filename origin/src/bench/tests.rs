//! Smoke test of the bench driver against in-process simulators and an in-process origin:
//! short runs that check the accounting (every request started comes back with an outcome, and
//! the bench's count of generated answers equals the generations the simulators counted),
//! never speed.

use super::analysis::{analyse, layer_of};
use super::client::{Outcome, Patience, Protocol, Target};
use super::corpus::{Bank, ParaphraseSource, Popular};
use super::field::Scale;
use super::mix::{Mix, MixSettings};
use super::users::{self, Plan};
use crate::config::Config;
use crate::sim::{SimArgs, SimHandle};
use libriassist_protocol::CacheLayer;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn bank() -> Bank {
    Bank {
        popular: (0..5)
            .map(|i| Popular {
                text: format!("Quels sont les frais de livraison numéro {i} ?"),
                paraphrases: vec![format!(
                    "Bonjour, quels sont les frais de livraison numéro {i} ?"
                )],
            })
            .collect(),
        tail: (0..500)
            .map(|i| format!("Où trouver le livre rare numéro {i} ?"))
            .collect(),
        popular_source: "test".into(),
        paraphrase_source: ParaphraseSource::Generated,
        tail_source: "test".into(),
    }
}

async fn sims(n: usize) -> Vec<SimHandle> {
    let mut out = Vec::new();
    for seed in 0..n {
        let args = SimArgs {
            slots: 2,
            ttft_ms: 5,
            tokens_per_sec: 400.0,
            answer_tokens: 8,
            seed: seed as u64,
            ..SimArgs::on_free_port()
        };
        out.push(crate::sim::spawn(args).await.expect("start a simulator"));
    }
    out
}

fn plan(users: usize) -> Plan {
    Plan {
        users,
        ramp: Duration::from_millis(100),
        window: Duration::from_millis(700),
        think_mean: Duration::from_millis(30),
        patience: Patience {
            first_token: Duration::from_secs(10),
            stall: Duration::from_secs(5),
            total: Duration::from_secs(20),
        },
        stream: 0,
    }
}

#[tokio::test]
async fn every_request_to_the_origin_is_accounted_for_and_misses_match_generations() {
    let sims = sims(2).await;
    let mut config = Config::default();
    config.backends.ollama_urls = sims.iter().map(SimHandle::url).collect();
    config.backends.slots = 2;
    config.backends.health_interval_ms = 200;
    config.generation.num_predict = 8;
    config.cache.redis_url = None;
    config.cache.semantic.enabled = false;
    let app = crate::server::app(
        &config,
        crate::config::Overrides::default(),
        crate::drain::Drain::default(),
    )
    .await
    .expect("the origin's app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let target = Arc::new(Target {
        name: "LibriAssist".into(),
        base_url: format!("http://{addr}"),
        protocol: Protocol::LibriAssist,
    });
    let mix = Arc::new(
        Mix::new(
            bank(),
            MixSettings {
                popular_share: 0.5,
                paraphrase_share: 0.1,
                zipf_s: 1.0,
                seed: 3,
            },
        )
        .expect("mix"),
    );
    let client = super::client::http_client();
    let run = users::run(&client, target, Arc::clone(&mix), plan(6), Instant::now()).await;

    assert!(
        run.started > 6,
        "each user asked at least once: {}",
        run.started
    );
    assert_eq!(
        run.records.len(),
        run.started,
        "every request started came back"
    );
    for r in &run.records {
        assert_eq!(r.exchange.outcome, Outcome::Answered, "{r:?}");
        assert!(r
            .exchange
            .first_token_ms
            .is_some_and(|t| t <= r.exchange.total_ms));
        assert!(r.exchange.layer.is_some(), "the meta event names the layer");
    }
    let misses = run
        .records
        .iter()
        .filter(|r| layer_of(r) == CacheLayer::Miss)
        .count() as u64;
    // Started, not completed: the origin ends a stream once the token budget is spent,
    // before the simulator's done line, which the simulator then counts as cancelled.
    let generated: u64 = sims.iter().map(|s| s.stats().generations_started).sum();
    assert_eq!(
        misses, generated,
        "one generation per miss, none for cached answers"
    );
    assert!(
        run.records.iter().any(|r| layer_of(r) != CacheLayer::Miss),
        "popular questions repeat, so some are cached"
    );

    let report = analyse(
        "LibriAssist",
        6,
        &run,
        &[],
        Scale::new(1.0).expect("scale"),
        4.0,
        2,
    );
    assert_eq!(report.outcomes.unaccounted, 0);
    assert_eq!(report.outcomes.answered, run.records.len());
    server.abort();
    for s in sims {
        s.shutdown().await;
    }
}

#[tokio::test]
async fn plain_ollama_targets_are_measured_and_lost_requests_are_counted() {
    let sims = sims(1).await;
    let target = Arc::new(Target {
        name: "simulator".into(),
        base_url: sims[0].url(),
        protocol: Protocol::Ollama {
            model: crate::sim::DEFAULT_MODEL.into(),
            num_predict: 8,
        },
    });
    let mix = Arc::new(Mix::new(bank(), MixSettings::misses_only(1)).expect("mix"));
    let client = super::client::http_client();
    let run = users::run(
        &client,
        Arc::clone(&target),
        Arc::clone(&mix),
        plan(3),
        Instant::now(),
    )
    .await;
    assert_eq!(run.records.len(), run.started);
    assert!(run
        .records
        .iter()
        .all(|r| r.exchange.outcome == Outcome::Answered && r.exchange.tokens == 8));
    assert_eq!(
        sims[0].stats().requests,
        run.started as u64,
        "the simulator saw exactly the requests the bench counted"
    );

    // Every request fails before its first token: all lost, none answered, still all accounted for.
    sims[0]
        .set_faults(crate::sim::FaultUpdate {
            fail_rate: Some(1.0),
            ..Default::default()
        })
        .expect("set faults");
    let failing = users::run(&client, target, mix, plan(2), Instant::now()).await;
    assert_eq!(failing.records.len(), failing.started);
    assert!(failing
        .records
        .iter()
        .all(|r| r.exchange.outcome == Outcome::Lost
            && r.exchange.error.as_deref() == Some("http_500:backend_error")));
    for s in sims {
        s.shutdown().await;
    }
}
