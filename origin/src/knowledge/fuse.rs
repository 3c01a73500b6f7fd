//! Reciprocal rank fusion of ranked lists: a passage's fused score is the sum, over the lists
//! that contain it, of `weight / (k + rank)` (rank from 1).
//!
//! RRF uses ranks only, so BM25 scores (unbounded, corpus-dependent) and cosines (a narrow band
//! near 0.8 for e5) need no calibration against each other. A larger `k` flattens the
//! advantage of the very first ranks (60 in the original paper, Cormack et al., 2009).
//!
//! The defaults, k = 10 and a weight of 1.5 for vectors against 1 for BM25, were chosen with
//! `libriassist eval retrieval --tune` on the dev halves of both French sets, as the setting
//! whose worst recall@1 margin over the better single method was largest; `docs/EVALUATION.md`
//! reports them on the held-out halves. Vectors win on service-public and BM25 on PIAF, so a
//! setting tuned on one alone loses on the other.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fusion {
    pub k: f32,
    pub bm25_weight: f32,
    pub dense_weight: f32,
}

impl Default for Fusion {
    fn default() -> Self {
        Fusion {
            k: 10.0,
            bm25_weight: 1.0,
            dense_weight: 1.5,
        }
    }
}

impl Fusion {
    /// The highest fused score possible: first in every list. Scores divided by it fall in
    /// (0, 1], which is what clients see as a source's score.
    pub fn max_score(&self) -> f32 {
        (self.bm25_weight + self.dense_weight) / (self.k + 1.0)
    }

    /// Fuses the two lists (each best first) into one, best first; ties go to the passage that
    /// ranks better in the dense list, then to the lower passage number, so the order is
    /// deterministic.
    pub fn fuse(&self, bm25: &[(u32, f32)], dense: &[(u32, f32)]) -> Vec<(u32, f32)> {
        let mut scores: HashMap<u32, (f32, usize)> =
            HashMap::with_capacity(bm25.len() + dense.len());
        for (rank, (ord, _)) in bm25.iter().enumerate() {
            scores.entry(*ord).or_insert((0.0, usize::MAX)).0 +=
                self.bm25_weight / (self.k + rank as f32 + 1.0);
        }
        for (rank, (ord, _)) in dense.iter().enumerate() {
            let e = scores.entry(*ord).or_insert((0.0, usize::MAX));
            e.0 += self.dense_weight / (self.k + rank as f32 + 1.0);
            e.1 = e.1.min(rank);
        }
        let mut out: Vec<(u32, f32, usize)> =
            scores.into_iter().map(|(o, (s, r))| (o, s, r)).collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)).then(a.0.cmp(&b.0)));
        out.into_iter().map(|(o, s, _)| (o, s)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAPER: Fusion = Fusion {
        k: 60.0,
        bm25_weight: 1.0,
        dense_weight: 1.0,
    };

    #[test]
    fn agreement_wins_over_one_first_place() {
        let f = PAPER;
        // 7 is second in both lists; 1 is first in BM25 only, 2 first in dense only.
        let bm25 = [(1, 12.0), (7, 9.0), (3, 1.0)];
        let dense = [(2, 0.9), (7, 0.88), (4, 0.8)];
        let fused = f.fuse(&bm25, &dense);
        let ords: Vec<u32> = fused.iter().map(|x| x.0).collect();
        assert_eq!(ords, [7, 2, 1, 4, 3]);
        assert!((fused[0].1 - 2.0 / 62.0).abs() < 1e-6);
    }

    #[test]
    fn weights_and_k_matter() {
        let bm25 = [(1, 1.0), (2, 0.5)];
        let dense = [(2, 0.9), (1, 0.8)];
        let dense_heavy = Fusion {
            dense_weight: 2.0,
            ..PAPER
        };
        assert_eq!(dense_heavy.fuse(&bm25, &dense)[0].0, 2);
        let bm25_heavy = Fusion {
            bm25_weight: 2.0,
            ..PAPER
        };
        assert_eq!(bm25_heavy.fuse(&bm25, &dense)[0].0, 1);
        // Equal weights and symmetric ranks: the dense list breaks the tie.
        assert_eq!(PAPER.fuse(&bm25, &dense)[0].0, 2);
        let f = Fusion::default();
        assert!((f.fuse(&[(5, 1.0)], &[(5, 1.0)])[0].1 / f.max_score() - 1.0).abs() < 1e-6);
        assert!(f.fuse(&[], &[]).is_empty());
    }
}
