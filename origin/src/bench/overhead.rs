//! The pool's own overhead: how much later the first token arrives through the origin (and
//! through Envoy + filter + origin) than straight from the simulator, on the same simulator in
//! the same run.
//!
//! Requests go to the three paths in turn (the order rotates with each round so no path always
//! follows another), each with a question never asked before so no cache or coalescing can
//! answer it, to one simulator with more slots than requests in flight so nothing queues. The
//! origin's caches are off: what is measured is admission, backend choice, the Ollama client,
//! the SSE encoding and (for the edge) Envoy and the filter. Time is not scaled here: overhead
//! is real milliseconds.

use super::client::{ask, customer_ip, Outcome, Patience, Protocol, Target};
use super::field::{Scale, SimTiming};
use super::stack::{Stack, StackPlan, Tools};
use super::stats::Summary;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Latency of one path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PathLatency {
    pub path: String,
    pub ttft: Summary,
    pub full: Summary,
    pub failed: usize,
}

/// What a path adds to the first token over calling the simulator directly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Added {
    pub path: String,
    /// Difference of the two paths' percentiles.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Percentiles of the per-round differences (the two requests of one round ran back to
    /// back): a stall of the shared machine hits one request of a round, so this shows how
    /// often the path itself adds time rather than how noisy the machine was.
    pub paired: Summary,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OverheadReport {
    pub requests_per_path: usize,
    pub concurrency: usize,
    pub sim_ttft_ms: u64,
    pub answer_tokens: u32,
    pub paths: Vec<PathLatency>,
    pub added: Vec<Added>,
}

/// One measured request.
struct Sample {
    round: usize,
    path: usize,
    answered: bool,
    ttft: Option<f64>,
    full: f64,
}

/// The simulator of this run: a short, fast answer, so the first token dominates.
const SIM_TTFT_MS: u64 = 20;
const SIM_TOKENS: u32 = 20;
const WARMUP_ROUNDS: usize = 20;

/// Runs the measurement.
///
/// # Errors
/// When the stack cannot start.
pub async fn run(
    tools: &Tools,
    requests: usize,
    concurrency: usize,
) -> Result<OverheadReport, String> {
    let concurrency = concurrency.max(1);
    let slots = (concurrency * 3 * 2).max(8);
    let plan = StackPlan {
        sims: 1,
        sim_slots: slots,
        origin_slots: slots,
        timing: SimTiming {
            ttft_ms: SIM_TTFT_MS,
            tokens_per_sec: 2_000.0,
            answer_tokens: SIM_TOKENS,
        },
        origins: 1,
        caches: false,
        redis: false,
        edge: true,
        scale: Scale::new(1.0)?,
        give_up_ms: 60_000,
    };
    let stack = Stack::start(tools, plan, "overhead").await?;
    let result = measure(&stack, requests, concurrency).await;
    stack.stop().await;
    Ok(result)
}

async fn measure(stack: &Stack, requests: usize, concurrency: usize) -> OverheadReport {
    let sim = stack.sim_urls().remove(0);
    let origin = stack.origin_urls().remove(0);
    let edge = stack.entry_url().unwrap_or_else(|| origin.clone());
    let ollama = Protocol::Ollama {
        model: crate::sim::DEFAULT_MODEL.into(),
        num_predict: SIM_TOKENS,
    };
    let targets = Arc::new([
        Target {
            name: "simulator directly".into(),
            base_url: sim,
            protocol: ollama,
        },
        Target {
            name: "origin".into(),
            base_url: origin,
            protocol: Protocol::LibriAssist,
        },
        Target {
            name: "Envoy + filter + origin".into(),
            base_url: edge,
            protocol: Protocol::LibriAssist,
        },
    ]);
    let client = super::client::http_client();
    let patience = Patience {
        first_token: Duration::from_secs(10),
        stall: Duration::from_secs(10),
        total: Duration::from_secs(30),
    };
    let epoch = Instant::now();
    let rounds = requests + WARMUP_ROUNDS;
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let client = client.clone();
        let targets = Arc::clone(&targets);
        workers.spawn(async move {
            let mut samples: Vec<Sample> = Vec::new();
            for round in (w..rounds).step_by(concurrency) {
                for k in 0..targets.len() {
                    let path = (round + k) % targets.len();
                    let question = format!(
                        "Quel est le délai de livraison de la commande numéro {round}-{path} ?"
                    );
                    let ex = ask(
                        &client,
                        &targets[path],
                        &question,
                        &customer_ip(round * 3 + path),
                        patience,
                        epoch,
                    )
                    .await;
                    if round >= WARMUP_ROUNDS {
                        samples.push(Sample {
                            round,
                            path,
                            answered: ex.outcome == Outcome::Answered,
                            ttft: ex.first_token_ms,
                            full: ex.total_ms,
                        });
                    }
                }
            }
            samples
        });
    }
    let mut all = Vec::new();
    while let Some(Ok(mut s)) = workers.join_next().await {
        all.append(&mut s);
    }
    let paths: Vec<PathLatency> = (0..targets.len())
        .map(|p| {
            let ok: Vec<&Sample> = all.iter().filter(|s| s.path == p && s.answered).collect();
            PathLatency {
                path: targets[p].name.clone(),
                ttft: Summary::of(ok.iter().filter_map(|s| s.ttft)),
                full: Summary::of(ok.iter().map(|s| s.full)),
                failed: all.iter().filter(|s| s.path == p && !s.answered).count(),
            }
        })
        .collect();
    let diff = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a - b);
    let ttft_of = |round: usize, path: usize| {
        all.iter()
            .find(|s| s.round == round && s.path == path && s.answered)
            .and_then(|s| s.ttft)
    };
    let added = paths
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, p)| Added {
            path: p.path.clone(),
            p50_ms: diff(p.ttft.p50, paths[0].ttft.p50),
            p99_ms: diff(p.ttft.p99, paths[0].ttft.p99),
            paired: Summary::of(
                (WARMUP_ROUNDS..rounds).filter_map(|r| diff(ttft_of(r, i), ttft_of(r, 0))),
            ),
        })
        .collect();
    OverheadReport {
        requests_per_path: requests,
        concurrency,
        sim_ttft_ms: SIM_TTFT_MS,
        answer_tokens: SIM_TOKENS,
        paths,
        added,
    }
}
