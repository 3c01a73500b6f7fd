//! Backend utilisation, read while a step runs: each simulator's `/sim/stats` (slots busy,
//! requests waiting inside it, generations completed) and each origin's `/api/v1/backends`
//! (what that origin believes is in flight on each backend). Comparing the two shows whether
//! origins that each count only their own requests send a backend more than its slots.

use crate::sim::StatsSnapshot;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One reading of every backend.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub t_s: f64,
    /// Per simulator; `None` when it did not answer (killed, hung listener).
    pub sims: Vec<Option<StatsSnapshot>>,
    /// Per origin, per simulator (same order): the origin's own in-flight count.
    pub origin_in_flight: Vec<Vec<Option<u64>>>,
}

/// A sampler running in the background until [`Sampler::stop`].
pub struct Sampler {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Vec<Sample>>,
}

impl Sampler {
    pub fn spawn(
        sims: Vec<String>,
        origins: Vec<String>,
        every: Duration,
        epoch: Instant,
    ) -> Sampler {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(every.max(Duration::from_millis(200)))
                .build()
                .unwrap_or_default();
            let mut samples = Vec::new();
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = ticker.tick() => samples.push(read(&client, &sims, &origins, epoch).await),
                }
            }
            samples
        });
        Sampler { stop, task }
    }

    pub async fn stop(self) -> Vec<Sample> {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

async fn read(
    client: &reqwest::Client,
    sims: &[String],
    origins: &[String],
    epoch: Instant,
) -> Sample {
    let t_s = epoch.elapsed().as_secs_f64();
    let sim_reads = futures::future::join_all(sims.iter().map(|url| async move {
        client
            .get(format!("{url}/sim/stats"))
            .send()
            .await
            .ok()?
            .json::<StatsSnapshot>()
            .await
            .ok()
    }));
    let origin_reads = futures::future::join_all(origins.iter().map(|url| async move {
        let v: serde_json::Value = match client.get(format!("{url}/api/v1/backends")).send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        sims.iter()
            .map(|sim| in_flight_of(&v, sim))
            .collect::<Vec<_>>()
    }));
    let (sims, origin_in_flight) = futures::join!(sim_reads, origin_reads);
    Sample {
        t_s,
        sims,
        origin_in_flight,
    }
}

/// The `in_flight` an origin reports for the backend at `url`.
fn in_flight_of(backends: &serde_json::Value, url: &str) -> Option<u64> {
    backends["backends"].as_array()?.iter().find(|b| {
        b["url"]
            .as_str()
            .is_some_and(|u| u.trim_end_matches('/') == url.trim_end_matches('/'))
    })?["in_flight"]
        .as_u64()
}

/// What the samples of a window say about the backends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Utilisation {
    /// Mean busy slots over all slots, from the simulators.
    pub slot_utilisation: Option<f64>,
    /// Mean and highest number of requests waiting inside a simulator (beyond its slots).
    pub mean_queued_in_backends: Option<f64>,
    pub max_queued_in_backends: Option<u64>,
    /// Share of samples in which some simulator had a request waiting inside it.
    pub share_of_time_oversubscribed: Option<f64>,
    /// Highest number of requests the origins together believed in flight on one backend
    /// (each origin's own count, summed); above the backend's slots, they oversubscribed it.
    pub max_origin_sum_per_backend: Option<u64>,
    /// Generations the simulators started (took a slot for) during the window, per second.
    /// Started rather than completed: the origin ends a stream as soon as the token budget is
    /// spent, before the done line, and the simulator counts that as cancelled; in a steady
    /// window both rates are the same, and plain balancers are counted the same way.
    pub generations_per_sec: Option<f64>,
}

/// Summarizes the samples taken within `window` (seconds since the epoch).
pub fn utilisation(samples: &[Sample], window: (f64, f64), slots_per_sim: usize) -> Utilisation {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t_s >= window.0 && s.t_s <= window.1)
        .collect();
    if inside.is_empty() {
        return Utilisation::default();
    }
    let mut busy = Vec::new();
    let mut queued_sum = Vec::new();
    let mut max_queued = 0;
    let mut oversubscribed = 0;
    let mut max_origin_sum = 0;
    for s in &inside {
        let live: Vec<&StatsSnapshot> = s.sims.iter().flatten().collect();
        if live.is_empty() {
            continue;
        }
        busy.push(
            live.iter().map(|x| x.in_flight).sum::<u64>() as f64
                / (s.sims.len() * slots_per_sim) as f64,
        );
        let q: u64 = live.iter().map(|x| x.queued).sum();
        queued_sum.push(q as f64);
        max_queued = max_queued.max(live.iter().map(|x| x.queued).max().unwrap_or(0));
        if live.iter().any(|x| x.queued > 0) {
            oversubscribed += 1;
        }
        for backend in 0..s.sims.len() {
            let sum: u64 = s
                .origin_in_flight
                .iter()
                .filter_map(|o| o.get(backend).copied().flatten())
                .sum();
            max_origin_sum = max_origin_sum.max(sum);
        }
    }
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    Utilisation {
        slot_utilisation: mean(&busy),
        mean_queued_in_backends: mean(&queued_sum),
        max_queued_in_backends: (!busy.is_empty()).then_some(max_queued),
        share_of_time_oversubscribed: (!busy.is_empty())
            .then(|| f64::from(oversubscribed) / busy.len() as f64),
        max_origin_sum_per_backend: inside
            .iter()
            .any(|s| !s.origin_in_flight.is_empty())
            .then_some(max_origin_sum),
        generations_per_sec: generations_rate(&inside),
    }
}

/// Generations started between the first and last sample, per second. A simulator that was
/// restarted starts counting from zero again: a drop is read as a restart, not a negative rate.
fn generations_rate(inside: &[&Sample]) -> Option<f64> {
    let (first, last) = (inside.first()?, inside.last()?);
    let span = last.t_s - first.t_s;
    if span <= 0.0 {
        return None;
    }
    let sims = first.sims.len();
    let mut total = 0u64;
    for i in 0..sims {
        let mut previous: Option<u64> = None;
        for s in inside {
            let Some(now) = s
                .sims
                .get(i)
                .copied()
                .flatten()
                .map(|x| x.generations_started)
            else {
                continue;
            };
            if let Some(before) = previous {
                total += if now >= before { now - before } else { now };
            }
            previous = Some(now);
        }
    }
    Some(total as f64 / span)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(in_flight: u64, queued: u64, started: u64) -> Option<StatsSnapshot> {
        Some(StatsSnapshot {
            in_flight,
            queued,
            generations_started: started,
            ..StatsSnapshot::default()
        })
    }

    #[test]
    fn utilisation_reads_busy_slots_inner_queues_and_rates() {
        let samples = vec![
            Sample {
                t_s: 0.5,
                sims: vec![snap(4, 0, 0), snap(0, 0, 0)],
                origin_in_flight: vec![],
            },
            Sample {
                t_s: 1.0,
                sims: vec![snap(4, 0, 10), snap(2, 0, 5)],
                origin_in_flight: vec![vec![Some(3), Some(1)], vec![Some(2), Some(1)]],
            },
            Sample {
                t_s: 2.0,
                sims: vec![snap(4, 2, 14), snap(4, 0, 2)],
                origin_in_flight: vec![vec![Some(4), Some(2)], vec![Some(2), Some(2)]],
            },
        ];
        let u = utilisation(&samples, (1.0, 2.0), 4);
        assert_eq!(u.slot_utilisation, Some((6.0 / 8.0 + 8.0 / 8.0) / 2.0));
        assert_eq!(u.max_queued_in_backends, Some(2));
        assert_eq!(u.share_of_time_oversubscribed, Some(0.5));
        assert_eq!(u.max_origin_sum_per_backend, Some(6));
        // Sim 0: +4; sim 1 was restarted (5 -> 2): +2.
        assert_eq!(u.generations_per_sec, Some(6.0));
        assert_eq!(utilisation(&samples, (5.0, 6.0), 4), Utilisation::default());
    }

    #[test]
    fn origin_in_flight_is_found_by_url() {
        let v = serde_json::json!({"backends": [{"url": "http://127.0.0.1:5/", "in_flight": 3}]});
        assert_eq!(in_flight_of(&v, "http://127.0.0.1:5"), Some(3));
        assert_eq!(in_flight_of(&v, "http://127.0.0.1:6"), None);
    }
}
