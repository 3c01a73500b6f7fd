//! What a simulated model says and how fast: a French answer built from the question's own
//! words, cut into tokens, with the token budget and the pacing of a real server. The text is a
//! pure function of (seed, prompt), so identical questions get identical answers (which cache
//! and coalescing tests rely on) and different questions visibly different ones. No clock
//! and no I/O here: the handlers own time.

use std::time::Duration;

/// Small, fast, seedable generator whose output never changes between releases, unlike a
/// library RNG's; answers and fault draws stay reproducible across upgrades.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// FNV-1a over the seed then the text: a stable hash to seed per-prompt generators.
pub fn hash(seed: u64, text: &str) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in seed.to_le_bytes().iter().chain(text.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01B3);
    }
    h
}

/// Why a generation stopped, as Ollama's `done_reason` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoneReason {
    /// The answer ended by itself.
    Stop,
    /// `num_predict` tokens were produced before the end.
    Length,
}

impl DoneReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
        }
    }
}

/// How many tokens a request gets and why it stops there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub tokens: u32,
    pub reason: DoneReason,
}

/// Ollama treats `num_predict` <= 0 as "no limit" (-1 is its default), so only a positive
/// value below the natural answer length cuts it.
pub fn budget(answer_tokens: u32, num_predict: Option<i64>) -> Budget {
    match num_predict {
        Some(n) if n > 0 && n < i64::from(answer_tokens) => Budget {
            tokens: n as u32,
            reason: DoneReason::Length,
        },
        _ => Budget {
            tokens: answer_tokens,
            reason: DoneReason::Stop,
        },
    }
}

/// Token count of a prompt the way a subword tokenizer roughly sees French: one token per
/// short word, one more per six further letters, one per punctuation mark.
pub fn count_tokens(text: &str) -> u32 {
    let mut tokens: u32 = 0;
    for word in text.split_whitespace() {
        let letters = word.chars().filter(|c| c.is_alphanumeric()).count() as u32;
        let marks = word.chars().filter(|c| !c.is_alphanumeric()).count() as u32;
        let word_tokens = if letters == 0 {
            0
        } else {
            1 + (letters - 1) / 6
        };
        tokens = tokens.saturating_add(word_tokens).saturating_add(marks);
    }
    tokens
}

/// Pseudo token ids for the deprecated `context` field of /api/generate's last line.
pub fn context_ids(seed: u64, tokens: &[String]) -> Vec<u32> {
    tokens
        .iter()
        .map(|t| (hash(seed, t) % 32_000) as u32 + 1)
        .collect()
}

/// Time costs of one slot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    pub ttft: Duration,
    pub prompt_tokens_per_sec: f64,
    pub tokens_per_sec: f64,
}

fn per_second(count: f64, rate: f64) -> Duration {
    if rate <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(count / rate).unwrap_or(Duration::ZERO)
}

impl Pace {
    /// From taking the slot to the first token.
    pub fn prompt_eval(&self, prompt_tokens: u32) -> Duration {
        self.ttft + per_second(f64::from(prompt_tokens), self.prompt_tokens_per_sec)
    }

    /// Between two tokens.
    pub fn token_interval(&self) -> Duration {
        per_second(1.0, self.tokens_per_sec)
    }
}

const STOPWORDS: &[&str] = &[
    "alors", "aussi", "avec", "avez", "avoir", "bonjour", "cela", "celle", "celui", "cette",
    "comme", "comment", "dans", "depuis", "donc", "elle", "elles", "encore", "entre", "être",
    "faire", "pendant", "leur", "leurs", "mais", "merci", "même", "nous", "notre", "nos", "peut",
    "peux", "pour", "pourquoi", "pouvez", "quand", "quel", "quelle", "quelles", "quels", "sans",
    "sont", "sous", "suis", "sur", "tous", "tout", "toute", "très", "vers", "voudrais", "votre",
    "vous", "what", "with", "this", "that", "have", "your",
];

const FALLBACK_TOPICS: &[&str] = &["votre demande", "cet ouvrage", "nos rayons"];

/// First sentences: each names the question's first key word early.
const OPENINGS: &[&str] = &[
    "Pour {0}, voici ce que nous pouvons vous dire.",
    "Au sujet de {0}, bonne nouvelle : nous pouvons vous aider.",
    "{0} : c'est une question que nos clients posent souvent.",
];

/// Sentences of a bookstore's answer; {0}, {1}, {2} take the question's key words.
const SENTENCES: &[&str] = &[
    "Concernant {0}, notre librairie propose plusieurs possibilités adaptées à votre demande.",
    "Vous trouverez {0} au rayon correspondant, et nos libraires peuvent vous conseiller sur {1}.",
    "Pour {0}, la commande se fait en magasin ou sur notre site, avec un retrait sous quarante-huit heures.",
    "Les délais pour {1} dépendent de la disponibilité chez l'éditeur, en général trois à cinq jours ouvrés.",
    "N'hésitez pas à nous contacter si vous souhaitez plus de précisions sur {2}.",
    "Les retours sont acceptés sous trente jours avec le ticket de caisse, y compris pour {0}.",
    "La carte de fidélité donne droit à une remise de cinq pour cent sur {1}.",
    "La librairie est ouverte du mardi au samedi, de dix heures à dix-neuf heures, et le dimanche matin.",
    "Nous pouvons aussi emballer {2} en papier cadeau, sans frais supplémentaires.",
    "Si {0} est épuisé, nous recherchons volontiers un exemplaire d'occasion auprès de nos partenaires.",
];

/// Up to three key words of the question, in order of appearance.
fn topics(focus: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for word in focus.split(|c: char| !c.is_alphanumeric()) {
        let word = word.to_lowercase();
        // Words ending in -ez are verbs addressed to the reader ("proposez-vous"), not topics.
        if word.chars().count() < 4 || word.ends_with("ez") || STOPWORDS.contains(&word.as_str()) {
            continue;
        }
        if !found.contains(&word) {
            found.push(word);
        }
        if found.len() == 3 {
            break;
        }
    }
    found
}

/// The answer's first `n` tokens for this prompt: concatenated they form French text in which
/// the key words of `focus` (the last user message) reappear. A shorter `n` gives a prefix of a
/// longer one, as a token budget does on a real model.
pub fn answer(seed: u64, prompt: &str, focus: &str, n: u32) -> Vec<String> {
    let mut rng = SplitMix64::new(hash(seed, prompt));
    let mut words_of_topics = topics(focus);
    for fallback in FALLBACK_TOPICS {
        if words_of_topics.len() < 3 {
            words_of_topics.push((*fallback).to_string());
        }
    }
    let want = n as usize;
    let mut tokens: Vec<String> = Vec::with_capacity(want);
    let start = rng.below(SENTENCES.len());
    let mut sentence_index = 0;
    while tokens.len() < want {
        // A short answer should still show which question it answers: open on the first key word.
        let template = if sentence_index == 0 {
            OPENINGS[rng.below(OPENINGS.len())]
        } else {
            SENTENCES[(start + sentence_index * 7) % SENTENCES.len()]
        };
        sentence_index += 1;
        let mut sentence = template.to_string();
        for (i, topic) in words_of_topics.iter().enumerate() {
            sentence = sentence.replace(&format!("{{{i}}}"), topic);
        }
        push_tokens(&mut tokens, &sentence, &mut rng, want);
    }
    tokens
}

/// Cuts a sentence into tokens of one to three short words or pieces of a long word, each
/// after the answer's first carrying its leading space as real tokenizers do.
fn push_tokens(tokens: &mut Vec<String>, sentence: &str, rng: &mut SplitMix64, want: usize) {
    let words: Vec<&str> = sentence.split_whitespace().collect();
    let mut i = 0;
    while i < words.len() && tokens.len() < want {
        let space = if tokens.is_empty() { "" } else { " " };
        let word = words[i];
        let chars: Vec<char> = word.chars().collect();
        if chars.len() >= 9 && rng.below(2) == 0 {
            let cut = chars.len() / 2;
            tokens.push(format!(
                "{space}{}",
                chars[..cut].iter().collect::<String>()
            ));
            if tokens.len() < want {
                tokens.push(chars[cut..].iter().collect());
            }
            i += 1;
            continue;
        }
        let mut token = format!("{space}{word}");
        i += 1;
        let mut joined = 1;
        while joined < 3 && i < words.len() && words[i].chars().count() <= 3 && rng.below(3) == 0 {
            token.push(' ');
            token.push_str(words[i]);
            i += 1;
            joined += 1;
        }
        tokens.push(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_cuts_only_below_the_answer_length() {
        let stop = |tokens| Budget {
            tokens,
            reason: DoneReason::Stop,
        };
        assert_eq!(budget(50, None), stop(50));
        assert_eq!(budget(50, Some(-1)), stop(50));
        assert_eq!(budget(50, Some(0)), stop(50));
        assert_eq!(budget(50, Some(50)), stop(50));
        assert_eq!(budget(50, Some(500)), stop(50));
        assert_eq!(
            budget(50, Some(7)),
            Budget {
                tokens: 7,
                reason: DoneReason::Length
            }
        );
    }

    #[test]
    fn answer_has_exactly_the_budget_and_echoes_key_words() {
        let q = "Quels sont vos horaires d'ouverture pendant les vacances de Noël ?";
        for n in [1, 2, 5, 64, 300] {
            assert_eq!(answer(1, q, q, n).len(), n as usize);
        }
        let text = answer(1, q, q, 200).concat();
        assert!(text.contains("horaires"), "{text}");
        assert!(
            text.contains("ouverture") || text.contains("vacances"),
            "{text}"
        );
        assert!(!text.starts_with(' '));
        assert!(!text.contains("  "), "{text}");
    }

    #[test]
    fn answer_is_a_function_of_seed_and_prompt() {
        let q = "Avez-vous le dernier roman de Virginie Despentes ?";
        assert_eq!(answer(3, q, q, 40), answer(3, q, q, 40));
        assert_ne!(answer(3, q, q, 40), answer(4, q, q, 40));
        let other = "Livrez-vous en Belgique ?";
        assert_ne!(
            answer(3, q, q, 40).concat(),
            answer(3, other, other, 40).concat()
        );
    }

    #[test]
    fn shorter_budget_is_a_prefix() {
        let q = "Puis-je réserver un manga ?";
        let long = answer(9, q, q, 80);
        let short = answer(9, q, q, 13);
        assert_eq!(short[..], long[..13]);
    }

    #[test]
    fn tokens_are_one_to_three_pieces() {
        let q = "Est-ce que la librairie accepte les chèques-lire pour les bandes dessinées ?";
        for token in answer(5, q, q, 300) {
            let words = token.split_whitespace().count();
            assert!((1..=3).contains(&words), "{token:?}");
        }
    }

    #[test]
    fn topics_skip_short_and_common_words() {
        assert_eq!(
            topics("Bonjour, avez-vous des livres de cuisine pour enfants ?"),
            ["livres", "cuisine", "enfants"]
        );
        assert_eq!(topics("Proposez-vous la livraison ?"), ["livraison"]);
        assert!(topics("").is_empty());
        assert_eq!(answer(0, "", "", 3).len(), 3);
    }

    #[test]
    fn prompt_tokens_grow_with_text() {
        assert_eq!(count_tokens(""), 0);
        assert_eq!(count_tokens("Bonjour"), 2);
        assert_eq!(count_tokens("le chat ?"), 3);
        assert!(count_tokens(&"mot ".repeat(100)) >= 100);
    }

    #[test]
    fn pace_handles_zero_rates() {
        let pace = Pace {
            ttft: Duration::from_millis(100),
            prompt_tokens_per_sec: 0.0,
            tokens_per_sec: 0.0,
        };
        assert_eq!(pace.prompt_eval(1000), Duration::from_millis(100));
        assert_eq!(pace.token_interval(), Duration::ZERO);
        let pace = Pace {
            prompt_tokens_per_sec: 500.0,
            tokens_per_sec: 20.0,
            ..pace
        };
        assert_eq!(pace.prompt_eval(250), Duration::from_millis(600));
        assert_eq!(pace.token_interval(), Duration::from_millis(50));
    }

    #[test]
    fn splitmix_is_stable() {
        // Reference values of SplitMix64 seeded with 0: a change here changes every answer.
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }
}
