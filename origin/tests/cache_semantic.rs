//! The semantic cache shared by two origins through Redis, with the real embedding model: a
//! paraphrase asked at one origin is answered from the other's generation, a negated question
//! is not, and an origin started later finds the entries already there.

mod cache_support;

use cache_support::*;
use libriassist::config::Config;
use libriassist::embed::EmbeddingConfig;
use std::time::Duration;

fn semantic(mut config: Config) -> Config {
    config.cache.semantic.enabled = true;
    config
}

async fn semantic_ready(client: &reqwest::Client, origin: &Origin) -> bool {
    // Loading the model takes seconds, more when the machine is busy.
    eventually(Duration::from_secs(120), || async {
        let (_, stats) = cache_stats(client, origin).await;
        stats["semantic"].is_object()
    })
    .await
}

async fn entries(client: &reqwest::Client, origin: &Origin) -> u64 {
    let (_, stats) = cache_stats(client, origin).await;
    stats["semantic"]["entries"].as_u64().unwrap_or(0)
}

/// Whether `origin`'s semantic index holds at least `count` entries within 10 s: origins learn
/// each other's entries from a Redis stream.
async fn holds_entries_soon(client: &reqwest::Client, origin: &Origin, count: u64) -> bool {
    eventually(Duration::from_secs(10), || async {
        entries(client, origin).await >= count
    })
    .await
}

#[tokio::test]
async fn two_origins_share_paraphrases_through_redis_and_a_restarted_one_starts_warm() {
    let model = EmbeddingConfig::from_env_or_default();
    if !model.model_dir.is_dir() || !model.ort_library.is_file() {
        unavailable("the embedding model (scripts/fetch-models.sh)");
        return;
    }
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let sim = sim(|_| {}).await;
    let config = semantic(config(&sim, Some(&redis)));
    let (a, b) = (Origin::start(&config).await, Origin::start(&config).await);
    let client = reqwest::Client::new();
    assert!(
        semantic_ready(&client, &a).await && semantic_ready(&client, &b).await,
        "semantic cache never came up"
    );

    let (status, layer, first) = ask(&client, &a, "Quels formats proposez-vous ?").await;
    assert_eq!((status, layer.as_str()), (200, "miss"), "{first}");
    // B learns the entry from the stream.
    assert!(
        holds_entries_soon(&client, &b, 1).await,
        "B never learnt A's entry"
    );

    let (status, layer, body) = ask(&client, &b, "Vous proposez quels formats ?").await;
    assert_eq!((status, layer.as_str()), (200, "semantic"), "{body}");
    assert_eq!(body["answer"], first["answer"]);
    assert_eq!(sim.stats().generations_started, 1);

    // Scores higher than the paraphrase with this model, yet must not be served A's answer.
    let (_, layer, _) = ask(&client, &b, "Quels formats ne proposez-vous pas ?").await;
    assert_eq!(layer, "miss");
    let (_, stats) = cache_stats(&client, &b).await;
    let recent = &stats["semantic"]["recent_hits"][0];
    assert_eq!(
        recent["matched_question"], "Quels formats proposez-vous ?",
        "{stats}"
    );
    assert!(
        recent["similarity"].as_f64().unwrap_or(0.0) >= f64::from(config.cache.semantic.threshold)
    );

    // A third origin, started after the fact, loads what is in Redis.
    let c = Origin::start(&config).await;
    assert!(semantic_ready(&client, &c).await);
    assert!(
        holds_entries_soon(&client, &c, 2).await,
        "C did not load the entries"
    );
    let (_, layer, _) = ask(&client, &c, "Vous proposez quels formats ?").await;
    // The exact key of B's question was never stored (semantic hits are not): semantic again.
    assert_eq!(layer, "semantic");
    assert_eq!(
        sim.stats().generations_started,
        2,
        "only A's question and the negated one were generated"
    );

    // A purge at one origin reaches the others' indexes.
    let (status, _) = admin(&client, &a, reqwest::Method::DELETE, "/admin/v1/cache").await;
    assert_eq!(status, 200);
    assert!(
        eventually(Duration::from_secs(10), || async {
            entries(&client, &c).await == 0 && entries(&client, &b).await == 0
        })
        .await
    );
    let (_, layer, _) = ask(&client, &c, "Vous proposez quels formats ?").await;
    assert_eq!(layer, "miss");
}
