//! `bench load`: the field's stack under 1 to 200 customers, one user count after the other on
//! the same stack (caches stay warm, as in a service that keeps running), and the chaos runs:
//! the same stack, fresh, under one fault.

use super::analysis::{layer_of, StepReport};
use super::chaos::{ChaosKind, FaultRecord, Observer, Targets};
use super::client::{Outcome, Protocol, Target};
use super::scenario::{progress, step, Ctx, StepTarget};
use super::stack::Stack;
use super::users::Recorded;
use libriassist_protocol::CacheLayer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    pub steps: Vec<StepReport>,
    pub origins: usize,
    /// Origins whose semantic cache was loaded when the run started.
    pub semantic_ready: usize,
    /// Long-tail questions dealt and available: dealt beyond the deck means repeats.
    pub tail_dealt: usize,
    pub tail_deck: usize,
}

fn libriassist(stack: &Stack) -> Result<StepTarget, String> {
    let base_url = stack.entry_url().ok_or("the stack has no entry point")?;
    Ok(StepTarget {
        target: Arc::new(Target {
            name: "LibriAssist".into(),
            base_url,
            protocol: Protocol::LibriAssist,
        }),
        sims: stack.sim_urls(),
        origins: stack.origin_urls(),
    })
}

/// Runs the user counts in order.
///
/// # Errors
/// When the stack cannot start or the mix cannot be built.
pub async fn run(ctx: &Ctx, users: &[usize]) -> Result<LoadReport, String> {
    let stack = Stack::start(&ctx.tools, ctx.stack_plan(), "load").await?;
    let result = steps(ctx, &stack, users).await;
    stack.stop().await;
    result
}

async fn steps(ctx: &Ctx, stack: &Stack, users: &[usize]) -> Result<LoadReport, String> {
    let on = libriassist(stack)?;
    let mix = ctx.mix(ctx.mix_settings())?;
    let mut report = LoadReport {
        origins: stack.origins.len(),
        semantic_ready: stack.semantic_ready,
        ..LoadReport::default()
    };
    for (i, &u) in users.iter().enumerate() {
        let (r, _, _) = step(ctx, &on, Arc::clone(&mix), ctx.plan(u, i as u64), None).await;
        progress(&r);
        report.steps.push(r);
    }
    (report.tail_dealt, report.tail_deck) = mix.tail_usage();
    Ok(report)
}

/// One chaos run and its accounting over every request it made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChaosReport {
    pub kind: ChaosKind,
    pub users: usize,
    pub step: StepReport,
    pub faults: Vec<FaultRecord>,
    /// Over the whole run: requests that ended before any token (must be zero).
    pub lost_before_streaming: usize,
    /// Over the whole run: answers cut after tokens were shown (an `error` event or a cut).
    pub interrupted_after_streaming: usize,
    /// `error` events received, before or after tokens.
    pub error_events: usize,
    pub lost_by_kind: BTreeMap<String, usize>,
    /// Restart-redis: seconds from Redis's restart to the first answer from Redis (an edge,
    /// exact or semantic hit that started after the edge's L1 lifetime).
    pub cache_hits_resumed_after_s: Option<f64>,
    /// Restart-redis: share of answers from a cache before, during and after the outage.
    pub cache_outage: Option<CacheOutage>,
    /// Answers whose first token came after the origins' first-token timeout: their first
    /// backend failed them silently and they were retried on another.
    pub slow_first_tokens: usize,
    pub semantic_ready: usize,
}

/// Shares of answers served from a cache around a Redis outage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheOutage {
    /// From the window's start to the kill.
    pub before: Option<f64>,
    /// From the kill (plus the edge's L1 lifetime) to the restart.
    pub during: Option<f64>,
    /// From the restart to the window's end.
    pub after: Option<f64>,
}

fn is_cached(layer: CacheLayer) -> bool {
    matches!(
        layer,
        CacheLayer::Edge | CacheLayer::Exact | CacheLayer::Semantic
    )
}

/// Share of the answers started in `[from, to)` that came from a cache.
fn cached_share(records: &[Recorded], from: f64, to: f64) -> Option<f64> {
    let answered: Vec<&Recorded> = records
        .iter()
        .filter(|r| {
            r.exchange.outcome == Outcome::Answered
                && r.exchange.started_s >= from
                && r.exchange.started_s < to
        })
        .collect();
    (!answered.is_empty()).then(|| {
        answered.iter().filter(|r| is_cached(layer_of(r))).count() as f64 / answered.len() as f64
    })
}

/// Runs customers on a fresh stack with `kind` injected during the window.
///
/// # Errors
/// When the stack cannot start or the mix cannot be built.
pub async fn chaos(ctx: &Ctx, kind: ChaosKind, users: usize) -> Result<ChaosReport, String> {
    let mut stack = Stack::start(&ctx.tools, ctx.stack_plan(), kind.name()).await?;
    let result = chaos_on(ctx, &mut stack, kind, users).await;
    stack.stop().await;
    result
}

async fn chaos_on(
    ctx: &Ctx,
    stack: &mut Stack,
    kind: ChaosKind,
    users: usize,
) -> Result<ChaosReport, String> {
    let on = libriassist(stack)?;
    let mix = ctx.mix(ctx.mix_settings())?;
    let semantic_ready = stack.semantic_ready;
    let targets = Targets {
        backend_observer: Observer::Origins(stack.origin_urls()),
        edge_admin: stack.envoy_admin.clone(),
        sims: &mut stack.sims,
        redis: stack.redis.as_mut(),
        origins: &mut stack.origins,
    };
    let stream = 100 + ChaosKind::ALL.iter().position(|k| *k == kind).unwrap_or(0) as u64;
    let (mut step_report, run, faults) = step(
        ctx,
        &on,
        mix,
        ctx.plan(users, stream),
        Some((kind, targets)),
    )
    .await;
    step_report.system = format!("LibriAssist, {}", kind.name());
    progress(&step_report);
    let mut lost_by_kind = BTreeMap::new();
    for r in run
        .records
        .iter()
        .filter(|r| r.exchange.outcome == Outcome::Lost)
    {
        *lost_by_kind
            .entry(r.exchange.error.clone().unwrap_or_default())
            .or_insert(0) += 1;
    }
    // The edge keeps answers for its L1 lifetime whatever Redis does; after that, an answer
    // from a cache means Redis served it.
    let l1 = super::envoy::l1_ttl_seconds(ctx.scale) as f64;
    let (resumed, cache_outage) = match (kind, faults.first()) {
        (ChaosKind::RestartRedis, Some(f)) => {
            let lifted = f.lifted_at_s.unwrap_or(f64::INFINITY);
            let resumed = run
                .records
                .iter()
                .filter(|r| r.exchange.started_s >= lifted + l1 && is_cached(layer_of(r)))
                .map(|r| r.exchange.finished_s - lifted)
                .min_by(f64::total_cmp);
            let outage = CacheOutage {
                before: cached_share(&run.records, run.window.0, f.at_s),
                during: cached_share(&run.records, f.at_s + l1, lifted),
                after: cached_share(&run.records, lifted, run.window.1),
            };
            (resumed, Some(outage))
        }
        _ => (None, None),
    };
    let first_token_timeout_ms = ctx.scale.ms(
        crate::config::Config::default()
            .backends
            .first_token_timeout_ms,
        10,
    ) as f64;
    let slow_first_tokens = run
        .records
        .iter()
        .filter(|r| {
            r.exchange.outcome != Outcome::Lost
                && r.exchange
                    .first_token_ms
                    .is_some_and(|t| t > first_token_timeout_ms)
        })
        .count();
    Ok(ChaosReport {
        kind,
        slow_first_tokens,
        users,
        lost_before_streaming: step_report.outcomes.lost,
        interrupted_after_streaming: step_report.outcomes.interrupted,
        error_events: run
            .records
            .iter()
            .filter(|r| {
                r.exchange
                    .error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("event:"))
            })
            .count(),
        lost_by_kind,
        cache_hits_resumed_after_s: resumed,
        cache_outage,
        semantic_ready,
        step: step_report,
        faults,
    })
}
