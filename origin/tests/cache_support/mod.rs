//! What the cache tests share: a real `redis-server` of their own on a free port, origins
//! served from `libriassist::server::app` on 127.0.0.1:0, in-process Ollama simulators, and
//! small HTTP helpers.
//!
//! Redis is Debian's `redis-server`, started without persistence and stopped by its own PID.
//! Where it is not installed the tests say so and pass, except under CI (`CI=true`), where a
//! missing Redis is a failure: CI must run them.

#![allow(dead_code)]

use libriassist::config::{Config, Overrides};
use libriassist::drain::Drain;
use libriassist::sim::{SimArgs, SimHandle};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN_TOKEN: &str = "test-admin-token";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skips (returns `None` with a message) or, under CI, fails.
pub fn unavailable(what: &str) -> Option<std::convert::Infallible> {
    assert!(!in_ci(), "{what} is required under CI");
    eprintln!("skipping: {what} is not available");
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
}

impl RedisServer {
    /// A fresh, empty Redis on a free loopback port; `None` when redis-server is missing (and
    /// not under CI).
    pub fn start() -> Option<RedisServer> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            unavailable("redis-server")?;
        }
        let mut server = RedisServer {
            child: None,
            port: free_port(),
        };
        server.spawn();
        Some(server)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("valid URL")
    }

    /// Kills this server (by its PID) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty (no persistence).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A simulator answering quickly, unless the test asks for another pace.
pub async fn sim(configure: impl FnOnce(&mut SimArgs)) -> SimHandle {
    let mut args = SimArgs::on_free_port();
    args.ttft_ms = 20;
    args.tokens_per_sec = 0.0;
    args.answer_tokens = 12;
    configure(&mut args);
    libriassist::sim::spawn(args)
        .await
        .expect("simulator starts")
}

/// A configuration answering with `sim`, caches on `redis` (or in memory), semantic cache off
/// unless the test turns it on.
pub fn config(sim: &SimHandle, redis: Option<&RedisServer>) -> Config {
    let mut config = Config::default();
    config.backends.ollama_urls = vec![sim.url()];
    config.server.admin_token = Some(ADMIN_TOKEN.into());
    config.cache.redis_url = redis.map(RedisServer::url);
    config.cache.semantic.enabled = false;
    // The production bound (50 ms) turns a slow Redis into a bypass; on a loaded test machine
    // that would make these behaviour tests flaky, so they allow Redis far longer.
    config.cache.redis_timeout_ms = 2_000;
    config
}

pub struct Origin {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Origin {
    pub async fn start(config: &Config) -> Origin {
        let router = libriassist::server::app(config, Overrides::default(), Drain::default())
            .await
            .expect("the origin starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Origin { addr, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One JSON chat answer: (status, x-cache, body).
pub async fn ask(
    client: &reqwest::Client,
    origin: &Origin,
    question: &str,
) -> (u16, String, serde_json::Value) {
    let response = post_question(client, origin, "/api/v1/chat", question).await;
    let status = response.status().as_u16();
    let layer = cache_layer(&response);
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (status, layer, body)
}

/// One streamed answer: (x-cache, events as (name, data)).
pub async fn ask_stream(
    client: &reqwest::Client,
    origin: &Origin,
    question: &str,
) -> (String, Vec<(String, serde_json::Value)>) {
    let response = post_question(client, origin, "/api/v1/chat/stream", question).await;
    let layer = cache_layer(&response);
    let text = response.text().await.unwrap_or_default();
    let events = text
        .split("\n\n")
        .filter_map(|block| {
            let mut name = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = serde_json::from_str(v.trim()).ok();
                }
            }
            Some((name?, data.unwrap_or(serde_json::Value::Null)))
        })
        .collect();
    (layer, events)
}

async fn post_question(
    client: &reqwest::Client,
    origin: &Origin,
    path: &str,
    question: &str,
) -> reqwest::Response {
    client
        .post(origin.url(path))
        .json(&serde_json::json!({ "question": question }))
        .send()
        .await
        .expect("origin answers")
}

/// The cache layer that answered (`x-cache`), `""` when the header is missing.
fn cache_layer(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// The text of a streamed answer.
pub fn streamed_text(events: &[(String, serde_json::Value)]) -> String {
    events
        .iter()
        .filter(|(n, _)| n == "token")
        .filter_map(|(_, d)| d["text"].as_str())
        .collect()
}

pub async fn internal_lookup(client: &reqwest::Client, origin: &Origin, key: &str) -> u16 {
    client
        .get(origin.url(&format!("/internal/v1/cache/{key}")))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// Fails unless the answer to `question` can be looked up within 5 s: answers are stored in
/// the background, after the client has them.
pub async fn assert_stored(client: &reqwest::Client, origin: &Origin, question: &str) {
    let key = key_of(question);
    assert!(
        eventually(Duration::from_secs(5), || async {
            internal_lookup(client, origin, &key).await == 200
        })
        .await,
        "the answer to {question:?} was not stored"
    );
}

pub fn key_of(question: &str) -> String {
    libriassist_protocol::cache_key(&libriassist_protocol::ChatRequest {
        question: question.into(),
        history: vec![],
        session_id: None,
    })
    .to_string()
}

/// Polls `check` every 20 ms until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn admin(
    client: &reqwest::Client,
    origin: &Origin,
    method: reqwest::Method,
    path: &str,
) -> (u16, serde_json::Value) {
    let response = client
        .request(method, origin.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("origin answers");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(serde_json::Value::Null),
    )
}

pub async fn cache_stats(client: &reqwest::Client, origin: &Origin) -> (u16, serde_json::Value) {
    admin(
        client,
        origin,
        reqwest::Method::GET,
        "/admin/v1/cache/stats",
    )
    .await
}

pub async fn metrics(client: &reqwest::Client, origin: &Origin) -> String {
    client
        .get(origin.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default()
}
