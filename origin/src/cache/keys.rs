//! Where entries live in Redis (and, with the same strings, in the in-memory fallback).
//!
//! Every entry key starts with the scope, so an answer is only ever found for the corpus and the
//! model it was produced with: a new corpus version or model simply looks elsewhere, and the old
//! entries age out with their TTL. The key version comes from `protocol`, so a change of
//! normalization orphans old entries instead of serving them.
//!
//! ```text
//! libriassist:v1:{corpus}:{model}:{cache_key}                  exact entry (hash)
//! libriassist:v1:{corpus}:{model}:sem:{embedder}:{cache_key}   question vector (hash)
//! libriassist:v1:{corpus}:{model}:semindex:{embedder}          vectors of the scope by age (zset)
//! libriassist:stream:v1                                        what replicas must learn (stream)
//! ```
//!
//! Segments are escaped so that a corpus version or model name can never reach into another
//! scope's keys or act as a glob in the purge patterns: the corpus segment may not contain `:`,
//! and no segment may contain a glob character.

use libriassist_protocol::{CacheKey, KEY_VERSION};
use std::sync::Arc;

/// The corpus and the model an answer was produced with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub corpus_version: String,
    pub model: String,
}

/// The current scope, read per request: the knowledge base may swap in a new corpus version
/// while the process runs.
#[derive(Clone)]
pub struct ScopeSource {
    model: String,
    corpus_version: Arc<dyn Fn() -> String + Send + Sync>,
}

impl ScopeSource {
    pub fn new(
        model: impl Into<String>,
        corpus_version: Arc<dyn Fn() -> String + Send + Sync>,
    ) -> Self {
        ScopeSource {
            model: model.into(),
            corpus_version,
        }
    }

    /// A fixed corpus version (tests, or a service without a knowledge base).
    pub fn fixed(model: impl Into<String>, corpus_version: impl Into<String>) -> Self {
        let version: String = corpus_version.into();
        ScopeSource::new(model, Arc::new(move || version.clone()))
    }

    pub fn current(&self) -> Scope {
        Scope {
            corpus_version: (self.corpus_version)(),
            model: self.model.clone(),
        }
    }
}

impl std::fmt::Debug for ScopeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopeSource")
            .field("scope", &self.current())
            .finish()
    }
}

/// Corpus version of answers produced without a knowledge base.
pub const NO_CORPUS: &str = "none";

/// The stream replicas read to learn new semantic entries and purges. Outside the entry
/// namespace so that purging every entry does not delete it under the readers.
pub const STREAM: &str = "libriassist:stream:v1";

fn namespace() -> String {
    format!("libriassist:v{KEY_VERSION}:")
}

impl Scope {
    fn prefix(&self) -> String {
        format!(
            "{}{}:{}:",
            namespace(),
            escape(&self.corpus_version, false),
            escape(&self.model, true)
        )
    }

    pub fn exact(&self, key: &CacheKey) -> String {
        format!("{}{key}", self.prefix())
    }

    pub fn semantic_entry(&self, embedder: &str, key: &str) -> String {
        format!("{}sem:{}:{key}", self.prefix(), escape(embedder, true))
    }

    pub fn semantic_index(&self, embedder: &str) -> String {
        format!("{}semindex:{}", self.prefix(), escape(embedder, true))
    }
}

/// `SCAN MATCH` patterns of the admin purges.
pub fn all_pattern() -> String {
    format!("{}*", namespace())
}

pub fn corpus_pattern(corpus_version: &str) -> String {
    format!("{}{}:*", namespace(), escape(corpus_version, false))
}

pub fn key_pattern(key: &CacheKey) -> String {
    format!("{}*:{key}", namespace())
}

/// Percent-escapes everything but a conservative set; `:` is kept only where allowed (model
/// names like `mistral:7b` read better unescaped, and nothing matches on that segment's end).
fn escape(segment: &str, keep_colon: bool) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        let safe = b.is_ascii_alphanumeric()
            || matches!(b, b'.' | b'_' | b'-' | b'+')
            || (keep_colon && b == b':');
        if safe {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push('%');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CacheKey {
        libriassist_protocol::cache_key(&libriassist_protocol::ChatRequest {
            question: "Quels formats ?".into(),
            history: vec![],
            session_id: None,
        })
    }

    #[test]
    fn layout() {
        let scope = Scope {
            corpus_version: "2026-11-27.1".into(),
            model: "mistral:7b-instruct-q4_0".into(),
        };
        let k = key();
        assert_eq!(
            scope.exact(&k),
            format!("libriassist:v1:2026-11-27.1:mistral:7b-instruct-q4_0:{k}")
        );
        assert_eq!(
            scope.semantic_entry("multilingual-e5-small-q4", k.as_str()),
            format!("libriassist:v1:2026-11-27.1:mistral:7b-instruct-q4_0:sem:multilingual-e5-small-q4:{k}")
        );
        assert_eq!(
            corpus_pattern("2026-11-27.1"),
            "libriassist:v1:2026-11-27.1:*"
        );
        assert_eq!(key_pattern(&k), format!("libriassist:v1:*:{k}"));
    }

    #[test]
    fn a_corpus_version_cannot_reach_into_another_scope_or_glob() {
        let sneaky = Scope {
            corpus_version: "a:b".into(),
            model: "m*".into(),
        };
        let k = key();
        assert!(sneaky.exact(&k).starts_with("libriassist:v1:a%3Ab:m%2A:"));
        assert_eq!(corpus_pattern("*"), "libriassist:v1:%2A:*");
        assert_eq!(corpus_pattern(""), "libriassist:v1:%:*");
        // The "a" corpus pattern does not match the "a:b" corpus's keys.
        assert!(!sneaky.exact(&k).starts_with("libriassist:v1:a:"));
    }
}
