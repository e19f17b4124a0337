//! The reconciler can never be stopped by one event: what Postgres refuses
//! goes to quarantine with its error and the rest goes on; `stockd check`,
//! the metric and /readyz show it; an operator retries or discards it. And a
//! reconciler that fails every batch is visible: lag and backlog rise.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{TestApp, eventually, http_get, metric, stockd_command};
use stockd::grpc::proto::{self, ReserveOutcome};
use stockd::reconcile::quarantine::{self, QuarantinedEvent};
use stockd::reconcile::{Reconciler, ReconcilerSettings};

/// A reconciler the test drives by hand (its app runs none), sharing the
/// app's counters so that /metrics and /readyz show what it does.
async fn hand_reconciler(app: &TestApp, db: &sqlx::PgPool) -> Reconciler {
    let settings =
        ReconcilerSettings { interval: Duration::from_millis(50), batch: 1000, lag_alert: Duration::from_secs(60) };
    let r = Reconciler::new(app.engine.clone(), db.clone(), settings, Arc::clone(&app.reconcile));
    r.ensure_groups().await.expect("groups");
    r
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).expect("clock after 1970")
}

/// An adjustment of `sku` at WH1 in the scripts' packed form (see `emit` in
/// common.lua) whose on_hand delta is `delta`.
fn packed_adjustment(sku: &str, delta: i64, op: &str, reason: &str) -> String {
    format!("adjust\t{sku}\tWH1\t{delta}\t0\t0\t0\t10\t0\t0\t0\t{}\t\t\t\t{op}\t{reason}", now_ms())
}

/// The on_hand delta that overflows the ledger's sums of any SKU-location
/// holding stock: what the AdjustStock bug the outside check found wrote.
const ABSURD: i64 = i64::MAX;

/// Appends an entry with `fields` to the stream of `sku`'s partition, as a
/// script would (or a buggy one did); returns its id.
async fn inject(app: &TestApp, sku: &str, fields: &[(&str, &[u8])]) -> String {
    let keys = app.engine.keys();
    let stream = keys.partition(keys.partition_of(sku)).ev.clone();
    let client = redis::Client::open(app.config.redis_url.as_str()).expect("redis url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("redis");
    let mut cmd = redis::cmd("XADD");
    cmd.arg(&stream).arg("*");
    for (k, v) in fields {
        cmd.arg(*k).arg(*v);
    }
    cmd.query_async(&mut conn).await.expect("XADD")
}

/// Makes Postgres refuse (check_violation, SQLSTATE 23514) every ledger row
/// whose operation id starts with `refuse-`: a real event Redis applied
/// that the system of record will not take until the trigger is dropped.
async fn refuse_marked_operations(db: &sqlx::PgPool) {
    sqlx::query(
        "CREATE FUNCTION refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.operation_id LIKE 'refuse-%' THEN
                 RAISE EXCEPTION 'refused for the test' USING ERRCODE = 'check_violation';
             END IF;
             RETURN NEW;
         END $$",
    )
    .execute(db)
    .await
    .expect("function");
    sqlx::query("CREATE TRIGGER refuse_marked BEFORE INSERT ON ledger FOR EACH ROW EXECUTE FUNCTION refuse_marked()")
        .execute(db)
        .await
        .expect("trigger");
}

async fn adjust(app: &TestApp, sku: &str, delta: i64, op: &str) {
    app.stock()
        .adjust_stock(proto::AdjustStockRequest {
            sku: sku.into(),
            location_id: "WH1".into(),
            delta,
            reason: proto::AdjustmentReason::Received.into(),
            operation_id: op.into(),
        })
        .await
        .expect("adjust stock");
}

async fn reserved(app: &TestApp, order: &str, lines: &[(&str, i64)]) {
    let r = app.reserve(order, lines, 0).await.unwrap_or_else(|e| panic!("reserve {order}: {e:?}"));
    assert_eq!(r.outcome(), ReserveOutcome::Reserved, "reserve {order}");
}

/// (kind, order id, operation id) of every ledger row of `sku`, in order.
async fn ledger_of(db: &sqlx::PgPool, sku: &str) -> Vec<(String, Option<String>, Option<String>)> {
    sqlx::query_as("SELECT kind, order_id, operation_id FROM ledger WHERE sku = $1 ORDER BY id")
        .bind(sku)
        .fetch_all(db)
        .await
        .expect("ledger")
}

/// (snapshot, kept sums) of `sku` at WH1, each as (on_hand, reserved, committed, in_transit).
type Four = (i64, i64, i64, i64);
async fn snapshot_and_sums(db: &sqlx::PgPool, sku: &str) -> (Four, Four) {
    let (a, b, c, d, e, f, g, h): (i64, i64, i64, i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT on_hand, reserved, committed, in_transit, ledger_on_hand, ledger_reserved, ledger_committed,
                ledger_in_transit
         FROM stock_levels WHERE sku = $1 AND location_id = 'WH1'",
    )
    .bind(sku)
    .fetch_one(db)
    .await
    .expect("snapshot row");
    ((a, b, c, d), (e, f, g, h))
}

async fn redis_level(app: &TestApp, sku: &str) -> Four {
    let item = app.levels(sku).await;
    let l = item.levels.iter().find(|l| l.location_id == "WH1").expect("a WH1 level");
    (l.on_hand, l.reserved, l.committed, l.in_transit)
}

async fn raw_of(db: &sqlx::PgPool, id: i64) -> Vec<Vec<u8>> {
    sqlx::query_scalar("SELECT raw FROM reconcile_quarantine WHERE id = $1").bind(id).fetch_one(db).await.expect("raw")
}

/// Runs the stockd binary on the app's store: (success, stdout + stderr).
fn stockd(app: &TestApp, args: &[&str]) -> (bool, String) {
    let out = stockd_command(&app.config).args(args).output().expect("stockd runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

async fn metrics(app: &TestApp) -> String {
    let (status, page) = http_get(app.http_addr, "/metrics").await;
    assert_eq!(status, 200);
    page
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_postgres_refuses_go_to_quarantine_and_the_events_around_them_are_written() {
    // Arrange: the app's reconciler is off, so that every event below is
    // read in one batch by the reconciler this test drives. Among good
    // events: an injected adjustment whose delta overflows the ledger's sums,
    // and a real one that Postgres refuses (a trigger) although Redis applied it.
    let app = TestApp::spawn_with(|c| c.reconciler_enabled = false).await;
    let db = app.db().await;
    refuse_marked_operations(&db).await;
    app.stocked("A", 10).await;
    reserved(&app, "o-1", &[("A", 1)]).await;
    let absurd = packed_adjustment("A", ABSURD, "bug-1", "count");
    inject(&app, "A", &[("v", absurd.as_bytes())]).await;
    adjust(&app, "A", 5, "refuse-1").await;
    reserved(&app, "o-2", &[("A", 2)]).await;
    let mut r = hand_reconciler(&app, &db).await;

    // Act
    r.try_execute_task().await.expect("the round goes through");

    // Assert: the good events are written, in order; the stream is acknowledged.
    assert_eq!(app.stream_backlog().await, 0, "acknowledged and trimmed");
    let rows = ledger_of(&db, "A").await;
    let orders: Vec<_> = rows.iter().filter_map(|(_, o, _)| o.clone()).collect();
    assert_eq!(orders, ["o-1", "o-2"]);
    assert_eq!(rows.len(), 3, "the import's adjustment and two reserves: {rows:?}");
    assert!(rows.iter().all(|(_, _, op)| !op.as_deref().is_some_and(|op| op == "bug-1" || op == "refuse-1")));
    // The snapshot moved to the last event (Redis's levels); the ledger's
    // sums lack the refused +5.
    let (snap, sums) = snapshot_and_sums(&db, "A").await;
    assert_eq!(snap, redis_level(&app, "A").await);
    assert_eq!((snap, sums), ((15, 3, 0, 0), (10, 3, 0, 0)));

    // The two refused events are in quarantine, in stream order, with their errors.
    let held = quarantine::list(&db, false).await.expect("list");
    let what: Vec<_> = held.iter().map(|q| (q.sqlstate.as_deref(), q.attempts)).collect();
    assert_eq!(what, [(Some("22003"), 1), (Some("23514"), 1)], "{held:#?}");
    let (bad, refused) = (&held[0], &held[1]);
    assert!(bad.error.contains("out of range"), "{}", bad.error);
    assert!(bad.summary.contains("on_hand 9223372036854775807"), "{}", bad.summary);
    assert_eq!(raw_of(&db, bad.id).await, [b"v".to_vec(), absurd.into_bytes()], "kept exactly as read");
    assert!(refused.error.contains("refused for the test"), "{}", refused.error);
    assert!(refused.summary.contains("operation refuse-1"), "{}", refused.summary);

    // The metric and /readyz show them; the hot path stays ready.
    assert_eq!(metric(&metrics(&app).await, "stockd_reconcile_quarantined_events"), 2.0);
    let (status, body) = http_get(app.http_addr, "/readyz").await;
    assert_eq!(status, 200, "one event does not take checkout down");
    assert!(body.contains("quarantine: 2 events"), "{body}");

    // `stockd check` lists them, attributes A's difference to them, and fails.
    let (ok, out) = stockd(&app, &["check"]);
    assert!(!ok, "{out}");
    assert!(out.contains("2 events in the reconciler's quarantine"), "{out}");
    assert!(out.contains(&format!("#{}", bad.id)) && out.contains("out of range"), "{out}");
    assert!(out.contains("refused for the test"), "{out}");
    assert!(out.contains("A @ WH1:") && out.contains("2 events in quarantine here"), "{out}");

    // Act + Assert: the absurd one is refused again on retry, then discarded
    // with a note; the refused adjustment goes in once its cause is gone.
    let (ok, out) = stockd(&app, &["quarantine", "retry", &bad.id.to_string(), "--by", "ops"]);
    assert!(!ok && out.contains("still refused") && out.contains("out of range"), "{out}");
    let (ok, out) = stockd(&app, &["quarantine", "discard", &bad.id.to_string()]);
    assert!(!ok, "a discard needs a note: {out}");
    let (ok, out) =
        stockd(&app, &["quarantine", "discard", &bad.id.to_string(), "--note", "a bug's event", "--by", "ops"]);
    assert!(ok, "{out}");
    sqlx::query("DROP TRIGGER refuse_marked ON ledger").execute(&db).await.expect("the cause is fixed");
    let (ok, out) = stockd(&app, &["quarantine", "retry", &refused.id.to_string(), "--by", "ops"]);
    assert!(ok && out.contains("retried"), "{out}");
    let (ok, out) = stockd(&app, &["quarantine", "retry", &refused.id.to_string()]);
    assert!(!ok && out.contains("already retried by ops"), "{out}");

    let (snap, sums) = snapshot_and_sums(&db, "A").await;
    assert_eq!((snap, sums), ((15, 3, 0, 0), (15, 3, 0, 0)), "the retried event is in the ledger's sums");
    assert!(ledger_of(&db, "A").await.iter().any(|(_, _, op)| op.as_deref() == Some("refuse-1")));
    let (ok, out) = stockd(&app, &["check"]);
    assert!(ok, "nothing differs and nothing is left in quarantine: {out}");
    let all = quarantine::list(&db, true).await.expect("list");
    let resolved: Vec<_> =
        all.iter().map(|q| (q.resolution.as_deref(), q.resolved_by.as_deref(), q.attempts)).collect();
    assert_eq!(resolved, [(Some("discarded"), Some("ops"), 2), (Some("retried"), Some("ops"), 1)]);
    assert_eq!(all[0].note.as_deref(), Some("a bug's event"));
    let (ok, out) = stockd(&app, &["quarantine", "list", "--all"]);
    assert!(ok && out.contains("discarded by ops") && out.contains("retried by ops"), "{out}");
    r.refresh_quarantined().await;
    assert_eq!(metric(&metrics(&app).await, "stockd_reconcile_quarantined_events"), 0.0);
    let (_, body) = http_get(app.http_addr, "/readyz").await;
    assert_eq!(body.trim(), "ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_read_again_after_a_crash_finds_its_quarantined_events_and_goes_on() {
    // Arrange: good events around an absurd one, an event with a NUL byte
    // (text Postgres refuses) and an entry no version can read.
    let app = TestApp::spawn_with(|c| c.reconciler_enabled = false).await;
    let db = app.db().await;
    app.stocked("A", 10).await;
    app.sku("B").await;
    inject(&app, "A", &[("v", packed_adjustment("A", ABSURD, "bug-1", "count").as_bytes())]).await;
    let nul = packed_adjustment("B", 1, "op-nul", "a\0b");
    inject(&app, "B", &[("v", nul.as_bytes())]).await;
    let garbage = inject(&app, "A", &[("v", b"teleport\tA\tWH1\t0\t0\t0\t0\t0\t0\t0\t0\t1\t\t\t\t\t")]).await;
    reserved(&app, "o-1", &[("A", 1)]).await;
    let ledger_rows = || async { sqlx::query_scalar::<_, i64>("SELECT count(*) FROM ledger").fetch_one(&db).await };

    // Act: a reconciler writes the batch and quarantines, then "crashes"
    // before acknowledging; a new leader reads the same entries again.
    let mut first = hand_reconciler(&app, &db).await;
    let batch = first.read_batch().await.expect("read");
    let applied = first.apply(&batch).await.expect("apply");
    drop(first);
    let rows_after_first = ledger_rows().await.expect("count");
    let mut second = hand_reconciler(&app, &db).await;
    second.try_execute_task().await.expect("the batch read again goes through");

    // Assert: three set apart once each, counted twice; nothing written twice.
    assert_eq!(applied.quarantined, 3);
    assert_eq!(app.stream_backlog().await, 0);
    assert_eq!(ledger_rows().await.expect("count"), rows_after_first, "no row twice");
    let held = quarantine::list(&db, false).await.expect("list");
    let by_state: Vec<_> = held.iter().map(|q| (q.sqlstate.as_deref(), q.attempts)).collect();
    assert_eq!(by_state.len(), 3, "{held:#?}");
    assert!(held.iter().all(|q| q.attempts == 2), "{by_state:?}");
    let nul_row = held.iter().find(|q| q.summary.contains("op-nul")).expect("the NUL event");
    assert_eq!(nul_row.sqlstate.as_deref(), Some("22021"), "{nul_row:#?}");
    assert!(nul_row.summary.contains("a\\u{0}b"), "escaped in the readable form: {}", nul_row.summary);
    assert_eq!(raw_of(&db, nul_row.id).await[1], nul.into_bytes(), "the NUL byte kept in the raw form");
    let unreadable: &QuarantinedEvent =
        held.iter().find(|q| q.sqlstate.is_none()).expect("the unreadable entry, refused by the reconciler");
    assert_eq!(format!("{}-{}", unreadable.stream_ms, unreadable.stream_seq), garbage);
    assert!(unreadable.error.contains("unknown kind"), "{}", unreadable.error);

    // And the reconciler goes on with later events.
    reserved(&app, "o-2", &[("A", 2)]).await;
    second.try_execute_task().await.expect("round");
    let orders: Vec<_> = ledger_of(&db, "A").await.into_iter().filter_map(|(_, o, _)| o).collect();
    assert_eq!(orders, ["o-1", "o-2"]);
    let (snap, _) = snapshot_and_sums(&db, "A").await;
    assert_eq!(snap, redis_level(&app, "A").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_reconciler_is_not_stopped_by_an_absurd_event_nor_after_a_restart() {
    // Arrange
    let app = TestApp::spawn().await;
    let db = app.db().await;
    app.stocked("A", 10).await;
    app.wait_reconciled().await;

    // Act: the bug's event, then checkout goes on.
    inject(&app, "A", &[("v", packed_adjustment("A", ABSURD, "bug-1", "count").as_bytes())]).await;
    reserved(&app, "o-1", &[("A", 1)]).await;

    // Assert: everything but that event reaches Postgres; it is shown.
    app.wait_reconciled().await;
    let orders: Vec<_> = ledger_of(&db, "A").await.into_iter().filter_map(|(_, o, _)| o).collect();
    assert_eq!(orders, ["o-1"]);
    assert_eq!(quarantine::unresolved_count(&db).await.expect("count"), 1);
    let shown = eventually(Duration::from_secs(10), || async {
        metric(&metrics(&app).await, "stockd_reconcile_quarantined_events") == 1.0
    })
    .await;
    assert!(shown, "the metric counts it");
    let (status, body) = http_get(app.http_addr, "/readyz?verbose").await;
    assert_eq!(status, 200);
    assert!(body.contains("quarantine: 1 events set apart"), "{body}");
    assert!(body.contains("backlog: 0 stream entries"), "{body}");

    // Act: a restart over the same store.
    let config = app.stop_keeping_data().await;
    let app = TestApp::spawn_on(config).await;
    reserved(&app, "o-2", &[("A", 1)]).await;

    // Assert: it reconciles, and still shows the event.
    app.wait_reconciled().await;
    let orders: Vec<_> = ledger_of(&db, "A").await.into_iter().filter_map(|(_, o, _)| o).collect();
    assert_eq!(orders, ["o-1", "o-2"]);
    let shown = eventually(Duration::from_secs(10), || async {
        metric(&metrics(&app).await, "stockd_reconcile_quarantined_events") == 1.0
    })
    .await;
    assert!(shown, "counted again after the restart");
    assert_eq!(quarantine::unresolved_count(&db).await.expect("count"), 1, "no second row");
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_reconciler_shows_in_rising_lag_backlog_and_failures_and_recovers() {
    // Arrange: a reconciled store.
    let app = TestApp::spawn().await;
    let db = app.db().await;
    app.stocked("A", 100).await;
    app.wait_reconciled().await;
    let before = metrics(&app).await;
    assert_eq!(metric(&before, "stockd_reconcile_backlog"), 0.0);
    assert_eq!(metric(&before, "stockd_reconcile_lag_seconds"), 0.0);

    // Act: Postgres stops taking the reconciler's writes (the ledger is
    // gone: every batch fails, and not for what it holds); checkout goes on.
    sqlx::query("ALTER TABLE ledger RENAME TO ledger_away").execute(&db).await.expect("rename");
    for i in 1..=3 {
        reserved(&app, &format!("o-{i}"), &[("A", 1)]).await;
    }

    // Assert: the failing is visible: failures count, entries wait, the
    // oldest one's age grows; /readyz stays 200 and says why.
    let page = std::cell::RefCell::new(String::new());
    let visible = eventually(Duration::from_secs(30), || async {
        *page.borrow_mut() = metrics(&app).await;
        let p = page.borrow();
        metric(&p, "stockd_reconcile_failures") >= 2.0
            && metric(&p, "stockd_reconcile_backlog") >= 1.0
            && metric(&p, "stockd_reconcile_lag_seconds") >= 2.0
    })
    .await;
    assert!(visible, "{}", page.borrow());
    let lag = metric(&page.borrow(), "stockd_reconcile_lag_seconds");
    let rising = eventually(Duration::from_secs(30), || async {
        metric(&metrics(&app).await, "stockd_reconcile_lag_seconds") >= lag + 1.0
    })
    .await;
    assert!(rising, "the lag keeps growing while nothing reaches Postgres");
    let (status, body) = http_get(app.http_addr, "/readyz").await;
    assert_eq!(status, 200, "checkout does not follow Postgres");
    assert!(body.contains("reconciler: failing") && body.contains("ledger"), "{body}");
    assert_eq!(metric(&metrics(&app).await, "stockd_reconcile_quarantined_events"), 0.0, "an outage is not a refusal");

    // Act: Postgres takes writes again.
    sqlx::query("ALTER TABLE ledger_away RENAME TO ledger").execute(&db).await.expect("rename back");

    // Assert: it catches up, and lag and backlog come back down.
    app.wait_reconciled().await;
    let recovered = eventually(Duration::from_secs(30), || async {
        let p = metrics(&app).await;
        metric(&p, "stockd_reconcile_backlog") == 0.0 && metric(&p, "stockd_reconcile_lag_seconds") == 0.0
    })
    .await;
    assert!(recovered, "lag and backlog back to 0");
    let orders: Vec<_> = ledger_of(&db, "A").await.into_iter().filter_map(|(_, o, _)| o).collect();
    assert_eq!(orders, ["o-1", "o-2", "o-3"]);
    let (_, body) = http_get(app.http_addr, "/readyz").await;
    assert_eq!(body.trim(), "ready", "no longer failing");
    assert_eq!(quarantine::unresolved_count(&db).await.expect("count"), 0);
    db.close().await;
}
