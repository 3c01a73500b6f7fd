//! What the semantic guards need to know about a question, read from its original text:
//! tokens with their case and position, the language, negation, numbers, proper names,
//! decisive interrogatives and stemmed content words.
//!
//! The original text matters: normalization lowercases, and a capital is the only sign of a
//! name ("Livrez-vous à Lyon ?" vs "à Lille"). A capital at the start of a sentence says
//! nothing, so an initial word counts as a name only when it is not a stop word, not an
//! interrogative and not an inverted verb ("Livrez-vous").
//!
//! Pure functions, no allocation-heavy models: an analysis takes microseconds.

use super::lexicon::{
    DECISIVE_INTERROGATIVES, ENGLISH_MARKERS, ENGLISH_STOP_WORDS, FRENCH_MARKERS,
    FRENCH_STOP_WORDS, INVERTED_PRONOUNS, NEGATION_MARKERS, NUMBER_WORDS, ORDINAL_WORDS,
    STORE_OFFER_VERBS, SYNONYMS,
};
use rust_stemmers::{Algorithm, Stemmer};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    French,
    English,
}

/// One word of the question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub original: String,
    /// Lowercase, accents folded.
    pub folded: String,
    pub sentence_initial: bool,
    /// Followed by a hyphen and a subject pronoun: an inverted verb ("Proposez-vous").
    pub inverted: bool,
    /// The store is the subject: inverted with "vous" ("Vendez-vous") or after "vous".
    pub store_subject: bool,
    /// Came right after an apostrophe ("l'adresse", "don't").
    pub after_apostrophe: bool,
}

/// Lowercase with French (and other Latin) accents removed: "Numérique" -> "numerique".
pub fn fold(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    for c in word.chars().flat_map(char::to_lowercase) {
        match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => out.push('a'),
            'ç' => out.push('c'),
            'è' | 'é' | 'ê' | 'ë' => out.push('e'),
            'ì' | 'í' | 'î' | 'ï' => out.push('i'),
            'ñ' => out.push('n'),
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' => out.push('o'),
            'ù' | 'ú' | 'û' | 'ü' => out.push('u'),
            'ý' | 'ÿ' => out.push('y'),
            'œ' => out.push_str("oe"),
            'æ' => out.push_str("ae"),
            other => out.push(other),
        }
    }
    out
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{2018}' | '\u{02BC}' | '`')
}

fn is_hyphen(c: char) -> bool {
    matches!(c, '-' | '\u{2010}' | '\u{2011}')
}

fn ends_sentence(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | ';' | ':' | '\n' | '…')
}

/// Splits on everything but letters and digits, remembering what separated the words.
pub fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens: Vec<Token> = Vec::new();
    let mut word = String::new();
    let mut sentence_start = true;
    // What stood between the previous word and this one (whitespace as ' ').
    let mut separator = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            push_token(
                &mut tokens,
                std::mem::take(&mut word),
                &separator,
                sentence_start,
            );
            sentence_start = false;
            separator.clear();
        }
        if ends_sentence(c) {
            sentence_start = true;
        }
        separator.push(if c.is_whitespace() { ' ' } else { c });
    }
    if !word.is_empty() {
        push_token(&mut tokens, word, &separator, sentence_start);
    }
    tokens
}

fn push_token(tokens: &mut Vec<Token>, word: String, separator: &str, sentence_initial: bool) {
    let mut chars = separator.chars();
    let only = match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    };
    let after_hyphen = only.is_some_and(is_hyphen);
    let after_apostrophe = only.is_some_and(is_apostrophe);
    let folded = fold(&word);
    if after_hyphen && INVERTED_PRONOUNS.contains(&folded.as_str()) {
        // "a-t-il": the verb is the word before the euphonic "t".
        if let Some(verb) = tokens.iter_mut().rev().find(|t| t.folded != "t") {
            verb.inverted = true;
            verb.store_subject |= folded == "vous";
        }
    }
    let store_subject = tokens.last().is_some_and(|t| t.folded == "vous");
    tokens.push(Token {
        original: word,
        folded,
        sentence_initial,
        inverted: false,
        store_subject,
        after_apostrophe,
    });
}

fn set(words: &'static [&'static str]) -> HashSet<String> {
    words.iter().map(|w| fold(w)).collect()
}

struct Lexicon {
    stop: HashSet<String>,
    negation: HashSet<String>,
    interrogative: HashSet<String>,
    numbers: HashMap<String, u64>,
    ordinals: HashMap<String, u64>,
    french: HashSet<String>,
    english: HashSet<String>,
    /// Folded word or stem -> the stem standing for its synonym group.
    synonyms: HashMap<String, String>,
    store_offer: HashSet<String>,
}

fn lexicon() -> &'static Lexicon {
    static LEXICON: OnceLock<Lexicon> = OnceLock::new();
    LEXICON.get_or_init(|| {
        let mut stop = set(FRENCH_STOP_WORDS);
        stop.extend(set(ENGLISH_STOP_WORDS));
        Lexicon {
            stop,
            negation: set(NEGATION_MARKERS),
            // Folded: "ou" (or) would collide with "où" (where), so "où" is matched before folding.
            interrogative: DECISIVE_INTERROGATIVES
                .iter()
                .filter(|w| **w != "où")
                .map(|w| fold(w))
                .collect(),
            numbers: NUMBER_WORDS.iter().map(|(w, v)| (fold(w), *v)).collect(),
            ordinals: ORDINAL_WORDS.iter().map(|(w, v)| (fold(w), *v)).collect(),
            french: set(FRENCH_MARKERS),
            english: set(ENGLISH_MARKERS),
            synonyms: SYNONYMS
                .iter()
                .flat_map(|group| {
                    let canonical = stem(group[0], Some(Language::French));
                    group.iter().flat_map(move |w| {
                        [
                            (fold(w), canonical.clone()),
                            (stem(w, Some(Language::French)), canonical.clone()),
                        ]
                    })
                })
                .collect(),
            store_offer: STORE_OFFER_VERBS
                .iter()
                .map(|w| stem(w, Some(Language::French)))
                .collect(),
        }
    })
}

pub fn is_stop_word(folded: &str) -> bool {
    lexicon().stop.contains(folded)
}

/// The stem of a lowercase word, accents folded after stemming (the French stemmer needs them).
pub fn stem(word: &str, language: Option<Language>) -> String {
    static FRENCH: OnceLock<Stemmer> = OnceLock::new();
    static ENGLISH: OnceLock<Stemmer> = OnceLock::new();
    let lower = word.to_lowercase();
    let stemmed = match language {
        Some(Language::English) => ENGLISH
            .get_or_init(|| Stemmer::create(Algorithm::English))
            .stem(&lower)
            .into_owned(),
        _ => FRENCH
            .get_or_init(|| Stemmer::create(Algorithm::French))
            .stem(&lower)
            .into_owned(),
    };
    fold(&stemmed)
}

/// Everything the guards compare, computed once per question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    pub language: Option<Language>,
    pub negated: bool,
    /// Canonical values ("12.5", "1000", "last"), sorted, repeated values kept.
    pub numbers: Vec<String>,
    /// Capitalised words that are not mere sentence starts, folded.
    pub names: BTreeSet<String>,
    /// Every word, folded, and every word's stem: where a name of the other question is looked for.
    pub vocabulary: BTreeSet<String>,
    /// Stems of the words that carry the topic.
    pub content: BTreeSet<String>,
    /// Each topic word as written (lowercase, accents kept), by its stem in `content`: what a
    /// single-word embedding is computed from when the content guard weighs a substitution.
    pub surface: BTreeMap<String, String>,
    /// `quand`, `où`, `pourquoi`, `combien` and their English counterparts.
    pub interrogatives: BTreeSet<String>,
}

impl Analysis {
    pub fn of(text: &str) -> Analysis {
        let lex = lexicon();
        let tokens = tokenize(text);
        let language = detect_language(&tokens);

        let mut negated = false;
        for (i, t) in tokens.iter().enumerate() {
            let next_is_importe = tokens.get(i + 1).is_some_and(|n| n.folded == "importe");
            let english_nt = t.folded == "t"
                && t.after_apostrophe
                && i > 0
                && tokens[i - 1].folded.ends_with('n');
            if (lex.negation.contains(&t.folded) && !(t.folded == "n" && next_is_importe))
                || english_nt
            {
                negated = true;
            }
        }

        let numbers = numbers(text, &tokens);
        let mut names = BTreeSet::new();
        let mut vocabulary = BTreeSet::new();
        let mut content = BTreeSet::new();
        let mut surface = BTreeMap::new();
        let mut interrogatives = BTreeSet::new();
        let delay = topic(lex, "delai", &stem("délai", Some(Language::French)));
        let price = topic(lex, "prix", &stem("prix", Some(Language::French)));
        let modify = topic(lex, "modifier", &stem("modifier", Some(Language::French)));
        for (i, t) in tokens.iter().enumerate() {
            let word_stem = stem(&t.original, language);
            vocabulary.insert(t.folded.clone());
            vocabulary.insert(word_stem.clone());
            // "Combien de temps ?" asks for a delay, as "Quel délai ?" does.
            let how_long = t.folded == "combien"
                && tokens.get(i + 1).is_some_and(|n| n.folded == "de")
                && tokens.get(i + 2).is_some_and(|n| n.folded == "temps");
            if how_long {
                content.insert(delay.clone());
                continue;
            }
            if t.folded == "temps"
                && i >= 2
                && tokens[i - 2].folded == "combien"
                && tokens[i - 1].folded == "de"
            {
                continue;
            }
            // "mettre à jour" is "modifier" ("Comment mettre à jour mon adresse ?").
            let update = |j: usize| {
                tokens.get(j).is_some_and(|t| t.folded.starts_with("met"))
                    && tokens.get(j + 1).is_some_and(|t| t.folded == "a")
                    && tokens.get(j + 2).is_some_and(|t| t.folded == "jour")
            };
            if update(i) {
                content.insert(modify.clone());
                surface
                    .entry(modify.clone())
                    .or_insert_with(|| "modifier".to_owned());
                continue;
            }
            if i >= 2 && update(i - 2) {
                continue;
            }
            // "être en train de" only marks the progressive: "il est en train de couper" says
            // what "il coupe" says.
            let progressive = t.folded == "train"
                && i >= 1
                && tokens[i - 1].folded == "en"
                && tokens
                    .get(i + 1)
                    .is_some_and(|n| matches!(n.folded.as_str(), "de" | "d"));
            if progressive {
                continue;
            }
            let lower = t.original.to_lowercase();
            let interrogative = lower == "où" || lex.interrogative.contains(&t.folded);
            if interrogative {
                interrogatives.insert(if lower == "où" {
                    lower.clone()
                } else {
                    t.folded.clone()
                });
            }
            let offered_by_store = t.store_subject && lex.store_offer.contains(&word_stem);
            let special = interrogative
                || offered_by_store
                || lex.stop.contains(&t.folded)
                || lex.negation.contains(&t.folded)
                || is_number_word(&t.folded)
                || t.folded.chars().all(|c| c.is_ascii_digit());
            if special {
                continue;
            }
            if starts_uppercase(&t.original) && !(t.sentence_initial && t.inverted) {
                names.insert(t.folded.clone());
            }
            // One-letter leftovers ("e" of "e-book") carry nothing.
            if t.folded.chars().count() > 1 {
                let key = topic(lex, &t.folded, &word_stem);
                surface.entry(key.clone()).or_insert_with(|| lower.clone());
                content.insert(key);
            }
        }
        // "Combien coûte ... ?" asks for a price, as "Quel est le prix ... ?" does.
        if content.contains(&price) {
            interrogatives.remove("combien");
        }
        Analysis {
            language,
            negated,
            numbers,
            names,
            vocabulary,
            content,
            surface,
            interrogatives,
        }
    }
}

/// The stem a topic word is compared by: its synonym group's, or its own.
fn topic(lex: &Lexicon, folded: &str, word_stem: &str) -> String {
    lex.synonyms
        .get(folded)
        .or_else(|| lex.synonyms.get(word_stem))
        .cloned()
        .unwrap_or_else(|| word_stem.to_owned())
}

fn starts_uppercase(word: &str) -> bool {
    word.chars().next().is_some_and(char::is_uppercase)
}

fn detect_language(tokens: &[Token]) -> Option<Language> {
    let lex = lexicon();
    let french = tokens
        .iter()
        .filter(|t| lex.french.contains(&t.folded))
        .count();
    let english = tokens
        .iter()
        .filter(|t| lex.english.contains(&t.folded))
        .count();
    match french.cmp(&english) {
        std::cmp::Ordering::Greater => Some(Language::French),
        std::cmp::Ordering::Less => Some(Language::English),
        std::cmp::Ordering::Equal => None,
    }
}

fn is_number_word(folded: &str) -> bool {
    let lex = lexicon();
    lex.numbers.contains_key(folded)
        || lex.ordinals.contains_key(folded)
        || ordinal_suffix_value(folded).is_some()
}

/// "deuxième" -> 2, "cinquième" -> 5, "vingtième" -> 20.
fn ordinal_suffix_value(folded: &str) -> Option<u64> {
    let base = folded
        .strip_suffix("iemes")
        .or_else(|| folded.strip_suffix("ieme"))?;
    let base = match base {
        "cinqu" => "cinq",
        "neuv" => "neuf",
        "mill" => "mille",
        other => other,
    };
    lexicon().numbers.get(base).copied()
}

/// Numbers written with digits and with words, as canonical strings, sorted.
pub fn numbers(text: &str, tokens: &[Token]) -> Vec<String> {
    let mut out = digit_numbers(text);
    let lex = lexicon();
    let mut run: Vec<(&str, u64)> = Vec::new();
    let flush = |run: &mut Vec<(&str, u64)>, out: &mut Vec<String>| {
        if !run.is_empty() {
            out.push(word_number_value(run).to_string());
            run.clear();
        }
    };
    for (i, t) in tokens.iter().enumerate() {
        let w = t.folded.as_str();
        if let Some(v) = lex.numbers.get(w) {
            run.push((w, *v));
            continue;
        }
        // "vingt et un": "et" and "un" belong to the number only between number words.
        let in_run = !run.is_empty();
        if in_run
            && w == "et"
            && tokens
                .get(i + 1)
                .is_some_and(|n| matches!(n.folded.as_str(), "un" | "une" | "onze"))
        {
            continue;
        }
        if in_run && matches!(w, "un" | "une") && i > 0 && tokens[i - 1].folded == "et" {
            run.push((w, 1));
            continue;
        }
        flush(&mut run, &mut out);
        if let Some(v) = lex
            .ordinals
            .get(w)
            .copied()
            .or_else(|| ordinal_suffix_value(w))
        {
            out.push(if v == u64::MAX {
                "last".to_owned()
            } else {
                v.to_string()
            });
        }
    }
    flush(&mut run, &mut out);
    out.sort();
    out
}

/// The value of a run of number words: "quatre vingt dix" -> 90, "deux cents" -> 200,
/// "mille deux cents" -> 1200.
fn word_number_value(run: &[(&str, u64)]) -> u64 {
    let (mut total, mut current) = (0u64, 0u64);
    let mut previous = "";
    for (word, value) in run {
        match *value {
            100 => current = current.max(1).saturating_mul(100),
            v if v >= 1000 => {
                total = total.saturating_add(current.max(1).saturating_mul(v));
                current = 0;
            }
            20 if previous == "quatre" => current = current.saturating_sub(4).saturating_add(80),
            v => current = current.saturating_add(v),
        }
        previous = word;
    }
    total.saturating_add(current)
}

/// Digit numbers: "3,5" and "3.5" -> "3.5", "1 000" -> "1000", "007" -> "7", "14h30" -> 14, 30.
fn digit_numbers(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let digit = |i: usize| chars.get(i).is_some_and(char::is_ascii_digit);
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !digit(i) {
            i += 1;
            continue;
        }
        let mut int = String::new();
        while digit(i) {
            int.push(chars[i]);
            i += 1;
        }
        // Thousands groups: a space (plain or French no-break) then exactly three digits.
        while chars
            .get(i)
            .is_some_and(|c| matches!(c, ' ' | '\u{a0}' | '\u{202f}'))
            && digit(i + 1)
            && digit(i + 2)
            && digit(i + 3)
            && !digit(i + 4)
        {
            int.extend(&chars[i + 1..i + 4]);
            i += 4;
        }
        let mut frac = String::new();
        if chars.get(i).is_some_and(|c| matches!(c, ',' | '.')) && digit(i + 1) {
            i += 1;
            while digit(i) {
                frac.push(chars[i]);
                i += 1;
            }
        }
        let int = int.trim_start_matches('0');
        let int = if int.is_empty() { "0" } else { int };
        let frac = frac.trim_end_matches('0');
        out.push(if frac.is_empty() {
            int.to_owned()
        } else {
            format!("{int}.{frac}")
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        tokenize(text).into_iter().map(|t| t.original).collect()
    }

    #[test]
    fn tokens_split_elisions_and_hyphens_and_spot_inverted_verbs() {
        assert_eq!(
            words("Qu'est-ce qu'un e-book ?"),
            ["Qu", "est", "ce", "qu", "un", "e", "book"]
        );
        let t = tokenize("Livrez-vous à Lyon ? Existe-t-il un retrait ?");
        assert!(t[0].inverted && t[0].sentence_initial);
        assert!(!t[3].sentence_initial, "Lyon");
        assert!(t[4].sentence_initial && t[4].inverted, "Existe-t-il");
        assert!(tokenize("l'adresse")[1].after_apostrophe);
    }

    #[test]
    fn numbers_in_digits_and_words() {
        let n = |t: &str| numbers(t, &tokenize(t));
        assert_eq!(n("Livrez-vous en 48 h ?"), ["48"]);
        assert_eq!(n("Payer en trois fois"), ["3"]);
        assert_eq!(n("Payer en 3 fois"), n("payer en trois fois"));
        assert_eq!(n("quatre-vingt-dix jours"), ["90"]);
        assert_eq!(n("soixante-dix"), ["70"]);
        assert_eq!(n("vingt et un ans"), ["21"]);
        assert_eq!(n("mille deux cents euros"), ["1200"]);
        assert_eq!(n("1 000 € ou 1000 €"), ["1000", "1000"]);
        assert_eq!(n("12,50 € et 12.5 €"), ["12.5", "12.5"]);
        assert_eq!(n("le 1er mai, la première fois"), ["1", "1"]);
        assert_eq!(n("le deuxième tome"), ["2"]);
        assert_eq!(n("le dernier tome"), ["last"]);
        assert_eq!(n("à 14h30"), ["14", "30"]);
        assert_eq!(n("un livre, une fois"), Vec::<String>::new());
        assert_eq!(n("two cards"), ["2"]);
        assert_eq!(n("livres de seconde main"), Vec::<String>::new());
    }

    #[test]
    fn negation() {
        for negative in [
            "Quels formats ne proposez-vous pas ?",
            "Vous livrez pas le dimanche ?",
            "Pourquoi n'ai-je rien reçu ?",
            "Puis-je commander sans compte ?",
            "Why didn't my card arrive?",
            "Is there no fee?",
            "Aucun livre n'est arrivé",
            "Livres non disponibles",
        ] {
            assert!(Analysis::of(negative).negated, "{negative}");
        }
        for positive in [
            "Quels formats proposez-vous ?",
            "Puis-je payer avec n'importe quelle carte ?",
            "Plus de livres ?",
            "Prix par personne ?",
            "Where is my card?",
        ] {
            assert!(!Analysis::of(positive).negated, "{positive}");
        }
    }

    #[test]
    fn names_ignore_sentence_starts_that_are_verbs_or_stop_words() {
        let names = |t: &str| Analysis::of(t).names.into_iter().collect::<Vec<_>>();
        assert_eq!(names("Livrez-vous à Lyon ?"), ["lyon"]);
        assert_eq!(
            names("Quels sont vos horaires à Saint-Étienne ?"),
            ["etienne", "saint"]
        );
        assert_eq!(names("Paris, livrez-vous là-bas ?"), ["paris"]);
        assert_eq!(names("Avez-vous Germinal de Zola ?"), ["germinal", "zola"]);
        assert_eq!(names("Can I use Apple Pay?"), ["apple", "pay"]);
        assert!(names("Combien coûte la livraison ?").is_empty());
        assert!(names("Est-il possible de payer en plusieurs fois ?").is_empty());
    }

    #[test]
    fn content_words_are_stemmed_and_folded() {
        let a = Analysis::of("Quels formats numériques proposez-vous ?");
        let b = Analysis::of("quels format numerique proposez vous");
        assert_eq!(a.content, b.content);
        assert!(a.content.iter().all(|w| !is_stop_word(w)));
        assert_eq!(a.language, Some(Language::French));
        assert_eq!(
            Analysis::of("What formats do you sell?").language,
            Some(Language::English)
        );
        assert_eq!(Analysis::of("EPUB").language, None);
    }

    #[test]
    fn interrogatives() {
        let i = |t: &str| {
            Analysis::of(t)
                .interrogatives
                .into_iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(i("Où livrez-vous ?"), ["où"]);
        assert!(i("Ou livrez-vous ?").is_empty());
        assert_eq!(i("Quand livrez-vous ?"), ["quand"]);
    }
}
