//! Request validation and domain <-> proto conversion. Validation collects
//! every bad field before answering, so one INVALID_ARGUMENT names them all.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tonic::Status;
use tonic_types::FieldViolation;

use super::error::invalid;
use super::proto;
use crate::domain::{IdError, Levels, LocationLevels, Reservation, ReservationStatus, SkuLevels};

/// Collects field violations while a request is parsed.
#[derive(Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    /// Records a violation of `field`.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Parses a required identifier; records a violation and returns None if bad.
    pub fn id<T>(&mut self, field: &str, value: String, parse: fn(String) -> Result<T, IdError>) -> Option<T> {
        match parse(value) {
            Ok(v) => Some(v),
            Err(e) => {
                self.add(field, e.to_string());
                None
            }
        }
    }

    /// Parses an optional identifier: empty is None.
    pub fn optional_id<T>(&mut self, field: &str, value: String, parse: fn(String) -> Result<T, IdError>) -> Option<T> {
        if value.is_empty() { None } else { self.id(field, value, parse) }
    }

    /// Records the error of a parse, if any.
    pub fn check<T, E: ToString>(&mut self, field: &str, r: Result<T, E>) -> Option<T> {
        r.map_err(|e| self.add(field, e.to_string())).ok()
    }

    /// Ok when nothing was recorded, else INVALID_ARGUMENT naming every field.
    pub fn finish(self) -> Result<(), Status> {
        if self.0.is_empty() { Ok(()) } else { Err(invalid(self.0)) }
    }
}

/// A protobuf Duration as a std Duration; negative or malformed is an error.
pub fn duration(d: &prost_types::Duration) -> Result<Duration, String> {
    if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 {
        return Err("must be a non-negative duration".into());
    }
    Ok(Duration::new(u64::try_from(d.seconds).unwrap_or(0), u32::try_from(d.nanos).unwrap_or(0)))
}

/// A SystemTime as a protobuf Timestamp.
pub fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

fn status(s: ReservationStatus) -> proto::ReservationStatus {
    match s {
        ReservationStatus::Active => proto::ReservationStatus::Active,
        ReservationStatus::Committed => proto::ReservationStatus::Committed,
        ReservationStatus::Fulfilled => proto::ReservationStatus::Fulfilled,
        ReservationStatus::Released => proto::ReservationStatus::Released,
        ReservationStatus::Expired => proto::ReservationStatus::Expired,
    }
}

impl From<Reservation> for proto::Reservation {
    fn from(r: Reservation) -> Self {
        proto::Reservation {
            order_id: r.order_id,
            status: status(r.status).into(),
            lines: r
                .lines
                .into_iter()
                .map(|l| proto::ReservationLine { sku: l.sku, location_id: l.location_id, quantity: l.quantity })
                .collect(),
            created_at: Some(timestamp(r.created_at)),
            expires_at: Some(timestamp(r.expires_at)),
            channel: r.channel,
            release_reason: r.release_reason,
        }
    }
}

/// Levels at one location, flat as the API lists them.
pub fn location_level(location_id: String, l: Levels) -> proto::LocationLevel {
    proto::LocationLevel {
        location_id,
        on_hand: l.on_hand,
        reserved: l.reserved,
        committed: l.committed,
        in_transit: l.in_transit,
        available: l.available(),
        stop_sell: false,
    }
}

impl From<Levels> for proto::Levels {
    fn from(l: Levels) -> Self {
        proto::Levels {
            on_hand: l.on_hand,
            reserved: l.reserved,
            committed: l.committed,
            in_transit: l.in_transit,
            available: l.available(),
        }
    }
}

impl From<SkuLevels> for proto::SkuAvailability {
    fn from(s: SkuLevels) -> Self {
        let total = s.total();
        proto::SkuAvailability {
            levels: s
                .locations
                .into_iter()
                .map(|LocationLevels { location_id, levels, stop_sell }| proto::LocationLevel {
                    stop_sell,
                    ..location_level(location_id, levels)
                })
                .collect(),
            total: Some(total.into()),
            stop_sell: s.stop_sell,
            known: s.known,
            sku: s.sku,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_must_be_non_negative() {
        assert_eq!(duration(&prost_types::Duration { seconds: 5, nanos: 0 }), Ok(Duration::from_secs(5)));
        assert!(duration(&prost_types::Duration { seconds: -1, nanos: 0 }).is_err());
        assert!(duration(&prost_types::Duration { seconds: 0, nanos: -1 }).is_err());
    }

    #[test]
    fn violations_name_every_field() {
        let mut v = Violations::default();
        let _ = v.id("order_id", String::new(), crate::domain::OrderId::parse);
        let _ = v.id("lines[0].sku", "a b".into(), crate::domain::Sku::parse);
        let status = v.finish().expect_err("two violations");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("order_id"));
        assert!(status.message().contains("lines[0].sku"));
    }
}
