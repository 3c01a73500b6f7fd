//! The one search entry point: a question in, the passages to ground the answer on out.
//!
//! Hybrid search takes the best `candidates` passages of each search (BM25 and dense), fuses
//! them (`fuse.rs`), and keeps the `top_k` best. Then the minimum-relevance rule drops
//! every passage whose cosine with the question is under `min_relevance`: fusion always
//! returns *something*, so without an absolute floor an off-topic question ("Quel temps fait-il
//! à Lyon ?") would be answered from the least irrelevant passage. With no passage left, the
//! pipeline says it does not know instead of letting the model invent. The cosine is the floor
//! because it is comparable across questions; BM25 scores depend on the question's length and
//! words. The threshold is calibrated in `docs/EVALUATION.md`.

use super::fuse::Fusion;
use super::index::LoadedIndex;
use super::KnowledgeError;
use crate::embed::Embedder;
use std::sync::Arc;
use std::time::Instant;

/// Which search to run; evaluations compare all three, the service uses `Hybrid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Bm25,
    Dense,
    Hybrid,
}

impl Method {
    pub const ALL: [Method; 3] = [Method::Bm25, Method::Dense, Method::Hybrid];

    pub const fn name(self) -> &'static str {
        match self {
            Method::Bm25 => "bm25",
            Method::Dense => "dense",
            Method::Hybrid => "hybrid",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetrievalSettings {
    /// Passages kept for the prompt.
    pub top_k: usize,
    /// Depth of each list before fusion.
    pub candidates: usize,
    /// Lowest cosine between question and passage for the passage to be used.
    pub min_relevance: f32,
    pub fusion: Fusion,
}

impl Default for RetrievalSettings {
    fn default() -> Self {
        RetrievalSettings {
            top_k: 4,
            candidates: 100,
            min_relevance: 0.84,
            fusion: Fusion::default(),
        }
    }
}

/// One retrieved passage.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Passage number in the index.
    pub ord: u32,
    /// The method's own score: BM25 score, cosine, or the fused score mapped into (0, 1]
    /// ([`Fusion::normalize`]).
    pub score: f32,
    /// Cosine with the question, when a question vector was given.
    pub cosine: Option<f32>,
}

/// Ranks passages for `question` (and its vector, needed by `Dense` and `Hybrid`), best
/// first, at most `settings.top_k`. No relevance floor is applied here.
///
/// # Errors
/// A BM25 failure, or a missing vector for a method that needs one.
pub fn search(
    index: &LoadedIndex,
    question: &str,
    vector: Option<&[f32]>,
    method: Method,
    settings: &RetrievalSettings,
) -> Result<Vec<Hit>, KnowledgeError> {
    let need_vector = || {
        vector.ok_or_else(|| {
            KnowledgeError::Settings(format!("{} search needs a question vector", method.name()))
        })
    };
    let cosine = |ord: u32| vector.and_then(|v| index.dense.score(v, ord as usize));
    let hits = match method {
        Method::Bm25 => index
            .bm25
            .search(question, settings.top_k)?
            .into_iter()
            .map(|(ord, score)| Hit {
                ord,
                score,
                cosine: cosine(ord),
            })
            .collect(),
        Method::Dense => index
            .dense
            .search(need_vector()?, settings.top_k)
            .into_iter()
            .map(|(ord, score)| Hit {
                ord,
                score,
                cosine: Some(score),
            })
            .collect(),
        Method::Hybrid => {
            let v = need_vector()?;
            let depth = settings.candidates.max(settings.top_k);
            let lexical = index.bm25.search(question, depth)?;
            let dense = index.dense.search(v, depth);
            settings
                .fusion
                .fuse(&lexical, &dense, |ord| index.document_of(ord))
                .into_iter()
                .take(settings.top_k)
                .map(|(ord, fused)| Hit {
                    ord,
                    score: settings.fusion.normalize(fused),
                    cosine: cosine(ord),
                })
                .collect()
        }
    };
    Ok(hits)
}

/// The result of [`Retriever::retrieve`].
#[derive(Debug, Clone)]
pub struct Retrieval {
    /// Passages that passed the relevance floor, best first; empty means "not in our documents".
    pub hits: Vec<Hit>,
    /// Cosine of the best passage before the floor: why an empty result was empty.
    pub best_cosine: Option<f32>,
    pub embed_ms: f64,
    pub search_ms: f64,
}

/// Embeds questions and runs the hybrid search with the relevance floor.
#[derive(Clone)]
pub struct Retriever {
    embedder: Embedder,
    settings: RetrievalSettings,
}

impl Retriever {
    pub fn new(embedder: Embedder, settings: RetrievalSettings) -> Retriever {
        Retriever { embedder, settings }
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    pub fn settings(&self) -> &RetrievalSettings {
        &self.settings
    }

    /// The passages of `index` to answer `question` from. `known` is the question's vector
    /// when an earlier stage already embedded it, with the id of the model that did: it is
    /// used if that is this retriever's model, saving a second embedding of the question.
    ///
    /// # Errors
    /// The question cannot be embedded, or the search failed.
    pub async fn retrieve(
        &self,
        index: Arc<LoadedIndex>,
        question: &str,
        known: Option<(&[f32], &str)>,
    ) -> Result<Retrieval, KnowledgeError> {
        let started = Instant::now();
        let vector = match known {
            Some((vector, model)) if model == self.embedder.model_id() => vector.to_vec(),
            _ => self.embedder.embed_query(question).await?,
        };
        let embed_ms = started.elapsed().as_secs_f64() * 1e3;
        let settings = self.settings.clone();
        let question = question.to_owned();
        // A scan of a large index takes milliseconds of CPU: keep it off the async workers.
        let searched = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let hits = search(&index, &question, Some(&vector), Method::Hybrid, &settings);
            (hits, started.elapsed().as_secs_f64() * 1e3)
        })
        .await
        .map_err(|e| KnowledgeError::FullText(format!("search task failed: {e}")))?;
        let (hits, search_ms) = (searched.0?, searched.1);
        let best_cosine = hits.iter().filter_map(|h| h.cosine).reduce(f32::max);
        let hits = apply_floor(hits, self.settings.min_relevance);
        Ok(Retrieval {
            hits,
            best_cosine,
            embed_ms,
            search_ms,
        })
    }
}

/// Keeps the hits whose cosine reaches `min_relevance`, in their order.
pub fn apply_floor(hits: Vec<Hit>, min_relevance: f32) -> Vec<Hit> {
    hits.into_iter()
        .filter(|h| h.cosine.is_some_and(|c| c >= min_relevance))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::bm25::Analyzer;
    use crate::knowledge::chunk::Chunk;
    use crate::knowledge::dense::DenseIndex;

    fn index() -> LoadedIndex {
        let texts = [
            "livraison gratuite dès 35 euros",
            "paiement par carte bancaire",
            "livres numériques au format EPUB",
        ];
        let chunks: Vec<Chunk> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| Chunk {
                id: format!("c{i}"),
                doc_id: format!("c{i}"),
                title: String::new(),
                url: None,
                heading: None,
                text: (*t).to_owned(),
            })
            .collect();
        let rows = vec![
            vec![1.0, 0.0, 0.0],
            vec![0.0, 1.0, 0.0],
            vec![0.0, 0.0, 1.0],
        ];
        LoadedIndex::in_memory(
            chunks,
            DenseIndex::from_rows(3, &rows).unwrap(),
            Analyzer::FrenchFolded,
            "m",
            3,
        )
        .unwrap()
    }

    #[test]
    fn methods_and_the_floor() {
        let index = index();
        // Reciprocal ranks: with a single BM25 match, z-scores see nothing stand out in that list.
        let settings = RetrievalSettings {
            top_k: 2,
            fusion: Fusion {
                method: crate::knowledge::fuse::FusionMethod::Rrf,
                ..Fusion::default()
            },
            ..RetrievalSettings::default()
        };
        let v = [0.6f32, 0.0, 0.8];
        let bm25 = search(&index, "livraison", Some(&v), Method::Bm25, &settings).unwrap();
        assert_eq!(bm25.iter().map(|h| h.ord).collect::<Vec<_>>(), [0]);
        assert!((bm25[0].cosine.unwrap() - 0.6).abs() < 1e-6);
        let dense = search(&index, "livraison", Some(&v), Method::Dense, &settings).unwrap();
        assert_eq!(dense.iter().map(|h| h.ord).collect::<Vec<_>>(), [2, 0]);
        let hybrid = search(&index, "livraison", Some(&v), Method::Hybrid, &settings).unwrap();
        // 0 is in both lists, 2 only in the dense one.
        assert_eq!(hybrid.iter().map(|h| h.ord).collect::<Vec<_>>(), [0, 2]);
        assert!(hybrid[0].score <= 1.0 && hybrid[0].score > hybrid[1].score);
        let kept = apply_floor(hybrid, 0.7);
        assert_eq!(kept.iter().map(|h| h.ord).collect::<Vec<_>>(), [2]);
        assert!(search(&index, "x", None, Method::Dense, &settings).is_err());
        assert!(
            search(&index, "livraison", None, Method::Bm25, &settings).unwrap()[0]
                .cosine
                .is_none()
        );
    }
}
