//! The one typed configuration of `libriassist serve`.
//!
//! Precedence, lowest first: built-in defaults, the TOML file given with `--config`, then the
//! command line and environment variables (each flag of `libriassist serve --help` names its
//! variable). `libriassist config` prints the effective configuration as TOML;
//! `libriassist config --reference` prints every option with its default, variable and flag
//! (docs/OPERATIONS.md, see `reference.rs`).

use clap::Args;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod reference;
pub use reference::reference;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub backends: BackendsConfig,
    pub generation: GenerationConfig,
    pub cache: crate::cache::CacheConfig,
    pub index: crate::knowledge::config::IndexConfig,
    pub embedding: crate::embed::EmbeddingConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Bearer token required by the admin endpoints; admin endpoints are off when unset.
    pub admin_token: Option<String>,
    /// How long a SIGTERM waits for running streams before ending them with an error event.
    pub drain_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BackendsConfig {
    /// Ollama base URLs (POST /api/chat).
    pub ollama_urls: Vec<String>,
    /// OpenAI-compatible base URLs (POST /v1/chat/completions): vLLM, llama.cpp, LM Studio.
    pub openai_urls: Vec<String>,
    /// Model every backend is asked for, and must list, to be healthy.
    pub model: String,
    /// Parallel generation slots per backend (OLLAMA_NUM_PARALLEL, llama-server -np).
    pub slots: usize,
    /// Requests that may wait for a free slot; beyond it, 503 at once.
    pub queue_max: usize,
    /// Longest wait for a free slot before 503.
    pub queue_timeout_ms: u64,
    /// A backend that has not sent a first token within this is treated as failed.
    pub first_token_timeout_ms: u64,
    /// A stream with no new token for this long is treated as failed.
    pub idle_token_timeout_ms: u64,
    /// A backend that owes first tokens and has sent none for this long is stalled: it is
    /// ejected and the requests waiting on it move to another backend.
    pub stall_timeout_ms: u64,
    /// Period of the active health check of each backend.
    pub health_interval_ms: u64,
    /// Consecutive failures that open a backend's circuit.
    pub failure_threshold: u32,
    /// First back-off of an open circuit; doubles on each failed probe up to `max_backoff_ms`.
    pub base_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Different backends a request may try before its first token.
    pub max_attempts: usize,
    /// Replicas tell each other, through the cache's Redis, what they run on each backend, so
    /// that together they never send a backend more than its slots.
    pub share_load: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GenerationConfig {
    /// Token budget of one answer (Ollama num_predict, OpenAI max_tokens); enforced while streaming too.
    pub num_predict: u32,
    pub temperature: f32,
    pub top_k: u32,
    /// System prompt; the knowledge base adds the numbered passages after it.
    pub system_prompt: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            admin_token: None,
            drain_timeout_ms: 30_000,
        }
    }
}

impl Default for BackendsConfig {
    fn default() -> Self {
        BackendsConfig {
            ollama_urls: Vec::new(),
            openai_urls: Vec::new(),
            model: "mistral:7b-instruct-q4_0".into(),
            slots: 4,
            queue_max: 256,
            queue_timeout_ms: 60_000,
            first_token_timeout_ms: 30_000,
            stall_timeout_ms: 10_000,
            idle_token_timeout_ms: 30_000,
            health_interval_ms: 2_000,
            failure_threshold: 3,
            base_backoff_ms: 1_000,
            max_backoff_ms: 30_000,
            max_attempts: 3,
            share_load: true,
        }
    }
}

impl Default for GenerationConfig {
    fn default() -> Self {
        GenerationConfig {
            num_predict: 200,
            temperature: 0.1,
            top_k: 20,
            system_prompt: DEFAULT_SYSTEM_PROMPT.into(),
        }
    }
}

pub const DEFAULT_SYSTEM_PROMPT: &str = "Tu es l'assistant de la librairie. Réponds en français, \
brièvement et poliment, uniquement à partir des passages numérotés fournis. Cite les passages \
utilisés sous la forme [1], [2]. Si les passages ne contiennent pas la réponse, dis que tu ne sais \
pas et propose de contacter le service client.";

impl BackendsConfig {
    pub fn queue_timeout(&self) -> Duration {
        Duration::from_millis(self.queue_timeout_ms)
    }
    pub fn first_token_timeout(&self) -> Duration {
        Duration::from_millis(self.first_token_timeout_ms)
    }
    pub fn stall_timeout(&self) -> Duration {
        Duration::from_millis(self.stall_timeout_ms)
    }
    pub fn idle_token_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_token_timeout_ms)
    }
    pub fn health_interval(&self) -> Duration {
        Duration::from_millis(self.health_interval_ms)
    }
}

/// Overrides from the command line and the environment. Every field is optional: unset means
/// "keep the value from the file or the default".
#[derive(Debug, Clone, Default, Args)]
pub struct Overrides {
    /// TOML configuration file.
    #[arg(long, env = "LIBRIASSIST_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8000].
    #[arg(long, env = "LIBRIASSIST_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Comma-separated Ollama base URLs, e.g. http://gpu1:11434,http://gpu2:11434.
    #[arg(long, env = "OLLAMA_URLS", value_delimiter = ',')]
    pub ollama_urls: Option<Vec<String>>,
    /// Comma-separated OpenAI-compatible base URLs (vLLM, llama.cpp llama-server).
    #[arg(long, env = "OPENAI_URLS", value_delimiter = ',')]
    pub openai_urls: Option<Vec<String>>,
    /// Model name asked of every backend [default: mistral:7b-instruct-q4_0].
    #[arg(long, env = "OLLAMA_MODEL")]
    pub model: Option<String>,
    /// Parallel slots per backend [default: 4].
    #[arg(long, env = "LIBRIASSIST_BACKEND_SLOTS")]
    pub slots: Option<usize>,
    /// Admission queue bound [default: 256].
    #[arg(long, env = "LIBRIASSIST_QUEUE_MAX")]
    pub queue_max: Option<usize>,
    /// Longest wait in the admission queue, ms [default: 60000].
    #[arg(long, env = "LIBRIASSIST_QUEUE_TIMEOUT_MS")]
    pub queue_timeout_ms: Option<u64>,
    /// Deadline for a backend's first token, ms [default: 30000].
    #[arg(long, env = "LIBRIASSIST_FIRST_TOKEN_TIMEOUT_MS")]
    pub first_token_timeout_ms: Option<u64>,
    /// Period of backend health checks, ms [default: 2000].
    #[arg(long, env = "LIBRIASSIST_HEALTH_INTERVAL_MS")]
    pub health_interval_ms: Option<u64>,
    /// Token budget per answer [default: 200].
    #[arg(long, env = "LIBRIASSIST_NUM_PREDICT")]
    pub num_predict: Option<u32>,
    /// Sampling temperature [default: 0.1].
    #[arg(long, env = "LIBRIASSIST_TEMPERATURE")]
    pub temperature: Option<f32>,
    /// Top-k sampling [default: 20].
    #[arg(long, env = "LIBRIASSIST_TOP_K")]
    pub top_k: Option<u32>,
    /// Bearer token for the admin endpoints (unset: admin endpoints disabled).
    #[arg(long, env = "LIBRIASSIST_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Drain deadline on SIGTERM, ms [default: 30000].
    #[arg(long, env = "LIBRIASSIST_DRAIN_TIMEOUT_MS")]
    pub drain_timeout_ms: Option<u64>,
    #[command(flatten)]
    pub cache: crate::cache::CacheOverrides,
    #[command(flatten)]
    pub knowledge: crate::knowledge::config::KnowledgeOverrides,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, then the file, then the overrides; validated.
    ///
    /// # Errors
    /// An unreadable or malformed file, an unknown key, or a value out of range.
    pub fn load(overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut config = match &overrides.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        config.apply(overrides);
        config.validate()?;
        Ok(config)
    }

    fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    fn apply(&mut self, o: &Overrides) {
        fn set<T: Clone>(slot: &mut T, value: &Option<T>) {
            if let Some(v) = value {
                *slot = v.clone();
            }
        }
        set(&mut self.server.listen, &o.listen);
        if o.admin_token.is_some() {
            self.server.admin_token.clone_from(&o.admin_token);
        }
        set(&mut self.server.drain_timeout_ms, &o.drain_timeout_ms);
        let b = &mut self.backends;
        set(&mut b.ollama_urls, &o.ollama_urls);
        set(&mut b.openai_urls, &o.openai_urls);
        set(&mut b.model, &o.model);
        set(&mut b.slots, &o.slots);
        set(&mut b.queue_max, &o.queue_max);
        set(&mut b.queue_timeout_ms, &o.queue_timeout_ms);
        set(&mut b.first_token_timeout_ms, &o.first_token_timeout_ms);
        set(&mut b.health_interval_ms, &o.health_interval_ms);
        let g = &mut self.generation;
        set(&mut g.num_predict, &o.num_predict);
        set(&mut g.temperature, &o.temperature);
        set(&mut g.top_k, &o.top_k);
        self.cache.apply(&o.cache);
        self.index.apply(&o.knowledge);
        crate::knowledge::config::apply_embedding(&mut self.embedding, &o.knowledge);
        // An empty variable (OLLAMA_URLS=) means "none", not one empty URL.
        b.ollama_urls.retain(|u| !u.trim().is_empty());
        b.openai_urls.retain(|u| !u.trim().is_empty());
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let b = &self.backends;
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if b.slots == 0 {
            return bad("backends.slots must be at least 1");
        }
        if b.max_attempts == 0 {
            return bad("backends.max_attempts must be at least 1");
        }
        if b.health_interval_ms == 0 || b.first_token_timeout_ms == 0 {
            return bad("backends.health_interval_ms and first_token_timeout_ms must be positive");
        }
        if b.stall_timeout_ms == 0 {
            return bad("backends.stall_timeout_ms must be positive");
        }
        for url in b.ollama_urls.iter().chain(&b.openai_urls) {
            match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => {
                    return Err(ConfigError::Invalid(format!(
                        "backend URL {url:?} is not an http(s) URL"
                    )))
                }
            }
        }
        if self.generation.num_predict == 0 {
            return bad("generation.num_predict must be at least 1");
        }
        if !(0.0..=2.0).contains(&self.generation.temperature) {
            return bad("generation.temperature must be between 0 and 2");
        }
        self.cache.validate().map_err(ConfigError::Invalid)?;
        self.index.validate().map_err(ConfigError::Invalid)?;
        Ok(())
    }

    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_toml() {
        let text = Config::default().to_toml();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, Config::default());
    }

    #[test]
    fn file_then_overrides() {
        let dir = std::env::temp_dir().join(format!("libriassist-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "[backends]\nslots = 2\nmodel = \"a\"\nollama_urls = [\"http://x:1\"]\n",
        )
        .unwrap();
        let o = Overrides {
            config: Some(path.clone()),
            model: Some("b".into()),
            ..Default::default()
        };
        let c = Config::load(&o).unwrap();
        assert_eq!((c.backends.slots, c.backends.model.as_str()), (2, "b"));
        assert_eq!(c.backends.ollama_urls, ["http://x:1"]);
        std::fs::write(&path, "[backends]\nslotz = 2\n").unwrap();
        assert!(matches!(Config::load(&o), Err(ConfigError::Parse { .. })));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rejects_nonsense() {
        let o = Overrides {
            slots: Some(0),
            ..Default::default()
        };
        assert!(Config::load(&o).is_err());
        let o = Overrides {
            ollama_urls: Some(vec!["localhost:11434".into()]),
            ..Default::default()
        };
        assert!(Config::load(&o).is_err());
        let o = Overrides {
            ollama_urls: Some(vec![String::new()]),
            ..Default::default()
        };
        assert!(Config::load(&o).unwrap().backends.ollama_urls.is_empty());
    }
}
