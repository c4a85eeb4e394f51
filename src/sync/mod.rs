//! The sync engine: prepare (map + customers) -> plan (diff vs state) -> execute (B2B) -> state.

pub mod prepare;
