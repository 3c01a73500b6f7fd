//! A circuit breaker per backend, fed by real requests and by active health checks.
//!
//! States:
//! - **Closed**: the backend takes its full capacity. Consecutive request failures are counted;
//!   at the threshold — or at once for a failed health check — the circuit opens.
//! - **Open**: the backend takes nothing until its back-off has elapsed. The next health check
//!   after that is the probe: success half-opens the circuit, failure doubles the back-off (up to
//!   a ceiling).
//! - **HalfOpen**: re-admission is gradual: the backend may hold one request at a time, then one
//!   more per success, until it has succeeded `capacity` times and closes. Any failure re-opens
//!   it with a doubled back-off.
//!
//! Time is passed in, never read, so the machine is tested without sleeping.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed { failures: u32 },
    Open { until: Instant, backoff: Duration },
    HalfOpen { successes: u32, backoff: Duration },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub threshold: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

#[derive(Debug, Clone)]
pub struct Breaker {
    state: State,
    settings: Settings,
}

impl Breaker {
    pub fn new(settings: Settings) -> Self {
        Breaker {
            state: State::Closed { failures: 0 },
            settings,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// How many requests the backend may hold now, out of `capacity`.
    pub fn allowed(&self, capacity: usize) -> usize {
        match self.state {
            State::Closed { .. } => capacity,
            State::Open { .. } => 0,
            State::HalfOpen { successes, .. } => capacity.min(successes as usize + 1),
        }
    }

    pub fn on_success(&mut self, capacity: usize) {
        self.state = match self.state {
            State::HalfOpen { successes, backoff } => {
                let successes = successes + 1;
                if successes as usize >= capacity {
                    State::Closed { failures: 0 }
                } else {
                    State::HalfOpen { successes, backoff }
                }
            }
            State::Closed { .. } => State::Closed { failures: 0 },
            open @ State::Open { .. } => open,
        };
    }

    /// A request failed because of the backend. `eject_now` skips the threshold: used when
    /// the failure says the server is gone (connection refused), not merely slow once.
    pub fn on_failure(&mut self, now: Instant, eject_now: bool) {
        self.state = match self.state {
            State::Closed { failures } => {
                let failures = failures + 1;
                if eject_now || failures >= self.settings.threshold {
                    self.open(now, self.settings.base_backoff)
                } else {
                    State::Closed { failures }
                }
            }
            State::HalfOpen { backoff, .. } => self.open(now, self.double(backoff)),
            open @ State::Open { .. } => open,
        };
    }

    /// Result of an active health check.
    pub fn on_check(&mut self, now: Instant, healthy: bool) {
        self.state = match (self.state, healthy) {
            (State::Open { until, backoff }, true) if now >= until => State::HalfOpen {
                successes: 0,
                backoff,
            },
            (State::Open { until, backoff }, false) if now >= until => {
                self.open(now, self.double(backoff))
            }
            (open @ State::Open { .. }, _) => open,
            (State::Closed { .. }, false) => self.open(now, self.settings.base_backoff),
            (State::HalfOpen { backoff, .. }, false) => self.open(now, self.double(backoff)),
            (state, true) => state,
        };
    }

    fn open(&self, now: Instant, backoff: Duration) -> State {
        State::Open {
            until: now + backoff,
            backoff,
        }
    }

    fn double(&self, backoff: Duration) -> Duration {
        (backoff * 2).min(self.settings.max_backoff)
    }

    pub fn name(&self) -> &'static str {
        match self.state {
            State::Closed { .. } => "closed",
            State::Open { .. } => "open",
            State::HalfOpen { .. } => "half_open",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Settings = Settings {
        threshold: 3,
        base_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(4),
    };

    #[test]
    fn opens_at_threshold_and_resets_on_success() {
        let now = Instant::now();
        let mut b = Breaker::new(S);
        b.on_failure(now, false);
        b.on_failure(now, false);
        b.on_success(4);
        b.on_failure(now, false);
        b.on_failure(now, false);
        assert_eq!(b.allowed(4), 4);
        b.on_failure(now, false);
        assert_eq!(b.allowed(4), 0);
    }

    #[test]
    fn probe_only_after_backoff_then_gradual_readmission() {
        let t0 = Instant::now();
        let mut b = Breaker::new(S);
        b.on_failure(t0, true);
        b.on_check(t0 + Duration::from_millis(500), true);
        assert_eq!(b.allowed(3), 0, "still within back-off");
        b.on_check(t0 + Duration::from_secs(1), true);
        assert_eq!(b.allowed(3), 1);
        b.on_success(3);
        assert_eq!(b.allowed(3), 2);
        b.on_success(3);
        assert_eq!(b.allowed(3), 3);
        b.on_success(3);
        assert_eq!(b.state(), State::Closed { failures: 0 });
    }

    #[test]
    fn backoff_doubles_up_to_the_ceiling() {
        let t0 = Instant::now();
        let mut b = Breaker::new(S);
        b.on_check(t0, false);
        let mut t = t0;
        for expected in [2, 4, 4] {
            let State::Open { until, .. } = b.state() else {
                panic!("open expected")
            };
            t = until;
            b.on_check(t, false);
            let State::Open { backoff, .. } = b.state() else {
                panic!("open expected")
            };
            assert_eq!(backoff, Duration::from_secs(expected));
        }
        let State::Open { until, .. } = b.state() else {
            panic!("open expected")
        };
        b.on_check(until, true);
        b.on_failure(until, false);
        assert!(
            matches!(b.state(), State::Open { backoff, .. } if backoff == Duration::from_secs(4))
        );
        let _ = t;
    }
}
