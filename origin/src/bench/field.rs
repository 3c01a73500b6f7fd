//! The field's timings and how `--time-scale` shrinks them.
//!
//! A run at scale 0.1 is the field played ten times faster: simulated service times, think
//! times, the origins' timeouts and health intervals, Envoy's health checks and the chaos
//! periods all shrink together, so queues build the same way. What does not shrink is the
//! real work per request (parsing, proxying, Redis, embeddings, CPU): it weighs ten times more
//! against the simulated time. Reports therefore give run seconds, and field equivalents only
//! for quantities dominated by the simulated time (waits for a generation, throughput).

use std::time::Duration;

/// Multiplier applied to field durations; validated to be in (0, 10].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale(f64);

impl Scale {
    /// # Errors
    /// A factor outside (0, 10] or not finite.
    pub fn new(factor: f64) -> Result<Scale, String> {
        if factor.is_finite() && factor > 0.0 && factor <= 10.0 {
            Ok(Scale(factor))
        } else {
            Err(format!("time scale must be in (0, 10], got {factor}"))
        }
    }

    pub fn factor(self) -> f64 {
        self.0
    }

    /// A field duration in run time.
    pub fn of(self, field: Duration) -> Duration {
        Duration::from_secs_f64(field.as_secs_f64() * self.0)
    }

    /// Field milliseconds in run milliseconds, at least `floor` so a scaled timeout never
    /// becomes zero (which the origin would refuse) or a busy loop.
    pub fn ms(self, field_ms: u64, floor: u64) -> u64 {
        ((field_ms as f64 * self.0).round() as u64).max(floor)
    }

    /// A rate per run minute as a rate per field minute.
    pub fn to_field_rate(self, per_run_minute: f64) -> f64 {
        per_run_minute * self.0
    }
}

/// How each simulator is started so that one answer takes the field's service time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimTiming {
    pub ttft_ms: u64,
    pub tokens_per_sec: f64,
    pub answer_tokens: u32,
}

impl SimTiming {
    /// The simulator sends token `i` at `ttft + i / rate` and its done line at
    /// `ttft + n / rate`, so `n` tokens take `service` when `rate = n / (service - ttft)`.
    pub fn calibrated(
        service_ms: u64,
        ttft_ms: u64,
        answer_tokens: u32,
        scale: Scale,
    ) -> SimTiming {
        let streaming_secs = service_ms.saturating_sub(ttft_ms).max(1) as f64 / 1000.0;
        SimTiming {
            ttft_ms: scale.ms(ttft_ms, 1),
            tokens_per_sec: f64::from(answer_tokens) / streaming_secs / scale.factor(),
            answer_tokens,
        }
    }

    /// Run seconds one generation holds a slot.
    pub fn service_secs(&self) -> f64 {
        self.ttft_ms as f64 / 1000.0 + f64::from(self.answer_tokens) / self.tokens_per_sec
    }
}

/// The most answers the backends can generate: every slot busy all the time, one answer per
/// service time. No balancer can beat it; misses beyond it can only queue.
pub fn miss_capacity_per_sec(total_slots: usize, service_secs: f64) -> f64 {
    if service_secs <= 0.0 {
        return 0.0;
    }
    total_slots as f64 / service_secs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_gives_the_field_service_time() {
        let t = SimTiming::calibrated(5_000, 200, 200, Scale(1.0));
        assert!((t.service_secs() - 5.0).abs() < 1e-9, "{t:?}");
        let fast = SimTiming::calibrated(5_000, 200, 200, Scale(0.1));
        assert!((fast.service_secs() - 0.5).abs() < 1e-9, "{fast:?}");
        assert_eq!(fast.ttft_ms, 20);
    }

    #[test]
    fn capacity_of_three_ollama_with_four_slots() {
        let per_sec = miss_capacity_per_sec(12, 5.0);
        assert!((per_sec * 60.0 - 144.0).abs() < 1e-9);
        assert_eq!(miss_capacity_per_sec(12, 0.0), 0.0);
    }

    #[test]
    fn scale_round_trips_and_floors() {
        let s = Scale(0.1);
        assert_eq!(s.of(Duration::from_secs(20)), Duration::from_secs(2));
        assert_eq!(s.ms(5, 1), 1);
        assert!((s.to_field_rate(1440.0) - 144.0).abs() < 1e-9);
        assert!(
            Scale::new(0.0).is_err() && Scale::new(f64::NAN).is_err() && Scale::new(11.0).is_err()
        );
    }
}
