//! `libriassist bench`: proves the stack at 1 to 200 simultaneous customers against the
//! capacity limit of its backends and against plain balancers, under faults, and measures the
//! pool's own overhead. It starts every process it needs as its own children (simulators
//! calibrated like the field, Redis, origins, Envoy with the edge filter) on loopback ports,
//! drives closed-loop customers that read the streamed answers, and writes JSON, Markdown
//! tables and SVG charts.
//!
//! It does not run real models (the simulator stands in for Ollama) and it does not judge
//! answer quality; it never sends traffic beyond loopback.

mod analysis;
mod args;
mod chaos;
mod chart;
mod client;
mod compare;
mod corpus;
mod docs;
mod envoy;
mod field;
mod load;
mod mix;
mod overhead;
mod procs;
mod report;
mod sampler;
mod scenario;
mod stack;
mod stats;
mod users;

#[cfg(test)]
mod tests;

pub use args::BenchCommand;

use args::{check_users, CompareMix};
use chaos::ChaosKind;
use report::{Capacity, Machine, RunReport, Settings};
use scenario::Ctx;
use std::path::Path;
use std::time::Instant;

/// Runs one `libriassist bench` command and writes its results.
///
/// # Errors
/// Invalid settings, a process that cannot start, or results that cannot be written.
pub async fn run(command: BenchCommand) -> Result<(), String> {
    let started = Instant::now();
    let machine = Machine::now();
    let (ctx, mut report, name) = match command {
        BenchCommand::PoolOverhead(a) => {
            let ctx = Ctx::new(&a.common)?;
            let mut report = base_report(&ctx, machine);
            eprintln!(
                "[bench] pool overhead: {} requests per path, {} at a time",
                a.requests, a.concurrency
            );
            report.overhead = Some(overhead::run(&ctx.tools, a.requests, a.concurrency).await?);
            (ctx, report, "pool-overhead")
        }
        BenchCommand::Load(a) => {
            check_users(&a.users)?;
            let ctx = Ctx::new(&a.common)?;
            let mut report = base_report(&ctx, machine);
            match a.chaos {
                Some(kind) => {
                    for &u in &a.users {
                        eprintln!("[bench] chaos {} at {u} users", kind.name());
                        report.chaos.push(load::chaos(&ctx, kind, u).await?);
                    }
                }
                None => {
                    eprintln!("[bench] load: users {:?}", a.users);
                    report.load = Some(load::run(&ctx, &a.users).await?);
                }
            }
            (
                ctx,
                report,
                if a.chaos.is_some() { "chaos" } else { "load" },
            )
        }
        BenchCommand::Compare(a) => {
            check_users(&a.users)?;
            let ctx = Ctx::new(&a.common)?;
            let mut report = base_report(&ctx, machine);
            eprintln!("[bench] compare: users {:?}", a.users);
            report.compare = vec![compare::run(&ctx, &a.users, a.mix, a.chaos).await?];
            (ctx, report, "compare")
        }
        BenchCommand::All(a) => {
            check_users(&a.load_users)?;
            check_users(&a.compare_users)?;
            check_users(&[a.chaos_users])?;
            let ctx = Ctx::new(&a.common)?;
            let mut report = base_report(&ctx, machine);
            eprintln!("[bench] 1/4 pool overhead");
            report.overhead = Some(overhead::run(&ctx.tools, a.overhead_requests, 1).await?);
            eprintln!("[bench] 2/4 load: users {:?}", a.load_users);
            report.load = Some(load::run(&ctx, &a.load_users).await?);
            eprintln!("[bench] 3/4 compare: users {:?}", a.compare_users);
            report
                .compare
                .push(compare::run(&ctx, &a.compare_users, CompareMix::Misses, None).await?);
            // Faults are where balancing logic matters: the same comparison under each fault
            // that exists without LibriAssist, at the chaos runs' user count.
            for kind in ChaosKind::ALL
                .into_iter()
                .filter(|k| k.applies_to_plain_balancers())
            {
                eprintln!(
                    "[bench] 3/4 compare under {} at {} users",
                    kind.name(),
                    a.chaos_users
                );
                let c =
                    compare::run(&ctx, &[a.chaos_users], CompareMix::Misses, Some(kind)).await?;
                report.compare.push(c);
            }
            for (i, kind) in ChaosKind::ALL.into_iter().enumerate() {
                eprintln!(
                    "[bench] 4/4 chaos {} of 4: {} at {} users",
                    i + 1,
                    kind.name(),
                    a.chaos_users
                );
                report
                    .chaos
                    .push(load::chaos(&ctx, kind, a.chaos_users).await?);
            }
            (ctx, report, "results")
        }
    };
    report.machine.loadavg_after = report::loadavg();
    report.machine.duration_s = started.elapsed().as_secs_f64();
    write(&ctx, &report, name)
}

fn base_report(ctx: &Ctx, machine: Machine) -> RunReport {
    let c = &ctx.common;
    let bank = &ctx.bank;
    let command = std::iter::once("libriassist".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    RunReport {
        command,
        machine,
        settings: Settings {
            time_scale: c.time_scale,
            seed: c.seed,
            sims: c.stack.sims,
            slots: c.stack.slots,
            origins: c.stack.origins,
            service_ms_field: c.stack.service_ms,
            ttft_ms_field: c.stack.ttft_ms,
            answer_tokens: c.stack.answer_tokens,
            sim_ttft_ms_run: ctx.timing.ttft_ms,
            sim_tokens_per_sec_run: ctx.timing.tokens_per_sec,
            think_ms_field: c.users.think_ms,
            ramp_s_field: ctx.ramp_field_secs(),
            window_s_field: c.users.window_secs,
            give_up_ms_field: c.users.give_up_ms,
            popular_share: c.mix.popular_share,
            paraphrase_share: c.mix.paraphrase_share,
            zipf_s: c.mix.zipf_s,
            popular_questions: bank.popular.len(),
            paraphrases: bank.popular.iter().map(|p| p.paraphrases.len()).sum(),
            paraphrases_written: bank.paraphrase_source == corpus::ParaphraseSource::Written,
            tail_questions: bank.tail.len(),
            popular_source: bank.popular_source.clone(),
            tail_source: bank.tail_source.clone(),
        },
        capacity: Capacity {
            total_slots: c.stack.sims * c.stack.slots,
            service_s_field: c.stack.service_ms as f64 / 1000.0,
            per_min_field: field::miss_capacity_per_sec(
                c.stack.sims * c.stack.slots,
                c.stack.service_ms as f64 / 1000.0,
            ) * 60.0,
            per_sec_run: ctx.capacity_per_sec(),
        },
        ..RunReport::default()
    }
}

/// Writes `NAME.json`, `NAME.md` and the charts into the output directory, then the docs.
fn write(ctx: &Ctx, report: &RunReport, name: &str) -> Result<(), String> {
    let out = &ctx.common.out;
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    save(&out.join(format!("{name}.json")), &json)?;
    save(&out.join(format!("{name}.md")), &report.markdown())?;
    let scale = ctx.common.time_scale;
    if let Some(load) = &report.load {
        chart::latency_vs_users(&out.join("latency-vs-users.svg"), &load.steps, scale)?;
    }
    if let Some(compare) = report.compare.iter().find(|c| c.chaos.is_none()) {
        chart::compare_vs_users(&out.join("compare-vs-users.svg"), &compare.steps, scale)?;
    }
    eprintln!("[bench] wrote {}/{name}.json and {name}.md", out.display());
    if let Some(path) = &ctx.common.update_docs {
        let missing = docs::update(path, &report.blocks())?;
        if !missing.is_empty() {
            eprintln!(
                "[bench] {} has no markers for: {} (left unchanged)",
                path.display(),
                missing.join(", ")
            );
        }
        eprintln!("[bench] updated the generated blocks of {}", path.display());
    }
    print!("{}", report.markdown());
    Ok(())
}

fn save(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
