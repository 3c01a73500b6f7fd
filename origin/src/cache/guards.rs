//! Guards: a cached question close to the new one in embedding space is served only if it is
//! also the same question by these checks, each a pure function of the two texts.
//!
//! Embeddings say two questions are about the same thing, not that they ask the same thing:
//! with multilingual-e5 "Quels formats ne proposez-vous pas ?" scores higher against "Quels
//! formats proposez-vous ?" than a true paraphrase does. So a semantic hit also needs:
//! - **language**: the same language (a French answer to an English question is no answer);
//! - **negation**: both negated or neither (ne...pas/plus/jamais/rien/aucun, sans, not, n't...);
//! - **numbers**: the same numbers, written in digits or words ("3 fois" = "trois fois");
//! - **names**: the same capitalised names and places on both sides;
//! - **content**: the same topic words (stemmed, stop words removed, near-synonyms of the
//!   domain compared as one) and the same decisive interrogatives (quand, où, pourquoi,
//!   combien). The new question may add a detail the cached one lacks (up to
//!   `content_tolerance` of its topic words: "... sur le site ?"); the cached one may add one
//!   only when the questions are very close (`narrower_tolerance` from `narrower_similarity`:
//!   a left-out detail barely moves the embedding), never both at once, so a word *replaced*
//!   by another is never tolerated: that is how "perte"/"vol", "auto"/"habitation", "activer"/"désactiver"
//!   and "ajouter"/"supprimer" differ, and embeddings barely see it. The one exception is a
//!   *substitution*: a word of the new question replaced by a word of the cached one whose
//!   single-word embedding is very close ("couper"/"trancher", "femme"/"dame"), a few per
//!   question (`substitution_share`), never between names or numbers, never between a word and
//!   its opposite by prefix ("activer"/"désactiver") or by the list of opposites
//!   (`lexicon::ANTONYMS`: "acheter"/"vendre", "homme"/"femme", "anglais"/"espagnol").
//!   The word similarities come from the caller ([`check_with`]): the guards stay pure, and
//!   [`substitution_words`] says which few words are worth embedding.
//!
//! Each guard can be switched off for measurement (`libriassist eval cache` reports both).
//! Every guard errs on the side of a miss: a false miss costs one generation, a false hit
//! answers another question.

use super::lexicon::{ANTONYMS, ANTONYM_PREFIXES};
use super::text::{fold, stem, Analysis, Language};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GuardSettings {
    pub language: bool,
    pub negation: bool,
    pub numbers: bool,
    pub names: bool,
    pub content: bool,
    /// Fraction of the new question's topic words the cached one may lack, when nothing is
    /// replaced (rounded down: with 0.25, a question needs four topic words before one may be
    /// missing). The cached question never has topic words the new one lacks.
    pub content_tolerance: f32,
    /// Cosine similarity of the two questions from which `content_tolerance` applies (below
    /// it, the new question may not add a topic word either).
    pub tolerance_similarity: f32,
    /// Fraction of the cached question's topic words the new one may lack (rounded down): the
    /// new question leaves out a detail the cached one gives ("Un homme coupe un oignon ?" /
    /// "... un oignon en tranches ?"). 0: the cached question is never narrower.
    pub narrower_tolerance: f32,
    /// Cosine similarity of the two questions from which `narrower_tolerance` and
    /// substitutions apply: leaving out or rewording a mere detail barely moves the embedding,
    /// changing the topic does.
    pub narrower_similarity: f32,
    /// Cosine between the single-word embeddings of two topic words above which one may stand
    /// for the other (a word of the new question missing from the cached one, replaced there
    /// by this one), when the questions are at least `narrower_similarity` apart. Above 1: no
    /// substitution.
    pub substitution_similarity: f32,
    /// Fraction of the new question's topic words that may be substituted (rounded down; 0: no
    /// substitution).
    pub substitution_share: f32,
}

impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            language: true,
            negation: true,
            numbers: true,
            names: true,
            content: true,
            content_tolerance: 0.25,
            tolerance_similarity: DEFAULT_TOLERANCE_SIMILARITY,
            narrower_tolerance: DEFAULT_NARROWER_TOLERANCE,
            narrower_similarity: DEFAULT_NARROWER_SIMILARITY,
            substitution_similarity: DEFAULT_SUBSTITUTION_SIMILARITY,
            substitution_share: DEFAULT_SUBSTITUTION_SHARE,
        }
    }
}

/// See docs/EVALUATION.md ("Semantic cache").
pub const DEFAULT_SUBSTITUTION_SIMILARITY: f32 = 0.84;
pub const DEFAULT_SUBSTITUTION_SHARE: f32 = 0.5;
pub const DEFAULT_TOLERANCE_SIMILARITY: f32 = 0.94;
pub const DEFAULT_NARROWER_TOLERANCE: f32 = 0.34;
pub const DEFAULT_NARROWER_SIMILARITY: f32 = 0.98;

impl GuardSettings {
    /// Every guard off: the similarity threshold alone decides (for measurement only).
    pub fn off() -> Self {
        GuardSettings {
            language: false,
            negation: false,
            numbers: false,
            names: false,
            content: false,
            content_tolerance: 0.0,
            tolerance_similarity: 2.0,
            narrower_tolerance: 0.0,
            narrower_similarity: 2.0,
            substitution_similarity: 2.0,
            substitution_share: 0.0,
        }
    }

    /// Whether the content guard may accept substituted words at all.
    pub fn substitutes(&self) -> bool {
        self.content && self.substitution_share > 0.0 && self.substitution_similarity <= 1.0
    }
}

/// Which guard refused a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Guard {
    Language,
    Negation,
    Numbers,
    Names,
    Content,
}

impl Guard {
    pub const ALL: [Guard; 5] = [
        Guard::Language,
        Guard::Negation,
        Guard::Numbers,
        Guard::Names,
        Guard::Content,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Guard::Language => "language",
            Guard::Negation => "negation",
            Guard::Numbers => "numbers",
            Guard::Names => "names",
            Guard::Content => "content",
        }
    }
}

/// Whether `new` may be answered with the answer cached for `cached` by their texts alone: no
/// substitution (no word similarity known), the questions' own similarity taken as 1 (the
/// most tolerant case).
///
/// # Errors
/// The first guard that refuses, in the order of [`Guard::ALL`].
pub fn check(new: &Analysis, cached: &Analysis, settings: &GuardSettings) -> Result<(), Guard> {
    check_with(new, cached, 1.0, settings, &|_, _| None)
}

/// The cosine of two single words' embeddings (lowercase words as written), if known.
pub type WordSimilarity<'a> = &'a dyn Fn(&str, &str) -> Option<f32>;

/// [`check`] knowing the cosine `similarity` of the two questions (the narrower tolerance
/// applies only when it is high), the content guard also accepting substitutions of words
/// whose similarity `words` knows and finds close enough.
///
/// # Errors
/// The first guard that refuses, in the order of [`Guard::ALL`].
pub fn check_with(
    new: &Analysis,
    cached: &Analysis,
    similarity: f32,
    settings: &GuardSettings,
    words: WordSimilarity,
) -> Result<(), Guard> {
    if settings.language && !same_language(new, cached) {
        return Err(Guard::Language);
    }
    if settings.negation && new.negated != cached.negated {
        return Err(Guard::Negation);
    }
    if settings.numbers && new.numbers != cached.numbers {
        return Err(Guard::Numbers);
    }
    if settings.names && !(names_found(new, cached) && names_found(cached, new)) {
        return Err(Guard::Names);
    }
    if settings.content && !same_topic(new, cached, similarity, settings, words) {
        return Err(Guard::Content);
    }
    Ok(())
}

/// The words (as written) whose single-word similarities could turn a refusal of the content
/// guard into a hit: the missing and extra topic words that may be substituted, none when
/// substitutions could not make up the difference. Empty in the common cases (same topic
/// words, or too many differences), so a caller embeds a handful of words at most.
pub fn substitution_words(
    new: &Analysis,
    cached: &Analysis,
    similarity: f32,
    settings: &GuardSettings,
) -> Vec<String> {
    if !settings.substitutes()
        || new.interrogatives != cached.interrogatives
        || new.content.is_empty()
        || cached.content.is_empty()
    {
        return Vec::new();
    }
    let d = Difference::of(new, cached);
    let most = substitution_budget(new, settings)
        .min(d.missing.len())
        .min(d.extra.len());
    let (missing, extra) = (d.missing.len() - most, d.extra.len() - most);
    let possible = most > 0
        && similarity >= settings.narrower_similarity
        && ((extra == 0 && missing <= added_tolerated(new, similarity, settings))
            || (missing == 0 && extra <= narrower_tolerated(cached, similarity, settings)));
    if !possible {
        return Vec::new();
    }
    let eligible = |a: &Analysis, w: &&str| substitutable(a, w).map(str::to_owned);
    let mut out: Vec<String> = d
        .missing
        .iter()
        .filter_map(|w| eligible(new, w))
        .chain(d.extra.iter().filter_map(|w| eligible(cached, w)))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Topic words of one question without a relative in the other.
struct Difference<'a> {
    /// Of the new question, absent from the cached one.
    missing: Vec<&'a str>,
    /// Of the cached question, absent from the new one.
    extra: Vec<&'a str>,
}

impl<'a> Difference<'a> {
    fn of(new: &'a Analysis, cached: &'a Analysis) -> Self {
        Difference {
            missing: new
                .content
                .iter()
                .filter(|w| !has_relative(&cached.content, w))
                .map(String::as_str)
                .collect(),
            extra: cached
                .content
                .iter()
                .filter(|w| !has_relative(&new.content, w))
                .map(String::as_str)
                .collect(),
        }
    }
}

fn added_tolerated(new: &Analysis, similarity: f32, settings: &GuardSettings) -> usize {
    if similarity < settings.tolerance_similarity {
        return 0;
    }
    missing_tolerated(new, settings.content_tolerance)
}

fn missing_tolerated(new: &Analysis, tolerance: f32) -> usize {
    (new.content.len() as f32 * tolerance).floor() as usize
}

fn narrower_tolerated(cached: &Analysis, similarity: f32, settings: &GuardSettings) -> usize {
    if similarity < settings.narrower_similarity {
        return 0;
    }
    missing_tolerated(cached, settings.narrower_tolerance)
}

fn substitution_budget(new: &Analysis, settings: &GuardSettings) -> usize {
    if !settings.substitutes() {
        return 0;
    }
    (new.content.len() as f32 * settings.substitution_share).floor() as usize
}

/// The word as written if the topic word `key` of `a` may be substituted: not a name, not a
/// number, not a one- or two-letter word.
fn substitutable<'a>(a: &'a Analysis, key: &str) -> Option<&'a str> {
    let word = a.surface.get(key)?;
    let folded = fold(word);
    let ok = folded.chars().count() >= 3
        && !folded.chars().any(|c| c.is_ascii_digit())
        && !a.names.contains(&folded);
    ok.then_some(word.as_str())
}

/// Unknown language (no telling words) matches anything: short questions like "EPUB ?" have
/// none, and the other guards still apply.
fn same_language(a: &Analysis, b: &Analysis) -> bool {
    match (a.language, b.language) {
        (Some(x), Some(y)) => x == y,
        _ => true,
    }
}

/// Every name of `a` appears in `b`, as a word or as a stem ("Lyon" in "lyon", "Zola" in "zola").
fn names_found(a: &Analysis, b: &Analysis) -> bool {
    a.names
        .iter()
        .all(|name| b.vocabulary.contains(name) || b.vocabulary.contains(&stem(name, b.language)))
}

fn same_topic(
    new: &Analysis,
    cached: &Analysis,
    similarity: f32,
    settings: &GuardSettings,
    words: WordSimilarity,
) -> bool {
    if new.interrogatives != cached.interrogatives {
        return false;
    }
    // A question without a single topic word ("Et alors ?") can only be matched exactly.
    if new.content.is_empty() || cached.content.is_empty() {
        return false;
    }
    let d = Difference::of(new, cached);
    let tolerated = added_tolerated(new, similarity, settings);
    let narrower = narrower_tolerated(cached, similarity, settings);
    // One side may have a detail more than the other (the new question within `tolerated`,
    // the cached one within `narrower`), never both: a word on each side is a replacement
    // ("mariage"/"divorce", "auto"/"habitation"), accepted only as a close substitution.
    let within = |missing: usize, extra: usize| {
        (extra == 0 && missing <= tolerated) || (missing == 0 && extra <= narrower)
    };
    if within(d.missing.len(), d.extra.len()) {
        return true;
    }
    if d.extra.is_empty() || d.missing.is_empty() {
        return false;
    }
    let substituted = if similarity >= settings.narrower_similarity {
        substitutions(new, cached, &d, settings, words)
    } else {
        0
    };
    within(d.missing.len() - substituted, d.extra.len() - substituted)
}

/// How many extra words of the cached question stand for missing words of the new one: pairs
/// of words close enough, best first, each word used once, within the budget.
fn substitutions(
    new: &Analysis,
    cached: &Analysis,
    d: &Difference,
    settings: &GuardSettings,
    words: WordSimilarity,
) -> usize {
    let budget = substitution_budget(new, settings);
    if budget == 0 {
        return 0;
    }
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (i, m) in d.missing.iter().enumerate() {
        let Some(a) = substitutable(new, m) else {
            continue;
        };
        for (j, e) in d.extra.iter().enumerate() {
            let Some(b) = substitutable(cached, e) else {
                continue;
            };
            if opposite(a, b, new.language, cached.language) {
                continue;
            }
            if let Some(s) = words(a, b).filter(|s| *s >= settings.substitution_similarity) {
                pairs.push((s, i, j));
            }
        }
    }
    pairs.sort_by(|x, y| y.0.total_cmp(&x.0));
    let (mut used_missing, mut used_extra) =
        (vec![false; d.missing.len()], vec![false; d.extra.len()]);
    let mut n = 0;
    for (_, i, j) in pairs {
        if n == budget {
            break;
        }
        if !used_missing[i] && !used_extra[j] {
            used_missing[i] = true;
            used_extra[j] = true;
            n += 1;
        }
    }
    n
}

/// Whether two words are opposites: one is the other with a negating prefix ("activer" /
/// "désactiver"), or both belong to a set of opposites of the lexicon.
pub fn opposite(a: &str, b: &str, la: Option<Language>, lb: Option<Language>) -> bool {
    let forms = |w: &str, l: Option<Language>| [fold(w), stem(w, l)];
    let (fa, fb) = (forms(a, la), forms(b, lb));
    for x in &fa {
        for y in &fb {
            if prefixed_opposite(x, y) || prefixed_opposite(y, x) {
                return true;
            }
        }
    }
    let groups = antonym_groups();
    let of = |forms: &[String; 2], w: &str| -> Vec<usize> {
        let mut ids: Vec<usize> = forms
            .iter()
            .map(String::as_str)
            .chain([stem(w, Some(Language::English)).as_str()])
            .filter_map(|f| groups.get(f))
            .flatten()
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let (ga, gb) = (of(&fa, a), of(&fb, b));
    ga.iter().any(|g| gb.contains(g))
}

fn prefixed_opposite(long: &str, short: &str) -> bool {
    short.chars().count() >= 3
        && ANTONYM_PREFIXES
            .iter()
            .any(|p| long.strip_prefix(fold(p).as_str()) == Some(short))
}

/// Folded word and stem -> the sets of opposites it belongs to.
fn antonym_groups() -> &'static HashMap<String, Vec<usize>> {
    static GROUPS: OnceLock<HashMap<String, Vec<usize>>> = OnceLock::new();
    GROUPS.get_or_init(|| {
        let mut map: HashMap<String, Vec<usize>> = HashMap::new();
        for (id, group) in ANTONYMS.iter().enumerate() {
            for w in *group {
                for form in [
                    fold(w),
                    stem(w, Some(Language::French)),
                    stem(w, Some(Language::English)),
                ] {
                    let ids = map.entry(form).or_default();
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
            }
        }
        map
    })
}

/// The same word family: equal stems, or one stem extending the other by a short suffix the
/// stemmer left ("command"/"commande").
fn has_relative(words: &BTreeSet<String>, word: &str) -> bool {
    words.contains(word) || words.iter().any(|w| related(w, word))
}

fn related(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    short.chars().count() >= 4 && long.starts_with(short) && long.len() - short.len() <= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(new: &str, cached: &str) -> Result<(), Guard> {
        check(
            &Analysis::of(new),
            &Analysis::of(cached),
            &GuardSettings::default(),
        )
    }

    /// Pairs that must never share an answer, by the guard that must catch them.
    pub(crate) const MUST_MISS: &[(&str, &str, Guard)] = &[
        (
            "Quels formats ne proposez-vous pas ?",
            "Quels formats proposez-vous ?",
            Guard::Negation,
        ),
        (
            "Vous livrez pas le dimanche ?",
            "Vous livrez le dimanche ?",
            Guard::Negation,
        ),
        (
            "Puis-je commander sans créer de compte ?",
            "Puis-je commander en créant un compte ?",
            Guard::Negation,
        ),
        (
            "Peut-on payer en 3 fois ?",
            "Peut-on payer en 4 fois ?",
            Guard::Numbers,
        ),
        (
            "Peut-on payer en trois fois ?",
            "Peut-on payer en 10 fois ?",
            Guard::Numbers,
        ),
        (
            "La livraison est-elle gratuite dès 35 € ?",
            "La livraison est-elle gratuite dès 50 € ?",
            Guard::Numbers,
        ),
        (
            "Quel est le prix du tome 2 ?",
            "Quel est le prix du tome 3 ?",
            Guard::Numbers,
        ),
        (
            "Livrez-vous à Lyon ?",
            "Livrez-vous à Lille ?",
            Guard::Names,
        ),
        (
            "Avez-vous une librairie à Bordeaux ?",
            "Avez-vous une librairie à Nantes ?",
            Guard::Names,
        ),
        (
            "Avez-vous Germinal en poche ?",
            "Avez-vous Nana en poche ?",
            Guard::Names,
        ),
        ("Livrez-vous en Belgique ?", "Livrez-vous ?", Guard::Names),
        (
            "Comment activer mon compte ?",
            "Comment désactiver mon compte ?",
            Guard::Content,
        ),
        (
            "Comment m'abonner à la newsletter ?",
            "Comment me désabonner de la newsletter ?",
            Guard::Content,
        ),
        (
            "Comment ajouter un roman à mon panier ?",
            "Comment supprimer un roman de mon panier ?",
            Guard::Content,
        ),
        (
            "Vendez-vous des liseuses ?",
            "Vendez-vous des tablettes ?",
            Guard::Content,
        ),
        ("Quand livrez-vous ?", "Où livrez-vous ?", Guard::Content),
        (
            "Vendez-vous des livres d'occasion ?",
            "Achetez-vous des livres d'occasion ?",
            Guard::Content,
        ),
        (
            "Quels formats proposez-vous ?",
            "What formats do you offer?",
            Guard::Language,
        ),
        (
            "How do I enable notifications?",
            "How do I disable notifications?",
            Guard::Content,
        ),
        (
            "Why hasn't my card arrived?",
            "Has my card arrived?",
            Guard::Negation,
        ),
    ];

    #[test]
    fn hand_written_adversarial_pairs_are_caught_by_the_right_guard() {
        for (a, b, guard) in MUST_MISS {
            assert_eq!(verdict(a, b), Err(*guard), "{a} / {b}");
            assert!(verdict(b, a).is_err(), "reversed: {b} / {a}");
        }
    }

    #[test]
    fn paraphrases_pass() {
        for (a, b) in [
            (
                "Quels formats proposez-vous ?",
                "quels formats proposez vous",
            ),
            ("Peut-on payer en 3 fois ?", "Peut-on payer en trois fois ?"),
            ("Livrez-vous à Lyon ?", "Est-ce que vous livrez à Lyon ?"),
            (
                "Comment suivre ma commande ?",
                "Comment puis-je suivre ma commande ?",
            ),
            (
                "Quels sont les frais de livraison ?",
                "Quels sont vos frais de livraison ?",
            ),
            (
                "Quels formats ne proposez-vous pas ?",
                "Quels formats ne proposez-vous jamais ?",
            ),
        ] {
            assert_eq!(verdict(a, b), Ok(()), "{a} / {b}");
        }
    }

    #[test]
    fn each_guard_can_be_switched_off() {
        let (a, b) = (
            Analysis::of("Peut-on payer en 3 fois ?"),
            Analysis::of("Peut-on payer en 4 fois ?"),
        );
        let mut s = GuardSettings::default();
        assert_eq!(check(&a, &b, &s), Err(Guard::Numbers));
        s.numbers = false;
        assert_eq!(check(&a, &b, &s), Ok(()));
        assert_eq!(
            check(
                &Analysis::of("Livrez-vous à Lyon ?"),
                &Analysis::of("Livrez-vous à Lille ?"),
                &GuardSettings::off()
            ),
            Ok(())
        );
    }

    #[test]
    fn the_new_question_may_add_a_detail_but_never_replace_a_word() {
        let long =
            Analysis::of("Comment modifier l'adresse de livraison de ma commande sur le site ?");
        let short = Analysis::of("Comment modifier l'adresse de livraison de ma commande ?");
        assert_eq!(short.content.len(), 4, "{:?}", short.content);
        assert_eq!(long.content.len(), 5, "{:?}", long.content);
        assert_eq!(
            check(&long, &short, &GuardSettings::default()),
            Ok(()),
            "a detail more than the cached question"
        );
        let none = |_: &str, _: &str| None;
        assert_eq!(
            check_with(&short, &long, 0.95, &GuardSettings::default(), &none),
            Err(Guard::Content),
            "the cached answer is narrower, and the questions not close enough to call it a detail"
        );
        assert_eq!(
            check_with(&short, &long, 0.99, &GuardSettings::default(), &none),
            Ok(()),
            "a detail less than the cached question, the questions very close"
        );
        assert_eq!(
            check_with(&long, &short, 0.93, &GuardSettings::default(), &none),
            Err(Guard::Content),
            "below tolerance_similarity the new question may not add a word either"
        );
        let strict = GuardSettings {
            content_tolerance: 0.0,
            ..GuardSettings::default()
        };
        assert_eq!(check(&long, &short, &strict), Err(Guard::Content));
        let replaced = Analysis::of("Comment supprimer l'adresse de livraison de ma commande ?");
        assert_eq!(
            check(
                &replaced,
                &short,
                &GuardSettings {
                    content_tolerance: 0.9,
                    ..GuardSettings::default()
                }
            ),
            Err(Guard::Content)
        );
    }

    #[test]
    fn synonyms_of_the_domain_are_one_topic() {
        assert_eq!(
            verdict(
                "Quels sont les frais de livraison ?",
                "Quel est le prix de la livraison ?"
            ),
            Ok(())
        );
        assert_eq!(
            verdict(
                "Proposez-vous des cartes cadeaux ?",
                "Avez-vous des cartes cadeaux ?"
            ),
            Ok(())
        );
        assert_eq!(
            verdict(
                "Vos ebooks ont-ils des DRM ?",
                "Vos livres numériques ont-ils des DRM ?"
            ),
            Ok(())
        );
        assert_eq!(
            verdict(
                "Comment modifier mon adresse ?",
                "Comment changer mon adresse ?"
            ),
            Ok(())
        );
    }

    proptest::proptest! {
        /// Any text, however odd, is analysed and compared without a panic.
        #[test]
        fn never_panics(a in "\\PC{0,80}", b in "[a-zA-Z0-9àéèêçôù' ,.?!-]{0,80}") {
            let (x, y) = (Analysis::of(&a), Analysis::of(&b));
            let _ = check(&x, &y, &GuardSettings::default());
            let _ = check(&y, &x, &GuardSettings { content_tolerance: 0.99, ..GuardSettings::default() });
        }
    }

    fn close(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str, &str) -> Option<f32> {
        move |a, b| {
            let hit = pairs
                .iter()
                .any(|(x, y)| (*x == a && *y == b) || (*x == b && *y == a));
            Some(if hit { 0.95 } else { 0.5 })
        }
    }

    #[test]
    fn a_close_word_may_stand_for_another_when_the_questions_are_very_close() {
        let new = Analysis::of("La dame casse des œufs dans un bol.");
        let cached = Analysis::of("La femme casse des œufs dans un bol.");
        let s = GuardSettings::default();
        let words = close(&[("dame", "femme")]);
        assert_eq!(check(&new, &cached, &s), Err(Guard::Content));
        assert_eq!(
            substitution_words(&new, &cached, 0.99, &s),
            ["dame", "femme"]
        );
        assert_eq!(check_with(&new, &cached, 0.99, &s, &words), Ok(()));
        assert_eq!(
            check_with(&new, &cached, 0.95, &s, &words),
            Err(Guard::Content),
            "not below narrower_similarity"
        );
        assert!(substitution_words(&new, &cached, 0.95, &s).is_empty());
        let off = GuardSettings {
            substitution_share: 0.0,
            ..GuardSettings::default()
        };
        assert_eq!(
            check_with(&new, &cached, 0.99, &off, &words),
            Err(Guard::Content)
        );
    }

    #[test]
    fn opposites_never_stand_for_one_another() {
        let everything_close = |_: &str, _: &str| Some(0.99);
        let s = GuardSettings::default();
        for (a, b) in [
            (
                "Comment activer les notifications du compte ?",
                "Comment désactiver les notifications du compte ?",
            ),
            (
                "Comment me connecter à mon compte client ?",
                "Comment me déconnecter de mon compte client ?",
            ),
            (
                "Comment acheter un livre d'occasion en ligne ?",
                "Comment vendre un livre d'occasion en ligne ?",
            ),
            (
                "Un homme joue de la guitare sur scène.",
                "Une femme joue de la guitare sur scène.",
            ),
            (
                "Avez-vous des romans en anglais ?",
                "Avez-vous des romans en espagnol ?",
            ),
            (
                "Comment ouvrir un compte client ?",
                "Comment fermer un compte client ?",
            ),
        ] {
            let (x, y) = (Analysis::of(a), Analysis::of(b));
            assert_eq!(
                check_with(&x, &y, 0.999, &s, &everything_close),
                Err(Guard::Content),
                "{a} / {b}"
            );
        }
        assert!(opposite("activer", "désactivez", None, None));
        assert!(opposite("achète", "vendre", None, None));
        assert!(!opposite("dame", "femme", None, None));
    }

    #[test]
    fn names_and_numbers_are_never_substituted() {
        let everything_close = |_: &str, _: &str| Some(0.99);
        let s = GuardSettings {
            names: false,
            ..GuardSettings::default()
        };
        let (x, y) = (
            Analysis::of("Livrez-vous les romans à Lyon ce mois-ci ?"),
            Analysis::of("Livrez-vous les romans à Lille ce mois-ci ?"),
        );
        assert_eq!(
            check_with(&x, &y, 0.999, &s, &everything_close),
            Err(Guard::Content)
        );
    }

    #[test]
    fn questions_without_topic_words_are_never_matched() {
        assert_eq!(verdict("Et alors ?", "Et alors ?"), Err(Guard::Content));
    }
}
