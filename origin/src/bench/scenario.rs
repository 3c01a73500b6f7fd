//! What every load scenario shares: the settings turned into run-time values once (scale,
//! simulator timing, capacity, patience), the question bank, and one measured step (users +
//! backend sampler + optional fault, all on the same clock).

use super::analysis::{analyse, StepReport};
use super::args::Common;
use super::chaos::{self, ChaosKind, FaultRecord, Targets};
use super::client::{Patience, Target};
use super::corpus::Bank;
use super::field::{miss_capacity_per_sec, Scale, SimTiming};
use super::mix::{Mix, MixSettings};
use super::sampler::Sampler;
use super::stack::{StackPlan, Tools};
use super::users::{self, Plan, StepRun};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Run-time values derived once from the command line.
pub struct Ctx {
    pub common: Common,
    pub scale: Scale,
    pub timing: SimTiming,
    pub tools: Tools,
    pub bank: Bank,
    pub client: reqwest::Client,
}

impl Ctx {
    /// # Errors
    /// Invalid settings, tools that cannot be found, or questions that cannot be loaded.
    pub fn new(common: &Common) -> Result<Ctx, String> {
        common.validate()?;
        let scale = Scale::new(common.time_scale)?;
        let s = &common.stack;
        let timing = SimTiming::calibrated(s.service_ms, s.ttft_ms, s.answer_tokens, scale);
        let tools = Tools::discover(s)?;
        let bank = super::corpus::load(&common.mix.examples, &common.mix.data)?;
        Ok(Ctx {
            common: common.clone(),
            scale,
            timing,
            tools,
            bank,
            client: super::client::http_client(),
        })
    }

    /// The full stack of the field: Envoy + filter, the origins, Redis, the simulators.
    pub fn stack_plan(&self) -> StackPlan {
        let s = &self.common.stack;
        StackPlan {
            sims: s.sims,
            sim_slots: s.slots,
            origin_slots: s.slots,
            timing: self.timing,
            origins: s.origins,
            caches: true,
            redis: true,
            edge: true,
            scale: self.scale,
            give_up_ms: self.common.users.give_up_ms,
        }
    }

    pub fn mix_settings(&self) -> MixSettings {
        let m = &self.common.mix;
        MixSettings {
            popular_share: m.popular_share,
            paraphrase_share: m.paraphrase_share,
            zipf_s: m.zipf_s,
            seed: self.common.seed,
        }
    }

    /// # Errors
    /// When the bank lacks the questions the settings ask for.
    pub fn mix(&self, settings: MixSettings) -> Result<Arc<Mix>, String> {
        Mix::new(self.bank.clone(), settings).map(Arc::new)
    }

    /// Answers per run second the simulators can generate at most.
    pub fn capacity_per_sec(&self) -> f64 {
        miss_capacity_per_sec(
            self.common.stack.sims * self.common.stack.slots,
            self.timing.service_secs(),
        )
    }

    pub fn ramp_field_secs(&self) -> u64 {
        self.common
            .users
            .ramp_secs
            .unwrap_or(2 * self.common.users.think_ms / 1000)
    }

    /// One step of `users` customers, in run time.
    pub fn plan(&self, users: usize, stream: u64) -> Plan {
        let u = &self.common.users;
        let service = Duration::from_secs_f64(self.timing.service_secs());
        // The origins give up on the admission queue at `give_up`; customers wait a little
        // longer, so LibriAssist's own refusal (a clean 503) is what they see, and a plain
        // balancer gets the same total wait.
        let give_up = self.scale.of(Duration::from_millis(u.give_up_ms)) + service / 4;
        Plan {
            users,
            ramp: self.scale.of(Duration::from_secs(self.ramp_field_secs())),
            window: self.scale.of(Duration::from_secs(u.window_secs)),
            think_mean: self.scale.of(Duration::from_millis(u.think_ms)),
            patience: Patience {
                first_token: give_up,
                stall: self
                    .scale
                    .of(Duration::from_secs(30))
                    .max(Duration::from_secs(1)),
                total: give_up + service * 4,
            },
            stream,
        }
    }

    /// How often backends are sampled: every field second, not faster than 20 times a second.
    pub fn sample_every(&self) -> Duration {
        self.scale
            .of(Duration::from_secs(1))
            .max(Duration::from_millis(50))
    }
}

/// Where a step sends its customers and what it watches.
pub struct StepTarget {
    pub target: Arc<Target>,
    pub sims: Vec<String>,
    /// Origins to read `/api/v1/backends` from (none for plain balancers).
    pub origins: Vec<String>,
}

/// One measured step, with a fault injected during its window when `chaos` is given.
pub async fn step(
    ctx: &Ctx,
    on: &StepTarget,
    mix: Arc<Mix>,
    plan: Plan,
    chaos: Option<(ChaosKind, Targets<'_>)>,
) -> (StepReport, StepRun, Vec<FaultRecord>) {
    let epoch = Instant::now();
    let sampler = Sampler::spawn(
        on.sims.clone(),
        on.origins.clone(),
        ctx.sample_every(),
        epoch,
    );
    let window = (
        plan.ramp.as_secs_f64(),
        (plan.ramp + plan.window).as_secs_f64(),
    );
    let customers = users::run(&ctx.client, Arc::clone(&on.target), mix, plan, epoch);
    let (run, faults) = match chaos {
        Some((kind, targets)) => {
            tokio::join!(
                customers,
                chaos::inject(kind, targets, window, epoch, ctx.scale.factor())
            )
        }
        None => (customers.await, Vec::new()),
    };
    let samples = sampler.stop().await;
    let report = analyse(
        &on.target.name,
        plan.users,
        &run,
        &samples,
        ctx.scale,
        ctx.capacity_per_sec(),
        ctx.common.stack.slots,
    );
    (report, run, faults)
}

/// One line of progress on stderr: long runs should not look hung.
pub fn progress(r: &StepReport) {
    let ratio = r
        .limit_ratio
        .map_or_else(|| "-".to_owned(), |x| format!("{:.0}%", x * 100.0));
    eprintln!(
        "[bench]   {:<22} {:>4} users: {:>4} started, {:>4} answered, {} lost, {} interrupted; {:.0} answers/min (field), miss limit {ratio}, TTFT p95 {:.0} ms",
        r.system,
        r.users,
        r.outcomes.started,
        r.outcomes.answered,
        r.outcomes.lost,
        r.outcomes.interrupted,
        r.answers_per_min_field,
        r.all.ttft.p95.unwrap_or(f64::NAN),
    );
}
