//! Least-loaded selection: the backend with the lowest in-flight/allowed ratio; among equals,
//! the one picked longest ago, so equal backends share the load evenly instead of the first
//! one in the list taking every tie.

/// What selection needs to know about one backend at this instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub index: usize,
    pub in_flight: usize,
    /// Requests it may hold now (capacity, reduced while its circuit is half-open).
    pub allowed: usize,
    /// Sequence number of its last pick (0 = never).
    pub last_pick: u64,
}

/// The best candidate that has a free slot, or `None` when all are full.
pub fn least_loaded(candidates: impl IntoIterator<Item = Candidate>) -> Option<usize> {
    candidates
        .into_iter()
        .filter(|c| c.in_flight < c.allowed)
        .min_by(|a, b| {
            // a.in_flight / a.allowed < b.in_flight / b.allowed, without floating point.
            let load_a = a.in_flight as u128 * b.allowed as u128;
            let load_b = b.in_flight as u128 * a.allowed as u128;
            load_a.cmp(&load_b).then(a.last_pick.cmp(&b.last_pick))
        })
        .map(|c| c.index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(index: usize, in_flight: usize, allowed: usize, last_pick: u64) -> Candidate {
        Candidate {
            index,
            in_flight,
            allowed,
            last_pick,
        }
    }

    #[test]
    fn lowest_ratio_wins() {
        assert_eq!(
            least_loaded([c(0, 2, 4, 0), c(1, 1, 4, 9), c(2, 1, 1, 0)]),
            Some(1)
        );
        assert_eq!(least_loaded([c(0, 3, 8, 0), c(1, 1, 2, 0)]), Some(0));
    }

    #[test]
    fn ties_go_to_the_least_recently_picked() {
        assert_eq!(
            least_loaded([c(0, 1, 4, 7), c(1, 1, 4, 3), c(2, 1, 4, 5)]),
            Some(1)
        );
    }

    #[test]
    fn full_or_closed_backends_are_skipped() {
        assert_eq!(least_loaded([c(0, 4, 4, 0), c(1, 0, 0, 0)]), None);
        assert_eq!(least_loaded([]), None);
    }

    #[test]
    fn spreads_evenly_under_repeated_picks() {
        let mut members = [c(0, 0, 2, 0), c(1, 0, 2, 0), c(2, 0, 2, 0)];
        for seq in 1..=6 {
            let i = least_loaded(members).unwrap();
            members[i].in_flight += 1;
            members[i].last_pick = seq;
        }
        assert!(members.iter().all(|m| m.in_flight == 2));
    }
}
