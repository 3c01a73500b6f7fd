//! The question mix: what the simulated customers ask, in what proportions.
//!
//! A customer question is, with the configured shares, a popular FAQ question (its rank drawn
//! from a Zipf law, so a few questions make most of the traffic, as in every FAQ log), a
//! paraphrase of one (same Zipf rank, one of its rewordings), or a long-tail question asked
//! only once. Everything is seeded: the popular ranks are a seeded permutation of the bank, each
//! user draws from its own seeded generator, and long-tail questions are dealt from one seeded
//! deck so that no two requests of a run share one.

use super::corpus::Bank;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};

/// What kind of question a request carried; the report splits latencies by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Popular,
    Paraphrase,
    Tail,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    pub text: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixSettings {
    pub popular_share: f64,
    pub paraphrase_share: f64,
    pub zipf_s: f64,
    pub seed: u64,
}

impl MixSettings {
    /// Only long-tail questions: every request needs a generation.
    pub fn misses_only(seed: u64) -> MixSettings {
        MixSettings {
            popular_share: 0.0,
            paraphrase_share: 0.0,
            zipf_s: 1.0,
            seed,
        }
    }
}

/// A Zipf law over ranks `0..n`: P(rank k) is proportional to 1 / (k + 1)^s.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// `n` ranks (at least one is kept so sampling never fails) with exponent `s`.
    pub fn new(n: usize, s: f64) -> Zipf {
        let weights: Vec<f64> = (1..=n.max(1)).map(|k| (k as f64).powf(-s)).collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let cdf = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        Zipf { cdf }
    }

    #[cfg(test)]
    fn probability(&self, rank: usize) -> f64 {
        match rank {
            0 => self.cdf.first().copied().unwrap_or(0.0),
            k => self.cdf.get(k).map_or(0.0, |c| c - self.cdf[k - 1]),
        }
    }

    /// The rank whose cumulative probability first reaches `u` (uniform in 0..1).
    pub fn rank(&self, u: f64) -> usize {
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// The seeded mix a run draws its questions from; shared by all users of a run.
#[derive(Debug)]
pub struct Mix {
    bank: Bank,
    settings: MixSettings,
    /// Popular rank -> index in the bank.
    ranks: Vec<usize>,
    zipf: Zipf,
    tail_deck: Vec<usize>,
    tail_dealt: AtomicUsize,
}

impl Mix {
    /// # Errors
    /// When a share asks for questions the bank does not have.
    pub fn new(bank: Bank, settings: MixSettings) -> Result<Mix, String> {
        let wants_popular = settings.popular_share + settings.paraphrase_share > 0.0;
        if wants_popular && bank.popular.is_empty() {
            return Err("the mix needs popular questions and the bank has none".into());
        }
        if settings.popular_share + settings.paraphrase_share < 1.0 && bank.tail.is_empty() {
            return Err("the mix needs long-tail questions and the bank has none".into());
        }
        let mut rng = StdRng::seed_from_u64(settings.seed);
        let mut ranks: Vec<usize> = (0..bank.popular.len()).collect();
        ranks.shuffle(&mut rng);
        let mut tail_deck: Vec<usize> = (0..bank.tail.len()).collect();
        tail_deck.shuffle(&mut rng);
        let zipf = Zipf::new(ranks.len(), settings.zipf_s);
        Ok(Mix {
            bank,
            settings,
            ranks,
            zipf,
            tail_deck,
            tail_dealt: AtomicUsize::new(0),
        })
    }

    /// The generator of one user: independent of every other user's, and the same in every run
    /// with the same seed.
    pub fn user_rng(&self, stream: u64, user: usize) -> StdRng {
        let mixed = self.settings.seed
            ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (user as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        StdRng::seed_from_u64(mixed)
    }

    /// Draws one question.
    pub fn draw(&self, rng: &mut impl Rng) -> Question {
        let u: f64 = rng.random();
        let s = &self.settings;
        if u < s.popular_share {
            let p = &self.bank.popular[self.ranks[self.zipf.rank(rng.random())]];
            return Question {
                text: p.text.clone(),
                kind: Kind::Popular,
            };
        }
        if u < s.popular_share + s.paraphrase_share {
            let p = &self.bank.popular[self.ranks[self.zipf.rank(rng.random())]];
            if !p.paraphrases.is_empty() {
                let text = p.paraphrases[rng.random_range(0..p.paraphrases.len())].clone();
                return Question {
                    text,
                    kind: Kind::Paraphrase,
                };
            }
        }
        self.deal_tail()
    }

    /// The next long-tail question. When the deck runs out it starts over: the report shows
    /// how many were dealt, so a repeat (a possible cache hit) is never hidden.
    fn deal_tail(&self) -> Question {
        let n = self.tail_dealt.fetch_add(1, Ordering::Relaxed);
        let index = self.tail_deck[n % self.tail_deck.len()];
        Question {
            text: self.bank.tail[index].clone(),
            kind: Kind::Tail,
        }
    }

    /// Long-tail questions dealt so far and the deck size.
    pub fn tail_usage(&self) -> (usize, usize) {
        (
            self.tail_dealt.load(Ordering::Relaxed),
            self.tail_deck.len(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::corpus::{ParaphraseSource, Popular};
    use std::collections::{HashMap, HashSet};

    fn bank(popular: usize, tail: usize) -> Bank {
        Bank {
            popular: (0..popular)
                .map(|i| Popular {
                    text: format!("Question populaire {i} ?"),
                    paraphrases: vec![format!("Bonjour, question populaire {i} ?")],
                })
                .collect(),
            tail: (0..tail).map(|i| format!("Question rare {i} ?")).collect(),
            popular_source: "test".into(),
            paraphrase_source: ParaphraseSource::Generated,
            tail_source: "test".into(),
        }
    }

    fn settings(seed: u64) -> MixSettings {
        MixSettings {
            popular_share: 0.4,
            paraphrase_share: 0.2,
            zipf_s: 1.0,
            seed,
        }
    }

    #[test]
    fn zipf_probabilities_follow_one_over_rank() {
        let z = Zipf::new(50, 1.0);
        let harmonic: f64 = (1..=50).map(|k| 1.0 / f64::from(k)).sum();
        assert!((z.probability(0) - 1.0 / harmonic).abs() < 1e-12);
        assert!((z.probability(0) / z.probability(1) - 2.0).abs() < 1e-9);
        assert!((z.probability(0) / z.probability(9) - 10.0).abs() < 1e-9);
        assert_eq!(z.rank(0.0), 0);
        assert_eq!(z.rank(1.0), 49);
        assert_eq!(Zipf::new(0, 1.0).rank(0.5), 0, "an empty law still samples");
    }

    #[test]
    fn sampled_ranks_have_the_zipf_shape() {
        let z = Zipf::new(50, 1.0);
        let mut rng = StdRng::seed_from_u64(1);
        let n = 200_000;
        let mut counts = [0usize; 50];
        for _ in 0..n {
            counts[z.rank(rng.random())] += 1;
        }
        for rank in [0, 1, 4, 9, 24] {
            let observed = counts[rank] as f64 / n as f64;
            let expected = z.probability(rank);
            assert!(
                (observed - expected).abs() < 0.1 * expected + 0.002,
                "rank {rank}: {observed} vs {expected}"
            );
        }
        // Log-log slope between ranks 1 and 10 close to -s.
        let slope = ((counts[9] as f64).ln() - (counts[0] as f64).ln()) / (10f64.ln() - 1f64.ln());
        assert!((slope + 1.0).abs() < 0.1, "slope {slope}");
    }

    #[test]
    fn shares_and_kinds_match_the_settings() {
        let mix = Mix::new(bank(40, 10_000), settings(3)).unwrap();
        let mut rng = mix.user_rng(0, 0);
        let n = 5_000;
        let mut by_kind: HashMap<Kind, usize> = HashMap::new();
        for _ in 0..n {
            *by_kind.entry(mix.draw(&mut rng).kind).or_default() += 1;
        }
        let share = |k| by_kind.get(&k).copied().unwrap_or(0) as f64 / n as f64;
        assert!((share(Kind::Popular) - 0.4).abs() < 0.03);
        assert!((share(Kind::Paraphrase) - 0.2).abs() < 0.03);
        assert!((share(Kind::Tail) - 0.4).abs() < 0.03);
    }

    #[test]
    fn same_seed_same_questions_other_seed_other_questions() {
        let draw = |seed, user| {
            let mix = Mix::new(bank(40, 1_000), settings(seed)).unwrap();
            let mut rng = mix.user_rng(1, user);
            (0..50).map(|_| mix.draw(&mut rng).text).collect::<Vec<_>>()
        };
        assert_eq!(draw(9, 3), draw(9, 3));
        assert_ne!(draw(9, 3), draw(10, 3));
        assert_ne!(draw(9, 3), draw(9, 4), "users draw independently");
    }

    #[test]
    fn tail_questions_are_never_repeated_until_the_deck_runs_out() {
        let mix = Mix::new(bank(5, 300), MixSettings::misses_only(5)).unwrap();
        let mut rng = mix.user_rng(0, 0);
        let texts: HashSet<String> = (0..300).map(|_| mix.draw(&mut rng).text).collect();
        assert_eq!(texts.len(), 300);
        assert_eq!(mix.tail_usage(), (300, 300));
        assert!(
            texts.contains(&mix.draw(&mut rng).text),
            "then the deck starts over"
        );
    }

    #[test]
    fn a_mix_without_its_questions_is_refused() {
        assert!(Mix::new(bank(0, 10), settings(1)).is_err());
        assert!(Mix::new(bank(10, 0), settings(1)).is_err());
        assert!(Mix::new(
            bank(10, 0),
            MixSettings {
                popular_share: 1.0,
                paraphrase_share: 0.0,
                zipf_s: 1.0,
                seed: 1
            }
        )
        .is_ok());
    }
}
