//! The quarantine (`reconcile_quarantine`): events the reconciler could not
//! write, kept with the error instead of stopping it. An event Postgres
//! refuses for what it holds (see `WriteError::is_refusal`) is set apart by
//! `isolate`, the rest of its batch is written, and the batch is
//! acknowledged; an entry that cannot be read at all is kept whole. The
//! unresolved ones are counted (`stockd_reconcile_quarantined_events`),
//! shown by `/readyz` and `stockd check` (which fails while any is left), and
//! resolved by an operator: retried once the cause is fixed, or discarded
//! with a note. A row is never deleted; its resolution says who and when.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use redis::Value;
use sqlx::PgPool;

use super::event::{Event, StreamPos};
use super::reconciler::parse_entry;
use super::writer::{Applied, WriteError, apply_batch};
use crate::domain::Levels;

/// An event (or a whole unreadable entry) on its way to quarantine.
#[derive(Debug, Clone)]
pub struct Refused<'a> {
    /// Where it sits in the streams.
    pub pos: StreamPos,
    /// Its field-value list exactly as read (see the migration).
    pub raw: Vec<Vec<u8>>,
    /// The event, when it could be read.
    pub event: Option<&'a Event>,
    /// Why it was refused, as an operator reads it.
    pub error: String,
    /// Postgres's SQLSTATE, when Postgres refused it.
    pub sqlstate: Option<String>,
}

/// Puts `refused` in quarantine, read under store `generation`, in one
/// transaction. An event already there (its batch read again after a crash
/// before the acknowledgement) gets no second row: an unresolved one counts
/// another attempt, a resolved one is left as it was resolved.
pub async fn record(db: &PgPool, refused: &[Refused<'_>], generation: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    for r in refused {
        let stock = match r.event {
            Some(Event::Stock(s)) => Some(&**s),
            _ => None,
        };
        sqlx::query(
            "INSERT INTO reconcile_quarantine AS q (partition, stream_ms, stream_seq, stream_idx, raw, summary, kind,
                                                   sku, location_id, on_hand_delta, reserved_delta, committed_delta,
                                                   in_transit_delta, error, sqlstate, generation)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
             ON CONFLICT (partition, stream_ms, stream_seq, stream_idx) DO UPDATE
                 SET attempts = q.attempts + 1, last_attempt_at = now(), error = EXCLUDED.error,
                     sqlstate = EXCLUDED.sqlstate
                 WHERE q.resolved_at IS NULL",
        )
        .bind(i32::try_from(r.pos.partition).unwrap_or(i32::MAX))
        .bind(r.pos.ms)
        .bind(r.pos.seq)
        .bind(i32::try_from(r.pos.idx).unwrap_or(i32::MAX))
        .bind(&r.raw)
        .bind(r.event.map_or_else(|| printable_fields(&r.raw), describe))
        .bind(r.event.map(kind_of))
        .bind(stock.map(|s| printable(&s.sku)))
        .bind(stock.map(|s| printable(&s.location_id)))
        .bind(stock.map(|s| s.deltas[0]))
        .bind(stock.map(|s| s.deltas[1]))
        .bind(stock.map(|s| s.deltas[2]))
        .bind(stock.map(|s| s.deltas[3]))
        .bind(printable(&r.error))
        .bind(&r.sqlstate)
        .bind(printable(generation))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

/// Quarantined events not yet resolved.
pub async fn unresolved_count(db: &PgPool) -> Result<u64, sqlx::Error> {
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM reconcile_quarantine WHERE resolved_at IS NULL").fetch_one(db).await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// One row of the quarantine, as listed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct QuarantinedEvent {
    /// The handle an operator names.
    pub id: i64,
    /// Partition of its stream.
    pub partition: i32,
    /// Its entry's stream id, ms part.
    pub stream_ms: i64,
    /// Its entry's stream id, sequence part.
    pub stream_seq: i64,
    /// Its place in the entry.
    pub stream_idx: i32,
    /// What it says, readable.
    pub summary: String,
    /// Why it was refused (the last time).
    pub error: String,
    /// Postgres's SQLSTATE for it.
    pub sqlstate: Option<String>,
    /// The store generation it was read under.
    pub generation: String,
    /// When it was set apart.
    pub quarantined_at: DateTime<Utc>,
    /// Times it was refused.
    pub attempts: i32,
    /// `retried` or `discarded`; None while unresolved.
    pub resolution: Option<String>,
    /// When it was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Who resolved it.
    pub resolved_by: Option<String>,
    /// The note given with the resolution.
    pub note: Option<String>,
}

impl QuarantinedEvent {
    /// Its stream position as `partition/ms-seq/idx`.
    pub fn position(&self) -> String {
        format!("{}/{}-{}/{}", self.partition, self.stream_ms, self.stream_seq, self.stream_idx)
    }
}

/// The quarantine in the order events were set apart: the unresolved ones,
/// or every one.
pub async fn list(db: &PgPool, include_resolved: bool) -> Result<Vec<QuarantinedEvent>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, partition, stream_ms, stream_seq, stream_idx, summary, error, sqlstate, generation,
                quarantined_at, attempts, resolution, resolved_at, resolved_by, note
         FROM reconcile_quarantine WHERE $1 OR resolved_at IS NULL ORDER BY id",
    )
    .bind(include_resolved)
    .fetch_all(db)
    .await
}

/// What the unresolved stock events of one SKU-location would change:
/// their count and their deltas summed (saturating: an absurd delta is often
/// why an event is there).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held {
    /// Unresolved quarantined events here.
    pub events: u64,
    /// Their deltas, summed.
    pub deltas: Levels,
}

/// `Held` per (sku, location), for the drift check to attribute differences.
pub async fn held_by_location(db: &PgPool) -> Result<BTreeMap<(String, String), Held>, sqlx::Error> {
    let rows: Vec<(String, String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT sku, location_id, on_hand_delta, reserved_delta, committed_delta, in_transit_delta
         FROM reconcile_quarantine
         WHERE resolved_at IS NULL AND sku IS NOT NULL AND location_id IS NOT NULL AND on_hand_delta IS NOT NULL
               AND reserved_delta IS NOT NULL AND committed_delta IS NOT NULL AND in_transit_delta IS NOT NULL",
    )
    .fetch_all(db)
    .await?;
    let mut held: BTreeMap<(String, String), Held> = BTreeMap::new();
    for (sku, loc, oh, rs, cm, it) in rows {
        let h = held.entry((sku, loc)).or_default();
        h.events += 1;
        let d = &mut h.deltas;
        d.on_hand = d.on_hand.saturating_add(oh);
        d.reserved = d.reserved.saturating_add(rs);
        d.committed = d.committed.saturating_add(cm);
        d.in_transit = d.in_transit.saturating_add(it);
    }
    Ok(held)
}

/// What retrying a quarantined event did.
#[derive(Debug)]
pub enum RetryOutcome {
    /// Written to the ledger (and the snapshot, which only moves forward);
    /// the row is resolved as `retried`.
    Applied(Applied),
    /// Refused again, for this reason; the row stays unresolved and counts
    /// the attempt.
    StillRefused(String),
    /// Redis was rebuilt from Postgres since the event was read: the rebuilt
    /// Redis does not hold its change, so writing it to the ledger now would
    /// make them disagree. Nothing changed; discard it instead.
    Stale {
        /// The generation the event was read under.
        read_under: String,
        /// The store's generation now.
        now: Option<String>,
    },
}

/// A row that cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// No such row.
    #[error("no quarantined event #{0}")]
    NotFound(i64),
    /// It was resolved before.
    #[error("quarantined event #{id} was already {resolution} by {by} at {at}")]
    AlreadyResolved {
        /// The row.
        id: i64,
        /// How.
        resolution: String,
        /// Who.
        by: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Postgres failed (not a refusal of the event).
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    /// Postgres could not take the write (not a refusal of the event).
    #[error("writing the event: {0}")]
    Write(#[from] WriteError),
}

/// The raw event and the position and generation of an unresolved row.
async fn unresolved(db: &PgPool, id: i64) -> Result<(Vec<Vec<u8>>, StreamPos, String), ResolveError> {
    type Row = (Vec<Vec<u8>>, i32, i64, i64, i32, String, Option<String>, Option<DateTime<Utc>>, Option<String>);
    let row: Option<Row> = sqlx::query_as(
        "SELECT raw, partition, stream_ms, stream_seq, stream_idx, generation, resolution, resolved_at, resolved_by
         FROM reconcile_quarantine WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    let Some((raw, partition, ms, seq, idx, generation, resolution, at, by)) = row else {
        return Err(ResolveError::NotFound(id));
    };
    if let (Some(resolution), Some(at)) = (resolution, at) {
        return Err(ResolveError::AlreadyResolved { id, resolution, by: by.unwrap_or_default(), at });
    }
    let pos = StreamPos {
        partition: u32::try_from(partition).unwrap_or_default(),
        ms,
        seq,
        idx: u32::try_from(idx).unwrap_or_default(),
    };
    Ok((raw, pos, generation))
}

/// Writes quarantined event `id` again, as the reconciler would have (its
/// raw form parsed anew, at its own stream position, in one transaction),
/// after its cause was fixed. Recorded as resolved by `by` when it went in.
/// Safe to repeat: an event already in the ledger is not written twice.
pub async fn retry(db: &PgPool, id: i64, by: &str, note: Option<&str>) -> Result<RetryOutcome, ResolveError> {
    let (raw, pos, generation) = unresolved(db, id).await?;
    let fields: Vec<Value> = raw.into_iter().map(Value::BulkString).collect();
    let events = match parse_entry(&fields) {
        Ok(events) => events,
        Err(e) => return still_refused(db, id, e.to_string(), None).await,
    };
    let located: Vec<(StreamPos, Event)> = events
        .into_iter()
        .enumerate()
        .map(|(i, e)| (pos.at(pos.idx.saturating_add(u32::try_from(i).unwrap_or(u32::MAX))), e))
        .collect();
    match apply_batch(db, &located, &generation).await {
        Ok(applied) if applied.stale => {
            let now: Option<String> =
                sqlx::query_scalar("SELECT value FROM store_meta WHERE key = 'generation'").fetch_optional(db).await?;
            Ok(RetryOutcome::Stale { read_under: generation, now })
        }
        Ok(applied) => {
            let note = note.map_or_else(|| format!("written: {} ledger rows", applied.ledger_rows), str::to_owned);
            sqlx::query(
                "UPDATE reconcile_quarantine SET resolution = 'retried', resolved_at = now(), resolved_by = $2,
                     note = $3, last_attempt_at = now()
                 WHERE id = $1 AND resolved_at IS NULL",
            )
            .bind(id)
            .bind(by)
            .bind(note)
            .execute(db)
            .await?;
            Ok(RetryOutcome::Applied(applied))
        }
        Err(e) if e.is_refusal() => still_refused(db, id, e.message(), e.sqlstate()).await,
        Err(e) => Err(e.into()),
    }
}

async fn still_refused(
    db: &PgPool,
    id: i64,
    error: String,
    sqlstate: Option<String>,
) -> Result<RetryOutcome, ResolveError> {
    sqlx::query(
        "UPDATE reconcile_quarantine SET attempts = attempts + 1, last_attempt_at = now(), error = $2, sqlstate = $3
         WHERE id = $1 AND resolved_at IS NULL",
    )
    .bind(id)
    .bind(printable(&error))
    .bind(&sqlstate)
    .execute(db)
    .await?;
    Ok(RetryOutcome::StillRefused(error))
}

/// Resolves quarantined event `id` without writing it: an operator decided
/// it is not to be written (`note` says why), `by` whom. The row stays.
pub async fn discard(db: &PgPool, id: i64, by: &str, note: &str) -> Result<(), ResolveError> {
    let done = sqlx::query(
        "UPDATE reconcile_quarantine SET resolution = 'discarded', resolved_at = now(), resolved_by = $2, note = $3
         WHERE id = $1 AND resolved_at IS NULL",
    )
    .bind(id)
    .bind(by)
    .bind(note)
    .execute(db)
    .await?;
    if done.rows_affected() == 0 {
        // Missing or resolved before: say which.
        unresolved(db, id).await?;
    }
    Ok(())
}

fn kind_of(e: &Event) -> String {
    match e {
        Event::Stock(s) => printable(&s.kind),
        Event::Extend { .. } => "extend".to_owned(),
        Event::StopSell { stop: true, .. } => "stop_sell".to_owned(),
        Event::StopSell { stop: false, .. } => "resume_sell".to_owned(),
    }
}

/// One readable line of what an event says.
pub fn describe(e: &Event) -> String {
    let text = match e {
        Event::Stock(s) => {
            let mut t = format!(
                "{} {} @ {}: deltas on_hand {} reserved {} committed {} in_transit {}; levels after {:?}; at {} ms",
                s.kind, s.sku, s.location_id, s.deltas[0], s.deltas[1], s.deltas[2], s.deltas[3], s.levels, s.at_ms
            );
            for (name, v) in [("order", &s.order_id), ("operation", &s.operation_id), ("reason", &s.reason)] {
                if let Some(v) = v {
                    t.push_str(&format!("; {name} {v}"));
                }
            }
            t
        }
        Event::Extend { order_id, expires_ms, at_ms } => {
            format!("extend order {order_id} to {expires_ms} ms; at {at_ms} ms")
        }
        Event::StopSell { sku, location_id, stop, at_ms } => {
            let at = location_id.as_deref().map(|l| format!(" at {l}")).unwrap_or_default();
            format!("{} {sku}{at}; at {at_ms} ms", if *stop { "stop_sell" } else { "resume_sell" })
        }
    };
    printable(&text)
}

/// Text Postgres takes and a terminal shows: control characters (a NUL byte
/// among them, which a text column refuses) escaped, the rest as it is.
pub fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

/// A raw field-value list as one readable line (`field=value ...`).
pub fn printable_fields(raw: &[Vec<u8>]) -> String {
    if raw.is_empty() {
        return "(no fields: the entry was gone from the stream)".to_owned();
    }
    raw.chunks(2)
        .map(|kv| {
            let text = |b: &Vec<u8>| printable(&String::from_utf8_lossy(b));
            match kv {
                [k, v] => format!("{}={}", text(k), text(v)),
                [k] => text(k),
                _ => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_with_control_characters_is_escaped_for_postgres_and_the_terminal() {
        assert_eq!(printable("plain A-1 é"), "plain A-1 é");
        assert_eq!(printable("a\0b\tc\n"), "a\\u{0}b\\tc\\n");
        assert!(!printable("x\0").contains('\0'));
        let raw = vec![b"v".to_vec(), b"adjust\tA\0".to_vec(), b"odd".to_vec()];
        assert_eq!(printable_fields(&raw), "v=adjust\\tA\\u{0} odd");
        assert_eq!(printable_fields(&[vec![0xff, b'x'], b"1".to_vec()]), "\u{fffd}x=1");
    }

    #[test]
    fn an_event_is_described_on_one_line_with_what_it_changes() {
        let packed = "adjust\tA\tWH1\t9223372036854775807\t0\t0\t0\t10\t0\t0\t0\t1000\t\t\t\top-9\tcount\0x";
        let e = Event::parse_packed(packed).expect("parses");
        let line = describe(&e);
        assert!(line.starts_with("adjust A @ WH1: deltas on_hand 9223372036854775807 reserved 0"), "{line}");
        assert!(line.ends_with("; operation op-9; reason count\\u{0}x"), "{line}");
        assert_eq!(kind_of(&e), "adjust");
        let stop = Event::StopSell { sku: "A".into(), location_id: None, stop: false, at_ms: 5 };
        assert_eq!((describe(&stop).as_str(), kind_of(&stop).as_str()), ("resume_sell A; at 5 ms", "resume_sell"));
    }
}
