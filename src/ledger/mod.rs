//! Reading the system of record: the ledger as movements, and the drift
//! check that compares Redis, the snapshot and the replayed ledger.

mod drift;
mod movements;

pub use drift::{DriftReport, LedgerSide, Mismatch, check_drift, repair_snapshot, run_drift_checks};
pub use movements::{Movement, list_movements, movements_query};
