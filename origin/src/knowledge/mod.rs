//! The knowledge base: the bookstore's own documents, cut into passages, indexed twice (BM25 over
//! French words, and embedding vectors) and searched with both, so that answers can be grounded
//! on numbered passages and carry their sources.
//!
//! One concern per file, in the order data flows:
//! - `documents.rs` reads Markdown, plain text, HTML and JSON Lines FAQ files into documents;
//! - `chunk.rs` cuts documents into passages along headings and paragraphs, with overlap;
//! - `ingest.rs` embeds the passages and writes a new index version (`libriassist ingest`);
//! - `manifest.rs` and `index.rs` define the on-disk index, its atomic pointer swap and loading;
//! - `bm25.rs`, `dense.rs` and `fuse.rs` are the two searches and their reciprocal rank fusion;
//! - `retriever.rs` is the one search entry point, with the minimum-relevance rule;
//! - `live.rs` holds the index a server answers from and swaps it on reload;
//! - `eval.rs` and `bench.rs` measure retrieval quality and speed (`libriassist eval|bench`).
//!
//! Not here: prompting and answering (`pipeline/`), the embedding model itself (`embed.rs`).

pub mod bench;
pub mod bm25;
pub mod chunk;
pub mod commands;
pub mod config;
pub mod dense;
pub mod documents;
pub mod eval;
pub mod fuse;
pub mod index;
pub mod ingest;
pub mod live;
pub mod manifest;
pub mod retriever;

use crate::embed::EmbedError;
use std::path::PathBuf;

pub use chunk::{Chunk, ChunkSettings};
pub use documents::Document;
pub use index::LoadedIndex;
pub use live::KnowledgeBase;
pub use manifest::Manifest;
pub use retriever::{Hit, Method, RetrievalSettings, Retriever};

/// Everything that can go wrong building, loading or searching an index. Messages name the
/// file and, where there is one, the fix: they are shown as is by the CLI and at start-up.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}{}: {message}", .path.display(), .line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Parse {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("{}: unsupported file type (expected .md, .markdown, .txt, .html, .htm or .jsonl)", .0.display())]
    Unsupported(PathBuf),
    #[error("document id {id:?} appears twice: in {} and in {}", .first.display(), .second.display())]
    DuplicateId {
        id: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("the inputs contain no text to index")]
    EmptyCorpus,
    #[error("no index in {}: build one with `libriassist ingest --input PATH... --out {}`", .0.display(), .0.display())]
    NoIndex(PathBuf),
    #[error("index in {} is unusable ({reason}); rebuild it with `libriassist ingest`", .dir.display())]
    Corrupt { dir: PathBuf, reason: String },
    #[error(
        "index in {} was built with embedding model {index_model} ({index_dimensions} dimensions) but \
         the loaded model is {model} ({dimensions} dimensions); rebuild it with `libriassist ingest`",
        .dir.display()
    )]
    ModelMismatch {
        dir: PathBuf,
        index_model: String,
        index_dimensions: usize,
        model: String,
        dimensions: usize,
    },
    #[error("full-text index error: {0}")]
    FullText(String),
    #[error("invalid settings: {0}")]
    Settings(String),
    #[error(transparent)]
    Embed(#[from] EmbedError),
}

impl From<tantivy::TantivyError> for KnowledgeError {
    fn from(e: tantivy::TantivyError) -> Self {
        KnowledgeError::FullText(e.to_string())
    }
}
