//! The reconciler: the only writer of stock numbers in Postgres. It reads
//! every partition's event stream through a consumer group, writes ledger
//! rows, the levels snapshot and reservation state in one transaction per
//! batch (keyed by partition and stream id, so a replay inserts nothing
//! twice), then acknowledges and trims. One replica at a time leads, by a
//! Postgres advisory lock. An event Postgres refuses goes to quarantine and
//! the rest goes on; what still waits in the streams is the backlog.

mod backlog;
mod event;
mod leader;
pub mod quarantine;
mod reconciler;
mod writer;

pub use backlog::{Backlog, backlog};
pub use event::{Event, EventError, StreamPos};
pub use leader::LeaderLock;
pub use reconciler::{Batch, ReconcileStats, Reconciler, ReconcilerSettings};
pub use writer::{Applied, Isolated, WriteError, apply_batch, isolate, refused_for_content};
