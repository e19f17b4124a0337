//! What waits in the event streams for Postgres, read from Redis when asked
//! (by `/metrics` and `/readyz?verbose`), so that it rises while the
//! reconciler fails, on every replica, whether or not it leads: entries are
//! trimmed only once written and acknowledged, so each stream holds exactly
//! what is not yet in Postgres, and its first entry is the oldest of those.

use redis::Value;

use crate::reservation::{Engine, EngineError};

/// The streams' backlog.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Stream entries not yet in Postgres (a script call writes one entry
    /// per partition it changed, holding each of its events there).
    pub entries: u64,
    /// Milliseconds from the oldest of them to now, both in Redis time
    /// (stream ids are Redis time; no local clock is involved). 0 when
    /// nothing waits.
    pub lag_ms: i64,
}

/// Reads the backlog: the streams' lengths, then, for the streams with
/// entries, their first entry and Redis's clock in one round trip.
pub async fn backlog(engine: &Engine) -> Result<Backlog, EngineError> {
    let lens = engine.stream_lengths().await?;
    let entries = lens.iter().sum();
    let waiting: Vec<usize> = lens.iter().enumerate().filter(|(_, n)| **n > 0).map(|(p, _)| p).collect();
    if waiting.is_empty() {
        return Ok(Backlog::default());
    }
    let keys = engine.keys();
    let mut pipe = redis::pipe();
    pipe.cmd("TIME");
    for p in &waiting {
        let p = u32::try_from(*p).unwrap_or(u32::MAX);
        pipe.cmd("XRANGE").arg(&keys.partition(p).ev).arg("-").arg("+").arg("COUNT").arg(1);
    }
    let mut conn = engine.connection().await?;
    let replies: Vec<Value> = pipe.query_async(&mut conn).await?;
    let protocol = |detail: String| EngineError::Protocol { script: "XRANGE", detail };
    let (time, heads) = replies.split_first().ok_or_else(|| protocol("no reply".into()))?;
    let (secs, micros): (i64, i64) = redis::from_redis_value_ref(time).map_err(|e| protocol(format!("TIME: {e}")))?;
    let now_ms = secs.saturating_mul(1000).saturating_add(micros / 1000);
    let oldest = heads.iter().filter_map(first_entry_ms).min();
    Ok(Backlog { entries, lag_ms: oldest.map_or(0, |ms| now_ms.saturating_sub(ms).max(0)) })
}

/// The ms part of the id of the one entry an `XRANGE ... COUNT 1` answered
/// (None when the stream was emptied meanwhile).
fn first_entry_ms(reply: &Value) -> Option<i64> {
    let Value::Array(entries) = reply else { return None };
    let Value::Array(entry) = entries.first()? else { return None };
    let id = match entry.first()? {
        Value::BulkString(b) => std::str::from_utf8(b).ok()?,
        Value::SimpleString(s) => s.as_str(),
        _ => return None,
    };
    id.split_once('-')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_entry_time_is_read_from_an_xrange_reply() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let entry = Value::Array(vec![bulk("1764495000123-4"), Value::Array(vec![bulk("v"), bulk("x")])]);
        assert_eq!(first_entry_ms(&Value::Array(vec![entry])), Some(1_764_495_000_123));
        assert_eq!(first_entry_ms(&Value::Array(vec![])), None, "emptied meanwhile");
        assert_eq!(first_entry_ms(&Value::Nil), None);
        assert_eq!(first_entry_ms(&Value::Array(vec![Value::Array(vec![bulk("nonsense")])])), None);
    }
}
