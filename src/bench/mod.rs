//! Benchmarks behind `b2b-invoice-sync bench` (results and commands in `BENCHMARKS.md`).
//!
//! - [`e2e`]: the whole daemon against the ERP and B2B sandboxes and a fresh PostgreSQL
//!   database, scenario after scenario on the same data, next to a deliberately [`naive`]
//!   syncer, with API calls per invoice, budget use, 429s, speed, memory and database work.
//! - [`planner`]: the diff of a million synthetic invoices against a million state rows.
//! - [`alloy`]: a full-scan cycle of an Alloy source over unchanged invoices, at Alloy's rate
//!   limit and with the budget lifted.
//! - [`freshness`]: what the update freshness bound costs in calls, and the age of the state
//!   each update was built from.
//! - [`replicas`]: many stores across 1, 2, 4 ... replicas (real processes): time to the first
//!   full sync, CPU, memory and database connections per replica, store budget use.
//!
//! The numbers are measured, never assumed: calls come from the sandbox's own counters,
//! memory from `/proc`, database work from PostgreSQL's statistics and sqlx's query events
//! (see [`measure`]).

pub mod alloy;
mod database;
pub mod e2e;
mod e2e_setup;
pub mod freshness;
pub mod measure;
pub mod naive;
pub mod planner;
pub mod replicas;
mod sandboxes;
pub mod synthetic;
mod table;

pub use sandboxes::SandboxLaunch;

use crate::store::StoreError;
use crate::sync::engine::EngineError;

/// What stopped a benchmark; each names what failed and what to check.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(
        "the database URL is not a PostgreSQL URL (expected postgres://user[:password]@host:port/database)"
    )]
    InvalidUrl,
    #[error("PostgreSQL: {0} (is the server up and may this user CREATE DATABASE?)")]
    Database(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("sandbox: {0}")]
    Sandbox(String),
    #[error("the naive syncer: {0}")]
    Naive(String),
    #[error("invalid benchmark option: {0}")]
    Option(String),
    #[error("interrupted (the benchmark's database and sandboxes were removed)")]
    Interrupted,
}

impl BenchError {
    fn db(context: &'static str) -> impl Fn(sqlx::Error) -> Self {
        move |e| Self::Database(format!("{context}: {e}"))
    }
}
