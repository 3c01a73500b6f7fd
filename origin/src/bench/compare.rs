//! `bench compare`: the same customers on the same simulators behind LibriAssist (Envoy +
//! filter, origins, Redis) and behind Envoy alone with least_request or round_robin, one after
//! the other in one run. The order of the three rotates with each user count so none always
//! runs first on a cold machine or last on a tired one. Each system draws the same questions
//! (its own mix with the same seed), and before each step every balancer must see every
//! simulator healthy, so a fault of the previous step cannot leak into the next.

use super::analysis::StepReport;
use super::args::CompareMix;
use super::chaos::{ChaosKind, FaultRecord, Observer, Targets};
use super::client::{Protocol, Target};
use super::envoy::Policy;
use super::mix::{Mix, MixSettings};
use super::procs::Proc;
use super::scenario::{progress, step, Ctx, StepTarget};
use super::stack::{start_plain, wait_cluster_healthy, Stack};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompareReport {
    /// `misses` or `realistic`.
    pub mix: String,
    pub chaos: Option<ChaosKind>,
    pub steps: Vec<StepReport>,
    pub faults: Vec<SystemFaults>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemFaults {
    pub system: String,
    pub users: usize,
    pub faults: Vec<FaultRecord>,
}

struct System {
    on: StepTarget,
    observer: Observer,
    mix: Arc<Mix>,
}

/// Runs the comparison.
///
/// # Errors
/// A fault that plain balancers cannot have, or a stack that cannot start.
pub async fn run(
    ctx: &Ctx,
    users: &[usize],
    mix: CompareMix,
    chaos: Option<ChaosKind>,
) -> Result<CompareReport, String> {
    if let Some(kind) = chaos.filter(|k| !k.applies_to_plain_balancers()) {
        return Err(format!("--chaos {} has no equivalent without LibriAssist; compare supports kill-backend and hang-backend", kind.name()));
    }
    let mut stack = Stack::start(&ctx.tools, ctx.stack_plan(), "compare").await?;
    let result = run_on(ctx, &mut stack, users, mix, chaos).await;
    stack.stop().await;
    result
}

async fn run_on(
    ctx: &Ctx,
    stack: &mut Stack,
    users: &[usize],
    mix: CompareMix,
    chaos: Option<ChaosKind>,
) -> Result<CompareReport, String> {
    let settings = match mix {
        CompareMix::Misses => MixSettings::misses_only(ctx.common.seed),
        CompareMix::Realistic => ctx.mix_settings(),
    };
    let (mut least, least_admin) = start_plain(
        &ctx.tools,
        &stack.dir,
        &stack.sims,
        Policy::LeastRequest,
        ctx.scale,
    )
    .await?;
    let (mut round, round_admin) = start_plain(
        &ctx.tools,
        &stack.dir,
        &stack.sims,
        Policy::RoundRobin,
        ctx.scale,
    )
    .await?;
    let entry = stack.entry_url().ok_or("the stack has no entry point")?;
    let num_predict = crate::config::Config::default()
        .generation
        .num_predict
        .max(ctx.timing.answer_tokens.saturating_add(1));
    let ollama = Protocol::Ollama {
        model: crate::sim::DEFAULT_MODEL.into(),
        num_predict,
    };
    let plain = |proc: &Proc, policy: Policy, admin: &str| -> Result<System, String> {
        Ok(System {
            on: StepTarget {
                target: Arc::new(Target {
                    name: policy.label().into(),
                    base_url: proc.url(),
                    protocol: ollama.clone(),
                }),
                sims: stack.sim_urls(),
                origins: Vec::new(),
            },
            observer: Observer::Envoy {
                admin: admin.to_owned(),
                cluster: "ollama".into(),
            },
            mix: ctx.mix(settings)?,
        })
    };
    let systems = [
        System {
            on: StepTarget {
                target: Arc::new(Target {
                    name: "LibriAssist".into(),
                    base_url: entry,
                    protocol: Protocol::LibriAssist,
                }),
                sims: stack.sim_urls(),
                origins: stack.origin_urls(),
            },
            observer: Observer::Origins(stack.origin_urls()),
            mix: ctx.mix(settings)?,
        },
        plain(&least, Policy::LeastRequest, &least_admin)?,
        plain(&round, Policy::RoundRobin, &round_admin)?,
    ];
    let mut report = CompareReport {
        mix: format!("{mix:?}").to_lowercase(),
        chaos,
        ..CompareReport::default()
    };
    let sim_ports: Vec<u16> = stack.sims.iter().map(|s| s.addr().port()).collect();
    for (level, &u) in users.iter().enumerate() {
        for k in 0..systems.len() {
            let system = &systems[(level + k) % systems.len()];
            settle(
                ctx,
                &stack.origin_urls(),
                &[&least_admin, &round_admin],
                &sim_ports,
            )
            .await;
            let targets = chaos.map(|kind| {
                (
                    kind,
                    Targets {
                        sims: &mut stack.sims,
                        redis: None,
                        origins: &mut [],
                        edge_admin: None,
                        backend_observer: system.observer.clone(),
                    },
                )
            });
            let (r, _, faults) = step(
                ctx,
                &system.on,
                Arc::clone(&system.mix),
                ctx.plan(u, 50 + level as u64),
                targets,
            )
            .await;
            progress(&r);
            if chaos.is_some() {
                report.faults.push(SystemFaults {
                    system: r.system.clone(),
                    users: u,
                    faults,
                });
            }
            report.steps.push(r);
        }
    }
    least.kill().await;
    round.kill().await;
    Ok(report)
}

/// Waits (bounded) until every origin and both plain Envoys see every simulator healthy.
async fn settle(ctx: &Ctx, origins: &[String], admins: &[&str], sim_ports: &[u16]) {
    let limit = Duration::from_secs_f64((60.0 * ctx.scale.factor()).max(5.0));
    for admin in admins {
        let _ = wait_cluster_healthy(admin, "ollama", sim_ports, limit).await;
    }
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let mut all = true;
        for origin in origins {
            let v: serde_json::Value = match ctx
                .client
                .get(format!("{origin}/api/v1/backends"))
                .send()
                .await
            {
                Ok(r) => r.json().await.unwrap_or_default(),
                Err(_) => serde_json::Value::Null,
            };
            let healthy = v["backends"]
                .as_array()
                .is_some_and(|b| !b.is_empty() && b.iter().all(|x| x["healthy"] == true));
            all &= healthy;
        }
        if all {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
