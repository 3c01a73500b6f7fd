//! Question normalization: two questions that differ only in ways a reader would not notice
//! (typographic apostrophes, French spacing before `?`, case, trailing punctuation, extra spaces)
//! normalize to the same string and so share a cache key.
//!
//! Accents are kept on purpose: in French they carry meaning ("côte"/"cote", "où"/"ou").

use unicode_normalization::UnicodeNormalization;

/// Normalizes a question for cache lookups. Idempotent: `normalize(normalize(q)) == normalize(q)`.
///
/// Steps, in order: Unicode NFKC (also turns no-break and narrow no-break spaces into plain
/// spaces and `…` into `...`), lowercase, NFKC again (lowercasing can leave a non-NFKC string),
/// apostrophes, quotes and dashes unified to ASCII, whitespace collapsed, the spaces French
/// typography puts before `? ! : ;` and inside guillemets removed, and trailing punctuation
/// dropped.
pub fn normalize_question(question: &str) -> String {
    let folded: String = question
        .nfkc()
        .collect::<String>()
        .to_lowercase()
        .nfkc()
        .collect();

    let mut out = String::with_capacity(folded.len());
    let mut pending_space = false;
    for c in folded.chars() {
        if c.is_whitespace() {
            // Leading spaces and the space inside an opening quote carry nothing.
            pending_space = !out.is_empty() && !out.ends_with(OPENING_QUOTE);
            continue;
        }
        let c = unify(c);
        if pending_space && !is_tight_punctuation(c) {
            out.push(' ');
        }
        pending_space = false;
        out.push(c);
    }
    // Typographic quotes were kept apart above only to know which side the space belongs to.
    let mut out = out.replace([OPENING_QUOTE, CLOSING_QUOTE], "\"");
    while out.ends_with(is_trailing_punctuation) {
        out.pop();
        while out.ends_with(' ') {
            out.pop();
        }
    }
    out
}

/// Stand-ins for opening and closing typographic quotes while spaces are decided; they never
/// reach the output, and input cannot forge them (see [`unify`]).
const OPENING_QUOTE: char = '\u{E000}';
const CLOSING_QUOTE: char = '\u{E001}';

fn unify(c: char) -> char {
    match c {
        '\u{2018}' | '\u{2019}' | '\u{201B}' | '\u{2032}' | '\u{0060}' | '\u{02BC}' => '\'',
        '\u{00AB}' | '\u{201C}' | '\u{201E}' => OPENING_QUOTE,
        '\u{00BB}' | '\u{201D}' | '\u{201F}' => CLOSING_QUOTE,
        '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}'
        | '\u{2212}' => '-',
        OPENING_QUOTE | CLOSING_QUOTE => '"',
        other => other,
    }
}

/// Punctuation French typography separates with a space that English does not: the space is
/// dropped so both spellings normalize alike.
fn is_tight_punctuation(c: char) -> bool {
    matches!(c, '?' | '!' | ':' | ';' | ',' | '.' | CLOSING_QUOTE)
}

fn is_trailing_punctuation(c: char) -> bool {
    matches!(c, '?' | '!' | '.' | ';' | ':' | ',')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The table both platforms must agree on (see `cache_key` tests for the keys).
    pub(crate) const CASES: &[(&str, &str)] = &[
        (
            "Quels formats proposez-vous ?",
            "quels formats proposez-vous",
        ),
        (
            "Quels formats proposez-vous?",
            "quels formats proposez-vous",
        ),
        (
            "  QUELS   formats\tproposez\u{2011}vous\u{202F}?!  ",
            "quels formats proposez-vous",
        ),
        (
            "Qu\u{2019}est-ce qu\u{2019}un e-book ?",
            "qu'est-ce qu'un e-book",
        ),
        (
            "Puis-je payer en 3 fois\u{00A0}?",
            "puis-je payer en 3 fois",
        ),
        ("Où est ma commande ?", "où est ma commande"),
        ("Ou est ma commande ?", "ou est ma commande"),
        (
            "Le livre « Germinal » est-il disponible ?",
            "le livre \"germinal\" est-il disponible",
        ),
        (
            "Le livre \u{201C}Germinal\u{201D} est-il disponible?",
            "le livre \"germinal\" est-il disponible",
        ),
        ("Attendez\u{2026}", "attendez"),
        ("ｆｕｌｌ ｗｉｄｔｈ", "full width"),
        ("Horaires : lundi – samedi", "horaires: lundi - samedi"),
        ("???", ""),
        ("", ""),
    ];

    #[test]
    fn table() {
        for (input, expected) in CASES {
            assert_eq!(normalize_question(input), *expected, "input: {input:?}");
        }
    }

    #[test]
    fn the_private_use_stand_ins_cannot_be_forged() {
        assert_eq!(normalize_question("a\u{E000} b \u{E001}c"), "a\" b \"c");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn idempotent(s in "\\PC{0,60}") {
            let once = normalize_question(&s);
            prop_assert_eq!(normalize_question(&once), once.clone());
        }

        #[test]
        fn idempotent_on_french_like_text(s in "[a-zA-Zàâçéèêëîïôûùüÿœ' «»“”’?!:;,.\u{00A0}\u{202F}\u{2013}-]{0,60}") {
            let once = normalize_question(&s);
            prop_assert_eq!(normalize_question(&once), once.clone());
        }

        #[test]
        fn no_surrounding_or_double_spaces(s in "\\PC{0,60}") {
            let n = normalize_question(&s);
            prop_assert!(!n.starts_with(' ') && !n.ends_with(' ') && !n.contains("  "));
        }
    }
}
