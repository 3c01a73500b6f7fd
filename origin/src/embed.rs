//! Sentence embeddings for questions and passages, computed in-process on the CPU.
//!
//! The semantic cache and the vector half of retrieval both need one fixed-size vector per text.
//! This module turns text into L2-normalised vectors with fastembed on ONNX Runtime, using the
//! model directory that `scripts/fetch-models.sh` builds (multilingual-e5-small, 4-bit, from
//! registry packages only: no model hub is reachable from our machines).
//!
//! ONNX Runtime is loaded from an explicit library path, never from a default search: `ort`
//! panics on first use when it cannot find its library, so [`Embedder::load`] checks the files
//! first and turns every failure into an [`EmbedError`]. A process holds one ONNX Runtime
//! environment, created on the first successful load and shared by all sessions.
//!
//! fastembed's `TextEmbedding::embed` takes `&mut self` and is CPU-bound, so an [`Embedder`]
//! keeps a small pool of sessions behind a mutex and the async methods run on tokio's blocking
//! pool. e5 models expect a "query: " or "passage: " prefix, which fastembed does not add; the
//! model's manifest (`libriassist-model.json`) gives them and this module adds them.
//!
//! Not here: similarity thresholds and guards (the semantic cache), vector storage (the
//! knowledge base), and fetching or converting models (`scripts/fetch-models.sh`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Instant;

use fastembed::{
    InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel,
};
use serde::{Deserialize, Serialize};

/// The model `scripts/fetch-models.sh` installs.
pub const DEFAULT_MODEL_ID: &str = "multilingual-e5-small-q4";
/// The ONNX Runtime library `scripts/fetch-models.sh` installs; fastembed 7.7 needs >= 1.24.
pub const ORT_LIBRARY_FILE: &str = "libonnxruntime.so.1.31.1";
/// Texts per ONNX Runtime call when the caller does not choose: larger batches were measured to
/// bring no throughput on two cores, only memory.
pub const DEFAULT_BATCH: usize = 32;
/// Sessions beyond this bring nothing on the machines we target and cost ~300 MiB each.
const MAX_SESSIONS: usize = 4;
/// Written by `scripts/fetch-models.sh`; describes how to use the model.
const MANIFEST_FILE: &str = "libriassist-model.json";
const MODEL_FILES: [&str; 6] = [
    MANIFEST_FILE,
    "model.onnx",
    "tokenizer.json",
    "config.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
];

/// Where the embedding model and ONNX Runtime live, and how many threads each session uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddingConfig {
    /// Directory built by `scripts/fetch-models.sh` (model.onnx, tokenizer files, manifest).
    pub model_dir: PathBuf,
    /// Path of `libonnxruntime.so` (>= 1.24).
    pub ort_library: PathBuf,
    /// Intra-op threads per session; 0 means one per available core. The pool holds
    /// `cores / threads` sessions (at least 1, at most 4), so that concurrent requests together
    /// use about every core once.
    pub threads: usize,
}

impl EmbeddingConfig {
    /// The defaults, shared with `scripts/setup.sh`: `$LIBRIASSIST_CACHE` (default
    /// `~/.cache/libriassist`) holds `models/multilingual-e5-small-q4` and
    /// `onnxruntime/libonnxruntime.so.1.31.1`. `LIBRIASSIST_MODEL_DIR` and
    /// `LIBRIASSIST_ORT_LIBRARY` override either path. Threads default to one per core.
    pub fn from_env_or_default() -> Self {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    fn from_lookup(get: impl Fn(&str) -> Option<OsString>) -> Self {
        let set = |name: &str| get(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        let cache = set("LIBRIASSIST_CACHE").unwrap_or_else(|| {
            set("HOME")
                .unwrap_or_default()
                .join(".cache")
                .join("libriassist")
        });
        EmbeddingConfig {
            model_dir: set("LIBRIASSIST_MODEL_DIR")
                .unwrap_or_else(|| cache.join("models").join(DEFAULT_MODEL_ID)),
            ort_library: set("LIBRIASSIST_ORT_LIBRARY")
                .unwrap_or_else(|| cache.join("onnxruntime").join(ORT_LIBRARY_FILE)),
            threads: 0,
        }
    }
}

impl Default for EmbeddingConfig {
    /// Same as [`EmbeddingConfig::from_env_or_default`]: the paths depend on the environment.
    fn default() -> Self {
        Self::from_env_or_default()
    }
}

/// Why embeddings are unavailable or failed. Load errors name the path and the fix.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("ONNX Runtime library not found at {}: run scripts/fetch-models.sh or set LIBRIASSIST_ORT_LIBRARY", .0.display())]
    MissingLibrary(PathBuf),
    #[error("cannot load ONNX Runtime from {}: {reason}", .path.display())]
    Runtime { path: PathBuf, reason: String },
    #[error("embedding model incomplete: {} is missing; run scripts/fetch-models.sh or set LIBRIASSIST_MODEL_DIR", .0.display())]
    MissingModel(PathBuf),
    #[error("embedding model in {} is unusable ({reason}); rerun scripts/fetch-models.sh to rebuild it", .dir.display())]
    InvalidModel { dir: PathBuf, reason: String },
    #[error("embedding failed: {0}")]
    Inference(String),
    #[error("embedding worker stopped: {0}")]
    Worker(String),
}

/// `libriassist-model.json`: what the loader must know that the ONNX file does not say.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    id: String,
    dimensions: usize,
    query_prefix: String,
    passage_prefix: String,
    pooling: String,
    max_length: usize,
}

/// A loaded embedding model: cheap to clone, safe to share between tasks.
#[derive(Clone)]
pub struct Embedder {
    inner: Arc<Inner>,
}

struct Inner {
    manifest: Manifest,
    pool: SessionPool,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model_id", &self.inner.manifest.id)
            .field("dimensions", &self.inner.manifest.dimensions)
            .field("sessions", &self.inner.pool.size)
            .finish()
    }
}

impl Embedder {
    /// Loads ONNX Runtime (once per process) and the model, then embeds a probe text to prove
    /// the model answers with the advertised dimension. Takes about a second per session, most
    /// of it parsing tokenizer.json: call it at start-up, off the async runtime.
    ///
    /// # Errors
    /// [`EmbedError::MissingLibrary`] or [`EmbedError::Runtime`] when ONNX Runtime is absent or
    /// unloadable (including a second, different library path in the same process);
    /// [`EmbedError::MissingModel`] or [`EmbedError::InvalidModel`] when the model directory is
    /// absent, incomplete or corrupt. Never panics on any of these.
    pub fn load(cfg: &EmbeddingConfig) -> Result<Embedder, EmbedError> {
        let started = Instant::now();
        if !cfg.ort_library.is_file() {
            return Err(EmbedError::MissingLibrary(cfg.ort_library.clone()));
        }
        for name in MODEL_FILES {
            let path = cfg.model_dir.join(name);
            if !path.is_file() {
                return Err(EmbedError::MissingModel(path));
            }
        }
        let invalid = |reason: String| EmbedError::InvalidModel {
            dir: cfg.model_dir.clone(),
            reason,
        };
        let manifest: Manifest = serde_json::from_slice(&read(&cfg.model_dir, MANIFEST_FILE)?)
            .map_err(|e| invalid(format!("{MANIFEST_FILE}: {e}")))?;
        let pooling = match manifest.pooling.as_str() {
            "mean" => Pooling::Mean,
            "cls" => Pooling::Cls,
            other => {
                return Err(invalid(format!(
                    "{MANIFEST_FILE}: unknown pooling {other:?}"
                )))
            }
        };
        if manifest.dimensions == 0 || manifest.max_length == 0 {
            return Err(invalid(format!(
                "{MANIFEST_FILE}: dimensions and max_length must be positive"
            )));
        }

        let environment = runtime::environment(&cfg.ort_library)?;
        let onnx = read(&cfg.model_dir, "model.onnx")?;
        let tokenizer = TokenizerFiles {
            tokenizer_file: read(&cfg.model_dir, "tokenizer.json")?,
            config_file: read(&cfg.model_dir, "config.json")?,
            special_tokens_map_file: read(&cfg.model_dir, "special_tokens_map.json")?,
            tokenizer_config_file: read(&cfg.model_dir, "tokenizer_config.json")?,
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = if cfg.threads == 0 { cores } else { cfg.threads };
        let size = (cores / threads).clamp(1, MAX_SESSIONS);

        let mut sessions = Vec::with_capacity(size);
        for _ in 0..size {
            let model = UserDefinedEmbeddingModel::new(onnx.clone(), tokenizer.clone())
                .with_pooling(pooling.clone());
            let options = InitOptionsUserDefined::new()
                .with_environment(environment.clone())
                .with_max_length(manifest.max_length)
                .with_intra_threads(threads);
            let session = TextEmbedding::try_new_from_user_defined(model, options)
                .map_err(|e| invalid(e.to_string()))?;
            sessions.push(session);
        }

        let embedder = Embedder {
            inner: Arc::new(Inner {
                manifest,
                pool: SessionPool::new(sessions),
            }),
        };
        // A model whose output is not what the manifest promises would poison every index built
        // with it; refuse it now rather than at the first query.
        let probe = embedder
            .embed_prefixed(vec![format!(
                "{}test",
                embedder.inner.manifest.query_prefix
            )])
            .map_err(|e| invalid(format!("probe embedding failed: {e}")))?;
        let dims = probe.first().map_or(0, Vec::len);
        if dims != embedder.dimensions() {
            return Err(invalid(format!(
                "model returns {dims} dimensions, {MANIFEST_FILE} says {}",
                embedder.dimensions()
            )));
        }
        tracing::info!(
            model = %embedder.model_id(),
            dimensions = dims,
            sessions = size,
            threads_per_session = threads,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "embedding model loaded"
        );
        Ok(embedder)
    }

    /// The model's identifier, e.g. `multilingual-e5-small-q4`; part of cache and index keys,
    /// since vectors from different models are not comparable.
    pub fn model_id(&self) -> &str {
        &self.inner.manifest.id
    }

    /// Length of every vector this embedder returns.
    pub fn dimensions(&self) -> usize {
        self.inner.manifest.dimensions
    }

    /// The vector of a user question (the model's query prefix is added here).
    ///
    /// # Errors
    /// [`EmbedError::Inference`] if ONNX Runtime fails, [`EmbedError::Worker`] if the blocking
    /// task could not run or panicked.
    pub async fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let text = format!("{}{text}", self.inner.manifest.query_prefix);
        let this = self.clone();
        let mut vectors = tokio::task::spawn_blocking(move || this.embed_prefixed(vec![text]))
            .await
            .map_err(|e| EmbedError::Worker(e.to_string()))??;
        vectors
            .pop()
            .ok_or_else(|| EmbedError::Inference("no vector returned".into()))
    }

    /// The vectors of knowledge-base passages, in input order, in batches of [`DEFAULT_BATCH`].
    ///
    /// # Errors
    /// As [`Embedder::embed_query`].
    pub async fn embed_passages(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.embed_passages_blocking(&texts, DEFAULT_BATCH))
            .await
            .map_err(|e| EmbedError::Worker(e.to_string()))?
    }

    /// The vectors of passages, in input order, for ingest (no async runtime needed). Each batch
    /// of `batch` texts (0 means [`DEFAULT_BATCH`]) takes a session from the pool and gives it
    /// back, so queries served by the same process are not starved by a long ingest.
    ///
    /// # Errors
    /// [`EmbedError::Inference`] if ONNX Runtime fails on any batch.
    pub fn embed_passages_blocking(
        &self,
        texts: &[String],
        batch: usize,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let batch = if batch == 0 { DEFAULT_BATCH } else { batch };
        let prefix = &self.inner.manifest.passage_prefix;
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(batch) {
            let prefixed = chunk.iter().map(|t| format!("{prefix}{t}")).collect();
            out.extend(self.embed_prefixed(prefixed)?);
        }
        Ok(out)
    }

    /// Embeds texts that already carry their prefix, as one ONNX Runtime batch.
    fn embed_prefixed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let n = texts.len();
        let mut session = self.inner.pool.take();
        let vectors = session
            .embed(&texts, Some(n))
            .map_err(|e| EmbedError::Inference(e.to_string()))?;
        drop(session);
        if vectors.len() != n {
            return Err(EmbedError::Inference(format!(
                "{} vectors for {n} texts",
                vectors.len()
            )));
        }
        vectors
            .into_iter()
            .map(|mut v| {
                if v.len() != self.dimensions() {
                    return Err(EmbedError::Inference(format!(
                        "vector of {} dimensions, expected {}",
                        v.len(),
                        self.dimensions()
                    )));
                }
                // fastembed already normalises; doing it here makes the contract ours and
                // catches NaN from a broken model before it reaches an index.
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                if !norm.is_finite() || norm == 0.0 {
                    return Err(EmbedError::Inference(format!(
                        "degenerate vector (norm {norm})"
                    )));
                }
                v.iter_mut().for_each(|x| *x /= norm);
                Ok(v)
            })
            .collect()
    }
}

/// Cosine similarity of two vectors; 0.0 when their lengths differ or either is zero. For the
/// normalised vectors of an [`Embedder`] this is their dot product.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>, EmbedError> {
    let path = dir.join(name);
    std::fs::read(&path).map_err(|e| EmbedError::InvalidModel {
        dir: dir.to_path_buf(),
        reason: format!("cannot read {}: {e}", path.display()),
    })
}

// === impl SessionPool ===

/// Sessions waiting for work. A caller blocks (on a blocking-pool thread) until one is free.
struct SessionPool {
    idle: Mutex<Vec<TextEmbedding>>,
    freed: Condvar,
    size: usize,
}

/// A session taken from the pool; it goes back on drop, also when the embedding call panicked.
struct Lease<'a> {
    pool: &'a SessionPool,
    session: Option<TextEmbedding>,
}

impl SessionPool {
    fn new(sessions: Vec<TextEmbedding>) -> Self {
        SessionPool {
            size: sessions.len(),
            idle: Mutex::new(sessions),
            freed: Condvar::new(),
        }
    }

    fn take(&self) -> Lease<'_> {
        // The lock only guards Vec push/pop, which cannot leave the Vec inconsistent, so a
        // poisoned lock is still safe to use.
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(session) = idle.pop() {
                return Lease {
                    pool: self,
                    session: Some(session),
                };
            }
            idle = self
                .freed
                .wait(idle)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl std::ops::Deref for Lease<'_> {
    type Target = TextEmbedding;
    fn deref(&self) -> &TextEmbedding {
        // Only `Drop` takes the session out.
        self.session
            .as_ref()
            .expect("lease holds a session until dropped")
    }
}

impl std::ops::DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut TextEmbedding {
        self.session
            .as_mut()
            .expect("lease holds a session until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.pool
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(session);
            self.pool.freed.notify_one();
        }
    }
}

// === ONNX Runtime environment ===

mod runtime {
    //! ONNX Runtime allows one environment per process, and `ort` remembers the first library
    //! it loaded for the life of the process. This keeps both facts in one place.

    use super::EmbedError;
    use ort::environment::Environment;
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, PoisonError};

    static LOADED: Mutex<Option<(PathBuf, Environment)>> = Mutex::new(None);

    /// The process's environment, loading ONNX Runtime from `library` on first success. A later
    /// call with a different library is an error rather than a silent use of the first one.
    pub(super) fn environment(library: &Path) -> Result<Environment, EmbedError> {
        let path = library
            .canonicalize()
            .map_err(|_| EmbedError::MissingLibrary(library.to_path_buf()))?;
        let runtime_error = |reason: String| EmbedError::Runtime {
            path: path.clone(),
            reason,
        };
        let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((first, environment)) = loaded.as_ref() {
            if *first == path {
                return Ok(environment.clone());
            }
            return Err(runtime_error(format!(
                "this process already uses ONNX Runtime from {}, and only one can be loaded",
                first.display()
            )));
        }
        let environment = ort::init_from(&path)
            .map_err(|e| runtime_error(e.to_string()))?
            .with_name("libriassist")
            .build()
            .map_err(|e| runtime_error(e.to_string()))?;
        *loaded = Some((path, environment.clone()));
        Ok(environment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// The model built by scripts/fetch-models.sh, loaded once for all tests; None (with a
    /// message) when it is not installed, so that a machine without it still runs the rest.
    fn real_model() -> Option<&'static Embedder> {
        static MODEL: OnceLock<Option<Embedder>> = OnceLock::new();
        MODEL
            .get_or_init(|| {
                let cfg = EmbeddingConfig::from_env_or_default();
                if !cfg.ort_library.is_file() || !cfg.model_dir.is_dir() {
                    eprintln!(
                        "skipping real-model embedding tests: {} or {} not found (run scripts/fetch-models.sh)",
                        cfg.ort_library.display(),
                        cfg.model_dir.display()
                    );
                    return None;
                }
                Some(Embedder::load(&cfg).expect("installed model loads"))
            })
            .as_ref()
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("tokio runtime")
    }

    #[test]
    fn defaults_follow_the_cache_convention() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let cfg = EmbeddingConfig::from_lookup(env(&[("HOME", "/home/ana")]));
        assert_eq!(
            cfg.model_dir,
            Path::new("/home/ana/.cache/libriassist/models/multilingual-e5-small-q4")
        );
        assert_eq!(
            cfg.ort_library,
            Path::new("/home/ana/.cache/libriassist/onnxruntime/libonnxruntime.so.1.31.1")
        );

        let cfg = EmbeddingConfig::from_lookup(env(&[("HOME", "/h"), ("LIBRIASSIST_CACHE", "/c")]));
        assert_eq!(
            cfg.model_dir,
            Path::new("/c/models/multilingual-e5-small-q4")
        );

        let cfg = EmbeddingConfig::from_lookup(env(&[
            ("LIBRIASSIST_CACHE", "/c"),
            ("LIBRIASSIST_MODEL_DIR", "/m"),
            ("LIBRIASSIST_ORT_LIBRARY", "/lib/ort.so"),
        ]));
        assert_eq!(cfg.model_dir, Path::new("/m"));
        assert_eq!(cfg.ort_library, Path::new("/lib/ort.so"));
    }

    #[test]
    fn cosine_basics() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 2.0]).abs() < 1e-6);
        assert!((cosine(&[1.0, 1.0], &[-2.0, -2.0]) + 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[1.0], &[1.0, 0.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }

    #[test]
    fn missing_library_is_an_error_not_a_panic() {
        let cfg = EmbeddingConfig {
            model_dir: EmbeddingConfig::from_env_or_default().model_dir,
            ort_library: PathBuf::from("/nonexistent/libonnxruntime.so.1.31.1"),
            threads: 1,
        };
        let err = Embedder::load(&cfg).expect_err("no library");
        assert!(matches!(err, EmbedError::MissingLibrary(_)), "{err}");
        assert!(err.to_string().contains("fetch-models.sh"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_onnx_runtime_is_an_error_not_a_panic() {
        let dir = temp_dir("not-a-library");
        let fake = dir.join("libonnxruntime.so");
        std::fs::write(&fake, b"not an ELF file").expect("write");
        let model_dir = match real_model() {
            Some(_) => EmbeddingConfig::from_env_or_default().model_dir,
            None => fake_model_dir("for-fake-library"),
        };
        let cfg = EmbeddingConfig {
            model_dir,
            ort_library: fake,
            threads: 1,
        };
        let err = Embedder::load(&cfg).expect_err("not a library");
        assert!(matches!(err, EmbedError::Runtime { .. }), "{err}");
    }

    #[test]
    fn missing_model_dir_is_an_error() {
        let cfg = EmbeddingConfig {
            model_dir: PathBuf::from("/nonexistent/models/multilingual-e5-small-q4"),
            // Any existing file: the model directory is checked before the library is opened.
            ort_library: std::env::current_exe().expect("test binary path"),
            threads: 1,
        };
        let err = Embedder::load(&cfg).expect_err("no model");
        assert!(matches!(err, EmbedError::MissingModel(_)), "{err}");
    }

    #[test]
    fn corrupt_manifest_is_an_error() {
        let dir = fake_model_dir("bad-manifest");
        std::fs::write(dir.join(MANIFEST_FILE), b"{\"id\": 3").expect("write");
        let cfg = EmbeddingConfig {
            model_dir: dir,
            ort_library: std::env::current_exe().expect("test binary path"),
            threads: 1,
        };
        let err = Embedder::load(&cfg).expect_err("bad manifest");
        assert!(matches!(err, EmbedError::InvalidModel { .. }), "{err}");
    }

    #[test]
    fn corrupt_model_file_is_an_error() {
        let Some(_) = real_model() else { return };
        let real = EmbeddingConfig::from_env_or_default();
        let dir = temp_dir("corrupt-onnx");
        for name in MODEL_FILES {
            std::fs::copy(real.model_dir.join(name), dir.join(name)).expect("copy");
        }
        let onnx = std::fs::read(dir.join("model.onnx")).expect("read");
        std::fs::write(dir.join("model.onnx"), &onnx[..onnx.len() / 3]).expect("truncate");
        let cfg = EmbeddingConfig {
            model_dir: dir,
            ..real
        };
        let err = Embedder::load(&cfg).expect_err("truncated model");
        assert!(matches!(err, EmbedError::InvalidModel { .. }), "{err}");
    }

    #[test]
    fn query_vectors_have_the_model_dimension_and_unit_norm() {
        let Some(model) = real_model() else { return };
        assert_eq!(model.model_id(), "multilingual-e5-small-q4");
        assert_eq!(model.dimensions(), 384);
        let v = rt()
            .block_on(model.embed_query("Quels formats proposez-vous ?"))
            .expect("embed");
        assert_eq!(v.len(), 384);
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }

    #[test]
    fn paraphrases_score_above_unrelated_questions() {
        let Some(model) = real_model() else { return };
        let rt = rt();
        let q = |t: &str| rt.block_on(model.embed_query(t)).expect("embed");
        let base = q("Quels formats proposez-vous ?");
        let paraphrase = cosine(&base, &q("Quels sont les formats disponibles ?"));
        let unrelated = cosine(&base, &q("Comment suivre ma commande ?"));
        // shared/notes/embeddings-offline.md measured 0.950 and 0.843 for these pairs.
        assert!(paraphrase > unrelated + 0.05, "{paraphrase} vs {unrelated}");
        assert!((paraphrase - 0.950).abs() < 0.02, "paraphrase {paraphrase}");
        assert!((unrelated - 0.843).abs() < 0.02, "unrelated {unrelated}");
    }

    #[test]
    fn passages_batched_equal_passages_alone_and_rank_for_their_question() {
        let Some(model) = real_model() else { return };
        let passages: Vec<String> = [
            "Les frais de port sont offerts dès 35 € d'achat en France métropolitaine.",
            "Vous pouvez régler par carte bancaire, PayPal ou chèque-cadeau.",
            "Les livres numériques sont vendus aux formats EPUB et PDF, sans DRM.",
        ]
        .map(String::from)
        .to_vec();
        let batched = rt()
            .block_on(model.embed_passages(passages.clone()))
            .expect("embed");
        assert_eq!(batched.len(), passages.len());
        for (i, p) in passages.iter().enumerate() {
            let alone = model
                .embed_passages_blocking(std::slice::from_ref(p), 1)
                .expect("embed");
            let c = cosine(&alone[0], &batched[i]);
            assert!(c > 0.9999, "passage {i}: padding changed its vector ({c})");
        }
        let question = rt()
            .block_on(model.embed_query("Quels formats de livres numériques vendez-vous ?"))
            .expect("embed");
        let scores: Vec<f32> = batched.iter().map(|p| cosine(&question, p)).collect();
        assert!(
            scores[2] > scores[0] && scores[2] > scores[1],
            "scores {scores:?}"
        );
        assert!(model
            .embed_passages_blocking(&[], 0)
            .expect("empty")
            .is_empty());
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "libriassist-embed-test-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    /// A directory with every expected file, none of them a real model.
    fn fake_model_dir(name: &str) -> PathBuf {
        let dir = temp_dir(name);
        for file in MODEL_FILES {
            std::fs::write(dir.join(file), b"{}").expect("write");
        }
        std::fs::write(
            dir.join(MANIFEST_FILE),
            br#"{"id":"fake","dimensions":384,"query_prefix":"query: ","passage_prefix":"passage: ","pooling":"mean","max_length":512}"#,
        )
        .expect("write");
        dir
    }
}
