//! Exact counters behind `GET /sim/stats`. Tests compare them with what the origin claims
//! (how requests spread over backends, how many generations coalescing really saved), so every
//! event is counted once, at the point where it becomes true, and never estimated.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters, shared by the handlers and the slot pool.
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) requests: AtomicU64,
    pub(crate) generations_started: AtomicU64,
    pub(crate) generations_completed: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    pub(crate) queued: AtomicU64,
    pub(crate) max_in_flight_seen: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) dropped: AtomicU64,
}

/// One reading of the counters, as `GET /sim/stats` returns it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// POST /api/chat and /api/generate requests received, whatever became of them.
    pub requests: u64,
    /// Generations that took a slot (hung ones included).
    pub generations_started: u64,
    /// Generations that sent their done line (or their whole non-streamed answer).
    pub generations_completed: u64,
    /// Slots taken right now.
    pub in_flight: u64,
    /// Requests waiting for a slot right now.
    pub queued: u64,
    /// Highest `in_flight` since start or the last reset.
    pub max_in_flight_seen: u64,
    /// Requests refused with 503 because the queue was full.
    pub rejected: u64,
    /// Requests answered 500 by fault injection (--fail-rate).
    pub failed: u64,
    /// Generations given up because the client went away.
    pub cancelled: u64,
    /// Generations cut by --drop-after.
    pub dropped: u64,
}

impl Stats {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            requests: get(&self.requests),
            generations_started: get(&self.generations_started),
            generations_completed: get(&self.generations_completed),
            in_flight: get(&self.in_flight),
            queued: get(&self.queued),
            max_in_flight_seen: get(&self.max_in_flight_seen),
            rejected: get(&self.rejected),
            failed: get(&self.failed),
            cancelled: get(&self.cancelled),
            dropped: get(&self.dropped),
        }
    }

    /// Zeroes the event counters between test phases. `in_flight` and `queued` describe the
    /// present, so they stay, and the maximum restarts from what is running now.
    pub fn reset(&self) {
        for counter in [
            &self.requests,
            &self.generations_started,
            &self.generations_completed,
            &self.rejected,
            &self.failed,
            &self.cancelled,
            &self.dropped,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        self.max_in_flight_seen
            .store(self.in_flight.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_keeps_gauges_and_restarts_the_maximum() {
        let stats = Stats::default();
        Stats::bump(&stats.requests);
        Stats::bump(&stats.generations_started);
        stats.in_flight.store(2, Ordering::Relaxed);
        stats.queued.store(1, Ordering::Relaxed);
        stats.max_in_flight_seen.store(5, Ordering::Relaxed);
        stats.reset();
        let s = stats.snapshot();
        assert_eq!(s.requests, 0);
        assert_eq!(s.generations_started, 0);
        assert_eq!((s.in_flight, s.queued, s.max_in_flight_seen), (2, 1, 2));
    }

    #[test]
    fn snapshot_serializes_every_documented_field() {
        let json = serde_json::to_value(StatsSnapshot::default()).unwrap_or_default();
        for field in [
            "requests",
            "generations_started",
            "generations_completed",
            "in_flight",
            "queued",
            "max_in_flight_seen",
            "rejected",
        ] {
            assert_eq!(json[field], 0, "{field}");
        }
    }
}
