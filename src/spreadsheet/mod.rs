//! The spreadsheet bridge: brands arrive with a CSV of SKUs and stock.
//! `stockd import` validates every row before changing anything, then
//! applies through the engine with operation ids derived from the file and
//! line (re-running the same file is a no-op); `stockd export` writes the
//! current levels as CSV that imports back cleanly.

mod export;
mod import;
mod progress;

pub use export::{EXPORT_HEADER, export};
pub use import::{ImportReport, ImportRow, RowError, apply_import, file_id, parse_import};
pub use progress::Progress;
