//! Command-line settings of the simulator, also built directly by tests that start simulators
//! in-process. Validation lives here so a bad value from either path fails before binding.

use std::net::SocketAddr;

/// Default model: the one the origin asks for by default (`OLLAMA_MODEL`).
pub const DEFAULT_MODEL: &str = "mistral:7b-instruct-q4_0";

#[derive(Debug, Clone, PartialEq, clap::Args)]
#[command(
    after_help = "Serves /api/chat, /api/generate (NDJSON), /api/tags, /api/ps, /api/version and /. \
Runtime control: POST /sim/faults {\"fail_rate\": 0.5, \"hang\": false, \"drop_after\": null}, \
GET /sim/faults, GET /sim/stats, POST /sim/stats/reset."
)]
pub struct SimArgs {
    /// Address to listen on (port 0 picks a free port; the bound address is printed on stdout).
    #[arg(long, default_value = "127.0.0.1:11434")]
    pub listen: SocketAddr,

    /// Models present, comma separated or repeated; a name without a tag means `:latest`.
    #[arg(long = "model", value_delimiter = ',', default_value = DEFAULT_MODEL)]
    pub models: Vec<String>,

    /// Generations running at once, like OLLAMA_NUM_PARALLEL (all models share these slots).
    #[arg(long, default_value_t = 4)]
    pub slots: usize,

    /// Requests allowed to wait for a slot, in arrival order, like OLLAMA_MAX_QUEUE; beyond it
    /// a request gets 503 "server busy".
    #[arg(long, default_value_t = 512)]
    pub queue_max: usize,

    /// Time to first token once a slot is taken (prompt evaluation), in milliseconds.
    #[arg(long, default_value_t = 150)]
    pub ttft_ms: u64,

    /// Prompt evaluation speed added to --ttft-ms, in prompt tokens per second (0: prompt
    /// length costs nothing).
    #[arg(long, default_value_t = 0.0)]
    pub prompt_tokens_per_sec: f64,

    /// Generation speed of one slot, in tokens per second (0: no pacing, all tokens at once).
    #[arg(long, default_value_t = 30.0)]
    pub tokens_per_sec: f64,

    /// Length of an answer in tokens; options.num_predict below it cuts the answer
    /// (done_reason "length").
    #[arg(long, default_value_t = 64)]
    pub answer_tokens: u32,

    /// Seed of the answer text and of --fail-rate draws: same seed and prompt, same answer.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Fraction of generation requests answered 500 {"error": ...} before any token (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,

    /// Accept generation requests, take a slot, then never send a token (connection stays open
    /// until the client leaves).
    #[arg(long)]
    pub hang: bool,

    /// Close the connection after this many tokens, mid-stream, without a done line.
    #[arg(long)]
    pub drop_after: Option<u32>,
}

impl Default for SimArgs {
    /// The command line's defaults (a unit test keeps the two equal).
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 11434)),
            models: vec![DEFAULT_MODEL.to_string()],
            slots: 4,
            queue_max: 512,
            ttft_ms: 150,
            prompt_tokens_per_sec: 0.0,
            tokens_per_sec: 30.0,
            answer_tokens: 64,
            seed: 0,
            fail_rate: 0.0,
            hang: false,
            drop_after: None,
        }
    }
}

impl SimArgs {
    /// The defaults on 127.0.0.1 port 0, for tests that start several simulators.
    pub fn on_free_port() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..Self::default()
        }
    }

    /// Checks values clap's types cannot express.
    ///
    /// # Errors
    /// A message naming the flag and the accepted range.
    pub fn validate(&self) -> Result<(), String> {
        if self.slots == 0 {
            return Err("--slots must be at least 1".into());
        }
        if self.answer_tokens == 0 {
            return Err("--answer-tokens must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.fail_rate) {
            return Err(format!(
                "--fail-rate must be between 0 and 1, got {}",
                self.fail_rate
            ));
        }
        for (flag, value) in [
            ("--tokens-per-sec", self.tokens_per_sec),
            ("--prompt-tokens-per-sec", self.prompt_tokens_per_sec),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(format!("{flag} must be a finite number >= 0, got {value}"));
            }
        }
        if self.models.iter().all(|m| m.trim().is_empty()) {
            return Err("--model needs at least one name".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn parse(args: &[&str]) -> SimArgs {
        let argv = std::iter::once("sim").chain(args.iter().copied());
        match Cli::try_parse_from(argv) {
            Ok(cli) => cli.sim,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn default_matches_command_line_defaults() {
        assert_eq!(parse(&[]), SimArgs::default());
        assert!(SimArgs::default().validate().is_ok());
    }

    #[test]
    fn models_split_on_commas_and_repeat() {
        let args = parse(&["--model", "a:1,b", "--model", "c"]);
        assert_eq!(args.models, ["a:1", "b", "c"]);
    }

    #[test]
    fn faults_parse() {
        let args = parse(&["--fail-rate", "0.25", "--hang", "--drop-after", "3"]);
        assert_eq!(args.fail_rate, 0.25);
        assert!(args.hang);
        assert_eq!(args.drop_after, Some(3));
    }

    #[test]
    fn out_of_range_values_are_refused() {
        for bad in [
            SimArgs {
                slots: 0,
                ..SimArgs::default()
            },
            SimArgs {
                answer_tokens: 0,
                ..SimArgs::default()
            },
            SimArgs {
                fail_rate: 1.5,
                ..SimArgs::default()
            },
            SimArgs {
                fail_rate: f64::NAN,
                ..SimArgs::default()
            },
            SimArgs {
                tokens_per_sec: -1.0,
                ..SimArgs::default()
            },
            SimArgs {
                prompt_tokens_per_sec: f64::INFINITY,
                ..SimArgs::default()
            },
            SimArgs {
                models: vec![" ".into()],
                ..SimArgs::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn help_lists_every_flag() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        for flag in [
            "--listen",
            "--model",
            "--slots",
            "--queue-max",
            "--ttft-ms",
            "--prompt-tokens-per-sec",
            "--tokens-per-sec",
            "--answer-tokens",
            "--seed",
            "--fail-rate",
            "--hang",
            "--drop-after",
        ] {
            assert!(help.contains(flag), "{flag} missing from help");
        }
    }
}
