//! Coalescing of concurrent Reserve calls into one call of reserve.lua.
//!
//! Under a flash sale most of the cost of a reservation is not the
//! reservation: it is the script call around it (EVALSHA, the clock, the
//! generation check, the expiry pass, decoding the hot SKU's record) and the
//! round trip. So at most `reserve_calls` script calls are in flight; a Reserve
//! that arrives meanwhile waits in a queue, and the next call takes everything
//! waiting (up to `reserve_batch` orders). With no contention a call goes out
//! at once, alone, with no added delay. The script applies the orders one
//! after the other, each all-or-nothing, exactly as separate calls would.
//!
//! Batches run on their own tasks, so a caller that gives up (its gRPC call
//! was cancelled) never takes the other callers' reservations down with it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use redis::Value;
use tokio::sync::oneshot;

use super::EngineError;
use super::engine::{Core, millis, status_word};
use super::reply::Reply;
use super::scripts::SCRIPTS;
use crate::domain::{LocationId, Reservation, ReservationStatus, ReserveOutcome, ReserveRequest, Shortage};

/// Most lines in one script call (an order always fits, whatever its size):
/// keeps one call short, since Redis runs nothing else meanwhile.
const MAX_BATCH_LINES: usize = 1000;

type Answer = Result<ReserveOutcome, EngineError>;

/// One Reserve call waiting for its batch.
pub(super) struct Pending {
    req: ReserveRequest,
    allocation_order: Vec<LocationId>,
    answer: oneshot::Sender<Answer>,
}

/// The Reserve calls waiting, and how many batch tasks are running.
#[derive(Default)]
pub(super) struct ReserveQueue {
    waiting: VecDeque<Pending>,
    running: usize,
}

impl Core {
    /// Queues one Reserve and waits for the batch that carries it.
    pub(super) async fn reserve(
        core: &Arc<Core>,
        req: &ReserveRequest,
        allocation_order: &[LocationId],
    ) -> Result<ReserveOutcome, EngineError> {
        let (answer, reply) = oneshot::channel();
        let pending = Pending { req: req.clone(), allocation_order: allocation_order.to_vec(), answer };
        let start = {
            let mut q = core.queue();
            q.waiting.push_back(pending);
            let start = q.running < core.settings().reserve_calls.max(1);
            if start {
                q.running += 1;
            }
            start
        };
        if start {
            tokio::spawn(Core::run_batches(Arc::clone(core)));
        }
        // The batch call has its own deadline; this one only covers the wait
        // for a batch ahead of it.
        let deadline = core.settings().call_timeout * 2;
        match tokio::time::timeout(deadline, reply).await {
            Ok(Ok(answer)) => {
                if let Ok(ReserveOutcome::Reserved(res) | ReserveOutcome::Existing(res)) = &answer {
                    core.remember(res);
                }
                answer
            }
            Ok(Err(_)) => Err(EngineError::Unavailable("the reserve batch was lost".into())),
            Err(_) => Err(EngineError::Timeout(deadline)),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, ReserveQueue> {
        self.reserve_queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One batch task: takes what is waiting and runs it, until nothing is.
    /// The emptiness check and the end of the task happen under one lock, so
    /// a call queued meanwhile either is taken here or starts a task itself.
    async fn run_batches(core: Arc<Core>) {
        let _panic_guard = Running(Arc::clone(&core));
        loop {
            let batch = {
                let mut q = core.queue();
                if q.waiting.is_empty() {
                    q.running = q.running.saturating_sub(1);
                    return;
                }
                take_batch(&mut q.waiting, core.settings().reserve_batch.max(1))
            };
            if let Some(m) = core.metrics() {
                m.reserve_batch_orders.observe(batch.len() as f64);
            }
            let (answers, batch) = core.reserve_batch(batch).await;
            match answers {
                Ok(answers) => {
                    for (p, a) in batch.into_iter().zip(answers) {
                        let _ = p.answer.send(a);
                    }
                }
                Err(e) => {
                    for p in batch {
                        let _ = p.answer.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// Runs one batch: one script call, one answer per order, in order.
    async fn reserve_batch(&self, batch: Vec<Pending>) -> (Result<Vec<Answer>, EngineError>, Vec<Pending>) {
        let (parts, part_keys) =
            self.partition_groups(batch.iter().flat_map(|p| p.req.lines.iter().map(|l| l.sku.as_str())));
        let mut keys = part_keys;
        keys.extend(batch.iter().map(|p| self.keys().order(p.req.order_id.as_str())));

        let tombstone = millis(self.settings().tombstone).to_string();
        let mut args = vec![batch.len().to_string()];
        for Pending { req, allocation_order, .. } in &batch {
            let ttl = req.ttl.unwrap_or(self.settings().default_ttl);
            args.extend([
                req.order_id.as_str().to_owned(),
                ttl.as_millis().to_string(),
                req.channel.as_ref().map(|c| c.as_str().to_owned()).unwrap_or_default(),
                tombstone.clone(),
                req.lines.len().to_string(),
                allocation_order.len().to_string(),
            ]);
            args.extend(allocation_order.iter().map(|l| l.as_str().to_owned()));
            for line in &req.lines {
                let p = self.keys().partition_of(line.sku.as_str());
                let group = parts.iter().position(|x| *x == p).unwrap_or(0) + 1;
                args.extend([
                    group.to_string(),
                    line.sku.as_str().to_owned(),
                    line.location.as_ref().map(|l| l.as_str().to_owned()).unwrap_or_default(),
                    line.quantity.get().to_string(),
                ]);
            }
        }

        let answers = match self.run(&SCRIPTS.reserve, &keys, parts.len(), &args).await {
            Ok(Value::Array(replies)) if replies.len() == batch.len() => {
                Ok(batch.iter().zip(replies).map(|(p, v)| outcome(&p.req, v)).collect())
            }
            Ok(other) => Err(EngineError::Protocol {
                script: "reserve",
                detail: format!("expected {} replies, got {other:?}", batch.len()),
            }),
            Err(e) => Err(e),
        };
        (answers, batch)
    }
}

/// Decrements the running count if a batch task ends by panicking, so that
/// later calls start a new one (a normal end decrements it under the lock).
struct Running(Arc<Core>);

impl Drop for Running {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut q = self.0.queue();
            q.running = q.running.saturating_sub(1);
        }
    }
}

/// The first calls waiting: at most `max` orders and about
/// `MAX_BATCH_LINES` lines, and always at least one call.
fn take_batch(waiting: &mut VecDeque<Pending>, max: usize) -> Vec<Pending> {
    let mut lines = 0;
    let mut n = 0;
    for p in waiting.iter().take(max) {
        if n > 0 && lines + p.req.lines.len() > MAX_BATCH_LINES {
            break;
        }
        lines += p.req.lines.len();
        n += 1;
    }
    waiting.drain(..n).collect()
}

/// One order's reply (see reserve.lua) as an outcome.
fn outcome(req: &ReserveRequest, v: Value) -> Answer {
    let order = req.order_id.as_str();
    let mut r = Reply::new("reserve", v)?;
    match r.string()?.as_str() {
        "RESERVED" => Ok(ReserveOutcome::Reserved(r.reservation(order)?)),
        "EXISTS" => existing(req, r.reservation(order)?),
        "UNKNOWN" => Ok(ReserveOutcome::UnknownSku(rest_strings(&mut r)?)),
        "STOP" => Ok(ReserveOutcome::StopSell(rest_strings(&mut r)?)),
        "SHORT" => {
            let mut shortages = Vec::new();
            while !r.is_empty() {
                shortages.push(Shortage {
                    sku: r.string()?,
                    location_id: r.string()?,
                    requested: r.int()?,
                    available: r.int()?,
                });
            }
            Ok(ReserveOutcome::InsufficientStock(shortages))
        }
        other => Err(EngineError::Protocol { script: "reserve", detail: format!("tag {other:?}") }),
    }
}

/// An order that already had a reservation: the same reservation again when
/// the request matches and stock is (or was, until shipped) held for it.
fn existing(req: &ReserveRequest, res: Reservation) -> Answer {
    let asked = per_sku(req.lines.iter().map(|l| (l.sku.as_str(), l.quantity.get())));
    let held = per_sku(res.lines.iter().map(|l| (l.sku.as_str(), l.quantity)));
    if asked != held {
        return Err(EngineError::FailedPrecondition(format!(
            "order {} already has a reservation with different lines",
            res.order_id
        )));
    }
    match res.status {
        ReservationStatus::Active | ReservationStatus::Committed | ReservationStatus::Fulfilled => {
            Ok(ReserveOutcome::Existing(res))
        }
        s => Err(EngineError::FailedPrecondition(format!(
            "order {} was {}; a new reservation needs a new order_id",
            res.order_id,
            status_word(s)
        ))),
    }
}

fn per_sku<'a>(lines: impl Iterator<Item = (&'a str, i64)>) -> BTreeMap<&'a str, i64> {
    let mut m = BTreeMap::new();
    for (sku, q) in lines {
        *m.entry(sku).or_insert(0) += q;
    }
    m
}

fn rest_strings(r: &mut Reply) -> Result<Vec<String>, EngineError> {
    let mut out = Vec::new();
    while !r.is_empty() {
        out.push(r.string()?);
    }
    Ok(out)
}
