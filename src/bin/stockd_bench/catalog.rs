//! The catalog: S SKUs stocked at L locations, popularity Zipf-distributed,
//! orders of 1-5 distinct SKUs that are then committed and fulfilled,
//! released, or left to expire. Also measures Redis memory per SKU-location
//! (used_memory around the setup) and per active hold (around K holds).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use futures::{StreamExt, TryStreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stockd::grpc::proto;
use tokio::time::Instant;

use crate::baseline::{Baseline, Reserved};
use crate::client::{Clients, oversold_units};
use crate::lag::LagSampler;
use crate::load::{self, Measured, Recorder};
use crate::redis_probe::{self, RedisProbe};
use crate::report::{self, MemoryFigures, Summary, round};
use crate::zipf::Zipf;
use crate::{CommonArgs, Outcome, progress, run_id};

/// The catalog scenario's settings.
#[derive(Debug, Args)]
pub struct CatalogArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// SKUs in the catalog [default: 100000; --smoke: 1000].
    #[arg(long)]
    pub skus: Option<usize>,
    /// Locations every SKU is stocked at.
    #[arg(long, default_value_t = 3)]
    pub locations: usize,
    /// Zipf exponent of SKU popularity.
    #[arg(long, default_value_t = 1.0)]
    pub zipf_s: f64,
    /// on_hand at every SKU-location: high, so the popular SKUs do not sell
    /// out during the run and every order goes through its lifecycle.
    #[arg(long, default_value_t = 1_000_000)]
    pub on_hand: i64,
    /// Active holds made to measure Redis memory per hold (with --redis-url)
    /// [default: 10000; --smoke: 200].
    #[arg(long)]
    pub active_holds: Option<usize>,
    /// Calls in flight during setup [default: max(concurrency, 32)].
    #[arg(long)]
    pub setup_concurrency: Option<usize>,
    /// Hold length of the orders left to expire.
    #[arg(long, default_value = "1s", value_parser = crate::parse_duration)]
    pub expire_ttl: Duration,
    /// Most lines per order (each order has 1..=N, uniformly). With
    /// --max-lines 1 and --fulfil-pct 0 --release-pct 0 every request is a
    /// one-line reservation, as in the flash sale, but spread over the
    /// catalog: what the number of SKUs alone costs.
    #[arg(long, default_value_t = 5)]
    pub max_lines: usize,
    /// Share of orders committed then fulfilled, in percent.
    #[arg(long, default_value_t = 60)]
    pub fulfil_pct: u32,
    /// Share of orders released (cancelled), in percent; the rest is left to expire.
    #[arg(long, default_value_t = 25)]
    pub release_pct: u32,
}

/// What orders look like: how many lines, and what becomes of them.
#[derive(Debug, Clone, Copy)]
struct Mix {
    /// Most lines per order (at least 1).
    max_lines: usize,
    /// Share of orders committed then fulfilled, in percent.
    fulfil_pct: u32,
    /// Share released (cancelled); the rest is left to expire.
    release_pct: u32,
}

impl Mix {
    /// The mix the arguments ask for, checked.
    fn from_args(args: &CatalogArgs) -> anyhow::Result<Self> {
        anyhow::ensure!((1..=20).contains(&args.max_lines), "--max-lines must be 1..=20");
        anyhow::ensure!(
            args.fulfil_pct.checked_add(args.release_pct).is_some_and(|t| t <= 100),
            "--fulfil-pct and --release-pct must add up to at most 100"
        );
        Ok(Self { max_lines: args.max_lines, fulfil_pct: args.fulfil_pct, release_pct: args.release_pct })
    }
}
/// Hold length of orders that will be committed or released right away.
const HOLD_TTL: Duration = Duration::from_secs(120);
/// Longest wait for the reconciler to drain the streams before a memory reading.
const STREAM_DRAIN_LIMIT: Duration = Duration::from_secs(20);

/// Hold length of the holds made for the memory measurement.
const MEMORY_HOLD_TTL: Duration = Duration::from_secs(600);
/// Most batches of holds made for the memory measurement (see measure_holds).
const MEMORY_HOLD_BATCHES: usize = 4;
/// Location ids are this plus 1..=L; the same ids every run (upserting them
/// again changes nothing), so repeated runs do not grow the server's location
/// list, which every reservation call carries.
const LOCATION_PREFIX: &str = "BENCH-L";
/// Below this many SKU-locations (and a tenth as many holds) the memory
/// figures say more about per-key overheads than about per-item cost.
const SMALL_SAMPLE: usize = 100_000;

/// What happens to an order after it is reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Commit, then fulfil.
    Fulfil,
    /// Release (cancelled).
    Release,
    /// Nothing: the hold expires (the seed's abandoned cart).
    Expire,
}

/// Draws orders: 1..=max_lines distinct SKU ranks by Zipf popularity, and a fate.
struct OrderGen {
    zipf: Arc<Zipf>,
    mix: Mix,
    rng: StdRng,
}

impl OrderGen {
    fn new(zipf: Arc<Zipf>, mix: Mix, seed: u64) -> Self {
        Self { zipf, mix, rng: StdRng::seed_from_u64(seed) }
    }

    fn next(&mut self) -> (Vec<usize>, Fate) {
        let Mix { max_lines, fulfil_pct, release_pct } = self.mix;
        let want = self.rng.random_range(1..=max_lines).min(self.zipf.len());
        let mut ranks = Vec::with_capacity(want);
        // Popular SKUs repeat often; a bounded number of redraws keeps the
        // lines distinct without looping forever on tiny catalogs.
        for _ in 0..want * 8 {
            if ranks.len() == want {
                break;
            }
            let k = self.zipf.sample(&mut self.rng);
            if !ranks.contains(&k) {
                ranks.push(k);
            }
        }
        let roll = self.rng.random_range(0..100);
        let fate = if roll < fulfil_pct {
            Fate::Fulfil
        } else if roll < fulfil_pct + release_pct {
            Fate::Release
        } else {
            Fate::Expire
        };
        (ranks, fate)
    }
}

fn proto_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// Runs the scenario: setup (timed, with memory), holds (memory), stockd
/// phase, oversold check, baseline phase.
pub async fn run(args: &CatalogArgs) -> anyhow::Result<Outcome> {
    let c = &args.common;
    let (n, duration) = (c.concurrency(), c.duration());
    let skus = args.skus.unwrap_or(if c.smoke { 1000 } else { 100_000 });
    anyhow::ensure!(skus > 0, "--skus must be positive");
    anyhow::ensure!((1..=100).contains(&args.locations), "--locations must be 1..=100");
    anyhow::ensure!(args.expire_ttl >= Duration::from_secs(1), "--expire-ttl must be at least 1s");
    let mix = Mix::from_args(args)?;
    let holds = args.active_holds.unwrap_or(if c.smoke { 200 } else { 10_000 });
    let setup_conc = args.setup_concurrency.unwrap_or(n.max(32));
    let run = run_id();
    let sku_prefix = format!("bc-{run}-");
    let names: Arc<Vec<String>> = Arc::new((0..skus).map(|k| format!("{sku_prefix}{k}")).collect());
    let locations: Vec<String> = (1..=args.locations).map(|j| format!("{LOCATION_PREFIX}{j}")).collect();
    let zipf = Arc::new(Zipf::new(skus, args.zipf_s)?);
    let clients = Clients::connect(&c.grpc, c.connections(), c.token.as_deref()).await?;
    let mut probe = match &c.redis_url {
        Some(url) => Some(RedisProbe::connect(url, c.redis_prefix.clone()).await?),
        None => None,
    };
    progress!(
        "catalog {run}: {skus} SKUs x {} locations, zipf s={}, orders of 1-{} lines ({}% fulfilled, {}% released, \
         the rest left to expire), {n} workers on {} connections, {:.1} s per phase",
        args.locations,
        args.zipf_s,
        mix.max_lines,
        mix.fulfil_pct,
        mix.release_pct,
        clients.len(),
        duration.as_secs_f64()
    );
    let mut notes = Vec::new();

    // Setup, timed, with Redis memory around it.
    clients.upsert_locations(&locations).await?;
    let mem0 = match probe.as_mut() {
        Some(p) => Some((p.used_memory().await?, p.usage_by_kind().await?)),
        None => None,
    };
    let started = Instant::now();
    clients.upsert_skus(skus, setup_conc, |k| names[k].clone()).await?;
    let upserts = started.elapsed();
    let targets = names.iter().flat_map(|s| locations.iter().map(move |l| (s.clone(), l.clone())));
    let started = Instant::now();
    clients.set_on_hand_all(targets, args.on_hand, setup_conc, |s, l| format!("bench:{run}:stock:{s}:{l}")).await?;
    let stocking = started.elapsed();
    let sku_locations = (skus * args.locations) as f64;
    notes.push(format!(
        "setup: {skus} UpsertSku in {:.1} s ({:.0}/s), {} SetOnHand in {:.1} s ({:.0}/s), {setup_conc} in flight",
        upserts.as_secs_f64(),
        skus as f64 / upserts.as_secs_f64(),
        skus * args.locations,
        stocking.as_secs_f64(),
        sku_locations / stocking.as_secs_f64()
    ));
    let mut memory = MemoryFigures { redis_bytes_per_sku_location: None, redis_bytes_per_active_hold: None };
    if probe.is_some() && (skus * args.locations < SMALL_SAMPLE || holds < SMALL_SAMPLE / 10) {
        notes.push(format!(
            "note: memory figures from fewer than {SMALL_SAMPLE} SKU-locations or {} holds are dominated by per-key \
             overheads (a stream node preallocates 4 KiB per partition); use the full-size run for them",
            SMALL_SAMPLE / 10
        ));
    }
    if let (Some(p), Some((m0, usage0))) = (probe.as_mut(), mem0) {
        drain_note(p, &mut notes).await?;
        let (m1, usage1) = (p.used_memory().await?, p.usage_by_kind().await?);
        let per = (m1 as f64 - m0 as f64) / sku_locations;
        memory.redis_bytes_per_sku_location = Some(round(per, 1));
        notes.push(format!("redis used_memory {m0} -> {m1}: {per:.1} bytes per SKU-location"));
        if !usage1.is_empty() {
            notes.push(redis_probe::describe_usage_delta(&usage0, &usage1, sku_locations, "SKU-location"));
        }
        if holds > 0 {
            let (per_hold, breakdown) = measure_holds(&clients, p, &names, &run, holds, setup_conc).await?;
            memory.redis_bytes_per_active_hold = Some(round(per_hold, 1));
            notes.push(format!("{holds} active single-line holds: {per_hold:.1} bytes per hold (used_memory)"));
            notes.extend(breakdown);
        }
    }

    let before = match probe.as_mut() {
        Some(p) => Some(p.snapshot().await?),
        None => None,
    };
    let seed: u64 = rand::random();
    let expire_ttl = args.expire_ttl;
    let lag = LagSampler::start(&c.database_url, c.stockd_schema.as_deref()).await?;
    let stockd = load::run("stockd", n, duration, c.settle, |w, deadline| {
        let mut client = clients.reservations(w);
        let mut orders = OrderGen::new(zipf.clone(), mix, seed.wrapping_add(w as u64));
        let names = names.clone();
        let prefix = format!("bc-{run}-{w}-");
        async move {
            let mut rec = Recorder::new();
            let mut seq = 0u64;
            while Instant::now() < deadline {
                seq += 1;
                let order_id = format!("{prefix}{seq}");
                let (ranks, fate) = orders.next();
                let lines = ranks.len() as u64;
                let ttl = if fate == Fate::Expire { expire_ttl } else { HOLD_TTL };
                let req = proto::ReserveRequest {
                    order_id: order_id.clone(),
                    lines: ranks
                        .iter()
                        .map(|&k| proto::ReserveLine { sku: names[k].clone(), quantity: 1, location_id: String::new() })
                        .collect(),
                    ttl: Some(proto_duration(ttl)),
                    channel: String::new(),
                };
                let Some(resp) = rec.call(client.reserve(req)).await else { continue };
                match resp.into_inner().outcome() {
                    proto::ReserveOutcome::Reserved => {
                        rec.count("reserved");
                        rec.add(report::LINES, lines);
                    }
                    proto::ReserveOutcome::InsufficientStock => {
                        rec.count("insufficient");
                        continue;
                    }
                    other => {
                        rec.error(format!("unexpected outcome {}", other.as_str_name()));
                        continue;
                    }
                }
                match fate {
                    Fate::Fulfil => {
                        let commit = proto::CommitRequest { order_id: order_id.clone() };
                        if rec.call(client.commit(commit)).await.is_none() {
                            continue;
                        }
                        rec.add(report::LINES, lines);
                        if rec.call(client.fulfill(proto::FulfillRequest { order_id })).await.is_some() {
                            rec.count("fulfilled");
                            rec.add(report::LINES, lines);
                        }
                    }
                    Fate::Release => {
                        let release = proto::ReleaseRequest { order_id, reason: "cancelled".into() };
                        if rec.call(client.release(release)).await.is_some() {
                            rec.count("released");
                            rec.add(report::LINES, lines);
                        }
                    }
                    Fate::Expire => rec.count("left_to_expire"),
                }
            }
            rec
        }
    })
    .await?;
    let lag = LagSampler::finish(lag).await?;
    let orders = stockd.rec.counted("reserved") + stockd.rec.counted("insufficient");
    notes.push(report::describe("stockd", &stockd));
    notes.push(report::describe_lag(lag.as_ref()));
    notes.push(format!("stockd orders: {orders} ({:.0}/s)", stockd.per_second(orders)));
    if let (Some(p), Some(before)) = (probe.as_mut(), before) {
        let after = p.snapshot().await?;
        notes.push(redis_probe::describe_delta(&before, &after));
    }

    let items = clients.availability(&names).await?;
    let oversold = oversold_units(&items);
    let still_held: i64 = items.iter().filter_map(|i| i.total).map(|t| t.reserved).sum();
    notes
        .push(format!("after the run: {still_held} units still reserved (holds not yet expired), oversold {oversold}"));

    let baseline = if c.skip_baseline {
        None
    } else {
        let b = run_baseline(c, args, &sku_prefix, &names, &zipf, seed, &run).await?;
        let orders = b.rec.counted("reserved") + b.rec.counted("insufficient");
        notes.push(report::describe("baseline", &b));
        notes.push(format!("baseline orders: {orders} ({:.0}/s)", b.per_second(orders)));
        Some(b)
    };
    let mut summary = Summary::new("catalog", n, &stockd, oversold, baseline.as_ref());
    summary.memory = Some(memory);
    summary.reconcile_lag_ms = lag;
    Ok(Outcome { summary, notes })
}

/// Waits for the reconciler to drain the event streams before a memory
/// reading, and says in the notes if it did not within the limit.
async fn drain_note(probe: &mut RedisProbe, notes: &mut Vec<String>) -> anyhow::Result<()> {
    let left = probe.wait_for_drained_streams(STREAM_DRAIN_LIMIT).await?;
    if left > 0 {
        notes.push(format!(
            "note: {left} events were still in the streams after {STREAM_DRAIN_LIMIT:?} (is the reconciler on?); \
             the memory figure below includes them"
        ));
    }
    Ok(())
}

/// Makes `holds` single-line holds (10 min), reads used_memory around them,
/// then releases them. Returns bytes per hold and a per-key-kind breakdown.
///
/// Redis's keyspace and expiry tables double when their key count passes a
/// power of two, and while one is rehashed the old and the new bucket arrays
/// both count: a batch of holds that happens to cross such a size is charged
/// megabytes that belong to every key (about 800 bytes per hold at 10,000
/// holds and 260,000 keys). Such a batch is noted, and another batch made
/// and measured from there, up to MEMORY_HOLD_BATCHES (on a nearly empty
/// keyspace the first two batches both cross a doubling).
async fn measure_holds(
    clients: &Clients,
    probe: &mut RedisProbe,
    names: &Arc<Vec<String>>,
    run: &str,
    holds: usize,
    concurrency: usize,
) -> anyhow::Result<(f64, Vec<String>)> {
    let order = |i: usize| format!("bc-{run}-hold-{i}");
    let mut notes = Vec::new();
    let mut made = 0;
    let mut per = f64::NAN;
    for batch in 1..=MEMORY_HOLD_BATCHES {
        let (m0, usage0, keys0) = (probe.used_memory().await?, probe.usage_by_kind().await?, probe.key_counts().await?);
        futures::stream::iter(made..made + holds)
            .map(|i| {
                let mut client = clients.reservations(i);
                let req = proto::ReserveRequest {
                    order_id: order(i),
                    lines: vec![proto::ReserveLine {
                        sku: names[i % names.len()].clone(),
                        quantity: 1,
                        location_id: String::new(),
                    }],
                    ttl: Some(proto_duration(MEMORY_HOLD_TTL)),
                    channel: String::new(),
                };
                async move {
                    let resp = client.reserve(req).await.context("Reserve (memory holds)")?.into_inner();
                    anyhow::ensure!(
                        resp.outcome() == proto::ReserveOutcome::Reserved,
                        "a memory hold was not reserved: {}",
                        resp.outcome().as_str_name()
                    );
                    Ok(())
                }
            })
            .buffer_unordered(concurrency.max(1))
            .try_collect::<()>()
            .await?;
        made += holds;
        drain_note(probe, &mut notes).await?;
        let (m1, usage1, keys1) = (probe.used_memory().await?, probe.usage_by_kind().await?, probe.key_counts().await?);
        per = (m1 as f64 - m0 as f64) / holds as f64;
        notes.push(format!("redis used_memory {m0} -> {m1} around {holds} holds"));
        if !usage1.is_empty() {
            notes.push(redis_probe::describe_usage_delta(&usage0, &usage1, holds as f64, "active hold"));
        }
        if batch < MEMORY_HOLD_BATCHES && redis_probe::table_doubled(keys0, keys1) {
            notes.push(format!(
                "note: the keyspace's tables doubled during these holds (keys, keys with expiry: {keys0:?} -> \
                 {keys1:?}), so {per:.1} bytes per hold counts their new bucket arrays; measuring {holds} more"
            ));
            // Redis frees the old bucket array once it has rehashed
            // (incrementally, in steps of about a millisecond every 100 ms):
            // let it finish before the second reading starts.
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        break;
    }
    // Release them so the measured phase starts with no holds of ours, and
    // with their events reconciled (a backlog would show as lag in it).
    futures::stream::iter(0..made)
        .map(|i| {
            let mut client = clients.reservations(i);
            let req = proto::ReleaseRequest { order_id: order(i), reason: "bench".into() };
            async move { client.release(req).await.context("Release (memory holds)").map(drop) }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<()>()
        .await?;
    probe.wait_for_drained_streams(STREAM_DRAIN_LIMIT).await?;
    Ok((per, notes))
}

/// The same orders (same seed, same mix) through the seed-style Postgres
/// transactions. Every line is held at the first location, which is where
/// stockd's allocation puts it too (it has plenty). Orders left to expire
/// stay held: the baseline has no sweeper, which only flatters it.
async fn run_baseline(
    c: &CommonArgs,
    args: &CatalogArgs,
    sku_prefix: &str,
    names: &Arc<Vec<String>>,
    zipf: &Arc<Zipf>,
    seed: u64,
    run: &str,
) -> anyhow::Result<Measured> {
    let n = c.concurrency();
    let mix = Mix::from_args(args)?;
    progress!("baseline: {n} connections to Postgres, schema {}", c.baseline_schema);
    let b = Baseline::create(&c.database_url, &c.baseline_schema, u32::try_from(n)?).await?;
    b.stock_many(sku_prefix, names.len(), LOCATION_PREFIX, args.locations, args.on_hand).await?;
    b.warm().await?;
    let b = Arc::new(b);
    let location = format!("{LOCATION_PREFIX}1");
    let expire_s = args.expire_ttl.as_secs_f64();
    let measured = load::run("baseline", n, c.duration(), c.settle, |w, deadline| {
        let b = b.clone();
        let mut orders = OrderGen::new(zipf.clone(), mix, seed.wrapping_add(w as u64));
        let names = names.clone();
        let location = location.clone();
        let prefix = format!("bc-{run}-{w}-");
        async move {
            let mut rec = Recorder::new();
            let mut seq = 0u64;
            while Instant::now() < deadline {
                seq += 1;
                let order_id = format!("{prefix}{seq}");
                let (ranks, fate) = orders.next();
                let ttl = if fate == Fate::Expire { expire_s } else { HOLD_TTL.as_secs_f64() };
                let mut lines: Vec<(String, String, i64)> =
                    ranks.iter().map(|&k| (names[k].clone(), location.clone(), 1)).collect();
                match rec.call(b.reserve(&order_id, &mut lines, ttl)).await {
                    Some(Reserved::Yes) => rec.count("reserved"),
                    Some(Reserved::Insufficient) => {
                        rec.count("insufficient");
                        continue;
                    }
                    None => continue,
                }
                match fate {
                    Fate::Fulfil => {
                        if rec.call(b.commit(&order_id)).await.is_some()
                            && rec.call(b.fulfil(&order_id)).await.is_some()
                        {
                            rec.count("fulfilled");
                        }
                    }
                    Fate::Release => {
                        if rec.call(b.release(&order_id)).await.is_some() {
                            rec.count("released");
                        }
                    }
                    Fate::Expire => rec.count("left_to_expire"),
                }
            }
            rec
        }
    })
    .await?;
    Baseline::finish(b).await?;
    Ok(measured)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT_MIX: Mix = Mix { max_lines: 5, fulfil_pct: 60, release_pct: 25 };

    #[test]
    fn orders_have_one_to_five_distinct_lines_and_the_configured_mix() {
        let zipf = Arc::new(Zipf::new(1000, 1.0).expect("valid"));
        let mut orders = OrderGen::new(zipf, DEFAULT_MIX, 42);
        let mut fates = [0u32; 3];
        for _ in 0..10_000 {
            let (ranks, fate) = orders.next();
            assert!((1..=5).contains(&ranks.len()), "{ranks:?}");
            let mut d = ranks.clone();
            d.sort_unstable();
            d.dedup();
            assert_eq!(d.len(), ranks.len(), "lines are distinct");
            fates[fate as usize] += 1;
        }
        assert!((5_500..6_500).contains(&fates[0]), "{fates:?}");
        assert!((2_000..3_000).contains(&fates[1]), "{fates:?}");
    }

    #[test]
    fn a_one_sku_catalog_makes_one_line_orders() {
        let mut orders = OrderGen::new(Arc::new(Zipf::new(1, 1.0).expect("valid")), DEFAULT_MIX, 1);
        assert!((0..100).all(|_| orders.next().0 == vec![0]));
    }

    #[test]
    fn a_reserve_only_one_line_mix_makes_one_line_orders_left_to_expire() {
        let zipf = Arc::new(Zipf::new(1000, 1.0).expect("valid"));
        let mut orders = OrderGen::new(zipf, Mix { max_lines: 1, fulfil_pct: 0, release_pct: 0 }, 7);
        for _ in 0..1000 {
            let (ranks, fate) = orders.next();
            assert_eq!(ranks.len(), 1);
            assert_eq!(fate, Fate::Expire);
        }
    }

    fn mix_of(args: &[&str]) -> anyhow::Result<Mix> {
        use clap::Parser;
        let cli = crate::Cli::try_parse_from(["stockd-bench", "catalog"].iter().chain(args))?;
        match cli.scenario {
            crate::Scenario::Catalog(a) => Mix::from_args(&a),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn the_mix_arguments_are_checked() {
        let m = mix_of(&[]).expect("the defaults");
        assert_eq!((m.max_lines, m.fulfil_pct, m.release_pct), (5, 60, 25));
        let m = mix_of(&["--max-lines", "1", "--fulfil-pct", "0", "--release-pct", "100"]).expect("valid");
        assert_eq!((m.max_lines, m.fulfil_pct, m.release_pct), (1, 0, 100));
        for bad in [
            &["--max-lines", "0"][..],
            &["--max-lines", "21"],
            &["--fulfil-pct", "60", "--release-pct", "41"],
            &["--fulfil-pct", "4294967295", "--release-pct", "2"],
        ] {
            let e = mix_of(bad).expect_err("refused").to_string();
            assert!(e.contains("--max-lines") || e.contains("add up to at most 100"), "{bad:?}: {e}");
        }
    }
}
