//! Cuts documents into passages ("chunks") small enough to embed well and to quote in a prompt.
//!
//! The cut follows the author's structure: a passage never spans two sections (its heading
//! stays true for all of it), paragraphs are packed whole while they fit, a paragraph too long
//! for one passage is cut between sentences, and a sentence too long is cut between words (or,
//! for a run of text without spaces, anywhere). Each passage after the first of a section
//! repeats the end of the previous one, cut at a sentence or word start, so a fact spanning a
//! cut is whole in at least one passage. Sizes are counted in characters, not bytes, so that
//! accented French text gets the same bound as ASCII.

use super::documents::Document;
use serde::{Deserialize, Serialize};

/// Bounds of a passage, in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkSettings {
    /// Longest passage. 1,000 characters of French is about 250-300 tokens: well inside the
    /// embedding model's 512, and five passages still make a short prompt.
    pub max_chars: usize,
    /// Characters repeated from the end of the previous passage of the same section.
    pub overlap_chars: usize,
}

impl Default for ChunkSettings {
    fn default() -> Self {
        ChunkSettings {
            max_chars: 1000,
            overlap_chars: 150,
        }
    }
}

impl ChunkSettings {
    /// # Errors
    /// A bound too small to hold a sentence, or an overlap that would leave little room for
    /// new text.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_chars < 100 {
            return Err(format!(
                "chunk max_chars must be at least 100, not {}",
                self.max_chars
            ));
        }
        if self.overlap_chars * 2 > self.max_chars {
            return Err(format!(
                "chunk overlap_chars ({}) must be at most half of max_chars",
                self.overlap_chars
            ));
        }
        Ok(())
    }
}

/// One passage, with what a source shown to a customer needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// The document id, with `#n` (from 1) when the document has several passages.
    pub id: String,
    pub doc_id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading: Option<String>,
    pub text: String,
}

impl Chunk {
    /// What both searches see: the title and heading give a passage the context its text often
    /// leaves implicit ("Sous 48 h." under "Délais de livraison").
    pub fn indexed_text(&self) -> String {
        let mut out = String::with_capacity(self.title.len() + self.text.len() + 64);
        for part in [Some(self.title.as_str()), self.heading.as_deref()]
            .into_iter()
            .flatten()
        {
            if !part.is_empty() {
                out.push_str(part);
                out.push('\n');
            }
        }
        out.push_str(&self.text);
        out
    }
}

/// The passages of one document, in reading order.
pub fn chunk_document(doc: &Document, settings: &ChunkSettings) -> Vec<Chunk> {
    let max = settings.max_chars.max(1);
    let overlap = settings.overlap_chars.min(max / 2);
    // Room for the overlap and the paragraph break after it.
    let unit_max = max.saturating_sub(overlap + 2).max(1);
    let mut texts: Vec<(Option<&str>, String)> = Vec::new();
    for section in &doc.sections {
        let mut units: Vec<(&'static str, String)> = Vec::new();
        for paragraph in &section.paragraphs {
            let paragraph = paragraph.trim();
            if paragraph.is_empty() {
                continue;
            }
            for (i, piece) in split_long(paragraph, unit_max).into_iter().enumerate() {
                units.push((if i == 0 { "\n\n" } else { " " }, piece));
            }
        }
        let mut current = String::new();
        let mut current_len = 0;
        for (joiner, unit) in units {
            let unit_len = unit.chars().count();
            if current.is_empty() {
                current = unit;
                current_len = unit_len;
            } else if current_len + joiner.len() + unit_len <= max {
                current.push_str(joiner);
                current.push_str(&unit);
                current_len += joiner.len() + unit_len;
            } else {
                let tail = overlap_tail(&current, overlap);
                texts.push((section.heading.as_deref(), std::mem::take(&mut current)));
                if tail.is_empty() {
                    current = unit;
                } else {
                    current = format!("{tail}{joiner}{unit}");
                }
                current_len = current.chars().count();
            }
        }
        if !current.is_empty() {
            texts.push((section.heading.as_deref(), current));
        }
    }
    let many = texts.len() > 1;
    texts
        .into_iter()
        .enumerate()
        .map(|(i, (heading, text))| Chunk {
            id: if many {
                format!("{}#{}", doc.id, i + 1)
            } else {
                doc.id.clone()
            },
            doc_id: doc.id.clone(),
            title: doc.title.clone(),
            url: doc.url.clone(),
            heading: heading.map(str::to_owned),
            text,
        })
        .collect()
}

/// Cuts a paragraph into pieces of at most `bound` characters, between sentences when it can,
/// else between words, else anywhere (on a character boundary).
fn split_long(paragraph: &str, bound: usize) -> Vec<String> {
    if paragraph.chars().count() <= bound {
        return vec![paragraph.to_owned()];
    }
    let mut segments: Vec<&str> = Vec::new();
    for sentence in sentences(paragraph) {
        if sentence.chars().count() <= bound {
            segments.push(sentence);
        } else {
            for word in words(sentence) {
                if word.chars().count() <= bound {
                    segments.push(word);
                } else {
                    segments.extend(hard_split(word, bound));
                }
            }
        }
    }
    // Segments keep their trailing whitespace, so packing is concatenation.
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut len = 0;
    for seg in segments {
        let seg_len = seg.trim_end().chars().count();
        if len > 0 && len + seg_len > bound {
            pieces.push(current.trim().to_owned());
            current.clear();
        }
        current.push_str(seg);
        len = current.trim_end().chars().count();
    }
    if !current.trim().is_empty() {
        pieces.push(current.trim().to_owned());
    }
    pieces.retain(|p| !p.is_empty());
    pieces
}

/// Slices of `text` that each end after a sentence end (`.`, `!`, `?`, `…`, possibly followed by
/// closing quotes or brackets) or a line break, with the whitespace that follows.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        i += c.len_utf8();
        if !matches!(c, '.' | '!' | '?' | '…' | '\n') {
            continue;
        }
        let mut end = i;
        if c != '\n' {
            // Closing marks belong to the sentence they close; French sets « » apart with a space.
            loop {
                let rest = &text[end..];
                let trimmed = rest.trim_start();
                let gap = rest.len() - trimmed.len();
                match trimmed.chars().next() {
                    Some('»') => end += gap + '»'.len_utf8(),
                    Some(d) if gap == 0 && matches!(d, '"' | ')' | ']' | '.' | '!' | '?' | '…') => {
                        end += d.len_utf8()
                    }
                    _ => break,
                }
            }
        }
        let rest = &text[end..];
        let trimmed = rest.trim_start();
        // A sentence ends only where whitespace follows: "3.5" and "p.ex." stay whole.
        if c != '\n' && !rest.is_empty() && trimmed.len() == rest.len() {
            i = end;
            continue;
        }
        end += rest.len() - trimmed.len();
        out.push(&text[start..end]);
        start = end;
        i = end;
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

/// Slices of `text` that each hold one word and the whitespace after it.
fn words(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_space = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            in_space = true;
        } else if in_space {
            out.push(&text[start..i]);
            start = i;
            in_space = false;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

fn hard_split(text: &str, bound: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut count = 0;
    for (i, _) in text.char_indices() {
        if count == bound {
            out.push(&text[start..i]);
            start = i;
            count = 0;
        }
        count += 1;
    }
    out.push(&text[start..]);
    out
}

/// The end of `text` to repeat at the start of the next passage: at most `overlap` characters,
/// starting at a sentence start if one falls inside, else at a word start; empty if neither.
fn overlap_tail(text: &str, overlap: usize) -> String {
    if overlap == 0 {
        return String::new();
    }
    let total = text.chars().count();
    if total <= overlap {
        return String::new();
    }
    let from = text
        .char_indices()
        .nth(total - overlap)
        .map_or(text.len(), |(i, _)| i);
    let window = &text[from..];
    let preceded_by_space = text[..from].ends_with(char::is_whitespace);
    let sentence_starts = sentences(window);
    // The first slice is a sentence start only if the cut happened to fall on one.
    let tail = if sentence_starts.len() > 1 {
        let first = sentence_starts[0];
        let first_is_start =
            preceded_by_space && text[..from].trim_end().ends_with(['.', '!', '?', '…']);
        if first_is_start {
            window
        } else {
            &window[first.len()..]
        }
    } else if preceded_by_space {
        window
    } else {
        match window.find(char::is_whitespace) {
            Some(i) => &window[i..],
            None => "",
        }
    };
    tail.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::documents::Section;

    fn doc(sections: Vec<(Option<&str>, Vec<&str>)>) -> Document {
        Document {
            id: "d".into(),
            title: "Titre".into(),
            url: Some("https://ex.fr/d".into()),
            sections: sections
                .into_iter()
                .map(|(h, ps)| Section {
                    heading: h.map(str::to_owned),
                    paragraphs: ps.into_iter().map(str::to_owned).collect(),
                })
                .collect(),
        }
    }

    fn settings(max: usize, overlap: usize) -> ChunkSettings {
        ChunkSettings {
            max_chars: max,
            overlap_chars: overlap,
        }
    }

    #[test]
    fn small_document_is_one_chunk_with_the_document_id() {
        let chunks = chunk_document(
            &doc(vec![(None, vec!["Un.", "Deux."])]),
            &ChunkSettings::default(),
        );
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].id, "d");
        assert_eq!(chunks[0].text, "Un.\n\nDeux.");
        assert_eq!(chunks[0].url.as_deref(), Some("https://ex.fr/d"));
        assert_eq!(chunks[0].indexed_text(), "Titre\nUn.\n\nDeux.");
    }

    #[test]
    fn sections_are_never_merged_and_keep_their_heading() {
        let chunks = chunk_document(
            &doc(vec![
                (None, vec!["Intro."]),
                (Some("Délais"), vec!["48 h."]),
            ]),
            &settings(200, 20),
        );
        let got: Vec<(&str, Option<&str>, &str)> = chunks
            .iter()
            .map(|c| (c.id.as_str(), c.heading.as_deref(), c.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [("d#1", None, "Intro."), ("d#2", Some("Délais"), "48 h.")]
        );
        assert_eq!(chunks[1].indexed_text(), "Titre\nDélais\n48 h.");
    }

    #[test]
    fn paragraphs_pack_whole_and_overlap_repeats_the_previous_sentence() {
        let p1 =
            "Première phrase assez longue pour compter. Deuxième phrase du premier paragraphe.";
        let p2 = "Le second paragraphe arrive ensuite et ne tient plus dans le même passage.";
        let chunks = chunk_document(&doc(vec![(None, vec![p1, p2])]), &settings(120, 60));
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].text, p1);
        assert!(
            chunks[1]
                .text
                .starts_with("Deuxième phrase du premier paragraphe.\n\n"),
            "{:?}",
            chunks[1].text
        );
        assert!(chunks[1].text.ends_with(p2));
    }

    #[test]
    fn long_text_respects_the_bound_in_characters_and_loses_nothing() {
        let sentence = "Les éditions reliées sont expédiées sous quarante-huit heures ouvrées. ";
        let long = sentence.repeat(40);
        let unbroken = "é".repeat(450);
        let d = doc(vec![(Some("H"), vec![long.trim(), &unbroken, "Court."])]);
        for (max, overlap) in [(100, 0), (100, 30), (250, 100), (1000, 150)] {
            let chunks = chunk_document(&d, &settings(max, overlap));
            for c in &chunks {
                let n = c.text.chars().count();
                assert!(n <= max, "max {max}: chunk of {n} chars: {:?}", c.text);
                assert!(!c.text.trim().is_empty());
            }
            // Without overlap, concatenating the chunks gives every word back in order.
            if overlap == 0 {
                let joined: String = chunks
                    .iter()
                    .map(|c| c.text.split_whitespace().collect::<String>())
                    .collect();
                let original: String = [long.trim(), &unbroken, "Court."]
                    .iter()
                    .map(|p| p.split_whitespace().collect::<String>())
                    .collect();
                assert_eq!(joined, original);
            }
        }
        // Sentence cuts: with room for two sentences, no chunk starts mid-sentence.
        let chunks = chunk_document(&doc(vec![(None, vec![long.trim()])]), &settings(150, 0));
        assert!(
            chunks.iter().all(|c| c.text.starts_with("Les éditions")),
            "{chunks:?}"
        );
    }

    #[test]
    fn sentence_boundaries_need_whitespace() {
        assert_eq!(
            sentences("Prix : 3.5 €. Oui ! « Non. » Fin"),
            ["Prix : 3.5 €. ", "Oui ! ", "« Non. » ", "Fin"]
        );
        assert_eq!(sentences("a\nb"), ["a\n", "b"]);
        assert_eq!(words("un  deux trois"), ["un  ", "deux ", "trois"]);
        assert_eq!(hard_split("ééééé", 2), ["éé", "éé", "é"]);
    }

    #[test]
    fn overlap_tail_starts_at_a_sentence_or_word() {
        assert_eq!(
            overlap_tail("Un deux trois. Quatre cinq.", 15),
            "Quatre cinq."
        );
        assert_eq!(
            overlap_tail("Un deux trois quatre cinq six", 12),
            "cinq six"
        );
        assert_eq!(overlap_tail("court", 50), "");
        assert_eq!(overlap_tail("abcdefghij", 3), "");
        assert_eq!(overlap_tail("Un deux.", 0), "");
    }

    #[test]
    fn settings_are_validated() {
        assert!(ChunkSettings::default().validate().is_ok());
        assert!(settings(50, 0).validate().is_err());
        assert!(settings(200, 150).validate().is_err());
    }
}
