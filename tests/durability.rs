//! Durability: what survives when a backend is lost, measured on real
//! servers. Postgres down never stops checkout and the backlog reaches the
//! ledger once it returns; of two replicas only one reconciles and the other
//! takes over when it dies; a Redis wipe loses only what was acknowledged
//! within the reconcile interval, and brings back levels, reservations on
//! their original expiry, tombstones and applied operation ids.
//!
//! Servers that a test breaks are private (`PgServer`, `RedisServer`); the
//! shared Redis and Postgres are never stopped or flushed.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::pg_server::PgServer;
use common::redis_server::RedisServer;
use common::{TestApp, eventually};
use sqlx::PgPool;
use stockd::config::Config;
use stockd::grpc::proto::{self, ReservationStatus, ReserveOutcome};
use stockd::reconcile::{LeaderLock, Reconciler, ReconcilerSettings};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const HOT_PATH: [&str; 3] = ["", "inventory.v1.ReservationService", "inventory.v1.StockService"];
const CATALOG: &str = "inventory.v1.CatalogService";

async fn health(app: &TestApp, service: &str) -> ServingStatus {
    HealthClient::new(app.channel.clone())
        .check(HealthCheckRequest { service: service.into() })
        .await
        .map(|r| r.into_inner().status())
        .unwrap_or(ServingStatus::Unknown)
}

async fn hot_path_serving(app: &TestApp) -> bool {
    for s in HOT_PATH {
        if health(app, s).await != ServingStatus::Serving {
            return false;
        }
    }
    true
}

async fn get(app: &TestApp, order: &str) -> Result<proto::Reservation, tonic::Status> {
    app.reservations()
        .get_reservation(proto::GetReservationRequest { order_id: order.into() })
        .await
        .map(tonic::Response::into_inner)
}

/// Reserves and returns the reservation, failing the test on anything else.
async fn reserved(app: &TestApp, order: &str, lines: &[(&str, i64)], ttl_secs: i64) -> proto::Reservation {
    let r = app.reserve(order, lines, ttl_secs).await.unwrap_or_else(|e| panic!("reserve {order}: {e:?}"));
    assert_eq!(r.outcome(), ReserveOutcome::Reserved, "reserve {order}: {r:?}");
    r.reservation.expect("a reserved outcome carries the reservation")
}

async fn adjust(app: &TestApp, sku: &str, delta: i64, op: &str) -> proto::AdjustStockResponse {
    app.stock()
        .adjust_stock(proto::AdjustStockRequest {
            sku: sku.into(),
            location_id: "WH1".into(),
            delta,
            reason: proto::AdjustmentReason::Received.into(),
            operation_id: op.into(),
        })
        .await
        .expect("adjust stock")
        .into_inner()
}

/// (on_hand, reserved, committed, in_transit) of a SKU at WH1, as Redis has it.
async fn redis_level(app: &TestApp, sku: &str) -> (i64, i64, i64, i64) {
    let item = app.levels(sku).await;
    let l = item.levels.iter().find(|l| l.location_id == "WH1").unwrap_or_else(|| panic!("{sku} has a WH1 level"));
    (l.on_hand, l.reserved, l.committed, l.in_transit)
}

/// A connection to a private Redis, opened ahead so that a wipe is one round trip.
async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).expect("redis url");
    client.get_multiplexed_async_connection().await.expect("redis reachable")
}

/// Wipes a private Redis, as a restart without persistence would.
async fn flushall(conn: &mut redis::aio::MultiplexedConnection) {
    let _: () = redis::cmd("FLUSHALL").query_async(conn).await.expect("FLUSHALL");
}

/// Waits until the store is back in Redis (generation marker written, engine
/// ready) and the hot path reports SERVING. Right after a wipe health may
/// still say SERVING for one probe, so the marker is what tells "rebuilt".
async fn wait_rebuilt(app: &TestApp) {
    let back = eventually(Duration::from_secs(15), || async {
        matches!(app.engine.generation().await, Ok(Some(_))) && app.engine.is_ready() && hot_path_serving(app).await
    })
    .await;
    assert!(back, "the store was rebuilt from Postgres and the hot path serves again");
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).expect("clock after 1970")
}

fn ts_ms(t: &Option<prost_types::Timestamp>) -> i64 {
    let t = t.as_ref().expect("timestamp set");
    t.seconds * 1000 + i64::from(t.nanos) / 1_000_000
}

// ---------------------------------------------------------------------------
// Postgres down
// ---------------------------------------------------------------------------

/// Reserve rows in the ledger, per order.
async fn ledger_reserves(db: &PgPool) -> Result<BTreeMap<String, i64>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT order_id, count(*) FROM ledger WHERE kind = 'reserve' AND order_id IS NOT NULL GROUP BY order_id",
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().collect())
}

async fn reservation_statuses(db: &PgPool) -> Result<BTreeMap<String, String>, sqlx::Error> {
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT order_id, status FROM reservations").fetch_all(db).await?;
    Ok(rows.into_iter().collect())
}

async fn snapshot_level(db: &PgPool, sku: &str) -> Result<Option<(i64, i64, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT on_hand, reserved, committed, in_transit FROM stock_levels WHERE sku = $1 AND location_id = 'WH1'",
    )
    .bind(sku)
    .fetch_optional(db)
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_postgres_down_reservations_still_succeed_and_reach_the_ledger_once_it_returns() {
    // Arrange: the app on a private Postgres (its own test schema there) and
    // the shared Redis.
    let mut pg = PgServer::start().await;
    let pg_url = pg.url();
    let app = TestApp::spawn_with(|c| c.database_url = pg_url).await;
    app.stocked("A", 1000).await;
    app.sku("B").await;
    app.set_on_hand("B", "WH1", 1000).await;
    // Odd orders have two lines (A and B), even ones one line.
    let lines_of =
        |i: usize| -> Vec<(&'static str, i64)> { if i % 2 == 1 { vec![("A", 1), ("B", 2)] } else { vec![("A", 3)] } };
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for i in 1..=4 {
        let order = format!("o-{i}");
        reserved(&app, &order, &lines_of(i), 0).await;
        expected.insert(order, lines_of(i).len() as i64);
    }
    app.wait_reconciled().await;
    assert_eq!(health(&app, CATALOG).await, ServingStatus::Serving, "catalog serves while Postgres is up");

    // Act: Postgres crashes; checkout goes on.
    pg.stop();
    let started = Instant::now();
    for i in 5..=14 {
        let order = format!("o-{i}");
        reserved(&app, &order, &lines_of(i), 0).await;
        expected.insert(order, lines_of(i).len() as i64);
    }
    let reserving_took = started.elapsed();
    let during = app.total("A").await;

    // Assert: the hot path never waited for Postgres, and health says so.
    assert!(reserving_took < Duration::from_secs(2), "10 reserves took {reserving_took:?} with Postgres down");
    // A: 7 one-line orders of 3 and 7 two-line orders of 1.
    assert_eq!((during.on_hand, during.reserved), (1000, 7 * 3 + 7), "GetAvailability answers from Redis");
    let catalog_down =
        eventually(Duration::from_secs(10), || async { health(&app, CATALOG).await == ServingStatus::NotServing })
            .await;
    assert!(catalog_down, "CatalogService follows Postgres: NOT_SERVING");
    for s in HOT_PATH {
        assert_eq!(health(&app, s).await, ServingStatus::Serving, "{s:?} follows Redis only");
    }
    assert!(app.stream_backlog().await > 0, "the streams hold the backlog while Postgres is down");
    let one_more = app.reserve("o-15", &[("A", 1)], 0).await.expect("still answered after health went down");
    assert_eq!(one_more.outcome(), ReserveOutcome::Reserved);
    expected.insert("o-15".into(), 1);

    // Act: Postgres returns (after crash recovery).
    pg.restart().await;
    let returned = Instant::now();

    // Assert: the reconciler catches up by itself, exactly once per event.
    let db = app.db().await;
    let last = std::cell::RefCell::new(String::new());
    let caught_up = eventually(Duration::from_secs(30), || async {
        let state = async {
            let ledger = ledger_reserves(&db).await?;
            let statuses = reservation_statuses(&db).await?;
            let a = snapshot_level(&db, "A").await?;
            let b = snapshot_level(&db, "B").await?;
            Ok::<_, sqlx::Error>((ledger, statuses, a, b))
        }
        .await;
        let Ok((ledger, statuses, a, b)) = state else { return false };
        let all_active = statuses.len() == expected.len()
            && expected.keys().all(|o| statuses.get(o).map(String::as_str) == Some("ACTIVE"));
        let levels = (a, b) == (Some(redis_level(&app, "A").await), Some(redis_level(&app, "B").await));
        *last.borrow_mut() = format!("ledger {ledger:?}\nstatuses {statuses:?}\nsnapshot A {a:?} B {b:?}");
        ledger == expected && all_active && levels
    })
    .await;
    assert!(
        caught_up,
        "every reservation reached the ledger once, the snapshot equals Redis, all ACTIVE; last seen:\n{}",
        last.borrow()
    );
    println!(
        "postgres outage: the backlog reached the ledger {} ms after Postgres returned",
        returned.elapsed().as_millis()
    );
    let dup: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM ledger WHERE order_id IS NOT NULL
         GROUP BY order_id, kind, sku, location_id HAVING count(*) > 1) d",
    )
    .fetch_one(&db)
    .await
    .expect("query");
    assert_eq!(dup, 0, "no ledger row is duplicated");
    let catalog_back =
        eventually(Duration::from_secs(10), || async { health(&app, CATALOG).await == ServingStatus::Serving }).await;
    assert!(catalog_back, "CatalogService serves again once Postgres is back");
    db.close().await;
}

// ---------------------------------------------------------------------------
// Two replicas
// ---------------------------------------------------------------------------

/// A `stockd serve` subprocess, killed on drop (also when the test fails);
/// its stderr goes to a file, printed if the test panics.
struct StockdProcess {
    child: Child,
    log: PathBuf,
}

impl StockdProcess {
    fn spawn(config: &Config) -> StockdProcess {
        Self::spawn_logging(config, "warn")
    }

    /// As `spawn`, logging at `level` (STOCKD_LOG).
    fn spawn_logging(config: &Config, level: &str) -> StockdProcess {
        let log = std::env::temp_dir().join(format!("stockd-proc-{}.log", uuid::Uuid::new_v4().simple()));
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stockd"));
        cmd.arg("serve");
        // Nothing from the test runner's environment may change its settings.
        for (k, _) in std::env::vars() {
            if k.starts_with("STOCKD_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("REDIS_URL", &config.redis_url)
            .env("DATABASE_URL", &config.database_url)
            .env("STOCKD_DATABASE_SCHEMA", config.database_schema.as_deref().unwrap_or_default())
            .env("STOCKD_REDIS_PREFIX", &config.redis_prefix)
            .env("STOCKD_PARTITIONS", config.partitions.to_string())
            .env("STOCKD_GRPC_ADDR", "127.0.0.1:0")
            .env("STOCKD_HTTP_ADDR", "127.0.0.1:0")
            .env("STOCKD_RECONCILE_INTERVAL", "100ms")
            .env("STOCKD_LOG", level)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = cmd.spawn().expect("stockd binary starts");
        StockdProcess { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, and wait for it to be gone.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for StockdProcess {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- stockd {} stderr ---\n{}", self.child.id(), self.log());
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// application_name of every session holding the reconciler's advisory lock
/// for `prefix` in this database. A bigint key shows in pg_locks as classid
/// (high 32 bits), objid (low 32 bits), objsubid 1.
async fn lock_holders(db: &PgPool, prefix: &str) -> Vec<String> {
    let key = LeaderLock::key_for(prefix);
    sqlx::query_scalar(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND l.classid::bigint = $1 AND l.objid::bigint = $2
         ORDER BY 1",
    )
    .bind((key >> 32) & 0xffff_ffff)
    .bind(key & 0xffff_ffff)
    .fetch_all(db)
    .await
    .expect("pg_locks query")
}

async fn ledger_orders(db: &PgPool) -> BTreeMap<String, i64> {
    ledger_reserves(db).await.expect("ledger query")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_written_to_a_file_has_no_terminal_colour_codes() {
    // Arrange: the real binary, its stderr a file (as under Kubernetes).
    let config = common::test_config();
    common::migrate(&config).await;
    let p = StockdProcess::spawn_logging(&config, "info");
    // Declared after the app, so killed before the app cleans the store up.
    let _app = TestApp::spawn_on(config.clone()).await;
    let mut p = p;

    // Act
    let serving = eventually(Duration::from_secs(20), || async { p.log().contains("serving gRPC") }).await;

    // Assert
    assert!(serving, "it logged that it serves (exited: {:?}); log:\n{}", p.exited(), p.log());
    assert!(!p.log().contains('\u{1b}'), "no escape codes in {:?}", p.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_one_of_two_processes_reconciles_and_the_other_takes_over_when_it_is_killed() {
    // Arrange: process A, the real binary, leads the reconciler.
    let config = common::test_config();
    common::migrate(&config).await;
    let mut a = StockdProcess::spawn(&config);
    let a_name = format!("stockd-{}", a.pid());
    let b_name = format!("stockd-{}", std::process::id());
    let db = stockd::db::connect(&config).await.expect("postgres reachable");
    let a_leads = eventually(Duration::from_secs(20), || async {
        lock_holders(&db, &config.redis_prefix).await == [a_name.clone()]
    })
    .await;
    assert!(a_leads, "process A leads the reconciler (exited: {:?}); log:\n{}", a.exited(), a.log());

    // Act: process B (in this test process) on the same store; changes through B.
    let app = TestApp::spawn_on(config.clone()).await;
    // Declared after `app`, so dropped (killed) before the app cleans the
    // store up, even when the test fails.
    let mut a = a;
    app.stocked("A", 100).await;
    reserved(&app, "o-1", &[("A", 2)], 0).await;
    reserved(&app, "o-2", &[("A", 3)], 0).await;

    // Assert: A reconciled them; B did not take the lock (it has tried at
    // least once at start and then every second).
    let reconciled = eventually(Duration::from_secs(10), || async {
        ledger_orders(&db).await == BTreeMap::from([("o-1".into(), 1), ("o-2".into(), 1)])
    })
    .await;
    assert!(reconciled, "B's changes reach the ledger: {:?}", ledger_orders(&db).await);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        lock_holders(&db, &config.redis_prefix).await,
        std::slice::from_ref(&a_name),
        "A still leads, B only competes"
    );
    assert!(a.exited().is_none(), "A is still running");

    // Act: A dies without a goodbye.
    let killed = Instant::now();
    a.kill();

    // Assert: B takes over within seconds and reconciles what follows.
    let b_leads = eventually(Duration::from_secs(10), || async {
        lock_holders(&db, &config.redis_prefix).await == [b_name.clone()]
    })
    .await;
    let takeover = killed.elapsed();
    assert!(b_leads, "B leads after A was killed: holders {:?}", lock_holders(&db, &config.redis_prefix).await);
    println!("takeover: B leads {} ms after A was killed", takeover.as_millis());
    reserved(&app, "o-3", &[("A", 4)], 0).await;
    adjust(&app, "A", 5, "op-after-takeover").await;
    let after = eventually(Duration::from_secs(10), || async {
        ledger_orders(&db).await == BTreeMap::from([("o-1".into(), 1), ("o-2".into(), 1), ("o-3".into(), 1)])
    })
    .await;
    assert!(after, "changes after the takeover reach the ledger once: {:?}", ledger_orders(&db).await);
    app.wait_reconciled().await;
    let snapshot = snapshot_level(&db, "A").await.expect("query");
    assert_eq!(snapshot, Some((105, 9, 0, 0)), "the snapshot follows Redis under the new leader");
    assert_eq!(redis_level(&app, "A").await, (105, 9, 0, 0));
    db.close().await;
}

// ---------------------------------------------------------------------------
// Losing Redis
// ---------------------------------------------------------------------------

/// One acknowledged reservation and when its Reserve answered.
struct Acked {
    order: String,
    sku: &'static str,
    quantity: i64,
    at: Instant,
    reservation: proto::Reservation,
}

async fn reserved_total(app: &TestApp, skus: &[&str]) -> i64 {
    let mut sum = 0;
    for s in skus {
        sum += app.total(s).await.reserved;
    }
    sum
}

/// Splits `acked` into (survived, lost) by asking the rebuilt store; a
/// survivor must be exactly the reservation Reserve acknowledged.
async fn survivors<'a>(app: &TestApp, acked: &'a [Acked]) -> (Vec<&'a Acked>, Vec<&'a Acked>) {
    let (mut survived, mut lost) = (Vec::new(), Vec::new());
    for a in acked {
        match get(app, &a.order).await {
            Ok(r) => {
                assert_eq!(r.status(), ReservationStatus::Active, "{} survived ACTIVE", a.order);
                assert_eq!(r, a.reservation, "{} survived with its lines, created_at and expires_at", a.order);
                survived.push(a);
            }
            Err(e) if e.code() == Code::NotFound => lost.push(a),
            Err(e) => panic!("GetReservation({}) after the rebuild: {e:?}", a.order),
        }
    }
    (survived, lost)
}

const SKUS: [&str; 3] = ["A", "B", "C"];

async fn stock_skus(app: &TestApp, on_hand: i64) {
    app.location("WH1", 1).await;
    for s in SKUS {
        app.sku(s).await;
        app.set_on_hand(s, "WH1", on_hand).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_wipe_loses_only_reservations_acknowledged_within_the_reconcile_interval() {
    // Arrange: a private Redis, the default reconcile interval.
    let redis = RedisServer::start().await;
    let mut wiper = redis_conn(&redis.url()).await;
    let app = TestApp::spawn_with(|c| c.redis_url = redis.url()).await;
    let interval = app.config.reconcile_interval;
    assert_eq!(interval, Duration::from_millis(250), "the default reconcile interval");
    stock_skus(&app, 1_000_000).await;
    app.wait_reconciled().await;

    // Act: orders one after another for about 2 s, then the wipe. Paced (a
    // moderate order rate) so that the reconciler idles its interval between
    // reads, as it does below saturation; back to back it would keep reading
    // with no pause and the window would be shorter.
    let mut acked: Vec<Acked> = Vec::new();
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(2) {
        i += 1;
        let (order, sku, quantity) = (format!("o-{i}"), SKUS[i % SKUS.len()], 1 + (i % 4) as i64);
        let reservation = reserved(&app, &order, &[(sku, quantity)], 0).await;
        acked.push(Acked { order, sku, quantity, at: Instant::now(), reservation });
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The last one answers right before the wipe.
    i += 1;
    let (order, sku, quantity) = (format!("o-{i}"), "A", 1);
    let reservation = reserved(&app, &order, &[(sku, quantity)], 0).await;
    acked.push(Acked { order, sku, quantity, at: Instant::now(), reservation });
    let wiped_at = Instant::now();
    flushall(&mut wiper).await;
    wait_rebuilt(&app).await;
    let rebuilt_after = wiped_at.elapsed();

    // Assert: everything older than the interval (plus a second's slack) survived.
    let (survived, lost) = survivors(&app, &acked).await;
    let age = |a: &Acked| wiped_at.duration_since(a.at);
    let bound = interval + Duration::from_secs(1);
    for a in &lost {
        assert!(age(a) <= bound, "{} was acknowledged {:?} before the wipe and is lost", a.order, age(a));
    }
    let oldest_lost = lost.iter().map(|a| age(a)).max().unwrap_or_default();
    let youngest_survivor = survived.iter().map(|a| age(a)).min().unwrap_or_default();
    println!(
        "loss window: {} of {} acknowledged reservations lost; the lost ones were acknowledged within {} ms before \
         the wipe (youngest survivor {} ms; reconcile interval {} ms; store rebuilt {} ms after the wipe)",
        lost.len(),
        acked.len(),
        oldest_lost.as_millis(),
        youngest_survivor.as_millis(),
        interval.as_millis(),
        rebuilt_after.as_millis()
    );
    let old_enough = acked.iter().filter(|a| age(a) > bound).count();
    assert!(old_enough >= 10, "{old_enough} orders older than the bound: too few for the survival check to mean much");

    // Assert: no double hold — Redis holds exactly the survivors.
    let surviving_sum: i64 = survived.iter().map(|a| a.quantity).sum();
    assert_eq!(reserved_total(&app, &SKUS).await, surviving_sum, "reserved == sum of surviving reservations");

    // Act + Assert: a retried survivor returns the same reservation, holding
    // nothing more; a lost order reserves again cleanly. (Almost always some
    // are lost: the last order answers about a millisecond before the wipe.)
    for a in &survived {
        let again = reserved(&app, &a.order, &[(a.sku, a.quantity)], 0).await;
        assert_eq!(again, a.reservation, "retrying {} returns the existing reservation", a.order);
    }
    assert_eq!(reserved_total(&app, &SKUS).await, surviving_sum, "retries held nothing more");
    for a in &lost {
        let again = reserved(&app, &a.order, &[(a.sku, a.quantity)], 0).await;
        assert_eq!(again.status(), ReservationStatus::Active);
        assert!(ts_ms(&again.created_at) > ts_ms(&a.reservation.created_at), "{} is a new reservation", a.order);
    }
    let all_sum: i64 = acked.iter().map(|a| a.quantity).sum();
    assert_eq!(reserved_total(&app, &SKUS).await, all_sum, "every order holds its quantity once");

    // (That these new reservations also reach Postgres is
    // `after_a_redis_wipe_new_changes_still_reach_the_ledger`.)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_wipe_right_after_reconciliation_loses_nothing() {
    // Arrange
    let redis = RedisServer::start().await;
    let mut wiper = redis_conn(&redis.url()).await;
    let app = TestApp::spawn_with(|c| c.redis_url = redis.url()).await;
    stock_skus(&app, 1000).await;
    let mut acked = Vec::new();
    for i in 1..=30 {
        let (order, sku, quantity) = (format!("o-{i}"), SKUS[i % SKUS.len()], 1 + (i % 3) as i64);
        let reservation = reserved(&app, &order, &[(sku, quantity)], 0).await;
        acked.push(Acked { order, sku, quantity, at: Instant::now(), reservation });
    }
    let levels_before = [redis_level(&app, "A").await, redis_level(&app, "B").await, redis_level(&app, "C").await];
    app.wait_reconciled().await;

    // Act
    flushall(&mut wiper).await;
    wait_rebuilt(&app).await;

    // Assert
    let (survived, lost) = survivors(&app, &acked).await;
    println!("loss window after wait_reconciled: {} of {} acknowledged reservations lost", lost.len(), acked.len());
    assert!(lost.is_empty(), "nothing lost: {:?}", lost.iter().map(|a| &a.order).collect::<Vec<_>>());
    assert_eq!(survived.len(), 30);
    let levels_after = [redis_level(&app, "A").await, redis_level(&app, "B").await, redis_level(&app, "C").await];
    assert_eq!(levels_after, levels_before, "levels rebuilt exactly");
    let sum: i64 = acked.iter().map(|a| a.quantity).sum();
    assert_eq!(reserved_total(&app, &SKUS).await, sum);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_wipe_while_serving_brings_back_levels_reservations_on_schedule_tombstones_and_operation_ids() {
    // Arrange: one of each kind of state.
    let redis = RedisServer::start().await;
    let mut wiper = redis_conn(&redis.url()).await;
    let app = TestApp::spawn_with(|c| c.redis_url = redis.url()).await;
    app.stocked("A", 100).await;
    let o1 = reserved(&app, "o-1", &[("A", 1)], 3600).await;
    reserved(&app, "o-3", &[("A", 3)], 0).await;
    app.reservations().commit(proto::CommitRequest { order_id: "o-3".into() }).await.expect("commit o-3");
    reserved(&app, "o-4", &[("A", 4)], 0).await;
    app.reservations()
        .release(proto::ReleaseRequest { order_id: "o-4".into(), reason: "cancelled".into() })
        .await
        .expect("release o-4");
    let first = adjust(&app, "A", 10, "op-1").await;
    assert!(!first.replayed, "op-1 applies the first time");
    // Last, so that it is still active after the rebuild: a short hold.
    let o2 = reserved(&app, "o-2", &[("A", 2)], 4).await;
    let o2_expires = ts_ms(&o2.expires_at);
    app.wait_reconciled().await;
    let levels_before = app.levels("A").await;
    assert_eq!(redis_level(&app, "A").await, (110, 3, 3, 0), "1 + 2 reserved, 3 committed");
    let before: Vec<proto::Reservation> = {
        let mut v = Vec::new();
        for o in ["o-1", "o-2", "o-3", "o-4"] {
            v.push(get(&app, o).await.expect("get"));
        }
        v
    };
    assert_eq!(before[0], o1);

    // Act: Redis loses everything while serving.
    flushall(&mut wiper).await;
    assert!(matches!(app.engine.generation().await, Ok(None)), "the wipe removed the generation marker");
    wait_rebuilt(&app).await;

    // Assert: levels and reservations as they were.
    assert!(now_ms() < o2_expires, "o-2 must still be active for this check (the rebuild was too slow)");
    assert_eq!(app.levels("A").await, levels_before, "levels equal before");
    for (o, b) in ["o-1", "o-2", "o-3", "o-4"].iter().zip(&before) {
        assert_eq!(&get(&app, o).await.expect("get after rebuild"), b, "{o} as it was");
    }
    assert_eq!(get(&app, "o-3").await.expect("get").status(), ReservationStatus::Committed);
    assert_eq!(get(&app, "o-4").await.expect("get").status(), ReservationStatus::Released);

    // Assert: the tombstone still refuses o-4; o-1 is idempotent; op-1 replays.
    let again = app.reserve("o-4", &[("A", 1)], 0).await.expect_err("o-4 ended: tombstone");
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    let retry = reserved(&app, "o-1", &[("A", 1)], 0).await;
    assert_eq!(retry, o1, "reserving o-1 again returns the same reservation");
    let replay = adjust(&app, "A", 10, "op-1").await;
    assert!(replay.replayed, "op-1 is remembered after the rebuild");
    assert_eq!(redis_level(&app, "A").await, (110, 3, 3, 0), "nothing changed by the retries");

    // Assert: o-2 expires on its original schedule, not before, not much
    // after: its stock returns (GetReservation derives EXPIRED from the
    // clock; the stock comes back when the sweeper releases the hold).
    let returned = eventually(Duration::from_secs(10), || async { redis_level(&app, "A").await.1 == 1 }).await;
    let returned_at = now_ms();
    assert!(returned, "o-2's stock returned");
    assert!(returned_at >= o2_expires, "o-2's stock returned {} ms before its expiry", o2_expires - returned_at);
    assert!(returned_at <= o2_expires + 3000, "o-2's stock returned {} ms after its expiry", returned_at - o2_expires);
    assert_eq!(redis_level(&app, "A").await, (110, 1, 3, 0), "only o-2's hold was released");
    assert_eq!(get(&app, "o-2").await.expect("get").status(), ReservationStatus::Expired);
    assert_eq!(get(&app, "o-1").await.expect("get").status(), ReservationStatus::Active, "o-1 holds on");
}

// ---------------------------------------------------------------------------
// Found as bugs and fixed in src/; kept as regression tests.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_redis_wipe_new_changes_still_reach_the_ledger() {
    // Arrange: a store whose events are all in Postgres, then wiped and rebuilt.
    let redis = RedisServer::start().await;
    let mut wiper = redis_conn(&redis.url()).await;
    let app = TestApp::spawn_with(|c| c.redis_url = redis.url()).await;
    app.stocked("A", 100).await;
    reserved(&app, "o-1", &[("A", 1)], 0).await;
    app.wait_reconciled().await;
    flushall(&mut wiper).await;
    wait_rebuilt(&app).await;

    // Act: new changes on the rebuilt store.
    reserved(&app, "o-2", &[("A", 2)], 0).await;
    adjust(&app, "A", 5, "op-after-wipe").await;

    // Assert: the reconciler (same leader) writes them to Postgres.
    let db = app.db().await;
    let reached = eventually(Duration::from_secs(10), || async {
        ledger_reserves(&db).await.ok() == Some(BTreeMap::from([("o-1".into(), 1), ("o-2".into(), 1)]))
            && snapshot_level(&db, "A").await.ok().flatten() == Some((105, 3, 0, 0))
    })
    .await;
    assert!(
        reached,
        "changes after the wipe reach Postgres: ledger {:?}, snapshot {:?}, {} events stuck in the streams",
        ledger_reserves(&db).await,
        snapshot_level(&db, "A").await,
        app.stream_backlog().await
    );
    db.close().await;
}

/// Reconciles by hand until the streams are empty.
async fn drain(leader: &mut Reconciler, app: &TestApp) {
    for _ in 0..20 {
        if app.stream_backlog().await == 0 {
            return;
        }
        leader.try_execute_task().await.expect("reconcile round");
    }
    panic!("the streams did not drain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_in_flight_during_a_redis_wipe_leaves_postgres_agreeing_with_the_rebuilt_redis() {
    // Arrange: the app's own reconciler is off; this test is the leader, so
    // that it can hold one batch across the wipe (a slow Postgres commit).
    let redis = RedisServer::start().await;
    let mut wiper = redis_conn(&redis.url()).await;
    let app = TestApp::spawn_with(|c| {
        c.redis_url = redis.url();
        c.reconciler_enabled = false;
    })
    .await;
    let db = app.db().await;
    let settings =
        ReconcilerSettings { interval: Duration::from_millis(250), batch: 500, lag_alert: Duration::from_secs(5) };
    let mut leader = Reconciler::new(app.engine.clone(), db.clone(), settings, Arc::default());
    leader.ensure_groups().await.expect("consumer groups");
    app.stocked("A", 10).await;
    drain(&mut leader, &app).await;
    assert_eq!(snapshot_level(&db, "A").await.expect("query"), Some((10, 0, 0, 0)));
    reserved(&app, "o-1", &[("A", 3)], 0).await;
    let in_flight = leader.read_batch().await.expect("read");
    assert_eq!(in_flight.events.len(), 1, "the reserve of o-1 is read, not yet written");

    // Act: Redis is wiped and rebuilt while the batch is in flight; then the
    // leader commits it, as its loop would.
    flushall(&mut wiper).await;
    wait_rebuilt(&app).await;
    let committed = leader.apply(&in_flight).await.is_ok();
    let _ = leader.ack(&in_flight).await;

    // Assert: whatever the outcome, Postgres and Redis tell the same story.
    let in_redis = get(&app, "o-1").await.is_ok();
    let statuses = reservation_statuses(&db).await.expect("query");
    let in_postgres = statuses.get("o-1").is_some_and(|s| s == "ACTIVE");
    let snapshot = snapshot_level(&db, "A").await.expect("query");
    let levels = redis_level(&app, "A").await;
    assert_eq!(
        (in_postgres, snapshot),
        (in_redis, Some(levels)),
        "o-1 in Postgres vs in Redis, snapshot vs Redis levels (batch committed: {committed})"
    );
    db.close().await;
}
