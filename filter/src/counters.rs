//! The filter's counters, and the counts a worker keeps until it adds them to Envoy's.
//!
//! Adding one to an Envoy metric is a host call, paid by the request that counts. A worker
//! instead counts in its own memory and adds what it counted to Envoy's metrics on its tick
//! (every second), so a hit or a miss costs no host call for its counter and Envoy's `/stats`
//! lags behind by at most a tick. Without a tick the glue adds each count at once.

use std::cell::Cell;

/// Each counter the filter keeps; Envoy shows them under its `wasmcustom` namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Chat requests answered from the edge cache (L1 or the origin's cache endpoint).
    Hits,
    /// Chat requests forwarded to the origin for an answer.
    Misses,
    /// Cache lookups that failed (sent or answered badly); the request was forwarded.
    CacheErrors,
    /// Requests refused by a rate limit or the concurrent-streams cap.
    Limited,
    /// Requests refused as invalid (or with an unknown API key).
    Rejected,
}

impl Counter {
    pub const ALL: [Counter; 5] = [
        Counter::Hits,
        Counter::Misses,
        Counter::CacheErrors,
        Counter::Limited,
        Counter::Rejected,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Counter::Hits => "libriassist_edge_cache_hits",
            Counter::Misses => "libriassist_edge_cache_misses",
            Counter::CacheErrors => "libriassist_edge_cache_errors",
            Counter::Limited => "libriassist_edge_rate_limited",
            Counter::Rejected => "libriassist_edge_rejected",
        }
    }

    /// Its place in [`Counter::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// Counts not yet added to Envoy's metrics. Cells, because every request of a worker holds the
/// same counts behind an `Rc`.
#[derive(Debug, Default)]
pub struct Pending([Cell<u64>; Counter::ALL.len()]);

impl Pending {
    pub fn add(&self, counter: Counter) {
        let cell = &self.0[counter.index()];
        cell.set(cell.get().saturating_add(1));
    }

    /// The counts since the last take, leaving none pending; counters at zero are left out.
    pub fn take(&self) -> impl Iterator<Item = (Counter, u64)> + '_ {
        Counter::ALL
            .into_iter()
            .map(|counter| (counter, self.0[counter.index()].take()))
            .filter(|&(_, count)| count > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_take_hands_over_each_count_once() {
        let pending = Pending::default();
        for _ in 0..3 {
            pending.add(Counter::Hits);
        }
        pending.add(Counter::Rejected);
        assert_eq!(
            pending.take().collect::<Vec<_>>(),
            [(Counter::Hits, 3), (Counter::Rejected, 1)]
        );
        assert_eq!(pending.take().count(), 0);
        pending.add(Counter::Hits);
        assert_eq!(pending.take().collect::<Vec<_>>(), [(Counter::Hits, 1)]);
    }

    #[test]
    fn names_are_distinct() {
        let mut names: Vec<_> = Counter::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Counter::ALL.len());
    }
}
