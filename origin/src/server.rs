//! `libriassist serve`: assembles the pipeline from the configuration and runs the HTTP server
//! until SIGTERM, then drains. SIGHUP re-reads the configuration and applies what can change
//! without a restart.

use crate::api::{self, CacheApi, ChatService, Ops};
use crate::backends::breaker;
use crate::backends::ollama::OllamaBackend;
use crate::backends::openai::OpenAiBackend;
use crate::backends::pool::{BackendStatus, Membership, PoolSettings};
use crate::backends::{health, http_client, Backend, GenerationOptions, Pool};
use crate::cache::{Caches, ScopeSource, SemanticSlot};
use crate::config::{Config, ConfigError, Overrides};
use crate::drain::{termination_signal, Drain};
use crate::embed::{Embedder, EmbeddingConfig};
use crate::knowledge::{KnowledgeBase, KnowledgeError, Retriever};
use crate::pipeline::coalesce::Coalesce;
use crate::pipeline::exact_cache::ExactCacheStage;
use crate::pipeline::extractive::Extractive;
use crate::pipeline::generate::Generate;
use crate::pipeline::prompt::PromptBuilder;
use crate::pipeline::retrieve::Retrieve;
use crate::pipeline::semantic_cache::SemanticCacheStage;
use crate::pipeline::Pipeline;
use axum::serve::ListenerExt;
use axum::Router;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
    #[error("knowledge base: {0}")]
    Knowledge(#[from] KnowledgeError),
}

/// History kept in the prompt, in characters (about 1,500 tokens of French).
const HISTORY_BUDGET_CHARS: usize = 6_000;

/// The backends the configuration lists.
fn backends(config: &Config) -> Vec<Arc<dyn Backend>> {
    let b = &config.backends;
    let client = http_client();
    let mut backends: Vec<Arc<dyn Backend>> = Vec::new();
    for url in &b.ollama_urls {
        backends.push(Arc::new(OllamaBackend::new(url, client.clone())));
    }
    for url in &b.openai_urls {
        backends.push(Arc::new(OpenAiBackend::new(url, client.clone())));
    }
    backends
}

/// The backend pool described by the configuration.
pub fn pool(config: &Config) -> Pool {
    let b = &config.backends;
    let settings = PoolSettings {
        model: b.model.clone(),
        queue_max: b.queue_max,
        queue_timeout: b.queue_timeout(),
        first_token_timeout: b.first_token_timeout(),
        stall_timeout: b.stall_timeout(),
        idle_token_timeout: b.idle_token_timeout(),
        max_attempts: b.max_attempts,
        breaker: breaker::Settings {
            threshold: b.failure_threshold,
            base_backoff: Duration::from_millis(b.base_backoff_ms),
            max_backoff: Duration::from_millis(b.max_backoff_ms),
        },
    };
    Pool::new(backends(config), b.slots, settings)
}

/// Lets the replicas sharing this configuration's Redis count each other's load on the
/// backends; without Redis (or with `backends.share_load` off) this origin counts alone.
fn share_load(config: &Config, pool: &Pool) {
    let Some(url) = config.cache.redis_url.as_deref() else {
        return;
    };
    if !config.backends.share_load {
        return;
    }
    if let Err(e) = crate::backends::shared_load::spawn(pool.clone(), url) {
        tracing::error!(error = %e, "backend load not shared: this origin counts alone");
    }
}

/// Applies the backends of a re-read configuration to the running pool, without a restart:
/// SIGHUP and `POST /admin/v1/backends/reload` both end here. Only the backend lists and their
/// slots change; other options that differ are reported as waiting for a restart.
pub struct BackendsReload {
    /// The file and the command line and environment the process started with: a reload reads
    /// the file again and applies the same overrides on top, as at start.
    source: Overrides,
    pool: Pool,
    /// The configuration in force; locked for the whole reload, so reloads run one at a time.
    running: tokio::sync::Mutex<Config>,
}

/// What a backends reload did.
#[derive(Debug, serde::Serialize)]
pub struct BackendsReloaded {
    #[serde(flatten)]
    pub membership: Membership,
    /// Sections whose new values were not applied (they need a restart).
    pub restart_needed: Vec<&'static str>,
    /// The pool after the health check of the added backends.
    pub backends: Vec<BackendStatus>,
}

impl BackendsReload {
    pub fn new(source: Overrides, pool: Pool, running: Config) -> BackendsReload {
        BackendsReload {
            source,
            pool,
            running: tokio::sync::Mutex::new(running),
        }
    }

    /// Re-reads the configuration and applies its backends; added backends are checked before
    /// this returns.
    ///
    /// # Errors
    /// The configuration no longer loads (unreadable, malformed, invalid); nothing changed.
    pub async fn reload(&self) -> Result<BackendsReloaded, ConfigError> {
        let mut running = self.running.lock().await;
        let config = Config::load(&self.source)?;
        let restart_needed = restart_needed(&running, &config);
        let b = &config.backends;
        let membership = self.pool.reconfigure(backends(&config), b.slots);
        running.backends.ollama_urls.clone_from(&b.ollama_urls);
        running.backends.openai_urls.clone_from(&b.openai_urls);
        running.backends.slots = b.slots;
        health::check_all(&self.pool).await;
        if !restart_needed.is_empty() {
            tracing::warn!(sections = ?restart_needed, "configuration changes outside the backend lists wait for a restart");
        }
        Ok(BackendsReloaded {
            membership,
            restart_needed,
            backends: self.pool.snapshot(),
        })
    }
}

/// The sections of `new` that differ from `running` in more than what a reload applies.
fn restart_needed(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut applied = running.clone();
    applied
        .backends
        .ollama_urls
        .clone_from(&new.backends.ollama_urls);
    applied
        .backends
        .openai_urls
        .clone_from(&new.backends.openai_urls);
    applied.backends.slots = new.backends.slots;
    let sections = [
        ("server", applied.server == new.server),
        ("backends", applied.backends == new.backends),
        ("generation", applied.generation == new.generation),
        ("cache", applied.cache == new.cache),
        ("index", applied.index == new.index),
        ("embedding", applied.embedding == new.embedding),
    ];
    sections
        .into_iter()
        .filter(|(_, same)| !same)
        .map(|(name, _)| name)
        .collect()
}

/// One SIGHUP listener for everything that reloads without a restart. The handler is installed
/// here, before serving: SIGHUP's default action would end the process.
fn reload_on_hangup(backends: Arc<BackendsReload>, knowledge: Option<Arc<KnowledgeBase>>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(e) => {
                tracing::warn!(error = %e, "no SIGHUP handler: reload with the admin endpoint");
                return;
            }
        };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the configuration");
                match backends.reload().await {
                    Ok(done) => tracing::info!(membership = ?done.membership, "backends reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, "configuration not reloaded; the running one stays")
                    }
                }
                if let Some(knowledge) = &knowledge {
                    // Logged by the reload itself on success.
                    if let Err(e) = knowledge.reload().await {
                        tracing::error!(error = %e, "knowledge index not reloaded; the running version stays");
                    }
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (backends, knowledge);
}

/// The application: everything but the listener. Tests call this and serve it on port 0.
/// `source` is what the configuration was loaded from, read again on reload.
///
/// # Errors
/// A knowledge index is configured but cannot be served: missing embedding model or ONNX
/// Runtime, no index, a corrupt one, or one built with another model.
pub async fn app(config: &Config, source: Overrides, drain: Drain) -> Result<Router, ServeError> {
    let knowledge = knowledge(config).await?;
    let metrics = crate::metrics::install();
    let pool = pool(config);
    health::check_all(&pool).await;
    // The checker lives as long as the process; the pool handle it holds is cheap.
    health::spawn(pool.clone(), config.backends.health_interval());
    share_load(config, &pool);
    let reload = Arc::new(BackendsReload::new(source, pool.clone(), config.clone()));
    reload_on_hangup(Arc::clone(&reload), knowledge.clone());

    let g = &config.generation;
    let options = GenerationOptions {
        num_predict: g.num_predict,
        temperature: g.temperature,
        top_k: g.top_k,
    };
    // Cached answers are scoped by the corpus version being served, read at each request so
    // that a reload moves new answers to a new scope at once.
    let scope = match &knowledge {
        Some(k) => {
            let k = Arc::clone(k);
            ScopeSource::new(
                config.backends.model.clone(),
                Arc::new(move || k.index().manifest.corpus_version.clone()),
            )
        }
        None => ScopeSource::fixed(config.backends.model.clone(), crate::cache::keys::NO_CORPUS),
    };
    let caches = caches(config, scope.clone());
    let pipeline = Arc::new(Pipeline {
        scope,
        exact_cache: ExactCacheStage::new(caches.as_ref().map(|c| Arc::clone(&c.exact))),
        coalesce: Coalesce::new(config.cache.enabled && config.cache.coalesce),
        semantic_cache: SemanticCacheStage::new(
            caches
                .as_ref()
                .map_or_else(SemanticSlot::default, |c| c.semantic_slot()),
        ),
        retrieve: Retrieve::new(knowledge.clone()),
        prompt: PromptBuilder::new(g.system_prompt.clone(), HISTORY_BUDGET_CHARS),
        generate: Generate::new(pool.clone(), options),
        extractive: Extractive::new(
            config.index.extractive_passages,
            config.index.no_answer.clone(),
        ),
    });
    let chat = Arc::new(ChatService {
        pipeline,
        drain: drain.clone(),
    });
    let ops = Arc::new(Ops {
        pool,
        metrics,
        drain,
        knowledge,
        admin_token: config.server.admin_token.clone(),
    });
    Ok(api::router(
        chat,
        ops,
        CacheApi {
            caches,
            admin_token: config.server.admin_token.clone(),
        },
        reload,
    ))
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
        let embedding = config.embedding.clone();
        tokio::spawn(async move {
            match shared_embedder(&embedding).await {
                Ok(embedder) => pending.attach_embedder(Arc::new(embedder)),
                Err(e) => {
                    tracing::warn!(error = %e, "semantic cache off: embedding model unavailable")
                }
            }
        });
    }
    Some(caches)
}

/// One embedding model per process, loaded on first use off the async threads: the knowledge
/// base and the semantic cache share it, and servers started side by side in one process
/// (tests) share it, as they share ONNX Runtime. Only a success is kept, so a failed load is
/// retried by the next caller instead of being remembered.
async fn shared_embedder(config: &EmbeddingConfig) -> Result<Embedder, crate::embed::EmbedError> {
    static EMBEDDER: tokio::sync::Mutex<Option<(EmbeddingConfig, Embedder)>> =
        tokio::sync::Mutex::const_new(None);
    let mut loaded = EMBEDDER.lock().await;
    if let Some((cfg, embedder)) = loaded.as_ref() {
        if cfg == config {
            return Ok(embedder.clone());
        }
    }
    let cfg = config.clone();
    let embedder = tokio::task::spawn_blocking(move || Embedder::load(&cfg))
        .await
        .map_err(|e| crate::embed::EmbedError::Worker(e.to_string()))??;
    *loaded = Some((config.clone(), embedder.clone()));
    Ok(embedder)
}

/// The knowledge base `[index] dir` names, loaded and verified; `None` when it is unset.
async fn knowledge(config: &Config) -> Result<Option<Arc<KnowledgeBase>>, ServeError> {
    let Some(dir) = config.index.dir.clone() else {
        return Ok(None);
    };
    let embedder = shared_embedder(&config.embedding)
        .await
        .map_err(KnowledgeError::from)?;
    let retriever = Retriever::new(embedder, config.index.retrieval());
    let knowledge = tokio::task::spawn_blocking(move || KnowledgeBase::open(&dir, retriever))
        .await
        .map_err(|e| KnowledgeError::FullText(format!("index loader failed: {e}")))??;
    Ok(Some(Arc::new(knowledge)))
}

pub async fn serve(config: Config, source: Overrides) -> Result<(), ServeError> {
    let drain = Drain::default();
    let router = app(&config, source, drain.clone()).await?;
    let addr = config.server.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener.local_addr()?;
    announce(&config, local);

    let deadline = Duration::from_millis(config.server.drain_timeout_ms);
    let on_signal = drain.clone();
    tokio::spawn(async move {
        termination_signal().await;
        tracing::info!(
            deadline_ms = deadline.as_millis() as u64,
            "termination requested: draining"
        );
        on_signal.start(deadline);
    });
    // Accepting goes on while answers run, so that new questions and readiness probes get their
    // 503 (see drain.rs); the listener closes with the last answer.
    let stop_accepting = drain.clone();
    // Tokens are small writes: without TCP_NODELAY, Nagle's algorithm holds each one back until
    // the previous is acknowledged, adding tens of milliseconds to a streamed answer.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, router)
        .with_graceful_shutdown(async move { stop_accepting.finished().await });
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
