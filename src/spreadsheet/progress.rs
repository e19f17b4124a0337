//! A progress bar on stderr (a line per 10% when stderr is not a terminal).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts work done out of a known total.
pub struct Progress {
    label: &'static str,
    total: u64,
    done: AtomicU64,
    tty: bool,
    quiet: bool,
}

impl Progress {
    /// A bar for `total` items; `quiet` prints nothing (tests).
    pub fn new(label: &'static str, total: u64, quiet: bool) -> Self {
        Self { label, total, done: AtomicU64::new(0), tty: std::io::stderr().is_terminal(), quiet }
    }

    /// Records `n` more items done.
    pub fn inc(&self, n: u64) {
        let before = self.done.fetch_add(n, Ordering::Relaxed);
        let after = before + n;
        if self.quiet || self.total == 0 {
            return;
        }
        let pct = |x: u64| x * 100 / self.total;
        let mut err = std::io::stderr().lock();
        if self.tty {
            if pct(after) != pct(before) || after == self.total {
                let filled = usize::try_from(pct(after) / 5).unwrap_or(20).min(20);
                let _ = write!(
                    err,
                    "\r{} [{}{}] {:>3}% {}/{}",
                    self.label,
                    "#".repeat(filled),
                    "-".repeat(20 - filled),
                    pct(after),
                    after,
                    self.total
                );
                if after >= self.total {
                    let _ = writeln!(err);
                }
            }
        } else if pct(after) / 10 != pct(before) / 10 {
            let _ = writeln!(err, "{}: {}% ({}/{})", self.label, pct(after), after, self.total);
        }
    }
}
