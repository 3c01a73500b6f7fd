//! Command line: one subcommand per job, each a thin call into the library.

use crate::config::{Config, Overrides};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "libriassist",
    version,
    about = "Answers customers' questions from the bookstore's own documents with local LLMs."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the chat API.
    Serve(Overrides),
    /// Run an Ollama API simulator (tests, capacity planning).
    Sim(crate::sim::SimArgs),
    /// Print the effective configuration (defaults, file, environment) as TOML.
    Config(ConfigArgs),
    /// Measure: `eval cache` (semantic cache hit and false-hit rates), `eval retrieval`
    /// (recall@k of the knowledge base).
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Build a new version of the knowledge index from documents, then make it current.
    Ingest(crate::knowledge::commands::IngestArgs),
    /// Measure speed and size: `bench retrieval`; the serving stack under load, against
    /// plain balancers and under faults: `bench pool-overhead|load|compare|all`.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, clap::Args)]
struct ConfigArgs {
    /// Print instead the reference of every option (key, default, variable, flag) as Markdown.
    #[arg(long)]
    reference: bool,
    #[command(flatten)]
    overrides: Overrides,
}

#[derive(Debug, Subcommand)]
enum EvalCommand {
    /// Semantic cache: paraphrase hits and false hits, with and without guards (docs/EVALUATION.md).
    Cache(crate::cache::eval::EvalCacheArgs),
    /// Recall@1 and recall@5 of BM25, vectors and hybrid retrieval (docs/EVALUATION.md).
    Retrieval(crate::knowledge::commands::EvalRetrievalArgs),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Ingest throughput, query embedding and search latency, index size, memory (docs/BENCHMARKS.md).
    Retrieval(crate::knowledge::commands::BenchRetrievalArgs),
    /// Latency of exact and semantic cache hits against misses, at 10k and 100k cached questions (docs/BENCHMARKS.md).
    Cache(crate::cache::bench::BenchCacheArgs),
    #[command(flatten)]
    Serving(Box<crate::bench::BenchCommand>),
}

pub fn main() -> ExitCode {
    crate::telemetry::init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), String> = runtime.block_on(async {
        match cli.command {
            Command::Serve(overrides) => {
                let config = Config::load(&overrides).map_err(|e| e.to_string())?;
                crate::server::serve(config, overrides)
                    .await
                    .map_err(|e| e.to_string())
            }
            Command::Sim(args) => crate::sim::run(args).await.map_err(|e| e.to_string()),
            Command::Eval(EvalCommand::Cache(args)) => {
                let report = crate::cache::eval::run(&args).await?;
                print!("{report}");
                Ok(())
            }
            // Blocking work (reading files, embedding) on a runtime thread is fine here: the
            // process runs nothing else meanwhile.
            Command::Eval(EvalCommand::Retrieval(args)) => {
                crate::knowledge::commands::run_eval(args).await
            }
            Command::Ingest(args) => crate::knowledge::commands::run_ingest(args),
            Command::Bench(BenchCommand::Retrieval(args)) => {
                crate::knowledge::commands::run_bench(args).await
            }
            Command::Bench(BenchCommand::Cache(args)) => {
                let report = crate::cache::bench::run(&args).await?;
                print!("{report}");
                Ok(())
            }
            Command::Bench(BenchCommand::Serving(command)) => crate::bench::run(*command).await,
            Command::Config(ConfigArgs {
                reference: true, ..
            }) => {
                print!("{}", crate::config::reference());
                Ok(())
            }
            Command::Config(ConfigArgs { overrides, .. }) => {
                let config = Config::load(&overrides).map_err(|e| e.to_string())?;
                print!("{}", config.to_toml());
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
