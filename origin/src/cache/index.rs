//! A bounded, exact nearest-neighbour index of question vectors: a flat scan.
//!
//! Flat because it has no build step, updates in place and is fast enough here: a scan of 100k
//! 384-dimension vectors takes a few milliseconds in a release build (docs/BENCHMARKS.md), about
//! what the embedding before it takes. An approximate index would add a dependency and recall
//! loss for no gain below that size.
//!
//! Vectors are stored as 8-bit integers with one scale per vector, and the query is quantized
//! the same way: 100k vectors are 38 MB instead of 153 MB as f32 (whose scan measured 18 ms,
//! mostly reading memory), and integer dot products vectorise well (`crate::vectors`, shared with
//! the knowledge base's scan). The similarity moves by
//! about 0.003, far below what separates a paraphrase from another question (the guards decide
//! those, not the third decimal).
//!
//! Each entry belongs to a scope (corpus version, model, embedder) interned as a number, so
//! entries of an old corpus are never candidates for a new one. When full, the oldest entry
//! makes room. Vectors are expected L2-normalised: the dot product is the cosine.

use crate::vectors;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Rows scored per kernel call: a block's scores stay in L1 while they are ranked.
const BLOCK_ROWS: usize = 256;

/// One stored question.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub scope: u32,
    /// Cache key of the question: the exact-cache entry holding the answer.
    pub key: String,
    pub question: Arc<str>,
}

/// A search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbour {
    pub entry: Entry,
    pub similarity: f32,
}

pub struct FlatIndex {
    dim: usize,
    capacity: usize,
    vectors: Vec<i8>,
    scales: Vec<f32>,
    scopes: Vec<u32>,
    entries: Vec<Option<Entry>>,
    by_key: HashMap<(u32, String), usize>,
    free: Vec<usize>,
    /// Slots by insertion, oldest first, with the sequence number they had then: a slot reused
    /// since has a newer number, so its stale place in the queue is skipped.
    order: VecDeque<(usize, u64)>,
    sequence: Vec<u64>,
    next_sequence: u64,
}

/// Scope id of a freed slot: matches no real scope.
const NO_SCOPE: u32 = u32::MAX;

impl FlatIndex {
    pub fn new(dim: usize, capacity: usize) -> Self {
        FlatIndex {
            dim,
            capacity: capacity.max(1),
            vectors: Vec::new(),
            scales: Vec::new(),
            scopes: Vec::new(),
            entries: Vec::new(),
            by_key: HashMap::new(),
            free: Vec::new(),
            order: VecDeque::new(),
            sequence: Vec::new(),
            next_sequence: 0,
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Adds or replaces the entry of (`scope`, `key`). A vector of the wrong dimension is
    /// refused (returns false): it cannot be compared with the others.
    pub fn insert(&mut self, entry: Entry, vector: &[f32]) -> bool {
        if vector.len() != self.dim || entry.scope == NO_SCOPE {
            return false;
        }
        let id = (entry.scope, entry.key.clone());
        let slot = match self.by_key.get(&id) {
            Some(&slot) => slot,
            None => {
                if self.by_key.len() >= self.capacity {
                    self.evict_oldest();
                }
                match self.free.pop() {
                    Some(slot) => slot,
                    None => {
                        self.vectors.extend(std::iter::repeat_n(0, self.dim));
                        self.scales.push(0.0);
                        self.scopes.push(NO_SCOPE);
                        self.entries.push(None);
                        self.sequence.push(0);
                        self.entries.len() - 1
                    }
                }
            }
        };
        self.scales[slot] = vectors::quantize(
            vector,
            &mut self.vectors[slot * self.dim..(slot + 1) * self.dim],
        );
        self.scopes[slot] = entry.scope;
        self.entries[slot] = Some(entry);
        self.sequence[slot] = self.next_sequence;
        self.order.push_back((slot, self.next_sequence));
        self.next_sequence += 1;
        self.by_key.insert(id, slot);
        self.compact_order();
        true
    }

    /// Marks an entry as just used: it becomes the last to be evicted.
    pub fn touch(&mut self, scope: u32, key: &str) {
        if let Some(&slot) = self.by_key.get(&(scope, key.to_owned())) {
            self.sequence[slot] = self.next_sequence;
            self.order.push_back((slot, self.next_sequence));
            self.next_sequence += 1;
            self.compact_order();
        }
    }

    /// Replacements and touches leave stale places in the queue; drop them before the queue
    /// outgrows the index.
    fn compact_order(&mut self) {
        if self.order.len() > 2 * self.capacity + 16 {
            let (sequence, entries) = (&self.sequence, &self.entries);
            self.order
                .retain(|&(slot, seq)| sequence[slot] == seq && entries[slot].is_some());
        }
    }

    fn evict_oldest(&mut self) {
        while let Some((slot, seq)) = self.order.pop_front() {
            if self.sequence.get(slot) == Some(&seq) && self.entries[slot].is_some() {
                self.remove_slot(slot);
                return;
            }
        }
    }

    fn remove_slot(&mut self, slot: usize) {
        if let Some(entry) = self.entries[slot].take() {
            self.by_key.remove(&(entry.scope, entry.key));
            self.scopes[slot] = NO_SCOPE;
            self.free.push(slot);
        }
    }

    pub fn remove(&mut self, scope: u32, key: &str) -> bool {
        match self.by_key.get(&(scope, key.to_owned())) {
            Some(&slot) => {
                self.remove_slot(slot);
                true
            }
            None => false,
        }
    }

    /// Removes every entry for which `keep` is false; returns how many.
    pub fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) -> usize {
        let doomed: Vec<usize> = (0..self.entries.len())
            .filter(|&i| self.entries[i].as_ref().is_some_and(|e| !keep(e)))
            .collect();
        for &slot in &doomed {
            self.remove_slot(slot);
        }
        doomed.len()
    }

    /// The `k` entries of `scope` most similar to `query`, best first, at or above `min`.
    pub fn search(&self, scope: u32, query: &[f32], k: usize, min: f32) -> Vec<Neighbour> {
        if query.len() != self.dim || k == 0 || self.dim == 0 {
            return Vec::new();
        }
        let (q, query_scale) = vectors::query(query);
        let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
        let mut scores = [0i32; BLOCK_ROWS];
        for (b, block) in self.vectors.chunks(BLOCK_ROWS * self.dim).enumerate() {
            let scores = &mut scores[..block.len() / self.dim];
            vectors::score_rows(&q, block, scores);
            for (i, &score) in scores.iter().enumerate() {
                let slot = b * BLOCK_ROWS + i;
                if self.scopes[slot] != scope {
                    continue;
                }
                let similarity = score as f32 * query_scale * self.scales[slot];
                if similarity < min
                    || (best.len() == k && best.last().is_some_and(|(s, _)| similarity <= *s))
                {
                    continue;
                }
                let at = best.partition_point(|(s, _)| *s >= similarity);
                best.insert(at, (similarity, slot));
                best.truncate(k);
            }
        }
        best.into_iter()
            .filter_map(|(similarity, slot)| {
                self.entries[slot]
                    .clone()
                    .map(|entry| Neighbour { entry, similarity })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vectors::dot;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    fn entry(scope: u32, key: &str) -> Entry {
        Entry {
            scope,
            key: key.into(),
            question: Arc::from(key),
        }
    }

    #[test]
    fn search_is_exact_best_first_and_scoped() {
        let mut index = FlatIndex::new(3, 10);
        assert!(index.insert(entry(1, "x"), &unit(&[1.0, 0.0, 0.0])));
        assert!(index.insert(entry(1, "xy"), &unit(&[1.0, 1.0, 0.0])));
        assert!(index.insert(entry(1, "y"), &unit(&[0.0, 1.0, 0.0])));
        assert!(index.insert(entry(2, "x"), &unit(&[1.0, 0.0, 0.0])));
        assert!(!index.insert(entry(1, "bad"), &[1.0]));
        let found = index.search(1, &unit(&[1.0, 0.1, 0.0]), 2, 0.0);
        let keys: Vec<&str> = found.iter().map(|n| n.entry.key.as_str()).collect();
        assert_eq!(keys, ["x", "xy"]);
        assert!(found[0].similarity > found[1].similarity);
        assert!(found.iter().all(|n| n.entry.scope == 1));
        assert!(index.search(1, &unit(&[0.0, 0.0, 1.0]), 5, 0.5).is_empty());
        assert!(index.search(3, &unit(&[1.0, 0.0, 0.0]), 5, 0.0).is_empty());
    }

    #[test]
    fn bounded_oldest_out_and_replace_in_place() {
        let mut index = FlatIndex::new(2, 3);
        for key in ["a", "b", "c"] {
            index.insert(entry(1, key), &[1.0, 0.0]);
        }
        // Replacing "a" refreshes it: "b" is now the oldest.
        index.insert(entry(1, "a"), &[0.0, 1.0]);
        assert_eq!(index.len(), 3);
        index.insert(entry(1, "d"), &[1.0, 0.0]);
        assert_eq!(index.len(), 3);
        let keys: Vec<String> = index
            .search(1, &[1.0, 0.0], 10, -1.0)
            .into_iter()
            .map(|n| n.entry.key)
            .collect();
        assert!(!keys.contains(&"b".to_owned()), "{keys:?}");
        assert_eq!(index.search(1, &[0.0, 1.0], 1, 0.9)[0].entry.key, "a");
        assert!(index.remove(1, "a"));
        assert!(!index.remove(1, "a"));
        assert_eq!(index.retain(|e| e.key != "c"), 1);
        assert_eq!(index.len(), 1);
        for i in 0..100 {
            index.insert(entry(1, &i.to_string()), &[1.0, 0.0]);
        }
        assert_eq!(index.len(), 3);
        assert!(index.vectors.len() <= 4 * 2, "slots are reused");
    }

    #[test]
    fn quantized_similarity_stays_within_a_hundredth() {
        let vector = |seed: f32| {
            unit(
                &(0..384)
                    .map(|i| ((i as f32 + seed) * 0.731).sin() + 0.3 * ((i as f32) * seed).cos())
                    .collect::<Vec<_>>(),
            )
        };
        let mut index = FlatIndex::new(384, 10);
        let stored = vector(1.0);
        index.insert(entry(1, "a"), &stored);
        for seed in [1.0f32, 1.01, 1.1, 2.0, 7.0] {
            let query = vector(seed);
            let exact = dot(&query, &stored);
            let found = index.search(1, &query, 1, -1.0);
            assert!(
                (found[0].similarity - exact).abs() < 0.01,
                "{} vs {exact}",
                found[0].similarity
            );
        }
    }

    #[test]
    fn scans_past_one_block_find_the_right_slots() {
        let vector = |seed: usize| {
            unit(
                &(0..384)
                    .map(|i| ((i * 7 + seed * 13) as f32 * 0.731).sin())
                    .collect::<Vec<_>>(),
            )
        };
        let mut index = FlatIndex::new(384, 1000);
        let stored: Vec<Vec<f32>> = (0..3 * BLOCK_ROWS + 17).map(vector).collect();
        for (i, v) in stored.iter().enumerate() {
            assert!(index.insert(entry(1 + (i % 2) as u32, &i.to_string()), v));
        }
        let wanted = 2 * BLOCK_ROWS + 13;
        let found = index.search(2, &stored[wanted], 10, -1.0);
        assert_eq!(found.len(), 10);
        assert_eq!(found[0].entry.key, wanted.to_string());
        for pair in found.windows(2) {
            assert!(pair[0].similarity >= pair[1].similarity);
        }
        for n in &found {
            assert_eq!(n.entry.scope, 2);
            let i: usize = n.entry.key.parse().unwrap();
            let exact = dot(&stored[wanted], &stored[i]);
            assert!(
                (n.similarity - exact).abs() < 0.01,
                "{i}: {} vs {exact}",
                n.similarity
            );
        }
    }
}
