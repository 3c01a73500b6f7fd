//! `libriassist serve`: assembles the pipeline from the configuration and runs the HTTP server
//! until SIGTERM, then drains.

use crate::api::{self, CacheApi, ChatService, Ops};
use crate::backends::breaker;
use crate::backends::ollama::OllamaBackend;
use crate::backends::openai::OpenAiBackend;
use crate::backends::pool::PoolSettings;
use crate::backends::{health, http_client, Backend, GenerationOptions, Pool};
use crate::cache::{Caches, ScopeSource, SemanticSlot};
use crate::config::Config;
use crate::drain::{termination_signal, Drain};
use crate::embed::{Embedder, EmbeddingConfig};
use crate::pipeline::coalesce::Coalesce;
use crate::pipeline::exact_cache::ExactCacheStage;
use crate::pipeline::generate::Generate;
use crate::pipeline::prompt::PromptBuilder;
use crate::pipeline::semantic_cache::SemanticCacheStage;
use crate::pipeline::Pipeline;
use axum::Router;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// History kept in the prompt, in characters (about 1,500 tokens of French).
const HISTORY_BUDGET_CHARS: usize = 6_000;

/// The backend pool described by the configuration.
pub fn pool(config: &Config) -> Pool {
    let b = &config.backends;
    let client = http_client();
    let mut backends: Vec<Arc<dyn Backend>> = Vec::new();
    for url in &b.ollama_urls {
        backends.push(Arc::new(OllamaBackend::new(url, client.clone())));
    }
    for url in &b.openai_urls {
        backends.push(Arc::new(OpenAiBackend::new(url, client.clone())));
    }
    let settings = PoolSettings {
        model: b.model.clone(),
        queue_max: b.queue_max,
        queue_timeout: b.queue_timeout(),
        first_token_timeout: b.first_token_timeout(),
        idle_token_timeout: b.idle_token_timeout(),
        max_attempts: b.max_attempts,
        breaker: breaker::Settings {
            threshold: b.failure_threshold,
            base_backoff: Duration::from_millis(b.base_backoff_ms),
            max_backoff: Duration::from_millis(b.max_backoff_ms),
        },
    };
    Pool::new(backends, b.slots, settings)
}

/// The application: everything but the listener. Tests call this and serve it on port 0.
pub async fn app(config: &Config, drain: Drain) -> Router {
    let metrics = crate::metrics::install();
    let pool = pool(config);
    health::check_all(&pool).await;
    // The checker lives as long as the process; the pool handle it holds is cheap.
    health::spawn(pool.clone(), config.backends.health_interval());

    let g = &config.generation;
    let options = GenerationOptions { num_predict: g.num_predict, temperature: g.temperature, top_k: g.top_k };
    // Until a knowledge base provides its corpus version, every answer shares one scope.
    let scope = ScopeSource::fixed(config.backends.model.clone(), crate::cache::keys::NO_CORPUS);
    let caches = caches(config, scope.clone());
    let pipeline = Arc::new(Pipeline {
        scope,
        exact_cache: ExactCacheStage::new(caches.as_ref().map(|c| Arc::clone(&c.exact))),
        coalesce: Coalesce::new(config.cache.enabled && config.cache.coalesce),
        semantic_cache: SemanticCacheStage::new(caches.as_ref().map_or_else(SemanticSlot::default, |c| c.semantic_slot())),
        prompt: PromptBuilder::new(g.system_prompt.clone(), HISTORY_BUDGET_CHARS),
        generate: Generate::new(pool.clone(), options),
    });
    let chat = Arc::new(ChatService { pipeline, drain: drain.clone() });
    let ops = Arc::new(Ops { pool, metrics, drain });
    api::router(chat, ops, CacheApi { caches, admin_token: config.server.admin_token.clone() })
}

/// The answer caches, or none when they are off or misconfigured (answers are then all
/// generated: a cache problem never stops the service). The semantic cache joins in the
/// background once the embedding model is loaded, so start-up does not wait for it.
fn caches(config: &Config, scope: ScopeSource) -> Option<Arc<Caches>> {
    if !config.cache.enabled {
        return None;
    }
    let caches = match Caches::build(&config.cache, scope) {
        Ok(caches) => Arc::new(caches),
        Err(e) => {
            tracing::error!(error = %e, "answer caches off");
            return None;
        }
    };
    if caches.wants_semantic() {
        let pending = Arc::clone(&caches);
        tokio::spawn(async move {
            if let Some(embedder) = shared_embedder().await {
                pending.attach_embedder(Arc::new(embedder));
            }
        });
    }
    Some(caches)
}

/// One embedding model per process, loaded on first use off the async threads: servers started
/// side by side in one process (tests) share it, as they share ONNX Runtime.
async fn shared_embedder() -> Option<Embedder> {
    static EMBEDDER: tokio::sync::OnceCell<Option<Embedder>> = tokio::sync::OnceCell::const_new();
    EMBEDDER
        .get_or_init(|| async {
            let config = EmbeddingConfig::from_env_or_default();
            match tokio::task::spawn_blocking(move || Embedder::load(&config)).await {
                Ok(Ok(embedder)) => Some(embedder),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "semantic cache off: embedding model unavailable");
                    None
                }
                Err(e) => {
                    tracing::warn!(error = %e, "semantic cache off: embedding model loader failed");
                    None
                }
            }
        })
        .await
        .clone()
}

pub async fn serve(config: Config) -> Result<(), ServeError> {
    let drain = Drain::default();
    let router = app(&config, drain.clone()).await;
    let addr = config.server.listen;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener.local_addr()?;
    announce(&config, local);

    let deadline = Duration::from_millis(config.server.drain_timeout_ms);
    let on_signal = drain.clone();
    tokio::spawn(async move {
        termination_signal().await;
        tracing::info!(deadline_ms = deadline.as_millis() as u64, "termination requested: draining");
        on_signal.start(deadline);
    });
    let stop_accepting = drain.clone();
    let server = axum::serve(listener, router).with_graceful_shutdown(async move { stop_accepting.started().await });
    // Streams still running at the deadline end with an error event; give them a moment to
    // flush it, then exit whatever remains.
    let hard_stop = async {
        drain.expired().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    tokio::select! {
        result = server => result?,
        () = hard_stop => tracing::warn!("drain deadline passed; exiting"),
    }
    tracing::info!("stopped");
    Ok(())
}

fn announce(config: &Config, addr: std::net::SocketAddr) {
    let b = &config.backends;
    tracing::info!(%addr, model = %b.model, ollama = b.ollama_urls.len(), openai = b.openai_urls.len(), "listening");
    println!("LibriAssist listening on http://{addr}");
    if b.ollama_urls.is_empty() && b.openai_urls.is_empty() {
        println!(
            "No LLM backend configured: set OLLAMA_URLS (e.g. http://127.0.0.1:11434) or OPENAI_URLS \
             (e.g. http://127.0.0.1:8080 for llama-server or vLLM), and OLLAMA_MODEL for the model name."
        );
    }
}
