//! The index a running server answers from, and its reload.
//!
//! Requests take the current index (an `Arc`) when they start and keep it to the end, so a
//! reload never changes the passages under a request and never makes one wait: the new version
//! is loaded and verified on a blocking thread beside the running ones, then swapped in with one
//! atomic pointer store. A reload that fails (no index, corrupt files, another embedding model)
//! changes nothing: the previous version keeps serving and the error is reported to whoever
//! asked (SIGHUP log line or admin endpoint).

use super::index::{self, LoadedIndex};
use super::retriever::{Retrieval, Retriever};
use super::KnowledgeError;
use arc_swap::ArcSwap;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct KnowledgeBase {
    dir: PathBuf,
    current: ArcSwap<LoadedIndex>,
    retriever: Retriever,
    /// One reload at a time: two would load the same version twice for nothing.
    reloading: tokio::sync::Mutex<()>,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Reload {
    /// `CURRENT` still names the version being served.
    Unchanged {
        version: String,
        corpus_version: String,
    },
    Swapped {
        from: String,
        to: String,
        corpus_version: String,
        chunks: usize,
    },
}

impl KnowledgeBase {
    /// Loads the index in `dir` for `retriever`'s embedding model. Blocking (reads and verifies
    /// every file): call it at start-up or on a blocking thread.
    ///
    /// # Errors
    /// No index, a corrupt one, or one built with another embedding model.
    pub fn open(dir: &Path, retriever: Retriever) -> Result<KnowledgeBase, KnowledgeError> {
        let index = load_checked(dir, &retriever)?;
        tracing::info!(
            dir = %dir.display(),
            version = %index.version,
            corpus_version = %index.manifest.corpus_version,
            chunks = index.chunks.len(),
            "knowledge index loaded"
        );
        Ok(KnowledgeBase {
            dir: dir.to_owned(),
            current: ArcSwap::from_pointee(index),
            retriever,
            reloading: tokio::sync::Mutex::new(()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The version being served now.
    pub fn index(&self) -> Arc<LoadedIndex> {
        self.current.load_full()
    }

    pub fn retriever(&self) -> &Retriever {
        &self.retriever
    }

    /// Retrieves from the current version; returns that version with the result, since a
    /// reload may swap it right after.
    ///
    /// # Errors
    /// As [`Retriever::retrieve`].
    pub async fn retrieve(
        &self,
        question: &str,
        known: Option<(&[f32], &str)>,
    ) -> Result<(Arc<LoadedIndex>, Retrieval), KnowledgeError> {
        let index = self.index();
        let retrieval = self
            .retriever
            .retrieve(Arc::clone(&index), question, known)
            .await?;
        Ok((index, retrieval))
    }

    /// Loads the version `CURRENT` names now and serves it if it differs from the current one.
    ///
    /// # Errors
    /// As [`KnowledgeBase::open`]; the current version keeps serving.
    pub async fn reload(&self) -> Result<Reload, KnowledgeError> {
        let _one_at_a_time = self.reloading.lock().await;
        let dir = self.dir.clone();
        let serving = self.index();
        let next =
            index::current_version(&dir)?.ok_or_else(|| KnowledgeError::NoIndex(dir.clone()))?;
        if next == serving.version {
            return Ok(Reload::Unchanged {
                version: serving.version.clone(),
                corpus_version: serving.manifest.corpus_version.clone(),
            });
        }
        let retriever = self.retriever.clone();
        let loaded = tokio::task::spawn_blocking(move || load_checked(&dir, &retriever))
            .await
            .map_err(|e| KnowledgeError::FullText(format!("reload task failed: {e}")))??;
        let outcome = Reload::Swapped {
            from: serving.version.clone(),
            to: loaded.version.clone(),
            corpus_version: loaded.manifest.corpus_version.clone(),
            chunks: loaded.chunks.len(),
        };
        self.current.store(Arc::new(loaded));
        tracing::info!(?outcome, "knowledge index reloaded");
        Ok(outcome)
    }
}

fn load_checked(dir: &Path, retriever: &Retriever) -> Result<LoadedIndex, KnowledgeError> {
    let index = index::load(dir)?;
    let embedder = retriever.embedder();
    let m = &index.manifest;
    if m.model_id != embedder.model_id() || m.dimensions != embedder.dimensions() {
        return Err(KnowledgeError::ModelMismatch {
            dir: dir.to_owned(),
            index_model: m.model_id.clone(),
            index_dimensions: m.dimensions,
            model: embedder.model_id().to_owned(),
            dimensions: embedder.dimensions(),
        });
    }
    Ok(index)
}
