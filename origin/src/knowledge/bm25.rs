//! BM25 search over the passages with a French analyzer, on tantivy.
//!
//! The analyzer splits on non-alphanumeric characters (so "l'échange" gives "l" and
//! "échange"), drops tokens over 40 bytes, lowercases, removes French stop words (including the
//! elided "l", "d", "qu"), and applies the Snowball French stemmer. The folded variant then
//! strips accents from the stems, so that "numerique" typed without accents meets "numérique";
//! folding comes after stemming because the stemmer's rules depend on accents. Which variant
//! an index uses is recorded in its manifest; `docs/EVALUATION.md` compares them.
//!
//! Questions are never parsed as tantivy query syntax (a customer's "prix: 10 €?" is not a
//! field query): they go through the same analyzer and become a disjunction of their terms.
//! The index is small and read-only once built, so it is loaded into memory from verified
//! bytes rather than memory-mapped: nothing is written to the index directory at load (it may
//! be read-only), and the bytes searched are the bytes whose digest was checked.

use super::KnowledgeError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;
use tantivy::collector::TopDocs;
use tantivy::columnar::Column;
use tantivy::directory::RamDirectory;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer,
    StopWordFilter, TextAnalyzer,
};
use tantivy::{Directory, Index, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term};

const TOKENIZER: &str = "libriassist_fr";
const TEXT: &str = "text";
const ORD: &str = "ord";
/// Indexing memory: tantivy's floor is 15 MB per thread; one thread keeps document order and
/// the build deterministic, and 64 MB indexes the 100k-passage benchmark without a flush storm.
const WRITER_MEMORY: usize = 64_000_000;

/// Which French analysis the index uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Analyzer {
    /// Lowercase, stop words, French stemmer.
    French,
    /// The same, then ASCII folding of the stems.
    #[default]
    FrenchFolded,
}

impl Analyzer {
    pub const fn name(self) -> &'static str {
        match self {
            Analyzer::French => "french",
            Analyzer::FrenchFolded => "french-folded",
        }
    }

    pub fn text_analyzer(self) -> TextAnalyzer {
        // The French list ships with tantivy's `stopwords` feature; it is always enabled here.
        let stop = StopWordFilter::new(Language::French)
            .unwrap_or_else(|| StopWordFilter::remove(Vec::new()));
        let base = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .filter(stop)
            .filter(Stemmer::new(Language::French));
        match self {
            Analyzer::French => base.build(),
            Analyzer::FrenchFolded => base.filter(AsciiFoldingFilter).build(),
        }
    }

    /// The distinct terms of `text`, in order of first appearance.
    pub fn terms(self, text: &str) -> Vec<String> {
        let mut analyzer = self.text_analyzer();
        let mut stream = analyzer.token_stream(text);
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        while stream.advance() {
            let t = stream.token().text.clone();
            if seen.insert(t.clone()) {
                out.push(t);
            }
        }
        out
    }
}

fn schema() -> (Schema, Field, Field) {
    let mut builder = Schema::builder();
    // Frequencies but no positions: BM25 needs no phrase queries, and positions would double
    // the index.
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(TOKENIZER)
        .set_index_option(IndexRecordOption::WithFreqs);
    let text = builder.add_text_field(TEXT, TextOptions::default().set_indexing_options(indexing));
    let ord = builder.add_u64_field(ORD, NumericOptions::default().set_fast());
    (builder.build(), text, ord)
}

/// Builds the index of `texts` (passage `i` is the `i`-th text) in the empty directory `dir`.
///
/// # Errors
/// Any tantivy or file-system failure.
pub fn build<'a>(
    dir: &Path,
    analyzer: Analyzer,
    texts: impl Iterator<Item = &'a str>,
) -> Result<(), KnowledgeError> {
    std::fs::create_dir_all(dir).map_err(|source| KnowledgeError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let (schema, text, ord) = schema();
    let index = Index::create_in_dir(dir, schema)?;
    index
        .tokenizers()
        .register(TOKENIZER, analyzer.text_analyzer());
    fill(&index, text, ord, texts)
}

fn fill<'a>(
    index: &Index,
    text: Field,
    ord: Field,
    texts: impl Iterator<Item = &'a str>,
) -> Result<(), KnowledgeError> {
    let mut writer: IndexWriter = index.writer_with_num_threads(1, WRITER_MEMORY)?;
    for (i, t) in texts.enumerate() {
        let mut doc = TantivyDocument::default();
        doc.add_text(text, t);
        doc.add_u64(ord, i as u64);
        writer.add_document(doc)?;
    }
    writer.commit()?;
    writer.wait_merging_threads()?;
    Ok(())
}

/// Whether a file in a built index directory is part of the index (as opposed to a lock file
/// that tantivy leaves behind and that must not be checksummed).
pub fn is_index_file(name: &str) -> bool {
    !name.starts_with(".tantivy-") && !name.ends_with(".lock")
}

/// A loaded, read-only BM25 index.
pub struct Bm25Index {
    searcher: Searcher,
    text: Field,
    /// Per segment, the passage number of each tantivy document.
    ords: Vec<Column<u64>>,
    analyzer: Analyzer,
}

impl std::fmt::Debug for Bm25Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bm25Index")
            .field("docs", &self.searcher.num_docs())
            .field("analyzer", &self.analyzer)
            .finish()
    }
}

impl Bm25Index {
    /// Opens an index from its files' bytes (name, content), as listed by the manifest.
    ///
    /// # Errors
    /// Missing or inconsistent tantivy files.
    pub fn from_files(
        files: Vec<(String, Vec<u8>)>,
        analyzer: Analyzer,
    ) -> Result<Bm25Index, KnowledgeError> {
        let dir = RamDirectory::create();
        for (name, bytes) in files {
            dir.atomic_write(Path::new(&name), &bytes)
                .map_err(|e| KnowledgeError::FullText(format!("cannot stage {name}: {e}")))?;
        }
        let index = Index::open(dir)?;
        Self::open(index, analyzer)
    }

    /// Builds an index in memory; for evaluations and tests, which need no files.
    ///
    /// # Errors
    /// Any tantivy failure.
    pub fn in_memory<'a>(
        analyzer: Analyzer,
        texts: impl Iterator<Item = &'a str>,
    ) -> Result<Bm25Index, KnowledgeError> {
        let (schema, text, ord) = schema();
        let index = Index::create_in_ram(schema);
        index
            .tokenizers()
            .register(TOKENIZER, analyzer.text_analyzer());
        fill(&index, text, ord, texts)?;
        Self::open(index, analyzer)
    }

    fn open(index: Index, analyzer: Analyzer) -> Result<Bm25Index, KnowledgeError> {
        index
            .tokenizers()
            .register(TOKENIZER, analyzer.text_analyzer());
        let schema = index.schema();
        let text = schema
            .get_field(TEXT)
            .map_err(|_| KnowledgeError::FullText(format!("no field {TEXT:?}")))?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let searcher = reader.searcher();
        let ords = searcher
            .segment_readers()
            .iter()
            .map(|s| s.fast_fields().u64(ORD))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Bm25Index {
            searcher,
            text,
            ords,
            analyzer,
        })
    }

    pub fn len(&self) -> usize {
        self.searcher.num_docs() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn analyzer(&self) -> Analyzer {
        self.analyzer
    }

    /// The `k` best passages for `question`, best first, with their BM25 scores. A question
    /// with no indexable term (only stop words, say) matches nothing.
    ///
    /// # Errors
    /// A tantivy failure while searching.
    pub fn search(&self, question: &str, k: usize) -> Result<Vec<(u32, f32)>, KnowledgeError> {
        let terms = self.analyzer.terms(question);
        if terms.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .map(|t| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(self.text, t),
                    IndexRecordOption::WithFreqs,
                ));
                (Occur::Should, q)
            })
            .collect();
        let query = BooleanQuery::new(clauses);
        let top = self
            .searcher
            .search(&query, &TopDocs::with_limit(k).order_by_score())?;
        let mut out = Vec::with_capacity(top.len());
        for (score, address) in top {
            let ord = self
                .ords
                .get(address.segment_ord as usize)
                .and_then(|c| c.first(address.doc_id));
            match ord.and_then(|o| u32::try_from(o).ok()) {
                Some(o) => out.push((o, score)),
                None => {
                    return Err(KnowledgeError::FullText(
                        "a document has no passage number".into(),
                    ))
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn french_analysis() {
        let t = Analyzer::French.terms("Les livres numériques d'occasion, l'échange et LIVRE");
        assert_eq!(t, ["livr", "numer", "occas", "échang"]);
        let t = Analyzer::FrenchFolded.terms("l'échange des livres numeriques");
        assert_eq!(t, ["echang", "livr", "numer"]);
        assert!(Analyzer::French.terms("de la et les à").is_empty());
    }

    #[test]
    fn search_ranks_and_ignores_query_syntax() {
        let texts = [
            "Les frais de livraison sont offerts dès 35 euros.",
            "Nous acceptons la carte bancaire et PayPal.",
            "Les livres numériques sont au format EPUB.",
            "La livraison en point relais prend trois jours.",
        ];
        let index = Bm25Index::in_memory(Analyzer::FrenchFolded, texts.iter().copied()).unwrap();
        assert_eq!(index.len(), 4);
        let hits = index
            .search("livraison: frais? \"gratuite\" AND (", 10)
            .unwrap();
        let ords: Vec<u32> = hits.iter().map(|h| h.0).collect();
        assert_eq!(ords, [0, 3]);
        assert!(hits[0].1 > hits[1].1);
        assert_eq!(index.search("livre numerique", 1).unwrap()[0].0, 2);
        assert!(index.search("le la les", 5).unwrap().is_empty());
        assert!(index.search("zzz", 5).unwrap().is_empty());
        assert!(index.search("livraison", 0).unwrap().is_empty());
    }

    #[test]
    fn built_on_disk_then_loaded_from_bytes() {
        let dir = std::env::temp_dir().join(format!("libriassist-bm25-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let texts: Vec<String> = (0..500)
            .map(|i| format!("passage numéro {i} sur le thème {}", i % 7))
            .collect();
        build(&dir, Analyzer::French, texts.iter().map(String::as_str)).unwrap();
        let files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| is_index_file(n))
            .map(|n| (n.clone(), std::fs::read(dir.join(&n)).unwrap()))
            .collect();
        let index = Bm25Index::from_files(files, Analyzer::French).unwrap();
        assert_eq!(index.len(), 500);
        let hits = index.search("numéro 123", 3).unwrap();
        assert_eq!(hits[0].0, 123);
        assert!(Bm25Index::from_files(Vec::new(), Analyzer::French).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
