//! The engine: builds each script call (keys from `keys.rs`, arguments in the
//! order the script's header lists), runs it with a deadline, and reads the
//! reply into domain types.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use deadpool_redis::{Manager, Pool, Runtime};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};
use serde::Deserialize;

use super::EngineError;
use super::batch::ReserveQueue;
use super::keys::Keys;
use super::order_cache::{KnownOrder, OrderCache};
use super::reply::Reply;
use super::scripts::{NamedScript, SCRIPTS};
use crate::domain::{
    Levels, LocationId, LocationLevels, MAX_LEVEL, OnHand, OperationId, OrderId, ReleaseReason, Reservation,
    ReservationStatus, ReserveOutcome, ReserveRequest, Sku, SkuLevels, StockDelta, Ttl,
};
use crate::metrics::Metrics;

/// Tunables of the engine, from `Config`.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Hold length when a request gives none (30 min).
    pub default_ttl: Ttl,
    /// How long a released, fulfilled or expired order is remembered so that a
    /// late retry does not reserve again (24 h).
    pub tombstone: Duration,
    /// How long an applied operation id is remembered (24 h).
    pub operation_retention: Duration,
    /// Most expired holds one script releases per partition, bounding the
    /// extra work a call can be asked to do.
    pub expiry_batch: u32,
    /// Deadline for one Redis call, connection included: past it the caller
    /// gets UNAVAILABLE instead of a hang.
    pub call_timeout: Duration,
    /// Redis connections in the pool (each one multiplexes concurrent calls).
    pub pool_size: usize,
    /// Most Reserve calls coalesced into one script call (1: none).
    pub reserve_batch: usize,
    /// Reserve script calls in flight at once (see batch.rs).
    pub reserve_calls: usize,
}

/// How a stock change is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockChange {
    /// Add this (may be negative) to on_hand.
    Delta(i64),
    /// Set on_hand to this.
    Set(i64),
}

/// The result of an adjustment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjusted {
    /// The levels after it (or as they are, when replayed).
    pub levels: Levels,
    /// What was added to on_hand (0 when replayed).
    pub delta: i64,
    /// The operation id had been applied before; nothing changed.
    pub replayed: bool,
}

/// The levels record of one SKU as the scripts store it (MessagePack; see
/// common.lua).
#[derive(Debug, Deserialize)]
struct SkuRecord {
    #[serde(default)]
    stop: i64,
    /// location -> [on_hand, reserved, committed, in_transit].
    #[serde(default)]
    l: PackedMap<[i64; 4]>,
    /// Locations where selling is stopped (-> 1); absent while none is.
    #[serde(default)]
    s: PackedMap<i64>,
}

/// A map keyed by location. Lua cannot tell an empty map from an empty
/// array, so a SKU with no location yet comes packed as `[]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PackedMap<V> {
    Map(BTreeMap<String, V>),
    Empty(#[allow(dead_code, reason = "only its shape is read")] Vec<serde::de::IgnoredAny>),
}

impl<V> Default for PackedMap<V> {
    fn default() -> Self {
        PackedMap::Map(BTreeMap::new())
    }
}

impl<V> PackedMap<V> {
    fn into_map(self) -> BTreeMap<String, V> {
        match self {
            PackedMap::Map(m) => m,
            PackedMap::Empty(_) => BTreeMap::new(),
        }
    }
}

/// The reservation engine. Cheap to share behind an `Arc`. Its state lives
/// in a `Core` of its own so that the Reserve batches (batch.rs) can run on
/// tasks that outlive the call that started them.
pub struct Engine {
    core: Arc<Core>,
}

impl std::ops::Deref for Engine {
    type Target = Core;

    fn deref(&self) -> &Core {
        &self.core
    }
}

/// What an engine holds; reached through `Engine`.
pub struct Core {
    /// Creates Redis connections (with connect timeouts).
    pool: Pool,
    /// The multiplexed connections in use, `pool_size` of them; an empty
    /// slot is filled from the pool on first use. A std lock: held only to
    /// clone or replace a handle, never across an await.
    slots: Vec<RwLock<Option<MultiplexedConnection>>>,
    /// Round-robin position over `slots`.
    next_slot: AtomicUsize,
    /// Key names for this store.
    keys: Keys,
    settings: EngineSettings,
    /// Added to Redis TIME by every script. Always 0 in production; tests
    /// move it forward to make time pass without sleeping.
    clock_offset_ms: AtomicI64,
    /// Whether Redis is known to hold this store (its generation marker was
    /// seen). False from start until checked, and from the moment a script
    /// finds a partition without its marker until the rebuild is done; while
    /// false every call answers UNAVAILABLE instead of acting on an empty Redis.
    ready: AtomicBool,
    /// Wakes the rebuild watcher when a script finds a missing marker.
    lost: tokio::sync::Notify,
    /// Where script latency and errors are counted (none in bare tests).
    metrics: Option<Arc<Metrics>>,
    /// Reserve calls waiting for a script call (see batch.rs).
    pub(super) reserve_queue: std::sync::Mutex<ReserveQueue>,
    /// Created-at and partitions of orders this replica saw lately, so that a
    /// transition skips reading the header (see order_cache.rs).
    orders: OrderCache,
}

/// What one partition gets back from Postgres in a rebuild.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionRestore {
    /// (sku, JSON levels record) for every catalog SKU of the partition.
    pub skus: Vec<(String, String)>,
    /// (order id, JSON hold, expiry in ms when uncommitted).
    pub holds: Vec<(String, String, Option<i64>)>,
    /// (operation id, forget-at in ms) still remembered.
    pub ops: Vec<(String, i64)>,
    /// Order headers whose id lives in this partition.
    pub headers: Vec<HeaderRestore>,
}

/// One order header to restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderRestore {
    /// The order id.
    pub order_id: String,
    /// Hash fields as the scripts write them (st, ca, ea, ch, rr, n, s1, l1, q1, ...).
    pub fields: Vec<(String, String)>,
    /// Time to live in ms; 0 for none (committed orders do not expire).
    pub ttl_ms: i64,
}

/// The hash field of each partition's lvl hash that holds the generation
/// marker (see common.lua).
const GEN_FIELD: &str = "#gen";

/// Orders per generation of the order cache (two generations are kept):
/// about 100 bytes each, so at most ~10 MB.
const ORDER_CACHE_CAPACITY: usize = 50_000;

/// Items per restore call, so that no single script blocks Redis for long.
const RESTORE_CHUNK: usize = 500;

impl Engine {
    /// An engine for the Redis at `url`. Connects lazily: call `ping` to check.
    pub fn new(url: &str, keys: Keys, settings: EngineSettings) -> Result<Self, EngineError> {
        let conn_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(settings.call_timeout))
            .set_response_timeout(Some(settings.call_timeout));
        let manager = Manager::new_with_config(url, conn_config)
            .map_err(|e| EngineError::Unavailable(format!("bad redis url: {e}")))?;
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .wait_timeout(Some(settings.call_timeout))
            .create_timeout(Some(settings.call_timeout))
            .recycle_timeout(Some(settings.call_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| EngineError::Unavailable(e.to_string()))?;
        let slots = (0..settings.pool_size.max(1)).map(|_| RwLock::new(None)).collect();
        let core = Core {
            pool,
            slots,
            next_slot: AtomicUsize::new(0),
            keys,
            settings,
            clock_offset_ms: AtomicI64::new(0),
            ready: AtomicBool::new(false),
            lost: tokio::sync::Notify::new(),
            metrics: None,
            reserve_queue: std::sync::Mutex::new(ReserveQueue::default()),
            orders: OrderCache::new(ORDER_CACHE_CAPACITY),
        };
        Ok(Self { core: Arc::new(core) })
    }

    /// Counts script latency and errors in `metrics`. Call before sharing.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        match Arc::get_mut(&mut self.core) {
            Some(core) => core.metrics = Some(metrics),
            None => tracing::error!("with_metrics on an engine already in use: metrics not counted"),
        }
        self
    }

    /// Test hook: moves the engine's clock forward (Redis TIME + offset).
    pub fn advance_clock(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.clock_offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Core {
    /// Where this engine counts (none in bare tests).
    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.as_ref()
    }

    /// The settings this engine runs with.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// The key builder of this store.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    fn offset(&self) -> i64 {
        self.clock_offset_ms.load(Ordering::SeqCst)
    }

    /// Runs `f` on a pooled connection within the call deadline.
    async fn with_conn<T, F>(&self, f: F) -> Result<T, EngineError>
    where
        F: AsyncFnOnce(&mut MultiplexedConnection) -> Result<T, EngineError>,
    {
        let deadline = self.settings.call_timeout;
        tokio::time::timeout(deadline, async {
            let (slot, mut conn) = self.slot_connection().await?;
            let result = f(&mut conn).await;
            if let Err(EngineError::Unavailable(_)) = &result {
                // The connection may be dead: the next call through this
                // slot gets a fresh one from the pool.
                self.discard(slot);
            }
            result
        })
        .await
        .map_err(|_| EngineError::Timeout(deadline))?
    }

    /// A connection for one call. Connections are multiplexed, so concurrent
    /// calls share a few of them, chosen round-robin. They are taken out of
    /// the pool once and kept: checking one out per call would cost a PING
    /// round trip each time (deadpool's recycle check).
    async fn slot_connection(&self) -> Result<(usize, MultiplexedConnection), EngineError> {
        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let cached = self.slots[slot].read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(conn) = cached {
            return Ok((slot, conn));
        }
        let conn = deadpool_redis::Connection::take(self.pool.get().await?);
        *self.slots[slot].write().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
        Ok((slot, conn))
    }

    fn discard(&self, slot: usize) {
        *self.slots[slot].write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Whether Redis is known to hold the store (see `ready`).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Records that Redis does (or does not) hold the store.
    pub fn set_ready(&self, ready: bool) {
        let was = self.ready.swap(ready, Ordering::SeqCst);
        if was && !ready {
            tracing::error!("redis lost the store (generation marker missing): refusing calls until rebuilt");
            self.lost.notify_one();
        }
    }

    /// Resolves when a call finds that Redis lost the store.
    pub async fn lost(&self) {
        self.lost.notified().await
    }

    pub(super) fn unavailable_while_rebuilding() -> EngineError {
        EngineError::Unavailable("redis is being rebuilt from postgres".into())
    }

    /// Distinct partitions of these SKUs in first-seen order, and the keys of
    /// each (five per partition, as the scripts expect).
    pub(super) fn partition_groups<'a>(&self, skus: impl Iterator<Item = &'a str>) -> (Vec<u32>, Vec<String>) {
        let parts = self.partitions_of(skus);
        let keys = self.partition_keys(&parts);
        (parts, keys)
    }

    /// The partitions of these SKUs, each once, in first-seen order.
    fn partitions_of<'a>(&self, skus: impl Iterator<Item = &'a str>) -> Vec<u32> {
        let mut parts: Vec<u32> = Vec::new();
        for s in skus {
            let p = self.keys.partition_of(s);
            if !parts.contains(&p) {
                parts.push(p);
            }
        }
        parts
    }

    /// The five keys of each partition, in order.
    fn partition_keys(&self, parts: &[u32]) -> Vec<String> {
        parts.iter().flat_map(|p| self.keys.partition(*p).all().map(str::to_owned)).collect()
    }

    /// Notes an order's created-at and partitions for its next transition
    /// (only while it holds stock: an ended order has none to come).
    pub(super) fn remember(&self, res: &Reservation) {
        if !res.status.holds_stock() {
            return;
        }
        let partitions = self.partitions_of(res.lines.iter().map(|l| l.sku.as_str()));
        self.orders.insert(&res.order_id, KnownOrder { created_at_ms: to_millis(res.created_at), partitions });
    }

    /// Runs a script once the store is known to be in Redis; a NOGEN answer
    /// (a partition without its marker) turns into UNAVAILABLE and wakes the
    /// rebuild.
    pub(super) async fn run(
        &self,
        script: &NamedScript,
        keys: &[String],
        nparts: usize,
        args: &[String],
    ) -> Result<Value, EngineError> {
        if !self.is_ready() {
            return Err(Self::unavailable_while_rebuilding());
        }
        let v = self.run_unguarded(script, keys, nparts, args).await?;
        let nogen = match &v {
            Value::Int(-2) => true,
            Value::Array(items) => matches!(items.first(), Some(Value::BulkString(b)) if b == b"NOGEN"),
            _ => false,
        };
        if nogen {
            self.set_ready(false);
            return Err(Self::unavailable_while_rebuilding());
        }
        Ok(v)
    }

    /// Runs a script with its keys; `args` follow the three common arguments.
    pub(super) async fn run_unguarded(
        &self,
        script: &NamedScript,
        keys: &[String],
        nparts: usize,
        args: &[String],
    ) -> Result<Value, EngineError> {
        let started = std::time::Instant::now();
        let mut inv = script.script.prepare_invoke();
        for k in keys {
            inv.key(k);
        }
        inv.arg(self.offset()).arg(self.settings.expiry_batch).arg(nparts);
        for a in args {
            inv.arg(a);
        }
        let result = self.with_conn(async |c| Ok(inv.invoke_async::<Value>(c).await?)).await;
        if let Some(m) = &self.metrics {
            m.script_duration.with_label_values(&[script.name]).observe(started.elapsed().as_secs_f64());
            if result.is_err() {
                m.script_errors.with_label_values(&[script.name]).inc();
            }
        }
        result
    }
}

impl Engine {
    /// A pooled connection for stream upkeep and plain reads, within the call
    /// deadline. Never for changing a stock number: that is what scripts are for.
    pub async fn connection(&self) -> Result<MultiplexedConnection, EngineError> {
        let deadline = self.settings.call_timeout;
        let (_, conn) = tokio::time::timeout(deadline, self.slot_connection())
            .await
            .map_err(|_| EngineError::Timeout(deadline))??;
        Ok(conn)
    }

    /// Uncommitted holds in all partitions (their expiry indexes' sizes).
    pub async fn active_holds(&self) -> Result<u64, EngineError> {
        let mut pipe = redis::pipe();
        for p in 0..self.keys.partitions() {
            pipe.cmd("ZCARD").arg(&self.keys.partition(p).exp);
        }
        let sizes: Vec<u64> = self.with_conn(async |c| Ok(pipe.query_async(c).await?)).await?;
        Ok(sizes.into_iter().sum())
    }

    /// Entries in each partition's event stream (not yet reconciled and
    /// trimmed), by partition.
    pub async fn stream_lengths(&self) -> Result<Vec<u64>, EngineError> {
        let mut pipe = redis::pipe();
        for p in 0..self.keys.partitions() {
            pipe.cmd("XLEN").arg(&self.keys.partition(p).ev);
        }
        self.with_conn(async |c| Ok(pipe.query_async(c).await?)).await
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<(), EngineError> {
        self.with_conn(async |c| {
            let pong: String = redis::cmd("PING").query_async(c).await?;
            if pong == "PONG" { Ok(()) } else { Err(EngineError::Unavailable(format!("PING answered {pong}"))) }
        })
        .await
    }

    /// Holds every line or none (see reserve.lua). `allocation_order` lists
    /// locations highest priority first, for lines without a location.
    /// Concurrent calls are coalesced into one script call (see batch.rs);
    /// each order is still all-or-nothing on its own.
    pub async fn reserve(
        &self,
        req: &ReserveRequest,
        allocation_order: &[LocationId],
    ) -> Result<ReserveOutcome, EngineError> {
        Core::reserve(&self.core, req, allocation_order).await
    }

    /// The reservation of an order as it stands.
    pub async fn get_reservation(&self, order: &OrderId) -> Result<Reservation, EngineError> {
        let mut keys = vec![self.keys.order(order.as_str())];
        keys.extend(self.keys.partition(self.keys.partition_of(order.as_str())).all().map(str::to_owned));
        let v = self.run(&SCRIPTS.get_order, &keys, 1, &[]).await?;
        let mut r = Reply::new("get_order", v)?;
        match r.string()?.as_str() {
            "OK" => {
                let res = r.reservation(order.as_str())?;
                self.remember(&res);
                Ok(res)
            }
            "NOTFOUND" => Err(EngineError::ReservationNotFound(order.to_string())),
            other => Err(EngineError::Protocol { script: "get_order", detail: format!("tag {other:?}") }),
        }
    }

    /// Moves the expiry of an active reservation to now + ttl.
    pub async fn extend(&self, order: &OrderId, ttl: Ttl) -> Result<Reservation, EngineError> {
        let extra = [millis(self.settings.tombstone).to_string(), ttl.as_millis().to_string()];
        self.transition(Transition::Extend, order, &extra).await
    }

    /// Picking started: reserved -> committed. Committing twice is a no-op.
    pub async fn commit(&self, order: &OrderId) -> Result<Reservation, EngineError> {
        self.transition(Transition::Commit, order, &[]).await
    }

    /// Shipped: on_hand drops with committed (or reserved). Twice is a no-op.
    pub async fn fulfill(&self, order: &OrderId) -> Result<Reservation, EngineError> {
        let extra = [millis(self.settings.tombstone).to_string()];
        self.transition(Transition::Fulfill, order, &extra).await
    }

    /// Cancelled: the held stock returns. Twice (or after expiry) is a no-op.
    pub async fn release(&self, order: &OrderId, reason: &ReleaseReason) -> Result<Reservation, EngineError> {
        let extra = [millis(self.settings.tombstone).to_string(), reason.as_str().to_owned()];
        self.transition(Transition::Release, order, &extra).await
    }

    /// Runs the transition on the order's partitions, guarded by the
    /// header's created-at. Both come from what this replica last saw of the
    /// order (order_cache.rs), else from reading the header; a header
    /// replaced meanwhile (the hint was stale, or a tombstone lapsed) answers
    /// STALE and is read again.
    async fn transition(&self, t: Transition, order: &OrderId, extra: &[String]) -> Result<Reservation, EngineError> {
        let mut hint = self.orders.get(order.as_str());
        for _ in 0..3 {
            let known = match hint.take() {
                Some(k) => k,
                None => {
                    let current = self.get_reservation(order).await?;
                    let partitions = self.partitions_of(current.lines.iter().map(|l| l.sku.as_str()));
                    KnownOrder { created_at_ms: to_millis(current.created_at), partitions }
                }
            };
            let mut keys = Vec::with_capacity(1 + 5 * known.partitions.len());
            keys.push(self.keys.order(order.as_str()));
            keys.extend(self.partition_keys(&known.partitions));
            let mut args = vec![order.as_str().to_owned(), known.created_at_ms.to_string()];
            args.extend_from_slice(extra);
            let v = self.run(t.script(), &keys, known.partitions.len(), &args).await?;
            let mut r = Reply::new(t.name(), v)?;
            match r.string()?.as_str() {
                "OK" | "NOOP" => {
                    let res = r.reservation(order.as_str())?;
                    if res.status.holds_stock() {
                        self.orders.insert(order.as_str(), known);
                    } else {
                        // Ended: only a late retry would come back.
                        self.orders.remove(order.as_str());
                    }
                    return Ok(res);
                }
                "STATE" => {
                    let res = r.reservation(order.as_str())?;
                    return Err(EngineError::FailedPrecondition(format!(
                        "cannot {} order {order}: reservation is {}",
                        t.name(),
                        status_word(res.status)
                    )));
                }
                "NOTFOUND" => {
                    self.orders.remove(order.as_str());
                    return Err(EngineError::ReservationNotFound(order.to_string()));
                }
                "STALE" => {
                    self.orders.remove(order.as_str());
                    continue;
                }
                other => {
                    return Err(EngineError::Protocol { script: t.name(), detail: format!("tag {other:?}") });
                }
            }
        }
        Err(EngineError::Unavailable(format!("order {order} kept changing under {}", t.name())))
    }

    /// The levels of each SKU (all locations, or the one given), in the order asked.
    pub async fn levels(&self, skus: &[Sku], location: Option<&LocationId>) -> Result<Vec<SkuLevels>, EngineError> {
        if !self.is_ready() {
            return Err(Core::unavailable_while_rebuilding());
        }
        // Plain reads (no script): the levels, then each partition's marker,
        // so that a wiped Redis is never read as "no such SKU".
        let (parts, _) = self.partition_groups(skus.iter().map(Sku::as_str));
        let mut pipe = redis::pipe();
        for s in skus {
            pipe.cmd("HGET").arg(&self.keys.partition(self.keys.partition_of(s.as_str())).lvl).arg(s.as_str());
        }
        for p in &parts {
            pipe.cmd("HEXISTS").arg(&self.keys.partition(*p).lvl).arg(GEN_FIELD);
        }
        let (raw, markers): (Vec<Option<Vec<u8>>>, Vec<bool>) = self
            .with_conn(async |c| {
                let mut v: Vec<Value> = pipe.query_async(c).await?;
                let markers = v.split_off(skus.len());
                let bad = |e: redis::ParsingError| EngineError::Protocol { script: "levels", detail: e.to_string() };
                let raw = v.into_iter().map(redis::from_redis_value).collect::<Result<_, _>>().map_err(bad)?;
                let markers =
                    markers.into_iter().map(redis::from_redis_value).collect::<Result<_, _>>().map_err(bad)?;
                Ok((raw, markers))
            })
            .await?;
        if markers.iter().any(|m| !m) {
            self.set_ready(false);
            return Err(Core::unavailable_while_rebuilding());
        }
        skus.iter()
            .zip(raw)
            .map(|(sku, raw)| {
                let Some(raw) = raw else {
                    return Ok(SkuLevels { sku: sku.to_string(), known: false, stop_sell: false, locations: vec![] });
                };
                let rec: SkuRecord = rmp_serde::from_slice(&raw)
                    .map_err(|e| EngineError::Protocol { script: "levels", detail: format!("{sku}: {e}") })?;
                let everywhere = rec.stop == 1;
                let stops = rec.s.into_map();
                let mut levels = rec.l.into_map();
                // A location stopped before it ever held the SKU is listed too,
                // at zero, so that its stop shows.
                for loc in stops.keys() {
                    levels.entry(loc.clone()).or_insert([0; 4]);
                }
                let stopped = |loc: &str| everywhere || stops.contains_key(loc);
                let stop_sell = everywhere || (!levels.is_empty() && levels.keys().all(|loc| stopped(loc)));
                let locations = levels
                    .into_iter()
                    .filter(|(loc, _)| location.is_none_or(|want| want.as_str() == loc))
                    .map(|(location_id, [on_hand, reserved, committed, in_transit])| LocationLevels {
                        stop_sell: stopped(&location_id),
                        location_id,
                        levels: Levels { on_hand, reserved, committed, in_transit },
                    })
                    .collect();
                Ok(SkuLevels { sku: sku.to_string(), known: true, stop_sell, locations })
            })
            .collect()
    }

    /// A physical change to on_hand, applied once per operation id.
    pub async fn adjust(
        &self,
        sku: &Sku,
        location: &LocationId,
        change: StockChange,
        op: &OperationId,
        reason: &str,
    ) -> Result<Adjusted, EngineError> {
        let (mode, value, field) = match change {
            StockChange::Delta(d) => ("delta", d, "delta"),
            StockChange::Set(v) => ("set", v, "on_hand"),
        };
        // Bounded here as well as at the edge: every caller (the import, the
        // local mode, tests) goes through this, and the script's arithmetic
        // is only exact for numbers well inside 2^53. (A zero delta, which
        // the API refuses as pointless, is harmless here.)
        let parsed = match change {
            StockChange::Delta(0) => Ok(()),
            StockChange::Delta(d) => StockDelta::parse(d).map(|_| ()),
            StockChange::Set(v) => OnHand::parse(v).map(|_| ()),
        };
        parsed.map_err(|e| EngineError::OutOfRange { field, detail: e.to_string() })?;
        let keys = self.single_partition(sku);
        let args = [
            sku.to_string(),
            location.to_string(),
            mode.to_owned(),
            value.to_string(),
            op.to_string(),
            reason.to_owned(),
            millis(self.settings.operation_retention).to_string(),
            Keys::operation_member(op.as_str()),
        ];
        let v = self.run(&SCRIPTS.adjust, &keys, 1, &args).await?;
        let mut r = Reply::new("adjust", v)?;
        let tag = r.string()?;
        let levels = Levels { on_hand: r.int()?, reserved: r.int()?, committed: r.int()?, in_transit: r.int()? };
        let delta = r.int()?;
        match tag.as_str() {
            "OK" => Ok(Adjusted { levels, delta, replayed: false }),
            "DUP" => Ok(Adjusted { levels, delta: 0, replayed: true }),
            "UNKNOWN" => Err(EngineError::UnknownSku(sku.to_string())),
            "RANGE" => Err(EngineError::OutOfRange {
                field,
                detail: format!(
                    "would take on_hand from {} to {}, outside -{MAX_LEVEL}..={MAX_LEVEL}",
                    levels.on_hand,
                    if mode == "set" { value } else { levels.on_hand.saturating_add(value) }
                ),
            }),
            other => Err(EngineError::Protocol { script: "adjust", detail: format!("tag {other:?}") }),
        }
    }

    /// Makes a catalog SKU known to the engine. Returns whether it was new.
    pub async fn register_sku(&self, sku: &Sku) -> Result<bool, EngineError> {
        let keys = self.single_partition(sku);
        let v = self.run(&SCRIPTS.register_sku, &keys, 1, &[sku.to_string()]).await?;
        Ok(matches!(v, Value::Int(1)))
    }

    /// Stops (or resumes) selling a SKU everywhere. Returns whether the flag
    /// changed.
    pub async fn set_stop_sell(&self, sku: &Sku, stop: bool, op: &OperationId) -> Result<bool, EngineError> {
        self.stop_sell(sku, None, stop, op).await
    }

    /// Stops (or resumes) selling a SKU at one location: allocation skips
    /// it, and a line only it could fill is refused as STOP_SELL. Returns
    /// whether the flag changed. (A count over the stop gate sets it itself;
    /// see `count`.)
    pub async fn set_location_stop_sell(
        &self,
        sku: &Sku,
        location: &LocationId,
        stop: bool,
        op: &OperationId,
    ) -> Result<bool, EngineError> {
        self.stop_sell(sku, Some(location), stop, op).await
    }

    async fn stop_sell(
        &self,
        sku: &Sku,
        location: Option<&LocationId>,
        stop: bool,
        op: &OperationId,
    ) -> Result<bool, EngineError> {
        let keys = self.single_partition(sku);
        let args = [
            sku.to_string(),
            if stop { "1" } else { "0" }.to_owned(),
            op.to_string(),
            location.map(LocationId::to_string).unwrap_or_default(),
        ];
        match self.run(&SCRIPTS.set_stop_sell, &keys, 1, &args).await? {
            Value::Int(-1) => Err(EngineError::UnknownSku(sku.to_string())),
            Value::Int(n) => Ok(n == 1),
            other => Err(EngineError::Protocol { script: "set_stop_sell", detail: format!("{other:?}") }),
        }
    }

    /// Partitions whose earliest uncommitted hold has expired (one round trip).
    pub async fn partitions_due(&self) -> Result<Vec<u32>, EngineError> {
        let n = self.keys.partitions();
        let mut pipe = redis::pipe();
        pipe.cmd("TIME");
        for p in 0..n {
            pipe.cmd("ZRANGE").arg(&self.keys.partition(p).exp).arg(0).arg(0).arg("WITHSCORES");
        }
        let offset = self.offset();
        let (time, firsts): (RedisTime, Vec<FirstExpiry>) = self
            .with_conn(async |c| {
                let mut v: Vec<Value> = pipe.query_async(c).await?;
                let firsts = v.split_off(1);
                let bad = |e: redis::ParsingError| EngineError::Protocol { script: "sweep", detail: e.to_string() };
                let time = redis::from_redis_value(v.remove(0)).map_err(bad)?;
                let firsts = firsts.into_iter().map(redis::from_redis_value).collect::<Result<_, _>>().map_err(bad)?;
                Ok((time, firsts))
            })
            .await?;
        let secs: i64 = time.0.parse().unwrap_or(0);
        let micros: i64 = time.1.parse().unwrap_or(0);
        let now = secs * 1000 + micros / 1000 + offset;
        Ok(firsts
            .into_iter()
            .enumerate()
            .filter(|(_, first)| first.first().is_some_and(|(_, score)| *score <= now as f64))
            .filter_map(|(p, _)| u32::try_from(p).ok())
            .collect())
    }

    /// Releases up to one batch of expired holds in partition `p`.
    pub async fn expire_partition(&self, p: u32) -> Result<u32, EngineError> {
        let keys = self.keys.partition(p).all().map(str::to_owned);
        match self.run(&SCRIPTS.expire, &keys, 1, &[]).await? {
            Value::Int(n) => Ok(u32::try_from(n).unwrap_or(0)),
            other => Err(EngineError::Protocol { script: "expire", detail: format!("{other:?}") }),
        }
    }

    /// The generation id in Redis, if the store is there.
    pub async fn generation(&self) -> Result<Option<String>, EngineError> {
        let key = self.keys.generation();
        self.with_conn(async |c| Ok(redis::cmd("GET").arg(&key).query_async(c).await?)).await
    }

    /// Writes the generation marker (after every partition is restored).
    pub async fn set_generation(&self, generation: &str) -> Result<(), EngineError> {
        let key = self.keys.generation();
        self.with_conn(async |c| Ok(redis::cmd("SET").arg(&key).arg(generation).query_async(c).await?)).await
    }

    /// Takes the rebuild lock for `ttl`; false when another process holds it.
    pub async fn try_lock_rebuild(&self, owner: &str, ttl: Duration) -> Result<bool, EngineError> {
        let key = self.keys.rebuild_lock();
        let ms = millis(ttl);
        self.with_conn(async |c| {
            let v: Option<String> =
                redis::cmd("SET").arg(&key).arg(owner).arg("NX").arg("PX").arg(ms).query_async(c).await?;
            Ok(v.is_some())
        })
        .await
    }

    /// Drops the rebuild lock.
    pub async fn unlock_rebuild(&self) -> Result<(), EngineError> {
        let key = self.keys.rebuild_lock();
        self.with_conn(async |c| Ok(redis::cmd("DEL").arg(&key).query_async(c).await?)).await
    }

    /// Restores one partition from Postgres data (see restore.lua), in
    /// chunks; the marker is written by the last chunk. Returns false when the
    /// partition already had a marker (nothing written).
    pub async fn restore_partition(
        &self,
        p: u32,
        generation: &str,
        data: &PartitionRestore,
    ) -> Result<bool, EngineError> {
        let part_keys: Vec<String> = self.keys.partition(p).all().map(str::to_owned).into();
        let total = data.skus.len() + data.holds.len() + data.ops.len() + data.headers.len();
        let chunks = total.div_ceil(RESTORE_CHUNK).max(1);
        let (mut s, mut h, mut o, mut hd) = (data.skus.iter(), data.holds.iter(), data.ops.iter(), data.headers.iter());
        for chunk in 0..chunks {
            let mut budget = RESTORE_CHUNK;
            let mut take = |n: usize| {
                let t = n.min(budget);
                budget -= t;
                t
            };
            let skus: Vec<_> = s.by_ref().take(take(data.skus.len())).collect();
            let holds: Vec<_> = h.by_ref().take(take(data.holds.len())).collect();
            let ops: Vec<_> = o.by_ref().take(take(data.ops.len())).collect();
            let headers: Vec<_> = hd.by_ref().take(take(data.headers.len())).collect();
            let mut keys = part_keys.clone();
            keys.extend(headers.iter().map(|x| self.keys.order(&x.order_id)));
            let last = chunk + 1 == chunks;
            let mut args = vec![generation.to_owned(), if last { "1" } else { "0" }.to_owned(), skus.len().to_string()];
            for (sku, rec) in &skus {
                args.extend([sku.clone(), rec.clone()]);
            }
            args.push(holds.len().to_string());
            for (order, hold, ea) in &holds {
                args.extend([order.clone(), hold.clone(), ea.map(|e| e.to_string()).unwrap_or_default()]);
            }
            args.push(ops.len().to_string());
            for (op, at) in &ops {
                args.extend([Keys::operation_member(op), at.to_string()]);
            }
            for x in &headers {
                args.push(x.fields.len().to_string());
                for (f, v) in &x.fields {
                    args.extend([f.clone(), v.clone()]);
                }
                args.push(x.ttl_ms.to_string());
            }
            match self.run_unguarded(&SCRIPTS.restore, &keys, 1, &args).await? {
                Value::Int(1) => {}
                Value::Int(0) => return Ok(false),
                other => return Err(EngineError::Protocol { script: "restore", detail: format!("{other:?}") }),
            }
        }
        Ok(true)
    }

    pub(super) fn single_partition(&self, sku: &Sku) -> [String; 5] {
        self.keys.partition(self.keys.partition_of(sku.as_str())).all().map(str::to_owned)
    }
}

/// Redis TIME: seconds and microseconds, as text.
type RedisTime = (String, String);
/// The earliest (member, score) of an expiry index, or nothing.
type FirstExpiry = Vec<(String, f64)>;

/// The transitions that read the header first.
#[derive(Debug, Clone, Copy)]
enum Transition {
    Extend,
    Commit,
    Fulfill,
    Release,
}

impl Transition {
    fn script(self) -> &'static NamedScript {
        match self {
            Self::Extend => &SCRIPTS.extend,
            Self::Commit => &SCRIPTS.commit,
            Self::Fulfill => &SCRIPTS.fulfill,
            Self::Release => &SCRIPTS.release,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Extend => "extend",
            Self::Commit => "commit",
            Self::Fulfill => "fulfill",
            Self::Release => "release",
        }
    }
}

pub(super) fn status_word(s: ReservationStatus) -> &'static str {
    match s {
        ReservationStatus::Active => "active",
        ReservationStatus::Committed => "committed",
        ReservationStatus::Fulfilled => "fulfilled",
        ReservationStatus::Released => "released",
        ReservationStatus::Expired => "expired",
    }
}

/// A duration in whole milliseconds, as the scripts take it (saturating).
pub(super) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn to_millis(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH).map(millis).unwrap_or(0)
}
