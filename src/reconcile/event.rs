//! Stream entries, as the scripts write them (see `emit` in common.lua),
//! parsed into events.

use std::collections::HashMap;

/// Where an event sits: its partition, the stream id of its entry
/// (`<ms>-<seq>`), and its place among the entry's events (a script call
/// writes one entry per partition, with every event it made there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamPos {
    /// The partition whose stream it is in.
    pub partition: u32,
    /// Milliseconds part of the stream id.
    pub ms: i64,
    /// Sequence part of the stream id.
    pub seq: i64,
    /// The event's place in its entry, from 0.
    pub idx: u32,
}

impl StreamPos {
    /// Parses a stream id such as `1732700000123-4` (the entry's first event).
    pub fn parse(partition: u32, id: &str) -> Result<Self, EventError> {
        let (ms, seq) = id.split_once('-').ok_or_else(|| EventError(format!("stream id {id:?}")))?;
        let parse = |s: &str| s.parse::<i64>().map_err(|_| EventError(format!("stream id {id:?}")));
        Ok(Self { partition, ms: parse(ms)?, seq: parse(seq)?, idx: 0 })
    }

    /// The `idx`-th event of the same entry.
    pub fn at(self, idx: u32) -> Self {
        Self { idx, ..self }
    }

    /// The stream id text.
    pub fn id(&self) -> String {
        format!("{}-{}", self.ms, self.seq)
    }

    /// The smallest id after this one (for XTRIM MINID).
    pub fn next_id(&self) -> String {
        format!("{}-{}", self.ms, self.seq + 1)
    }
}

/// An entry that cannot be read (written by a different version, or damaged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable stream entry: {0}")]
pub struct EventError(pub String);

/// A change to the numbers of one SKU-location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockEvent {
    /// reserve, commit, fulfill, release, expire, adjust, po_submit,
    /// po_receive or po_cancel.
    pub kind: String,
    /// What.
    pub sku: String,
    /// Where.
    pub location_id: String,
    /// on_hand, reserved, committed, in_transit deltas.
    pub deltas: [i64; 4],
    /// The four numbers after the change.
    pub levels: [i64; 4],
    /// The order, for reservation events.
    pub order_id: Option<String>,
    /// The operation id, for adjustments.
    pub operation_id: Option<String>,
    /// Why (adjustment reason, release reason, "expired").
    pub reason: Option<String>,
    /// Redis time, ms.
    pub at_ms: i64,
    /// For reserve: the expiry, ms.
    pub expires_ms: Option<i64>,
    /// For reserve: the channel.
    pub channel: Option<String>,
}

/// Whether `kind` names a change to stock numbers: the reservation moves,
/// adjustments, and the purchase-order movements (po.lua).
fn is_stock_kind(kind: &str) -> bool {
    matches!(
        kind,
        "reserve" | "commit" | "fulfill" | "release" | "expire" | "adjust" | "po_submit" | "po_receive" | "po_cancel"
    )
}

/// One stream entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A stock change.
    Stock(Box<StockEvent>),
    /// A reservation's expiry moved (no number changed).
    Extend {
        /// The order.
        order_id: String,
        /// New expiry, ms.
        expires_ms: i64,
        /// Redis time, ms.
        at_ms: i64,
    },
    /// Selling a SKU stopped or resumed, everywhere or at one location.
    StopSell {
        /// The SKU.
        sku: String,
        /// The location; None for the whole SKU.
        location_id: Option<String>,
        /// Stopped (true) or resumed.
        stop: bool,
        /// Redis time, ms.
        at_ms: i64,
    },
}

impl Event {
    /// Parses the field map of one entry.
    pub fn parse(fields: &HashMap<String, String>) -> Result<Self, EventError> {
        let get = |k: &str| fields.get(k).map(String::as_str).ok_or_else(|| EventError(format!("field {k} missing")));
        let int = |k: &str| -> Result<i64, EventError> {
            let v = get(k)?;
            v.parse::<i64>()
                .or_else(|_| v.parse::<f64>().map(|f| f as i64))
                .map_err(|_| EventError(format!("field {k}={v:?} is not a number")))
        };
        if let Some(packed) = fields.get("v") {
            return Self::parse_packed(packed);
        }
        let opt = |k: &str| fields.get(k).filter(|v| !v.is_empty()).cloned();
        let kind = get("k")?;
        match kind {
            "extend" => Ok(Event::Extend { order_id: get("o")?.to_owned(), expires_ms: int("e")?, at_ms: int("t")? }),
            "stop_sell" | "resume_sell" => Ok(Event::StopSell {
                sku: get("s")?.to_owned(),
                location_id: opt("l"),
                stop: kind == "stop_sell",
                at_ms: int("t")?,
            }),
            k if is_stock_kind(k) => Ok(Event::Stock(Box::new(StockEvent {
                kind: kind.to_owned(),
                sku: get("s")?.to_owned(),
                location_id: get("l")?.to_owned(),
                deltas: [int("doh")?, int("drs")?, int("dcm")?, int("dit")?],
                levels: [int("oh")?, int("rs")?, int("cm")?, int("it")?],
                order_id: opt("o"),
                operation_id: opt("op"),
                reason: opt("r"),
                at_ms: int("t")?,
                expires_ms: fields.get("e").and_then(|v| v.parse().ok()),
                channel: fields.get("ch").cloned(),
            }))),
            other => Err(EventError(format!("unknown kind {other:?}"))),
        }
    }

    /// Parses a stock event packed into one tab-separated field (see `emit`
    /// in common.lua): kind, sku, location, four deltas, four levels, time,
    /// expiry, channel, order, operation, reason. The reason is last because
    /// it is the one value that may hold a tab.
    pub fn parse_packed(v: &str) -> Result<Self, EventError> {
        let parts: Vec<&str> = v.splitn(17, '\t').collect();
        let [kind, sku, loc, d0, d1, d2, d3, l0, l1, l2, l3, t, e, ch, o, op, r] = parts[..] else {
            return Err(EventError(format!("packed event has {} of 17 values: {v:?}", parts.len())));
        };
        let int = |name: &str, x: &str| -> Result<i64, EventError> {
            x.parse::<i64>()
                .or_else(|_| x.parse::<f64>().map(|f| f as i64))
                .map_err(|_| EventError(format!("{name}={x:?} is not a number")))
        };
        let opt = |x: &str| (!x.is_empty()).then(|| x.to_owned());
        if !is_stock_kind(kind) {
            return Err(EventError(format!("unknown kind {kind:?}")));
        }
        let reserve = kind == "reserve";
        Ok(Event::Stock(Box::new(StockEvent {
            kind: kind.to_owned(),
            sku: sku.to_owned(),
            location_id: loc.to_owned(),
            deltas: [int("doh", d0)?, int("drs", d1)?, int("dcm", d2)?, int("dit", d3)?],
            levels: [int("oh", l0)?, int("rs", l1)?, int("cm", l2)?, int("it", l3)?],
            order_id: opt(o),
            operation_id: opt(op),
            reason: opt(r),
            at_ms: int("t", t)?,
            expires_ms: e.parse().ok(),
            channel: reserve.then(|| ch.to_owned()),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parses_a_packed_reserve_event_with_a_tab_in_its_reason() {
        let f = fields(&[("v", "reserve\tA\tWH1\t0\t2\t0\t0\t10\t2\t0\t0\t1000\t61000\tshopify\to-1\t\tsay\there")]);
        let Event::Stock(e) = Event::parse(&f).expect("parses") else { panic!("a stock event") };
        assert_eq!(e.kind, "reserve");
        assert_eq!((e.sku.as_str(), e.location_id.as_str()), ("A", "WH1"));
        assert_eq!(e.deltas, [0, 2, 0, 0]);
        assert_eq!(e.levels, [10, 2, 0, 0]);
        assert_eq!((e.at_ms, e.expires_ms), (1000, Some(61000)));
        assert_eq!(e.channel.as_deref(), Some("shopify"));
        assert_eq!(e.order_id.as_deref(), Some("o-1"));
        assert_eq!(e.operation_id, None);
        assert_eq!(e.reason.as_deref(), Some("say\there"));
    }

    #[test]
    fn parses_a_packed_adjustment_and_refuses_a_short_or_unknown_one() {
        let f = fields(&[("v", "adjust\tA\tWH1\t-3\t0\t0\t0\t7\t0\t0\t0\t1000\t\t\t\top-9\tcount")]);
        let Event::Stock(e) = Event::parse(&f).expect("parses") else { panic!("a stock event") };
        assert_eq!(e.deltas, [-3, 0, 0, 0]);
        assert_eq!((e.expires_ms, e.channel.as_deref(), e.order_id.as_deref()), (None, None, None));
        assert_eq!(e.operation_id.as_deref(), Some("op-9"));
        assert!(Event::parse(&fields(&[("v", "adjust\tA\tWH1\t-3")])).is_err());
        let unknown = "teleport\tA\tWH1\t0\t0\t0\t0\t0\t0\t0\t0\t1\t\t\t\t\t";
        assert!(Event::parse(&fields(&[("v", unknown)])).is_err());
        let not_a_number = "adjust\tA\tWH1\tx\t0\t0\t0\t7\t0\t0\t0\t1000\t\t\t\top-9\tcount";
        assert!(Event::parse(&fields(&[("v", not_a_number)])).is_err());
    }

    #[test]
    fn parses_purchase_order_movements() {
        for kind in ["po_submit", "po_receive", "po_cancel"] {
            let v = format!("{kind}\tA\tWH1\t4\t0\t0\t-4\t9\t0\t0\t6\t1000\t\t\t\tpo:P1:receive:r1\tP1");
            let Event::Stock(e) = Event::parse(&fields(&[("v", &v)])).expect("parses") else { panic!("stock") };
            assert_eq!((e.kind.as_str(), e.deltas, e.levels), (kind, [4, 0, 0, -4], [9, 0, 0, 6]));
            assert_eq!(e.operation_id.as_deref(), Some("po:P1:receive:r1"));
        }
    }

    #[test]
    fn parses_a_reserve_event() {
        let f = fields(&[
            ("k", "reserve"),
            ("s", "A"),
            ("l", "WH1"),
            ("doh", "0"),
            ("drs", "2"),
            ("dcm", "0"),
            ("dit", "0"),
            ("oh", "10"),
            ("rs", "2"),
            ("cm", "0"),
            ("it", "0"),
            ("o", "o-1"),
            ("op", ""),
            ("r", ""),
            ("t", "1000"),
            ("e", "61000"),
            ("ch", "shopify"),
        ]);
        let Event::Stock(e) = Event::parse(&f).expect("parses") else { panic!("a stock event") };
        assert_eq!(e.deltas, [0, 2, 0, 0]);
        assert_eq!(e.levels, [10, 2, 0, 0]);
        assert_eq!(e.order_id.as_deref(), Some("o-1"));
        assert_eq!(e.operation_id, None);
        assert_eq!((e.expires_ms, e.channel.as_deref()), (Some(61000), Some("shopify")));
    }

    #[test]
    fn parses_extend_and_stop_events() {
        let e = Event::parse(&fields(&[("k", "extend"), ("o", "o-1"), ("e", "5"), ("t", "1")])).expect("extend");
        assert_eq!(e, Event::Extend { order_id: "o-1".into(), expires_ms: 5, at_ms: 1 });
        let s = Event::parse(&fields(&[("k", "stop_sell"), ("s", "A"), ("op", "x"), ("t", "9")])).expect("stop");
        assert_eq!(s, Event::StopSell { sku: "A".into(), location_id: None, stop: true, at_ms: 9 });
        let at = [("k", "resume_sell"), ("s", "A"), ("l", "WH1"), ("op", "x"), ("t", "9")];
        let s = Event::parse(&fields(&at)).expect("resume at a location");
        assert_eq!(s, Event::StopSell { sku: "A".into(), location_id: Some("WH1".into()), stop: false, at_ms: 9 });
        let everywhere = [("k", "stop_sell"), ("s", "A"), ("l", ""), ("op", "x"), ("t", "9")];
        let s = Event::parse(&fields(&everywhere)).expect("stop everywhere");
        assert_eq!(s, Event::StopSell { sku: "A".into(), location_id: None, stop: true, at_ms: 9 });
    }

    #[test]
    fn rejects_unknown_kinds_and_missing_fields() {
        assert!(Event::parse(&fields(&[("k", "teleport")])).is_err());
        assert!(Event::parse(&fields(&[("k", "adjust"), ("s", "A")])).is_err());
    }

    #[test]
    fn stream_positions_parse_and_order() {
        let a = StreamPos::parse(3, "1000-1").expect("id");
        let b = StreamPos::parse(3, "1000-2").expect("id");
        assert!(a < b);
        assert_eq!(a.id(), "1000-1");
        assert_eq!(a.next_id(), "1000-2");
        assert!(StreamPos::parse(0, "nope").is_err());
    }
}
