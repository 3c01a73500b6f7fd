//! The knowledge-base subcommands of `libriassist`: their arguments and thin calls into
//! `ingest.rs`, `eval.rs` and `bench.rs`. Results go to stdout (JSON or Markdown), progress
//! and logs to stderr.

use super::bm25::Analyzer;
use super::chunk::ChunkSettings;
use super::eval::{self, Dataset, EvalOptions};
use super::ingest::{ingest, IngestOptions};
use super::{bench, KnowledgeError};
use crate::config::{Config, Overrides};
use crate::embed::{Embedder, EmbeddingConfig};
use crate::knowledge::config::KnowledgeOverrides;
use clap::Args;
use std::path::PathBuf;

/// Which embedding model to use: the same flags, variables and `[embedding]` section as `serve`,
/// so an index is built with the model that will search it.
#[derive(Debug, Clone, Default, Args)]
pub struct EmbeddingArgs {
    /// TOML configuration file (its `[embedding]` section).
    #[arg(long, env = "LIBRIASSIST_CONFIG")]
    pub config: Option<PathBuf>,
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

impl EmbeddingArgs {
    /// # Errors
    /// An unreadable or invalid configuration file.
    pub fn resolve(&self) -> Result<EmbeddingConfig, String> {
        let overrides = Overrides {
            config: self.config.clone(),
            knowledge: KnowledgeOverrides {
                model_dir: self.model_dir.clone(),
                ort_library: self.ort_library.clone(),
                embedding_threads: self.embedding_threads,
                ..KnowledgeOverrides::default()
            },
            ..Overrides::default()
        };
        Config::load(&overrides)
            .map(|c| c.embedding)
            .map_err(|e| e.to_string())
    }

    fn load(&self) -> Result<Embedder, String> {
        Embedder::load(&self.resolve()?).map_err(|e| e.to_string())
    }
}

fn parse_analyzer(s: &str) -> Result<Analyzer, String> {
    match s {
        "french" => Ok(Analyzer::French),
        "french-folded" => Ok(Analyzer::FrenchFolded),
        _ => Err("expected french or french-folded".into()),
    }
}

#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    /// Documents to index: files or directories (.md, .txt, .html, .jsonl FAQ); repeatable.
    #[arg(long = "input", required = true, num_args = 1..)]
    pub inputs: Vec<PathBuf>,
    /// Index directory: a new version is written under it, then made current.
    #[arg(long, env = "LIBRIASSIST_INDEX")]
    pub out: PathBuf,
    /// Longest passage, in characters.
    #[arg(long, default_value_t = ChunkSettings::default().max_chars)]
    pub max_chars: usize,
    /// Characters repeated from the previous passage of a section.
    #[arg(long, default_value_t = ChunkSettings::default().overlap_chars)]
    pub overlap_chars: usize,
    /// BM25 analyzer: french, or french-folded (accents stripped after stemming).
    #[arg(long, default_value = "french-folded", value_parser = parse_analyzer)]
    pub analyzer: Analyzer,
    /// Passages per embedding call.
    #[arg(long, default_value_t = crate::embed::DEFAULT_BATCH)]
    pub batch: usize,
    /// Previous versions kept for rollback.
    #[arg(long, default_value_t = 2)]
    pub keep: usize,
    #[command(flatten)]
    pub embedding: EmbeddingArgs,
}

/// `libriassist ingest`: prints the report as JSON.
///
/// # Errors
/// Any failure, as a message; the previous index (if any) is still current.
pub fn run_ingest(args: IngestArgs) -> Result<(), String> {
    let chunking = ChunkSettings {
        max_chars: args.max_chars,
        overlap_chars: args.overlap_chars,
    };
    chunking.validate()?;
    // Reading the documents first reports a bad input before the model's second of loading.
    super::ingest::chunk_inputs(&args.inputs, &chunking).map_err(|e| e.to_string())?;
    let embedder = args.embedding.load()?;
    let options = IngestOptions {
        inputs: args.inputs,
        out: args.out,
        chunking,
        analyzer: args.analyzer,
        batch: args.batch,
        keep_versions: args.keep,
        progress: true,
    };
    let report = ingest(&options, &embedder).map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    Ok(())
}

#[derive(Debug, Clone, Args)]
pub struct EvalRetrievalArgs {
    /// service-public (105 questions, 535 fiches), piaf (3835 questions, 761 paragraphs) or faq
    /// (the example corpus, with off-topic questions for the relevance floor).
    #[arg(long, value_enum)]
    pub dataset: Dataset,
    /// Shared data directory holding service-public-qr/ and piaf-v1.0/.
    #[arg(long, default_value = "../shared/data")]
    pub data_dir: PathBuf,
    /// The repository's examples/ directory (faq data set).
    #[arg(long, default_value = "examples")]
    pub examples_dir: PathBuf,
    /// Evaluate on this many questions, drawn with --seed (default: all).
    #[arg(long)]
    pub sample: Option<usize>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where passage and question vectors are cached between runs.
    #[arg(long, default_value = "target/eval-cache")]
    pub cache_dir: PathBuf,
    /// Also tune the fusion on a dev half and report it on the test half.
    #[arg(long)]
    pub tune: bool,
    /// Fusion of the "hybrid" row, and its settings below [default: the service's].
    #[arg(long, value_enum)]
    pub fusion: Option<super::fuse::FusionMethod>,
    #[arg(long)]
    pub rrf_k: Option<f32>,
    #[arg(long)]
    pub bm25_weight: Option<f32>,
    #[arg(long)]
    pub dense_weight: Option<f32>,
    /// Print JSON instead of Markdown.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub embedding: EmbeddingArgs,
}

/// `libriassist eval retrieval`.
///
/// # Errors
/// Missing data (with the path), or any failure, as a message.
pub async fn run_eval(args: EvalRetrievalArgs) -> Result<(), String> {
    let embedder = args.embedding.load()?;
    let defaults = super::fuse::Fusion::default();
    let options = EvalOptions {
        dataset: args.dataset,
        data_dir: args.data_dir,
        examples_dir: args.examples_dir,
        sample: args.sample,
        seed: args.seed,
        cache_dir: args.cache_dir,
        chunking: ChunkSettings::default(),
        tune: args.tune,
        fusion: super::fuse::Fusion {
            method: args.fusion.unwrap_or(defaults.method),
            k: args.rrf_k.unwrap_or(defaults.k),
            bm25_weight: args.bm25_weight.unwrap_or(defaults.bm25_weight),
            dense_weight: args.dense_weight.unwrap_or(defaults.dense_weight),
        },
    };
    let report = eval::run(&options, &embedder)
        .await
        .map_err(|e: KnowledgeError| e.to_string())?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", eval::to_markdown(&report));
    }
    Ok(())
}

#[derive(Debug, Clone, Args)]
pub struct BenchRetrievalArgs {
    /// Corpus ingested and searched (files or directories).
    #[arg(long = "corpus", default_value = "examples/faq-librairie.jsonl")]
    pub corpus: Vec<PathBuf>,
    /// Questions timed: JSON Lines with a "question" field.
    #[arg(long, default_value = "examples/faq-questions.jsonl")]
    pub questions: PathBuf,
    /// Passages of the synthetic corpus; 0 skips it.
    #[arg(long, default_value_t = 100_000)]
    pub synthetic: usize,
    /// Times each question is searched on the example corpus (a tenth of it on the synthetic one).
    #[arg(long, default_value_t = 20)]
    pub repeats: usize,
    /// Scratch directory, removed afterwards.
    #[arg(long, default_value = "target/bench-retrieval")]
    pub work_dir: PathBuf,
    /// Print JSON instead of Markdown.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub embedding: EmbeddingArgs,
}

/// `libriassist bench retrieval`.
///
/// # Errors
/// Any failure, as a message.
pub async fn run_bench(args: BenchRetrievalArgs) -> Result<(), String> {
    let embedding = args.embedding.resolve()?;
    let options = bench::BenchOptions {
        corpus: args.corpus,
        questions: args.questions,
        synthetic: args.synthetic,
        repeats: args.repeats,
        work_dir: args.work_dir,
    };
    let report = bench::run(&options, &embedding)
        .await
        .map_err(|e| e.to_string())?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", bench::to_markdown(&report));
    }
    Ok(())
}
