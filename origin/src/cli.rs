//! Command line: one subcommand per job, each a thin call into the library.

use crate::config::{Config, Overrides};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "libriassist", version, about = "Answers customers' questions from the bookstore's own documents with local LLMs.")]
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
    Config(Overrides),
}

pub fn main() -> ExitCode {
    crate::telemetry::init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
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
                crate::server::serve(config).await.map_err(|e| e.to_string())
            }
            Command::Sim(args) => crate::sim::run(args).await.map_err(|e| e.to_string()),
            Command::Config(overrides) => {
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
