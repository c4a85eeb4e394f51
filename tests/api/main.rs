//! Integration tests: the B2B Edition client against the in-repo sandbox over real HTTP, and the
//! binary's commands. One test binary (faster to link); each test starts its own sandbox.

mod alloy_world;
mod bench;
mod budget;
mod check_config;
mod cli_engine;
mod client_endpoints;
mod customers;
mod daemon;
mod db;
mod demo;
mod demo_postgres;
mod deploy;
mod engine_alloy;
mod engine_failures;
mod engine_faults;
mod engine_rebillia;
mod engine_sync;
mod engine_world;
mod faults;
mod helpers;
mod leases;
mod list_filters;
mod observability;
mod payments_client;
mod payments_erp;
mod payments_flow;
mod reconcile;
mod schema_check;
mod secrets;
mod source_alloy;
mod source_files;
mod source_limits;
mod source_rebillia;
mod source_unified;
