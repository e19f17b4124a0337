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
    /// Wraps a reply, which must be an array.
    pub fn new(script: &'static str, v: Value) -> Result<Self, EngineError> {
        match v {
            Value::Array(items) => Ok(Self { script, items: items.into_iter() }),
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

    /// Reads an order reply (see `order_reply` in common.lua) into a reservation.
    pub fn reservation(&mut self, order_id: &str) -> Result<Reservation, EngineError> {
        let status = self.string()?;
        let status = ReservationStatus::from_script(&status).ok_or_else(|| self.bad(format!("status {status:?}")))?;
        let created = self.int()?;
        let expires = self.int()?;
        let channel = self.string()?;
        let release_reason = self.string()?;
        let n = self.int()?;
        let mut lines = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
        for _ in 0..n {
            lines.push(ReservationLine { sku: self.string()?, location_id: self.string()?, quantity: self.int()? });
        }
        Ok(Reservation {
            order_id: order_id.to_owned(),
            status,
            lines,
            created_at: from_millis(created),
            expires_at: from_millis(expires),
            channel,
            release_reason,
        })
    }
}

/// A Redis-clock millisecond timestamp as a `SystemTime`.
pub fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}
