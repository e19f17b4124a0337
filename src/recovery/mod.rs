//! Losing Redis: a generation marker in Redis (and in Postgres) tells a
//! fresh or wiped Redis from a live one. When it is missing the hot path goes
//! NOT_SERVING, levels, active reservations (with their original expiry),
//! tombstones and remembered operation ids are rebuilt from Postgres, the
//! marker is written, and only then does it serve again.

mod load;
mod rebuild;

pub use load::load_restore_data;
pub use rebuild::{Recovery, RecoveryOutcome};
