//! `manifest.json`: what an index version is (corpus version, embedding model, counts, build
//! time, analyzer, chunking) and the digest of every file in it, so a loader can refuse a
//! truncated or altered index instead of answering from it.
//!
//! The corpus version is a content hash of everything that decides what retrieval returns: the
//! passages (ids, titles, URLs, headings, text), the chunking bounds, the analyzer and the
//! embedding model. Re-ingesting the same inputs gives the same version, so caches scoped by it
//! stay valid; any change gives a new one, so they cannot serve an answer from old documents.

use super::bm25::Analyzer;
use super::chunk::{Chunk, ChunkSettings};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Bumped when the on-disk layout changes; a loader refuses other versions.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// First 16 hex digits of the content hash (64 bits: collisions between versions of one
    /// corpus are not a concern, and short keys keep cache keys short).
    pub corpus_version: String,
    pub model_id: String,
    pub dimensions: usize,
    pub documents: usize,
    pub chunks: usize,
    /// UTC, RFC 3339.
    pub built_at: String,
    pub analyzer: Analyzer,
    pub chunking: ChunkSettings,
    /// File name (relative to the version directory) -> size and SHA-256.
    pub files: BTreeMap<String, FileDigest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    pub bytes: u64,
    pub sha256: String,
}

/// The corpus version of these passages indexed this way.
pub fn corpus_version(
    chunks: &[Chunk],
    chunking: &ChunkSettings,
    analyzer: Analyzer,
    model_id: &str,
) -> String {
    let mut h = Sha256::new();
    // Length-prefixed fields: no two different inputs can produce the same byte stream.
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(&FORMAT.to_le_bytes());
    field(model_id.as_bytes());
    field(analyzer.name().as_bytes());
    field(&(chunking.max_chars as u64).to_le_bytes());
    field(&(chunking.overlap_chars as u64).to_le_bytes());
    for c in chunks {
        field(c.id.as_bytes());
        field(c.title.as_bytes());
        field(c.url.as_deref().unwrap_or("").as_bytes());
        field(c.heading.as_deref().unwrap_or("").as_bytes());
        field(c.text.as_bytes());
    }
    hex(&h.finalize())[..16].to_owned()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `seconds` since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC), without a date crate.
pub fn rfc3339(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rem = seconds % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(id: &str, text: &str) -> Chunk {
        Chunk {
            id: id.into(),
            doc_id: id.into(),
            title: "T".into(),
            url: None,
            heading: None,
            text: text.into(),
        }
    }

    #[test]
    fn corpus_version_follows_content_only() {
        let s = ChunkSettings::default();
        let a = vec![chunk("a", "un"), chunk("b", "deux")];
        let v = corpus_version(&a, &s, Analyzer::FrenchFolded, "m");
        assert_eq!(v.len(), 16);
        assert_eq!(
            v,
            corpus_version(&a.clone(), &s, Analyzer::FrenchFolded, "m")
        );
        assert_ne!(
            v,
            corpus_version(
                &[chunk("a", "un"), chunk("b", "deux!")],
                &s,
                Analyzer::FrenchFolded,
                "m"
            )
        );
        assert_ne!(
            v,
            corpus_version(&a, &s, Analyzer::FrenchFolded, "other-model")
        );
        assert_ne!(v, corpus_version(&a, &s, Analyzer::French, "m"));
        let s2 = ChunkSettings {
            max_chars: 500,
            ..s
        };
        assert_ne!(v, corpus_version(&a, &s2, Analyzer::FrenchFolded, "m"));
        // Field boundaries matter: moving a character from one field to the next changes it.
        assert_ne!(
            corpus_version(&[chunk("ab", "c")], &s, Analyzer::FrenchFolded, "m"),
            corpus_version(&[chunk("a", "bc")], &s, Analyzer::FrenchFolded, "m")
        );
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_798_761_599), "2026-12-31T23:59:59Z");
    }

    #[test]
    fn manifest_round_trips() {
        let m = Manifest {
            format: FORMAT,
            corpus_version: "0123456789abcdef".into(),
            model_id: "m".into(),
            dimensions: 384,
            documents: 2,
            chunks: 3,
            built_at: rfc3339(0),
            analyzer: Analyzer::FrenchFolded,
            chunking: ChunkSettings::default(),
            files: BTreeMap::from([(
                "chunks.jsonl".into(),
                FileDigest {
                    bytes: 3,
                    sha256: sha256_hex(b"abc"),
                },
            )]),
        };
        let json = serde_json::to_string_pretty(&m).unwrap();
        assert_eq!(serde_json::from_str::<Manifest>(&json).unwrap(), m);
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
