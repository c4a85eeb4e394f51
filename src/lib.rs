//! b2b-invoice-sync: keeps BigCommerce B2B Edition invoices in step with the ERP where they are born.
//!
//! Data flows one way: source (ERP adapter) -> mapping -> plan -> execute (B2B client) -> state.
//! See `docs/ARCHITECTURE.md` for the layout and the sync protocol.

pub mod b2b;
#[cfg(feature = "rigs")]
pub mod bench;
pub mod config;
pub mod customers;
pub mod daemon;
#[cfg(feature = "rigs")]
pub mod demo;
pub mod domain;
pub mod failpoints;
pub mod outbound;
pub mod payments;
pub mod process;
pub mod reconcile;
pub mod schedule;
pub mod source;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod telemetry_metrics;

// The sandboxes (fakes of B2B Edition and the ERP APIs) are their own crate in the workspace
// (sandbox/), re-exported here so the rigs and the tests name them `crate::sandbox`.
#[cfg(feature = "rigs")]
pub use b2b_sync_sandbox as sandbox;
