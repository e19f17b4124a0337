//! Replenishment: reorder points from velocity, one PO per supplier and
//! location, before the stock-out. Pure policy (`policy.rs`), the
//! set-based suggestion query (`suggest.rs`), the reorder check that turns
//! suggestions into draft PO lines (`check.rs`), purchase orders and their
//! movements through the engine (`orders.rs`), the notification outbox
//! (`notify.rs`), and the leader-only worker that watches the ledger,
//! sweeps, finishes movements and sends notifications (`worker.rs`).
//! Suppliers live in the catalog (`catalog/suppliers.rs`).

mod check;
mod error;
mod notify;
mod orders;
pub mod policy;
mod service;
mod settings;
mod suggest;
mod worker;

pub use check::{CheckOutcome, run_check};
pub use error::ReplenishmentError;
pub use notify::{Notifier, NotifyOutcome, check_notify_url};
pub use orders::{
    PoLine, PoStatus, PurchaseOrder, PurchaseOrders, ReceiptLine, cancel_operation, receive_operation, submit_operation,
};
pub use service::Replenishment;
pub use settings::ReplenishmentSettings;
pub use suggest::{SUGGESTIONS_QUERY, Scope, Suggestion, suggestions};
pub use worker::{ReplenishmentWorker, Round};
