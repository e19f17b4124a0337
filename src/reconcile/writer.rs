//! Writes one batch of events to Postgres in one transaction: ledger rows,
//! the ledger's sums, the levels snapshot, reservations and their lines, applied operation
//! ids and SKU flags. The ledger's unique (partition, stream id, place in the entry) decides what
//! is new: events already recorded (a replayed batch) change nothing.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use super::event::{Event, StockEvent, StreamPos};

/// What a batch changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Ledger rows inserted (events seen before are not counted).
    pub ledger_rows: u64,
    /// Of the new ledger rows, expiries.
    pub expiries: u64,
    /// The batch was read under another store generation (Redis was
    /// rebuilt since): nothing was written.
    pub stale: bool,
    /// The batch held events already recorded (read again after a crash)
    /// and was written a second time, skipping those.
    pub replayed: bool,
    /// Events (or unreadable entries) put in quarantine instead (by the
    /// reconciler; `apply_batch` itself writes all or nothing).
    pub quarantined: u64,
}

/// Why a batch was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Postgres answered with an error, or could not be reached.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// The deltas of one SKU-location within the batch add up beyond the
    /// bigint range (the sums kept in stock_levels would overflow in Rust
    /// before Postgres saw them; written one at a time, Postgres decides).
    #[error("the ledger sums of {sku} @ {location_id} leave the bigint range within one batch")]
    SumOverflow {
        /// What.
        sku: String,
        /// Where.
        location_id: String,
    },
}

impl WriteError {
    /// The SQLSTATE Postgres answered with, if it answered.
    pub fn sqlstate(&self) -> Option<String> {
        match self {
            WriteError::Db(e) => e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned()),
            WriteError::SumOverflow { .. } => Some(NUMERIC_VALUE_OUT_OF_RANGE.to_owned()),
        }
    }

    /// Whether the batch was refused for what it holds (see `refused_for_content`)
    /// rather than because Postgres is unreachable, down or overloaded.
    pub fn is_refusal(&self) -> bool {
        self.sqlstate().is_some_and(|code| refused_for_content(&code))
    }

    /// The error as an operator reads it: Postgres's message and detail.
    pub fn message(&self) -> String {
        match self {
            WriteError::Db(sqlx::Error::Database(d)) => {
                let detail = d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().and_then(|p| p.detail());
                match detail {
                    Some(detail) => format!("{} ({detail})", d.message()),
                    None => d.message().to_owned(),
                }
            }
            other => other.to_string(),
        }
    }
}

/// SQLSTATE numeric_value_out_of_range (what Postgres answers for a bigint
/// sum that overflows).
pub const NUMERIC_VALUE_OUT_OF_RANGE: &str = "22003";

/// Whether an error with this SQLSTATE means Postgres refused the values it
/// was given, so that the same batch would be refused again however often it
/// is retried: class 22 (data exception: a number out of range, text with a
/// NUL byte), 23 (integrity constraint violation) and 54 (program limit
/// exceeded: a value too large for an index row). Every other class (08
/// connection, 53 insufficient resources, 57 operator intervention, 40
/// transaction rollback, 42 a table missing or not allowed, XX internal) is
/// about Postgres, not about the events, and is retried as it is.
pub fn refused_for_content(sqlstate: &str) -> bool {
    matches!(sqlstate.get(..2), Some("22" | "23" | "54"))
}

/// A stock event with its stream position.
type Located<'a> = (&'a StreamPos, &'a StockEvent);

fn status_of(kind: &str) -> Option<&'static str> {
    match kind {
        "reserve" => Some("ACTIVE"),
        "commit" => Some("COMMITTED"),
        "fulfill" => Some("FULFILLED"),
        "release" => Some("RELEASED"),
        "expire" => Some("EXPIRED"),
        _ => None,
    }
}

/// Where a status sits in an order's life: a later one wins a tie in time.
fn lifecycle_rank(status: &str) -> u8 {
    match status {
        "ACTIVE" => 0,
        "COMMITTED" => 1,
        _ => 2,
    }
}

fn partition(p: &StreamPos) -> i32 {
    i32::try_from(p.partition).unwrap_or(i32::MAX)
}

/// The event's place in its stream entry (at most a few hundred).
fn place(p: &StreamPos) -> i32 {
    i32::try_from(p.idx).unwrap_or(i32::MAX)
}

/// A Redis time in ms as a timestamp, bound in binary: Postgres's
/// `to_timestamp(ms / 1000.0)` divided in numeric, about 0.2 µs of server
/// CPU per call and four calls per reserved order.
fn at(ms: i64) -> DateTime<Utc> {
    // Out of chrono's range only for times some 262,000 years away, which
    // Redis's clock does not give.
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::UNIX_EPOCH)
}

/// Applies `events` (in stream order per partition), read under store
/// `generation`, in one transaction. The generation row is taken shared
/// first: a rebuild holds it exclusively while it reads Postgres, and a batch
/// from before the rebuild is refused (`stale`).
///
/// A batch is written first as if every event were new: plain inserts,
/// without `ON CONFLICT`'s speculative insertion (in a flash sale, a fifth
/// less Postgres CPU per event). Events already recorded come back only when
/// a batch is read again after a crash between commit and acknowledgement;
/// the ledger's unique key then refuses the batch, and it is written again,
/// skipping what is recorded (`Applied::replayed`).
///
/// An error that `WriteError::is_refusal` calls a refusal comes back for what
/// the batch holds; the reconciler then writes it in parts (see `isolate`).
pub async fn apply_batch(db: &PgPool, events: &[(StreamPos, Event)], generation: &str) -> Result<Applied, WriteError> {
    match write_batch(db, events, generation, Mode::New).await {
        Err(WriteError::Db(e)) if e.as_database_error().is_some_and(|d| d.is_unique_violation()) => {
            tracing::info!("a batch held events already in the ledger; writing it again with conflict checks");
            let applied = write_batch(db, events, generation, Mode::Replay).await?;
            Ok(Applied { replayed: true, ..applied })
        }
        other => other,
    }
}

/// What writing a refused batch in parts did (see `isolate`).
#[derive(Debug)]
pub enum Isolated {
    /// Every part Postgres took is written; the refused events are listed by
    /// their index in the batch, each with its error, in stream order.
    Written {
        /// What the written parts changed, together.
        applied: Applied,
        /// Events refused on their own.
        refused: Vec<(usize, WriteError)>,
    },
    /// The store generation changed meanwhile (Redis was rebuilt): the rest
    /// of the batch is not written, as `Applied::stale` says of a whole one.
    Stale,
}

/// Writes a batch of `len` events that Postgres refused as a whole
/// (`refusal`, for what it holds) in parts, so that one bad event does not
/// stop the rest: `write(range)` writes the events in `range` in one
/// transaction. A refused part is halved until the refused events stand
/// alone; k bad events among n cost about 2·k·log2(n/k) transactions, and
/// only after a refusal, so a batch that goes in is still one transaction.
///
/// Parts are written in stream order (every part after all those before
/// it), so the snapshot moves forward as it would have. An error other than
/// a refusal (Postgres went away half-way) stops here: what was written
/// stays written, and the batch, read again, finds it in the ledger.
pub async fn isolate<F, Fut>(len: usize, refusal: WriteError, mut write: F) -> Result<Isolated, WriteError>
where
    F: FnMut(Range<usize>) -> Fut,
    Fut: Future<Output = Result<Applied, WriteError>>,
{
    let mut applied = Applied::default();
    let mut refused = Vec::new();
    // The parts still to write, the next one last.
    let mut todo: Vec<Range<usize>> = Vec::new();
    match len {
        0 => return Err(refusal),
        1 => refused.push((0, refusal)),
        _ => todo.extend([len / 2..len, 0..len / 2]),
    }
    while let Some(part) = todo.pop() {
        match write(part.clone()).await {
            Ok(a) if a.stale => return Ok(Isolated::Stale),
            Ok(a) => {
                applied.ledger_rows += a.ledger_rows;
                applied.expiries += a.expiries;
                applied.replayed |= a.replayed;
            }
            Err(e) if e.is_refusal() && part.len() > 1 => {
                let mid = part.start + part.len() / 2;
                todo.extend([mid..part.end, part.start..mid]);
            }
            Err(e) if e.is_refusal() => refused.push((part.start, e)),
            Err(e) => return Err(e),
        }
    }
    Ok(Isolated::Written { applied, refused })
}

/// How the ledger rows of a batch go in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Plain inserts: one event already recorded fails the batch.
    New,
    /// Only the events not yet recorded are inserted and applied.
    Replay,
}

async fn write_batch(
    db: &PgPool,
    events: &[(StreamPos, Event)],
    generation: &str,
    mode: Mode,
) -> Result<Applied, WriteError> {
    let mut tx = db.begin().await?;
    let current: Option<String> = sqlx::query_scalar("SELECT value FROM store_meta WHERE key = 'generation' FOR SHARE")
        .fetch_optional(&mut *tx)
        .await?;
    if current.as_deref() != Some(generation) {
        return Ok(Applied { stale: true, ..Applied::default() });
    }
    let stock: Vec<Located> = events
        .iter()
        .filter_map(|(pos, e)| match e {
            Event::Stock(s) => Some((pos, &**s)),
            _ => None,
        })
        .collect();
    let fresh = insert_ledger(&mut tx, &stock, mode).await?;
    upsert_levels(&mut tx, &fresh).await?;
    record_reservations(&mut tx, &fresh).await?;
    record_operations(&mut tx, &fresh).await?;
    apply_other(&mut tx, events).await?;
    tx.commit().await?;
    let expiries = fresh.iter().filter(|(_, e)| e.kind == "expire").count() as u64;
    Ok(Applied { ledger_rows: fresh.len() as u64, expiries, ..Applied::default() })
}

/// Inserts ledger rows; returns the events that were new (in `Mode::New`
/// all of them, or the statement fails).
async fn insert_ledger<'a>(
    tx: &mut PgConnection,
    stock: &[Located<'a>],
    mode: Mode,
) -> Result<Vec<Located<'a>>, sqlx::Error> {
    const INSERT: &str = "INSERT INTO ledger (partition, stream_ms, stream_seq, kind, sku, location_id, on_hand_delta,
                             reserved_delta, committed_delta, in_transit_delta, order_id, operation_id, reason,
                             occurred_at, stream_idx)
         SELECT p, ms, seq, k, s, l, doh, drs, dcm, dit, o, op, r, t, i
         FROM UNNEST($1::int[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::bigint[],
                     $8::bigint[], $9::bigint[], $10::bigint[], $11::text[], $12::text[], $13::text[],
                     $14::timestamptz[], $15::int[])
              AS u(p, ms, seq, k, s, l, doh, drs, dcm, dit, o, op, r, t, i)";
    const SKIPPING_RECORDED: &str = " ON CONFLICT (partition, stream_ms, stream_seq, stream_idx) DO NOTHING
         RETURNING partition, stream_ms, stream_seq, stream_idx";
    let ints = |f: fn(&Located) -> i64| stock.iter().map(f).collect::<Vec<i64>>();
    // Borrowed: no copy of each event's strings for the binds.
    let texts = |f: fn(&'a StockEvent) -> Option<&'a str>| stock.iter().map(|(_, e)| f(e)).collect::<Vec<_>>();
    let replay = format!("{INSERT}{SKIPPING_RECORDED}");
    let sql = if mode == Mode::New { INSERT } else { &replay };
    let query = sqlx::query_as::<_, (i32, i64, i64, i32)>(sql)
        .bind(stock.iter().map(|(p, _)| partition(p)).collect::<Vec<i32>>())
        .bind(ints(|(p, _)| p.ms))
        .bind(ints(|(p, _)| p.seq))
        .bind(texts(|e| Some(&e.kind)))
        .bind(texts(|e| Some(&e.sku)))
        .bind(texts(|e| Some(&e.location_id)))
        .bind(ints(|(_, e)| e.deltas[0]))
        .bind(ints(|(_, e)| e.deltas[1]))
        .bind(ints(|(_, e)| e.deltas[2]))
        .bind(ints(|(_, e)| e.deltas[3]))
        .bind(texts(|e| e.order_id.as_deref()))
        .bind(texts(|e| e.operation_id.as_deref()))
        .bind(texts(|e| e.reason.as_deref()))
        .bind(stock.iter().map(|(_, e)| at(e.at_ms)).collect::<Vec<_>>())
        .bind(stock.iter().map(|(p, _)| place(p)).collect::<Vec<i32>>());
    if mode == Mode::New {
        query.fetch_all(&mut *tx).await?;
        return Ok(stock.to_vec());
    }
    let inserted = query.fetch_all(&mut *tx).await?;
    let new: HashSet<(i32, i64, i64, i32)> = inserted.into_iter().collect();
    Ok(stock.iter().copied().filter(|(p, _)| new.contains(&(partition(p), p.ms, p.seq, place(p)))).collect())
}

/// Moves the snapshot of each SKU-location to its last new event, never back
/// to an older stream position, and adds the new events' deltas to the
/// ledger's sums kept in the same row (`ledger_*`: the periodic drift check
/// compares the snapshot with them instead of summing the whole ledger). The
/// sums take every new event, whether or not the snapshot moves.
async fn upsert_levels(tx: &mut PgConnection, fresh: &[Located<'_>]) -> Result<(), WriteError> {
    let mut rows: BTreeMap<(&str, &str), (Located, [i64; 4])> = BTreeMap::new();
    for &(p, e) in fresh {
        let (last, sums) = rows.entry((e.sku.as_str(), e.location_id.as_str())).or_insert(((p, e), [0; 4]));
        if last.0 < p {
            *last = (p, e);
        }
        for (sum, d) in sums.iter_mut().zip(e.deltas) {
            *sum = sum
                .checked_add(d)
                .ok_or_else(|| WriteError::SumOverflow { sku: e.sku.clone(), location_id: e.location_id.clone() })?;
        }
    }
    if rows.is_empty() {
        return Ok(());
    }
    let rows: Vec<&(Located, [i64; 4])> = rows.values().collect();
    let level = |i: usize| rows.iter().map(|((_, e), _)| e.levels[i]).collect::<Vec<i64>>();
    let sum = |i: usize| rows.iter().map(|(_, s)| s[i]).collect::<Vec<i64>>();
    // The snapshot's columns move only for a later stream position; every
    // SET expression reads the row as it was, so the test is the same in each.
    sqlx::query(
        "INSERT INTO stock_levels AS s (sku, location_id, on_hand, reserved, committed, in_transit, partition,
                                       stream_ms, stream_seq, updated_at, ledger_on_hand, ledger_reserved,
                                       ledger_committed, ledger_in_transit)
         SELECT sku, l, oh, rs, cm, it, p, ms, seq, now(), doh, drs, dcm, dit
         FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::int[],
                     $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[])
              AS u(sku, l, oh, rs, cm, it, p, ms, seq, doh, drs, dcm, dit)
         ON CONFLICT (sku, location_id) DO UPDATE SET
             ledger_on_hand = s.ledger_on_hand + EXCLUDED.ledger_on_hand,
             ledger_reserved = s.ledger_reserved + EXCLUDED.ledger_reserved,
             ledger_committed = s.ledger_committed + EXCLUDED.ledger_committed,
             ledger_in_transit = s.ledger_in_transit + EXCLUDED.ledger_in_transit,
             on_hand = CASE WHEN (s.stream_ms, s.stream_seq) < (EXCLUDED.stream_ms, EXCLUDED.stream_seq)
                            THEN EXCLUDED.on_hand ELSE s.on_hand END,
             reserved = CASE WHEN (s.stream_ms, s.stream_seq) < (EXCLUDED.stream_ms, EXCLUDED.stream_seq)
                             THEN EXCLUDED.reserved ELSE s.reserved END,
             committed = CASE WHEN (s.stream_ms, s.stream_seq) < (EXCLUDED.stream_ms, EXCLUDED.stream_seq)
                              THEN EXCLUDED.committed ELSE s.committed END,
             in_transit = CASE WHEN (s.stream_ms, s.stream_seq) < (EXCLUDED.stream_ms, EXCLUDED.stream_seq)
                               THEN EXCLUDED.in_transit ELSE s.in_transit END,
             partition = CASE WHEN (s.stream_ms, s.stream_seq) < (EXCLUDED.stream_ms, EXCLUDED.stream_seq)
                              THEN EXCLUDED.partition ELSE s.partition END,
             updated_at = CASE WHEN (s.stream_ms, s.stream_seq) < (EXCLUDED.stream_ms, EXCLUDED.stream_seq)
                               THEN now() ELSE s.updated_at END,
             stream_ms = CASE WHEN (s.stream_ms, s.stream_seq) < (EXCLUDED.stream_ms, EXCLUDED.stream_seq)
                              THEN EXCLUDED.stream_ms ELSE s.stream_ms END,
             stream_seq = CASE WHEN (s.stream_ms, s.stream_seq) < (EXCLUDED.stream_ms, EXCLUDED.stream_seq)
                               THEN EXCLUDED.stream_seq ELSE s.stream_seq END",
    )
    .bind(rows.iter().map(|((_, e), _)| e.sku.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|((_, e), _)| e.location_id.as_str()).collect::<Vec<_>>())
    .bind(level(0))
    .bind(level(1))
    .bind(level(2))
    .bind(level(3))
    .bind(rows.iter().map(|((p, _), _)| partition(p)).collect::<Vec<_>>())
    .bind(rows.iter().map(|((p, _), _)| p.ms).collect::<Vec<_>>())
    .bind(rows.iter().map(|((p, _), _)| p.seq).collect::<Vec<_>>())
    .bind(sum(0))
    .bind(sum(1))
    .bind(sum(2))
    .bind(sum(3))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Reservation headers and status moves from reservation events (their
/// lines and history are the ledger's: see the reservation_lines and
/// reservation_history views).
async fn record_reservations(tx: &mut PgConnection, fresh: &[Located<'_>]) -> Result<(), sqlx::Error> {
    // Headers: the first reserve event of each order. A late reserve event
    // from another partition of the same order never resets a status that
    // moved on; only an ended order id reused after its tombstone is reset.
    // Of an order id reused within one batch, only its latest reservation
    // (every line of one reserve carries the same time) makes the record;
    // the earlier ones are in the ledger.
    let mut headers: BTreeMap<&str, &StockEvent> = BTreeMap::new();
    for (_, e) in fresh {
        let Some(order) = e.order_id.as_deref().filter(|_| e.kind == "reserve") else { continue };
        if headers.get(order).is_none_or(|h| h.at_ms < e.at_ms) {
            headers.insert(order, e);
        }
    }
    let hs: Vec<&&StockEvent> = headers.values().collect();
    // NOT EXISTS rather than ON CONFLICT: the same probe of the key, without
    // speculative insertion. A header inserted meanwhile by another writer
    // fails the batch on the key, and the replay writes it again.
    let new: HashSet<String> = sqlx::query_scalar(
        "INSERT INTO reservations (order_id, status, channel, created_at, expires_at, updated_at)
         SELECT o, 'ACTIVE', ch, t, e, t
         FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[]) AS u(o, ch, t, e)
         WHERE NOT EXISTS (SELECT 1 FROM reservations r WHERE r.order_id = u.o)
         RETURNING order_id",
    )
    .bind(hs.iter().map(|e| e.order_id.as_deref().unwrap_or_default()).collect::<Vec<_>>())
    .bind(hs.iter().map(|e| e.channel.as_deref().unwrap_or_default()).collect::<Vec<_>>())
    .bind(hs.iter().map(|e| at(e.at_ms)).collect::<Vec<_>>())
    .bind(hs.iter().map(|e| at(e.expires_ms.unwrap_or(e.at_ms))).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    // The others already had a header. Only an ended one, reused by a later
    // reservation, is reset. (Lines are not written: reservation_lines is a
    // view of the reserve events at the header's created_at.)
    let known: Vec<&&StockEvent> =
        hs.iter().copied().filter(|e| !new.contains(e.order_id.as_deref().unwrap_or_default())).collect();
    if !known.is_empty() {
        sqlx::query(
            "UPDATE reservations AS r SET status = 'ACTIVE', channel = u.ch, created_at = u.t, expires_at = u.e,
                 release_reason = '', updated_at = u.t
             FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[]) AS u(o, ch, t, e)
             WHERE r.order_id = u.o AND r.status IN ('FULFILLED', 'RELEASED', 'EXPIRED') AND r.created_at < u.t",
        )
        .bind(known.iter().map(|e| e.order_id.as_deref().unwrap_or_default()).collect::<Vec<_>>())
        .bind(known.iter().map(|e| e.channel.as_deref().unwrap_or_default()).collect::<Vec<_>>())
        .bind(known.iter().map(|e| at(e.at_ms)).collect::<Vec<_>>())
        .bind(known.iter().map(|e| at(e.expires_ms.unwrap_or(e.at_ms))).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }

    // Each order's latest status move: by Redis time, and at the same
    // millisecond by lifecycle (events of one order in several partitions
    // are not in one stream order). A latest reserve was written with the
    // header above; every other move is one UPDATE for the whole batch.
    let mut latest: BTreeMap<&str, (i64, u8, &'static str, String)> = BTreeMap::new();
    for (_, e) in fresh {
        if let (Some(status), Some(o)) = (status_of(&e.kind), e.order_id.as_deref()) {
            let at = (e.at_ms, lifecycle_rank(status));
            if latest.get(o).is_none_or(|m| (m.0, m.1) < at) {
                let reason = if status == "RELEASED" { e.reason.clone().unwrap_or_default() } else { String::new() };
                latest.insert(o, (at.0, at.1, status, reason));
            }
        }
    }
    latest.retain(|_, m| m.2 != "ACTIVE");
    if !latest.is_empty() {
        sqlx::query(
            "UPDATE reservations AS r SET status = u.s, updated_at = u.t,
                 release_reason = CASE WHEN u.s = 'RELEASED' THEN u.rr ELSE r.release_reason END
             FROM UNNEST($1::text[], $2::text[], $3::timestamptz[], $4::text[]) AS u(o, s, t, rr)
             WHERE r.order_id = u.o AND r.status <> u.s AND r.updated_at <= u.t",
        )
        .bind(latest.keys().copied().collect::<Vec<_>>())
        .bind(latest.values().map(|m| m.2).collect::<Vec<_>>())
        .bind(latest.values().map(|m| at(m.0)).collect::<Vec<_>>())
        .bind(latest.values().map(|m| m.3.clone()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Remembers applied operation ids, so a rebuilt Redis still refuses replays.
async fn record_operations(tx: &mut PgConnection, fresh: &[Located<'_>]) -> Result<(), sqlx::Error> {
    let ops: Vec<&Located> = fresh.iter().filter(|(_, e)| e.operation_id.is_some()).collect();
    sqlx::query(
        "INSERT INTO applied_operations (operation_id, sku, applied_at)
         SELECT op, s, t FROM UNNEST($1::text[], $2::text[], $3::timestamptz[]) AS u(op, s, t)
         ON CONFLICT DO NOTHING",
    )
    .bind(ops.iter().map(|(_, e)| e.operation_id.as_deref().unwrap_or_default()).collect::<Vec<_>>())
    .bind(ops.iter().map(|(_, e)| e.sku.as_str()).collect::<Vec<_>>())
    .bind(ops.iter().map(|(_, e)| at(e.at_ms)).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Expiry moves and stop-sell flags: idempotent, applied in stream order.
async fn apply_other(tx: &mut PgConnection, events: &[(StreamPos, Event)]) -> Result<(), sqlx::Error> {
    for (_, e) in events {
        match e {
            Event::Extend { order_id, expires_ms, .. } => {
                sqlx::query("UPDATE reservations SET expires_at = $2 WHERE order_id = $1 AND status = 'ACTIVE'")
                    .bind(order_id)
                    .bind(at(*expires_ms))
                    .execute(&mut *tx)
                    .await?;
            }
            Event::StopSell { sku, location_id: Some(location), stop, at_ms } => {
                // Per SKU-location (a count over the stop gate): what the
                // rebuild restores, and what channel sync reads.
                sqlx::query(
                    "INSERT INTO stop_sell_locations (sku, location_id, stop_sell, updated_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (sku, location_id) DO UPDATE
                     SET stop_sell = EXCLUDED.stop_sell, updated_at = EXCLUDED.updated_at
                     WHERE stop_sell_locations.updated_at <= EXCLUDED.updated_at",
                )
                .bind(sku)
                .bind(location)
                .bind(*stop)
                .bind(at(*at_ms))
                .execute(&mut *tx)
                .await?;
            }
            Event::StopSell { sku, location_id: None, stop, at_ms } => {
                sqlx::query(
                    "INSERT INTO sku_flags (sku, stop_sell, updated_at) VALUES ($1, $2, $3)
                     ON CONFLICT (sku) DO UPDATE SET stop_sell = EXCLUDED.stop_sell, updated_at = EXCLUDED.updated_at
                     WHERE sku_flags.updated_at <= EXCLUDED.updated_at",
                )
                .bind(sku)
                .bind(*stop)
                .bind(at(*at_ms))
                .execute(&mut *tx)
                .await?;
            }
            Event::Stock(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_events_hold_is_told_from_what_happened_to_postgres() {
        for refused in ["22003", "22021", "22P02", "23505", "23514", "23502", "54000"] {
            assert!(refused_for_content(refused), "{refused} is about the values");
        }
        for outage in ["08006", "57P01", "53100", "40001", "40P01", "42P01", "42501", "XX000", "P0001", "", "2"] {
            assert!(!refused_for_content(outage), "{outage:?} is about postgres");
        }
        let overflow = WriteError::SumOverflow { sku: "A".into(), location_id: "WH1".into() };
        assert!(overflow.is_refusal());
        assert_eq!(overflow.sqlstate().as_deref(), Some(NUMERIC_VALUE_OUT_OF_RANGE));
        assert!(!WriteError::Db(sqlx::Error::PoolTimedOut).is_refusal(), "no answer is an outage");
    }

    /// Runs `isolate` over `len` events of which `bad` are refused and
    /// `outage_at` (a write starting there) finds Postgres gone; returns the
    /// result and the parts written, in order.
    fn isolate_over(
        len: usize,
        bad: &[usize],
        outage_at: Option<usize>,
    ) -> (Result<Isolated, WriteError>, Vec<Range<usize>>) {
        let refusal = || WriteError::SumOverflow { sku: "A".into(), location_id: "WH1".into() };
        let mut written = Vec::new();
        let result = futures::executor::block_on(isolate(len, refusal(), |part: Range<usize>| {
            let answer = if outage_at.is_some_and(|at| part.start == at) {
                Err(WriteError::Db(sqlx::Error::PoolTimedOut))
            } else if bad.iter().any(|b| part.contains(b)) {
                Err(refusal())
            } else {
                written.push(part.clone());
                Ok(Applied { ledger_rows: part.len() as u64, ..Applied::default() })
            };
            std::future::ready(answer)
        }));
        (result, written)
    }

    #[test]
    fn a_refused_batch_is_written_in_parts_in_order_and_only_the_bad_events_are_left_out() {
        let (result, written) = isolate_over(100, &[7, 60, 61], None);
        let Ok(Isolated::Written { applied, refused }) = result else { panic!("written") };
        assert_eq!(refused.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [7, 60, 61]);
        assert!(refused.iter().all(|(_, e)| e.is_refusal()));
        assert_eq!(applied.ledger_rows, 97, "every other event is written");
        let order: Vec<usize> = written.iter().flat_map(|r| r.clone()).collect();
        let expected: Vec<usize> = (0..100).filter(|i| ![7, 60, 61].contains(i)).collect();
        assert_eq!(order, expected, "in stream order, each once");
        assert!(written.len() <= 3 * 2 * 7, "about 2·k·log2(n) parts, not one per event: {}", written.len());
    }

    #[test]
    fn a_lone_refused_event_is_not_written_again_and_an_outage_half_way_stops_the_isolation() {
        let (result, written) = isolate_over(1, &[0], None);
        let Ok(Isolated::Written { refused, .. }) = result else { panic!("written") };
        assert_eq!((refused.len(), written.len()), (1, 0));
        let (result, written) = isolate_over(8, &[1], Some(4));
        assert!(matches!(result, Err(e) if !e.is_refusal()), "an outage is not a refusal");
        assert_eq!(written, [0..1, 2..4], "what came before the outage stays written");
        let (result, _) = isolate_over(0, &[], None);
        assert!(result.is_err(), "nothing to isolate: the refusal stands");
    }

    #[test]
    fn a_redis_time_keeps_its_milliseconds_as_a_timestamp() {
        for ms in [0, 1, 999, 1_764_495_000_123, 4_102_444_800_999] {
            assert_eq!(at(ms).timestamp_millis(), ms);
        }
        assert_eq!(at(1_764_495_000_123).timestamp_subsec_micros(), 123_000, "no rounding below the ms");
    }
}
