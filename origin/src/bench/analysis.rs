//! From the requests of one step to the numbers the report gives: throughput in the window,
//! latencies of what started in it, outcomes and errors by kind, hits per cache layer, the
//! backends' utilisation and the achieved miss throughput against the capacity limit.
//!
//! Windows: a request counts for throughput when it finished inside the measured window, and
//! for latencies when it started inside it (so the ramp's cold caches and the drain's tail
//! do not count). Outcomes and errors count every request of the step, ramp and drain
//! included: nothing a run started can drop out of the accounting.

use super::client::Outcome;
use super::field::Scale;
use super::mix::Kind;
use super::sampler::{utilisation, Sample, Utilisation};
use super::stats::Summary;
use super::users::{Recorded, StepRun};
use libriassist_protocol::CacheLayer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Latencies of one group of answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub count: usize,
    /// Milliseconds to the first token.
    pub ttft: Summary,
    /// Milliseconds to the end of the answer.
    pub full: Summary,
}

impl Latency {
    fn of<'a>(records: impl Iterator<Item = &'a Recorded>) -> Latency {
        let answered: Vec<&Recorded> = records
            .filter(|r| r.exchange.outcome == Outcome::Answered)
            .collect();
        Latency {
            count: answered.len(),
            ttft: Summary::of(answered.iter().filter_map(|r| r.exchange.first_token_ms)),
            full: Summary::of(answered.iter().map(|r| r.exchange.total_ms)),
        }
    }
}

/// Every request of the step by how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcomes {
    pub started: usize,
    pub answered: usize,
    /// Ended without showing a token.
    pub lost: usize,
    /// Ended with an error or a cut after tokens were shown.
    pub interrupted: usize,
    /// Started but never returned (a user task died); must be zero.
    pub unaccounted: usize,
}

/// The numbers of one step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    pub system: String,
    pub users: usize,
    /// Run seconds of the measured window.
    pub window_s: f64,
    pub outcomes: Outcomes,
    /// Errors of the whole step by kind (`http_503:overloaded`, `event:backend_failed`, ...).
    pub errors: BTreeMap<String, usize>,
    /// Lost because no first token came in time: the customer's patience ran out, or the
    /// origin's admission queue timed out (503 overloaded).
    pub queue_timeouts: usize,
    /// Answers finished in the window, per run minute and per field minute.
    pub answers_per_min: f64,
    pub answers_per_min_field: f64,
    /// Generated answers (cache misses) finished in the window, as the customers saw them.
    pub misses_per_min: f64,
    pub misses_per_min_field: f64,
    /// Generations the simulators completed in the window, per second (run time).
    pub backend_generations_per_sec: Option<f64>,
    /// `backend_generations_per_sec` over the capacity limit.
    pub limit_ratio: Option<f64>,
    /// Answers that started in the window.
    pub all: Latency,
    pub misses: Latency,
    /// First token to last of generated answers, ms: the backends' own service time as the
    /// customers saw it. Longer than the calibration means the machine, not the queue, slowed
    /// the run.
    pub generation: Summary,
    /// Answered from a cache without a generation (edge, exact, semantic).
    pub cached: Latency,
    pub by_layer: BTreeMap<String, Latency>,
    pub by_kind: BTreeMap<String, KindStats>,
    pub utilisation: Utilisation,
}

/// How the questions of one kind were answered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KindStats {
    pub asked: usize,
    /// Answered by each layer.
    pub layers: BTreeMap<String, usize>,
}

/// The layer an answer came from; plain balancers know no cache, so theirs are all misses.
pub fn layer_of(r: &Recorded) -> CacheLayer {
    r.exchange.layer.unwrap_or(CacheLayer::Miss)
}

fn is_cached(layer: CacheLayer) -> bool {
    matches!(
        layer,
        CacheLayer::Edge | CacheLayer::Exact | CacheLayer::Semantic
    )
}

/// Whether an error kind means "no first token in time".
pub fn is_queue_timeout(error: &str) -> bool {
    matches!(
        error,
        "first_token_deadline" | "http_503:overloaded" | "event:overloaded"
    )
}

/// Totals over requests, whatever their window.
pub fn outcomes(records: &[Recorded], started: usize) -> (Outcomes, BTreeMap<String, usize>) {
    let mut o = Outcomes {
        started,
        ..Outcomes::default()
    };
    let mut errors = BTreeMap::new();
    for r in records {
        match r.exchange.outcome {
            Outcome::Answered => o.answered += 1,
            Outcome::Lost => o.lost += 1,
            Outcome::Interrupted => o.interrupted += 1,
        }
        if let Some(e) = &r.exchange.error {
            *errors.entry(e.clone()).or_insert(0) += 1;
        }
    }
    o.unaccounted = started.saturating_sub(records.len());
    (o, errors)
}

/// Analyses one step.
pub fn analyse(
    system: &str,
    users: usize,
    run: &StepRun,
    samples: &[Sample],
    scale: Scale,
    capacity_per_sec: f64,
    slots_per_sim: usize,
) -> StepReport {
    let (w0, w1) = run.window;
    let window_s = (w1 - w0).max(f64::EPSILON);
    let (outcomes, errors) = outcomes(&run.records, run.started);
    let queue_timeouts = errors
        .iter()
        .filter(|(k, _)| is_queue_timeout(k))
        .map(|(_, v)| v)
        .sum();
    let finished_in: Vec<&Recorded> = run
        .records
        .iter()
        .filter(|r| {
            r.exchange.outcome == Outcome::Answered
                && r.exchange.finished_s >= w0
                && r.exchange.finished_s < w1
        })
        .collect();
    let per_min = |n: usize| n as f64 / window_s * 60.0;
    let answers_per_min = per_min(finished_in.len());
    let misses_per_min = per_min(
        finished_in
            .iter()
            .filter(|r| layer_of(r) == CacheLayer::Miss)
            .count(),
    );
    let started_in: Vec<&Recorded> = run
        .records
        .iter()
        .filter(|r| r.exchange.started_s >= w0 && r.exchange.started_s < w1)
        .collect();
    let mut by_layer: BTreeMap<String, Latency> = BTreeMap::new();
    for layer in [
        CacheLayer::Miss,
        CacheLayer::Edge,
        CacheLayer::Exact,
        CacheLayer::Semantic,
        CacheLayer::Coalesced,
    ] {
        let l = Latency::of(started_in.iter().copied().filter(|r| layer_of(r) == layer));
        if l.count > 0 {
            by_layer.insert(layer.as_str().to_owned(), l);
        }
    }
    let mut by_kind: BTreeMap<String, KindStats> = BTreeMap::new();
    for r in &started_in {
        let name = match r.kind {
            Kind::Popular => "popular",
            Kind::Paraphrase => "paraphrase",
            Kind::Tail => "tail",
        };
        let k = by_kind.entry(name.to_owned()).or_default();
        k.asked += 1;
        let answered_by = match r.exchange.outcome {
            Outcome::Answered => layer_of(r).as_str(),
            Outcome::Lost => "lost",
            Outcome::Interrupted => "interrupted",
        };
        *k.layers.entry(answered_by.to_owned()).or_insert(0) += 1;
    }
    let utilisation = utilisation(samples, run.window, slots_per_sim);
    let backend_generations_per_sec = utilisation.generations_per_sec;
    StepReport {
        system: system.to_owned(),
        users,
        window_s,
        outcomes,
        errors,
        queue_timeouts,
        answers_per_min,
        answers_per_min_field: scale.to_field_rate(answers_per_min),
        misses_per_min,
        misses_per_min_field: scale.to_field_rate(misses_per_min),
        backend_generations_per_sec,
        limit_ratio: backend_generations_per_sec
            .filter(|_| capacity_per_sec > 0.0)
            .map(|g| g / capacity_per_sec),
        all: Latency::of(started_in.iter().copied()),
        misses: Latency::of(
            started_in
                .iter()
                .copied()
                .filter(|r| layer_of(r) == CacheLayer::Miss),
        ),
        generation: Summary::of(
            started_in
                .iter()
                .filter(|r| {
                    r.exchange.outcome == Outcome::Answered && layer_of(r) == CacheLayer::Miss
                })
                .filter_map(|r| r.exchange.first_token_ms.map(|t| r.exchange.total_ms - t)),
        ),
        cached: Latency::of(
            started_in
                .iter()
                .copied()
                .filter(|r| is_cached(layer_of(r))),
        ),
        by_layer,
        by_kind,
        utilisation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::client::Exchange;

    fn rec(
        started_s: f64,
        finished_s: f64,
        outcome: Outcome,
        layer: Option<CacheLayer>,
        error: Option<&str>,
    ) -> Recorded {
        Recorded {
            user: 0,
            kind: Kind::Popular,
            exchange: Exchange {
                started_s,
                finished_s,
                first_token_ms: (outcome != Outcome::Lost)
                    .then_some((finished_s - started_s) * 100.0),
                total_ms: (finished_s - started_s) * 1000.0,
                outcome,
                layer,
                error: error.map(str::to_owned),
                tokens: 3,
            },
        }
    }

    #[test]
    fn windows_throughput_latency_and_accounting() {
        let records = vec![
            rec(0.5, 1.5, Outcome::Answered, Some(CacheLayer::Miss), None), // finished in, started before
            rec(2.0, 3.0, Outcome::Answered, Some(CacheLayer::Exact), None),
            rec(3.0, 4.0, Outcome::Answered, Some(CacheLayer::Miss), None),
            rec(5.0, 6.0, Outcome::Lost, None, Some("http_503:overloaded")),
            rec(
                6.0,
                9.0,
                Outcome::Interrupted,
                Some(CacheLayer::Miss),
                Some("event:backend_failed"),
            ),
            rec(10.5, 12.0, Outcome::Answered, Some(CacheLayer::Miss), None), // after the window
        ];
        let run = StepRun {
            window: (1.0, 10.0),
            records,
            started: 7,
        };
        let r = analyse(
            "LibriAssist",
            5,
            &run,
            &[],
            Scale::new(0.5).unwrap(),
            2.0,
            4,
        );
        assert_eq!(
            r.outcomes,
            Outcomes {
                started: 7,
                answered: 4,
                lost: 1,
                interrupted: 1,
                unaccounted: 1
            }
        );
        assert_eq!(r.queue_timeouts, 1);
        assert_eq!(r.errors["event:backend_failed"], 1);
        // Three answers finished in 9 s: 20 per minute, 10 per field minute at scale 0.5.
        assert!((r.answers_per_min - 20.0).abs() < 1e-9);
        assert!((r.answers_per_min_field - 10.0).abs() < 1e-9);
        assert!((r.misses_per_min - 40.0 / 3.0).abs() < 1e-9);
        assert_eq!(r.all.count, 2, "answers that started in the window");
        assert_eq!((r.misses.count, r.cached.count), (1, 1));
        assert_eq!(r.by_kind["popular"].asked, 4);
        assert_eq!(r.by_kind["popular"].layers["lost"], 1);
        assert_eq!(r.limit_ratio, None, "no backend samples, no ratio");
    }

    #[test]
    fn plain_balancer_answers_are_misses() {
        let r = rec(0.0, 1.0, Outcome::Answered, None, None);
        assert_eq!(layer_of(&r), CacheLayer::Miss);
        assert!(is_queue_timeout("first_token_deadline") && !is_queue_timeout("connect"));
    }
}
