//! The `[index]` and `[embedding]` sections of the configuration, and their command-line and
//! environment overrides (`libriassist serve --help` lists them).

use super::fuse::{Fusion, FusionMethod};
use super::retriever::RetrievalSettings;
use crate::embed::EmbeddingConfig;
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IndexConfig {
    /// Index directory built by `libriassist ingest`. Unset: no knowledge base, answers are not
    /// grounded and there is no extractive fallback.
    pub dir: Option<PathBuf>,
    /// Passages given to the model.
    pub top_k: usize,
    /// Passages taken from each search (BM25, vectors) before fusion.
    pub candidates: usize,
    /// Lowest cosine between question and passage for the passage to be used; with none
    /// left, the answer is `no_answer`. Calibrated in docs/EVALUATION.md.
    pub min_relevance: f32,
    /// How the BM25 and vector rankings are fused: `zscore` or `rrf`.
    pub fusion: FusionMethod,
    /// Reciprocal rank fusion constant (`rrf` only).
    pub rrf_k: f32,
    pub bm25_weight: f32,
    pub dense_weight: f32,
    /// Passages quoted by an extractive answer (when no language model can answer).
    pub extractive_passages: usize,
    /// The answer when no passage is relevant enough.
    pub no_answer: String,
}

pub const DEFAULT_NO_ANSWER: &str = "Je ne trouve pas cette information dans nos documents, et je préfère \
ne pas vous répondre au hasard. Vous pouvez reformuler votre question ou contacter notre service client, \
qui vous répondra avec plaisir.";

impl Default for IndexConfig {
    fn default() -> Self {
        let r = RetrievalSettings::default();
        IndexConfig {
            dir: None,
            top_k: r.top_k,
            candidates: r.candidates,
            min_relevance: r.min_relevance,
            fusion: r.fusion.method,
            rrf_k: r.fusion.k,
            bm25_weight: r.fusion.bm25_weight,
            dense_weight: r.fusion.dense_weight,
            extractive_passages: 1,
            no_answer: DEFAULT_NO_ANSWER.into(),
        }
    }
}

impl IndexConfig {
    pub fn retrieval(&self) -> RetrievalSettings {
        RetrievalSettings {
            top_k: self.top_k,
            candidates: self.candidates,
            min_relevance: self.min_relevance,
            fusion: Fusion {
                method: self.fusion,
                k: self.rrf_k,
                bm25_weight: self.bm25_weight,
                dense_weight: self.dense_weight,
            },
        }
    }

    /// # Errors
    /// A value out of range, as a message naming the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.top_k == 0 || self.top_k > 50 {
            return Err("index.top_k must be between 1 and 50".into());
        }
        if self.candidates < self.top_k {
            return Err("index.candidates must be at least index.top_k".into());
        }
        if !(-1.0..=1.0).contains(&self.min_relevance) {
            return Err("index.min_relevance is a cosine: between -1 and 1".into());
        }
        if !(self.rrf_k >= 0.0 && self.rrf_k.is_finite()) {
            return Err("index.rrf_k must be a non-negative number".into());
        }
        let weight_ok = |w: f32| w.is_finite() && w >= 0.0;
        if !weight_ok(self.bm25_weight)
            || !weight_ok(self.dense_weight)
            || self.bm25_weight + self.dense_weight == 0.0
        {
            return Err(
                "index.bm25_weight and index.dense_weight must be non-negative, not both 0".into(),
            );
        }
        if self.extractive_passages == 0 {
            return Err("index.extractive_passages must be at least 1".into());
        }
        if self.no_answer.trim().is_empty() {
            return Err("index.no_answer must not be empty".into());
        }
        Ok(())
    }

    pub fn apply(&mut self, o: &KnowledgeOverrides) {
        if o.index.is_some() {
            self.dir.clone_from(&o.index);
        }
        if let Some(k) = o.retrieval_top_k {
            self.top_k = k;
        }
        if let Some(m) = o.min_relevance {
            self.min_relevance = m;
        }
    }
}

/// Applies the embedding overrides to the `[embedding]` section.
pub fn apply_embedding(embedding: &mut EmbeddingConfig, o: &KnowledgeOverrides) {
    if let Some(dir) = &o.model_dir {
        embedding.model_dir.clone_from(dir);
    }
    if let Some(lib) = &o.ort_library {
        embedding.ort_library.clone_from(lib);
    }
    if let Some(threads) = o.embedding_threads {
        embedding.threads = threads;
    }
}

/// Overrides of the `[index]` and `[embedding]` sections.
#[derive(Debug, Clone, Default, Args)]
pub struct KnowledgeOverrides {
    /// Index directory built by `libriassist ingest` (unset: answers are not grounded).
    #[arg(long, env = "LIBRIASSIST_INDEX")]
    pub index: Option<PathBuf>,
    /// Passages given to the model [default: 4].
    #[arg(long, env = "LIBRIASSIST_RETRIEVAL_TOP_K")]
    pub retrieval_top_k: Option<usize>,
    /// Lowest question-passage cosine for a passage to be used [default: see `libriassist config`].
    #[arg(long, env = "LIBRIASSIST_MIN_RELEVANCE")]
    pub min_relevance: Option<f32>,
    /// Embedding model directory [default: $LIBRIASSIST_CACHE/models/multilingual-e5-small-q4].
    #[arg(long, env = "LIBRIASSIST_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
    /// ONNX Runtime library [default: $LIBRIASSIST_CACHE/onnxruntime/libonnxruntime.so.1.31.1].
    #[arg(long, env = "LIBRIASSIST_ORT_LIBRARY")]
    pub ort_library: Option<PathBuf>,
    /// Threads per embedding session; 0 = one per core [default: 0].
    #[arg(long, env = "LIBRIASSIST_EMBEDDING_THREADS")]
    pub embedding_threads: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_overrides_apply() {
        let mut c = IndexConfig::default();
        assert!(c.validate().is_ok());
        let o = KnowledgeOverrides {
            index: Some("/srv/index".into()),
            retrieval_top_k: Some(6),
            min_relevance: Some(0.5),
            model_dir: Some("/m".into()),
            ort_library: None,
            embedding_threads: Some(2),
        };
        c.apply(&o);
        assert_eq!(
            (c.dir.as_deref(), c.top_k, c.min_relevance),
            (Some(std::path::Path::new("/srv/index")), 6, 0.5)
        );
        let mut e = EmbeddingConfig {
            model_dir: "/a".into(),
            ort_library: "/lib".into(),
            threads: 0,
        };
        apply_embedding(&mut e, &o);
        assert_eq!(
            (e.model_dir.to_str(), e.ort_library.to_str(), e.threads),
            (Some("/m"), Some("/lib"), 2)
        );
    }

    #[test]
    fn nonsense_is_refused() {
        let bad = [
            IndexConfig {
                top_k: 0,
                ..IndexConfig::default()
            },
            IndexConfig {
                candidates: 1,
                ..IndexConfig::default()
            },
            IndexConfig {
                min_relevance: 1.5,
                ..IndexConfig::default()
            },
            IndexConfig {
                rrf_k: f32::NAN,
                ..IndexConfig::default()
            },
            IndexConfig {
                bm25_weight: 0.0,
                dense_weight: 0.0,
                ..IndexConfig::default()
            },
            IndexConfig {
                no_answer: " ".into(),
                ..IndexConfig::default()
            },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }
}
