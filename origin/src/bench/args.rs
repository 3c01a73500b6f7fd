//! Command-line settings of `libriassist bench`.
//!
//! Durations are written as the field sees them (a 5 s answer, 30 s of reading between two
//! questions, a 60 s wait before a customer gives up); `--time-scale` shrinks all of them at
//! once so the suite fits in minutes, and every report states the scale it ran at. Validation
//! lives here so a bad value fails before any process starts.

use super::chaos::ChaosKind;
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The serving benchmarks. Every scenario starts its own processes (simulators, Redis, origins,
/// Envoy) on free loopback ports and ends them by PID. Numbers of one run compare with each
/// other; across runs compare ratios, not absolute values: the machine is shared.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The pool's own overhead: added latency to first token of the origin (and of Envoy +
    /// filter + origin) against calling the simulator directly, interleaved in one run.
    PoolOverhead(OverheadArgs),
    /// Closed-loop users through Envoy + filter, 2 origins, Redis and 3 simulators, at several
    /// user counts; with --chaos, under one fault.
    Load(LoadArgs),
    /// The same users on the same simulators behind LibriAssist, Envoy least_request and Envoy
    /// round_robin, one after the other in one run.
    Compare(CompareArgs),
    /// Every scenario, the chart and the report: what scripts/bench.sh runs.
    All(AllArgs),
}

/// Settings shared by every scenario.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Multiplies every field duration (service time, think time, timeouts, health intervals,
    /// chaos periods): 0.1 runs ten times faster with the same shape.
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Seed of the question mix and of think times: same seed, same questions.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Directory for results.json, results.md and the charts.
    #[arg(long, default_value = "docs/bench")]
    pub out: PathBuf,
    /// Rewrites the generated blocks (between `<!-- bench:NAME -->` markers) of this Markdown
    /// file with the new results; nothing outside the markers changes.
    #[arg(long)]
    pub update_docs: Option<PathBuf>,
    #[command(flatten)]
    pub stack: StackArgs,
    #[command(flatten)]
    pub users: UserArgs,
    #[command(flatten)]
    pub mix: MixArgs,
}

/// The processes of the stack and the field calibration of the simulated backends.
#[derive(Debug, Clone, Args)]
pub struct StackArgs {
    /// Simulated Ollama instances (one per GPU in the field).
    #[arg(long, default_value_t = 3)]
    pub sims: usize,
    /// Parallel slots of each simulator (OLLAMA_NUM_PARALLEL), also the origins' per-backend slots.
    #[arg(long, default_value_t = 4)]
    pub slots: usize,
    /// Field service time of one answer, first token to done, in ms (~5 s per 200 tokens).
    #[arg(long, default_value_t = 5_000)]
    pub service_ms: u64,
    /// Field time to first token once a slot is taken, in ms (part of the service time).
    #[arg(long, default_value_t = 200)]
    pub ttft_ms: u64,
    /// Tokens per simulated answer. The origins keep their token budget (num_predict 200)
    /// unless an answer would reach it: an answer that reaches the budget counts as cut and is
    /// never cached, while real answers mostly end by themselves below it.
    #[arg(long, default_value_t = 190)]
    pub answer_tokens: u32,
    /// Origins behind Envoy, sharing Redis and the simulators.
    #[arg(long, default_value_t = 2)]
    pub origins: usize,
    /// The `libriassist` binary started for simulators and origins [default: this program].
    #[arg(long)]
    pub bin: Option<PathBuf>,
    /// Envoy [default: $LIBRIASSIST_ENVOY, then $LIBRIASSIST_CACHE/envoy, then envoy on PATH].
    #[arg(long)]
    pub envoy: Option<PathBuf>,
    /// The built edge filter.
    #[arg(
        long,
        default_value = "target/wasm32-wasip1/release/libriassist_filter.wasm"
    )]
    pub wasm: PathBuf,
    /// The edge configuration template the tests render.
    #[arg(long, default_value = "envoy/envoy.template.yaml")]
    pub envoy_template: PathBuf,
    #[arg(long, default_value = "redis-server")]
    pub redis_server: PathBuf,
    /// Knowledge index given to the origins (`libriassist ingest`); unset: answers are not grounded.
    #[arg(long)]
    pub index: Option<PathBuf>,
}

/// How the simulated customers behave.
#[derive(Debug, Clone, Args)]
pub struct UserArgs {
    /// Mean field think time between an answer and the next question, in ms (exponential,
    /// cut at 4x the mean): reading a 150-word answer and typing the next question.
    #[arg(long, default_value_t = 30_000)]
    pub think_ms: u64,
    /// Field length of the measured window at each user count, in seconds.
    #[arg(long, default_value_t = 150)]
    pub window_secs: u64,
    /// Field ramp-up before the window, in seconds: users start spread over it and its
    /// requests are not measured [default: 2x the think time].
    #[arg(long)]
    pub ramp_secs: Option<u64>,
    /// Field wait for a first token after which a customer gives up (counted as a queue
    /// timeout), in ms; also the origins' admission queue timeout.
    #[arg(long, default_value_t = 60_000)]
    pub give_up_ms: u64,
}

/// Which questions the users ask.
#[derive(Debug, Clone, Args)]
pub struct MixArgs {
    /// Share of questions that are popular FAQ questions, drawn by Zipf rank.
    #[arg(long, default_value_t = 0.4)]
    pub popular_share: f64,
    /// Share of questions that paraphrase a popular question (same Zipf rank); the rest are
    /// long-tail questions, each asked once.
    #[arg(long, default_value_t = 0.2)]
    pub paraphrase_share: f64,
    /// Zipf exponent over the popular questions' ranks.
    #[arg(long, default_value_t = 1.0)]
    pub zipf_s: f64,
    /// FAQ corpus (`faq-librairie.jsonl`, `faq-questions.jsonl`); when absent, the
    /// Service-Public.fr questions of --data stand in for it.
    #[arg(long, default_value = "examples")]
    pub examples: PathBuf,
    /// Shared data sets (service-public-qr, piaf-v1.0) for the long tail.
    #[arg(long, default_value = "../shared/data")]
    pub data: PathBuf,
}

#[derive(Debug, Args)]
pub struct OverheadArgs {
    #[command(flatten)]
    pub common: Common,
    /// Requests per path (direct, origin, edge), interleaved.
    #[arg(long, default_value_t = 600)]
    pub requests: usize,
    /// Requests in flight at once on each path.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub common: Common,
    /// User counts, measured one after the other on the same stack (caches stay warm).
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,200")]
    pub users: Vec<usize>,
    /// A fault injected during each measured window.
    #[arg(long, value_enum)]
    pub chaos: Option<ChaosKind>,
}

/// Which questions `compare` asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompareMix {
    /// Only long-tail questions: every request needs a generation, so only balancing counts.
    Misses,
    /// The --popular-share / --paraphrase-share mix: LibriAssist's caches count too.
    Realistic,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, value_delimiter = ',', default_value = "100,200")]
    pub users: Vec<usize>,
    #[arg(long, value_enum, default_value = "misses")]
    pub mix: CompareMix,
    /// A fault injected during each window, for every balancer alike.
    #[arg(long, value_enum)]
    pub chaos: Option<ChaosKind>,
}

#[derive(Debug, Args)]
pub struct AllArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,200")]
    pub load_users: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_value = "100,200")]
    pub compare_users: Vec<usize>,
    /// Users during each chaos run.
    #[arg(long, default_value_t = 100)]
    pub chaos_users: usize,
    /// Requests per path of the pool-overhead run.
    #[arg(long, default_value_t = 600)]
    pub overhead_requests: usize,
}

impl Common {
    /// Checks values clap's types cannot express.
    ///
    /// # Errors
    /// A message naming the flag and the accepted range.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.time_scale.is_finite() && self.time_scale > 0.0 && self.time_scale <= 10.0) {
            return Err(format!(
                "--time-scale must be in (0, 10], got {}",
                self.time_scale
            ));
        }
        let s = &self.stack;
        if s.sims == 0 || s.slots == 0 || s.origins == 0 || s.answer_tokens == 0 {
            return Err("--sims, --slots, --origins and --answer-tokens must be at least 1".into());
        }
        if s.ttft_ms >= s.service_ms {
            return Err("--ttft-ms must be shorter than --service-ms".into());
        }
        let m = &self.mix;
        for (flag, v) in [
            ("--popular-share", m.popular_share),
            ("--paraphrase-share", m.paraphrase_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{flag} must be between 0 and 1, got {v}"));
            }
        }
        if m.popular_share + m.paraphrase_share > 1.0 + 1e-9 {
            return Err("--popular-share + --paraphrase-share must not exceed 1".into());
        }
        if !(m.zipf_s.is_finite() && m.zipf_s >= 0.0) {
            return Err(format!(
                "--zipf-s must be a finite number >= 0, got {}",
                m.zipf_s
            ));
        }
        if self.users.window_secs == 0 {
            return Err("--window-secs must be at least 1".into());
        }
        Ok(())
    }
}

/// Checks a list of user counts.
///
/// # Errors
/// An empty list or a zero.
pub fn check_users(users: &[usize]) -> Result<(), String> {
    if users.is_empty() || users.contains(&0) {
        return Err("--users needs one or more counts, each at least 1".into());
    }
    if users.iter().any(|&u| u > 5_000) {
        return Err("--users above 5000 would exhaust file descriptors on one machine".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        bench: BenchCommand,
    }

    fn parse(args: &[&str]) -> BenchCommand {
        let argv = std::iter::once("bench").chain(args.iter().copied());
        match Cli::try_parse_from(argv) {
            Ok(cli) => cli.bench,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn load_parses_users_and_chaos() {
        let BenchCommand::Load(load) = parse(&[
            "load",
            "--users",
            "1,10",
            "--chaos",
            "kill-backend",
            "--time-scale",
            "0.1",
        ]) else {
            panic!("not load")
        };
        assert_eq!(load.users, [1, 10]);
        assert_eq!(load.chaos, Some(ChaosKind::KillBackend));
        assert!(load.common.validate().is_ok());
    }

    #[test]
    fn defaults_are_the_field_calibration() {
        let BenchCommand::Compare(c) = parse(&["compare"]) else {
            panic!("not compare")
        };
        assert_eq!(
            (
                c.common.stack.sims,
                c.common.stack.slots,
                c.common.stack.service_ms
            ),
            (3, 4, 5_000)
        );
        assert_eq!(c.mix, CompareMix::Misses);
        assert!(c.common.validate().is_ok());
    }

    #[test]
    fn nonsense_is_refused() {
        let BenchCommand::Load(mut load) = parse(&["load"]) else {
            panic!("not load")
        };
        load.common.time_scale = 0.0;
        assert!(load.common.validate().is_err());
        load.common.time_scale = 1.0;
        load.common.mix.popular_share = 0.8;
        load.common.mix.paraphrase_share = 0.3;
        assert!(load.common.validate().is_err());
        assert!(check_users(&[]).is_err());
        assert!(check_users(&[0]).is_err());
        assert!(check_users(&[1, 200]).is_ok());
    }
}
