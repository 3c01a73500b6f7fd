//! Loaders for the public data sets of the evaluation (`../shared/data`), and the pairs drawn
//! from them. Deterministic: the same files give the same pairs.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// (cached question, new question).
pub type Pair = (String, String);

pub struct PairSet {
    pub name: String,
    pub paraphrases: Vec<Pair>,
    pub others: Vec<Pair>,
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// RFC 4180 rows: quoted fields may hold commas, newlines and doubled quotes.
pub fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field) = (Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, '\r') => {}
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// STS benchmark, French dev split: score >= 4.5 paraphrases, <= 3.0 not.
pub fn stsb(dir: &Path) -> Result<PairSet, String> {
    let text = read(&dir.join("stsb-multi-mt-fr/stsb-fr-dev.csv"))?;
    let (mut paraphrases, mut others) = (Vec::new(), Vec::new());
    for row in csv_rows(&text) {
        let [a, b, score] = row.as_slice() else {
            continue;
        };
        let Ok(score) = score.trim().parse::<f32>() else {
            continue;
        };
        if score >= 4.5 {
            paraphrases.push((a.clone(), b.clone()));
        } else if score <= 3.0 {
            others.push((a.clone(), b.clone()));
        }
    }
    Ok(PairSet {
        name: "STS-B fr dev (sentence pairs)".into(),
        paraphrases,
        others,
    })
}

/// A small deterministic generator: the evaluation must give the same pairs every run.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// banking77 (English) test split: `n` pairs of the same intent, `n` of different intents.
pub fn banking77(dir: &Path, n: usize) -> Result<PairSet, String> {
    let text = read(&dir.join("banking77-en/test.csv"))?;
    let mut by_intent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in csv_rows(&text).into_iter().skip(1) {
        if let [text, intent] = row.as_slice() {
            by_intent
                .entry(intent.clone())
                .or_default()
                .push(text.clone());
        }
    }
    let intents: Vec<&Vec<String>> = by_intent.values().filter(|v| v.len() >= 2).collect();
    if intents.len() < 2 {
        return Err("banking77: fewer than two intents".into());
    }
    let mut rng = SplitMix(77);
    let (mut paraphrases, mut others) = (Vec::new(), Vec::new());
    let mut seen = HashSet::new();
    while paraphrases.len() < n {
        let group = intents[rng.below(intents.len())];
        let (i, j) = (rng.below(group.len()), rng.below(group.len()));
        if i != j && seen.insert((group[i].clone(), group[j].clone())) {
            paraphrases.push((group[i].clone(), group[j].clone()));
        }
    }
    while others.len() < n {
        let (g, h) = (rng.below(intents.len()), rng.below(intents.len()));
        if g == h {
            continue;
        }
        let (a, b) = (
            &intents[g][rng.below(intents[g].len())],
            &intents[h][rng.below(intents[h].len())],
        );
        if seen.insert((a.clone(), b.clone())) {
            others.push((a.clone(), b.clone()));
        }
    }
    Ok(PairSet {
        name: "banking77 en test (same intent / different intents)".into(),
        paraphrases,
        others,
    })
}

/// Every distinct question of the Service-Public.fr sets: the fiche titles, the CRPA FAQ and
/// the autocomplete questions. Each has its own answer, so none may be served another's.
pub fn service_public_questions(dir: &Path) -> Result<Vec<String>, String> {
    let base = dir.join("service-public-qr");
    let mut out = Vec::new();
    let titles: serde_json::Value = serde_json::from_str(&read(&base.join("questions_spf.json"))?)
        .map_err(|e| format!("questions_spf.json: {e}"))?;
    for triple in titles.as_array().into_iter().flatten() {
        if let Some(q) = triple.get(1).and_then(|v| v.as_str()) {
            out.push(q.trim().to_owned());
        }
    }
    let crpa: serde_json::Value = serde_json::from_str(&read(&base.join("crpa_faq_squad.json"))?)
        .map_err(|e| format!("crpa_faq_squad.json: {e}"))?;
    for article in crpa["data"].as_array().into_iter().flatten() {
        if let Some(q) = article["title"].as_str() {
            out.push(q.trim().to_owned());
        }
    }
    for row in csv_rows(&read(&base.join("manual_question_autocomplete.csv"))?)
        .into_iter()
        .skip(1)
    {
        if let Some(q) = row.first() {
            out.push(q.trim().to_owned());
        }
    }
    let mut seen = HashSet::new();
    out.retain(|q| !q.is_empty() && seen.insert(libriassist_protocol::normalize_question(q)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes() {
        let rows = csv_rows("a,\"b, c\",\"d \"\"e\"\"\"\r\n\"x\ny\",z\n");
        assert_eq!(rows, vec![vec!["a", "b, c", "d \"e\""], vec!["x\ny", "z"]]);
    }
}
