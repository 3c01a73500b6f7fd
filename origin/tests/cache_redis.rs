//! The exact cache against a real Redis: replay, TTL refreshed on hit, scoping by corpus
//! version and model, bypass while Redis is down, purges and the edge's internal lookup.

mod cache_support;

use cache_support::*;
use libriassist::cache::exact::ExactCache;
use libriassist::cache::redis_link::RedisLink;
use libriassist::cache::{Purge, Scope};
use libriassist_protocol::{CacheKey, CachedAnswer, Mode};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_repeated_question_is_replayed_from_redis_in_the_same_shape_and_its_ttl_refreshed_on_hit()
{
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let sim = sim(|_| {}).await;
    let mut config = config(&sim, Some(&redis));
    config.cache.ttl_secs = 3;
    let origin = Origin::start(&config).await;
    let client = reqwest::Client::new();
    let question = "Quels formats de livres proposez-vous ?";

    let (status, layer, first) = ask(&client, &origin, question).await;
    assert_eq!((status, layer.as_str()), (200, "miss"), "{first}");
    assert_stored(&client, &origin, question).await;
    let key = key_of(question);

    let (status, layer, second) = ask(&client, &origin, question).await;
    assert_eq!((status, layer.as_str()), (200, "exact"));
    assert_eq!(second["answer"], first["answer"]);
    assert_eq!(second["cache"], "exact");
    assert_eq!(second["sources"], first["sources"]);
    // The same normalized question: other case, spacing and apostrophes.
    let (_, layer, _) = ask(
        &client,
        &origin,
        "  quels FORMATS de livres proposez-vous? ",
    )
    .await;
    assert_eq!(layer, "exact");

    let (layer, events) = ask_stream(&client, &origin, question).await;
    assert_eq!(layer, "exact");
    assert_eq!(events.first().map(|e| e.0.as_str()), Some("meta"));
    assert_eq!(events[0].1["cache"], "exact");
    assert_eq!(events.last().map(|e| e.0.as_str()), Some("done"));
    assert_eq!(
        streamed_text(&events),
        first["answer"].as_str().unwrap_or_default()
    );
    assert_eq!(
        sim.stats().generations_started,
        1,
        "one generation for all of them"
    );

    // The entry: answer JSON plus metadata, with a TTL that each hit pushes back.
    let mut c = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("libriassist:v1:*:{key}"))
        .query_async(&mut c)
        .await
        .expect("keys");
    assert_eq!(keys.len(), 1, "{keys:?}");
    let (hits, created): (u64, u64) = redis::cmd("HMGET")
        .arg(&keys[0])
        .arg("hits")
        .arg("created")
        .query_async(&mut c)
        .await
        .expect("hmget");
    assert!(hits >= 3 && created > 0, "hits {hits}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = pttl(&mut c, &keys[0]).await;
    assert!(internal_lookup(&client, &origin, &key).await == 200);
    let after = pttl(&mut c, &keys[0]).await;
    assert!(
        before <= 1600 && after > 2000,
        "TTL refreshed on hit: {before} ms -> {after} ms"
    );

    // Not asked for longer than the TTL: gone, and asked again it is generated again. Polled
    // in Redis itself: a lookup would be a hit and push the expiry back.
    let entry = keys[0].clone();
    let expired = eventually(Duration::from_secs(8), || {
        let (mut c, entry) = (c.clone(), entry.clone());
        async move {
            redis::cmd("EXISTS")
                .arg(&entry)
                .query_async::<i64>(&mut c)
                .await
                .is_ok_and(|n| n == 0)
        }
    })
    .await;
    assert!(expired, "the entry outlived its TTL");
    assert_eq!(internal_lookup(&client, &origin, &key).await, 404);
    let (_, layer, _) = ask(&client, &origin, question).await;
    assert_eq!(layer, "miss");
    assert_eq!(sim.stats().generations_started, 2);

    let m = metrics(&client, &origin).await;
    assert!(
        m.contains("libriassist_cache_hits_total{layer=\"exact\"}"),
        "{m}"
    );
    assert!(m.contains("libriassist_cache_hits_total{layer=\"edge\"}"));
    assert!(m.contains("libriassist_cache_misses_total"));
}

/// The milliseconds `key` has left to live in Redis.
async fn pttl(c: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query_async(c)
        .await
        .expect("pttl")
}

fn answer(text: &str) -> CachedAnswer {
    CachedAnswer {
        answer: text.into(),
        sources: vec![],
        model: "m".into(),
        mode: Mode::Generated,
    }
}

fn key(q: &str) -> CacheKey {
    CacheKey::parse(&key_of(q)).expect("a key")
}

fn scope(corpus_version: &str, model: &str) -> Scope {
    Scope {
        corpus_version: corpus_version.into(),
        model: model.into(),
    }
}

#[tokio::test]
async fn entries_are_scoped_by_corpus_version_and_model_and_purged_by_corpus() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let link = RedisLink::connect(&redis.url(), Duration::from_millis(200)).expect("url");
    let cache = ExactCache::redis(link, Duration::from_secs(60));
    let v1 = scope("2026-11-01", "mistral:7b");
    let v2 = scope("2026-11-27", "mistral:7b");
    let other_model = scope("2026-11-01", "qwen2.5:7b");
    let q = key("Quels sont vos horaires ?");
    cache
        .put(&v1, &q, "Quels sont vos horaires ?", &answer("9h-19h"))
        .await
        .expect("put");
    assert_eq!(
        cache.get(&v1, &q).await.map(|h| h.answer.answer),
        Some("9h-19h".into())
    );
    assert_eq!(
        cache.get(&v2, &q).await,
        None,
        "a new corpus never sees the old answer"
    );
    assert_eq!(cache.get(&other_model, &q).await, None, "nor another model");
    cache
        .put(&v2, &q, "Quels sont vos horaires ?", &answer("10h-20h"))
        .await
        .expect("put");
    assert_eq!(
        cache.get(&v2, &q).await.map(|h| h.answer.answer),
        Some("10h-20h".into())
    );

    assert_eq!(
        cache.purge(&Purge::Corpus("2026-11-01".into())).await,
        Ok(1)
    );
    assert_eq!(cache.get(&v1, &q).await, None);
    assert!(
        cache.get(&v2, &q).await.is_some(),
        "other corpus versions stay"
    );
    assert_eq!(cache.count().await, Ok(1));
}

#[tokio::test]
async fn through_the_api_another_model_is_another_scope() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let sim = sim(|a| a.models = vec!["alpha:1b".into(), "beta:1b".into()]).await;
    let mut a = config(&sim, Some(&redis));
    a.backends.model = "alpha:1b".into();
    let mut b = a.clone();
    b.backends.model = "beta:1b".into();
    let (alpha, beta) = (Origin::start(&a).await, Origin::start(&b).await);
    let client = reqwest::Client::new();
    let question = "Livrez-vous le samedi ?";
    assert_eq!(ask(&client, &alpha, question).await.1, "miss");
    assert_stored(&client, &alpha, question).await;
    let key = key_of(question);
    assert_eq!(internal_lookup(&client, &beta, &key).await, 404);
    assert_eq!(ask(&client, &beta, question).await.1, "miss");
    assert_eq!(sim.stats().generations_started, 2);
}

#[tokio::test]
async fn redis_stopped_mid_test_is_a_bypass_and_caching_resumes_when_it_returns() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let sim = sim(|_| {}).await;
    let origin = Origin::start(&config(&sim, Some(&redis))).await;
    let client = reqwest::Client::new();
    let question = "Puis-je payer par chèque ?";
    assert_eq!(ask(&client, &origin, question).await.1, "miss");
    assert_stored(&client, &origin, question).await;
    let key = key_of(question);
    assert_eq!(ask(&client, &origin, question).await.1, "exact");

    redis.stop();
    for i in 0..5 {
        let started = Instant::now();
        let (status, layer, body) = ask(&client, &origin, question).await;
        assert_eq!(
            (status, layer.as_str()),
            (200, "miss"),
            "request {i} while Redis is down: {body}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "bypass is quick: {:?}",
            started.elapsed()
        );
        let started = Instant::now();
        assert_eq!(internal_lookup(&client, &origin, &key).await, 404);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "the edge's lookup stays fast: {:?}",
            started.elapsed()
        );
    }
    assert!(metrics(&client, &origin)
        .await
        .contains("libriassist_cache_errors_total{op="));

    redis.restart();
    // The outage ends at the first probe that succeeds (every 500 ms), and the connection is
    // re-established in the background.
    let again = "Puis-je payer par virement ?";
    let mut resumed = false;
    for _ in 0..50 {
        ask(&client, &origin, again).await;
        if internal_lookup(&client, &origin, &key_of(again)).await == 200 {
            resumed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(resumed, "answers are stored again once Redis is back");
    assert_eq!(ask(&client, &origin, again).await.1, "exact");
}

#[tokio::test]
async fn admin_purges_need_the_token_and_reach_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let sim = sim(|_| {}).await;
    let origin = Origin::start(&config(&sim, Some(&redis))).await;
    let client = reqwest::Client::new();
    let (q1, q2) = (
        "Quels sont vos horaires d'ouverture ?",
        "Où se trouve la librairie ?",
    );
    for q in [q1, q2] {
        ask(&client, &origin, q).await;
        assert_stored(&client, &origin, q).await;
    }
    for token in [None, Some("nope")] {
        let mut purge = client.delete(origin.url("/admin/v1/cache"));
        if let Some(token) = token {
            purge = purge.bearer_auth(token);
        }
        let response = purge.send().await.expect("answer");
        assert_eq!(response.status(), 401, "token {token:?}");
    }

    let (status, stats) = cache_stats(&client, &origin).await;
    assert_eq!(status, 200);
    assert_eq!(
        (stats["backend"].as_str(), stats["exact_entries"].as_u64()),
        (Some("redis"), Some(2)),
        "{stats}"
    );

    let (status, body) = admin(
        &client,
        &origin,
        reqwest::Method::DELETE,
        &format!("/admin/v1/cache/keys/{}", key_of(q1)),
    )
    .await;
    assert_eq!((status, body["purged"].as_u64()), (200, Some(1)), "{body}");
    assert_eq!(internal_lookup(&client, &origin, &key_of(q1)).await, 404);
    assert_eq!(internal_lookup(&client, &origin, &key_of(q2)).await, 200);
    let (status, _) = admin(
        &client,
        &origin,
        reqwest::Method::DELETE,
        "/admin/v1/cache/keys/not-a-key",
    )
    .await;
    assert_eq!(status, 400);

    let (status, body) = admin(
        &client,
        &origin,
        reqwest::Method::DELETE,
        "/admin/v1/cache/corpus/none",
    )
    .await;
    assert_eq!((status, body["purged"].as_u64()), (200, Some(1)), "{body}");
    assert_eq!(internal_lookup(&client, &origin, &key_of(q2)).await, 404);

    ask(&client, &origin, q1).await;
    assert_stored(&client, &origin, q1).await;
    let (status, body) = admin(&client, &origin, reqwest::Method::DELETE, "/admin/v1/cache").await;
    assert_eq!((status, body["purged"].as_u64()), (200, Some(1)), "{body}");
    assert_eq!(internal_lookup(&client, &origin, &key_of(q1)).await, 404);
}

#[tokio::test]
async fn without_redis_the_in_memory_cache_answers_and_admin_is_off_without_a_token() {
    let sim = sim(|_| {}).await;
    let mut config = config(&sim, None);
    config.server.admin_token = None;
    let origin = Origin::start(&config).await;
    let client = reqwest::Client::new();
    let question = "Faites-vous des cartes cadeaux ?";
    assert_eq!(ask(&client, &origin, question).await.1, "miss");
    assert_stored(&client, &origin, question).await;
    assert_eq!(ask(&client, &origin, question).await.1, "exact");
    let response = client
        .get(origin.url("/admin/v1/cache/stats"))
        .bearer_auth("anything")
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 404);
    assert_eq!(internal_lookup(&client, &origin, "zz").await, 404);
}
