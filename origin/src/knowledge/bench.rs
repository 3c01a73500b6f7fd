//! `libriassist bench retrieval`: the speed and size of the knowledge base, measured in one run
//! so the numbers are comparable: model load, ingest throughput, query embedding latency,
//! search latency (BM25, vectors, hybrid; without the query embedding) on the example corpus and
//! on a synthetic corpus of N passages, index size on disk and process memory.
//!
//! The synthetic corpus reuses the example's vocabulary (words drawn with a Zipf-like law, 80
//! to 160 per passage) and perturbed copies of its real passage vectors: embedding 100k real
//! passages would take an hour on two cores and would not change what is timed, a full scan of
//! the matrix and the BM25 posting lists of the question's terms.

use super::bm25::Analyzer;
use super::chunk::{Chunk, ChunkSettings};
use super::dense::DenseIndex;
use super::index::{self, LoadedIndex, NewVersion};
use super::ingest::{ingest, IngestOptions};
use super::retriever::{search, Method, RetrievalSettings};
use super::KnowledgeError;
use crate::embed::{Embedder, EmbeddingConfig};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub corpus: Vec<PathBuf>,
    /// JSON Lines of `{"question": ...}`: the questions timed.
    pub questions: PathBuf,
    /// Passages of the synthetic corpus (0: skip it).
    pub synthetic: usize,
    /// Times each question is searched.
    pub repeats: usize,
    /// Scratch directory for the indexes built (removed at the end).
    pub work_dir: PathBuf,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub samples: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct CorpusBench {
    pub passages: usize,
    pub build_seconds: f64,
    pub load_seconds: f64,
    pub index_bytes: u64,
    pub rss_after_load_mib: f64,
    pub bm25: Latency,
    pub dense: Latency,
    pub hybrid: Latency,
    /// The vector search without its 8-bit shortlist (full f32 scan), for comparison.
    pub dense_exact: Latency,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub model_id: String,
    pub threads: usize,
    pub cores: usize,
    pub model_load_seconds: f64,
    pub rss_after_model_mib: f64,
    pub ingest_passages: usize,
    pub ingest_passages_per_second: f64,
    pub query_embedding: Latency,
    pub example: CorpusBench,
    pub synthetic: Option<CorpusBench>,
    pub peak_rss_mib: f64,
}

/// Runs every measurement.
///
/// # Errors
/// Unreadable inputs, a model that does not load, or an index failure.
pub async fn run(
    options: &BenchOptions,
    embedding: &EmbeddingConfig,
) -> Result<BenchReport, KnowledgeError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    let embedder = Embedder::load(embedding)?;
    let model_load_seconds = started.elapsed().as_secs_f64();
    let rss_after_model_mib = rss_mib().0;
    let _ = std::fs::remove_dir_all(&options.work_dir);

    let example_dir = options.work_dir.join("example");
    let ingest_options = IngestOptions {
        inputs: options.corpus.clone(),
        out: example_dir.clone(),
        chunking: ChunkSettings::default(),
        analyzer: Analyzer::default(),
        batch: crate::embed::DEFAULT_BATCH,
        keep_versions: 0,
        progress: false,
    };
    let built = Instant::now();
    let report = ingest(&ingest_options, &embedder)?;
    let example_build = built.elapsed().as_secs_f64();

    let questions = read_questions(&options.questions)?;
    let mut query_vectors = Vec::with_capacity(questions.len());
    let mut embed_times = Vec::with_capacity(questions.len() * 2);
    // The first call warms ONNX Runtime's allocations; it is not what a customer waits for.
    if let Some(q) = questions.first() {
        embedder.embed_query(q).await?;
    }
    for round in 0..2 {
        for q in &questions {
            let t = Instant::now();
            let v = embedder.embed_query(q).await?;
            embed_times.push(t.elapsed().as_secs_f64() * 1e3);
            if round == 0 {
                query_vectors.push(v);
            }
        }
    }
    let query_embedding = latency(embed_times);

    let example = measure(
        &example_dir,
        example_build,
        &questions,
        &query_vectors,
        options.repeats,
    )?;

    let synthetic = if options.synthetic > 0 {
        let index = index::load(&example_dir)?;
        let dir = options.work_dir.join("synthetic");
        let built = Instant::now();
        write_synthetic(&dir, &index, options.synthetic)?;
        let build_seconds = built.elapsed().as_secs_f64();
        drop(index);
        Some(measure(
            &dir,
            build_seconds,
            &questions,
            &query_vectors,
            options.repeats.div_ceil(10).max(1),
        )?)
    } else {
        None
    };
    let peak_rss_mib = rss_mib().1;
    let _ = std::fs::remove_dir_all(&options.work_dir);
    Ok(BenchReport {
        model_id: embedder.model_id().to_owned(),
        threads: embedding.threads,
        cores,
        model_load_seconds,
        rss_after_model_mib,
        ingest_passages: report.chunks,
        ingest_passages_per_second: report.passages_per_second,
        query_embedding,
        example,
        synthetic,
        peak_rss_mib,
    })
}

fn read_questions(path: &Path) -> Result<Vec<String>, KnowledgeError> {
    #[derive(serde::Deserialize)]
    struct Q {
        question: String,
    }
    let text = std::fs::read_to_string(path).map_err(|source| KnowledgeError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let q: Q = serde_json::from_str(line).map_err(|e| KnowledgeError::Parse {
            path: path.to_owned(),
            line: Some(i + 1),
            message: e.to_string(),
        })?;
        out.push(q.question);
    }
    if out.is_empty() {
        return Err(KnowledgeError::Parse {
            path: path.to_owned(),
            line: None,
            message: "no question".into(),
        });
    }
    Ok(out)
}

/// Loads the index in `dir` and times each search method over the questions.
fn measure(
    dir: &Path,
    build_seconds: f64,
    questions: &[String],
    vectors: &[Vec<f32>],
    repeats: usize,
) -> Result<CorpusBench, KnowledgeError> {
    let started = Instant::now();
    let index = index::load(dir)?;
    let load_seconds = started.elapsed().as_secs_f64();
    let rss_after_load_mib = rss_mib().0;
    let settings = RetrievalSettings::default();
    let mut times = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..repeats.max(1) {
        for (q, v) in questions.iter().zip(vectors) {
            for (slot, method) in Method::ALL.iter().enumerate() {
                let t = Instant::now();
                let hits = search(&index, q, Some(v), *method, &settings)?;
                times[slot].push(t.elapsed().as_secs_f64() * 1e3);
                std::hint::black_box(hits);
            }
            let t = Instant::now();
            std::hint::black_box(index.dense.search_exact(v, settings.top_k));
            times[3].push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let [bm25, dense, hybrid, exact] = times;
    Ok(CorpusBench {
        passages: index.chunks.len(),
        build_seconds,
        load_seconds,
        index_bytes: dir_size(&dir.join(index::VERSIONS)),
        rss_after_load_mib,
        bm25: latency(bm25),
        dense: latency(dense),
        hybrid: latency(hybrid),
        dense_exact: latency(exact),
    })
}

/// Writes and publishes a synthetic index of `n` passages modelled on `example`.
fn write_synthetic(dir: &Path, example: &LoadedIndex, n: usize) -> Result<(), KnowledgeError> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut vocabulary: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for c in &example.chunks {
        for w in c
            .text
            .split(|ch: char| !ch.is_alphanumeric())
            .filter(|w| w.chars().count() > 1)
        {
            if seen.insert(w.to_lowercase()) {
                vocabulary.push(w.to_lowercase());
            }
        }
    }
    if vocabulary.is_empty() || example.dense.is_empty() {
        return Err(KnowledgeError::EmptyCorpus);
    }
    // Zipf-like: word r is drawn with weight 1/(r+1), through the cumulative weights.
    let cumulative: Vec<f64> = vocabulary
        .iter()
        .enumerate()
        .scan(0.0, |acc, (r, _)| {
            *acc += 1.0 / (r as f64 + 1.0);
            Some(*acc)
        })
        .collect();
    let total = cumulative.last().copied().unwrap_or(1.0);
    let dims = example.dense.dimensions();
    let mut chunks = Vec::with_capacity(n);
    let mut data = Vec::with_capacity(n * dims);
    for i in 0..n {
        let words = rng.random_range(80..=160);
        let mut text = String::new();
        for _ in 0..words {
            let x = rng.random::<f64>() * total;
            let r = cumulative
                .partition_point(|&c| c < x)
                .min(vocabulary.len() - 1);
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&vocabulary[r]);
        }
        chunks.push(Chunk {
            id: format!("synthetic-{i}"),
            doc_id: format!("synthetic-{i}"),
            title: format!("Passage {i}"),
            url: None,
            heading: None,
            text,
        });
        let base = example.dense.row(i % example.dense.len()).unwrap_or(&[]);
        let mut v: Vec<f32> = base
            .iter()
            .map(|x| x + rng.random_range(-0.05f32..0.05))
            .collect();
        let norm = v
            .iter()
            .map(|x| x * x)
            .sum::<f32>()
            .sqrt()
            .max(f32::MIN_POSITIVE);
        v.iter_mut().for_each(|x| *x /= norm);
        data.extend_from_slice(&v);
    }
    let vectors = DenseIndex::new(dims, data).map_err(KnowledgeError::Settings)?;
    let version = format!("synthetic{n}");
    let new = NewVersion {
        chunks: &chunks,
        vectors: &vectors,
        documents: n,
        corpus_version: &version,
        model_id: &example.manifest.model_id,
        analyzer: Analyzer::default(),
        chunking: ChunkSettings::default(),
    };
    let name = index::write_version(dir, &new)?;
    index::swap_pointer(dir, &name)
}

fn latency(mut ms: Vec<f64>) -> Latency {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| -> f64 {
        if ms.is_empty() {
            return 0.0;
        }
        let i = ((ms.len() as f64 - 1.0) * q).round() as usize;
        (ms[i.min(ms.len() - 1)] * 1000.0).round() / 1000.0
    };
    Latency {
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        samples: ms.len(),
    }
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Resident and peak resident memory of this process, MiB (0 where /proc is absent).
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| (kb / 1024.0 * 10.0).round() / 10.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The report as Markdown, for `docs/BENCHMARKS.md`.
pub fn to_markdown(r: &BenchReport) -> String {
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / 1_048_576.0);
    let mut out = format!(
        "Model {} on {} cores (threads per session: {}). Model load {:.2} s, RSS after load {:.0} MiB.\n\n\
         | measure | value |\n|---|---|\n\
         | ingest throughput (embedding, batch 32) | {:.1} passages/s ({} passages) |\n\
         | query embedding p50 / p99 | {:.2} / {:.2} ms ({} samples) |\n",
        r.model_id,
        r.cores,
        if r.threads == 0 { "one per core".to_owned() } else { r.threads.to_string() },
        r.model_load_seconds,
        r.rss_after_model_mib,
        r.ingest_passages_per_second,
        r.ingest_passages,
        r.query_embedding.p50_ms,
        r.query_embedding.p99_ms,
        r.query_embedding.samples,
    );
    out.push_str(
        "\n| corpus | passages | build | load | index on disk | RSS after load | BM25 p50 / p99 | dense p50 / p99 | hybrid p50 / p99 | dense, full f32 scan |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut row = |name: &str, c: &CorpusBench| {
        out.push_str(&format!(
            "| {name} | {} | {:.1} s | {:.2} s | {} | {:.0} MiB | {:.3} / {:.3} ms | {:.3} / {:.3} ms | {:.3} / {:.3} ms | {:.3} / {:.3} ms |\n",
            c.passages,
            c.build_seconds,
            c.load_seconds,
            mib(c.index_bytes),
            c.rss_after_load_mib,
            c.bm25.p50_ms,
            c.bm25.p99_ms,
            c.dense.p50_ms,
            c.dense.p99_ms,
            c.hybrid.p50_ms,
            c.hybrid.p99_ms,
            c.dense_exact.p50_ms,
            c.dense_exact.p99_ms
        ));
    };
    row("example FAQ", &r.example);
    if let Some(s) = &r.synthetic {
        row("synthetic", s);
    }
    out.push_str(&format!(
        "\nPeak RSS of the run: {:.0} MiB.\n",
        r.peak_rss_mib
    ));
    out
}
