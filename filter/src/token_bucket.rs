//! The token bucket: a pure function of the stored state, the limit and the time.
//!
//! A bucket holds up to `burst` tokens and refills at `per_second`; a request takes one.
//! State is 16 bytes so it fits a shared-data value that every Envoy worker reads and
//! compare-and-swaps (see `ratelimit.rs`). No clock is read here: `now_ns` comes in, so the
//! tests control time and a wall clock stepping backwards only means no refill.

/// Rate and burst of one route class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub per_second: f64,
    pub burst: u32,
}

/// Stored bucket state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub tokens: f64,
    pub updated_ns: u64,
}

/// What the caller tells the client, in the units of the RateLimit headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub allowed: bool,
    /// `RateLimit-Limit`: the burst.
    pub limit: u32,
    /// `RateLimit-Remaining`: whole tokens left after this request.
    pub remaining: u32,
    /// `RateLimit-Reset`: seconds until the bucket is full again.
    pub reset_seconds: u64,
    /// `Retry-After` when refused: seconds until one token is back (at least 1).
    pub retry_after_seconds: u64,
}

const NANOS: f64 = 1e9;

/// Refills the bucket up to `now_ns` and tries to take one token.
/// A missing state is a full bucket: a new client starts with its burst.
pub fn take(state: Option<Bucket>, limit: Limit, now_ns: u64) -> (Bucket, Outcome) {
    let (bucket, outcome, _) = take_up_to(state, limit, now_ns, 1);
    (bucket, outcome)
}

/// Like [`take`], but takes up to `want` whole tokens at once when the bucket holds them (at
/// least one, or none when refused). Returns how many were taken; the outcome describes the
/// request that asked, as if the other tokens were already spent.
pub fn take_up_to(
    state: Option<Bucket>,
    limit: Limit,
    now_ns: u64,
    want: u32,
) -> (Bucket, Outcome, u32) {
    let burst = f64::from(limit.burst.max(1));
    let rate = if limit.per_second.is_finite() && limit.per_second > 0.0 {
        limit.per_second
    } else {
        1.0
    };
    let mut bucket = state.unwrap_or(Bucket {
        tokens: burst,
        updated_ns: now_ns,
    });
    if !bucket.tokens.is_finite() {
        bucket.tokens = burst;
    }
    let elapsed = now_ns.saturating_sub(bucket.updated_ns) as f64 / NANOS;
    let tokens = (bucket.tokens + elapsed * rate).clamp(0.0, burst);
    let allowed = tokens >= 1.0;
    let granted = if allowed {
        // `tokens` is at most `burst`, a u32, so the floor fits.
        (tokens.floor() as u32).clamp(1, want.max(1))
    } else {
        0
    };
    let left = tokens - f64::from(granted);
    let seconds = |missing: f64| (missing / rate).max(0.0).ceil().min(u64::MAX as f64) as u64;
    let outcome = Outcome {
        allowed,
        limit: limit.burst,
        remaining: left.floor() as u32,
        reset_seconds: seconds(burst - left),
        retry_after_seconds: if allowed {
            0
        } else {
            seconds(1.0 - left).max(1)
        },
    };
    (
        Bucket {
            tokens: left,
            updated_ns: now_ns.max(bucket.updated_ns),
        },
        outcome,
        granted,
    )
}

impl Bucket {
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.tokens.to_le_bytes());
        out[8..].copy_from_slice(&self.updated_ns.to_le_bytes());
        out
    }

    /// `None` for anything that is not a 16-byte state: the caller starts a fresh bucket.
    pub fn decode(bytes: &[u8]) -> Option<Bucket> {
        let tokens: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
        let updated: [u8; 8] = bytes.get(8..16)?.try_into().ok()?;
        (bytes.len() == 16).then(|| Bucket {
            tokens: f64::from_le_bytes(tokens),
            updated_ns: u64::from_le_bytes(updated),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn burst_then_refill() {
        let limit = Limit {
            per_second: 2.0,
            burst: 3,
        };
        let mut state = None;
        for expected_remaining in [2, 1, 0] {
            let (b, o) = take(state, limit, 10 * S);
            assert!(o.allowed);
            assert_eq!(o.remaining, expected_remaining);
            state = Some(b);
        }
        let (b, o) = take(state, limit, 10 * S);
        assert!(!o.allowed);
        assert_eq!(o.retry_after_seconds, 1);
        assert_eq!(o.reset_seconds, 2);
        // Half a second later one token is back at 2 per second.
        let (_, o) = take(Some(b), limit, 10 * S + S / 2);
        assert!(o.allowed);
        assert_eq!(o.remaining, 0);
    }

    #[test]
    fn slow_rates_round_retry_up() {
        let limit = Limit {
            per_second: 0.1,
            burst: 1,
        };
        let (b, o) = take(None, limit, S);
        assert!(o.allowed);
        let (_, o) = take(Some(b), limit, 2 * S);
        assert!(!o.allowed);
        assert_eq!(o.retry_after_seconds, 9);
    }

    #[test]
    fn clock_going_back_does_not_refill_or_panic() {
        let limit = Limit {
            per_second: 1.0,
            burst: 1,
        };
        let (b, _) = take(None, limit, 100 * S);
        let (b2, o) = take(Some(b), limit, 5 * S);
        assert!(!o.allowed);
        assert_eq!(b2.updated_ns, 100 * S);
    }

    #[test]
    fn several_tokens_at_once() {
        let limit = Limit {
            per_second: 1.0,
            burst: 10,
        };
        let (b, o, n) = take_up_to(None, limit, S, 4);
        assert!(o.allowed);
        assert_eq!((n, o.remaining), (4, 6));
        let (b, _, n) = take_up_to(Some(b), limit, S, 100);
        assert_eq!(n, 6);
        let (_, o, n) = take_up_to(Some(b), limit, S, 4);
        assert!(!o.allowed);
        assert_eq!(n, 0);
        let (_, o, n) = take_up_to(None, limit, S, 0);
        assert!(o.allowed);
        assert_eq!(n, 1);
    }

    #[test]
    fn encoding_round_trips_and_rejects_other_lengths() {
        let b = Bucket {
            tokens: 2.5,
            updated_ns: 42,
        };
        assert_eq!(Bucket::decode(&b.encode()), Some(b));
        assert_eq!(Bucket::decode(&[0; 15]), None);
        assert_eq!(Bucket::decode(&[0; 17]), None);
    }

    proptest! {
        #[test]
        fn never_more_than_burst_plus_refill(
            rate in 0.01f64..1000.0,
            burst in 1u32..1000,
            steps in proptest::collection::vec(0u64..5 * S, 1..200),
            garbage in proptest::collection::vec(any::<u8>(), 16),
        ) {
            let limit = Limit { per_second: rate, burst };
            let mut state = Bucket::decode(&garbage);
            let (mut now, mut allowed) = (S, 0u64);
            let start = now;
            for step in steps {
                now += step;
                let (b, o) = take(state, limit, now);
                prop_assert!(b.tokens >= 0.0 && b.tokens <= f64::from(burst));
                prop_assert!(o.allowed || o.retry_after_seconds >= 1);
                allowed += u64::from(o.allowed);
                state = Some(b);
            }
            let bound = f64::from(burst) * 2.0 + rate * (now - start) as f64 / 1e9 + 1.0;
            prop_assert!((allowed as f64) <= bound);
        }
    }
}
