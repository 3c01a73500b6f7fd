//! What all requests to one simulator share: its models, slots, fault switches, counters and
//! the fixed answer settings. Built once from [`SimArgs`]; each part guards its own state.

use super::args::SimArgs;
use super::faults::{FaultSettings, Faults};
use super::generate::Pace;
use super::models::Catalog;
use super::slots::Slots;
use super::stats::Stats;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
pub struct Sim {
    pub catalog: Catalog,
    pub slots: Slots,
    pub faults: Faults,
    pub stats: Arc<Stats>,
    pub pace: Pace,
    pub seed: u64,
    pub answer_tokens: u32,
}

impl Sim {
    pub fn new(args: &SimArgs) -> Self {
        let stats = Arc::new(Stats::default());
        Self {
            catalog: Catalog::new(&args.models),
            slots: Slots::new(args.slots, args.queue_max, stats.clone()),
            faults: Faults::new(
                FaultSettings {
                    fail_rate: args.fail_rate,
                    hang: args.hang,
                    drop_after: args.drop_after,
                },
                args.seed,
            ),
            stats,
            pace: Pace {
                ttft: Duration::from_millis(args.ttft_ms),
                prompt_tokens_per_sec: args.prompt_tokens_per_sec,
                tokens_per_sec: args.tokens_per_sec,
            },
            seed: args.seed,
            answer_tokens: args.answer_tokens,
        }
    }
}
