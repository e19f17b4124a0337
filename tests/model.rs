//! Model-based test of the reservation engine, driven directly (no gRPC, no
//! Postgres) against the shared Redis under a key prefix of its own.
//!
//! Random sequences of every engine operation (reserve, reserve again, extend,
//! commit, fulfil, release, adjust, set on hand, a replayed adjustment, stop
//! sell for a SKU or at one location, a cycle count, a count submitted
//! again, the resolution of its investigation, SKU registration,
//! purchase-order submit, receipt (and one beyond what is in transit),
//! cancel and their replays, time passing, the expiry sweep, calls on
//! unknown orders) run against the real scripts and against a small model
//! in this file. After every step the test checks, on what Redis holds:
//! - the invariants of DESIGN.md ("The five numbers") for every SKU-location;
//! - that the per-partition hold records add up to reserved and committed,
//!   and that the expiry index lists exactly the uncommitted holds;
//! - that levels, holds and every order's reservation equal the model's.
//!
//! The model follows the engine's lazy expiry exactly: a hold past its expiry
//! is EXPIRED at once, but its stock only returns when a script touches its
//! partition or the sweeper runs.
//!
//! Time: every ttl is 30 s plus a whole number of minutes, and the clock only
//! moves in whole minutes, so no expiry (and no forgetting of an operation id)
//! is ever within 30 s of "now": the real milliseconds Redis TIME moves during
//! a case cannot change an outcome.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail, ensure};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use stockd::cycle_count::{CountAction, CountGates, decide};
use stockd::domain::{
    Channel, Levels, LineQuantity, LocationId, OnHand, OperationId, OrderId, ReleaseReason, Reservation,
    ReservationLine, ReservationStatus, ReserveLine, ReserveOutcome, ReserveRequest, Shortage, Sku, Ttl,
};
use stockd::reservation::{
    Adjusted, Counted, Engine, EngineError, EngineSettings, Keys, PartitionRestore, PoMoveKind, PoMoveLine, PoMoved,
    Resolved, StockChange,
};

/// SKUs of a case. The last one is not registered at the start.
const SKUS: [&str; 6] = ["S0", "S1", "S2", "S3", "S4", "S5"];
/// How many of `SKUS` are registered when a case starts.
const REGISTERED_AT_START: usize = 5;
/// Locations; the usual allocation order is L1 then L2.
const LOCS: [&str; 2] = ["L1", "L2"];
/// Few partitions, so that SKUs share partitions and orders cross them
/// (with 4: S0 and S2 share one, S1 and S3 another).
const PARTITIONS: u32 = 4;
const CHANNEL: &str = "model";
const DEFAULT_TTL_SECS: i64 = 90;
const RETENTION_SECS: i64 = 1830;
const MINUTE: i64 = 60;

// ---------------------------------------------------------------------------
// A store of its own for each case or test.

fn settings() -> Result<EngineSettings> {
    Ok(EngineSettings {
        default_ttl: Ttl::parse(secs(DEFAULT_TTL_SECS))?,
        tombstone: Duration::from_secs(3600),
        operation_retention: secs(RETENTION_SECS),
        expiry_batch: 100,
        call_timeout: Duration::from_secs(2),
        pool_size: 2,
        reserve_batch: 64,
        reserve_calls: 2,
    })
}

fn secs(s: i64) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}

/// An engine under a fresh key prefix; dropping it deletes the prefix's keys.
struct Store {
    engine: Engine,
    keys: Keys,
    url: String,
    prefix: String,
}

impl Store {
    /// Sets the store up as a fresh one (what the rebuild does for an empty
    /// Postgres): every partition gets its generation marker, then the
    /// store's marker is written and the engine marked ready.
    async fn open(partitions: u32) -> Result<Store> {
        let url = common::redis_url();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let prefix = format!("t:model:{}", &id[..16]);
        let keys = Keys::new(&prefix, partitions).map_err(|e| anyhow!(e))?;
        let engine = Engine::new(&url, keys.clone(), settings()?)?;
        let store = Store { engine, keys, url, prefix };
        let generation = format!("gen-{id}");
        for p in 0..partitions {
            let written = store.engine.restore_partition(p, &generation, &PartitionRestore::default()).await?;
            ensure!(written, "partition {p} of a fresh prefix already had a marker");
        }
        store.engine.set_generation(&generation).await?;
        store.engine.set_ready(true);
        Ok(store)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(common::delete_prefix(&url, &prefix));
            }
        })
        .join();
    }
}

fn sku(i: usize) -> Result<Sku> {
    Ok(Sku::parse(SKUS[i])?)
}

fn loc(i: usize) -> Result<LocationId> {
    Ok(LocationId::parse(LOCS[i])?)
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

// ---------------------------------------------------------------------------
// Operations.

/// One reserve line: SKU index, location index (`None`: allocate), quantity.
#[derive(Clone, PartialEq, Eq)]
struct LineSpec {
    sku: usize,
    loc: Option<usize>,
    qty: i64,
}

impl std::fmt::Debug for LineSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = self.loc.map_or("*", |l| LOCS[l]);
        write!(f, "{}@{} x{}", SKUS[self.sku], at, self.qty)
    }
}

#[derive(Clone, Copy, Debug)]
enum TtlChoice {
    /// The engine's default (90 s); an extension with it asks for 90 s.
    Default,
    S30,
    S90,
    S150,
}

impl TtlChoice {
    fn secs(self) -> i64 {
        match self {
            Self::Default | Self::S90 => 90,
            Self::S30 => 30,
            Self::S150 => 150,
        }
    }

    fn for_reserve(self) -> Result<Option<Ttl>> {
        match self {
            Self::Default => Ok(None),
            other => Ok(Some(Ttl::parse(secs(other.secs()))?)),
        }
    }
}

/// The allocation order passed with a reserve.
#[derive(Clone, Copy, Debug)]
enum Priority {
    L1ThenL2,
    L2ThenL1,
    /// L2 unranked: after the ranked ones.
    OnlyL1,
    /// Nothing ranked: by location id.
    None,
}

impl Priority {
    fn locations(self) -> Vec<usize> {
        match self {
            Self::L1ThenL2 => vec![0, 1],
            Self::L2ThenL1 => vec![1, 0],
            Self::OnlyL1 => vec![0],
            Self::None => vec![],
        }
    }
}

/// How an earlier order id is reserved again.
#[derive(Clone, Copy, Debug)]
enum Again {
    /// The very same lines.
    SameLines,
    /// The same quantity per SKU, one line per SKU, no location.
    SameTotalsUnplaced,
    /// The first line asks for one more unit.
    OneMoreUnit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Extend,
    Commit,
    Fulfill,
    Release,
}

#[derive(Clone, Copy, Debug)]
enum UnknownCall {
    Get,
    Do(Kind),
}

/// One step. `pick` selects an earlier order id (or adjustment), modulo how
/// many there are.
#[derive(Clone, Debug)]
enum Op {
    Reserve {
        lines: Vec<LineSpec>,
        ttl: TtlChoice,
        priority: Priority,
    },
    ReserveAgain {
        pick: usize,
        how: Again,
    },
    Extend {
        pick: usize,
        ttl: TtlChoice,
    },
    Commit {
        pick: usize,
    },
    Fulfill {
        pick: usize,
    },
    Release {
        pick: usize,
    },
    Adjust {
        sku: usize,
        loc: usize,
        delta: i64,
    },
    SetOnHand {
        sku: usize,
        loc: usize,
        on_hand: i64,
    },
    ReplayAdjust {
        pick: usize,
    },
    StopSell {
        sku: usize,
        stop: bool,
    },
    /// Selling stopped or resumed at one location.
    StopAt {
        sku: usize,
        loc: usize,
        stop: bool,
    },
    /// A cycle count (default gates).
    Count {
        sku: usize,
        loc: usize,
        counted: i64,
    },
    /// An earlier count submitted again with its operation id.
    ReplayCount {
        pick: usize,
    },
    /// An earlier count's investigation resolved at `accepted`.
    ResolveCount {
        pick: usize,
        accepted: i64,
    },
    Register {
        sku: usize,
    },
    /// The clock moves; with `sweep`, the sweeper then runs at once.
    Advance {
        minutes: i64,
        sweep: bool,
    },
    Sweep,
    UnknownOrder {
        call: UnknownCall,
    },
    /// A new PO of `qty` of one SKU-location is submitted (in_transit up).
    PoSubmit {
        sku: usize,
        loc: usize,
        qty: i64,
    },
    /// A receipt of an earlier PO: up to what it still expects, or (`over`)
    /// more than is in transit there, which the engine must refuse.
    PoReceive {
        pick: usize,
        qty: i64,
        over: bool,
    },
    /// An earlier PO is cancelled: what it still expects leaves in_transit.
    PoCancel {
        pick: usize,
    },
    /// An earlier PO movement is sent again with its operation id.
    PoReplay {
        pick: usize,
    },
}

#[derive(Clone, Debug)]
struct Case {
    /// Initial on_hand of S0..S4 at L1 and L2.
    stock: [[i64; 2]; REGISTERED_AT_START],
    ops: Vec<Op>,
}

fn sku_index() -> impl Strategy<Value = usize> {
    prop_oneof![15 => 0..REGISTERED_AT_START, 1 => Just(REGISTERED_AT_START)]
}

fn line() -> impl Strategy<Value = LineSpec> {
    (sku_index(), prop_oneof![Just(None), (0..2usize).prop_map(Some)], 1..=5i64).prop_map(|(sku, loc, qty)| LineSpec {
        sku,
        loc,
        qty,
    })
}

fn ttl_choice() -> impl Strategy<Value = TtlChoice> {
    prop_oneof![Just(TtlChoice::Default), Just(TtlChoice::S30), Just(TtlChoice::S90), Just(TtlChoice::S150)]
}

fn op() -> impl Strategy<Value = Op> {
    let pick = 0..12usize;
    let kind = prop_oneof![Just(Kind::Extend), Just(Kind::Commit), Just(Kind::Fulfill), Just(Kind::Release)];
    prop_oneof![
        8 => (
            prop::collection::vec(line(), 1..=3),
            ttl_choice(),
            prop_oneof![
                5 => Just(Priority::L1ThenL2),
                1 => Just(Priority::L2ThenL1),
                1 => Just(Priority::OnlyL1),
                1 => Just(Priority::None),
            ],
        )
            .prop_map(|(lines, ttl, priority)| Op::Reserve { lines, ttl, priority }),
        3 => (
            pick.clone(),
            prop_oneof![Just(Again::SameLines), Just(Again::SameTotalsUnplaced), Just(Again::OneMoreUnit)],
        )
            .prop_map(|(pick, how)| Op::ReserveAgain { pick, how }),
        2 => (pick.clone(), ttl_choice()).prop_map(|(pick, ttl)| Op::Extend { pick, ttl }),
        3 => pick.clone().prop_map(|pick| Op::Commit { pick }),
        3 => pick.clone().prop_map(|pick| Op::Fulfill { pick }),
        3 => pick.clone().prop_map(|pick| Op::Release { pick }),
        3 => (sku_index(), 0..2usize, -6..=8i64).prop_map(|(sku, loc, delta)| Op::Adjust { sku, loc, delta }),
        2 => (sku_index(), 0..2usize, 0..=12i64).prop_map(|(sku, loc, on_hand)| Op::SetOnHand { sku, loc, on_hand }),
        2 => pick.clone().prop_map(|pick| Op::ReplayAdjust { pick }),
        1 => (sku_index(), any::<bool>()).prop_map(|(sku, stop)| Op::StopSell { sku, stop }),
        1 => (sku_index(), 0..2usize, any::<bool>()).prop_map(|(sku, loc, stop)| Op::StopAt { sku, loc, stop }),
        3 => (sku_index(), 0..2usize, 0..=14i64).prop_map(|(sku, loc, counted)| Op::Count { sku, loc, counted }),
        1 => pick.clone().prop_map(|pick| Op::ReplayCount { pick }),
        2 => (pick.clone(), 0..=12i64).prop_map(|(pick, accepted)| Op::ResolveCount { pick, accepted }),
        1 => sku_index().prop_map(|sku| Op::Register { sku }),
        5 => (prop_oneof![9 => 1..=3i64, 1 => Just(31i64)], any::<bool>())
            .prop_map(|(minutes, sweep)| Op::Advance { minutes, sweep }),
        2 => Just(Op::Sweep),
        1 => prop_oneof![Just(UnknownCall::Get), kind.prop_map(UnknownCall::Do)]
            .prop_map(|call| Op::UnknownOrder { call }),
        2 => (sku_index(), 0..2usize, 1..=8i64).prop_map(|(sku, loc, qty)| Op::PoSubmit { sku, loc, qty }),
        2 => (pick.clone(), 1..=6i64, prop_oneof![5 => Just(false), 1 => Just(true)])
            .prop_map(|(pick, qty, over)| Op::PoReceive { pick, qty, over }),
        1 => pick.clone().prop_map(|pick| Op::PoCancel { pick }),
        1 => pick.prop_map(|pick| Op::PoReplay { pick }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (prop::array::uniform5(prop::array::uniform2(0..=12i64)), prop::collection::vec(op(), 1..=40))
        .prop_map(|(stock, ops)| Case { stock, ops })
}

// ---------------------------------------------------------------------------
// The model.

/// A held line: SKU index, location index, quantity.
type Line = (usize, usize, i64);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Active,
    Committed,
    Fulfilled,
    Released,
}

#[derive(Clone, Debug)]
struct ModelOrder {
    st: St,
    /// Virtual seconds.
    created: i64,
    ea: i64,
    /// One per SKU-location, in the order the engine lists them.
    lines: Vec<Line>,
    /// Partitions that still have this order's hold record.
    held: BTreeSet<u32>,
    /// expires_at - created_at, while never extended.
    exact_ttl: Option<i64>,
}

impl ModelOrder {
    fn status(&self, now: i64) -> ReservationStatus {
        match self.st {
            St::Active if now >= self.ea => ReservationStatus::Expired,
            St::Active => ReservationStatus::Active,
            St::Committed => ReservationStatus::Committed,
            St::Fulfilled => ReservationStatus::Fulfilled,
            St::Released => ReservationStatus::Released,
        }
    }
}

/// What a reserve should answer.
enum ReserveExpect {
    Reserved(Vec<Line>),
    Existing(ReservationStatus, Vec<Line>),
    /// FailedPrecondition.
    Refused,
    Unknown(Vec<String>),
    Stop(Vec<String>),
    Short(Vec<Shortage>),
}

impl std::fmt::Debug for ReserveExpect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Reserved(lines) => write!(f, "Reserved {}", show_lines(lines)),
            Self::Existing(st, lines) => write!(f, "Existing {st:?} {}", show_lines(lines)),
            Self::Refused => write!(f, "FailedPrecondition"),
            Self::Unknown(skus) => write!(f, "UnknownSku {skus:?}"),
            Self::Stop(skus) => write!(f, "StopSell {skus:?}"),
            Self::Short(short) => write!(f, "InsufficientStock {}", show_shortages(short)),
        }
    }
}

/// What extend, commit, fulfil or release should answer.
enum TransitionExpect {
    NotFound,
    Refused,
    Ok(ReservationStatus, Vec<Line>),
}

impl std::fmt::Debug for TransitionExpect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotFound => write!(f, "ReservationNotFound"),
            Self::Refused => write!(f, "FailedPrecondition"),
            Self::Ok(st, lines) => write!(f, "Ok {st:?} {}", show_lines(lines)),
        }
    }
}

/// What a PO movement should answer.
#[derive(Debug)]
enum PoExpect {
    UnknownSku,
    Replayed,
    /// in_transit would fall below zero: refused, nothing changed.
    Short,
    Applied,
}

#[derive(Debug)]
enum AdjustExpect {
    UnknownSku,
    Replayed(Levels),
    Applied(Levels, i64),
}

/// What a resolution should answer: like an adjustment, and whether it
/// lifted a stop.
#[derive(Debug)]
enum ResolveExpect {
    UnknownSku,
    Replayed(Levels),
    Applied(Levels, i64, bool),
}

struct Model {
    /// Virtual seconds the clock was moved.
    now: i64,
    part: [u32; 6],
    registered: [bool; 6],
    stopped: [bool; 6],
    /// Selling stopped at a location (a count over the stop gate, or by hand).
    stopped_at: [[bool; 2]; 6],
    levels: [[Levels; 2]; 6],
    /// An adjustment lowered on_hand here (only then may available be < 0).
    shrunk: [[bool; 2]; 6],
    orders: BTreeMap<String, ModelOrder>,
    /// Ids of `orders` in the order they were reserved.
    placed: Vec<String>,
    /// Operation id -> when it was (last) applied.
    applied_ops: BTreeMap<String, i64>,
}

fn per_sku(lines: impl Iterator<Item = (usize, i64)>) -> BTreeMap<usize, i64> {
    let mut m = BTreeMap::new();
    for (s, q) in lines {
        *m.entry(s).or_insert(0) += q;
    }
    m
}

/// Merges lines of the same SKU-location, in order of first appearance.
fn merge(held: Vec<Line>) -> Vec<Line> {
    let mut out: Vec<Line> = Vec::new();
    for (s, l, q) in held {
        match out.iter_mut().find(|(s2, l2, _)| *s2 == s && *l2 == l) {
            Some(x) => x.2 += q,
            None => out.push((s, l, q)),
        }
    }
    out
}

impl Model {
    fn new(keys: &Keys) -> Model {
        Model {
            now: 0,
            part: SKUS.map(|s| keys.partition_of(s)),
            registered: [false; 6],
            stopped: [false; 6],
            stopped_at: [[false; 2]; 6],
            levels: [[Levels::default(); 2]; 6],
            shrunk: [[false; 2]; 6],
            orders: BTreeMap::new(),
            placed: Vec::new(),
            applied_ops: BTreeMap::new(),
        }
    }

    fn parts(&self, skus: impl Iterator<Item = usize>) -> BTreeSet<u32> {
        skus.map(|s| self.part[s]).collect()
    }

    /// Expired holds per partition, as a script touching it would find them.
    fn due(&self) -> BTreeMap<u32, u32> {
        let mut due = BTreeMap::new();
        for o in self.orders.values() {
            if o.st == St::Active && self.now >= o.ea {
                for p in &o.held {
                    *due.entry(*p).or_insert(0) += 1;
                }
            }
        }
        due
    }

    /// A script touched these partitions: their expired holds return their
    /// stock. Returns how many holds each partition released.
    fn touch(&mut self, parts: &BTreeSet<u32>) -> BTreeMap<u32, u32> {
        let mut released = BTreeMap::new();
        for o in self.orders.values_mut() {
            if o.st != St::Active || self.now < o.ea {
                continue;
            }
            let hit: Vec<u32> = o.held.intersection(parts).copied().collect();
            for p in hit {
                for &(s, l, q) in &o.lines {
                    if self.part[s] == p {
                        self.levels[s][l].reserved -= q;
                    }
                }
                o.held.remove(&p);
                *released.entry(p).or_insert(0) += 1;
            }
        }
        released
    }

    /// Applies `f` to the levels of every line still held, then drops (or,
    /// with `keep`, keeps) the holds.
    fn move_holds(&mut self, id: &str, keep: bool, f: impl Fn(&mut Levels, i64)) {
        let Some(o) = self.orders.get_mut(id) else { return };
        for &(s, l, q) in &o.lines {
            if o.held.contains(&self.part[s]) {
                f(&mut self.levels[s][l], q);
            }
        }
        if !keep {
            o.held.clear();
        }
    }

    /// The allocation rule of reserve.lua. A stopped location gives
    /// nothing; a line that only stopped locations' stock could fill (or an
    /// explicit stopped location) refuses the order as STOP_SELL.
    fn allocate(&self, lines: &[LineSpec], priority: Priority) -> Result<Vec<Line>, ReserveExpect> {
        let rank = priority.locations();
        let mut order = [0usize, 1];
        order.sort_by_key(|l| (rank.iter().position(|r| r == l).unwrap_or(rank.len()), LOCS[*l]));
        let mut lv = self.levels;
        let mut held = Vec::new();
        let mut short = Vec::new();
        let mut halted: Vec<String> = Vec::new();
        for ln in lines {
            let (s, q) = (ln.sku, ln.qty);
            let stopped = |l: usize| self.stopped_at[s][l];
            let halt = |halted: &mut Vec<String>| {
                if !halted.iter().any(|h| h == SKUS[s]) {
                    halted.push(SKUS[s].to_owned());
                }
            };
            match ln.loc {
                Some(l) if stopped(l) => halt(&mut halted),
                Some(l) => {
                    let a = lv[s][l].available();
                    if a >= q {
                        lv[s][l].reserved += q;
                        held.push((s, l, q));
                    } else {
                        short.push(Shortage {
                            sku: SKUS[s].into(),
                            location_id: LOCS[l].into(),
                            requested: q,
                            available: a.max(0),
                        });
                    }
                }
                None => {
                    let open: Vec<usize> = order.iter().copied().filter(|&l| !stopped(l)).collect();
                    let total: i64 = open.iter().map(|&l| lv[s][l].available().max(0)).sum();
                    let blocked: i64 =
                        order.iter().filter(|&&l| stopped(l)).map(|&l| lv[s][l].available().max(0)).sum();
                    if let Some(&l) = open.iter().find(|&&l| lv[s][l].available() >= q) {
                        lv[s][l].reserved += q;
                        held.push((s, l, q));
                    } else if total >= q {
                        let mut left = q;
                        for &l in &open {
                            let take = lv[s][l].available().max(0).min(left);
                            if take > 0 {
                                lv[s][l].reserved += take;
                                held.push((s, l, take));
                                left -= take;
                            }
                        }
                    } else if total + blocked >= q {
                        halt(&mut halted);
                    } else {
                        short.push(Shortage {
                            sku: SKUS[s].into(),
                            location_id: String::new(),
                            requested: q,
                            available: total,
                        });
                    }
                }
            }
        }
        if !halted.is_empty() {
            Err(ReserveExpect::Stop(halted))
        } else if !short.is_empty() {
            Err(ReserveExpect::Short(short))
        } else {
            Ok(merge(held))
        }
    }

    /// A reserve, after its partitions were touched.
    fn reserve(&mut self, id: &str, lines: &[LineSpec], ttl: i64, priority: Priority) -> ReserveExpect {
        if let Some(o) = self.orders.get(id) {
            let asked = per_sku(lines.iter().map(|l| (l.sku, l.qty)));
            let held = per_sku(o.lines.iter().map(|&(s, _, q)| (s, q)));
            if asked != held {
                return ReserveExpect::Refused;
            }
            return match o.status(self.now) {
                st @ (ReservationStatus::Active | ReservationStatus::Committed | ReservationStatus::Fulfilled) => {
                    ReserveExpect::Existing(st, o.lines.clone())
                }
                _ => ReserveExpect::Refused,
            };
        }
        let mut seen = Vec::new();
        let (mut unknown, mut stopped) = (Vec::new(), Vec::new());
        for l in lines {
            if seen.contains(&l.sku) {
                continue;
            }
            seen.push(l.sku);
            if !self.registered[l.sku] {
                unknown.push(SKUS[l.sku].to_owned());
            } else if self.stopped[l.sku] {
                stopped.push(SKUS[l.sku].to_owned());
            }
        }
        if !unknown.is_empty() {
            return ReserveExpect::Unknown(unknown);
        }
        if !stopped.is_empty() {
            return ReserveExpect::Stop(stopped);
        }
        match self.allocate(lines, priority) {
            Err(refused) => refused,
            Ok(held) => {
                for &(s, l, q) in &held {
                    self.levels[s][l].reserved += q;
                }
                let order = ModelOrder {
                    st: St::Active,
                    created: self.now,
                    ea: self.now + ttl,
                    held: self.parts(held.iter().map(|l| l.0)),
                    lines: held.clone(),
                    exact_ttl: Some(ttl),
                };
                self.orders.insert(id.to_owned(), order);
                self.placed.push(id.to_owned());
                ReserveExpect::Reserved(held)
            }
        }
    }

    /// Extend, commit, fulfil or release, including the expiry its script
    /// does first in the order's partitions.
    fn transition(&mut self, kind: Kind, id: &str, ttl: i64) -> TransitionExpect {
        let Some(o) = self.orders.get(id) else { return TransitionExpect::NotFound };
        let parts = self.parts(o.lines.iter().map(|l| l.0));
        self.touch(&parts);
        let Some(o) = self.orders.get(id) else { return TransitionExpect::NotFound };
        let st = o.status(self.now);
        use ReservationStatus as R;
        let new_st = match (kind, st) {
            (Kind::Extend, R::Active) => {
                let now = self.now;
                if let Some(o) = self.orders.get_mut(id) {
                    o.ea = now + ttl;
                    o.exact_ttl = None;
                }
                St::Active
            }
            (Kind::Commit, R::Committed) | (Kind::Fulfill, R::Fulfilled) => o.st,
            (Kind::Release, R::Released | R::Expired) => o.st,
            (Kind::Commit, R::Active) => {
                self.move_holds(id, true, |lv, q| {
                    lv.reserved -= q;
                    lv.committed += q;
                });
                St::Committed
            }
            (Kind::Fulfill, R::Active) => {
                self.move_holds(id, false, |lv, q| {
                    lv.on_hand -= q;
                    lv.reserved -= q;
                });
                St::Fulfilled
            }
            (Kind::Fulfill, R::Committed) => {
                self.move_holds(id, false, |lv, q| {
                    lv.on_hand -= q;
                    lv.committed -= q;
                });
                St::Fulfilled
            }
            (Kind::Release, R::Active) => {
                self.move_holds(id, false, |lv, q| lv.reserved -= q);
                St::Released
            }
            (Kind::Release, R::Committed) => {
                self.move_holds(id, false, |lv, q| lv.committed -= q);
                St::Released
            }
            _ => return TransitionExpect::Refused,
        };
        let now = self.now;
        match self.orders.get_mut(id) {
            Some(o) => {
                o.st = new_st;
                TransitionExpect::Ok(o.status(now), o.lines.clone())
            }
            None => TransitionExpect::NotFound,
        }
    }

    /// An adjustment of on_hand, including the expiry its script does first.
    fn adjust(&mut self, s: usize, l: usize, change: StockChange, op: &str) -> AdjustExpect {
        self.touch(&self.parts(std::iter::once(s)));
        if !self.registered[s] {
            return AdjustExpect::UnknownSku;
        }
        if self.applied_ops.get(op).is_some_and(|at| self.now < at + RETENTION_SECS) {
            return AdjustExpect::Replayed(self.levels[s][l]);
        }
        let delta = match change {
            StockChange::Delta(d) => d,
            StockChange::Set(v) => v - self.levels[s][l].on_hand,
        };
        self.applied_ops.insert(op.to_owned(), self.now);
        self.levels[s][l].on_hand += delta;
        if delta < 0 {
            self.shrunk[s][l] = true;
        }
        AdjustExpect::Applied(self.levels[s][l], delta)
    }

    /// A cycle count (count.lua, default gates), including the expiry its
    /// script does first: None for an unknown SKU, else on_hand as judged
    /// and what the gates made of it.
    fn count(&mut self, s: usize, l: usize, counted: i64) -> Option<(i64, CountAction)> {
        self.touch(&self.parts(std::iter::once(s)));
        if !self.registered[s] {
            return None;
        }
        let expected = self.levels[s][l].on_hand;
        let action = decide(expected, counted, &CountGates::default());
        match action {
            CountAction::Adjusted => {
                self.levels[s][l].on_hand = counted;
                if counted < expected {
                    self.shrunk[s][l] = true;
                }
            }
            CountAction::StopSell => self.stopped_at[s][l] = true,
            CountAction::Matched | CountAction::Investigation => {}
        }
        Some((expected, action))
    }

    /// An investigation resolved (resolve_count.lua, asked to lift the
    /// stop), including the expiry its script does first.
    fn resolve(&mut self, s: usize, l: usize, accepted: i64, op: &str) -> ResolveExpect {
        self.touch(&self.parts(std::iter::once(s)));
        if !self.registered[s] {
            return ResolveExpect::UnknownSku;
        }
        if self.applied_ops.get(op).is_some_and(|at| self.now < at + RETENTION_SECS) {
            return ResolveExpect::Replayed(self.levels[s][l]);
        }
        self.applied_ops.insert(op.to_owned(), self.now);
        let delta = accepted - self.levels[s][l].on_hand;
        self.levels[s][l].on_hand = accepted;
        if delta < 0 {
            self.shrunk[s][l] = true;
        }
        let lifted = std::mem::replace(&mut self.stopped_at[s][l], false);
        ResolveExpect::Applied(self.levels[s][l], delta, lifted)
    }

    /// A PO movement of one line, as po.lua does it: expiry first, then a
    /// remembered operation id is a no-op, an unknown SKU or an in_transit
    /// that would go negative refuses it, else both deltas apply.
    fn po_move(&mut self, s: usize, l: usize, on_hand: i64, in_transit: i64, op: &str) -> PoExpect {
        self.touch(&self.parts(std::iter::once(s)));
        if self.applied_ops.get(op).is_some_and(|at| self.now < at + RETENTION_SECS) {
            return PoExpect::Replayed;
        }
        if !self.registered[s] {
            return PoExpect::UnknownSku;
        }
        if self.levels[s][l].in_transit + in_transit < 0 {
            return PoExpect::Short;
        }
        self.applied_ops.insert(op.to_owned(), self.now);
        self.levels[s][l].on_hand += on_hand;
        self.levels[s][l].in_transit += in_transit;
        PoExpect::Applied
    }
}

// ---------------------------------------------------------------------------
// Running a case.

/// An order id used in a reserve, with what was asked.
#[derive(Clone, Debug)]
struct Attempt {
    id: String,
    lines: Vec<LineSpec>,
    ttl: TtlChoice,
}

/// An adjustment as first made, for replays.
#[derive(Clone, Debug)]
struct AdjustCall {
    sku: usize,
    loc: usize,
    change: StockChange,
    op: String,
}

/// A count as first made, for replays and resolutions.
#[derive(Clone, Debug)]
struct CountCall {
    sku: usize,
    loc: usize,
    counted: i64,
    op: String,
    /// Virtual seconds when it was made.
    at: i64,
    answer: Counted,
}

/// A PO movement as first made, for replays.
#[derive(Clone, Debug)]
struct PoCall {
    kind: PoMoveKind,
    po: String,
    sku: usize,
    loc: usize,
    on_hand: i64,
    in_transit: i64,
    op: String,
}

/// A submitted PO of one line, as the driver (Postgres' part) keeps it.
#[derive(Clone, Debug)]
struct DriverPo {
    id: String,
    sku: usize,
    loc: usize,
    ordered: i64,
    received: i64,
    cancelled: bool,
}

/// A hold record as Redis stores it.
#[derive(Debug, PartialEq, Eq)]
struct Hold {
    committed: bool,
    lines: Vec<(String, String, i64)>,
}

/// (partition, order id) -> (committed, lines): the holds, expiry aside.
type HoldsByPartition = BTreeMap<(u32, String), (bool, Vec<(String, String, i64)>)>;

struct Run {
    store: Store,
    conn: redis::aio::MultiplexedConnection,
    model: Model,
    attempts: Vec<Attempt>,
    adjusts: Vec<AdjustCall>,
    counts: Vec<CountCall>,
    /// POs submitted, and every PO movement made.
    pos: Vec<DriverPo>,
    po_calls: Vec<PoCall>,
    /// Redis TIME (ms) when the case started.
    real_start: i64,
    counter: u64,
}

fn show_lines(lines: &[Line]) -> String {
    let v: Vec<String> = lines.iter().map(|&(s, l, q)| format!("{}@{} x{q}", SKUS[s], LOCS[l])).collect();
    format!("[{}]", v.join(", "))
}

fn show_shortages(short: &[Shortage]) -> String {
    let v: Vec<String> = short
        .iter()
        .map(|s| {
            let at = if s.location_id.is_empty() { "*" } else { s.location_id.as_str() };
            format!("{}@{at} wants {} has {}", s.sku, s.requested, s.available)
        })
        .collect();
    format!("[{}]", v.join(", "))
}

fn show_reservation(r: &Reservation) -> String {
    let v: Vec<String> = r.lines.iter().map(|l| format!("{}@{} x{}", l.sku, l.location_id, l.quantity)).collect();
    format!("{:?} [{}]", r.status, v.join(", "))
}

fn show_outcome(got: &Result<ReserveOutcome, EngineError>) -> String {
    match got {
        Ok(ReserveOutcome::Reserved(r)) => format!("Reserved {}", show_reservation(r)),
        Ok(ReserveOutcome::Existing(r)) => format!("Existing {}", show_reservation(r)),
        Ok(ReserveOutcome::InsufficientStock(short)) => format!("InsufficientStock {}", show_shortages(short)),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("Err({e:?})"),
    }
}

fn reservation_lines(lines: &[Line]) -> Vec<ReservationLine> {
    lines
        .iter()
        .map(|&(s, l, q)| ReservationLine { sku: SKUS[s].into(), location_id: LOCS[l].into(), quantity: q })
        .collect()
}

fn not_found(r: &Result<impl std::fmt::Debug, EngineError>) -> bool {
    matches!(r, Err(EngineError::ReservationNotFound(_)))
}

impl Run {
    async fn start(stock: &[[i64; 2]; REGISTERED_AT_START]) -> Result<Run> {
        let store = Store::open(PARTITIONS).await?;
        let client = redis::Client::open(store.url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let real_start = redis_time(&mut conn).await?;
        let model = Model::new(&store.keys);
        let mut run = Run {
            store,
            conn,
            model,
            attempts: Vec::new(),
            adjusts: Vec::new(),
            counts: Vec::new(),
            pos: Vec::new(),
            po_calls: Vec::new(),
            real_start,
            counter: 0,
        };
        for (s, at) in stock.iter().enumerate() {
            ensure!(run.store.engine.register_sku(&sku(s)?).await?, "{} was new", SKUS[s]);
            run.model.registered[s] = true;
            for (l, on_hand) in at.iter().enumerate() {
                let op = format!("init:{s}:{l}");
                let got =
                    run.store.engine.adjust(&sku(s)?, &loc(l)?, StockChange::Set(*on_hand), &op_id(&op)?, "init").await;
                let want = run.model.adjust(s, l, StockChange::Set(*on_hand), &op);
                check_adjust(&want, &got)?;
            }
        }
        run.check().await.context("after the initial stock")?;
        Ok(run)
    }

    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    /// An order that was reserved (failed attempts are covered by
    /// `UnknownOrder` and by the checks after each step).
    fn picked(&mut self, pick: usize) -> String {
        let placed = &self.model.placed;
        if placed.is_empty() {
            let n = self.next();
            format!("never-{n}")
        } else {
            placed[pick % placed.len()].clone()
        }
    }

    /// Runs one step against the engine and the model; returns what it did.
    async fn step(&mut self, op: &Op) -> Result<String> {
        match op {
            Op::Reserve { lines, ttl, priority } => {
                let id = format!("o{}", self.next());
                self.attempts.push(Attempt { id: id.clone(), lines: lines.clone(), ttl: *ttl });
                self.reserve(&id, lines, *ttl, *priority).await
            }
            Op::ReserveAgain { pick, how } => {
                let Some(a) = (!self.attempts.is_empty()).then(|| self.attempts[pick % self.attempts.len()].clone())
                else {
                    return Ok("reserve again: no order yet".into());
                };
                let lines = match how {
                    Again::SameLines => a.lines.clone(),
                    Again::SameTotalsUnplaced => per_sku(a.lines.iter().map(|l| (l.sku, l.qty)))
                        .into_iter()
                        .map(|(sku, qty)| LineSpec { sku, loc: None, qty })
                        .collect(),
                    Again::OneMoreUnit => {
                        let mut lines = a.lines.clone();
                        lines[0].qty += 1;
                        lines
                    }
                };
                self.reserve(&a.id, &lines, a.ttl, Priority::L1ThenL2).await
            }
            Op::Extend { pick, ttl } => {
                let id = self.picked(*pick);
                self.transition(Kind::Extend, &id, ttl.secs()).await
            }
            Op::Commit { pick } => {
                let id = self.picked(*pick);
                self.transition(Kind::Commit, &id, 0).await
            }
            Op::Fulfill { pick } => {
                let id = self.picked(*pick);
                self.transition(Kind::Fulfill, &id, 0).await
            }
            Op::Release { pick } => {
                let id = self.picked(*pick);
                self.transition(Kind::Release, &id, 0).await
            }
            Op::Adjust { sku, loc, delta } => {
                let call = AdjustCall {
                    sku: *sku,
                    loc: *loc,
                    change: StockChange::Delta(*delta),
                    op: format!("op{}", self.next()),
                };
                self.adjusts.push(call.clone());
                self.adjust(&call).await
            }
            Op::SetOnHand { sku, loc, on_hand } => {
                let call = AdjustCall {
                    sku: *sku,
                    loc: *loc,
                    change: StockChange::Set(*on_hand),
                    op: format!("op{}", self.next()),
                };
                self.adjusts.push(call.clone());
                self.adjust(&call).await
            }
            Op::ReplayAdjust { pick } => {
                if self.adjusts.is_empty() {
                    return Ok("replay: no adjustment yet".into());
                }
                let call = self.adjusts[pick % self.adjusts.len()].clone();
                Ok(format!("replay of {}", self.adjust(&call).await?))
            }
            Op::StopSell { sku: s, stop } => {
                let got = self.store.engine.set_stop_sell(&sku(*s)?, *stop, &OperationId::generate()).await;
                let desc = format!("set_stop_sell {} {stop} -> {got:?}", SKUS[*s]);
                if self.model.registered[*s] {
                    let changed = self.model.stopped[*s] != *stop;
                    self.model.stopped[*s] = *stop;
                    ensure!(matches!(got, Ok(c) if c == changed), "{desc}: expected Ok({changed})");
                } else {
                    ensure!(matches!(got, Err(EngineError::UnknownSku(_))), "{desc}: expected UnknownSku");
                }
                Ok(desc)
            }
            Op::StopAt { sku: s, loc: l, stop } => {
                let got = self
                    .store
                    .engine
                    .set_location_stop_sell(&sku(*s)?, &loc(*l)?, *stop, &OperationId::generate())
                    .await;
                let desc = format!("set_location_stop_sell {}@{} {stop} -> {got:?}", SKUS[*s], LOCS[*l]);
                if self.model.registered[*s] {
                    let changed = self.model.stopped_at[*s][*l] != *stop;
                    self.model.stopped_at[*s][*l] = *stop;
                    ensure!(matches!(got, Ok(c) if c == changed), "{desc}: expected Ok({changed})");
                } else {
                    ensure!(matches!(got, Err(EngineError::UnknownSku(_))), "{desc}: expected UnknownSku");
                }
                Ok(desc)
            }
            Op::Count { sku: s, loc: l, counted } => self.count(*s, *l, *counted).await,
            Op::ReplayCount { pick } => {
                if self.counts.is_empty() {
                    return Ok("replay count: no count yet".into());
                }
                let c = self.counts[pick % self.counts.len()].clone();
                // (The kept answer lives as long as its operation id; past
                // that the model has nothing to say about it.)
                if self.model.now >= c.at + RETENTION_SECS {
                    return Ok(format!("replay count {}: past retention", c.op));
                }
                let gates = CountGates::default();
                let counted = OnHand::parse(c.counted)?;
                let got =
                    self.store.engine.count(&sku(c.sku)?, &loc(c.loc)?, counted, &op_id(&c.op)?, "other", &gates).await;
                self.model.touch(&self.model.parts(std::iter::once(c.sku)));
                let desc = format!("replay count {} -> {got:?}", c.op);
                let want = Counted { replayed: true, ..c.answer.clone() };
                ensure!(matches!(&got, Ok(a) if *a == want), "{desc}: expected {want:?}");
                Ok(desc)
            }
            Op::ResolveCount { pick, accepted } => {
                let opened: Vec<CountCall> =
                    self.counts.iter().filter(|c| c.answer.investigation_id.is_some()).cloned().collect();
                if opened.is_empty() {
                    return Ok("resolve: no investigation yet".into());
                }
                let c = &opened[pick % opened.len()];
                let op = format!("inv:{}:resolve", c.answer.investigation_id.as_deref().unwrap_or_default());
                let at = OnHand::parse(*accepted)?;
                let got = self.store.engine.resolve_count(&sku(c.sku)?, &loc(c.loc)?, at, &op_id(&op)?, true).await;
                let want = self.model.resolve(c.sku, c.loc, *accepted, &op);
                let desc = format!("resolve {op} at {accepted} -> {got:?}");
                check_resolve(&want, &got).with_context(|| desc.clone())?;
                Ok(desc)
            }
            Op::Register { sku: s } => {
                let got = self.store.engine.register_sku(&sku(*s)?).await?;
                let new = !self.model.registered[*s];
                self.model.registered[*s] = true;
                ensure!(got == new, "register {}: engine says new={got}, model {new}", SKUS[*s]);
                Ok(format!("register {} -> {got}", SKUS[*s]))
            }
            Op::Advance { minutes, sweep } => {
                self.store.engine.advance_clock(secs(minutes * MINUTE));
                self.model.now += minutes * MINUTE;
                let advanced = format!("advance {minutes} min (now +{} s)", self.model.now);
                if *sweep { Ok(format!("{advanced}, then {}", self.sweep().await?)) } else { Ok(advanced) }
            }
            Op::Sweep => self.sweep().await,
            Op::PoSubmit { sku, loc, qty } => {
                let po = format!("P{}", self.next());
                let call = PoCall {
                    kind: PoMoveKind::Submit,
                    op: format!("po:{po}:submit"),
                    po,
                    sku: *sku,
                    loc: *loc,
                    on_hand: 0,
                    in_transit: *qty,
                };
                let (desc, applied) = self.po_move(&call).await?;
                if applied {
                    let (id, sku, loc, ordered) = (call.po.clone(), *sku, *loc, *qty);
                    self.pos.push(DriverPo { id, sku, loc, ordered, received: 0, cancelled: false });
                }
                self.po_calls.push(call);
                Ok(desc)
            }
            Op::PoReceive { pick, qty, over } => {
                let Some(i) = (!self.pos.is_empty()).then(|| pick % self.pos.len()) else {
                    return Ok("receive: no PO yet".into());
                };
                let po = self.pos[i].clone();
                let outstanding = po.ordered - po.received;
                let q = if *over {
                    self.model.levels[po.sku][po.loc].in_transit + qty
                } else if po.cancelled || outstanding == 0 {
                    return Ok(format!("receive: {} expects nothing more", po.id));
                } else {
                    (*qty).min(outstanding)
                };
                let n = self.next();
                let call = PoCall {
                    kind: PoMoveKind::Receive,
                    op: format!("po:{}:receive:r{n}", po.id),
                    po: po.id.clone(),
                    sku: po.sku,
                    loc: po.loc,
                    on_hand: q,
                    in_transit: -q,
                };
                let (desc, applied) = self.po_move(&call).await?;
                ensure!(!(*over && applied), "{desc}: a receipt beyond in_transit was applied");
                if applied {
                    self.pos[i].received += q;
                }
                self.po_calls.push(call);
                Ok(desc)
            }
            Op::PoCancel { pick } => {
                let Some(i) = (!self.pos.is_empty()).then(|| pick % self.pos.len()) else {
                    return Ok("cancel: no PO yet".into());
                };
                let po = self.pos[i].clone();
                let outstanding = po.ordered - po.received;
                if po.cancelled || outstanding == 0 {
                    return Ok(format!("cancel: {} has nothing in transit", po.id));
                }
                let call = PoCall {
                    kind: PoMoveKind::Cancel,
                    op: format!("po:{}:cancel", po.id),
                    po: po.id.clone(),
                    sku: po.sku,
                    loc: po.loc,
                    on_hand: 0,
                    in_transit: -outstanding,
                };
                let (desc, applied) = self.po_move(&call).await?;
                if applied {
                    self.pos[i].cancelled = true;
                }
                self.po_calls.push(call);
                Ok(desc)
            }
            Op::PoReplay { pick } => {
                if self.po_calls.is_empty() {
                    return Ok("replay: no PO movement yet".into());
                }
                let call = self.po_calls[pick % self.po_calls.len()].clone();
                Ok(format!("replay of {}", self.po_move(&call).await?.0))
            }
            Op::UnknownOrder { call } => {
                let id = format!("never-{}", self.next());
                let order = OrderId::parse(id.as_str())?;
                let e = &self.store.engine;
                let (name, nf) = match call {
                    UnknownCall::Get => ("get", not_found(&e.get_reservation(&order).await)),
                    UnknownCall::Do(Kind::Extend) => {
                        ("extend", not_found(&e.extend(&order, Ttl::parse(secs(30))?).await))
                    }
                    UnknownCall::Do(Kind::Commit) => ("commit", not_found(&e.commit(&order).await)),
                    UnknownCall::Do(Kind::Fulfill) => ("fulfill", not_found(&e.fulfill(&order).await)),
                    UnknownCall::Do(Kind::Release) => {
                        ("release", not_found(&e.release(&order, &ReleaseReason::default()).await))
                    }
                };
                ensure!(nf, "{name} of unknown order {id} did not answer ReservationNotFound");
                Ok(format!("{name} {id} -> not found"))
            }
        }
    }

    async fn reserve(&mut self, id: &str, lines: &[LineSpec], ttl: TtlChoice, priority: Priority) -> Result<String> {
        let req = ReserveRequest {
            order_id: OrderId::parse(id)?,
            lines: lines
                .iter()
                .map(|l| {
                    Ok(ReserveLine {
                        sku: sku(l.sku)?,
                        quantity: LineQuantity::parse(l.qty)?,
                        location: l.loc.map(loc).transpose()?,
                    })
                })
                .collect::<Result<_>>()?,
            ttl: ttl.for_reserve()?,
            channel: Some(Channel::parse(CHANNEL)?),
        };
        let order: Vec<LocationId> = priority.locations().into_iter().map(loc).collect::<Result<_>>()?;
        let got = self.store.engine.reserve(&req, &order).await;
        let parts = self.model.parts(lines.iter().map(|l| l.sku));
        self.model.touch(&parts);
        let want = self.model.reserve(id, lines, ttl.secs(), priority);
        let desc = format!("reserve {id} {lines:?} ttl {ttl:?} {priority:?} -> {}", show_outcome(&got));
        match (&want, &got) {
            (ReserveExpect::Reserved(held), Ok(ReserveOutcome::Reserved(r))) => {
                ensure!(r.status == ReservationStatus::Active, "{desc}: not ACTIVE");
                ensure!(r.lines == reservation_lines(held), "{desc}: model holds {}", show_lines(held));
                ensure!(r.channel == CHANNEL, "{desc}: channel");
                let ttl_ms = millis(r.expires_at) - millis(r.created_at);
                ensure!(ttl_ms == ttl.secs() * 1000, "{desc}: expires {ttl_ms} ms after creation");
                // A reserve never leaves available below zero where it holds.
                let skus: Vec<Sku> = held.iter().map(|l| sku(l.0)).collect::<Result<_>>()?;
                for (sl, &(_, l, _)) in self.store.engine.levels(&skus, None).await?.iter().zip(held) {
                    let at = sl.locations.iter().find(|x| x.location_id == LOCS[l]);
                    let available = at.map_or(0, |x| x.levels.available());
                    ensure!(available >= 0, "{desc}: left {}@{} available {available}", sl.sku, LOCS[l]);
                }
            }
            (ReserveExpect::Existing(st, lines), Ok(ReserveOutcome::Existing(r))) => {
                ensure!(r.status == *st && r.lines == reservation_lines(lines), "{desc}: expected {want:?}");
            }
            (ReserveExpect::Refused, Err(EngineError::FailedPrecondition(_))) => {}
            (ReserveExpect::Unknown(a), Ok(ReserveOutcome::UnknownSku(b)))
            | (ReserveExpect::Stop(a), Ok(ReserveOutcome::StopSell(b))) => {
                ensure!(a == b, "{desc}: expected {want:?}");
            }
            (ReserveExpect::Short(a), Ok(ReserveOutcome::InsufficientStock(b))) => {
                ensure!(a == b, "{desc}: expected {want:?}");
            }
            _ => bail!("{desc}: expected {want:?}"),
        }
        Ok(desc)
    }

    async fn transition(&mut self, kind: Kind, id: &str, ttl: i64) -> Result<String> {
        let order = OrderId::parse(id)?;
        let e = &self.store.engine;
        let got = match kind {
            Kind::Extend => e.extend(&order, Ttl::parse(secs(ttl))?).await,
            Kind::Commit => e.commit(&order).await,
            Kind::Fulfill => e.fulfill(&order).await,
            Kind::Release => e.release(&order, &ReleaseReason::parse("model").map_err(|e| anyhow!(e))?).await,
        };
        let before =
            self.model.orders.get(id).map_or("never reserved".into(), |o| format!("{:?}", o.status(self.model.now)));
        let want = self.model.transition(kind, id, ttl);
        let desc = match &got {
            Ok(r) => format!("{kind:?} {id} (was {before}) -> Ok {}", show_reservation(r)),
            Err(e) => format!("{kind:?} {id} (was {before}) -> Err({e:?})"),
        };
        match (&want, &got) {
            (TransitionExpect::NotFound, Err(EngineError::ReservationNotFound(_)))
            | (TransitionExpect::Refused, Err(EngineError::FailedPrecondition(_))) => {}
            (TransitionExpect::Ok(st, lines), Ok(r)) => {
                ensure!(r.status == *st && r.lines == reservation_lines(lines), "{desc}: expected {want:?}");
                if kind == Kind::Extend {
                    let ea = self.model.orders.get(id).map_or(0, |o| o.ea);
                    self.check_real_time(&desc, "expires_at", r.expires_at, ea).await?;
                }
            }
            _ => bail!("{desc}: expected {want:?}"),
        }
        Ok(desc)
    }

    async fn count(&mut self, s: usize, l: usize, counted: i64) -> Result<String> {
        let n = self.next();
        let (op, inv) = (format!("count{n}"), format!("inv{n}"));
        let gates = CountGates::default();
        let got =
            self.store.engine.count(&sku(s)?, &loc(l)?, OnHand::parse(counted)?, &op_id(&op)?, &inv, &gates).await;
        let want = self.model.count(s, l, counted);
        let desc = format!("count {}@{} {counted} {op} -> {got:?}", SKUS[s], LOCS[l]);
        match (want, &got) {
            (None, Err(EngineError::UnknownSku(_))) => {}
            (Some((expected, action)), Ok(c)) => {
                let investigation = action.investigates().then(|| inv.clone());
                let want = Counted { expected, counted, action, investigation_id: investigation, replayed: false };
                ensure!(*c == want, "{desc}: expected {want:?}");
                let call = CountCall { sku: s, loc: l, counted, op, at: self.model.now, answer: want };
                self.counts.push(call);
            }
            (want, _) => bail!("{desc}: expected {want:?}"),
        }
        Ok(desc)
    }

    async fn adjust(&mut self, c: &AdjustCall) -> Result<String> {
        let got = self.store.engine.adjust(&sku(c.sku)?, &loc(c.loc)?, c.change, &op_id(&c.op)?, "model").await;
        let want = self.model.adjust(c.sku, c.loc, c.change, &c.op);
        let desc = format!("adjust {}@{} {:?} {} -> {got:?}", SKUS[c.sku], LOCS[c.loc], c.change, c.op);
        check_adjust(&want, &got).with_context(|| desc.clone())?;
        Ok(desc)
    }

    /// A PO movement against the engine and the model; its description and
    /// whether it was applied (not replayed or refused).
    async fn po_move(&mut self, c: &PoCall) -> Result<(String, bool)> {
        let line = PoMoveLine { sku: sku(c.sku)?, on_hand: c.on_hand, in_transit: c.in_transit };
        let got = self.store.engine.po_move(c.kind, &loc(c.loc)?, &c.op, &c.po, &[line]).await;
        let want = self.model.po_move(c.sku, c.loc, c.on_hand, c.in_transit, &c.op);
        let desc = format!(
            "{} {}@{} on_hand {:+} in_transit {:+} ({}) -> {got:?}",
            c.kind.event_kind(),
            SKUS[c.sku],
            LOCS[c.loc],
            c.on_hand,
            c.in_transit,
            c.op
        );
        match (&want, &got) {
            (PoExpect::UnknownSku, Err(EngineError::UnknownSku(_)))
            | (PoExpect::Short, Err(EngineError::FailedPrecondition(_)))
            | (PoExpect::Replayed, Ok(PoMoved { applied: 0, replayed: 1 }))
            | (PoExpect::Applied, Ok(PoMoved { applied: 1, replayed: 0 })) => {}
            _ => bail!("{desc}: expected {want:?}"),
        }
        Ok((desc, matches!(want, PoExpect::Applied)))
    }

    /// The sweeper's path: the partitions due, then each one expired.
    async fn sweep(&mut self) -> Result<String> {
        let due = self.store.engine.partitions_due().await?;
        let want = self.model.due();
        ensure!(due == want.keys().copied().collect::<Vec<_>>(), "partitions due {due:?}, model {want:?}");
        for p in &due {
            let n = self.store.engine.expire_partition(*p).await?;
            let released = self.model.touch(&BTreeSet::from([*p]));
            let m = released.get(p).copied().unwrap_or(0);
            ensure!(n == m, "expire_partition({p}) released {n} holds, model {m}");
        }
        let left = self.store.engine.partitions_due().await?;
        ensure!(left.is_empty(), "partitions still due after the sweep: {left:?}");
        Ok(format!("sweep {want:?}"))
    }

    /// `t` (Redis clock, ms) must be `virtual_secs` on the moved clock plus
    /// a real time within this case.
    async fn check_real_time(&mut self, what: &str, field: &str, t: SystemTime, virtual_secs: i64) -> Result<()> {
        let real = millis(t) - virtual_secs * 1000;
        let now = redis_time(&mut self.conn).await?;
        ensure!(
            (self.real_start..=now).contains(&real),
            "{what}: {field} is {} ms off the model's clock",
            real - self.real_start
        );
        Ok(())
    }

    /// Everything that must hold after every step.
    async fn check(&mut self) -> Result<()> {
        let m = &self.model;
        let skus: Vec<Sku> = (0..SKUS.len()).map(sku).collect::<Result<_>>()?;
        let levels = self.store.engine.levels(&skus, None).await?;
        let mut redis_levels = [[Levels::default(); 2]; 6];
        for (s, sl) in levels.iter().enumerate() {
            ensure!(sl.known == m.registered[s], "{}: known {} but model {}", sl.sku, sl.known, m.registered[s]);
            let mut listed = Vec::new();
            for at in &sl.locations {
                let l = LOCS
                    .iter()
                    .position(|x| *x == at.location_id)
                    .ok_or_else(|| anyhow!("{}: unexpected location {}", sl.sku, at.location_id))?;
                redis_levels[s][l] = at.levels;
                let stopped = m.stopped[s] || m.stopped_at[s][l];
                ensure!(at.stop_sell == stopped, "{}@{}: stop_sell {}", sl.sku, LOCS[l], at.stop_sell);
                listed.push(l);
            }
            for (l, name) in LOCS.iter().enumerate() {
                ensure!(!m.stopped_at[s][l] || listed.contains(&l), "{}@{name}: stopped, not listed", sl.sku);
            }
            let everywhere = m.stopped[s] || (!listed.is_empty() && listed.iter().all(|&l| m.stopped_at[s][l]));
            ensure!(sl.stop_sell == everywhere, "{}: stop_sell {}", sl.sku, sl.stop_sell);
            for l in 0..LOCS.len() {
                let lv = redis_levels[s][l];
                let here = format!("{}@{} {lv:?}", SKUS[s], LOCS[l]);
                ensure!(lv.reserved >= 0 && lv.committed >= 0 && lv.in_transit >= 0, "{here}: negative number");
                ensure!(lv.available() >= 0 || m.shrunk[s][l], "{here}: available < 0 with no shrinkage");
                ensure!(lv == m.levels[s][l], "{here}: model {:?}", m.levels[s][l]);
            }
        }

        // The hold records of every partition, and the expiry index.
        let mut holds: BTreeMap<(u32, String), Hold> = BTreeMap::new();
        let mut scores: BTreeMap<(u32, String), i64> = BTreeMap::new();
        let mut sums = [[(0i64, 0i64); 2]; 6];
        for p in 0..PARTITIONS {
            let pk = self.store.keys.partition(p);
            let raw: BTreeMap<String, String> =
                redis::cmd("HGETALL").arg(&pk.holds).query_async(&mut self.conn).await?;
            let exp: Vec<(String, f64)> =
                redis::cmd("ZRANGE").arg(&pk.exp).arg(0).arg(-1).arg("WITHSCORES").query_async(&mut self.conn).await?;
            let mut uncommitted = BTreeSet::new();
            for (order, packed) in raw {
                let hold = parse_hold(&packed).with_context(|| format!("hold {order} in partition {p}: {packed:?}"))?;
                for (s, l, q) in &hold.lines {
                    let si = SKUS.iter().position(|x| x == s).ok_or_else(|| anyhow!("hold of unknown sku {s}"))?;
                    let li = LOCS.iter().position(|x| x == l).ok_or_else(|| anyhow!("hold at unknown location {l}"))?;
                    ensure!(m.part[si] == p, "hold {order} has {s} (partition {}) in partition {p}", m.part[si]);
                    ensure!(*q > 0, "hold {order} has quantity {q}");
                    let sum = &mut sums[si][li];
                    if hold.committed { sum.1 += q } else { sum.0 += q }
                }
                if !hold.committed {
                    uncommitted.insert(order.clone());
                }
                holds.insert((p, order), hold);
            }
            let indexed: BTreeMap<String, i64> = exp.into_iter().map(|(o, score)| (o, score as i64)).collect();
            let indexed_ids: BTreeSet<String> = indexed.keys().cloned().collect();
            ensure!(
                indexed_ids == uncommitted,
                "partition {p}: expiry index {indexed:?}, uncommitted holds {uncommitted:?}"
            );
            scores.extend(indexed.into_iter().map(|(o, score)| ((p, o), score)));
        }
        for s in 0..SKUS.len() {
            for l in 0..LOCS.len() {
                let (lv, (r, c)) = (redis_levels[s][l], sums[s][l]);
                ensure!(
                    lv.reserved == r && lv.committed == c,
                    "{}@{}: reserved {} committed {}, but the holds add up to {r} and {c}",
                    SKUS[s],
                    LOCS[l],
                    lv.reserved,
                    lv.committed
                );
            }
        }

        // Every order id ever used, as get_reservation reports it.
        let mut expires: BTreeMap<String, i64> = BTreeMap::new();
        let ids: Vec<String> = self.attempts.iter().map(|a| a.id.clone()).collect();
        for id in ids {
            let got = self.store.engine.get_reservation(&OrderId::parse(id.as_str())?).await;
            let Some(o) = self.model.orders.get(&id).cloned() else {
                ensure!(not_found(&got), "order {id} was never reserved, yet get_reservation says {got:?}");
                continue;
            };
            let r: Reservation = got.with_context(|| format!("get_reservation {id}"))?;
            let st = o.status(self.model.now);
            ensure!(r.status == st, "order {id}: status {:?}, model {st:?}", r.status);
            ensure!(r.lines == reservation_lines(&o.lines), "order {id}: lines {:?}, model {:?}", r.lines, o.lines);
            ensure!(r.channel == CHANNEL, "order {id}: channel {:?}", r.channel);
            if let Some(ttl) = o.exact_ttl {
                let ms = millis(r.expires_at) - millis(r.created_at);
                ensure!(ms == ttl * 1000, "order {id}: expires {ms} ms after creation, ttl {ttl} s");
            }
            self.check_real_time(&id, "created_at", r.created_at, o.created).await?;
            self.check_real_time(&id, "expires_at", r.expires_at, o.ea).await?;
            expires.insert(id, millis(r.expires_at));
        }

        // The model's holds, as Redis should store them.
        let m = &self.model;
        let mut want: HoldsByPartition = BTreeMap::new();
        for (id, o) in &m.orders {
            for p in &o.held {
                let lines = o
                    .lines
                    .iter()
                    .filter(|l| m.part[l.0] == *p)
                    .map(|&(s, l, q)| (SKUS[s].to_owned(), LOCS[l].to_owned(), q))
                    .collect();
                want.insert((*p, id.clone()), (o.st == St::Committed, lines));
            }
        }
        let have: HoldsByPartition = holds.iter().map(|(k, h)| (k.clone(), (h.committed, h.lines.clone()))).collect();
        ensure!(have == want, "hold records {have:?}\nmodel {want:?}");
        for ((p, id), score) in &scores {
            let ea = expires.get(id).copied().unwrap_or(0);
            ensure!(*score == ea, "hold {id} in partition {p} is indexed to expire at {score}, its order at {ea}");
        }
        Ok(())
    }
}

fn op_id(s: &str) -> Result<OperationId> {
    Ok(OperationId::parse(s)?)
}

fn check_resolve(want: &ResolveExpect, got: &Result<Resolved, EngineError>) -> Result<()> {
    match (want, got) {
        (ResolveExpect::UnknownSku, Err(EngineError::UnknownSku(_))) => Ok(()),
        (ResolveExpect::Replayed(lv), Ok(r))
            if r.adjusted.replayed && r.adjusted.delta == 0 && r.adjusted.levels == *lv && !r.lifted =>
        {
            Ok(())
        }
        (ResolveExpect::Applied(lv, d, lifted), Ok(r))
            if !r.adjusted.replayed && r.adjusted.delta == *d && r.adjusted.levels == *lv && r.lifted == *lifted =>
        {
            Ok(())
        }
        _ => bail!("resolve answered {got:?}, model expected {want:?}"),
    }
}

fn check_adjust(want: &AdjustExpect, got: &Result<Adjusted, EngineError>) -> Result<()> {
    match (want, got) {
        (AdjustExpect::UnknownSku, Err(EngineError::UnknownSku(_))) => Ok(()),
        (AdjustExpect::Replayed(lv), Ok(a)) if a.replayed && a.delta == 0 && a.levels == *lv => Ok(()),
        (AdjustExpect::Applied(lv, d), Ok(a)) if !a.replayed && a.delta == *d && a.levels == *lv => Ok(()),
        _ => bail!("adjust answered {got:?}, model expected {want:?}"),
    }
}

/// A hold record: `c`, then sku, location, qty per line, tab-separated.
fn parse_hold(packed: &str) -> Result<Hold> {
    let f: Vec<&str> = packed.split('\t').collect();
    let committed = match f[0] {
        "0" => false,
        "1" => true,
        other => bail!("c is {other:?}"),
    };
    ensure!(f.len() % 3 == 1, "{} fields after c, not a multiple of 3", f.len() - 1);
    let mut lines = Vec::new();
    for l in f[1..].chunks(3) {
        lines.push((l[0].to_owned(), l[1].to_owned(), l[2].parse::<i64>().with_context(|| format!("qty {:?}", l[2]))?));
    }
    ensure!(!lines.is_empty(), "a hold without lines");
    Ok(Hold { committed, lines })
}

async fn redis_time(conn: &mut redis::aio::MultiplexedConnection) -> Result<i64> {
    let (s, us): (i64, i64) = redis::cmd("TIME").query_async(conn).await?;
    Ok(s * 1000 + us / 1000)
}

async fn run_case(case: &Case) -> Result<()> {
    let mut run = Run::start(&case.stock).await?;
    let mut trace: Vec<String> = Vec::new();
    for (i, op) in case.ops.iter().enumerate() {
        let result = match run.step(op).await {
            Ok(desc) => {
                trace.push(desc);
                run.check().await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            let done: Vec<String> = trace.iter().enumerate().map(|(j, d)| format!("  {j}: {d}")).collect();
            bail!("step {i} ({op:?}) failed: {e:#}\nsteps done:\n{}", done.join("\n"));
        }
    }
    Ok(())
}

#[test]
fn random_sequences_of_every_operation_keep_redis_equal_to_the_model_and_the_five_numbers_consistent() {
    let keys = Keys::new("t", PARTITIONS).expect("keys");
    let parts: BTreeSet<u32> = SKUS[..REGISTERED_AT_START].iter().map(|s| keys.partition_of(s)).collect();
    assert!(parts.len() < REGISTERED_AT_START && parts.len() > 1, "SKUs should share and cross partitions");

    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    // PROPTEST_CASES=500 for a longer run.
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(40);
    let config =
        ProptestConfig { cases, failure_persistence: None, max_shrink_iters: 2000, ..ProptestConfig::default() };
    let mut runner = TestRunner::new(config);
    let result =
        runner.run(&case(), |case| rt.block_on(run_case(&case)).map_err(|e| TestCaseError::fail(format!("{e:#}"))));
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------
// Deterministic cases.

async fn stocked(store: &Store, s: &str, at: &[(&str, i64)]) -> Result<()> {
    let s = Sku::parse(s)?;
    store.engine.register_sku(&s).await?;
    for (l, on_hand) in at {
        store
            .engine
            .adjust(&s, &LocationId::parse(*l)?, StockChange::Set(*on_hand), &OperationId::generate(), "test")
            .await?;
    }
    Ok(())
}

fn request(order: &str, lines: &[(&str, i64)], ttl_secs: u64) -> Result<ReserveRequest> {
    Ok(ReserveRequest {
        order_id: OrderId::parse(order)?,
        lines: lines
            .iter()
            .map(|(s, q)| Ok(ReserveLine { sku: Sku::parse(*s)?, quantity: LineQuantity::parse(*q)?, location: None }))
            .collect::<Result<_>>()?,
        ttl: Some(Ttl::parse(Duration::from_secs(ttl_secs))?),
        channel: None,
    })
}

async fn level(store: &Store, s: &str, l: &str) -> Result<Levels> {
    let all = store.engine.levels(&[Sku::parse(s)?], None).await?;
    Ok(all.iter().flat_map(|x| &x.locations).find(|x| x.location_id == l).map(|x| x.levels).unwrap_or_default())
}

fn priority() -> Result<Vec<LocationId>> {
    Ok(vec![LocationId::parse("L1")?, LocationId::parse("L2")?])
}

#[tokio::test]
async fn an_expired_hold_returns_its_stock_after_one_sweep_with_no_further_call_on_its_sku() -> Result<()> {
    // Arrange
    let store = Store::open(8).await?;
    stocked(&store, "IDLE-1", &[("L1", 10)]).await?;
    let out = store.engine.reserve(&request("idle-order", &[("IDLE-1", 4)], 30)?, &priority()?).await?;
    ensure!(matches!(out, ReserveOutcome::Reserved(_)), "{out:?}");
    ensure!(level(&store, "IDLE-1", "L1").await?.reserved == 4);

    // Act: time passes the ttl; the sweeper runs once.
    store.engine.advance_clock(Duration::from_secs(31));
    let due = store.engine.partitions_due().await?;
    let p = store.keys.partition_of("IDLE-1");
    ensure!(due == vec![p], "due {due:?}, expected [{p}]");
    let released = store.engine.expire_partition(p).await?;

    // Assert
    ensure!(released == 1, "released {released}");
    let lv = level(&store, "IDLE-1", "L1").await?;
    ensure!(lv == Levels { on_hand: 10, reserved: 0, committed: 0, in_transit: 0 }, "{lv:?}");
    let r = store.engine.get_reservation(&OrderId::parse("idle-order")?).await?;
    ensure!(r.status == ReservationStatus::Expired, "{:?}", r.status);
    ensure!(store.engine.partitions_due().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_reserve_on_the_sku_itself_releases_its_expired_holds_without_the_sweeper() -> Result<()> {
    // Arrange: every unit held by an order that then expires.
    let store = Store::open(8).await?;
    stocked(&store, "BUSY-1", &[("L1", 5)]).await?;
    let first = store.engine.reserve(&request("first", &[("BUSY-1", 5)], 30)?, &priority()?).await?;
    ensure!(matches!(first, ReserveOutcome::Reserved(_)), "{first:?}");
    let early = store.engine.reserve(&request("early", &[("BUSY-1", 1)], 30)?, &priority()?).await?;
    ensure!(matches!(early, ReserveOutcome::InsufficientStock(_)), "{early:?}");

    // Act: past the ttl, no sweep, a new order for all five.
    store.engine.advance_clock(Duration::from_secs(31));
    let second = store.engine.reserve(&request("second", &[("BUSY-1", 5)], 30)?, &priority()?).await?;

    // Assert
    let ReserveOutcome::Reserved(r) = second else { bail!("second order: {second:?}") };
    ensure!(r.lines == vec![ReservationLine { sku: "BUSY-1".into(), location_id: "L1".into(), quantity: 5 }]);
    let lv = level(&store, "BUSY-1", "L1").await?;
    ensure!((lv.on_hand, lv.reserved, lv.available()) == (5, 5, 0), "{lv:?}");
    let old = store.engine.get_reservation(&OrderId::parse("first")?).await?;
    ensure!(old.status == ReservationStatus::Expired, "{:?}", old.status);
    Ok(())
}

#[tokio::test]
async fn a_line_without_location_is_filled_by_the_first_location_that_can_alone_else_split_by_priority() -> Result<()> {
    // Arrange: L1 (first priority) has 3, L2 has 10.
    let store = Store::open(8).await?;
    stocked(&store, "SPLIT-1", &[("L1", 3), ("L2", 10)]).await?;
    let line = |l: &str, q| ReservationLine { sku: "SPLIT-1".into(), location_id: l.into(), quantity: q };
    let reserve = |order: &'static str, q| {
        let store = &store;
        async move {
            match store.engine.reserve(&request(order, &[("SPLIT-1", q)], 600)?, &priority()?).await? {
                ReserveOutcome::Reserved(r) => Ok(r.lines),
                other => bail!("{order}: {other:?}"),
            }
        }
    };

    // Act + Assert: L1 fills 2 alone.
    ensure!(reserve("a", 2).await? == vec![line("L1", 2)]);
    // L1 has 1 left, so 4 come from L2 alone rather than split.
    ensure!(reserve("b", 4).await? == vec![line("L2", 4)]);
    // Nobody has 7 alone: 1 from L1, then 6 from L2.
    ensure!(reserve("c", 7).await? == vec![line("L1", 1), line("L2", 6)]);
    // Nothing left anywhere.
    let short = store.engine.reserve(&request("d", &[("SPLIT-1", 1)], 600)?, &priority()?).await?;
    let want = vec![Shortage { sku: "SPLIT-1".into(), location_id: String::new(), requested: 1, available: 0 }];
    ensure!(short == ReserveOutcome::InsufficientStock(want), "{short:?}");
    let (l1, l2) = (level(&store, "SPLIT-1", "L1").await?, level(&store, "SPLIT-1", "L2").await?);
    ensure!((l1.reserved, l1.available(), l2.reserved, l2.available()) == (3, 0, 10, 0), "{l1:?} {l2:?}");
    Ok(())
}
