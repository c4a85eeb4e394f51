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
#[cfg(feature = "rigs")]
pub mod sandbox;
pub mod schedule;
pub mod source;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod telemetry_metrics;
