//! The flash sale: one hot SKU, N buyers each reserving one unit under a
//! fresh order id, as fast as the server answers. Without `--stock` a
//! restocker keeps the SKU from running out, so the figures are those of
//! successful reservations; with `--stock S` the SKU is stocked once and the
//! run measures the sell-out (reserved vs insufficient, and nothing beyond S).

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use stockd::grpc::proto;
use stockd::grpc::proto::reservation_service_client::ReservationServiceClient;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::baseline::{Baseline, Reserved};
use crate::client::{Clients, Svc, oversold_units};
use crate::lag::LagSampler;
use crate::load::{self, Measured, Recorder};
use crate::redis_probe::{self, RedisProbe};
use crate::report::{self, Summary};
use crate::{CommonArgs, Outcome, progress, run_id};

/// The flash-sale scenario's settings.
#[derive(Debug, Args)]
pub struct FlashSaleArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Stock the SKU with S units once and measure the sell-out; without it
    /// the SKU is restocked whenever it runs low, so most calls succeed.
    #[arg(long)]
    pub stock: Option<i64>,
}

/// The one location the hot SKU is stocked at.
const LOCATION: &str = "BENCH-L1";
/// Units stocked at start (without --stock) and added by each restock.
const RESTOCK_UNITS: i64 = 1_000_000;
/// The restocker adds stock when available falls below this: far more than
/// the server can sell between two looks.
const RESTOCK_BELOW: i64 = 500_000;
/// How often the restocker looks.
const RESTOCK_EVERY: Duration = Duration::from_millis(100);
/// The baseline's stand-in for the restocker: stock that cannot run out.
const BASELINE_UNLIMITED: i64 = i64::MAX / 4;
/// The seed's hold length.
const SEED_TTL_S: f64 = 30.0 * 60.0;

/// Runs the scenario: setup, stockd phase, oversold check, baseline phase.
pub async fn run(args: &FlashSaleArgs) -> anyhow::Result<Outcome> {
    let c = &args.common;
    let (n, duration) = (c.concurrency(), c.duration());
    if let Some(s) = args.stock {
        anyhow::ensure!((0..=1_000_000_000).contains(&s), "--stock must be 0..=1000000000");
    }
    let run = run_id();
    let sku = format!("bench-fs-{run}");
    let clients = Clients::connect(&c.grpc, c.connections(), c.token.as_deref()).await?;
    progress!(
        "flash-sale {run}: sku {sku}, {n} workers on {} connections, {:.1} s per phase",
        clients.len(),
        duration.as_secs_f64()
    );

    clients.upsert_locations(&[LOCATION.to_owned()]).await?;
    clients.upsert_skus(1, 1, |_| sku.clone()).await?;
    let initial = args.stock.unwrap_or(RESTOCK_UNITS);
    let target = std::iter::once((sku.clone(), LOCATION.to_owned()));
    clients.set_on_hand_all(target, initial, 1, |_, _| format!("bench:{run}:stock")).await?;

    let mut probe = match &c.redis_url {
        Some(url) => Some(RedisProbe::connect(url, c.redis_prefix.clone()).await?),
        None => None,
    };
    let before = match probe.as_mut() {
        Some(p) => Some(p.snapshot().await?),
        None => None,
    };

    let stop = CancellationToken::new();
    let restocker =
        args.stock.is_none().then(|| tokio::spawn(restock(clients.clone(), sku.clone(), run.clone(), stop.clone())));
    let lag = LagSampler::start(&c.database_url, c.stockd_schema.as_deref()).await?;
    let stockd = load::run("stockd", n, duration, c.settle, |w, deadline| {
        buyer(clients.reservations(w), sku.clone(), format!("fs-{run}-{w}-"), deadline)
    })
    .await?;
    let lag = LagSampler::finish(lag).await?;
    stop.cancel();
    let restocks = match restocker {
        Some(h) => h.await??,
        None => 0,
    };
    let mut notes = vec![report::describe("stockd", &stockd), report::describe_lag(lag.as_ref())];
    if let (Some(p), Some(before)) = (probe.as_mut(), before) {
        let after = p.snapshot().await?;
        notes.push(redis_probe::describe_delta(&before, &after));
    }

    // Oversold, from what the server says it holds.
    let items = clients.availability(std::slice::from_ref(&sku)).await?;
    let total = items.first().and_then(|i| i.total).unwrap_or_default();
    let reserved = i64::try_from(stockd.rec.counted("reserved"))?;
    let mut oversold = oversold_units(&items);
    if let Some(s) = args.stock {
        oversold = oversold.max(reserved - s);
    }
    notes.push(format!(
        "server levels after the run: on_hand {} reserved {} committed {} available {}; restocks {restocks}",
        total.on_hand, total.reserved, total.committed, total.available
    ));
    if total.reserved != reserved {
        notes.push(format!(
            "note: the server holds {} units but the bench counted {reserved} reservations \
             (requests that timed out on the client may still have reserved)",
            total.reserved
        ));
    }

    let baseline = if c.skip_baseline {
        None
    } else {
        let b = run_baseline(c, &sku, args.stock, &run).await?;
        notes.push(report::describe("baseline", &b));
        Some(b)
    };
    let mut summary = Summary::new("flash-sale", n, &stockd, oversold, baseline.as_ref());
    summary.reconcile_lag_ms = lag;
    Ok(Outcome { summary, notes })
}

/// One buyer: reserves 1 unit of `sku` under order ids `<prefix>1`, `<prefix>2`,
/// ... one call after the other until `deadline`. The floor scenario runs the
/// same buyers, so both measure the same client work.
pub async fn buyer(
    mut client: ReservationServiceClient<Svc>,
    sku: String,
    prefix: String,
    deadline: Instant,
) -> Recorder {
    let mut rec = Recorder::new();
    let mut seq = 0u64;
    while Instant::now() < deadline {
        seq += 1;
        let req = proto::ReserveRequest {
            order_id: format!("{prefix}{seq}"),
            lines: vec![proto::ReserveLine { sku: sku.clone(), quantity: 1, location_id: String::new() }],
            ttl: None,
            channel: String::new(),
        };
        if let Some(resp) = rec.call(client.reserve(req)).await {
            match resp.into_inner().outcome() {
                proto::ReserveOutcome::Reserved => {
                    rec.count("reserved");
                    rec.add(report::LINES, 1);
                }
                proto::ReserveOutcome::InsufficientStock => rec.count("insufficient"),
                other => rec.error(format!("unexpected outcome {}", other.as_str_name())),
            }
        }
    }
    rec
}

/// Tops the SKU up by RESTOCK_UNITS whenever available falls below
/// RESTOCK_BELOW, until stopped. Returns how many times it did.
async fn restock(clients: Clients, sku: String, run: String, stop: CancellationToken) -> anyhow::Result<u64> {
    let mut restocks = 0u64;
    let mut tick = tokio::time::interval(RESTOCK_EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(restocks),
            _ = tick.tick() => {}
        }
        let items = clients.availability(std::slice::from_ref(&sku)).await?;
        let available = items.first().and_then(|i| i.total).map_or(0, |t| t.available);
        if available < RESTOCK_BELOW {
            restocks += 1;
            let req = proto::AdjustStockRequest {
                sku: sku.clone(),
                location_id: LOCATION.to_owned(),
                delta: RESTOCK_UNITS,
                reason: proto::AdjustmentReason::Received.into(),
                operation_id: format!("bench:{run}:restock:{restocks}"),
            };
            clients.stock(0).adjust_stock(req).await?;
        }
    }
}

/// The seed's transaction on one inventory row, same workers and duration.
async fn run_baseline(c: &CommonArgs, sku: &str, stock: Option<i64>, run: &str) -> anyhow::Result<Measured> {
    let n = c.concurrency();
    progress!("baseline: {n} connections to Postgres, schema {}", c.baseline_schema);
    let b = Baseline::create(&c.database_url, &c.baseline_schema, u32::try_from(n)?).await?;
    b.stock_one(sku, LOCATION, stock.unwrap_or(BASELINE_UNLIMITED)).await?;
    b.warm().await?;
    let b = Arc::new(b);
    let measured = load::run("baseline", n, c.duration(), c.settle, |w, deadline| {
        let b = b.clone();
        let sku = sku.to_owned();
        let prefix = format!("fs-{run}-{w}-");
        async move {
            let mut rec = Recorder::new();
            let mut seq = 0u64;
            while Instant::now() < deadline {
                seq += 1;
                let order_id = format!("{prefix}{seq}");
                let mut lines = [(sku.clone(), LOCATION.to_owned(), 1)];
                match rec.call(b.reserve(&order_id, &mut lines, SEED_TTL_S)).await {
                    Some(Reserved::Yes) => rec.count("reserved"),
                    Some(Reserved::Insufficient) => rec.count("insufficient"),
                    None => {}
                }
            }
            rec
        }
    })
    .await?;
    Baseline::finish(b).await?;
    Ok(measured)
}
