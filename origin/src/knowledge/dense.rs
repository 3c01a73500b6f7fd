//! Exact nearest-neighbour search over passage vectors: one contiguous row-major `f32` matrix,
//! scanned in full for each question.
//!
//! A flat scan is exact, has no build step and no tuning, and at our sizes it is fast enough:
//! 100k passages of 384 dimensions is 38 MB of 8-bit vectors read per question, scanned with
//! AVX2 where the CPU has it and split across the cores, a few milliseconds
//! (`docs/BENCHMARKS.md`). Vectors are L2-normalised by the embedder, so the dot product is the
//! cosine. An approximate index (HNSW) would only pay off well beyond that size.
//!
//! On disk the matrix is `vectors.f32`: little-endian `f32`, row after row, nothing else; its
//! shape comes from the manifest.

use super::KnowledgeError;
use crate::vectors::{self, dot};
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::path::Path;

pub struct DenseIndex {
    dimensions: usize,
    data: Vec<f32>,
    /// The same matrix in 8 bits (one scale for all), scanned first: a quarter of the memory
    /// traffic of the f32 scan, which is what bounds its speed. The shortlist it gives is then
    /// scored exactly from `data`, so results are those of an exact search unless a true top-k
    /// passage falls outside a shortlist of `4k + 32` (int8 cosine errors are ~1e-3).
    quantized: Vec<i8>,
    /// Threads a large scan is split across (one per core), read once: the standard library
    /// reads cgroup files to answer.
    threads: usize,
}

/// Extra candidates scored exactly after the 8-bit scan.
const SHORTLIST_SLACK: usize = 32;

/// Below this many bytes of 8-bit rows (about 10k passages of 384 dimensions) a scan takes
/// well under a millisecond, and starting threads would cost more than it saves.
const PARALLEL_MIN_BYTES: usize = 4 << 20;

/// Rows scored per kernel call: a block's scores stay in L1 until they meet the heap.
const BLOCK_ROWS: usize = 256;

impl std::fmt::Debug for DenseIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DenseIndex")
            .field("dimensions", &self.dimensions)
            .field("rows", &self.len())
            .finish()
    }
}

impl DenseIndex {
    /// # Errors
    /// `data` is not a whole number of rows, or a value is not finite.
    pub fn new(dimensions: usize, data: Vec<f32>) -> Result<DenseIndex, String> {
        if dimensions == 0 {
            return Err("vectors must have at least one dimension".into());
        }
        if !data.len().is_multiple_of(dimensions) {
            return Err(format!(
                "{} values are not a whole number of {dimensions}-dimension rows",
                data.len()
            ));
        }
        if data.iter().any(|x| !x.is_finite()) {
            return Err("a vector holds a value that is not a finite number".into());
        }
        let mut quantized = vec![0; data.len()];
        vectors::quantize(&data, &mut quantized);
        Ok(DenseIndex {
            dimensions,
            data,
            quantized,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        })
    }

    /// From rows, which must all have `dimensions` values.
    ///
    /// # Errors
    /// As [`DenseIndex::new`], or a row of another length.
    pub fn from_rows(dimensions: usize, rows: &[Vec<f32>]) -> Result<DenseIndex, String> {
        let mut data = Vec::with_capacity(rows.len() * dimensions);
        for (i, row) in rows.iter().enumerate() {
            if row.len() != dimensions {
                return Err(format!(
                    "vector {i} has {} dimensions, expected {dimensions}",
                    row.len()
                ));
            }
            data.extend_from_slice(row);
        }
        DenseIndex::new(dimensions, data)
    }

    /// Decodes `vectors.f32` bytes.
    ///
    /// # Errors
    /// A length that is not `rows * dimensions * 4`, or non-finite values.
    pub fn from_bytes(dimensions: usize, rows: usize, bytes: &[u8]) -> Result<DenseIndex, String> {
        let expected = rows.checked_mul(dimensions).and_then(|n| n.checked_mul(4));
        if expected != Some(bytes.len()) {
            return Err(format!(
                "vectors file has {} bytes, expected {rows} x {dimensions} x 4",
                bytes.len()
            ));
        }
        let data = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        DenseIndex::new(dimensions, data)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.data.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// # Errors
    /// The file cannot be written.
    pub fn write(&self, path: &Path) -> Result<(), KnowledgeError> {
        std::fs::write(path, self.to_bytes()).map_err(|source| KnowledgeError::Write {
            path: path.to_owned(),
            source,
        })
    }

    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    pub fn len(&self) -> usize {
        self.data.len() / self.dimensions
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn row(&self, i: usize) -> Option<&[f32]> {
        self.data
            .get(i * self.dimensions..(i + 1) * self.dimensions)
    }

    /// Cosine of `query` with passage `i` (vectors are normalised); `None` for a bad row or length.
    pub fn score(&self, query: &[f32], i: usize) -> Option<f32> {
        if query.len() != self.dimensions {
            return None;
        }
        self.row(i).map(|r| dot(query, r))
    }

    /// The `k` passages most similar to `query`, best first (ties: lower passage number
    /// first). Empty if `query` has the wrong length.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<(u32, f32)> {
        if query.len() != self.dimensions || k == 0 || self.is_empty() {
            return Vec::new();
        }
        let (q, _) = vectors::query(query);
        let threads = if self.quantized.len() < PARALLEL_MIN_BYTES {
            1
        } else {
            self.threads
        };
        let shortlist = self.shortlist(
            &q,
            k.saturating_mul(4).saturating_add(SHORTLIST_SLACK),
            threads,
        );
        let exact = shortlist
            .into_iter()
            .filter_map(|(ord, _)| self.score(query, ord as usize).map(|s| (ord, s)));
        let mut out: Vec<(u32, f32)> = exact.collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(k);
        out
    }

    /// The exact scan, without the 8-bit shortlist: the reference the tests and the benchmark
    /// compare against.
    pub fn search_exact(&self, query: &[f32], k: usize) -> Vec<(u32, f32)> {
        if query.len() != self.dimensions || k == 0 {
            return Vec::new();
        }
        let mut out = top(
            self.data
                .chunks_exact(self.dimensions)
                .enumerate()
                .map(|(i, row)| (i as u32, dot(query, row))),
            k,
        );
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    /// The `n` best rows by 8-bit dot product with `q`, in no particular order, the rows split
    /// into `threads` contiguous parts scanned at once. Each part keeps its own best `n` (ties
    /// to the lower row, as one scan would), so the merged result does not depend on `threads`.
    fn shortlist(&self, q: &[i16], n: usize, threads: usize) -> Vec<(u32, f32)> {
        let rows_per_part = self.len().div_ceil(threads.max(1)).max(1);
        let part_len = rows_per_part * self.dimensions;
        if part_len >= self.quantized.len() {
            return scan(q, &self.quantized, 0, n);
        }
        let parts: Vec<Vec<(u32, f32)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .quantized
                .chunks(part_len)
                .enumerate()
                .map(|(i, part)| scope.spawn(move || scan(q, part, i * rows_per_part, n)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        top(parts.into_iter().flatten(), n)
    }
}

/// The `n` best rows of the 8-bit matrix `rows` (row numbers counted from `first`), scored by
/// blocks.
fn scan(q: &[i16], rows: &[i8], first: usize, n: usize) -> Vec<(u32, f32)> {
    let mut scores = [0i32; BLOCK_ROWS];
    let mut heap: BinaryHeap<Scored> = BinaryHeap::with_capacity(n + 1);
    for (b, block) in rows.chunks(BLOCK_ROWS * q.len()).enumerate() {
        let scores = &mut scores[..block.len() / q.len()];
        vectors::score_rows(q, block, scores);
        let base = first + b * BLOCK_ROWS;
        // The sums are exact integers below 2^24, so as f32 they keep their order.
        push_best(
            &mut heap,
            scores
                .iter()
                .enumerate()
                .map(|(i, &s)| ((base + i) as u32, s as f32)),
            n,
        );
    }
    heap.into_iter().map(|s| (s.ord, s.score)).collect()
}

/// The `k` best of `scores` (row number, score), in no particular order.
fn top(scores: impl Iterator<Item = (u32, f32)>, k: usize) -> Vec<(u32, f32)> {
    let mut heap: BinaryHeap<Scored> = BinaryHeap::with_capacity(k + 1);
    push_best(&mut heap, scores, k);
    heap.into_iter().map(|s| (s.ord, s.score)).collect()
}

/// Adds `scores` to `heap`, which keeps the best `k` (higher score, then lower row number).
fn push_best(heap: &mut BinaryHeap<Scored>, scores: impl Iterator<Item = (u32, f32)>, k: usize) {
    // A min-heap of the best k so far: most rows lose to its top and cost one comparison.
    for (ord, score) in scores {
        let candidate = Scored { score, ord };
        if heap.len() < k {
            heap.push(candidate);
        } else if heap.peek().is_some_and(|worst| candidate < *worst) {
            heap.pop();
            heap.push(candidate);
        }
    }
}

/// Ordered so that `BinaryHeap`'s top is the worst kept score.
struct Scored {
    score: f32,
    ord: u32,
}

impl PartialEq for Scored {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .score
            .total_cmp(&self.score)
            .then(self.ord.cmp(&other.ord))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn search_returns_the_best_rows_in_order() {
        let rows = vec![
            unit(&[1.0, 0.0, 0.0]),
            unit(&[0.0, 1.0, 0.0]),
            unit(&[1.0, 1.0, 0.0]),
            unit(&[1.0, 0.0, 0.0]),
        ];
        let index = DenseIndex::from_rows(3, &rows).unwrap();
        let hits = index.search(&unit(&[1.0, 0.1, 0.0]), 3);
        let ords: Vec<u32> = hits.iter().map(|h| h.0).collect();
        assert_eq!(ords, [0, 3, 2], "ties keep the lower passage number first");
        assert!(hits[0].1 > hits[2].1);
        assert_eq!(index.search(&[1.0, 0.0, 0.0], 10).len(), 4);
        assert!(index.search(&[1.0, 0.0], 3).is_empty(), "wrong dimension");
        assert!((index.score(&unit(&[0.0, 1.0, 0.0]), 1).unwrap() - 1.0).abs() < 1e-6);
        assert_eq!(index.score(&[1.0, 0.0, 0.0], 9), None);
    }

    #[test]
    fn shortlisted_search_agrees_with_the_exact_scan() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let dims = 64;
        let mut random_unit = || {
            unit(
                &(0..dims)
                    .map(|_| rng.random_range(-1.0f32..1.0))
                    .collect::<Vec<_>>(),
            )
        };
        let rows: Vec<Vec<f32>> = (0..3000).map(|_| random_unit()).collect();
        let index = DenseIndex::from_rows(dims, &rows).unwrap();
        for _ in 0..20 {
            let q = random_unit();
            assert_eq!(index.search(&q, 10), index.search_exact(&q, 10));
        }
    }

    #[test]
    fn split_scan_ranks_like_one_scan() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let dims = 24;
        // Few distinct values, so that many rows tie and the tie rule is exercised.
        let rows: Vec<Vec<f32>> = (0..2000)
            .map(|_| {
                (0..dims)
                    .map(|_| f32::from(rng.random_range(-2i8..=2)))
                    .collect()
            })
            .collect();
        let index = DenseIndex::from_rows(dims, &rows).unwrap();
        let sorted = |mut v: Vec<(u32, f32)>| {
            v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            v
        };
        for _ in 0..10 {
            let q: Vec<i16> = (0..dims).map(|_| rng.random_range(-127..=127)).collect();
            let one = sorted(index.shortlist(&q, 50, 1));
            assert_eq!(one.len(), 50);
            for threads in [2, 3, 7] {
                assert_eq!(
                    sorted(index.shortlist(&q, 50, threads)),
                    one,
                    "{threads} threads"
                );
            }
            let all = sorted(index.shortlist(&q, 2000, 1));
            assert_eq!(all[..50], one[..], "the 50 best, ties to the lower row");
        }
    }

    #[test]
    fn bytes_round_trip_and_bad_shapes_are_refused() {
        let index = DenseIndex::from_rows(2, &[vec![0.5, -1.25], vec![3.0, 0.0]]).unwrap();
        let bytes = index.to_bytes();
        let back = DenseIndex::from_bytes(2, 2, &bytes).unwrap();
        assert_eq!(back.row(1), Some(&[3.0, 0.0][..]));
        assert!(DenseIndex::from_bytes(2, 3, &bytes).is_err());
        assert!(DenseIndex::from_bytes(2, 2, &bytes[1..]).is_err());
        assert!(DenseIndex::from_bytes(usize::MAX, 2, &bytes).is_err());
        assert!(DenseIndex::from_rows(2, &[vec![1.0]]).is_err());
        assert!(DenseIndex::new(2, vec![f32::NAN, 0.0]).is_err());
        assert!(DenseIndex::new(0, vec![]).is_err());
    }
}
