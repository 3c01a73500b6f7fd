//! Percentiles and summaries of latency samples.
//!
//! Percentiles use the nearest-rank definition (the smallest sample with at least p% of the
//! samples at or below it): every reported value is a latency that really happened, and p99 of
//! fewer than 100 samples is honestly the maximum rather than an interpolation.

use serde::{Deserialize, Serialize};

/// The nearest-rank percentile `p` (0 to 100) of samples sorted ascending; `None` without
/// samples. `p` outside 0..=100 is clamped.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let p = if p.is_nan() {
        100.0
    } else {
        p.clamp(0.0, 100.0)
    };
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Count, mean and tail of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: usize,
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl Summary {
    /// Summarizes samples in any order; NaN samples are ignored.
    pub fn of(samples: impl IntoIterator<Item = f64>) -> Summary {
        let mut sorted: Vec<f64> = samples.into_iter().filter(|v| !v.is_nan()).collect();
        sorted.sort_by(f64::total_cmp);
        let count = sorted.len();
        let mean = (count > 0).then(|| sorted.iter().sum::<f64>() / count as f64);
        Summary {
            count,
            mean,
            p50: percentile(&sorted, 50.0),
            p95: percentile(&sorted, 95.0),
            p99: percentile(&sorted, 99.0),
            max: sorted.last().copied(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_on_one_to_a_hundred() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 95.0), Some(95.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
    }

    #[test]
    fn small_sets_report_real_samples() {
        let v = [10.0, 20.0, 30.0];
        assert_eq!(percentile(&v, 50.0), Some(20.0));
        assert_eq!(
            percentile(&v, 99.0),
            Some(30.0),
            "p99 of 3 samples is the maximum"
        );
        assert_eq!(percentile(&[7.0], 1.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&v, 250.0), Some(30.0));
        assert_eq!(percentile(&v, -3.0), Some(10.0));
    }

    #[test]
    fn summary_sorts_and_ignores_nan() {
        let s = Summary::of([3.0, f64::NAN, 1.0, 2.0, 4.0]);
        assert_eq!(s.count, 4);
        assert_eq!(s.mean, Some(2.5));
        assert_eq!((s.p50, s.max), (Some(2.0), Some(4.0)));
        assert_eq!(Summary::of([]), Summary::default());
    }
}
