//! Every Redis key name the engine uses is built here, and only here.
//!
//! Keys carry the hash tag of their partition, `{p}` with
//! `p = crc32(sku) mod P`, so all keys of one SKU (its levels, the holds on it,
//! its expiry index and its event stream) live in one Redis Cluster slot, and
//! one script may touch them together. An order's header lives in the
//! partition of its order id. The prefix lets one Redis hold several stores
//! (and lets tests isolate themselves).

use std::sync::Arc;

/// Upper bound for the partition count (Redis Cluster has 16384 slots).
pub const MAX_PARTITIONS: u32 = 16_384;

/// The five keys of one partition, in the order the scripts expect them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionKeys {
    /// Hash: sku -> JSON levels record.
    pub lvl: String,
    /// Hash: order id -> JSON hold (the order's lines in this partition).
    pub holds: String,
    /// Sorted set: uncommitted order ids by expiry (ms).
    pub exp: String,
    /// Stream: one event per changed SKU-location.
    pub ev: String,
    /// Sorted set: applied operation ids by forget-at time (ms).
    pub ops: String,
}

impl PartitionKeys {
    /// The keys in script order (KEYS[n..n+4]).
    pub fn all(&self) -> [&str; 5] {
        [&self.lvl, &self.holds, &self.exp, &self.ev, &self.ops]
    }
}

/// Builds key names for one store.
#[derive(Debug, Clone)]
pub struct Keys {
    /// Namespace for every key of this store; never contains braces.
    prefix: String,
    /// The keys of every partition (P of them, fixed when the store is
    /// first set up), named once: every script call, every
    /// reconciler round (one XLEN per partition) and every sweep asks for
    /// them, and formatting them anew cost six allocations each time.
    /// Shared, so a clone of `Keys` stays cheap.
    named: Arc<[PartitionKeys]>,
}

impl Keys {
    /// A key builder for `prefix` with `partitions` partitions.
    ///
    /// The prefix must be non-empty, with no braces (they would change the
    /// hash tag); the partition count must be 1..=16384.
    pub fn new(prefix: &str, partitions: u32) -> Result<Self, String> {
        if prefix.is_empty() || prefix.contains(['{', '}']) || prefix.chars().any(char::is_whitespace) {
            return Err(format!("redis key prefix {prefix:?} must be non-empty, without braces or spaces"));
        }
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err(format!("partition count {partitions} must be between 1 and {MAX_PARTITIONS}"));
        }
        let named = (0..partitions).map(|p| name_partition(prefix, p)).collect();
        Ok(Self { prefix: prefix.to_owned(), named })
    }

    /// P.
    pub fn partitions(&self) -> u32 {
        // At most MAX_PARTITIONS (checked in `new`), so it fits.
        self.named.len() as u32
    }

    /// The prefix every key starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The partition a SKU (or an order id) belongs to: crc32 mod P.
    pub fn partition_of(&self, id: &str) -> u32 {
        crc32fast::hash(id.as_bytes()) % self.partitions()
    }

    /// The keys of partition `p` (below `partitions()`, as `partition_of`
    /// gives).
    pub fn partition(&self, p: u32) -> &PartitionKeys {
        &self.named[p as usize]
    }

    /// The store's generation marker: set once Redis holds the store (set up
    /// or rebuilt from Postgres); missing means a fresh or wiped Redis.
    pub fn generation(&self) -> String {
        format!("{}:gen", self.prefix)
    }

    /// Held by the one process rebuilding Redis from Postgres.
    pub fn rebuild_lock(&self) -> String {
        format!("{}:rebuild", self.prefix)
    }

    /// The member of an operation id in its partition's ops index: the first
    /// 15 bytes of its SHA-256 in base64 (20 characters). Operation ids are
    /// often long (`po:<id>:receive:<n>`, file paths and lines) and one is
    /// kept per stock change for 24 h, so a short fixed-size digest saves
    /// most of the index's memory; at 120 bits two ids never collide in
    /// practice. The full id still travels on the event, to Postgres.
    pub fn operation_member(op: &str) -> String {
        use base64::Engine as _;
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(op.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..15])
    }

    /// Where count.lua keeps the answer to a count, so that the count
    /// submitted again with its operation id gets the same answer: in the
    /// partition of the SKU counted, named by the operation id's digest (see
    /// `operation_member`). A string with the operation id's retention as
    /// its TTL.
    pub fn count_answer(&self, sku: &str, op: &str) -> String {
        format!("{}:{{{}}}:cnt:{}", self.prefix, self.partition_of(sku), Self::operation_member(op))
    }

    /// The header key of an order, in the partition of its order id.
    pub fn order(&self, order_id: &str) -> String {
        format!("{}:{{{}}}:ord:{order_id}", self.prefix, self.partition_of(order_id))
    }
}

/// The five keys of partition `p` under `prefix`.
fn name_partition(prefix: &str, p: u32) -> PartitionKeys {
    let base = format!("{prefix}:{{{p}}}");
    PartitionKeys {
        lvl: format!("{base}:lvl"),
        holds: format!("{base}:holds"),
        exp: format!("{base}:exp"),
        ev: format!("{base}:ev"),
        ops: format!("{base}:ops"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_partition_shares_its_hash_tag() {
        let keys = Keys::new("s", 256).expect("valid");
        let p = keys.partition_of("TEE-BLK-M");
        for k in keys.partition(p).all() {
            assert!(k.starts_with(&format!("s:{{{p}}}:")), "{k}");
        }
    }

    #[test]
    fn every_partition_is_named_up_front_and_a_clone_shares_the_names() {
        let keys = Keys::new("s", 256).expect("valid");
        assert_eq!(keys.partition(0).all(), ["s:{0}:lvl", "s:{0}:holds", "s:{0}:exp", "s:{0}:ev", "s:{0}:ops"]);
        assert_eq!(keys.partition(255).ev, "s:{255}:ev");
        let clone = keys.clone();
        assert!(std::ptr::eq(keys.partition(9), clone.partition(9)));
    }

    #[test]
    fn an_order_header_lives_in_the_partition_of_its_id() {
        let keys = Keys::new("s", 256).expect("valid");
        let p = keys.partition_of("order-1");
        assert_eq!(keys.order("order-1"), format!("s:{{{p}}}:ord:order-1"));
    }

    #[test]
    fn a_count_answer_lives_in_the_partition_of_its_sku() {
        let keys = Keys::new("s", 256).expect("valid");
        let p = keys.partition_of("TEE-BLK-M");
        let key = keys.count_answer("TEE-BLK-M", "count-1");
        assert_eq!(key, format!("s:{{{p}}}:cnt:{}", Keys::operation_member("count-1")));
        assert_ne!(key, keys.count_answer("TEE-BLK-M", "count-2"));
    }

    #[test]
    fn an_operation_member_is_twenty_characters_and_tells_ids_apart() {
        let a = Keys::operation_member("po:123:receive:1");
        assert_eq!(a.len(), 20);
        assert_eq!(a, Keys::operation_member("po:123:receive:1"));
        assert_ne!(a, Keys::operation_member("po:123:receive:2"));
        assert_eq!(Keys::operation_member(&"x".repeat(128)).len(), 20);
    }

    #[test]
    fn partition_is_crc32_mod_p() {
        let keys = Keys::new("s", 256).expect("valid");
        assert_eq!(keys.partition_of("abc"), crc32fast::hash(b"abc") % 256);
        assert!(Keys::new("s", 1).expect("valid").partition_of("anything") == 0);
    }

    #[test]
    fn rejects_prefixes_that_would_break_the_hash_tag_and_bad_counts() {
        assert!(Keys::new("a{b", 8).is_err());
        assert!(Keys::new("", 8).is_err());
        assert!(Keys::new("a b", 8).is_err());
        assert!(Keys::new("ok", 0).is_err());
        assert!(Keys::new("ok", MAX_PARTITIONS + 1).is_err());
    }
}
