//! `libriassist ingest`: documents in, a new published index version out.
//!
//! Steps: read and chunk every input, compute the corpus version, and stop there if the
//! version being served already is that corpus (nothing to embed). Otherwise embed the passages
//! in batches behind a progress bar, write a new version directory, load it back with full
//! verification, and only then swap `CURRENT` to it. Any failure before the swap (unreadable
//! file, empty corpus, embedding error, full disk) leaves the served index untouched.

use super::bm25::Analyzer;
use super::chunk::{chunk_document, Chunk, ChunkSettings};
use super::dense::DenseIndex;
use super::documents::read_inputs;
use super::index::{self, NewVersion};
use super::manifest::corpus_version;
use super::KnowledgeError;
use crate::embed::Embedder;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub inputs: Vec<PathBuf>,
    pub out: PathBuf,
    pub chunking: ChunkSettings,
    pub analyzer: Analyzer,
    /// Passages per embedding call.
    pub batch: usize,
    /// Old versions kept besides the current one, for a quick rollback.
    pub keep_versions: usize,
    /// Draw a progress bar on stderr (when it is a terminal).
    pub progress: bool,
}

/// What an ingest did; printed by the CLI as JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestReport {
    pub version: String,
    pub corpus_version: String,
    /// True when the inputs give the corpus already served: nothing was rebuilt.
    pub unchanged: bool,
    pub documents: usize,
    pub chunks: usize,
    pub model_id: String,
    pub embed_seconds: f64,
    pub passages_per_second: f64,
    pub total_seconds: f64,
}

/// Documents and passages of the inputs.
///
/// # Errors
/// As [`read_inputs`], and [`KnowledgeError::EmptyCorpus`] when they hold no text.
pub fn chunk_inputs(
    inputs: &[PathBuf],
    chunking: &ChunkSettings,
) -> Result<(usize, Vec<Chunk>), KnowledgeError> {
    chunking.validate().map_err(KnowledgeError::Settings)?;
    let documents = read_inputs(inputs)?;
    let chunks: Vec<Chunk> = documents
        .iter()
        .flat_map(|d| chunk_document(d, chunking))
        .collect();
    if chunks.is_empty() {
        return Err(KnowledgeError::EmptyCorpus);
    }
    Ok((documents.len(), chunks))
}

/// Builds and publishes an index of `options.inputs` in `options.out`. Blocking.
///
/// # Errors
/// Any failure; the index previously published in `options.out` (if any) is then still the
/// one `CURRENT` names.
pub fn ingest(
    options: &IngestOptions,
    embedder: &Embedder,
) -> Result<IngestReport, KnowledgeError> {
    let started = Instant::now();
    let (documents, chunks) = chunk_inputs(&options.inputs, &options.chunking)?;
    let version = corpus_version(
        &chunks,
        &options.chunking,
        options.analyzer,
        embedder.model_id(),
    );
    let report = |name: String, unchanged: bool, embed_seconds: f64| IngestReport {
        version: name,
        corpus_version: version.clone(),
        unchanged,
        documents,
        chunks: chunks.len(),
        model_id: embedder.model_id().to_owned(),
        embed_seconds,
        passages_per_second: if embed_seconds > 0.0 {
            chunks.len() as f64 / embed_seconds
        } else {
            0.0
        },
        total_seconds: started.elapsed().as_secs_f64(),
    };
    if let Ok(Some(current)) = index::current_version(&options.out) {
        // Only a version that still loads cleanly counts as up to date; a damaged one is rebuilt.
        let same = index::read_manifest(&options.out, &current)
            .is_ok_and(|m| m.corpus_version == version)
            && index::load_version(&options.out, &current).is_ok();
        if same {
            tracing::info!(version = %current, "index already up to date");
            return Ok(report(current, true, 0.0));
        }
    }

    let embed_started = Instant::now();
    let vectors = embed_all(&chunks, embedder, options.batch, options.progress)?;
    let embed_seconds = embed_started.elapsed().as_secs_f64();
    let dense = DenseIndex::from_rows(embedder.dimensions(), &vectors).map_err(|reason| {
        KnowledgeError::Corrupt {
            dir: options.out.clone(),
            reason,
        }
    })?;
    let new = NewVersion {
        chunks: &chunks,
        vectors: &dense,
        documents,
        corpus_version: &version,
        model_id: embedder.model_id(),
        analyzer: options.analyzer,
        chunking: options.chunking,
    };
    let name = index::write_version(&options.out, &new)?;
    // Publish only what loads: the same checks a server runs at start-up.
    index::load_version(&options.out, &name)?;
    index::swap_pointer(&options.out, &name)?;
    match index::prune(&options.out, options.keep_versions) {
        Ok(removed) if !removed.is_empty() => {
            tracing::info!(?removed, "old index versions removed")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot prune old index versions"),
    }
    Ok(report(name, false, embed_seconds))
}

fn embed_all(
    chunks: &[Chunk],
    embedder: &Embedder,
    batch: usize,
    progress: bool,
) -> Result<Vec<Vec<f32>>, KnowledgeError> {
    let batch = batch.max(1);
    let bar = ProgressBar::with_draw_target(
        Some(chunks.len() as u64),
        if progress {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} passages, {per_sec}, ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message("embedding");
    let mut vectors = Vec::with_capacity(chunks.len());
    for group in chunks.chunks(batch) {
        let texts: Vec<String> = group.iter().map(Chunk::indexed_text).collect();
        vectors.extend(embedder.embed_passages_blocking(&texts, batch)?);
        bar.inc(group.len() as u64);
    }
    bar.finish_and_clear();
    Ok(vectors)
}
