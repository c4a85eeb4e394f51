//! Reliability tests: the fault matrix (every row a fresh database, the B2B sandbox and an ERP
//! sandbox, one injected fault, cycles until quiet, then the same invariants through
//! [`invariants::assert_invariants`]) and property tests over bad input (ERP payloads, the
//! canonical record, the config loader).
//!
//! Sizes: `B2BSYNC_FAULTS_N` sets the number of ERP invoices per row (default 40) and
//! `B2BSYNC_PROPTEST_CASES` the number of property-test cases (default 64). Random faults use
//! fixed seeds, printed by each row (`B2BSYNC_FAULTS_SEED` overrides them to replay or explore).

mod bad_exports;
mod bad_input;
#[path = "../api/db.rs"]
mod db;
mod defects;
mod edits;
mod erp;
mod invariants;
mod matrix_alloy;
mod matrix_data;
mod matrix_http;
mod matrix_process;
mod matrix_versions;
mod newest;
mod operators;
mod proxy;
mod replicas;
mod strict_b2b;
mod world;
