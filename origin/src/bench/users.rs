//! Closed-loop simulated customers: each asks a question, reads the answer, thinks, and asks
//! again, so the load a stack receives depends on how fast it answers, as with real customers
//! (an open-loop generator would keep sending into a saturated stack and measure only its own
//! queue).
//!
//! Why not a load-testing library: goose 0.18.1 builds with our reqwest 0.12 and tokio and does
//! run closed-loop users with think time, but it times a request until its response headers
//! (`set_response_time` right after `client.execute`), which for a streamed answer is neither
//! the customer's wait (first token) nor the answer (end of stream); its users are stopped at
//! the end of a run between or inside transactions, so an answer in flight cannot be accounted
//! for; and it installs a process-wide Ctrl-C handler and its own logger. With the SSE
//! measurement, the cache layer of each answer and the chaos timeline custom anyway, what goose
//! would add is the loop below. oha and wrk are open-loop and do not read SSE. So this module
//! is that loop, and [`super::client`] is the measurement.
//!
//! Every loop is bounded: users stop asking at the end of the window, and each request is
//! bounded by the customer's patience, so a run always ends and every request it started is
//! returned with its outcome.

use super::client::{ask, customer_ip, Exchange, Patience, Target};
use super::mix::{Kind, Mix};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One step of load.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub users: usize,
    /// Users start spread over the ramp; requests started in it are not measured.
    pub ramp: Duration,
    pub window: Duration,
    pub think_mean: Duration,
    pub patience: Patience,
    /// Seed stream, so two steps of one run draw different questions.
    pub stream: u64,
}

/// A request and what was asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    pub user: usize,
    pub kind: Kind,
    #[serde(flatten)]
    pub exchange: Exchange,
}

/// Everything one step produced.
#[derive(Debug)]
pub struct StepRun {
    /// The measured window, in seconds since `epoch`.
    pub window: (f64, f64),
    pub records: Vec<Recorded>,
    /// Requests started; equals `records.len()` unless a user task died (the difference is
    /// reported as unaccounted, never hidden).
    pub started: usize,
}

/// Runs `plan.users` customers against `target` and returns every request they made.
pub async fn run(
    client: &reqwest::Client,
    target: Arc<Target>,
    mix: Arc<Mix>,
    plan: Plan,
    epoch: Instant,
) -> StepRun {
    let window_start = plan.ramp;
    let end = epoch + plan.ramp + plan.window;
    let started = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for user in 0..plan.users {
        let client = client.clone();
        let target = Arc::clone(&target);
        let mix = Arc::clone(&mix);
        let started = Arc::clone(&started);
        let offset = plan.ramp.mul_f64(user as f64 / plan.users.max(1) as f64);
        tasks.spawn(async move {
            let mut rng = mix.user_rng(plan.stream, user);
            let ip = customer_ip(user);
            let mut records = Vec::new();
            tokio::time::sleep_until((epoch + offset).into()).await;
            while Instant::now() < end {
                let question = mix.draw(&mut rng);
                started.fetch_add(1, Ordering::Relaxed);
                let exchange =
                    ask(&client, &target, &question.text, &ip, plan.patience, epoch).await;
                records.push(Recorded {
                    user,
                    kind: question.kind,
                    exchange,
                });
                let think = think_time(&mut rng, plan.think_mean);
                let left = end.saturating_duration_since(Instant::now());
                tokio::time::sleep(think.min(left)).await;
            }
            records
        });
    }
    let mut records = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(mut r) => records.append(&mut r),
            Err(e) => eprintln!("[bench] a simulated user stopped: {e}"),
        }
    }
    records.sort_by(|a, b| a.exchange.started_s.total_cmp(&b.exchange.started_s));
    StepRun {
        window: (
            window_start.as_secs_f64(),
            (plan.ramp + plan.window).as_secs_f64(),
        ),
        records,
        started: started.load(Ordering::Relaxed),
    }
}

/// Exponential think time (customers do not think in step), cut at four times the mean so
/// one draw cannot idle a user for the whole window.
pub fn think_time(rng: &mut impl Rng, mean: Duration) -> Duration {
    let u: f64 = rng.random();
    let factor = (-(1.0 - u).ln()).min(4.0);
    mean.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn think_times_average_the_mean_and_are_capped() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let mean = Duration::from_secs(30);
        let draws: Vec<Duration> = (0..20_000).map(|_| think_time(&mut rng, mean)).collect();
        let avg = draws.iter().map(Duration::as_secs_f64).sum::<f64>() / draws.len() as f64;
        // The cut at 4x removes e^-4 of the mass above it: the mean drops by about 1.8%.
        assert!((avg - 30.0 * (1.0 - (-4f64).exp())).abs() < 1.0, "{avg}");
        assert!(draws.iter().all(|d| *d <= mean * 4));
    }
}
