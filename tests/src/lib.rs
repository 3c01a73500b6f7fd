//! Helpers shared by the cross-component tests: finding binaries, free ports, child processes that are ended when dropped.

pub mod process;
pub mod sse;
pub mod edge;
pub mod wasm_host;
