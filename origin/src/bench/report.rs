//! The results of a run, as JSON (everything, for tools) and as Markdown tables (for
//! docs/BENCHMARKS.md). Each Markdown table is a named block so the docs can embed exactly the
//! blocks a run produced (see [`super::docs`]).
//!
//! Field equivalents: waits a generation dominates are shown in field seconds (run time divided
//! by the time scale) and throughputs per field minute; latencies of cached answers, which are
//! real work and not simulated time, are shown in run milliseconds, unscaled.

use super::analysis::StepReport;
use super::compare::CompareReport;
use super::load::{ChaosReport, LoadReport};
use super::overhead::OverheadReport;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Everything one `libriassist bench` command measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub command: String,
    pub machine: Machine,
    pub settings: Settings,
    pub capacity: Capacity,
    pub overhead: Option<OverheadReport>,
    pub load: Option<LoadReport>,
    /// Healthy backends first, then each fault the comparison ran under.
    pub compare: Vec<CompareReport>,
    pub chaos: Vec<ChaosReport>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    /// `/proc/loadavg` before and after: the machine is shared, this says how busy it was.
    pub loadavg_before: Option<String>,
    pub loadavg_after: Option<String>,
    pub started_unix: u64,
    pub duration_s: f64,
    /// The code measured: `git describe` of the working tree, `-dirty` when it had changes.
    pub code: Option<String>,
}

impl Machine {
    pub fn now() -> Machine {
        Machine {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            loadavg_before: loadavg(),
            loadavg_after: None,
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            duration_s: 0.0,
            code: code_version(),
        }
    }
}

/// `git describe --always --dirty` of the current directory, when it is a git checkout.
fn code_version() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    out.status
        .success()
        .then(|| text.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// The first three fields of `/proc/loadavg`.
pub fn loadavg() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub time_scale: f64,
    pub seed: u64,
    pub sims: usize,
    pub slots: usize,
    pub origins: usize,
    pub service_ms_field: u64,
    pub ttft_ms_field: u64,
    pub answer_tokens: u32,
    pub sim_ttft_ms_run: u64,
    pub sim_tokens_per_sec_run: f64,
    pub think_ms_field: u64,
    pub ramp_s_field: u64,
    pub window_s_field: u64,
    pub give_up_ms_field: u64,
    pub popular_share: f64,
    pub paraphrase_share: f64,
    pub zipf_s: f64,
    pub popular_questions: usize,
    pub paraphrases: usize,
    pub paraphrases_written: bool,
    pub tail_questions: usize,
    pub popular_source: String,
    pub tail_source: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    pub total_slots: usize,
    pub service_s_field: f64,
    pub per_min_field: f64,
    pub per_sec_run: f64,
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"))
}

/// Run milliseconds as field seconds.
fn field_s(v: Option<f64>, scale: f64) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{:.1}", v / 1000.0 / scale))
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

fn errors(map: &BTreeMap<String, usize>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, v)| format!("`{k}` ×{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the old plan said for a user count: one Ollama, one request at a time, 5 s each, so
/// the last of N customers asking together waits N × 5 s; and the answers per minute it hoped
/// for on 3 Ollama × 4 slots.
fn old_plan(users: usize) -> (String, String) {
    let wait_s = users as f64 * 5.0;
    let wait = match users {
        10 => "50 s".to_owned(),
        100 => "8+ min".to_owned(),
        _ if wait_s >= 60.0 => format!("{:.0} min (same rule)", wait_s / 60.0),
        _ => format!("{wait_s:.0} s (same rule)"),
    };
    let rate = match users {
        100 => "50-80 (150+ with a cache)".to_owned(),
        200 => "100-150 (300+ with a cache)".to_owned(),
        _ => "-".to_owned(),
    };
    (wait, rate)
}

impl RunReport {
    /// The named Markdown blocks this report can fill.
    pub fn blocks(&self) -> Vec<(String, String)> {
        let mut out = vec![("settings".to_owned(), self.settings_md())];
        if let Some(o) = &self.overhead {
            out.push(("overhead".into(), overhead_md(o)));
        }
        if let Some(l) = &self.load {
            out.push(("wait".into(), self.wait_md(l)));
            out.push(("load".into(), self.load_md(l)));
            out.push(("limit".into(), self.limit_md(&l.steps)));
        }
        for c in &self.compare {
            let name = c
                .chaos
                .map_or_else(|| "compare".to_owned(), |k| format!("compare-{}", k.name()));
            out.push((name, self.compare_md(c)));
        }
        if !self.chaos.is_empty() {
            out.push(("chaos".into(), self.chaos_md()));
        }
        out
    }

    /// The whole report as one Markdown document.
    pub fn markdown(&self) -> String {
        let mut s = String::from("# LibriAssist benchmark results\n\nGenerated by `libriassist bench`; see docs/BENCHMARKS.md for what each table means.\n");
        for (name, block) in self.blocks() {
            let _ = write!(s, "\n## {name}\n\n{block}");
        }
        s
    }

    fn settings_md(&self) -> String {
        let s = &self.settings;
        let m = &self.machine;
        let mut out = String::new();
        let _ = writeln!(out, "Command: `{}`", self.command);
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Machine: {} cores, load average {} before and {} after; the run took {:.0} s. Code: {}.",
            m.cores,
            m.loadavg_before.as_deref().unwrap_or("?"),
            m.loadavg_after.as_deref().unwrap_or("?"),
            m.duration_s,
            m.code.as_deref().unwrap_or("unknown")
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Time scale {}: every field duration below ran {}× faster (a {:.1} s field answer took {:.2} s; think times, timeouts, health checks and chaos periods alike).",
            s.time_scale,
            1.0 / s.time_scale,
            s.service_ms_field as f64 / 1000.0,
            s.service_ms_field as f64 / 1000.0 * s.time_scale
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "| setting | value |\n|---|---|\n| backends | {} simulators × {} slots, {} tokens per answer, {:.1} s per answer (first token after {} ms) |\n| stack | Envoy + edge filter, {} origins, Redis |\n| customers | closed loop, think time {:.0} s mean (exponential), ramp {} s, measured window {} s, give up after {:.0} s without a first token |\n| questions | {:.0}% popular (Zipf s = {}), {:.0}% paraphrases, {:.0}% long tail, seed {} |\n| popular | {} questions from {} |\n| paraphrases | {} ({}) |\n| long tail | {} questions from {} |",
            s.sims,
            s.slots,
            s.answer_tokens,
            s.service_ms_field as f64 / 1000.0,
            s.ttft_ms_field,
            s.origins,
            s.think_ms_field as f64 / 1000.0,
            s.ramp_s_field,
            s.window_s_field,
            s.give_up_ms_field as f64 / 1000.0,
            s.popular_share * 100.0,
            s.zipf_s,
            s.paraphrase_share * 100.0,
            (1.0 - s.popular_share - s.paraphrase_share).max(0.0) * 100.0,
            s.seed,
            s.popular_questions,
            s.popular_source,
            s.paraphrases,
            if s.paraphrases_written { "written by people" } else { "generated from fixed patterns: greeting, thanks, lowercase typing" },
            s.tail_questions,
            s.tail_source,
        );
        let c = &self.capacity;
        let _ = writeln!(
            out,
            "\nCapacity limit for misses: {} slots / {:.1} s = **{:.0} answers/min** (field).",
            c.total_slots, c.service_s_field, c.per_min_field
        );
        out
    }

    fn wait_md(&self, l: &LoadReport) -> String {
        let scale = self.settings.time_scale;
        let mut out = String::from(
            "| users | old plan: wait, 1 Ollama one request at a time | LibriAssist: mean wait for the first token | p95 wait | mean full answer | p95 full answer | old plan: answers/min | LibriAssist: answers/min | of which generated |\n|---|---|---|---|---|---|---|---|---|\n",
        );
        for r in &l.steps {
            let (old_wait, old_rate) = old_plan(r.users);
            let _ = writeln!(
                out,
                "| {} | {} | {} s | {} s | {} s | {} s | {} | {:.0} | {:.0} |",
                r.users,
                old_wait,
                field_s(r.all.ttft.mean, scale),
                field_s(r.all.ttft.p95, scale),
                field_s(r.all.full.mean, scale),
                field_s(r.all.full.p95, scale),
                old_rate,
                r.answers_per_min_field,
                r.misses_per_min_field,
            );
        }
        out.push_str("\nWaits are field seconds (run time ÷ time scale), over every answer that started in the window, cached or generated.\n");
        out
    }

    fn load_md(&self, l: &LoadReport) -> String {
        let scale = self.settings.time_scale;
        let mut out = String::from("| users | requests | answered | lost | interrupted | misses: TTFT p50 / p95 / p99 (field s) | misses: full p50 / p95 / p99 (field s) | cached answers: p50 / p99 end to end (run ms) | answered by: miss / edge / exact / semantic / coalesced | paraphrases answered from a cache | long-tail questions answered from a cache | errors |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for r in &l.steps {
            let layer = |k: &str| r.by_layer.get(k).map_or(0, |x| x.count);
            let cached_share = |kind: &str| {
                r.by_kind.get(kind).filter(|k| k.asked > 0).map(|k| {
                    let hits: usize = ["edge", "exact", "semantic", "coalesced"]
                        .iter()
                        .map(|l| k.layers.get(*l).copied().unwrap_or(0))
                        .sum();
                    hits as f64 / k.asked as f64
                })
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} / {} / {} | {} / {} / {} | {} / {} | {} / {} / {} / {} / {} | {} | {} | {} |",
                r.users,
                r.outcomes.started,
                r.outcomes.answered,
                r.outcomes.lost,
                r.outcomes.interrupted,
                field_s(r.misses.ttft.p50, scale),
                field_s(r.misses.ttft.p95, scale),
                field_s(r.misses.ttft.p99, scale),
                field_s(r.misses.full.p50, scale),
                field_s(r.misses.full.p95, scale),
                field_s(r.misses.full.p99, scale),
                ms(r.cached.full.p50),
                ms(r.cached.full.p99),
                layer("miss"),
                layer("edge"),
                layer("exact"),
                layer("semantic"),
                layer("coalesced"),
                pct(cached_share("paraphrase")),
                pct(cached_share("tail")),
                errors(&r.errors),
            );
        }
        let _ = writeln!(
            out,
            "\nA long-tail question is asked once: one answered from a cache is a semantic false hit or a question the data sets hold twice in other words. Semantic cache loaded on {} of {} origins. Long-tail questions dealt: {} of {}{}.",
            l.semantic_ready,
            l.origins,
            l.tail_dealt,
            l.tail_deck,
            if l.tail_dealt > l.tail_deck { " (the deck ran out: some long-tail questions were repeated)" } else { " (none repeated)" }
        );
        out
    }

    fn limit_md(&self, steps: &[StepReport]) -> String {
        let scale = self.settings.time_scale;
        let mut out = String::from("| system | users | generations/min (field) | of the limit | slots busy | generation time p50 / p95 (field s) | waiting inside a backend: mean / max | time with a backend oversubscribed | most in flight the origins believed on one backend |\n|---|---|---|---|---|---|---|---|---|\n");
        for r in steps {
            let u = &r.utilisation;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} / {} | {} / {} | {} | {} |",
                r.system,
                r.users,
                r.backend_generations_per_sec
                    .map_or_else(|| "-".into(), |g| format!("{:.0}", g * 60.0 * scale)),
                pct(r.limit_ratio),
                pct(u.slot_utilisation),
                field_s(r.generation.p50, scale),
                field_s(r.generation.p95, scale),
                u.mean_queued_in_backends
                    .map_or_else(|| "-".into(), |v| format!("{v:.2}")),
                u.max_queued_in_backends
                    .map_or_else(|| "-".into(), |v| v.to_string()),
                pct(u.share_of_time_oversubscribed),
                u.max_origin_sum_per_backend.map_or_else(
                    || "-".into(),
                    |v| format!("{v} (slots: {})", self.settings.slots)
                ),
            );
        }
        out
    }

    fn compare_md(&self, c: &CompareReport) -> String {
        let scale = self.settings.time_scale;
        let mut out = format!(
            "Questions: {}{}.\n\n| users | system | answers/min (field) | generations: of the limit | TTFT p50 / p95 / p99 (field s) | full answer p95 (field s) | queue timeouts | lost | interrupted | slots busy | errors |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
            if c.mix == "misses" { "long tail only, every request needs a generation" } else { "the realistic mix" },
            c.chaos.map_or_else(String::new, |k| format!("; fault during each window: {}", k.name())),
        );
        for r in &c.steps {
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {} | {} / {} / {} | {} | {} | {} | {} | {} | {} |",
                r.users,
                r.system,
                r.answers_per_min_field,
                pct(r.limit_ratio),
                field_s(r.all.ttft.p50, scale),
                field_s(r.all.ttft.p95, scale),
                field_s(r.all.ttft.p99, scale),
                field_s(r.all.full.p95, scale),
                r.queue_timeouts,
                r.outcomes.lost,
                r.outcomes.interrupted,
                pct(r.utilisation.slot_utilisation),
                errors(&r.errors),
            );
        }
        out.push_str("\nWhere the generations ran, same steps:\n\n");
        out.push_str(&self.limit_md(&c.steps));
        for f in &c.faults {
            for fault in &f.faults {
                let _ = writeln!(
                    out,
                    "\n- {} at {} users: {}",
                    f.system,
                    f.users,
                    fault_line(fault, scale)
                );
            }
        }
        out
    }

    fn chaos_md(&self) -> String {
        let scale = self.settings.time_scale;
        let mut out = String::from("| fault | users | requests | lost before streaming | interrupted after streaming | error events | answers/min (field) | TTFT p95 (field s) | lost by kind |\n|---|---|---|---|---|---|---|---|---|\n");
        for c in &self.chaos {
            let _ = writeln!(
                out,
                "| {} | {} | {} | **{}** | {} | {} | {:.0} | {} | {} |",
                c.kind.name(),
                c.users,
                c.step.outcomes.started,
                c.lost_before_streaming,
                c.interrupted_after_streaming,
                c.error_events,
                c.step.answers_per_min_field,
                field_s(c.step.all.ttft.p95, scale),
                errors(&c.lost_by_kind),
            );
        }
        let _ = write!(
            out,
            "\nFaults, in field seconds since the customers started (the measured window opens at t = {} s). Noticed: an origin (or Envoy, for an origin) first reported the component unhealthy; healthy again: every origin (or Envoy) reported it healthy after the fault was lifted.\n\n",
            self.settings.ramp_s_field
        );
        for c in &self.chaos {
            for f in &c.faults {
                let _ = writeln!(out, "- {}: {}", c.kind.name(), fault_line(f, scale));
            }
            if let Some(s) = c.cache_hits_resumed_after_s {
                let _ = writeln!(
                    out,
                    "- {}: first answer from Redis {:.1} s after it restarted (empty)",
                    c.kind.name(),
                    s / scale
                );
            }
            if let Some(o) = &c.cache_outage {
                let _ = writeln!(
                    out,
                    "- {}: answers from a cache: {} before the outage, {} during it, {} after the restart",
                    c.kind.name(),
                    pct(o.before),
                    pct(o.during),
                    pct(o.after)
                );
            }
            if c.slow_first_tokens > 0 {
                let _ = writeln!(
                    out,
                    "- {}: {} answers got their first token only after the origins' first-token timeout (retried on another backend)",
                    c.kind.name(),
                    c.slow_first_tokens
                );
            }
        }
        out
    }
}

fn fault_line(f: &super::chaos::FaultRecord, scale: f64) -> String {
    let s = |v: Option<f64>| {
        v.map_or_else(
            || "never".to_owned(),
            |v| format!("after {:.1} s", v / scale),
        )
    };
    let mut line = format!("{} at t = {:.1} s", f.what, f.at_s / scale);
    if f.watched {
        let _ = write!(line, "; noticed {}", s(f.detected_after_s));
        if let Some(t) = f.readmitted_during_fault_after_s {
            let _ = write!(
                line,
                "; taken back while still faulty at t + {:.1} s",
                t / scale
            );
        }
        let _ = write!(
            line,
            "; healthy again {} once lifted",
            s(f.recovered_after_s)
        );
    }
    line
}

fn overhead_md(o: &OverheadReport) -> String {
    let mut out = format!(
        "{} requests per path, {} at a time, interleaved; one simulator (first token after {} ms, {} tokens), the origin's caches off. Milliseconds, real time.\n\n| path | first token p50 | p99 | full answer p50 | p99 | failed |\n|---|---|---|---|---|---|\n",
        o.requests_per_path, o.concurrency, o.sim_ttft_ms, o.answer_tokens
    );
    for p in &o.paths {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            p.path,
            ms(p.ttft.p50),
            ms(p.ttft.p99),
            ms(p.full.p50),
            ms(p.full.p99),
            p.failed
        );
    }
    out.push_str(
        "\n| added to the first token vs the simulator directly | p50 | p99 | same round, back to back: p50 / p95 / p99 |\n|---|---|---|---|\n",
    );
    for a in &o.added {
        let _ = writeln!(
            out,
            "| {} | {} ms | {} ms | {} / {} / {} ms |",
            a.path,
            ms(a.p50_ms),
            ms(a.p99_ms),
            ms(a.paired.p50),
            ms(a.paired.p95),
            ms(a.paired.p99)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::analysis::{Latency, Outcomes};
    use crate::bench::chaos::{ChaosKind, FaultRecord};
    use crate::bench::stats::Summary;

    fn step(users: usize) -> StepReport {
        StepReport {
            system: "LibriAssist".into(),
            users,
            window_s: 15.0,
            outcomes: Outcomes {
                started: 10,
                answered: 9,
                lost: 1,
                interrupted: 0,
                unaccounted: 0,
            },
            errors: [("http_503:overloaded".to_owned(), 1)]
                .into_iter()
                .collect(),
            answers_per_min_field: 120.0,
            misses_per_min_field: 60.0,
            limit_ratio: Some(0.98),
            all: Latency {
                count: 9,
                ttft: Summary::of([100.0, 200.0]),
                full: Summary::of([500.0, 600.0]),
            },
            ..StepReport::default()
        }
    }

    fn report() -> RunReport {
        RunReport {
            command: "libriassist bench all --time-scale 0.1".into(),
            settings: Settings {
                time_scale: 0.1,
                slots: 4,
                ..Settings::default()
            },
            load: Some(LoadReport {
                steps: vec![step(10), step(100)],
                ..LoadReport::default()
            }),
            chaos: vec![ChaosReport {
                kind: ChaosKind::KillBackend,
                users: 100,
                step: step(100),
                faults: vec![FaultRecord {
                    what: "kill sim-0".into(),
                    at_s: 2.0,
                    lifted_at_s: Some(3.0),
                    watched: true,
                    detected_after_s: Some(0.1),
                    recovered_after_s: None,
                    readmitted_during_fault_after_s: None,
                }],
                lost_before_streaming: 0,
                interrupted_after_streaming: 2,
                error_events: 2,
                lost_by_kind: BTreeMap::new(),
                cache_hits_resumed_after_s: None,
                cache_outage: None,
                slow_first_tokens: 0,
                semantic_ready: 2,
            }],
            ..RunReport::default()
        }
    }

    #[test]
    fn wait_table_sits_beside_the_old_plan() {
        let r = report();
        let blocks: BTreeMap<String, String> = r.blocks().into_iter().collect();
        let wait = &blocks["wait"];
        assert!(wait.contains("| 10 | 50 s | 1.5 s | 2.0 s |"), "{wait}");
        assert!(wait.contains("| 100 | 8+ min |"));
        assert!(wait.contains("50-80 (150+ with a cache)"));
        assert!(blocks["limit"].contains("98.0%"));
        assert!(
            !blocks.contains_key("compare"),
            "only what the run measured"
        );
    }

    #[test]
    fn chaos_table_shows_losses_and_recovery_in_field_seconds() {
        let blocks: BTreeMap<String, String> = report().blocks().into_iter().collect();
        let chaos = &blocks["chaos"];
        assert!(
            chaos.contains("| kill-backend | 100 | 10 | **0** | 2 | 2 |"),
            "{chaos}"
        );
        assert!(
            chaos.contains(
                "kill sim-0 at t = 20.0 s; noticed after 1.0 s; healthy again never once lifted"
            ),
            "{chaos}"
        );
    }

    #[test]
    fn json_round_trips() {
        let r = report();
        let text = serde_json::to_string_pretty(&r).unwrap();
        let back: RunReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
        assert!(r.markdown().starts_with("# LibriAssist benchmark results"));
    }

    #[test]
    fn old_plan_rule() {
        assert_eq!(old_plan(1).0, "5 s (same rule)");
        assert_eq!(
            old_plan(200),
            (
                "17 min (same rule)".to_owned(),
                "100-150 (300+ with a cache)".to_owned()
            )
        );
    }
}
