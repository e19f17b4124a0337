//! What can go wrong in the engine.

use std::time::Duration;

/// Errors from the reservation engine. Business answers (out of stock, stop
/// sell, unknown SKU on reserve) are not errors; see `ReserveOutcome`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// No reservation with this order id (or its tombstone has lapsed).
    #[error("no reservation for order {0}")]
    ReservationNotFound(String),
    /// A stock change names a SKU the catalog never registered.
    #[error("sku {0} is not in the catalog")]
    UnknownSku(String),
    /// The reservation's state forbids the transition; nothing changed.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A number of the request is out of range, alone or with what is
    /// stored (a change that would take a level past `MAX_LEVEL`); nothing
    /// changed.
    #[error("{field}: {detail}")]
    OutOfRange {
        /// The request field at fault.
        field: &'static str,
        /// Why.
        detail: String,
    },
    /// Redis could not be reached or dropped the connection.
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// Redis did not answer in time. The call may or may not have been
    /// applied; retrying with the same order or operation id is safe.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// A script answered something the engine does not understand (a bug).
    #[error("unexpected reply from {script}: {detail}")]
    Protocol {
        /// Which script.
        script: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl From<redis::RedisError> for EngineError {
    fn from(e: redis::RedisError) -> Self {
        if e.is_timeout() {
            EngineError::Unavailable(format!("timed out: {e}"))
        } else if e.is_io_error()
            || e.is_connection_refusal()
            || e.is_connection_dropped()
            || e.is_unrecoverable_error()
        {
            EngineError::Unavailable(e.to_string())
        } else {
            EngineError::Protocol { script: "redis", detail: e.to_string() }
        }
    }
}

impl From<deadpool_redis::PoolError> for EngineError {
    fn from(e: deadpool_redis::PoolError) -> Self {
        match e {
            deadpool_redis::PoolError::Backend(e) => e.into(),
            other => EngineError::Unavailable(other.to_string()),
        }
    }
}
