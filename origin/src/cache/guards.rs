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
//!   `content_tolerance` of its topic words: "... sur le site ?"); the cached one may not add
//!   any (its answer would be narrower than the question), so a word *replaced* by another is
//!   never tolerated: that is how "perte"/"vol", "auto"/"habitation", "activer"/"désactiver"
//!   and "ajouter"/"supprimer" differ, and embeddings barely see it.
//!
//! Each guard can be switched off for measurement (`libriassist eval cache` reports both).
//! Every guard errs on the side of a miss: a false miss costs one generation, a false hit
//! answers another question.

use super::text::{stem, Analysis};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

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
        }
    }
}

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
        }
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

/// Whether `new` may be answered with the answer cached for `cached`.
///
/// # Errors
/// The first guard that refuses, in the order of [`Guard::ALL`].
pub fn check(new: &Analysis, cached: &Analysis, settings: &GuardSettings) -> Result<(), Guard> {
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
    if settings.content && !same_topic(new, cached, settings.content_tolerance) {
        return Err(Guard::Content);
    }
    Ok(())
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

fn same_topic(new: &Analysis, cached: &Analysis, tolerance: f32) -> bool {
    if new.interrogatives != cached.interrogatives {
        return false;
    }
    // A question without a single topic word ("Et alors ?") can only be matched exactly.
    if new.content.is_empty() || cached.content.is_empty() {
        return false;
    }
    let missing = new
        .content
        .iter()
        .filter(|w| !has_relative(&cached.content, w))
        .count();
    let extra = cached
        .content
        .iter()
        .filter(|w| !has_relative(&new.content, w))
        .count();
    // The cached question may not be narrower than the new one (its answer would be about
    // less than what is asked); the new one may add a detail within the tolerance.
    extra == 0 && missing as f32 <= (new.content.len() as f32 * tolerance).floor()
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
        assert_eq!(
            check(&short, &long, &GuardSettings::default()),
            Err(Guard::Content),
            "the cached answer is narrower"
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

    #[test]
    fn questions_without_topic_words_are_never_matched() {
        assert_eq!(verdict("Et alors ?", "Et alors ?"), Err(Guard::Content));
    }
}
