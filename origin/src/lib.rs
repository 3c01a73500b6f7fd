//! LibriAssist origin: the chat API, the answer pipeline and the LLM backend pool, plus the
//! Ollama simulator used for tests and capacity planning.

pub mod api;
pub mod backends;
pub mod bench;
pub mod cache;
pub mod cli;
pub mod config;
pub mod drain;
pub mod embed;
pub mod error;
pub mod knowledge;
pub mod metrics;
pub mod pipeline;
pub mod server;
pub mod sim;
pub mod telemetry;
pub mod vectors;
