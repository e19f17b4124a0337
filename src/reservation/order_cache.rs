//! What this replica last saw of recent orders: the created-at of the header
//! and the partitions of its lines, so that a transition (commit, fulfil,
//! release, extend) goes straight to its script instead of reading the header
//! first: one round trip instead of two.
//!
//! Only a hint, never trusted: every transition script checks that the header
//! still has this created-at (else it answers STALE, and the engine reads the
//! header and tries again), and for one created-at an order's lines, hence its
//! partitions, never change. A miss (another replica took the order, or it
//! was pushed out) costs the header read it always cost.
//!
//! Bounded by two generations of at most `capacity` orders each: when the
//! current one is full it becomes the old one and the previous old one is
//! dropped, so recent orders stay and memory stays flat without per-entry
//! bookkeeping.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// What a transition needs to know about an order without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct KnownOrder {
    /// The header's created-at in ms: the transition's guard.
    pub created_at_ms: i64,
    /// The partitions of its lines, in the order the lines name them.
    pub partitions: Vec<u32>,
}

/// The cache itself (see the module comment).
pub(super) struct OrderCache {
    capacity: usize,
    generations: Mutex<Generations>,
}

#[derive(Default)]
struct Generations {
    current: HashMap<String, KnownOrder>,
    old: HashMap<String, KnownOrder>,
}

impl OrderCache {
    /// A cache of up to 2 × `capacity` orders; 0 keeps nothing.
    pub fn new(capacity: usize) -> Self {
        Self { capacity, generations: Mutex::default() }
    }

    fn lock(&self) -> MutexGuard<'_, Generations> {
        self.generations.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What is known of `order`, if anything.
    pub fn get(&self, order: &str) -> Option<KnownOrder> {
        let g = self.lock();
        g.current.get(order).or_else(|| g.old.get(order)).cloned()
    }

    /// Remembers `order`, replacing what was known of it.
    pub fn insert(&self, order: &str, known: KnownOrder) {
        if self.capacity == 0 {
            return;
        }
        let mut g = self.lock();
        if g.current.len() >= self.capacity && !g.current.contains_key(order) {
            g.old = std::mem::take(&mut g.current);
        }
        g.old.remove(order);
        g.current.insert(order.to_owned(), known);
    }

    /// Forgets `order` (its hint proved stale, or it ended).
    pub fn remove(&self, order: &str) {
        let mut g = self.lock();
        g.current.remove(order);
        g.old.remove(order);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(ms: i64) -> KnownOrder {
        KnownOrder { created_at_ms: ms, partitions: vec![1, 7] }
    }

    #[test]
    fn remembers_replaces_and_forgets_an_order() {
        let c = OrderCache::new(10);
        assert_eq!(c.get("o"), None);
        c.insert("o", known(1));
        assert_eq!(c.get("o"), Some(known(1)));
        c.insert("o", known(2));
        assert_eq!(c.get("o"), Some(known(2)));
        c.remove("o");
        assert_eq!(c.get("o"), None);
    }

    #[test]
    fn keeps_at_most_two_generations_and_the_most_recent_orders() {
        let c = OrderCache::new(3);
        for i in 0..10 {
            c.insert(&format!("o{i}"), known(i));
        }
        let kept: Vec<i64> = (0..10).filter(|i| c.get(&format!("o{i}")).is_some()).collect();
        // o9 started the fourth generation; o6..o8 are the previous one.
        assert_eq!(kept, vec![6, 7, 8, 9]);
        let g = c.lock();
        assert!(g.current.len() <= 3 && g.old.len() <= 3);
    }

    #[test]
    fn an_entry_moved_back_to_current_is_not_shadowed_by_its_old_copy() {
        let c = OrderCache::new(2);
        c.insert("a", known(1));
        c.insert("b", known(1));
        c.insert("c", known(1)); // a, b are now old
        c.insert("a", known(5)); // a again, newer
        c.remove("a");
        assert_eq!(c.get("a"), None, "no stale copy left behind");
    }

    #[test]
    fn capacity_zero_keeps_nothing() {
        let c = OrderCache::new(0);
        c.insert("o", known(1));
        assert_eq!(c.get("o"), None);
    }
}
