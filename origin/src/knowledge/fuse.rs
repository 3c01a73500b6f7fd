//! Fusion of the BM25 and vector rankings into one. Each list gives every passage a value, a
//! passage absent from a list gets that list's value for "absent", and a passage's own fused
//! value is the weighted sum of its two values. Lists also vote for documents, the same way
//! with one entry per document (its best passage in that list), and a document's passages
//! move together to where its fused score puts its best one, keeping their gaps below it.
//! Voting per document matters when a document has several passages: the question's words
//! may match one section and its meaning another, and per passage the document's support
//! would be split between two passages that each get one list's value and the other's floor
//! (on service-public, a fiche second in both lists behind two different fiches came third).
//! With one passage per document, as in an FAQ, nothing moves. Two ways to value a list:
//!
//! - **z-score** (the default): a passage's score minus the list's mean, over the list's
//!   standard deviation; absent passages get the lowest z of the list. BM25 scores (unbounded,
//!   corpus-dependent) and cosines (a narrow band near 0.85 for e5) become comparable, and
//!   unlike ranks they keep *how far* ahead a passage is: a BM25 first place that stands out
//!   (a rare word matched) weighs more than one that leads by a hair.
//! - **reciprocal rank** (RRF, Cormack et al., 2009): `1 / (k + rank)` (rank from 1), absent
//!   passages 0. Ranks only; a larger `k` flattens the advantage of the first ranks.
//!
//! The default, z-scores with a weight of 2.5 for vectors against 1 for BM25, was chosen with
//! `libriassist eval retrieval --tune` on the dev halves of both French sets, as the setting
//! whose worst margin over the better single method was largest (recall@1, then MRR@10);
//! `docs/EVALUATION.md` reports it on the held-out halves. Vectors win on service-public and BM25 on PIAF, so a setting
//! tuned on one alone loses on the other.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::hash::Hash;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FusionMethod {
    /// Weighted sum of each list's z-scores.
    Zscore,
    /// Weighted reciprocal rank fusion.
    Rrf,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fusion {
    pub method: FusionMethod,
    /// The RRF constant (unused by z-scores).
    pub k: f32,
    pub bm25_weight: f32,
    pub dense_weight: f32,
}

impl Default for Fusion {
    fn default() -> Self {
        Fusion {
            method: FusionMethod::Zscore,
            k: 10.0,
            bm25_weight: 1.0,
            dense_weight: 2.5,
        }
    }
}

impl Fusion {
    /// A fused score mapped into (0, 1], which is what clients see as a source's score. RRF:
    /// divided by the highest possible score (first in both lists). Z-scores have no ceiling:
    /// the weighted mean z goes through the logistic function, so a passage at the lists' mean
    /// scores 0.5 and one two standard deviations above it in both lists 0.88.
    pub fn normalize(&self, fused: f32) -> f32 {
        let weights = self.bm25_weight + self.dense_weight;
        match self.method {
            FusionMethod::Rrf => fused * (self.k + 1.0) / weights,
            FusionMethod::Zscore => 1.0 / (1.0 + (-fused / weights).exp()),
        }
    }

    /// Fuses the two lists (each best first) into one, best first: each passage's own fused
    /// value, moved by its document's fused score minus the own value of the document's best
    /// passage. Ties go to the passage that ranks better in the dense list, then to the lower
    /// passage number, so the order is deterministic. `doc_of` names a passage's document.
    pub fn fuse<D: Hash + Eq + Copy>(
        &self,
        bm25: &[(u32, f32)],
        dense: &[(u32, f32)],
        doc_of: impl Fn(u32) -> D,
    ) -> Vec<(u32, f32)> {
        let (bm25_docs, bm25_doc_absent) = self.document_values(bm25, &doc_of);
        let (dense_docs, dense_doc_absent) = self.document_values(dense, &doc_of);
        let document = |doc: &D| {
            self.bm25_weight * bm25_docs.get(doc).copied().unwrap_or(bm25_doc_absent)
                + self.dense_weight * dense_docs.get(doc).copied().unwrap_or(dense_doc_absent)
        };
        let passages = self.fuse_passages(bm25, dense);
        let docs: Vec<D> = passages.iter().map(|p| doc_of(p.0)).collect();
        // Per document: the own value of its best passage, then how far its passages move.
        let mut moves: HashMap<D, f32> = HashMap::with_capacity(passages.len());
        for (&(_, own, _), doc) in passages.iter().zip(&docs) {
            let best = moves.entry(*doc).or_insert(own);
            *best = best.max(own);
        }
        for (doc, m) in &mut moves {
            *m = document(doc) - *m;
        }
        let mut out: Vec<(u32, f32, usize)> = passages
            .into_iter()
            .zip(&docs)
            .map(|((ord, own, rank), doc)| {
                (ord, own + moves.get(doc).copied().unwrap_or(0.0), rank)
            })
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)).then(a.0.cmp(&b.0)));
        out.into_iter().map(|(o, s, _)| (o, s)).collect()
    }

    /// Each document's value in `list` (its first, best, passage's, valued among one entry per
    /// document), and the value of a document absent from it.
    fn document_values<D: Hash + Eq + Copy>(
        &self,
        list: &[(u32, f32)],
        doc_of: impl Fn(u32) -> D,
    ) -> (HashMap<D, f32>, f32) {
        let mut seen = HashSet::with_capacity(list.len());
        let firsts: Vec<(D, f32)> = list
            .iter()
            .map(|&(ord, score)| (doc_of(ord), score))
            .filter(|(doc, _)| seen.insert(*doc))
            .collect();
        let numbered: Vec<(u32, f32)> = (0u32..).zip(firsts.iter().map(|x| x.1)).collect();
        let (values, absent) = self.values(&numbered);
        (
            firsts.into_iter().map(|x| x.0).zip(values).collect(),
            absent,
        )
    }

    /// Each passage of either list with its own fused value and its dense rank.
    fn fuse_passages(&self, bm25: &[(u32, f32)], dense: &[(u32, f32)]) -> Vec<(u32, f32, usize)> {
        let (bm25_values, bm25_absent) = self.values(bm25);
        let (dense_values, dense_absent) = self.values(dense);
        // Per passage: BM25 value, dense value, dense rank.
        let mut parts: HashMap<u32, (f32, f32, usize)> =
            HashMap::with_capacity(bm25.len() + dense.len());
        for ((ord, _), v) in bm25.iter().zip(bm25_values) {
            parts.entry(*ord).or_insert((v, dense_absent, usize::MAX));
        }
        for (rank, ((ord, _), v)) in dense.iter().zip(dense_values).enumerate() {
            let e = parts.entry(*ord).or_insert((bm25_absent, v, rank));
            if e.2 == usize::MAX {
                (e.1, e.2) = (v, rank);
            }
        }
        parts
            .into_iter()
            .map(|(o, (b, d, r))| (o, self.bm25_weight * b + self.dense_weight * d, r))
            .collect()
    }

    /// The value of each passage of `list` (best first), and the value of an absent passage.
    fn values(&self, list: &[(u32, f32)]) -> (Vec<f32>, f32) {
        match self.method {
            FusionMethod::Rrf => (
                (0..list.len())
                    .map(|rank| 1.0 / (self.k + rank as f32 + 1.0))
                    .collect(),
                0.0,
            ),
            FusionMethod::Zscore => {
                let n = list.len().max(1) as f32;
                let mean = list.iter().map(|x| x.1).sum::<f32>() / n;
                let sd = (list.iter().map(|x| (x.1 - mean).powi(2)).sum::<f32>() / n).sqrt();
                // One passage, or all equal: nothing stands out, every value is 0.
                let z = |s: f32| if sd > 0.0 { (s - mean) / sd } else { 0.0 };
                let values: Vec<f32> = list.iter().map(|x| z(x.1)).collect();
                let lowest = values.iter().copied().reduce(f32::min).unwrap_or(0.0);
                (values, lowest)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAPER: Fusion = Fusion {
        method: FusionMethod::Rrf,
        k: 60.0,
        bm25_weight: 1.0,
        dense_weight: 1.0,
    };

    const Z: Fusion = Fusion {
        method: FusionMethod::Zscore,
        k: 0.0,
        bm25_weight: 1.0,
        dense_weight: 1.0,
    };

    #[test]
    fn agreement_wins_over_one_first_place() {
        let f = PAPER;
        // 7 is second in both lists; 1 is first in BM25 only, 2 first in dense only.
        let bm25 = [(1, 12.0), (7, 9.0), (3, 1.0)];
        let dense = [(2, 0.9), (7, 0.88), (4, 0.8)];
        let fused = f.fuse(&bm25, &dense, |o| o);
        let ords: Vec<u32> = fused.iter().map(|x| x.0).collect();
        assert_eq!(ords, [7, 2, 1, 4, 3]);
        assert!((fused[0].1 - 2.0 / 62.0).abs() < 1e-6);
    }

    #[test]
    fn a_document_both_lists_rank_second_wins_even_from_two_passages() {
        // Document 'x' has passages 1 and 2: BM25 ranks it second by passage 1, vectors by
        // passage 2, each behind another document. Per passage neither would lead.
        let doc = |o: u32| match o {
            1 | 2 => 'x',
            3 => 'y',
            4 => 'z',
            5 => 'w',
            _ => 'v',
        };
        let bm25 = [(3, 12.0), (1, 9.0), (5, 1.0)];
        let dense = [(4, 0.9), (2, 0.88), (6, 0.8)];
        let ords: Vec<u32> = PAPER.fuse(&bm25, &dense, doc).iter().map(|x| x.0).collect();
        assert_eq!(ords, [2, 1, 4, 3, 6, 5]);
        let per_passage: Vec<u32> = PAPER
            .fuse(&bm25, &dense, |o| o)
            .iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(per_passage[..2], [4, 3]);
    }

    #[test]
    fn weights_and_k_matter() {
        let bm25 = [(1, 1.0), (2, 0.5)];
        let dense = [(2, 0.9), (1, 0.8)];
        let dense_heavy = Fusion {
            dense_weight: 2.0,
            ..PAPER
        };
        assert_eq!(dense_heavy.fuse(&bm25, &dense, |o| o)[0].0, 2);
        let bm25_heavy = Fusion {
            bm25_weight: 2.0,
            ..PAPER
        };
        assert_eq!(bm25_heavy.fuse(&bm25, &dense, |o| o)[0].0, 1);
        // Equal weights and symmetric ranks: the dense list breaks the tie.
        assert_eq!(PAPER.fuse(&bm25, &dense, |o| o)[0].0, 2);
        let f = Fusion {
            method: FusionMethod::Rrf,
            ..Fusion::default()
        };
        assert!((f.normalize(f.fuse(&[(5, 1.0)], &[(5, 1.0)], |o| o)[0].1) - 1.0).abs() < 1e-6);
        assert!(f.fuse(&[], &[], |o| o).is_empty());
    }

    #[test]
    fn z_scores_keep_the_size_of_a_lead() {
        // BM25 puts 1 far ahead; vectors put 2 ahead by a hair. Ranks call it a draw (and
        // the dense list breaks it), z-scores see BM25's clear preference.
        let bm25 = [(1, 20.0), (2, 5.0), (3, 4.0), (4, 3.0)];
        let dense = [(2, 0.861), (1, 0.860), (3, 0.80), (4, 0.79)];
        let rrf = Fusion {
            dense_weight: 1.0,
            ..PAPER
        };
        assert_eq!(rrf.fuse(&bm25, &dense, |o| o)[0].0, 2);
        let fused = Z.fuse(&bm25, &dense, |o| o);
        assert_eq!(fused[0].0, 1);
        // A passage only one list has gets that list's lowest z from the other.
        let fused = Z.fuse(&[(1, 3.0), (2, 1.0)], &[(3, 0.9), (1, 0.7)], |o| o);
        let score = |o: u32| fused.iter().find(|x| x.0 == o).unwrap().1;
        assert!(
            (score(2) + 2.0).abs() < 1e-6,
            "lowest in BM25 and absent from vectors"
        );
        assert!((score(1) - 0.0).abs() < 1e-6 && (score(3) - 0.0).abs() < 1e-6);
        assert!(Z.fuse(&[], &[], |o| o).is_empty());
        // One passage: z is 0 in both lists, the mean, which the client sees as 0.5.
        let one = Z.fuse(&[(5, 2.0)], &[(5, 0.9)], |o| o);
        assert!((Z.normalize(one[0].1) - 0.5).abs() < 1e-6);
        assert!(Z.normalize(10.0) < 1.0 && Z.normalize(10.0) > Z.normalize(2.0));
    }
}
