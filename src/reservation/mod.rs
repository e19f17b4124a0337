//! The reservation engine: every change to the five numbers is one Lua script
//! run atomically in Redis (`lua/*.lua`). This module owns the key layout
//! (`keys.rs`), the scripts (`scripts.rs`), the calls and their replies
//! (`engine.rs`, `reply.rs`, `order_cache.rs`; cycle counts in `counts.rs`),
//! purchase-order movements (`po.rs`) and the sweeper that expires holds on
//! idle SKUs.

mod batch;
mod counts;
mod engine;
mod error;
mod keys;
mod order_cache;
mod po;
mod reply;
mod scripts;
mod sweeper;

pub use counts::{Counted, Resolved};
pub use engine::{Adjusted, Engine, EngineSettings, HeaderRestore, PartitionRestore, StockChange};
pub use error::EngineError;
pub use keys::{Keys, MAX_PARTITIONS, PartitionKeys};
pub use po::{PoMoveKind, PoMoveLine, PoMoved};
pub use sweeper::Sweeper;
