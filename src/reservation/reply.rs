//! Reading script replies: flat arrays of strings and integers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Value;

use super::EngineError;
use crate::domain::{Reservation, ReservationLine, ReservationStatus};

/// A cursor over one script's array reply.
pub struct Reply {
    script: &'static str,
    items: std::vec::IntoIter<Value>,
}

impl Reply {
    /// Wraps a reply: an array, or an order reply as one string (tag, status
    /// and the stored header, tab-separated: see `header_reply` in
    /// common.lua), read as the three values it joins.
    pub fn new(script: &'static str, v: Value) -> Result<Self, EngineError> {
        match v {
            Value::Array(items) => Ok(Self { script, items: items.into_iter() }),
            Value::BulkString(joined) => {
                let text = String::from_utf8(joined)
                    .map_err(|_| EngineError::Protocol { script, detail: "non-UTF-8 order reply".into() })?;
                let mut parts = text.splitn(3, '\t');
                let (Some(tag), Some(status), Some(header)) = (parts.next(), parts.next(), parts.next()) else {
                    return Err(EngineError::Protocol { script, detail: format!("order reply {text:?}") });
                };
                // As text already checked: string() takes it without decoding again.
                let items = [tag, status, header].map(|s| Value::SimpleString(s.to_owned()));
                Ok(Self { script, items: Vec::from(items).into_iter() })
            }
            other => Err(EngineError::Protocol { script, detail: format!("expected an array, got {other:?}") }),
        }
    }

    fn bad(&self, detail: impl Into<String>) -> EngineError {
        EngineError::Protocol { script: self.script, detail: detail.into() }
    }

    /// Whether anything is left.
    pub fn is_empty(&self) -> bool {
        self.items.len() == 0
    }

    /// The next item as text (integers are printed).
    pub fn string(&mut self) -> Result<String, EngineError> {
        match self.items.next() {
            Some(Value::BulkString(b)) => String::from_utf8(b).map_err(|_| self.bad("non-UTF-8 string")),
            Some(Value::SimpleString(s)) => Ok(s),
            Some(Value::Int(i)) => Ok(i.to_string()),
            other => Err(self.bad(format!("expected a string, got {other:?}"))),
        }
    }

    /// The next item as an integer (numeric strings are parsed).
    pub fn int(&mut self) -> Result<i64, EngineError> {
        match self.items.next() {
            Some(Value::Int(i)) => Ok(i),
            Some(Value::BulkString(b)) => std::str::from_utf8(&b)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| self.bad("expected an integer string")),
            other => Err(self.bad(format!("expected an integer, got {other:?}"))),
        }
    }

    /// Reads an order reply (see `header_reply` in common.lua) into a
    /// reservation: the status word, then the header as stored.
    pub fn reservation(&mut self, order_id: &str) -> Result<Reservation, EngineError> {
        let status = self.string()?;
        let status = ReservationStatus::from_script(&status).ok_or_else(|| self.bad(format!("status {status:?}")))?;
        let raw = self.string()?;
        let h = StoredHeader::parse(&raw).ok_or_else(|| self.bad(format!("order header {raw:?}")))?;
        Ok(Reservation {
            order_id: order_id.to_owned(),
            status,
            lines: h.lines,
            created_at: from_millis(h.created_ms),
            expires_at: from_millis(h.expires_ms),
            channel: h.channel.to_owned(),
            release_reason: h.release_reason.to_owned(),
        })
    }
}

/// An order header as the scripts store it (see the layout in common.lua):
/// tab-separated status letter, created ms, expiry as ms after created,
/// channel, line count n, n times sku, location, quantity, and last the
/// release reason when there is one (it may hold a tab).
#[derive(Debug, PartialEq, Eq)]
struct StoredHeader<'a> {
    created_ms: i64,
    expires_ms: i64,
    channel: &'a str,
    lines: Vec<ReservationLine>,
    release_reason: &'a str,
}

impl<'a> StoredHeader<'a> {
    fn parse(raw: &'a str) -> Option<Self> {
        let mut f = raw.splitn(6, '\t');
        let _letter = f.next()?;
        let created_ms: i64 = f.next()?.parse().ok()?;
        let expires_ms = created_ms.checked_add(f.next()?.parse().ok()?)?;
        let channel = f.next()?;
        let n: usize = f.next()?.parse().ok()?;
        let mut rest = f.next().unwrap_or("");
        let mut lines = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let mut l = rest.splitn(4, '\t');
            let (sku, location, qty) = (l.next()?, l.next()?, l.next()?);
            lines.push(ReservationLine {
                sku: sku.to_owned(),
                location_id: location.to_owned(),
                quantity: qty.parse().ok()?,
            });
            rest = l.next().unwrap_or("");
        }
        Some(Self { created_ms, expires_ms, channel, lines, release_reason: rest })
    }
}

/// A Redis-clock millisecond timestamp as a `SystemTime`.
pub fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, location: &str, quantity: i64) -> ReservationLine {
        ReservationLine { sku: sku.into(), location_id: location.into(), quantity }
    }

    #[test]
    fn reads_a_stored_header_with_lines_and_no_reason() {
        let h = StoredHeader::parse("A\t1764480000000\t1800000\tweb\t2\tSKU-1\tL1\t3\tSKU-2\tL2\t1").expect("parses");
        assert_eq!(h.created_ms, 1_764_480_000_000);
        assert_eq!(h.expires_ms, 1_764_481_800_000);
        assert_eq!(h.channel, "web");
        assert_eq!(h.lines, vec![line("SKU-1", "L1", 3), line("SKU-2", "L2", 1)]);
        assert_eq!(h.release_reason, "");
    }

    #[test]
    fn the_reason_comes_last_and_keeps_its_tabs() {
        let h = StoredHeader::parse("R\t5\t10\t\t1\tS\tL\t2\tout of\tstock").expect("parses");
        assert_eq!((h.created_ms, h.expires_ms, h.channel), (5, 15, ""));
        assert_eq!(h.lines, vec![line("S", "L", 2)]);
        assert_eq!(h.release_reason, "out of\tstock");
    }

    #[test]
    fn a_header_without_lines_reads_its_reason() {
        let h = StoredHeader::parse("R\t5\t10\tpos\t0\tgone").expect("parses");
        assert!(h.lines.is_empty());
        assert_eq!(h.release_reason, "gone");
        assert_eq!(StoredHeader::parse("A\t5\t10\tpos\t0").expect("parses").release_reason, "");
    }

    #[test]
    fn a_malformed_header_is_refused() {
        for raw in ["", "A", "A\tx\t10\t\t0", "A\t5\t10\t\t2\tS\tL\t1", "A\t5\t10\t\t1\tS\tL\tq", "A\t5\t10\t\tn"] {
            assert_eq!(StoredHeader::parse(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn an_order_reply_joined_in_one_string_reads_as_tag_status_and_header() {
        let v = Value::BulkString(b"RESERVED\tACTIVE\tA\t1000\t500\tweb\t1\tSKU-1\tWH\t2".to_vec());
        let mut r = Reply::new("test", v).expect("parses");
        assert_eq!(r.string().expect("tag"), "RESERVED");
        let res = r.reservation("o-2").expect("reservation");
        assert_eq!((res.status, res.lines), (ReservationStatus::Active, vec![line("SKU-1", "WH", 2)]));
        assert!(r.is_empty());
        let reason = Value::BulkString(b"OK\tRELEASED\tR\t5\t10\t\t1\tS\tL\t2\tout of\tstock".to_vec());
        let mut r = Reply::new("test", reason).expect("parses");
        r.string().expect("tag");
        assert_eq!(r.reservation("o-3").expect("reservation").release_reason, "out of\tstock");
        for bad in [&b"RESERVED"[..], b"RESERVED\tACTIVE", b"\xff\tA\tB"] {
            assert!(Reply::new("test", Value::BulkString(bad.to_vec())).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_order_reply_becomes_a_reservation() {
        let v = Value::Array(vec![
            Value::BulkString(b"EXPIRED".to_vec()),
            Value::BulkString(b"A\t1000\t500\tamazon\t1\tSKU-9\tWH\t4".to_vec()),
        ]);
        let res = Reply::new("test", v).expect("parses").reservation("o-1").expect("parses");
        assert_eq!(res.order_id, "o-1");
        assert_eq!(res.status, ReservationStatus::Expired);
        assert_eq!(res.lines, vec![line("SKU-9", "WH", 4)]);
        assert_eq!(res.created_at, from_millis(1000));
        assert_eq!(res.expires_at, from_millis(1500));
        assert_eq!(res.channel, "amazon");
    }
}
