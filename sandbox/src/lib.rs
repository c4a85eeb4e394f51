//! Faithful fakes of the APIs b2b-invoice-sync talks to, for tests, the demo and benchmarks.
//!
//! Each fake is a real HTTP server on a local port, so the crate's real HTTP client is exercised
//! end to end, including timeouts and connections that die mid-request (see [`serve`]).

pub mod b2b;
pub mod rebillia;
pub mod serve;
pub mod unified;

// Shared by every fake: one harness (per-request latency, faults, rate limit and request log;
// the common controls; start-up), the fault injection, request log and fixed-window rate limit.
pub mod faults;
pub mod harness;
pub mod ratelimit;
pub mod stats;

// The fakes' own reading of amounts and dates off the wire.
mod wire;
