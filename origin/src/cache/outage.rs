//! Whether Redis is worth asking right now, and when to say so in the log.
//!
//! States:
//! - **Up**: every operation goes to Redis.
//! - **Down**: entered on the first failure or timeout. Operations are skipped (the cache is
//!   bypassed, requests are generated as if nothing was cached) except one probe per
//!   `probe_every`; the first probe that succeeds brings the state back to Up.
//!
//! Only the two transitions are logged, so an outage is one warning and one recovery line
//! (with how long it lasted and how many operations were bypassed), not a line per request.
//! Skipping while down also keeps a dead Redis from adding its timeout to every request.
//! Pure state: the caller passes the clock, tests drive it without sleeping.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Outage {
    probe_every: Duration,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Up,
    Down {
        since: Instant,
        next_probe: Instant,
        bypassed: u64,
    },
}

/// What to do with the operation at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Redis is believed up.
    Go,
    /// Redis is down, but this operation may test whether it is back.
    Probe,
    /// Redis is down: bypass the cache.
    Skip,
}

/// A transition worth one log line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transition {
    WentDown,
    CameBack { down_for: Duration, bypassed: u64 },
}

impl Outage {
    pub fn new(probe_every: Duration) -> Self {
        Outage {
            probe_every,
            state: State::Up,
        }
    }

    pub fn is_down(&self) -> bool {
        matches!(self.state, State::Down { .. })
    }

    pub fn admit(&mut self, now: Instant) -> Admit {
        match &mut self.state {
            State::Up => Admit::Go,
            State::Down {
                next_probe,
                bypassed,
                ..
            } => {
                if now >= *next_probe {
                    *next_probe = now + self.probe_every;
                    Admit::Probe
                } else {
                    *bypassed += 1;
                    Admit::Skip
                }
            }
        }
    }

    pub fn success(&mut self, now: Instant) -> Option<Transition> {
        match self.state {
            State::Up => None,
            State::Down {
                since, bypassed, ..
            } => {
                self.state = State::Up;
                Some(Transition::CameBack {
                    down_for: now.saturating_duration_since(since),
                    bypassed,
                })
            }
        }
    }

    pub fn failure(&mut self, now: Instant) -> Option<Transition> {
        match &mut self.state {
            State::Up => {
                self.state = State::Down {
                    since: now,
                    next_probe: now + self.probe_every,
                    bypassed: 0,
                };
                Some(Transition::WentDown)
            }
            State::Down {
                next_probe,
                bypassed,
                ..
            } => {
                // The failed operation was a probe or was already running when Redis went down.
                *next_probe = (*next_probe).max(now + self.probe_every);
                *bypassed += 1;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_transition_per_outage_and_probes_between() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut o = Outage::new(Duration::from_millis(500));
        assert_eq!(o.admit(t0), Admit::Go);
        assert_eq!(o.success(t0), None);
        assert_eq!(o.failure(ms(1)), Some(Transition::WentDown));
        // Requests in flight when Redis died fail too, silently.
        assert_eq!(o.failure(ms(2)), None);
        assert_eq!(o.admit(ms(10)), Admit::Skip);
        assert_eq!(o.admit(ms(499)), Admit::Skip);
        assert_eq!(o.admit(ms(503)), Admit::Probe);
        // Only one probe per period.
        assert_eq!(o.admit(ms(504)), Admit::Skip);
        assert_eq!(o.failure(ms(550)), None);
        assert_eq!(o.admit(ms(900)), Admit::Skip);
        assert_eq!(o.admit(ms(1051)), Admit::Probe);
        match o.success(ms(1052)) {
            Some(Transition::CameBack { down_for, bypassed }) => {
                assert_eq!(down_for, Duration::from_millis(1051));
                assert_eq!(bypassed, 6);
            }
            other => panic!("{other:?}"),
        }
        assert!(!o.is_down());
        assert_eq!(o.admit(ms(1053)), Admit::Go);
    }
}
