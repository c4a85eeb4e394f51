//! The sync engine: prepare (map + customers) -> plan (diff vs state) -> execute (B2B) -> state.

pub mod balance;
pub mod engine;
pub mod execute;
pub use crate::failpoints;
pub mod lookup;
pub mod outcome;
pub mod ownership;
pub mod plan;
pub mod prepare;
pub mod recover;
pub mod resync;
