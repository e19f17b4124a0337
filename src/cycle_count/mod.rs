//! Cycle counting: the shelf checked against the system. ABC classes from
//! trailing revenue decide how often each SKU is counted; due counts are
//! listed per location, blind; a submitted count is judged against on_hand
//! in the engine (count.lua) and is matched, corrected, investigated, or
//! investigated with selling stopped at that SKU-location until resolved.
//!
//! `policy.rs` holds the rules as plain functions; `classes.rs`,
//! `counts.rs` and `investigations.rs` the Postgres tables (not stock
//! numbers, so this module writes them itself); `service.rs` the steps of
//! each call; `worker.rs` the leader's daily ABC recompute.

mod classes;
mod counts;
mod error;
mod investigations;
mod policy;
mod service;
mod settings;
mod worker;

pub use classes::{AbcEntry, recompute_classes};
pub use error::CycleCountError;
pub use investigations::{Investigation, InvestigationStatus};
pub use policy::{
    AbcClass, AbcMethod, AbcSplit, BASIS_POINTS, CountAction, CountGates, Due, GATE_TABLE, Schedule, classify, day_of,
    decide, discrepancy, start_of,
};
pub use service::{CountAnswer, CountSubmission, CycleCounts, DueCount, Resolution};
pub use settings::CycleCountSettings;
pub use worker::{AbcWorker, AbcWorkerOutcome};
