//! `libriassist sim`: an Ollama API simulator. Ollama cannot be installed on the machines
//! that run the tests, yet the origin must be tested and sized against Ollama's protocol and
//! its behaviour under load: parallel slots, an internal FIFO queue that answers 503 when full,
//! NDJSON streams timed like a model, and the ways a backend fails. This module reproduces
//! those, exposes exact counters, and lets tests change faults at runtime. It does not run a
//! model, and it only implements the endpoints the origin uses.
//!
//! In-process use: [`spawn`] with [`SimArgs::on_free_port`], then point clients at
//! [`SimHandle::url`].

mod api;
mod args;
mod error;
mod faults;
mod generate;
mod generation;
mod models;
mod server;
mod slots;
mod state;
mod stats;
mod wire;

pub use api::OLLAMA_VERSION;
pub use args::{SimArgs, DEFAULT_MODEL};
pub use error::{BUSY_MESSAGE, INJECTED_FAILURE};
pub use faults::{FaultSettings, FaultUpdate};
pub use server::{spawn, SimHandle};
pub use stats::StatsSnapshot;

/// Runs the simulator until Ctrl-C, printing the bound address on stdout first so scripts that
/// pass `--listen 127.0.0.1:0` can find the port.
///
/// # Errors
/// Invalid settings or a failed bind.
pub async fn run(args: SimArgs) -> std::io::Result<()> {
    let mut handle = spawn(args).await?;
    println!("listening on {}", handle.url());
    let signal = tokio::select! {
        signal = tokio::signal::ctrl_c() => signal,
        () = handle.wait() => return Ok(()),
    };
    handle.shutdown().await;
    signal
}

#[cfg(test)]
mod tests;
