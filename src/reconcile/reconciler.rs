//! Reads the partitions' event streams through a consumer group, applies
//! each batch to Postgres, then acknowledges and trims.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::Value;
use redis::aio::ConnectionLike;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::event::{Event, EventError, StreamPos};
use super::leader::LeaderLock;
use super::quarantine::{self, Refused};
use super::writer::{Applied, Isolated, WriteError, apply_batch, isolate};
use crate::reservation::{Engine, EngineError};

/// The consumer group every stockd replica shares.
pub const GROUP: &str = "stockd";
/// The consumer name: one leader at a time reads, and a new leader must see
/// the entries its predecessor read but did not acknowledge.
pub const CONSUMER: &str = "reconciler";

/// Tunables, from `Config`.
#[derive(Debug, Clone)]
pub struct ReconcilerSettings {
    /// Time between reads when the streams are idle (250 ms).
    pub interval: Duration,
    /// About the most events read per batch, over all partitions: split
    /// evenly among the partitions whose streams have entries (at least
    /// MIN_PER_PARTITION each), so that one hot partition gets the whole
    /// batch, and asked for in entries by the events an entry held last
    /// time (see `entries_to_ask`). Under a backlog the budget grows, up to
    /// MAX_GROWTH times this (see `next_budget`); one partition is never
    /// asked for more than this.
    pub batch: usize,
    /// Lag above which a warning is logged.
    pub lag_alert: Duration,
}

/// Counters the metrics endpoint and `/readyz` show. (Lag and backlog are
/// read from the streams when asked: see `backlog`.)
#[derive(Debug, Default)]
pub struct ReconcileStats {
    /// Events written to Postgres (ledger rows), in total.
    pub events: AtomicU64,
    /// Expiry events written to the ledger, in total.
    pub expiries: AtomicU64,
    /// Batches that failed and will be retried.
    pub failures: AtomicU64,
    /// Whether this process leads the reconciler now.
    pub leading: AtomicBool,
    /// SKU-locations where the last drift check found Redis, the snapshot
    /// and the ledger disagreeing.
    pub drift: AtomicU64,
    /// Unresolved events in quarantine, as last counted (every few seconds,
    /// by every replica that runs the reconciler, leading or not).
    pub quarantined: AtomicU64,
    /// Rounds failed in a row while leading (0 after one that went in, and
    /// while not leading): while it grows, nothing reaches Postgres.
    pub consecutive_failures: AtomicU64,
    /// Why the last round failed (kept after a success; shown while
    /// `consecutive_failures` is above 0).
    pub last_error: Mutex<String>,
}

impl ReconcileStats {
    /// Why the reconciler fails now: how many rounds in a row and the last
    /// error; None while it is not failing.
    pub fn failing(&self) -> Option<(u64, String)> {
        let n = self.consecutive_failures.load(Ordering::Relaxed);
        (n > 0).then(|| (n, self.last_error.lock().map(|e| e.clone()).unwrap_or_default()))
    }
}

/// Entries read from the streams, not yet acknowledged.
#[derive(Debug, Default)]
pub struct Batch {
    /// Parsed events in stream order per partition (an entry holds one or
    /// more: see `StreamPos::idx`).
    pub events: Vec<(StreamPos, Event)>,
    /// Entries that could not be parsed, and why (put in quarantine whole,
    /// acknowledged).
    pub unreadable: Vec<(StreamPos, EventError)>,
    /// Each partition's XREADGROUP reply as it came, so that an event is put
    /// in quarantine exactly as read. Kept, not copied: the events above own
    /// their strings, and the replies are dropped with the batch either way.
    pub replies: Vec<(u32, Value)>,
    /// The store generation in Redis when the batch was read.
    pub generation: String,
    /// Some partition gave as many entries as it was asked for: more may be
    /// waiting there, so the next batch is read at once.
    pub full: bool,
    /// Stream entries read (each holds one or more events).
    pub entries: usize,
}

impl Batch {
    /// Whether nothing was read.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.unreadable.is_empty()
    }

    fn last_per_partition(&self) -> HashMap<u32, StreamPos> {
        let mut last: HashMap<u32, StreamPos> = HashMap::new();
        for pos in self.events.iter().map(|(p, _)| p).chain(self.unreadable.iter().map(|(p, _)| p)) {
            let e = last.entry(pos.partition).or_insert(*pos);
            if *e < *pos {
                *e = *pos;
            }
        }
        last
    }

    /// The field-value list of the entry at `pos` as read; None when the
    /// batch does not hold its reply (a batch put together by hand).
    pub fn raw_entry(&self, pos: StreamPos) -> Option<Vec<Vec<u8>>> {
        let id = pos.id();
        let mut found = None;
        for (_, reply) in self.replies.iter().filter(|(p, _)| *p == pos.partition) {
            let _ = for_each_entry(reply, |entry, fields| {
                if found.is_none() && entry == id {
                    found = Some(fields.iter().map(raw_bytes).collect());
                }
            });
        }
        found
    }

    /// The fields of the one event at `pos` as read: its `v` field and
    /// value in an entry of packed events, or the whole entry in the older
    /// one-field-per-value form.
    pub fn raw_event(&self, pos: StreamPos) -> Option<Vec<Vec<u8>>> {
        let fields = self.raw_entry(pos)?;
        if fields.first().map(Vec::as_slice) != Some(b"v".as_slice()) {
            return Some(fields);
        }
        let at = usize::try_from(pos.idx).ok()?.checked_mul(2)?;
        fields.get(at..at + 2).map(<[Vec<u8>]>::to_vec)
    }
}

/// A reply value's bytes (a field or value of an entry is a bulk string).
fn raw_bytes(v: &Value) -> Vec<u8> {
    match v {
        Value::BulkString(b) => b.clone(),
        Value::SimpleString(s) => s.as_bytes().to_vec(),
        Value::Int(i) => i.to_string().into_bytes(),
        other => format!("{other:?}").into_bytes(),
    }
}

/// The reconciler of one store.
pub struct Reconciler {
    engine: Arc<Engine>,
    db: PgPool,
    settings: ReconcilerSettings,
    stats: Arc<ReconcileStats>,
    /// Whether entries read but not acknowledged may exist (at start, and
    /// after a failed batch): then they are read again before new ones.
    pending: bool,
    /// Events the next batch may read over all partitions (see `next_budget`).
    budget: usize,
    /// Events per stream entry in the last batch read (at least 1): a script
    /// call writes one entry per partition with all its events there, a
    /// dozen or more in a flash sale, so entries are asked for by the budget
    /// divided by this.
    events_per_entry: usize,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(0)).unwrap_or(0)
}

impl Reconciler {
    /// A reconciler for `engine`'s store writing to `db`.
    pub fn new(engine: Arc<Engine>, db: PgPool, settings: ReconcilerSettings, stats: Arc<ReconcileStats>) -> Self {
        let budget = settings.batch;
        Self { engine, db, settings, stats, pending: true, budget, events_per_entry: 1 }
    }

    /// Creates the consumer group on every partition's stream (and the
    /// stream itself) where missing. Safe to repeat.
    pub async fn ensure_groups(&self) -> Result<(), EngineError> {
        Self::create_groups(&self.engine).await
    }

    /// `ensure_groups` for any engine (the rebuild calls it before serving).
    pub async fn create_groups(engine: &Engine) -> Result<(), EngineError> {
        let keys = engine.keys();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for p in 0..keys.partitions() {
            pipe.cmd("XGROUP").arg("CREATE").arg(&keys.partition(p).ev).arg(GROUP).arg("0").arg("MKSTREAM");
        }
        // BUSYGROUP answers (group exists) are expected and ignored.
        let mut conn = engine.connection().await?;
        let _: Vec<redis::RedisResult<Value>> = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    /// Reads up to one batch per partition: the entries read before but not
    /// acknowledged when some may exist, else new ones. The batch carries the
    /// store generation it was read under; nothing is read while Redis has
    /// none (it is being rebuilt). Whether it came back full sets the next
    /// batch's budget (see `next_budget`).
    pub async fn read_batch(&mut self) -> Result<Batch, EngineError> {
        let Some(generation) = self.engine.generation().await? else { return Ok(Batch::default()) };
        let mut batch = self.read(if self.pending { "0" } else { ">" }).await?;
        if self.pending && batch.is_empty() {
            self.pending = false;
            batch = self.read(">").await?;
        }
        batch.generation = generation;
        self.budget = next_budget(self.budget, batch.full, self.settings.batch);
        if batch.entries > 0 {
            self.events_per_entry = (batch.events.len() + batch.unreadable.len()).div_ceil(batch.entries).max(1);
        }
        Ok(batch)
    }

    async fn read(&self, from: &str) -> Result<Batch, EngineError> {
        let keys = self.engine.keys();
        // Only streams with entries are read (acknowledged entries are
        // trimmed, so a stream's length is what is left to read, pending or
        // new), and they share the batch.
        let lens = self.engine.stream_lengths().await?;
        let active: Vec<u32> = (0..keys.partitions()).zip(&lens).filter(|(_, n)| **n > 0).map(|(p, _)| p).collect();
        if active.is_empty() {
            return Ok(Batch::default());
        }
        let count = entries_to_ask(self.budget, active.len(), self.settings.batch, self.events_per_entry);
        let mut conn = self.engine.connection().await?;
        let mut pipe = redis::pipe();
        for p in &active {
            pipe.cmd("XREADGROUP")
                .arg("GROUP")
                .arg(GROUP)
                .arg(CONSUMER)
                .arg("COUNT")
                .arg(count)
                .arg("STREAMS")
                .arg(&keys.partition(*p).ev)
                .arg(from);
        }
        // The replies as they came, rather than through query_async, which
        // walks every entry of every reply once more looking for an error
        // value (about 3% of stockd's instructions in a flash sale). Only a
        // reply as a whole can be an error here.
        let replies = conn.req_packed_commands(&pipe, 0, active.len()).await?;
        if let Some(e) = replies.iter().find_map(|r| match r {
            Value::ServerError(e) => Some(e),
            _ => None,
        }) {
            if e.code() == "NOGROUP" {
                drop(conn);
                // A wiped or new Redis: recreate the groups, read next time.
                self.ensure_groups().await?;
                return Ok(Batch::default());
            }
            return Err(redis::RedisError::from(e.clone()).into());
        }
        let mut batch = Batch::default();
        for (&p, reply) in active.iter().zip(replies) {
            let mut read = 0;
            for_each_entry(&reply, |id, fields| {
                read += 1;
                let Ok(pos) = StreamPos::parse(p, id) else {
                    tracing::error!(partition = p, id, "unreadable stream id");
                    return;
                };
                match parse_entry(fields) {
                    Ok(events) => batch.events.extend(
                        events.into_iter().enumerate().map(|(i, e)| (pos.at(u32::try_from(i).unwrap_or(u32::MAX)), e)),
                    ),
                    Err(e) => {
                        tracing::error!(partition = p, id, error = %e, "unreadable stream entry; it goes to quarantine");
                        batch.unreadable.push((pos, e));
                    }
                }
            })
            .map_err(|detail| EngineError::Protocol { script: "XREADGROUP", detail })?;
            batch.full |= read >= count;
            batch.entries += read;
            batch.replies.push((p, reply));
        }
        Ok(batch)
    }

    /// Writes a batch to Postgres: one transaction, unless Postgres refuses
    /// it for what it holds. Then it is written in parts (see `isolate`), the
    /// events refused on their own go to quarantine with their error, and
    /// so do the entries that could not be read; the batch can then be
    /// acknowledged like any other. An outage is an error: nothing is set
    /// apart, and the batch is read and written again later.
    pub async fn apply(&self, batch: &Batch) -> anyhow::Result<Applied> {
        let (mut applied, refused) = match apply_batch(&self.db, &batch.events, &batch.generation).await {
            Ok(applied) => (applied, Vec::new()),
            Err(e) if e.is_refusal() => {
                tracing::warn!(
                    error = %e.message(),
                    events = batch.events.len(),
                    "postgres refused a batch; writing it in parts to find the events it refuses"
                );
                let write =
                    |part: std::ops::Range<usize>| apply_batch(&self.db, &batch.events[part], &batch.generation);
                match isolate(batch.events.len(), e, write).await? {
                    Isolated::Written { applied, refused } => (applied, refused),
                    Isolated::Stale => (Applied { stale: true, ..Applied::default() }, Vec::new()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        if applied.stale {
            return Ok(applied);
        }
        if !refused.is_empty() || !batch.unreadable.is_empty() {
            applied.quarantined = self.quarantine(batch, &refused).await?;
        }
        self.stats.events.fetch_add(applied.ledger_rows, Ordering::Relaxed);
        self.stats.expiries.fetch_add(applied.expiries, Ordering::Relaxed);
        let oldest = batch
            .events
            .iter()
            .map(|(_, e)| match e {
                Event::Stock(s) => s.at_ms,
                Event::Extend { at_ms, .. } | Event::StopSell { at_ms, .. } => *at_ms,
            })
            .min();
        if let Some(oldest) = oldest {
            let lag = (now_ms() - oldest).max(0);
            if lag > i64::try_from(self.settings.lag_alert.as_millis()).unwrap_or(i64::MAX) {
                tracing::warn!(lag_ms = lag, "reconcile lag above the alert threshold");
            }
        }
        Ok(applied)
    }

    /// Puts the events of `batch` that Postgres `refused` (by index), and
    /// its unreadable entries, in quarantine; returns how many.
    async fn quarantine(&self, batch: &Batch, refused: &[(usize, WriteError)]) -> anyhow::Result<u64> {
        let mut rows: Vec<Refused> = Vec::with_capacity(refused.len() + batch.unreadable.len());
        for (i, e) in refused {
            let Some((pos, event)) = batch.events.get(*i) else { continue };
            rows.push(Refused {
                pos: *pos,
                raw: batch.raw_event(*pos).unwrap_or_default(),
                event: Some(event),
                error: e.message(),
                sqlstate: e.sqlstate(),
            });
        }
        for (pos, e) in &batch.unreadable {
            rows.push(Refused {
                pos: *pos,
                raw: batch.raw_entry(*pos).unwrap_or_default(),
                event: None,
                error: e.to_string(),
                sqlstate: None,
            });
        }
        for r in &rows {
            tracing::error!(
                partition = r.pos.partition,
                id = r.pos.id(),
                idx = r.pos.idx,
                error = %r.error,
                sqlstate = ?r.sqlstate,
                "an event goes to quarantine (see `stockd quarantine list`); the reconciler goes on"
            );
        }
        quarantine::record(&self.db, &rows, &batch.generation).await?;
        self.refresh_quarantined().await;
        Ok(rows.len() as u64)
    }

    /// Counts the unresolved quarantined events again for the metric and
    /// `/readyz` (an operator resolves them from another process). Postgres
    /// unreachable: the count stays as it was.
    pub async fn refresh_quarantined(&self) {
        match quarantine::unresolved_count(&self.db).await {
            Ok(n) => self.stats.quarantined.store(n, Ordering::Relaxed),
            Err(e) => tracing::debug!(error = %e, "cannot count the quarantine now"),
        }
    }

    /// Acknowledges a written batch and trims what it covered from the streams.
    pub async fn ack(&self, batch: &Batch) -> Result<(), EngineError> {
        let keys = self.engine.keys();
        let mut by_part: HashMap<u32, Vec<String>> = HashMap::new();
        // One id per entry: its first event stands for it.
        for pos in
            batch.events.iter().map(|(p, _)| p).chain(batch.unreadable.iter().map(|(p, _)| p)).filter(|p| p.idx == 0)
        {
            by_part.entry(pos.partition).or_default().push(pos.id());
        }
        let mut pipe = redis::pipe();
        for (p, ids) in &by_part {
            pipe.cmd("XACK").arg(&keys.partition(*p).ev).arg(GROUP).arg(ids).ignore();
        }
        for (p, last) in batch.last_per_partition() {
            // Entries up to the last acknowledged one are in Postgres.
            pipe.cmd("XTRIM").arg(&keys.partition(p).ev).arg("MINID").arg(last.next_id()).ignore();
        }
        let mut conn = self.engine.connection().await?;
        let _: () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    /// One round: read, write, acknowledge. Returns what was read: how many
    /// ledger rows were written, and whether more is waiting.
    pub async fn try_execute_task(&mut self) -> anyhow::Result<Round> {
        let result = self.round().await;
        match &result {
            Ok(_) => self.stats.consecutive_failures.store(0, Ordering::Relaxed),
            Err(e) => {
                if let Ok(mut last) = self.stats.last_error.lock() {
                    *last = format!("{e:#}");
                }
                self.stats.consecutive_failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    async fn round(&mut self) -> anyhow::Result<Round> {
        let batch = self.read_batch().await?;
        if batch.is_empty() {
            return Ok(Round::default());
        }
        let full = batch.full;
        let result = async {
            let applied = self.apply(&batch).await?;
            if applied.stale {
                // Read from a Redis that has since been rebuilt: its entries
                // are gone with it, and Postgres already has what it keeps.
                tracing::warn!(entries = batch.events.len(), "dropping a batch read before redis was rebuilt");
                self.pending = true;
                return anyhow::Ok(Round::default());
            }
            self.ack(&batch).await?;
            anyhow::Ok(Round { rows: applied.ledger_rows, full })
        }
        .await;
        if result.is_err() {
            // What was read stays pending and is read again first, in
            // batches of the configured size.
            self.pending = true;
            self.budget = self.settings.batch;
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Leads when it can (Postgres advisory lock) and reconciles until
    /// stopped; on errors (Postgres down) backs off and retries, while Redis
    /// keeps the backlog.
    pub async fn run_until_stopped(mut self, stop: CancellationToken) {
        let key = LeaderLock::key_for(self.engine.keys().prefix());
        let mut lock: Option<LeaderLock> = None;
        let mut backoff = self.settings.interval;
        let mut checked = Instant::now();
        let mut counted: Option<Instant> = None;
        let max_backoff = Duration::from_secs(5);
        loop {
            // Leading or not, so that every replica's metric and /readyz
            // show the quarantine, and a resolution shows within seconds.
            if counted.is_none_or(|at| at.elapsed() >= QUARANTINE_RECOUNT) {
                counted = Some(Instant::now());
                self.refresh_quarantined().await;
            }
            if lock.is_none() {
                match LeaderLock::try_acquire(&self.db, key).await {
                    Ok(Some(l)) => {
                        tracing::info!("reconciler: leading");
                        lock = Some(l);
                        self.stats.leading.store(true, Ordering::Relaxed);
                        self.pending = true;
                        if let Err(e) = self.ensure_groups().await {
                            tracing::warn!(error = %e, "reconciler: cannot create consumer groups yet");
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "reconciler: cannot reach postgres for the leader lock"),
                }
            }
            let wait = match &mut lock {
                None => {
                    // Failing is the leader's to report.
                    self.stats.consecutive_failures.store(0, Ordering::Relaxed);
                    Duration::from_secs(1)
                }
                Some(l) => match self.try_execute_task().await {
                    Ok(round) => {
                        backoff = self.settings.interval;
                        // Make sure the lock's own session is alive now and
                        // then, so two replicas never both think they lead.
                        if checked.elapsed() > Duration::from_secs(2) {
                            checked = Instant::now();
                            if !l.still_held().await {
                                tracing::warn!("reconciler: lost the leader lock");
                                lock = None;
                                self.stats.leading.store(false, Ordering::Relaxed);
                            }
                        }
                        next_read(round, &self.settings)
                    }
                    Err(e) => {
                        tracing::warn!(error = format!("{e:#}"), ?backoff, "reconcile failed; retrying");
                        let wait = backoff;
                        backoff = (backoff * 2).min(max_backoff);
                        if !l.still_held().await {
                            tracing::warn!("reconciler: lost the leader lock");
                            lock = None;
                            self.stats.leading.store(false, Ordering::Relaxed);
                        }
                        wait
                    }
                },
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        if let Some(l) = lock {
            l.release().await;
        }
        self.stats.leading.store(false, Ordering::Relaxed);
    }
}

/// What one round read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Ledger rows written.
    pub rows: u64,
    /// Some partition had at least as many entries as it was asked for.
    pub full: bool,
}

/// How often the unresolved quarantined events are counted again.
const QUARANTINE_RECOUNT: Duration = Duration::from_secs(5);

/// Fewest entries asked of one partition, however many share the batch.
const MIN_PER_PARTITION: usize = 16;

/// Most a batch's budget grows to under a backlog, in configured batches.
const MAX_GROWTH: usize = 8;

/// Entries asked of each of `active` partitions out of a budget of `budget`:
/// an even share, at least MIN_PER_PARTITION, and at most the configured
/// `batch` (Redis runs nothing else while it answers one XREADGROUP, so one
/// hot partition's read stays as short as the configured batch makes it).
fn per_partition(budget: usize, active: usize, batch: usize) -> usize {
    (budget / active.max(1)).clamp(MIN_PER_PARTITION.min(batch), batch.max(1))
}

/// Entries asked of each of `active` partitions: their share of the budget
/// (`per_partition`, in events) over the events an entry held last time, at
/// least one. A Postgres transaction then carries about the budget in
/// events however many a script call put in one entry.
fn entries_to_ask(budget: usize, active: usize, batch: usize, events_per_entry: usize) -> usize {
    (per_partition(budget, active, batch) / events_per_entry.max(1)).max(1)
}

/// The budget of the next batch after one that came back `full` or not.
/// Each round costs a fixed amount besides its events: one XLEN, XREADGROUP,
/// XACK and XTRIM per partition with entries, and a Postgres transaction.
/// With many partitions active, a budget of one configured batch gives each
/// only a few entries, and the reconciler fell behind a catalog load (lag
/// growing to seconds). So while rounds come back full the budget doubles,
/// up to MAX_GROWTH batches; the first round that is not full (the backlog
/// is gone) brings it back to one batch.
fn next_budget(budget: usize, full: bool, batch: usize) -> usize {
    if full { budget.saturating_mul(2).clamp(batch, batch.saturating_mul(MAX_GROWTH)) } else { batch }
}

/// How long to wait before the next read, after `round`: none when a
/// partition filled its share (a backlog to catch up on), a fifth of the
/// interval after a smaller batch (so that under steady traffic each
/// Postgres transaction carries many events instead of a few), the whole
/// interval when idle.
fn next_read(round: Round, settings: &ReconcilerSettings) -> Duration {
    if round.full {
        Duration::ZERO
    } else if round.rows > 0 {
        settings.interval / 5
    } else {
        settings.interval
    }
}

/// Calls `f(id, fields)` for each entry of one XREADGROUP reply, read in
/// place: `[[stream, [[id, [field, value, ...]], ...]]]` (or RESP3's map of
/// stream to entries), nil when there is nothing. An entry trimmed while
/// pending comes with nil fields: it is passed with none. (redis-rs's
/// StreamReadReply would first copy every entry into a map.)
fn for_each_entry(reply: &Value, mut f: impl FnMut(&str, &[Value])) -> Result<(), String> {
    let streams: Vec<&Value> = match reply {
        Value::Nil => return Ok(()),
        Value::Array(streams) => streams
            .iter()
            .map(|s| match s {
                Value::Array(kv) if kv.len() == 2 => Ok(&kv[1]),
                other => Err(format!("stream {other:?}")),
            })
            .collect::<Result<_, _>>()?,
        Value::Map(kvs) => kvs.iter().map(|(_, v)| v).collect(),
        other => return Err(format!("reply {other:?}")),
    };
    for entries in streams {
        let Value::Array(entries) = entries else { return Err(format!("entries {entries:?}")) };
        for entry in entries {
            let (id, fields) = match entry {
                Value::Array(parts) => match &parts[..] {
                    [Value::BulkString(id), Value::Array(fields)] => (id, &fields[..]),
                    [Value::BulkString(id), Value::Nil] => (id, &[][..]),
                    _ => return Err(format!("entry {entry:?}")),
                },
                other => return Err(format!("entry {other:?}")),
            };
            let id = std::str::from_utf8(id).map_err(|_| format!("stream id {id:?}"))?;
            f(id, fields);
        }
    }
    Ok(())
}

/// The events of an entry's field-value list: one packed field `v` per
/// event (several when a script call changed several SKU-locations of the
/// partition), or one event in the older one-field-per-value form.
pub(crate) fn parse_entry(fields: &[Value]) -> Result<Vec<Event>, EventError> {
    fn text(v: &Value) -> Option<&str> {
        match v {
            Value::BulkString(b) => std::str::from_utf8(b).ok(),
            Value::SimpleString(s) => Some(s.as_str()),
            _ => None,
        }
    }
    if let [k, _, ..] = fields
        && text(k) == Some("v")
    {
        return fields
            .chunks(2)
            .map(|kv| match kv {
                [k, v] if text(k) == Some("v") => {
                    Event::parse_packed(text(v).ok_or_else(|| EventError("field v is not text".into()))?)
                }
                _ => Err(EventError("an entry of packed events has a field other than v".into())),
            })
            .collect();
    }
    let map: HashMap<String, String> = fields
        .chunks(2)
        .filter_map(|kv| match kv {
            [k, v] => Some((text(k)?.to_owned(), text(v)?.to_owned())),
            _ => None,
        })
        .collect();
    Event::parse(&map).map(|e| vec![e])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn entry(id: &str, fields: &[&str]) -> Value {
        Value::Array(vec![bulk(id), Value::Array(fields.iter().map(|f| bulk(f)).collect())])
    }

    const PACKED: &str = "reserve\tA\tWH1\t0\t2\t0\t0\t10\t2\t0\t0\t1000\t2000\tweb\to-1\t\t";

    #[test]
    fn an_xreadgroup_reply_is_walked_in_place_in_either_protocol() {
        let entries = Value::Array(vec![entry("5-0", &["v", PACKED]), Value::Array(vec![bulk("6-0"), Value::Nil])]);
        let resp2 = Value::Array(vec![Value::Array(vec![bulk("p:ev"), entries.clone()])]);
        let resp3 = Value::Map(vec![(bulk("p:ev"), entries)]);
        for reply in [resp2, resp3] {
            let mut seen = Vec::new();
            for_each_entry(&reply, |id, fields| seen.push((id.to_owned(), fields.len()))).expect("walks");
            assert_eq!(seen, [("5-0".to_owned(), 2), ("6-0".to_owned(), 0)], "a trimmed entry has no fields");
        }
        let mut none = 0;
        for_each_entry(&Value::Nil, |_, _| none += 1).expect("nil: nothing to read");
        assert_eq!(none, 0);
        assert!(for_each_entry(&Value::Int(3), |_, _| {}).is_err());
        let no_fields = Value::Array(vec![Value::Array(vec![bulk("p:ev"), Value::Array(vec![entry("7-0", &[])])])]);
        assert!(for_each_entry(&no_fields, |_, _| {}).is_ok());
        let short = Value::Array(vec![Value::Array(vec![bulk("p:ev"), Value::Array(vec![bulk("7-0")])])]);
        assert!(for_each_entry(&short, |_, _| {}).is_err(), "an entry without its fields");
    }

    #[test]
    fn an_entry_parses_from_the_packed_field_or_the_field_per_value_form() {
        let packed = parse_entry(&[bulk("v"), bulk(PACKED)]).expect("packed");
        let fields = [
            "k", "reserve", "s", "A", "l", "WH1", "doh", "0", "drs", "2", "dcm", "0", "dit", "0", "oh", "10", "rs",
            "2", "cm", "0", "it", "0", "t", "1000", "e", "2000", "ch", "web", "o", "o-1",
        ];
        let old = parse_entry(&fields.iter().map(|f| bulk(f)).collect::<Vec<_>>()).expect("field per value");
        assert_eq!(packed, old);
        let [Event::Stock(e)] = &packed[..] else { panic!("one stock event") };
        assert_eq!(
            (e.kind.as_str(), e.deltas, e.levels, e.order_id.as_deref()),
            ("reserve", [0, 2, 0, 0], [10, 2, 0, 0], Some("o-1"))
        );
        assert!(parse_entry(&[]).is_err(), "a trimmed entry is unreadable");
        assert!(parse_entry(&[bulk("v"), Value::Int(1)]).is_err());
        assert!(parse_entry(&[bulk("v"), bulk("reserve\tA")]).is_err());
    }

    #[test]
    fn an_entry_of_a_script_call_holds_its_events_in_order() {
        const SECOND: &str = "reserve\tA\tWH1\t0\t1\t0\t0\t10\t3\t0\t0\t1000\t2000\tweb\to-2\t\t";
        let events = parse_entry(&[bulk("v"), bulk(PACKED), bulk("v"), bulk(SECOND)]).expect("two events");
        let orders: Vec<_> = events
            .iter()
            .map(|e| match e {
                Event::Stock(s) => s.order_id.clone(),
                _ => None,
            })
            .collect();
        assert_eq!(orders, [Some("o-1".to_owned()), Some("o-2".to_owned())]);
        assert!(parse_entry(&[bulk("v"), bulk(PACKED), bulk("x"), bulk(SECOND)]).is_err(), "a field other than v");
        assert!(parse_entry(&[bulk("v"), bulk(PACKED), bulk("v")]).is_err(), "a field without its value");
        assert!(parse_entry(&[bulk("v"), bulk(PACKED), bulk("v"), bulk("reserve\tA")]).is_err(), "one bad event");
        let first = StreamPos::parse(3, "1000-7").expect("id");
        assert!(first < first.at(1) && first.at(1) < StreamPos::parse(3, "1000-8").expect("id"), "in stream order");
        assert_eq!(first.at(1).id(), "1000-7", "acknowledged by its entry's id");
    }

    #[test]
    fn a_batch_finds_an_event_as_read_in_the_reply_it_came_in() {
        const SECOND: &str = "reserve\tA\tWH1\t0\t1\t0\t0\t10\t3\t0\t0\t1000\t2000\tweb\to-2\t\t";
        let entries = Value::Array(vec![
            entry("5-0", &["v", PACKED, "v", SECOND]),
            entry("6-0", &["k", "extend", "o", "o-1", "e", "9", "t", "6"]),
        ]);
        let batch = Batch {
            replies: vec![(3, Value::Array(vec![Value::Array(vec![bulk("p:ev"), entries])]))],
            ..Batch::default()
        };
        let at = |id: &str, idx: u32| StreamPos::parse(3, id).expect("id").at(idx);
        let bytes = |fields: &[&str]| fields.iter().map(|f| f.as_bytes().to_vec()).collect::<Vec<_>>();
        assert_eq!(batch.raw_event(at("5-0", 1)), Some(bytes(&["v", SECOND])), "the second of a packed entry");
        assert_eq!(batch.raw_event(at("5-0", 0)), Some(bytes(&["v", PACKED])));
        assert_eq!(batch.raw_entry(at("5-0", 0)), Some(bytes(&["v", PACKED, "v", SECOND])), "the whole entry");
        assert_eq!(
            batch.raw_event(at("6-0", 0)),
            Some(bytes(&["k", "extend", "o", "o-1", "e", "9", "t", "6"])),
            "an event in the field-per-value form is its whole entry"
        );
        assert_eq!(batch.raw_event(at("5-0", 2)), None, "no third event");
        assert_eq!(batch.raw_entry(at("7-0", 0)), None, "not in the batch");
        assert_eq!(batch.raw_entry(StreamPos::parse(4, "5-0").expect("id")), None, "another partition");
    }

    #[test]
    fn reads_again_at_once_only_after_a_partition_filled_its_share() {
        let s =
            ReconcilerSettings { interval: Duration::from_millis(250), batch: 500, lag_alert: Duration::from_secs(5) };
        assert_eq!(next_read(Round { rows: 500, full: true }, &s), Duration::ZERO);
        assert_eq!(next_read(Round { rows: 20, full: true }, &s), Duration::ZERO);
        assert_eq!(next_read(Round { rows: 499, full: false }, &s), Duration::from_millis(50));
        assert_eq!(next_read(Round { rows: 0, full: false }, &s), Duration::from_millis(250));
    }

    #[test]
    fn the_batch_is_shared_by_the_partitions_with_entries() {
        assert_eq!(per_partition(5000, 1, 5000), 5000, "one hot partition gets it all");
        assert_eq!(per_partition(5000, 4, 5000), 1250);
        assert_eq!(per_partition(5000, 256, 5000), 19);
        assert_eq!(per_partition(5000, 1000, 5000), 16, "never fewer than 16 each");
        assert_eq!(per_partition(10, 256, 10), 10, "a batch below the floor: each gets all of it");
        assert_eq!(per_partition(1, 3, 1), 1);
    }

    #[test]
    fn entries_are_asked_for_by_the_events_they_held_last_time() {
        assert_eq!(entries_to_ask(2000, 1, 2000, 1), 2000, "one event per entry: as many entries");
        assert_eq!(entries_to_ask(2000, 1, 2000, 12), 166, "a flash sale's entries of about a dozen");
        assert_eq!(entries_to_ask(16_000, 256, 2000, 3), 20);
        assert_eq!(entries_to_ask(2000, 1, 2000, 5000), 1, "never none");
        assert_eq!(entries_to_ask(2000, 1, 2000, 0), 2000, "no ratio yet counts as one");
    }

    #[test]
    fn a_grown_budget_is_shared_but_one_partition_never_gets_more_than_a_batch() {
        assert_eq!(per_partition(16_000, 1, 2000), 2000, "one stream: one batch, as before");
        assert_eq!(per_partition(16_000, 256, 2000), 62);
        assert_eq!(per_partition(16_000, 4, 2000), 2000);
    }

    #[test]
    fn the_budget_doubles_while_rounds_are_full_and_falls_back_after_one_that_is_not() {
        let mut budget = 2000;
        let mut seen = Vec::new();
        for _ in 0..5 {
            budget = next_budget(budget, true, 2000);
            seen.push(budget);
        }
        assert_eq!(seen, [4000, 8000, 16_000, 16_000, 16_000], "up to 8 batches");
        assert_eq!(next_budget(budget, false, 2000), 2000, "backlog gone");
        assert_eq!(next_budget(2000, false, 2000), 2000);
        assert_eq!(next_budget(usize::MAX, true, usize::MAX), usize::MAX, "no overflow");
        assert_eq!(next_budget(1, true, 1), 2);
    }
}
