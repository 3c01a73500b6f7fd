//! The `[cache]` section of the configuration and its command-line and environment overrides.
//!
//! Kept beside the cache code rather than in `config.rs` so that every cache knob is defined,
//! defaulted and validated in one place; `config.rs` only mounts the section.

use super::guards::GuardSettings;
use clap::Args;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Master switch: off means every question is generated (the internal endpoint answers 404).
    pub enabled: bool,
    /// Redis shared by all origins, e.g. `redis://127.0.0.1:6379/0`. Unset: each origin keeps a
    /// bounded in-memory cache of its own.
    pub redis_url: Option<String>,
    /// Lifetime of an entry, refreshed on every hit.
    pub ttl_secs: u64,
    /// Longest wait for Redis on the request path; past it the cache is bypassed, the request
    /// is not failed.
    pub redis_timeout_ms: u64,
    /// Bound of the in-memory exact cache and of each origin's semantic index.
    pub max_entries: usize,
    /// Concurrent identical questions share one generation.
    pub coalesce: bool,
    pub semantic: SemanticConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SemanticConfig {
    /// Needs the embedding model; without it the semantic layer is off and the rest works.
    pub enabled: bool,
    /// Cosine similarity a cached question must reach to be considered at all (then the guards
    /// decide). Calibrated in docs/EVALUATION.md.
    pub threshold: f32,
    /// Nearest neighbours above the threshold tried against the guards, best first.
    pub candidates: usize,
    pub guards: GuardSettings,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            redis_url: None,
            ttl_secs: 3_600,
            redis_timeout_ms: 50,
            max_entries: 100_000,
            coalesce: true,
            semantic: SemanticConfig::default(),
        }
    }
}

impl Default for SemanticConfig {
    fn default() -> Self {
        SemanticConfig {
            enabled: true,
            threshold: DEFAULT_THRESHOLD,
            candidates: 5,
            guards: GuardSettings::default(),
        }
    }
}

/// See docs/EVALUATION.md ("Semantic cache"): with the guards on, this keeps false hits under 1%
/// on every data set while most paraphrases still hit.
pub const DEFAULT_THRESHOLD: f32 = 0.90;

impl CacheConfig {
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_secs)
    }

    pub fn redis_timeout(&self) -> Duration {
        Duration::from_millis(self.redis_timeout_ms)
    }

    /// Overrides win over the file and the defaults.
    pub fn apply(&mut self, o: &CacheOverrides) {
        if let Some(url) = &o.redis_url {
            // An empty REDIS_URL means "no Redis", as an empty OLLAMA_URLS means no backend.
            self.redis_url = Some(url.clone()).filter(|u| !u.trim().is_empty());
        }
        let set = |slot: &mut u64, v: Option<u64>| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        set(&mut self.ttl_secs, o.ttl_secs);
        set(&mut self.redis_timeout_ms, o.redis_timeout_ms);
        if let Some(v) = o.enabled {
            self.enabled = v;
        }
        if let Some(v) = o.max_entries {
            self.max_entries = v;
        }
        if let Some(v) = o.coalesce {
            self.coalesce = v;
        }
        if let Some(v) = o.semantic {
            self.semantic.enabled = v;
        }
        if let Some(v) = o.semantic_threshold {
            self.semantic.threshold = v;
        }
    }

    /// # Errors
    /// A message naming the bad key.
    pub fn validate(&self) -> Result<(), String> {
        if self.ttl_secs == 0 {
            return Err("cache.ttl_secs must be at least 1".into());
        }
        if self.redis_timeout_ms == 0 {
            return Err("cache.redis_timeout_ms must be at least 1".into());
        }
        if self.max_entries == 0 {
            return Err("cache.max_entries must be at least 1".into());
        }
        if let Some(url) = &self.redis_url {
            if !(url.starts_with("redis://") || url.starts_with("unix://")) {
                return Err(format!(
                    "cache.redis_url {url:?} must start with redis:// or unix://"
                ));
            }
        }
        let s = &self.semantic;
        if !(s.threshold > 0.0 && s.threshold <= 1.0) {
            return Err("cache.semantic.threshold must be in (0, 1]".into());
        }
        if s.candidates == 0 {
            return Err("cache.semantic.candidates must be at least 1".into());
        }
        let g = &s.guards;
        for (name, value) in [
            ("content_tolerance", g.content_tolerance),
            ("narrower_tolerance", g.narrower_tolerance),
            ("substitution_share", g.substitution_share),
        ] {
            if !(0.0..1.0).contains(&value) {
                return Err(format!("cache.semantic.guards.{name} must be in [0, 1)"));
            }
        }
        for (name, value) in [
            ("tolerance_similarity", g.tolerance_similarity),
            ("narrower_similarity", g.narrower_similarity),
            ("substitution_similarity", g.substitution_similarity),
        ] {
            if !(0.0..=2.0).contains(&value) {
                return Err(format!(
                    "cache.semantic.guards.{name} must be in [0, 2] (above 1: never)"
                ));
            }
        }
        Ok(())
    }
}

/// Command-line and environment overrides of `[cache]`; unset keeps the file's value.
#[derive(Debug, Clone, Default, Args)]
pub struct CacheOverrides {
    /// Redis shared by the origins' caches, e.g. redis://127.0.0.1:6379/0 (unset: in-memory cache per origin).
    #[arg(long = "redis-url", env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// Answer caches on or off [default: true].
    #[arg(long = "cache-enabled", env = "LIBRIASSIST_CACHE_ENABLED")]
    pub enabled: Option<bool>,
    /// Lifetime of a cache entry, refreshed on hit, seconds [default: 3600].
    #[arg(long = "cache-ttl-secs", env = "LIBRIASSIST_CACHE_TTL_SECS")]
    pub ttl_secs: Option<u64>,
    /// Redis timeout on the request path before the cache is bypassed, ms [default: 50].
    #[arg(
        long = "cache-redis-timeout-ms",
        env = "LIBRIASSIST_CACHE_REDIS_TIMEOUT_MS"
    )]
    pub redis_timeout_ms: Option<u64>,
    /// Entries kept in memory (in-memory cache, semantic index) [default: 100000].
    #[arg(long = "cache-max-entries", env = "LIBRIASSIST_CACHE_MAX_ENTRIES")]
    pub max_entries: Option<usize>,
    /// Concurrent identical questions share one generation [default: true].
    #[arg(long = "cache-coalesce", env = "LIBRIASSIST_CACHE_COALESCE")]
    pub coalesce: Option<bool>,
    /// Semantic (paraphrase) cache on or off [default: true].
    #[arg(long = "cache-semantic", env = "LIBRIASSIST_CACHE_SEMANTIC")]
    pub semantic: Option<bool>,
    /// Cosine similarity threshold of the semantic cache [default: 0.90].
    #[arg(
        long = "cache-semantic-threshold",
        env = "LIBRIASSIST_CACHE_SEMANTIC_THRESHOLD"
    )]
    pub semantic_threshold: Option<f32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_and_validation() {
        let mut c = CacheConfig::default();
        assert_eq!(c.validate(), Ok(()));
        c.apply(&CacheOverrides {
            redis_url: Some("redis://127.0.0.1:1/0".into()),
            ttl_secs: Some(5),
            semantic_threshold: Some(0.95),
            ..Default::default()
        });
        assert_eq!((c.ttl_secs, c.semantic.threshold), (5, 0.95));
        assert_eq!(c.validate(), Ok(()));
        c.apply(&CacheOverrides {
            redis_url: Some(" ".into()),
            ..Default::default()
        });
        assert_eq!(c.redis_url, None);
        for bad in [
            CacheConfig {
                ttl_secs: 0,
                ..Default::default()
            },
            CacheConfig {
                redis_url: Some("http://x".into()),
                ..Default::default()
            },
            CacheConfig {
                semantic: SemanticConfig {
                    threshold: 1.5,
                    ..Default::default()
                },
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
