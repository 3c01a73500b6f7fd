//! The on-disk index and its loading.
//!
//! ```text
//! DIR/CURRENT                          name of the version being served, one line
//! DIR/versions/<corpus>-<millis>/      one complete, immutable index version:
//!     manifest.json                    what it is, and the size and SHA-256 of every file below
//!     chunks.jsonl                     the passages, one JSON object per line, in passage order
//!     vectors.f32                      their embeddings, little-endian f32, row-major
//!     bm25/                            the tantivy index of their text
//! DIR/versions/.staging-<pid>-<nanos>/ a version being built
//! ```
//!
//! A build writes everything into a staging directory, syncs it, renames it to its final name,
//! and only then replaces `CURRENT` (written to `CURRENT.tmp`, synced, renamed over). Renames
//! within a file system are atomic, so a reader sees the old version or the new one, never a
//! mix, and a build that fails at any point leaves `CURRENT` and the version it names untouched.
//! Two concurrent builds each produce a complete version; the last to swap wins.
//!
//! Loading reads `CURRENT`, checks every file against the manifest's digests, and refuses the
//! index with [`KnowledgeError::Corrupt`] on any mismatch, so a truncated copy or a partial sync
//! is never served.

use super::bm25::{self, Analyzer, Bm25Index};
use super::chunk::{Chunk, ChunkSettings};
use super::dense::DenseIndex;
use super::manifest::{self, FileDigest, Manifest};
use super::KnowledgeError;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const POINTER: &str = "CURRENT";
pub const VERSIONS: &str = "versions";
pub const MANIFEST: &str = "manifest.json";
pub const CHUNKS: &str = "chunks.jsonl";
pub const VECTORS: &str = "vectors.f32";
pub const BM25: &str = "bm25";
const STAGING_PREFIX: &str = ".staging-";
/// A staging directory this old belongs to a build that died; newer ones may be running.
const STALE_STAGING: Duration = Duration::from_secs(3_600);

/// An index version in memory, ready to search. Immutable: a reload builds a new one.
pub struct LoadedIndex {
    pub manifest: Manifest,
    /// The version directory's name.
    pub version: String,
    pub chunks: Vec<Chunk>,
    pub dense: DenseIndex,
    pub bm25: Bm25Index,
    /// Each passage's document, numbered in order of first appearance. Fusion looks up the
    /// document of a few hundred candidates per search: 4 bytes each here, where reading
    /// `chunks` would touch a scattered record and its string each time (measured at 100k
    /// passages: about 1.5 ms more per hybrid search).
    documents: Vec<u32>,
}

/// Each passage's document number (see [`LoadedIndex::document_of`]).
fn document_numbers(chunks: &[Chunk]) -> Vec<u32> {
    let mut numbers: HashMap<&str, u32> = HashMap::new();
    chunks
        .iter()
        .map(|c| {
            let next = numbers.len() as u32;
            *numbers.entry(c.doc_id.as_str()).or_insert(next)
        })
        .collect()
}

impl std::fmt::Debug for LoadedIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedIndex")
            .field("version", &self.version)
            .field("corpus_version", &self.manifest.corpus_version)
            .field("chunks", &self.chunks.len())
            .finish()
    }
}

impl LoadedIndex {
    /// An index that lives only in memory (evaluations, tests): same searches, no files.
    ///
    /// # Errors
    /// Vectors that do not match the passages, or a tantivy failure.
    pub fn in_memory(
        chunks: Vec<Chunk>,
        dense: DenseIndex,
        analyzer: Analyzer,
        model_id: &str,
        documents: usize,
    ) -> Result<LoadedIndex, KnowledgeError> {
        let bad = |reason: String| KnowledgeError::Corrupt {
            dir: PathBuf::from("(memory)"),
            reason,
        };
        if dense.len() != chunks.len() {
            return Err(bad(format!(
                "{} vectors for {} passages",
                dense.len(),
                chunks.len()
            )));
        }
        let texts: Vec<String> = chunks.iter().map(Chunk::indexed_text).collect();
        let bm25 = Bm25Index::in_memory(analyzer, texts.iter().map(String::as_str))?;
        let chunking = ChunkSettings::default();
        let manifest = Manifest {
            format: manifest::FORMAT,
            corpus_version: manifest::corpus_version(&chunks, &chunking, analyzer, model_id),
            model_id: model_id.to_owned(),
            dimensions: dense.dimensions(),
            documents,
            chunks: chunks.len(),
            built_at: manifest::rfc3339(now().as_secs()),
            analyzer,
            chunking,
            files: BTreeMap::new(),
        };
        Ok(LoadedIndex {
            manifest,
            version: "memory".into(),
            documents: document_numbers(&chunks),
            chunks,
            dense,
            bm25,
        })
    }

    /// The document number of passage `ord`: passages of one document share it.
    pub fn document_of(&self, ord: u32) -> Option<u32> {
        self.documents.get(ord as usize).copied()
    }
}

/// Everything a new version holds.
pub struct NewVersion<'a> {
    pub chunks: &'a [Chunk],
    pub vectors: &'a DenseIndex,
    pub documents: usize,
    pub corpus_version: &'a str,
    pub model_id: &'a str,
    pub analyzer: Analyzer,
    pub chunking: ChunkSettings,
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> KnowledgeError + '_ {
    move |source| KnowledgeError::Write {
        path: path.to_owned(),
        source,
    }
}

fn read_err(path: &Path) -> impl FnOnce(std::io::Error) -> KnowledgeError + '_ {
    move |source| KnowledgeError::Read {
        path: path.to_owned(),
        source,
    }
}

/// Writes and syncs a file, so that a rename published after it never exposes missing data.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), KnowledgeError> {
    let mut f = std::fs::File::create(path).map_err(write_err(path))?;
    f.write_all(bytes).map_err(write_err(path))?;
    f.sync_all().map_err(write_err(path))
}

fn sync_dir(path: &Path) -> Result<(), KnowledgeError> {
    std::fs::File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(write_err(path))
}

/// Writes a complete version under `dir/versions/` and returns its name. `CURRENT` is not
/// touched: call [`swap_pointer`] to publish it.
///
/// # Errors
/// Any write failure; the staging directory is then removed.
pub fn write_version(dir: &Path, v: &NewVersion<'_>) -> Result<String, KnowledgeError> {
    let versions = dir.join(VERSIONS);
    std::fs::create_dir_all(&versions).map_err(write_err(&versions))?;
    let stamp = now();
    let staging = versions.join(format!(
        "{STAGING_PREFIX}{}-{}",
        std::process::id(),
        stamp.as_nanos()
    ));
    let result = write_staging(&staging, v, stamp).and_then(|()| {
        let name = format!("{}-{}", v.corpus_version, stamp.as_millis());
        let target = versions.join(&name);
        std::fs::rename(&staging, &target).map_err(write_err(&target))?;
        sync_dir(&versions)?;
        Ok(name)
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

fn write_staging(
    staging: &Path,
    v: &NewVersion<'_>,
    stamp: Duration,
) -> Result<(), KnowledgeError> {
    std::fs::create_dir_all(staging).map_err(write_err(staging))?;
    if v.vectors.len() != v.chunks.len() {
        return Err(KnowledgeError::Corrupt {
            dir: staging.to_owned(),
            reason: format!(
                "{} vectors for {} passages",
                v.vectors.len(),
                v.chunks.len()
            ),
        });
    }
    let mut files = BTreeMap::new();
    let mut chunks = Vec::new();
    for c in v.chunks {
        // Serializing a struct of strings cannot fail.
        serde_json::to_writer(&mut chunks, c).map_err(|e| KnowledgeError::Write {
            path: staging.join(CHUNKS),
            source: std::io::Error::other(e),
        })?;
        chunks.push(b'\n');
    }
    write_synced(&staging.join(CHUNKS), &chunks)?;
    files.insert(CHUNKS.to_owned(), digest(&chunks));
    let vectors = v.vectors.to_bytes();
    write_synced(&staging.join(VECTORS), &vectors)?;
    files.insert(VECTORS.to_owned(), digest(&vectors));

    let bm25_dir = staging.join(BM25);
    let texts: Vec<String> = v.chunks.iter().map(Chunk::indexed_text).collect();
    bm25::build(&bm25_dir, v.analyzer, texts.iter().map(String::as_str))?;
    for entry in std::fs::read_dir(&bm25_dir).map_err(read_err(&bm25_dir))? {
        let entry = entry.map_err(read_err(&bm25_dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if !bm25::is_index_file(&name) || !path.is_file() {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        let bytes = std::fs::read(&path).map_err(read_err(&path))?;
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(write_err(&path))?;
        files.insert(format!("{BM25}/{name}"), digest(&bytes));
    }
    sync_dir(&bm25_dir)?;

    let manifest = Manifest {
        format: manifest::FORMAT,
        corpus_version: v.corpus_version.to_owned(),
        model_id: v.model_id.to_owned(),
        dimensions: v.vectors.dimensions(),
        documents: v.documents,
        chunks: v.chunks.len(),
        built_at: manifest::rfc3339(stamp.as_secs()),
        analyzer: v.analyzer,
        chunking: v.chunking,
        files,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| KnowledgeError::Write {
        path: staging.join(MANIFEST),
        source: std::io::Error::other(e),
    })?;
    write_synced(&staging.join(MANIFEST), &json)?;
    sync_dir(staging)
}

fn digest(bytes: &[u8]) -> FileDigest {
    FileDigest {
        bytes: bytes.len() as u64,
        sha256: manifest::sha256_hex(bytes),
    }
}

/// Makes `name` the served version.
///
/// # Errors
/// `name` is not a version directory of `dir`, or a write failure (then `CURRENT` is unchanged).
pub fn swap_pointer(dir: &Path, name: &str) -> Result<(), KnowledgeError> {
    let target = version_dir(dir, name)?;
    if !target.join(MANIFEST).is_file() {
        return Err(KnowledgeError::Corrupt {
            dir: target,
            reason: format!("no {MANIFEST}"),
        });
    }
    let tmp = dir.join(format!("{POINTER}.tmp"));
    write_synced(&tmp, format!("{name}\n").as_bytes())?;
    let pointer = dir.join(POINTER);
    std::fs::rename(&tmp, &pointer).map_err(write_err(&pointer))?;
    sync_dir(dir)
}

/// The version `CURRENT` names; `None` when there is no index yet.
///
/// # Errors
/// An unreadable or malformed pointer.
pub fn current_version(dir: &Path) -> Result<Option<String>, KnowledgeError> {
    let pointer = dir.join(POINTER);
    let text = match std::fs::read_to_string(&pointer) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(KnowledgeError::Read {
                path: pointer,
                source,
            })
        }
    };
    let name = text.trim().to_owned();
    version_dir(dir, &name)?;
    Ok(Some(name))
}

/// `dir/versions/name`, refusing names that would leave it.
fn version_dir(dir: &Path, name: &str) -> Result<PathBuf, KnowledgeError> {
    let plain =
        !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\']) && name != "..";
    if !plain {
        return Err(KnowledgeError::Corrupt {
            dir: dir.to_owned(),
            reason: format!("{POINTER} names {name:?}"),
        });
    }
    Ok(dir.join(VERSIONS).join(name))
}

/// Reads a version's manifest.
///
/// # Errors
/// Missing, unreadable or malformed manifest, or one of another format.
pub fn read_manifest(dir: &Path, name: &str) -> Result<Manifest, KnowledgeError> {
    let vdir = version_dir(dir, name)?;
    let path = vdir.join(MANIFEST);
    let bytes = std::fs::read(&path).map_err(|e| KnowledgeError::Corrupt {
        dir: vdir.clone(),
        reason: format!("{MANIFEST}: {e}"),
    })?;
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| KnowledgeError::Corrupt {
            dir: vdir.clone(),
            reason: format!("{MANIFEST}: {e}"),
        })?;
    if manifest.format != manifest::FORMAT {
        return Err(KnowledgeError::Corrupt {
            dir: vdir,
            reason: format!(
                "format {} is not the supported format {}",
                manifest.format,
                manifest::FORMAT
            ),
        });
    }
    Ok(manifest)
}

/// Loads the version `CURRENT` names.
///
/// # Errors
/// [`KnowledgeError::NoIndex`] when there is none, [`KnowledgeError::Corrupt`] when any file is
/// missing, altered or inconsistent.
pub fn load(dir: &Path) -> Result<LoadedIndex, KnowledgeError> {
    let name = current_version(dir)?.ok_or_else(|| KnowledgeError::NoIndex(dir.to_owned()))?;
    load_version(dir, &name)
}

/// Loads one version, verifying every file.
///
/// # Errors
/// As [`load`].
pub fn load_version(dir: &Path, name: &str) -> Result<LoadedIndex, KnowledgeError> {
    let vdir = version_dir(dir, name)?;
    let manifest = read_manifest(dir, name)?;
    let corrupt = |reason: String| KnowledgeError::Corrupt {
        dir: vdir.clone(),
        reason,
    };
    let mut verified: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    for (file, expected) in &manifest.files {
        if file
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(corrupt(format!("manifest lists {file:?}")));
        }
        let bytes = std::fs::read(vdir.join(file)).map_err(|e| corrupt(format!("{file}: {e}")))?;
        if bytes.len() as u64 != expected.bytes || manifest::sha256_hex(&bytes) != expected.sha256 {
            return Err(corrupt(format!(
                "{file} does not match its digest in {MANIFEST} (altered or truncated)"
            )));
        }
        verified.insert(file, bytes);
    }
    let chunks_bytes = verified
        .remove(CHUNKS)
        .ok_or_else(|| corrupt(format!("{MANIFEST} lists no {CHUNKS}")))?;
    let vector_bytes = verified
        .remove(VECTORS)
        .ok_or_else(|| corrupt(format!("{MANIFEST} lists no {VECTORS}")))?;
    let mut chunks = Vec::with_capacity(manifest.chunks);
    for (i, line) in chunks_bytes.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let chunk: Chunk = serde_json::from_slice(line)
            .map_err(|e| corrupt(format!("{CHUNKS} line {}: {e}", i + 1)))?;
        chunks.push(chunk);
    }
    if chunks.len() != manifest.chunks || chunks.is_empty() {
        return Err(corrupt(format!(
            "{} passages in {CHUNKS}, manifest says {}",
            chunks.len(),
            manifest.chunks
        )));
    }
    let dense = DenseIndex::from_bytes(manifest.dimensions, chunks.len(), &vector_bytes)
        .map_err(corrupt)?;
    let prefix = format!("{BM25}/");
    let bm25_files: Vec<(String, Vec<u8>)> = verified
        .into_iter()
        .filter_map(|(name, bytes)| name.strip_prefix(&prefix).map(|n| (n.to_owned(), bytes)))
        .collect();
    let bm25 = Bm25Index::from_files(bm25_files, manifest.analyzer)
        .map_err(|e| corrupt(format!("{BM25}: {e}")))?;
    if bm25.len() != chunks.len() {
        return Err(corrupt(format!(
            "{} passages in {BM25}, {} in {CHUNKS}",
            bm25.len(),
            chunks.len()
        )));
    }
    Ok(LoadedIndex {
        manifest,
        version: name.to_owned(),
        documents: document_numbers(&chunks),
        chunks,
        dense,
        bm25,
    })
}

/// Removes old versions, keeping the current one and the `keep` newest others (a rollback is
/// a pointer swap away), and staging directories left by builds that died.
///
/// # Errors
/// The versions directory cannot be listed; failures to remove one version are only logged.
pub fn prune(dir: &Path, keep: usize) -> Result<Vec<String>, KnowledgeError> {
    let versions = dir.join(VERSIONS);
    let current = current_version(dir)?;
    let mut others: Vec<(u128, String)> = Vec::new();
    let mut removed = Vec::new();
    for entry in std::fs::read_dir(&versions).map_err(read_err(&versions))? {
        let entry = entry.map_err(read_err(&versions))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(STAGING_PREFIX) {
            let age = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok());
            if age.is_some_and(|a| a > STALE_STAGING)
                && std::fs::remove_dir_all(entry.path()).is_ok()
            {
                removed.push(name);
            }
            continue;
        }
        if Some(&name) == current.as_ref() {
            continue;
        }
        let millis = name
            .rsplit('-')
            .next()
            .and_then(|m| m.parse::<u128>().ok())
            .unwrap_or(0);
        others.push((millis, name));
    }
    others.sort();
    let excess = others.len().saturating_sub(keep);
    for (_, name) in others.into_iter().take(excess) {
        match std::fs::remove_dir_all(versions.join(&name)) {
            Ok(()) => removed.push(name),
            Err(e) => {
                tracing::warn!(version = %name, error = %e, "cannot remove an old index version")
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("libriassist-index-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn chunks(n: usize) -> Vec<Chunk> {
        (0..n)
            .map(|i| Chunk {
                id: format!("doc{i}"),
                doc_id: format!("doc{i}"),
                title: format!("Titre {i}"),
                url: None,
                heading: None,
                text: format!("Le passage numéro {i} parle de livraison {i}."),
            })
            .collect()
    }

    fn write(dir: &Path, n: usize, version: &str) -> String {
        let c = chunks(n);
        let rows: Vec<Vec<f32>> = (0..n).map(|i| vec![1.0, i as f32]).collect();
        let vectors = DenseIndex::from_rows(2, &rows).unwrap();
        let v = NewVersion {
            chunks: &c,
            vectors: &vectors,
            documents: n,
            corpus_version: version,
            model_id: "test-model",
            analyzer: Analyzer::FrenchFolded,
            chunking: ChunkSettings::default(),
        };
        write_version(dir, &v).unwrap()
    }

    #[test]
    fn write_swap_load() {
        let dir = temp("write-swap-load");
        assert!(matches!(load(&dir), Err(KnowledgeError::NoIndex(_))));
        let first = write(&dir, 3, "aaaa");
        assert!(
            matches!(load(&dir), Err(KnowledgeError::NoIndex(_))),
            "not served before the swap"
        );
        swap_pointer(&dir, &first).unwrap();
        let index = load(&dir).unwrap();
        assert_eq!(
            (index.chunks.len(), index.dense.len(), index.bm25.len()),
            (3, 3, 3)
        );
        assert_eq!(index.manifest.corpus_version, "aaaa");
        assert_eq!(index.version, first);
        assert_eq!(index.bm25.search("passage numéro 2", 1).unwrap()[0].0, 2);
        std::thread::sleep(Duration::from_millis(2));
        let second = write(&dir, 5, "bbbb");
        swap_pointer(&dir, &second).unwrap();
        assert_eq!(load(&dir).unwrap().chunks.len(), 5);
        assert!(!dir.join("CURRENT.tmp").exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn corrupt_files_are_refused() {
        let dir = temp("corrupt");
        let name = write(&dir, 4, "cccc");
        swap_pointer(&dir, &name).unwrap();
        let vdir = dir.join(VERSIONS).join(&name);
        let vectors = std::fs::read(vdir.join(VECTORS)).unwrap();
        std::fs::write(vdir.join(VECTORS), &vectors[..vectors.len() - 4]).unwrap();
        let err = load(&dir).unwrap_err();
        assert!(matches!(err, KnowledgeError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("vectors.f32"), "{err}");
        std::fs::write(vdir.join(VECTORS), &vectors).unwrap();
        assert!(load(&dir).is_ok());

        let manifest = std::fs::read_to_string(vdir.join(MANIFEST)).unwrap();
        std::fs::write(vdir.join(MANIFEST), &manifest[..manifest.len() / 2]).unwrap();
        assert!(matches!(load(&dir), Err(KnowledgeError::Corrupt { .. })));
        std::fs::write(
            vdir.join(MANIFEST),
            manifest.replace("\"format\": 1", "\"format\": 99"),
        )
        .unwrap();
        assert!(load(&dir).unwrap_err().to_string().contains("format 99"));
        std::fs::write(vdir.join(MANIFEST), &manifest).unwrap();

        let bm25_file = std::fs::read_dir(vdir.join(BM25))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::write(&bm25_file, b"garbage").unwrap();
        assert!(matches!(load(&dir), Err(KnowledgeError::Corrupt { .. })));

        std::fs::write(dir.join(POINTER), "../../etc\n").unwrap();
        assert!(matches!(load(&dir), Err(KnowledgeError::Corrupt { .. })));
        std::fs::write(dir.join(POINTER), "missing-1\n").unwrap();
        assert!(matches!(load(&dir), Err(KnowledgeError::Corrupt { .. })));
        assert!(swap_pointer(&dir, "missing-1").is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn prune_keeps_the_current_and_newest() {
        let dir = temp("prune");
        let mut names = Vec::new();
        for v in ["v1", "v2", "v3", "v4"] {
            names.push(write(&dir, 1, v));
            std::thread::sleep(Duration::from_millis(2));
        }
        swap_pointer(&dir, &names[0]).unwrap();
        std::fs::create_dir_all(dir.join(VERSIONS).join(".staging-1-1")).unwrap();
        let removed = prune(&dir, 1).unwrap();
        assert_eq!(removed, [names[1].clone(), names[2].clone()]);
        assert!(dir.join(VERSIONS).join(&names[0]).is_dir());
        assert!(dir.join(VERSIONS).join(&names[3]).is_dir());
        assert!(
            dir.join(VERSIONS).join(".staging-1-1").is_dir(),
            "a recent staging directory may be a running build"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
