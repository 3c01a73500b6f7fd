//! Where the benchmark's questions come from.
//!
//! Popular questions are the FAQ's own questions: `examples/faq-librairie.jsonl` (one entry per
//! line, `title` or `question`) with the customer paraphrases of `examples/faq-questions.jsonl`
//! (`question`, `expected` entry id). Without that corpus, the 109 FAQ-style questions of
//! Service-Public.fr's online procedures and of the CRPA FAQ stand in for it, and paraphrases
//! are generated from fixed patterns customers use (greetings, thanks, lowercase typing).
//! Long-tail questions, each asked once, are the Service-Public.fr fiche titles and the PIAF
//! questions. Nothing here touches the network or the clock.

use libriassist_protocol::limits::MAX_QUESTION_CHARS;
use libriassist_protocol::normalize::normalize_question;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// A popular question and the ways customers rephrase it.
#[derive(Debug, Clone, PartialEq)]
pub struct Popular {
    pub text: String,
    pub paraphrases: Vec<String>,
}

/// Whether paraphrases were written by people or generated from patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParaphraseSource {
    Written,
    Generated,
}

/// Every question a run can ask, with where each group came from (for the report).
#[derive(Debug, Clone)]
pub struct Bank {
    pub popular: Vec<Popular>,
    pub tail: Vec<String>,
    pub popular_source: String,
    pub paraphrase_source: ParaphraseSource,
    pub tail_source: String,
}

#[derive(Deserialize)]
struct FaqEntry {
    id: serde_json::Value,
    #[serde(alias = "question")]
    title: Option<String>,
}

#[derive(Deserialize)]
struct FaqQuestion {
    question: String,
    #[serde(default)]
    expected: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Squad {
    data: Vec<SquadArticle>,
}

#[derive(Deserialize)]
struct SquadArticle {
    #[serde(default)]
    title: String,
    paragraphs: Vec<SquadParagraph>,
}

#[derive(Deserialize)]
struct SquadParagraph {
    #[serde(default)]
    qas: Vec<SquadQa>,
}

#[derive(Deserialize)]
struct SquadQa {
    question: String,
}

/// Loads the question bank.
///
/// # Errors
/// A message naming the file when a needed file is missing or malformed, or when no popular
/// or no long-tail question is left.
pub fn load(examples: &Path, data: &Path) -> Result<Bank, String> {
    let (popular, popular_source, paraphrase_source, mut tail) =
        if examples.join("faq-librairie.jsonl").is_file() {
            let (popular, off_topic) = from_examples(examples)?;
            let source = format!(
                "{}/faq-librairie.jsonl + faq-questions.jsonl",
                examples.display()
            );
            (popular, source, ParaphraseSource::Written, off_topic)
        } else {
            let qr = data.join("service-public-qr");
            let mut questions =
                csv_first_column(&read(&qr.join("manual_question_autocomplete.csv"))?);
            let crpa: Squad = parse_json(&qr.join("crpa_faq_squad.json"))?;
            questions.extend(crpa.data.iter().map(|a| a.title.clone()));
            let popular = questions
                .into_iter()
                .filter(|q| usable(q))
                .map(|text| Popular {
                    paraphrases: generated_paraphrases(&text),
                    text,
                })
                .collect();
            let source = format!(
                "{}: manual_question_autocomplete.csv + crpa_faq_squad.json (no FAQ corpus in {})",
                qr.display(),
                examples.display()
            );
            (
                dedup_popular(popular),
                source,
                ParaphraseSource::Generated,
                Vec::new(),
            )
        };
    let qr = data.join("service-public-qr");
    let fiches: Vec<(String, String, serde_json::Value)> =
        parse_json(&qr.join("questions_spf.json"))?;
    tail.extend(fiches.into_iter().map(|(_, q, _)| q));
    let piaf: Squad = parse_json(&data.join("piaf-v1.0").join("piaf-v1.0.json"))?;
    tail.extend(
        piaf.data
            .into_iter()
            .flat_map(|a| a.paragraphs)
            .flat_map(|p| p.qas)
            .map(|q| q.question),
    );

    // A tail question must be asked once and never match a popular question's cache entry.
    let mut seen: HashSet<String> = popular
        .iter()
        .flat_map(|p| std::iter::once(&p.text).chain(&p.paraphrases))
        .map(|q| normalize_question(q))
        .collect();
    tail.retain(|q| usable(q) && seen.insert(normalize_question(q)));
    if popular.is_empty() {
        return Err(format!("no popular question found ({popular_source})"));
    }
    if tail.is_empty() {
        return Err(format!("no long-tail question found in {}", data.display()));
    }
    let tail_source = format!(
        "{}: questions_spf.json titles + piaf-v1.0.json questions",
        data.display()
    );
    Ok(Bank {
        popular,
        tail,
        popular_source,
        paraphrase_source,
        tail_source,
    })
}

fn from_examples(dir: &Path) -> Result<(Vec<Popular>, Vec<String>), String> {
    let corpus = dir.join("faq-librairie.jsonl");
    let mut popular = Vec::new();
    let mut by_id = HashMap::new();
    for (i, line) in read(&corpus)?
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let entry: FaqEntry = serde_json::from_str(line)
            .map_err(|e| format!("{}:{}: {e}", corpus.display(), i + 1))?;
        let Some(title) = entry.title.filter(|t| usable(t)) else {
            continue;
        };
        by_id.insert(id_text(&entry.id), popular.len());
        popular.push(Popular {
            text: title.trim().to_owned(),
            paraphrases: Vec::new(),
        });
    }
    let mut off_topic = Vec::new();
    let questions = dir.join("faq-questions.jsonl");
    if questions.is_file() {
        for (i, line) in read(&questions)?
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let q: FaqQuestion = serde_json::from_str(line)
                .map_err(|e| format!("{}:{}: {e}", questions.display(), i + 1))?;
            match q
                .expected
                .as_ref()
                .map(id_text)
                .and_then(|id| by_id.get(&id))
            {
                Some(&index) => popular[index].paraphrases.push(q.question),
                None if q.expected.is_none() || q.expected == Some(serde_json::Value::Null) => {
                    off_topic.push(q.question)
                }
                // An entry the corpus does not have: neither a paraphrase nor surely off topic.
                None => {}
            }
        }
    }
    // Entries nobody rephrased still get the patterns, so every rank can be paraphrased.
    for p in &mut popular {
        p.paraphrases
            .retain(|q| usable(q) && normalize_question(q) != normalize_question(&p.text));
        if p.paraphrases.is_empty() {
            p.paraphrases = generated_paraphrases(&p.text);
        }
    }
    Ok((dedup_popular(popular), off_topic))
}

fn id_text(id: &serde_json::Value) -> String {
    match id {
        serde_json::Value::String(s) => s.trim().to_owned(),
        other => other.to_string(),
    }
}

fn dedup_popular(popular: Vec<Popular>) -> Vec<Popular> {
    let mut seen = HashSet::new();
    popular
        .into_iter()
        .filter(|p| seen.insert(normalize_question(&p.text)))
        .collect()
}

/// Questions a customer could type: a few words, under the API's length limit.
fn usable(q: &str) -> bool {
    let q = q.trim();
    q.split_whitespace().count() >= 3 && q.chars().count() <= MAX_QUESTION_CHARS.min(300)
}

/// Ways customers retype a question. The first differs only in case, apostrophe and final
/// punctuation, so it shares the cache key (an exact or edge hit); the others add the words
/// people put around a question, which only the semantic cache can recognise.
pub fn generated_paraphrases(question: &str) -> Vec<String> {
    let q = question.trim();
    let bare = q.trim_end_matches(['?', ' ', '\u{a0}', '\u{202f}']);
    let lower_first = lowercase_first(q);
    vec![
        bare.to_lowercase().replace('\'', "\u{2019}"),
        format!("Bonjour, {lower_first}"),
        format!("{q} Merci d'avance."),
        format!("Petite question : {lower_first}"),
    ]
}

/// Lowercases the first letter unless the first word is an acronym ("CAF", "PACS").
fn lowercase_first(q: &str) -> String {
    let first_word = q.split_whitespace().next().unwrap_or("");
    let acronym = first_word.chars().filter(|c| c.is_alphabetic()).count() > 1
        && first_word
            .chars()
            .filter(|c| c.is_alphabetic())
            .all(char::is_uppercase);
    let mut chars = q.chars();
    match chars.next() {
        Some(c) if !acronym => c.to_lowercase().chain(chars).collect(),
        _ => q.to_owned(),
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn parse_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    serde_json::from_str(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))
}

/// The first column of a CSV file with a header line; quoted fields may contain commas and
/// doubled quotes, as in the Service-Public.fr export.
fn csv_first_column(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix('"') {
                let mut field = String::new();
                let mut chars = rest.chars().peekable();
                while let Some(c) = chars.next() {
                    match c {
                        '"' if chars.peek() == Some(&'"') => {
                            field.push('"');
                            chars.next();
                        }
                        '"' => return Some(field),
                        c => field.push(c),
                    }
                }
                None
            } else {
                line.split(',')
                    .next()
                    .map(str::to_owned)
                    .filter(|f| !f.is_empty())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_commas_and_quotes() {
        let text =
            "\"Question\",\"Lien\"\n\"Puis-je payer, \"\"vite\"\" ?\",\"https://x\"\nsimple,lien\n";
        assert_eq!(
            csv_first_column(text),
            ["Puis-je payer, \"vite\" ?", "simple"]
        );
    }

    #[test]
    fn the_first_pattern_shares_the_cache_key_and_the_others_do_not() {
        let q = "Comment obtenir un acte d'état civil ?";
        let variants = generated_paraphrases(q);
        assert_eq!(normalize_question(&variants[0]), normalize_question(q));
        for v in &variants[1..] {
            assert_ne!(normalize_question(v), normalize_question(q), "{v}");
        }
        assert_eq!(
            variants[1],
            "Bonjour, comment obtenir un acte d'état civil ?"
        );
        assert_eq!(
            lowercase_first("CAF : quelles aides ?"),
            "CAF : quelles aides ?"
        );
    }

    #[test]
    fn examples_give_written_paraphrases_and_off_topic_tail() {
        let dir =
            std::env::temp_dir().join(format!("libriassist-bench-corpus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("faq-librairie.jsonl"),
            "{\"id\":\"livraison\",\"title\":\"Quels sont les frais de livraison ?\",\"text\":\"...\"}\n\
             {\"id\":2,\"question\":\"Comment retourner un livre ?\",\"answer\":\"...\"}\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("faq-questions.jsonl"),
            "{\"question\":\"Combien coûte la livraison ?\",\"expected\":\"livraison\"}\n\
             {\"question\":\"Quelle est la capitale du Pérou ?\",\"expected\":null}\n",
        )
        .unwrap();
        let (popular, off_topic) = from_examples(&dir).unwrap();
        assert_eq!(popular[0].paraphrases, ["Combien coûte la livraison ?"]);
        assert_eq!(
            popular[1].paraphrases.len(),
            4,
            "generated for the entry nobody rephrased"
        );
        assert_eq!(off_topic, ["Quelle est la capitale du Pérou ?"]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
