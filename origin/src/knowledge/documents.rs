//! Readers that turn the bookstore's files into [`Document`]s: a title, an optional URL, and
//! sections (a heading and its paragraphs), which is all the chunker needs to cut along the
//! structure the author wrote.
//!
//! Formats, chosen by extension: Markdown (`.md`, `.markdown`; ATX headings, optional front
//! matter with `title:`/`url:`), plain text (`.txt`; paragraphs separated by blank lines), HTML
//! (`.html`, `.htm`; headings and block elements, scripts and styles dropped) and JSON Lines FAQ
//! (`.jsonl`; one `{"id", "title"|"question", "text"|"answer", "url"?}` object per line).
//!
//! Parsing is pure (text in, documents out) so it is tested on strings; only [`read_inputs`]
//! touches the file system. Ids are stable across runs (file path relative to the input, or the
//! FAQ entry's own id), since sources shown to customers and the corpus version depend on them.

use super::KnowledgeError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One source document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub id: String,
    pub title: String,
    pub url: Option<String>,
    pub sections: Vec<Section>,
}

/// A heading and the paragraphs under it; the first section of a document may have none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Section {
    pub heading: Option<String>,
    pub paragraphs: Vec<String>,
}

impl Document {
    /// Whether the document has any text to index.
    pub fn is_empty(&self) -> bool {
        self.sections
            .iter()
            .all(|s| s.paragraphs.iter().all(|p| p.trim().is_empty()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Text,
    Html,
    Jsonl,
}

impl Format {
    /// The format of a file, by extension; `None` for files we do not read.
    pub fn of(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "md" | "markdown" => Some(Format::Markdown),
            "txt" => Some(Format::Text),
            "html" | "htm" => Some(Format::Html),
            "jsonl" => Some(Format::Jsonl),
            _ => None,
        }
    }
}

/// Reads every input: a file is read whatever its name says if its extension is known (else an
/// error), a directory is walked recursively in name order and files of unknown types in it are
/// skipped. Hidden files and directories (`.git`) are skipped.
///
/// # Errors
/// An unreadable path, an explicitly named file of unknown type, a malformed file, or a
/// document id used twice.
pub fn read_inputs(inputs: &[PathBuf]) -> Result<Vec<Document>, KnowledgeError> {
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(|source| KnowledgeError::Read {
            path: input.clone(),
            source,
        })?;
        if meta.is_dir() {
            walk(input, input, &mut files)?;
        } else {
            if Format::of(input).is_none() {
                return Err(KnowledgeError::Unsupported(input.clone()));
            }
            let stem = input
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("document")
                .to_owned();
            files.push((input.clone(), stem));
        }
    }
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut documents = Vec::new();
    for (path, id_base) in files {
        let Some(format) = Format::of(&path) else {
            continue;
        };
        let bytes = std::fs::read(&path).map_err(|source| KnowledgeError::Read {
            path: path.clone(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| KnowledgeError::Parse {
            path: path.clone(),
            line: None,
            message: format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        })?;
        let parsed =
            parse(format, &id_base, &text).map_err(|(line, message)| KnowledgeError::Parse {
                path: path.clone(),
                line,
                message,
            })?;
        for doc in parsed {
            if let Some(first) = seen.get(&doc.id) {
                return Err(KnowledgeError::DuplicateId {
                    id: doc.id,
                    first: first.clone(),
                    second: path,
                });
            }
            seen.insert(doc.id.clone(), path.clone());
            documents.push(doc);
        }
    }
    Ok(documents)
}

/// Collects readable files under `dir` with their id base: the path relative to `root`,
/// without extension, `/`-separated whatever the platform.
fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, String)>) -> Result<(), KnowledgeError> {
    let read_err = |source| KnowledgeError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(read_err)?;
    entries.sort();
    for path in entries {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            // An index directory inside the inputs (`--input docs --out docs/index`) holds
            // chunks.jsonl files that would otherwise be read back as FAQ entries.
            if is_index_dir(&path) {
                tracing::debug!(path = %path.display(), "skipped: an index directory");
                continue;
            }
            walk(root, &path, out)?;
        } else if Format::of(&path).is_some() {
            let relative = path.strip_prefix(root).unwrap_or(&path).with_extension("");
            let id = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            out.push((path, id));
        } else {
            tracing::debug!(path = %path.display(), "skipped: not a document type we read");
        }
    }
    Ok(())
}

/// Whether `dir` is the root of an index written by `libriassist ingest`: it has a `CURRENT`
/// pointer, or a `versions/` directory whose entries are index versions.
fn is_index_dir(dir: &Path) -> bool {
    use super::index::{MANIFEST, POINTER, VERSIONS};
    if dir.join(POINTER).is_file() {
        return true;
    }
    let Ok(entries) = std::fs::read_dir(dir.join(VERSIONS)) else {
        return false;
    };
    entries.flatten().any(|e| {
        e.path().join(MANIFEST).is_file()
            || e.file_name().to_string_lossy().starts_with(".staging-")
    })
}

/// Parses one file's text. `id_base` names the document(s) of a Markdown, text or HTML file.
///
/// # Errors
/// The line (when known) and what is wrong; only JSON Lines can be malformed.
pub fn parse(
    format: Format,
    id_base: &str,
    text: &str,
) -> Result<Vec<Document>, (Option<usize>, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let docs = match format {
        Format::Markdown => vec![markdown(id_base, text)],
        Format::Text => vec![plain_text(id_base, text)],
        Format::Html => vec![html(id_base, text)],
        Format::Jsonl => return jsonl(text),
    };
    Ok(docs.into_iter().filter(|d| !d.is_empty()).collect())
}

/// `livraison-et-retrait` -> `Livraison et retrait`: a readable title for files without one.
fn title_from_id(id: &str) -> String {
    let name = id.rsplit('/').next().unwrap_or(id).replace(['-', '_'], " ");
    let mut chars = name.trim().chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => id.to_owned(),
    }
}

/// Accumulates paragraphs and sections while a reader walks its input.
#[derive(Default)]
struct Builder {
    sections: Vec<Section>,
    current: Section,
    paragraph: Vec<String>,
}

impl Builder {
    fn line(&mut self, line: &str) {
        let line = line.trim();
        if !line.is_empty() {
            self.paragraph.push(line.to_owned());
        }
    }

    fn end_paragraph(&mut self) {
        if !self.paragraph.is_empty() {
            self.current.paragraphs.push(self.paragraph.join("\n"));
            self.paragraph.clear();
        }
    }

    fn heading(&mut self, heading: String) {
        self.end_paragraph();
        let previous = std::mem::take(&mut self.current);
        if previous.heading.is_some() || !previous.paragraphs.is_empty() {
            self.sections.push(previous);
        }
        self.current.heading = Some(heading);
    }

    fn finish(mut self) -> Vec<Section> {
        self.end_paragraph();
        if self.current.heading.is_some() || !self.current.paragraphs.is_empty() {
            self.sections.push(self.current);
        }
        // A heading with nothing under it says nothing a passage could be grounded on.
        self.sections.retain(|s| !s.paragraphs.is_empty());
        self.sections
    }
}

fn markdown(id: &str, text: &str) -> Document {
    let mut title = None;
    let mut url = None;
    let mut body = text;
    // Front matter: only `title` and `url` matter to us; other keys are the site generator's.
    if let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    {
        if let Some(end) = rest.find("\n---") {
            for line in rest[..end].lines() {
                if let Some((key, value)) = line.split_once(':') {
                    let value = value
                        .trim()
                        .trim_matches(|c| c == '"' || c == '\'')
                        .to_owned();
                    match key.trim() {
                        "title" if !value.is_empty() => title = Some(value),
                        "url" if !value.is_empty() => url = Some(value),
                        _ => {}
                    }
                }
            }
            body = rest[end + 4..]
                .trim_start_matches(['-'])
                .trim_start_matches(['\r', '\n']);
        }
    }
    let mut b = Builder::default();
    let mut fence: Option<&str> = None;
    for line in body.lines() {
        let trimmed = line.trim_start();
        if let Some(marker) = fence {
            if trimmed.starts_with(marker) {
                fence = None;
                b.end_paragraph();
            } else {
                b.paragraph.push(line.trim_end().to_owned());
            }
            continue;
        }
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            b.end_paragraph();
            fence = Some(if trimmed.starts_with("```") {
                "```"
            } else {
                "~~~"
            });
            continue;
        }
        let hashes = trimmed.chars().take_while(|&c| c == '#').count();
        if (1..=6).contains(&hashes) && trimmed[hashes..].starts_with([' ', '\t']) {
            let heading = trimmed[hashes..]
                .trim()
                .trim_end_matches('#')
                .trim()
                .to_owned();
            if hashes == 1
                && title.is_none()
                && b.sections.is_empty()
                && b.current.paragraphs.is_empty()
            {
                title = Some(heading);
                continue;
            }
            b.heading(heading);
            continue;
        }
        if trimmed.is_empty() {
            b.end_paragraph();
        } else {
            b.line(line);
        }
    }
    Document {
        id: id.to_owned(),
        title: title.unwrap_or_else(|| title_from_id(id)),
        url,
        sections: b.finish(),
    }
}

fn plain_text(id: &str, text: &str) -> Document {
    let mut b = Builder::default();
    for line in text.lines() {
        if line.trim().is_empty() {
            b.end_paragraph();
        } else {
            b.line(line);
        }
    }
    Document {
        id: id.to_owned(),
        title: title_from_id(id),
        url: None,
        sections: b.finish(),
    }
}

/// Elements whose content is never shown as text.
/// Menus and footers repeat on every page of a site: indexed, they would match every question.
const HTML_SKIPPED: [&str; 9] = [
    "script", "style", "noscript", "template", "svg", "head", "iframe", "nav", "footer",
];
/// Elements that end the paragraph being read.
const HTML_BLOCKS: [&str; 24] = [
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "tr",
    "table",
    "section",
    "article",
    "aside",
    "blockquote",
    "pre",
    "hr",
    "header",
    "footer",
    "main",
    "nav",
    "form",
    "figure",
    "figcaption",
];

fn html(id: &str, text: &str) -> Document {
    use html5gum::{Token, Tokenizer};
    let mut b = Builder::default();
    let mut title: Option<String> = None;
    let mut url: Option<String> = None;
    // Depth inside skipped elements, and what is being collected instead of body text.
    let mut skipping: Vec<String> = Vec::new();
    let mut in_title = false;
    let mut heading: Option<String> = None;
    let mut inline = String::new();
    let flush_inline = |b: &mut Builder, inline: &mut String| {
        let collapsed = inline.split_whitespace().collect::<Vec<_>>().join(" ");
        if !collapsed.is_empty() {
            b.line(&collapsed);
        }
        inline.clear();
    };
    for token in Tokenizer::new(text).flatten() {
        match token {
            Token::StartTag(tag) => {
                let name = String::from_utf8_lossy(&tag.name).to_ascii_lowercase();
                if name == "title" {
                    in_title = true;
                    title.get_or_insert_with(String::new);
                    continue;
                }
                if name == "link" && url.is_none() {
                    let attr = |k: &str| {
                        tag.attributes
                            .get(k.as_bytes())
                            .map(|v| String::from_utf8_lossy(&v.value).into_owned())
                    };
                    if attr("rel").is_some_and(|r| r.eq_ignore_ascii_case("canonical")) {
                        url = attr("href").filter(|h| !h.is_empty());
                    }
                }
                if HTML_SKIPPED.contains(&name.as_str()) && !tag.self_closing {
                    skipping.push(name);
                    continue;
                }
                if !skipping.is_empty() {
                    continue;
                }
                if is_heading(&name) {
                    flush_inline(&mut b, &mut inline);
                    heading = Some(String::new());
                } else if HTML_BLOCKS.contains(&name.as_str()) {
                    flush_inline(&mut b, &mut inline);
                    if name != "br" && name != "li" && name != "dd" && name != "dt" && name != "tr"
                    {
                        b.end_paragraph();
                    }
                }
            }
            Token::EndTag(tag) => {
                let name = String::from_utf8_lossy(&tag.name).to_ascii_lowercase();
                if name == "title" {
                    in_title = false;
                    continue;
                }
                if let Some(pos) = skipping.iter().rposition(|s| *s == name) {
                    skipping.truncate(pos);
                    continue;
                }
                if !skipping.is_empty() {
                    continue;
                }
                if is_heading(&name) {
                    if let Some(h) = heading.take() {
                        let h = h.split_whitespace().collect::<Vec<_>>().join(" ");
                        if name == "h1"
                            && title.as_deref().is_none_or(str::is_empty)
                            && b.sections.is_empty()
                            && b.current.paragraphs.is_empty()
                        {
                            title = Some(h);
                        } else if !h.is_empty() {
                            b.heading(h);
                        }
                    }
                } else if HTML_BLOCKS.contains(&name.as_str()) {
                    flush_inline(&mut b, &mut inline);
                    if !matches!(name.as_str(), "li" | "dd" | "dt" | "tr") {
                        b.end_paragraph();
                    }
                } else if matches!(name.as_str(), "td" | "th") {
                    inline.push(' ');
                }
            }
            Token::String(s) => {
                let s = String::from_utf8_lossy(&s.value);
                if in_title {
                    if let Some(t) = title.as_mut() {
                        t.push_str(&s);
                    }
                } else if !skipping.is_empty() {
                } else if let Some(h) = heading.as_mut() {
                    h.push_str(&s);
                } else {
                    inline.push_str(&s);
                }
            }
            Token::Comment(_) | Token::Doctype(_) | Token::Error(_) => {}
        }
    }
    flush_inline(&mut b, &mut inline);
    let title = title
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|t| !t.is_empty());
    Document {
        id: id.to_owned(),
        title: title.unwrap_or_else(|| title_from_id(id)),
        url,
        sections: b.finish(),
    }
}

fn is_heading(name: &str) -> bool {
    matches!(name, "h1" | "h2" | "h3" | "h4" | "h5" | "h6")
}

/// One FAQ entry; both naming conventions of common FAQ exports are accepted.
#[derive(Deserialize)]
struct FaqEntry {
    id: serde_json::Value,
    #[serde(alias = "question")]
    title: Option<String>,
    #[serde(alias = "answer")]
    text: Option<String>,
    url: Option<String>,
}

fn jsonl(text: &str) -> Result<Vec<Document>, (Option<usize>, String)> {
    let mut docs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = Some(i + 1);
        if line.trim().is_empty() {
            continue;
        }
        let entry: FaqEntry =
            serde_json::from_str(line).map_err(|e| (n, format!("invalid JSON: {e}")))?;
        let id = match entry.id {
            serde_json::Value::String(s) if !s.trim().is_empty() => s.trim().to_owned(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => return Err((n, "\"id\" must be a non-empty string or a number".into())),
        };
        let title = entry
            .title
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        let Some(title) = title else {
            return Err((n, "missing \"title\" (or \"question\")".into()));
        };
        let body = entry.text.unwrap_or_default();
        if body.trim().is_empty() {
            return Err((n, "missing \"text\" (or \"answer\")".into()));
        }
        let mut b = Builder::default();
        for l in body.lines() {
            if l.trim().is_empty() {
                b.end_paragraph();
            } else {
                b.line(l);
            }
        }
        let url = entry
            .url
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty());
        docs.push(Document {
            id,
            title,
            url,
            sections: b.finish(),
        });
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(format: Format, text: &str) -> Document {
        let mut docs = parse(format, "faq/livraison-rapide", text).unwrap();
        assert_eq!(docs.len(), 1);
        docs.remove(0)
    }

    #[test]
    fn markdown_headings_paragraphs_and_front_matter() {
        let d = one(
            Format::Markdown,
            "---\ntitle: \"Livraison\"\nurl: https://ex.fr/livraison\nlayout: page\n---\n\nIntro.\n\n## Délais\nSous 48 h\nen France.\n\n- point a\n- point b\n\n### Coût ###\nGratuit dès 35 €.\n## Vide\n",
        );
        assert_eq!(d.title, "Livraison");
        assert_eq!(d.url.as_deref(), Some("https://ex.fr/livraison"));
        let s: Vec<(Option<&str>, Vec<&str>)> = d
            .sections
            .iter()
            .map(|s| {
                (
                    s.heading.as_deref(),
                    s.paragraphs.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            s,
            vec![
                (None, vec!["Intro."]),
                (
                    Some("Délais"),
                    vec!["Sous 48 h\nen France.", "- point a\n- point b"]
                ),
                (Some("Coût"), vec!["Gratuit dès 35 €."]),
            ]
        );
    }

    #[test]
    fn markdown_h1_is_the_title_and_code_fences_stay_whole() {
        let d = one(
            Format::Markdown,
            "# Cartes cadeaux\n\n```\n# pas un titre\n\nligne\n```\nTexte.",
        );
        assert_eq!(d.title, "Cartes cadeaux");
        assert_eq!(
            d.sections[0].paragraphs,
            ["# pas un titre\n\nligne", "Texte."]
        );
        assert_eq!(d.sections[0].heading, None);
    }

    #[test]
    fn text_titles_come_from_the_file_name() {
        let d = one(Format::Text, "Premier paragraphe\nsuite.\n\n\nSecond.");
        assert_eq!(d.title, "Livraison rapide");
        assert_eq!(d.id, "faq/livraison-rapide");
        assert_eq!(
            d.sections[0].paragraphs,
            ["Premier paragraphe\nsuite.", "Second."]
        );
    }

    #[test]
    fn html_keeps_text_structure_and_drops_scripts() {
        let d = one(
            Format::Html,
            r#"<!doctype html><html><head><title>Retours &amp; échanges</title>
            <link rel="canonical" href="https://ex.fr/retours"><style>p{color:red}</style></head>
            <body><nav><a href="/">Accueil</a></nav><h1>Retours</h1><p>Vous avez <b>30&nbsp;jours</b>
            pour retourner un livre.</p><script>if (a < b) { alert("x") }</script>
            <h2>Conditions</h2><ul><li>Livre neuf</li><li>Ticket</li></ul><p>Fin</p></body></html>"#,
        );
        assert_eq!(d.title, "Retours & échanges");
        assert_eq!(d.url.as_deref(), Some("https://ex.fr/retours"));
        // With a <title>, the h1 is a section heading like the others.
        assert_eq!(d.sections[0].heading.as_deref(), Some("Retours"));
        assert_eq!(
            d.sections[0].paragraphs,
            ["Vous avez 30 jours pour retourner un livre."]
        );
        assert_eq!(d.sections[1].heading.as_deref(), Some("Conditions"));
        assert_eq!(d.sections[1].paragraphs, ["Livre neuf\nTicket", "Fin"]);
        assert_eq!(d.sections.len(), 2);
    }

    #[test]
    fn html_without_title_uses_h1_then_file_name() {
        let d = one(Format::Html, "<h1>Horaires</h1><p>9 h - 19 h</p>");
        assert_eq!(d.title, "Horaires");
        let d = one(Format::Html, "<p>9 h - 19 h</p><p>unclosed <b>bold");
        assert_eq!(d.title, "Livraison rapide");
        assert_eq!(d.sections[0].paragraphs, ["9 h - 19 h", "unclosed bold"]);
    }

    #[test]
    fn jsonl_entries_and_their_errors() {
        let docs = parse(
            Format::Jsonl,
            "ignored",
            "{\"id\":\"a\",\"question\":\"Q ?\",\"answer\":\"R1\\n\\nR2\",\"url\":\"\"}\n\n{\"id\":7,\"title\":\"T\",\"text\":\"x\",\"extra\":1}\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(
            (
                docs[0].id.as_str(),
                docs[0].title.as_str(),
                docs[0].url.as_deref()
            ),
            ("a", "Q ?", None)
        );
        assert_eq!(docs[0].sections[0].paragraphs, ["R1", "R2"]);
        assert_eq!(docs[1].id, "7");
        let err = |text: &str| parse(Format::Jsonl, "x", text).unwrap_err();
        assert_eq!(
            err("{\"id\":\"a\",\"title\":\"T\",\"text\":\"x\"}\n{oops").0,
            Some(2)
        );
        assert!(err("{\"id\":\"a\",\"text\":\"x\"}").1.contains("title"));
        assert!(err("{\"id\":\"a\",\"title\":\"T\"}").1.contains("text"));
        assert!(err("{\"id\":\"\",\"title\":\"T\",\"text\":\"x\"}")
            .1
            .contains("id"));
        assert!(err("[1,2]").1.contains("invalid JSON"));
    }

    #[test]
    fn empty_documents_are_dropped() {
        assert!(parse(Format::Markdown, "x", "# Titre seul\n\n## Rien\n")
            .unwrap()
            .is_empty());
        assert!(parse(Format::Text, "x", "  \n\n").unwrap().is_empty());
    }

    #[test]
    fn inputs_from_files_and_directories() {
        let dir = std::env::temp_dir().join(format!("libriassist-docs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("faq/.git")).unwrap();
        std::fs::write(dir.join("faq/b.md"), "# B\ntexte b").unwrap();
        std::fs::write(dir.join("faq/a.txt"), "texte a").unwrap();
        std::fs::write(dir.join("faq/image.png"), [0u8, 1, 2]).unwrap();
        std::fs::write(dir.join("faq/.git/x.md"), "caché").unwrap();
        std::fs::write(
            dir.join("extra.jsonl"),
            "{\"id\":\"faq/a\",\"title\":\"T\",\"text\":\"x\"}\n",
        )
        .unwrap();
        let docs = read_inputs(&[dir.join("faq")]).unwrap();
        let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        // The JSON Lines entry "faq/a" collides with the file faq/a.txt under the same root.
        let err = read_inputs(std::slice::from_ref(&dir)).unwrap_err();
        assert!(
            matches!(err, KnowledgeError::DuplicateId { ref id, .. } if id == "faq/a"),
            "{err}"
        );
        let docs = read_inputs(&[dir.join("faq"), dir.join("extra.jsonl")]).unwrap();
        let ids: Vec<&str> = docs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "faq/a"]);
        // An index written inside the inputs is not read back as documents.
        std::fs::create_dir_all(dir.join("faq/index/versions/v1")).unwrap();
        std::fs::write(dir.join("faq/index/versions/v1/manifest.json"), "{}").unwrap();
        let line = "{\"id\":\"z\",\"title\":\"T\",\"text\":\"x\"}\n";
        std::fs::write(dir.join("faq/index/versions/v1/chunks.jsonl"), line).unwrap();
        assert_eq!(read_inputs(&[dir.join("faq")]).unwrap().len(), 2);
        assert!(matches!(
            read_inputs(&[dir.join("faq/image.png")]),
            Err(KnowledgeError::Unsupported(_))
        ));
        assert!(matches!(
            read_inputs(&[dir.join("missing")]),
            Err(KnowledgeError::Read { .. })
        ));
        std::fs::write(dir.join("faq/bad.txt"), [0xff, 0xfe, 0x41]).unwrap();
        assert!(matches!(
            read_inputs(&[dir.join("faq")]),
            Err(KnowledgeError::Parse { .. })
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
