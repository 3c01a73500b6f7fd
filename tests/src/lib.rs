//! Helpers shared by the cross-component tests: finding binaries, free ports, child processes that are ended when dropped.

pub mod edge;
pub mod process;
pub mod sse;
pub mod wasm_host;
