//! Postgres as the system of record: the reconciler, the ledger API, the
//! drift check and the CSV bridge.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use common::{TestApp, stockd_command};
use stockd::grpc::proto::{self, MovementKind};
use stockd::ledger::LedgerSide;
use stockd::reconcile::{Reconciler, ReconcilerSettings};

type Levels = BTreeMap<(String, String), (i64, i64, i64, i64)>;

/// The four numbers per SKU-location of a table that has them as columns.
async fn levels_in(db: &sqlx::PgPool, table: &str) -> Levels {
    let rows: Vec<(String, String, i64, i64, i64, i64)> =
        sqlx::query_as(&format!("SELECT sku, location_id, on_hand, reserved, committed, in_transit FROM {table}"))
            .fetch_all(db)
            .await
            .expect(table);
    rows.into_iter().map(|(s, l, a, b, c, d)| ((s, l), (a, b, c, d))).collect()
}

async fn snapshot(db: &sqlx::PgPool) -> Levels {
    levels_in(db, "stock_levels").await
}

async fn ledger_replayed(db: &sqlx::PgPool) -> Levels {
    let rows: Vec<(String, String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT sku, location_id, sum(on_hand_delta)::bigint, sum(reserved_delta)::bigint,
                sum(committed_delta)::bigint, sum(in_transit_delta)::bigint FROM ledger GROUP BY 1, 2",
    )
    .fetch_all(db)
    .await
    .expect("ledger");
    rows.into_iter().map(|(s, l, a, b, c, d)| ((s, l), (a, b, c, d))).collect()
}

async fn redis_levels(app: &TestApp, skus: &[&str]) -> Levels {
    let mut out = Levels::new();
    for sku in skus {
        for l in app.levels(sku).await.levels {
            out.insert((sku.to_string(), l.location_id), (l.on_hand, l.reserved, l.committed, l.in_transit));
        }
    }
    out
}

async fn count(db: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db).await.expect("count")
}

/// A reconciler the test drives by hand (its app runs none), reading at most
/// `batch` entries a round; its consumer groups exist.
async fn hand_reconciler(app: &TestApp, db: &sqlx::PgPool, batch: usize) -> Reconciler {
    let settings = ReconcilerSettings {
        interval: std::time::Duration::from_millis(50),
        batch,
        lag_alert: std::time::Duration::from_secs(60),
    };
    let r = Reconciler::new(app.engine.clone(), db.clone(), settings, Arc::default());
    r.ensure_groups().await.expect("groups");
    r
}

/// Runs `r` until the streams are empty.
async fn drain(app: &TestApp, r: &mut Reconciler) {
    while app.stream_backlog().await > 0 {
        r.try_execute_task().await.expect("reconcile");
    }
}

/// Reserve, commit, fulfil, release and adjust across three SKUs and two
/// locations.
async fn mixed_burst(app: &TestApp) {
    app.location("WH1", 1).await;
    app.location("WH2", 2).await;
    for sku in ["A", "B", "C"] {
        app.sku(sku).await;
        app.set_on_hand(sku, "WH1", 40).await;
        app.set_on_hand(sku, "WH2", 40).await;
    }
    let mut r = app.reservations();
    for i in 0..30 {
        let sku = ["A", "B", "C"][i % 3];
        let order = format!("o-{i}");
        let made = app.reserve(&order, &[(sku, 1 + (i as i64 % 4)), ("C", 1)], 0).await.expect("reserve");
        assert_eq!(made.outcome(), proto::ReserveOutcome::Reserved, "{order}");
        match i % 5 {
            0 => {
                r.commit(proto::CommitRequest { order_id: order.clone() }).await.expect("commit");
            }
            1 => {
                r.fulfill(proto::FulfillRequest { order_id: order.clone() }).await.expect("fulfill");
            }
            2 => {
                r.release(proto::ReleaseRequest { order_id: order.clone(), reason: "changed mind".into() })
                    .await
                    .expect("release");
            }
            3 => {
                r.commit(proto::CommitRequest { order_id: order.clone() }).await.expect("commit");
                r.fulfill(proto::FulfillRequest { order_id: order.clone() }).await.expect("fulfill");
            }
            _ => {}
        }
    }
    app.stock()
        .adjust_stock(proto::AdjustStockRequest {
            sku: "B".into(),
            location_id: "WH2".into(),
            delta: -3,
            reason: proto::AdjustmentReason::Damaged.into(),
            operation_id: "dmg-1".into(),
        })
        .await
        .expect("adjust");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_burst_of_mixed_operations_ledger_snapshot_and_redis_agree() {
    // Arrange
    let app = TestApp::spawn().await;
    let db = app.db().await;

    // Act
    mixed_burst(&app).await;
    app.wait_reconciled().await;

    // Assert
    let redis = redis_levels(&app, &["A", "B", "C"]).await;
    let snap = snapshot(&db).await;
    let ledger = ledger_replayed(&db).await;
    assert_eq!(snap, redis, "the snapshot equals Redis");
    assert_eq!(ledger, snap, "the ledger replayed from zero equals the snapshot");
    assert_eq!(snap.len(), 6);
    assert_eq!(count(&db, "SELECT count(*) FROM reservations").await, 30);
    assert_eq!(count(&db, "SELECT count(*) FROM reservations WHERE status = 'RELEASED'").await, 6);
    assert_eq!(count(&db, "SELECT count(*) FROM reservations WHERE status = 'FULFILLED'").await, 12);
    assert_eq!(count(&db, "SELECT count(*) FROM reservations WHERE status = 'COMMITTED'").await, 6);
    assert_eq!(count(&db, "SELECT count(*) FROM reservations WHERE status = 'ACTIVE'").await, 6);
    assert_eq!(
        count(&db, "SELECT count(*) FROM reservation_history WHERE order_id = 'o-3'").await,
        3,
        "ACTIVE, COMMITTED, FULFILLED"
    );
    assert_eq!(kept_sums(&db).await, ledger, "the sums the reconciler keeps equal the ledger replayed");
    for side in [LedgerSide::Totals, LedgerSide::Replayed] {
        let drift = stockd::ledger::check_drift(&app.engine, &db, side).await.expect("check");
        assert!(drift.mismatches.is_empty(), "{side:?}: {:?}", drift.mismatches);
        assert_eq!(drift.checked, 6);
    }
}

/// The ledger's sums as the reconciler keeps them, beside the snapshot.
async fn kept_sums(db: &sqlx::PgPool) -> Levels {
    let rows: Vec<(String, String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT sku, location_id, ledger_on_hand, ledger_reserved, ledger_committed, ledger_in_transit
         FROM stock_levels",
    )
    .fetch_all(db)
    .await
    .expect("kept sums");
    rows.into_iter().map(|(s, l, a, b, c, d)| ((s, l), (a, b, c, d))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_check_reads_the_kept_sums_and_stockd_check_repairs_them_from_the_ledger() {
    // Arrange: kept sums that went wrong for one SKU-location.
    let app = TestApp::spawn().await;
    let db = app.db().await;
    mixed_burst(&app).await;
    app.wait_reconciled().await;
    let before = snapshot(&db).await;
    sqlx::query(
        "UPDATE stock_levels SET ledger_reserved = ledger_reserved + 3 WHERE sku = 'A' AND location_id = 'WH1'",
    )
    .execute(&db)
    .await
    .expect("damage");
    let at =
        |ms: &[stockd::ledger::Mismatch]| ms.iter().map(|m| format!("{}@{}", m.sku, m.location_id)).collect::<Vec<_>>();

    // Act + Assert: the periodic check sees the snapshot disagree with the
    // sums, and will not repair (Redis agrees with the snapshot, not them).
    let periodic = stockd::ledger::check_drift(&app.engine, &db, LedgerSide::Totals).await.expect("check");
    assert_eq!(at(&periodic.mismatches), ["A@WH1"]);
    let (repaired, refused) = stockd::ledger::repair_snapshot(&db, &periodic).await.expect("repair");
    assert_eq!((repaired.len(), at(&refused)), (0, vec!["A@WH1".to_owned()]));
    assert_eq!(snapshot(&db).await, before, "nothing moved");

    // The full check replays the ledger: it agrees with the snapshot and
    // Redis, so the sums are rebuilt from it.
    let full = stockd::ledger::check_drift(&app.engine, &db, LedgerSide::Replayed).await.expect("check");
    assert_eq!(at(&full.mismatches), ["A@WH1"]);
    assert_eq!(full.mismatches[0].ledger, full.mismatches[0].snapshot);
    assert_eq!(full.mismatches[0].totals.reserved, full.mismatches[0].ledger.reserved + 3);
    let (repaired, refused) = stockd::ledger::repair_snapshot(&db, &full).await.expect("repair");
    assert_eq!((at(&repaired), refused.len()), (vec!["A@WH1".to_owned()], 0));
    assert_eq!(kept_sums(&db).await, ledger_replayed(&db).await);
    assert_eq!(snapshot(&db).await, before);

    // The reconciler adds to the repaired sums as before.
    app.reserve("after-repair", &[("A", 2)], 0).await.expect("reserve");
    app.wait_reconciled().await;
    assert_eq!(kept_sums(&db).await, ledger_replayed(&db).await);
    for side in [LedgerSide::Totals, LedgerSide::Replayed] {
        let again = stockd::ledger::check_drift(&app.engine, &db, side).await.expect("check");
        assert!(again.mismatches.is_empty(), "{side:?}: {:?}", again.mismatches);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_replayed_after_a_crash_between_commit_and_acknowledge_inserts_nothing_twice() {
    // Arrange: no reconciler in the app; the test drives one by hand.
    let app = TestApp::spawn_with(|c| c.reconciler_enabled = false).await;
    let db = app.db().await;
    mixed_burst(&app).await;
    let mut first = hand_reconciler(&app, &db, 1000).await;

    // Act: read and write, then "crash" before acknowledging.
    let batch = first.read_batch().await.expect("read");
    let applied = first.apply(&batch).await.expect("apply");
    drop(first);
    let rows_after_first = count(&db, "SELECT count(*) FROM ledger").await;
    // A new leader reads the unacknowledged entries again and writes them.
    let mut second = hand_reconciler(&app, &db, 1000).await;
    let again = second.read_batch().await.expect("read again");
    let rewritten = second.apply(&again).await.expect("replay");
    second.ack(&again).await.expect("ack");
    while second.try_execute_task().await.expect("drain").rows > 0 {}

    // Assert
    assert!(applied.ledger_rows > 0);
    assert!(!applied.replayed, "a first write goes the plain way");
    assert_eq!(rows_after_first, applied.ledger_rows as i64);
    assert_eq!(again.events.len(), batch.events.len(), "the same entries came back");
    assert!(rewritten.replayed, "the ledger's key refused the plain write");
    assert_eq!(rewritten.ledger_rows, 0, "the replay inserted nothing");
    assert_eq!(count(&db, "SELECT count(*) FROM ledger").await, rows_after_first, "no row twice");
    assert_eq!(app.stream_backlog().await, 0, "acknowledged and trimmed");
    assert_eq!(snapshot(&db).await, redis_levels(&app, &["A", "B", "C"]).await);
    assert_eq!(ledger_replayed(&db).await, snapshot(&db).await);
    assert_eq!(kept_sums(&db).await, snapshot(&db).await, "the replay added nothing to the kept sums");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_call_writes_one_entry_per_partition_and_each_event_gets_its_own_ledger_row() {
    // Arrange: a line that only two locations together can fill makes two
    // events in one script call, in one partition.
    let app = TestApp::spawn_with(|c| c.reconciler_enabled = false).await;
    let db = app.db().await;
    app.location("WH1", 1).await;
    app.location("WH2", 2).await;
    app.sku("A").await;
    app.set_on_hand("A", "WH1", 3).await;
    app.set_on_hand("A", "WH2", 3).await;
    let mut r = hand_reconciler(&app, &db, 1000).await;
    drain(&app, &mut r).await;
    let stream = app.engine.keys().partition(app.engine.keys().partition_of("A")).ev.clone();

    // Act
    let made = app.reserve("o-split", &[("A", 5)], 0).await.expect("reserve");
    let mut conn = app.engine.connection().await.expect("redis");
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .query_async::<Vec<(String, Vec<String>)>>(&mut conn)
        .await
        .expect("xrange");
    let batch = r.read_batch().await.expect("read");
    let applied = r.apply(&batch).await.expect("apply");
    let again = stockd::reconcile::apply_batch(&db, &batch.events, &batch.generation).await.expect("replay");
    r.ack(&batch).await.expect("ack");

    // Assert
    assert_eq!(made.outcome(), proto::ReserveOutcome::Reserved);
    assert_eq!(entries.len(), 1, "one entry for the call: {entries:?}");
    assert_eq!(entries[0].1.iter().step_by(2).collect::<Vec<_>>(), ["v", "v"], "two events in it");
    let places: Vec<u32> = batch.events.iter().map(|(p, _)| p.idx).collect();
    assert_eq!(places, [0, 1]);
    assert_eq!(applied.ledger_rows, 2);
    let rows: Vec<(String, i32, i64)> = sqlx::query_as(
        "SELECT location_id, stream_idx, reserved_delta FROM ledger WHERE order_id = 'o-split' ORDER BY stream_idx",
    )
    .fetch_all(&db)
    .await
    .expect("ledger");
    assert_eq!(rows, [("WH1".to_owned(), 0, 3), ("WH2".to_owned(), 1, 2)]);
    assert!(again.replayed && again.ledger_rows == 0, "written again: nothing twice ({again:?})");
    assert_eq!(app.stream_backlog().await, 0, "the entry was acknowledged and trimmed");
    assert_eq!(snapshot(&db).await, redis_levels(&app, &["A"]).await);
    assert_eq!(kept_sums(&db).await, ledger_replayed(&db).await);
}

#[tokio::test]
async fn a_call_with_more_events_than_an_entry_holds_writes_them_all_in_order() {
    // common.lua's emit and done, run directly: 1,201 events in one
    // partition make entries of 500, 500 and 201.
    let app = TestApp::spawn_with(|c| c.reconciler_enabled = false).await;
    let keys = app.engine.keys().partition(0);
    let script = format!(
        "{}\nlocal p = part_keys(1, 1)\nfor i = 1, tonumber(ARGV[1]) do\n\
         emit(p, 'adjust', 'S', 'L', {{ 1, 0, 0, 0 }}, {{ i, 0, 0, 0 }}, '', 'op-' .. i, '', 1000)\nend\n\
         return done(1)",
        include_str!("../src/reservation/lua/common.lua")
    );
    let mut conn = app.engine.connection().await.expect("redis");
    let _: i64 = redis::Script::new(&script)
        .key(&keys.lvl)
        .key(&keys.holds)
        .key(&keys.exp)
        .key(&keys.ev)
        .key(&keys.ops)
        .arg(1201)
        .invoke_async(&mut conn)
        .await
        .expect("script");
    let entries: Vec<(String, Vec<String>)> =
        redis::cmd("XRANGE").arg(&keys.ev).arg("-").arg("+").query_async(&mut conn).await.expect("xrange");
    let sizes: Vec<usize> = entries.iter().map(|(_, f)| f.len() / 2).collect();
    assert_eq!(sizes, [500, 500, 201]);
    let on_hand: Vec<i64> = entries
        .iter()
        .flat_map(|(_, f)| f.iter().skip(1).step_by(2))
        .map(|v| v.split('\t').nth(7).and_then(|n| n.parse().ok()).expect("on_hand after"))
        .collect();
    assert_eq!(on_hand, (1..=1201).collect::<Vec<i64>>(), "every event once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_partly_recorded_writes_only_its_new_events() {
    // Arrange: one batch written and acknowledged, then more reservations
    // (new orders, and lines of known SKUs), read as a second batch.
    let app = TestApp::spawn_with(|c| c.reconciler_enabled = false).await;
    let db = app.db().await;
    mixed_burst(&app).await;
    let mut r = hand_reconciler(&app, &db, 1000).await;
    let recorded = r.read_batch().await.expect("read");
    r.apply(&recorded).await.expect("apply");
    r.ack(&recorded).await.expect("ack");
    let rows_before = count(&db, "SELECT count(*) FROM ledger").await;
    for i in 0..5 {
        app.reserve(&format!("late-{i}"), &[("A", 1), ("B", 2)], 0).await.expect("reserve");
    }
    let newer = r.read_batch().await.expect("read");
    assert!(!newer.events.is_empty());

    // Act: both batches in one, as a second writer of the same entries would
    // send them.
    let mut events = recorded.events.clone();
    events.extend(newer.events.iter().cloned());
    let applied = stockd::reconcile::apply_batch(&db, &events, &newer.generation).await.expect("apply");
    r.ack(&newer).await.expect("ack");

    // Assert: only the new events went in, each once, with their orders.
    assert!(applied.replayed);
    assert_eq!(applied.ledger_rows, newer.events.len() as u64);
    assert_eq!(count(&db, "SELECT count(*) FROM ledger").await, rows_before + newer.events.len() as i64);
    assert_eq!(count(&db, "SELECT count(*) FROM reservations WHERE order_id LIKE 'late-%'").await, 5);
    assert_eq!(count(&db, "SELECT count(*) FROM reservation_lines WHERE order_id LIKE 'late-%'").await, 10);
    assert_eq!(snapshot(&db).await, redis_levels(&app, &["A", "B", "C"]).await);
    assert_eq!(ledger_replayed(&db).await, snapshot(&db).await);
    assert_eq!(kept_sums(&db).await, snapshot(&db).await, "only the new events were added to the kept sums");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_partition_gets_the_whole_batch_and_busy_partitions_share_it() {
    // Arrange: no reconciler in the app; the test drives one by hand, with
    // a batch of 40 entries.
    let app = TestApp::spawn_with(|c| c.reconciler_enabled = false).await;
    let db = app.db().await;
    let mut r = hand_reconciler(&app, &db, 40).await;
    app.stocked("HOT", 1000).await;
    for i in 0..100 {
        app.reserve(&format!("h-{i}"), &[("HOT", 1)], 0).await.expect("reserve");
    }

    // Act + Assert: one partition has entries, and it gets the whole batch.
    let hot = r.read_batch().await.expect("read");
    assert_eq!(hot.events.len(), 40, "the whole batch from the one hot partition");
    assert!(hot.full, "more is waiting there");
    r.apply(&hot).await.expect("apply");
    r.ack(&hot).await.expect("ack");
    drain(&app, &mut r).await;

    // Arrange: now entries in many partitions, a dozen per SKU.
    let skus: Vec<String> = (0..40).map(|i| format!("S{i}")).collect();
    for s in &skus {
        app.stocked(s, 50).await;
        for i in 0..11 {
            app.reserve(&format!("{s}-{i}"), &[(s.as_str(), 1)], 0).await.expect("reserve");
        }
    }
    let keys = app.engine.keys();
    let busy: std::collections::BTreeSet<u32> = skus.iter().map(|s| keys.partition_of(s)).collect();
    assert!(busy.len() > 3, "the SKUs spread over partitions: {busy:?}");

    // Act + Assert: every busy partition is in the batch, none gives more
    // than its share (40 over many partitions: the floor of 16 each).
    let shared = r.read_batch().await.expect("read");
    let mut per: BTreeMap<u32, usize> = BTreeMap::new();
    for (pos, _) in &shared.events {
        *per.entry(pos.partition).or_default() += 1;
    }
    assert_eq!(per.keys().copied().collect::<std::collections::BTreeSet<u32>>(), busy, "every busy partition read");
    let share = (40 / busy.len()).max(16);
    assert!(per.values().all(|n| *n <= share), "at most {share} from each: {per:?}");
    r.apply(&shared).await.expect("apply");
    r.ack(&shared).await.expect("ack");
    drain(&app, &mut r).await;
    let all: Vec<&str> = std::iter::once("HOT").chain(skus.iter().map(String::as_str)).collect();
    assert_eq!(snapshot(&db).await, redis_levels(&app, &all).await, "Postgres caught up exactly");
}

/// Entries of `batch` per partition.
fn per_partition(batch: &stockd::reconcile::Batch) -> BTreeMap<u32, usize> {
    let mut per = BTreeMap::new();
    for (pos, _) in &batch.events {
        *per.entry(pos.partition).or_default() += 1;
    }
    per
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_a_backlog_batches_grow_but_one_partition_never_gets_more_than_the_configured_batch() {
    // Arrange: a reconciler driven by hand with a batch of 40, and a backlog
    // of 100 events in each of four partitions (one SKU each).
    let app = TestApp::spawn_with(|c| c.reconciler_enabled = false).await;
    let db = app.db().await;
    let mut r = hand_reconciler(&app, &db, 40).await;
    let keys = app.engine.keys();
    let mut by_partition: BTreeMap<u32, String> = BTreeMap::new();
    for i in 0.. {
        let sku = format!("B{i}");
        by_partition.entry(keys.partition_of(&sku)).or_insert(sku);
        if by_partition.len() == 4 {
            break;
        }
    }
    for sku in by_partition.values() {
        app.stocked(sku, 1000).await;
    }
    drain(&app, &mut r).await;
    for sku in by_partition.values() {
        for i in 0..100 {
            app.reserve(&format!("{sku}-{i}"), &[(sku.as_str(), 1)], 0).await.expect("reserve");
        }
    }

    // Act: read, write and acknowledge round by round, as the loop does.
    let mut rounds = Vec::new();
    loop {
        let batch = r.read_batch().await.expect("read");
        if batch.is_empty() {
            break;
        }
        rounds.push(per_partition(&batch).into_values().collect::<Vec<_>>());
        r.apply(&batch).await.expect("apply");
        r.ack(&batch).await.expect("ack");
    }

    // Assert: 40 over 4 partitions is 10 each, raised to the floor of 16;
    // full rounds double the budget (80: 20 each, 160: 40 each), and 40,
    // the configured batch, stays the most one partition gives.
    assert_eq!(rounds[0], [16; 4], "{rounds:?}");
    assert_eq!(rounds[1], [20; 4], "{rounds:?}");
    assert!(rounds[2..].iter().flatten().all(|n| *n <= 40), "{rounds:?}");
    assert_eq!(rounds[2], [40; 4], "{rounds:?}");
    assert_eq!(rounds.iter().map(|r| r.iter().sum::<usize>()).sum::<usize>(), 400, "every event once");
    assert_eq!(
        snapshot(&db).await,
        redis_levels(&app, &by_partition.values().map(String::as_str).collect::<Vec<_>>()).await
    );

    // Assert: once the backlog is gone, a new one starts from one batch again.
    for sku in by_partition.values() {
        for i in 100..120 {
            app.reserve(&format!("{sku}-{i}"), &[(sku.as_str(), 1)], 0).await.expect("reserve");
        }
    }
    let again = r.read_batch().await.expect("read");
    assert_eq!(per_partition(&again).into_values().collect::<Vec<_>>(), [16; 4]);
    r.apply(&again).await.expect("apply");
    r.ack(&again).await.expect("ack");
    drain(&app, &mut r).await;
}

/// Releases `order` and waits until its tombstone has lapsed (the id is free).
async fn release_until_reusable(app: &TestApp, order: &str) {
    let mut r = app.reservations();
    r.release(proto::ReleaseRequest { order_id: order.into(), reason: "cancelled".into() }).await.expect("release");
    let lapsed = common::eventually(std::time::Duration::from_secs(10), || async {
        let got = app.reservations().get_reservation(proto::GetReservationRequest { order_id: order.into() }).await;
        got.is_err_and(|e| e.code() == tonic::Code::NotFound)
    })
    .await;
    assert!(lapsed, "the tombstone of {order} lapsed");
}

/// The Postgres record of one order: status, reason, lines (sku, quantity)
/// and its history.
async fn record_of(db: &sqlx::PgPool, order: &str) -> (String, String, Vec<(String, i64)>, Vec<String>) {
    let (status, reason): (String, String) =
        sqlx::query_as("SELECT status, release_reason FROM reservations WHERE order_id = $1")
            .bind(order)
            .fetch_one(db)
            .await
            .expect("header");
    let lines: Vec<(String, i64)> =
        sqlx::query_as("SELECT sku, quantity FROM reservation_lines WHERE order_id = $1 ORDER BY sku")
            .bind(order)
            .fetch_all(db)
            .await
            .expect("lines");
    let history: Vec<String> =
        sqlx::query_scalar("SELECT status FROM reservation_history WHERE order_id = $1 ORDER BY id")
            .bind(order)
            .fetch_all(db)
            .await
            .expect("history");
    (status, reason, lines, history)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_id_reused_after_its_tombstone_keeps_only_its_latest_lines_in_one_batch_or_across_two() {
    // Arrange: no reconciler in the app (the test drives one, so that what
    // lands in one batch is known); tombstones lapse quickly.
    let app = TestApp::spawn_with(|c| {
        c.reconciler_enabled = false;
        c.tombstone_ttl = std::time::Duration::from_millis(300);
    })
    .await;
    let db = app.db().await;
    let mut r = hand_reconciler(&app, &db, 1000).await;
    app.stocked("A", 10).await;
    app.stocked("B", 10).await;

    // Act: o-1 lives twice before the reconciler runs (one batch: two
    // lines, released; then one other line, committed).
    app.reserve("o-1", &[("A", 2), ("B", 1)], 0).await.expect("first reserve");
    release_until_reusable(&app, "o-1").await;
    app.reserve("o-1", &[("B", 3)], 0).await.expect("second reserve");
    app.reservations().commit(proto::CommitRequest { order_id: "o-1".into() }).await.expect("commit");
    drain(&app, &mut r).await;

    // Assert: the record is the second reservation's, the history both.
    let (status, reason, lines, history) = record_of(&db, "o-1").await;
    assert_eq!((status.as_str(), reason.as_str()), ("COMMITTED", ""));
    assert_eq!(lines, vec![("B".to_owned(), 3)], "only the current reservation's lines");
    assert_eq!(history, ["ACTIVE", "RELEASED", "ACTIVE", "COMMITTED"]);

    // Act: a third life, reconciled in a later batch than the second.
    release_until_reusable(&app, "o-1").await;
    drain(&app, &mut r).await;
    app.reserve("o-1", &[("A", 1)], 0).await.expect("third reserve");
    drain(&app, &mut r).await;

    // Assert: the ended record was reset, its old lines dropped.
    let (status, reason, lines, history) = record_of(&db, "o-1").await;
    assert_eq!((status.as_str(), reason.as_str()), ("ACTIVE", ""));
    assert_eq!(lines, vec![("A".to_owned(), 1)]);
    assert_eq!(history, ["ACTIVE", "RELEASED", "ACTIVE", "COMMITTED", "RELEASED", "ACTIVE"]);
    assert_eq!(snapshot(&db).await, redis_levels(&app, &["A", "B"]).await);
}

#[tokio::test]
async fn list_movements_pages_through_the_ledger_newest_first() {
    // Arrange
    let app = TestApp::spawn().await;
    app.stocked("A", 10).await;
    for i in 0..4 {
        app.reserve(&format!("o-{i}"), &[("A", 1)], 0).await.expect("reserve");
    }
    app.reservations().commit(proto::CommitRequest { order_id: "o-3".into() }).await.expect("commit");
    app.wait_reconciled().await;
    let page = |token: String| proto::ListMovementsRequest {
        sku: "A".into(),
        location_id: String::new(),
        page_size: 2,
        page_token: token,
    };

    // Act
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let r = app.stock().list_movements(page(token)).await.expect("page").into_inner();
        assert!(r.movements.len() <= 2);
        all.extend(r.movements);
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }

    // Assert: set on hand, four reserves, one commit; newest first.
    let kinds: Vec<MovementKind> = all.iter().map(|m| m.kind()).collect();
    assert_eq!(
        kinds,
        [
            MovementKind::Commit,
            MovementKind::Reserve,
            MovementKind::Reserve,
            MovementKind::Reserve,
            MovementKind::Reserve,
            MovementKind::Adjust
        ]
    );
    assert_eq!((all[0].order_id.as_str(), all[0].reserved_delta, all[0].committed_delta), ("o-3", -1, 1));
    assert_eq!((all[5].on_hand_delta, all[5].reason.as_str()), (10, "import"));
    let bad = app
        .stock()
        .list_movements(proto::ListMovementsRequest { sku: "a b".into(), ..Default::default() })
        .await
        .expect_err("bad sku");
    assert_eq!(common::violated_fields(&bad), ["sku"]);
    let bad = app.stock().list_movements(page("zz".into())).await.expect_err("bad token");
    assert_eq!(common::violated_fields(&bad), ["page_token"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drift_check_repairs_a_damaged_snapshot_from_the_ledger_and_refuses_to_guess_otherwise() {
    // Arrange
    let app = TestApp::spawn().await;
    let db = app.db().await;
    app.stocked("A", 10).await;
    app.sku("B").await;
    app.set_on_hand("B", "WH1", 7).await;
    app.wait_reconciled().await;
    sqlx::query("UPDATE stock_levels SET on_hand = 99 WHERE sku = 'A'").execute(&db).await.expect("damage");
    sqlx::query("UPDATE ledger SET on_hand_delta = 5 WHERE sku = 'B'").execute(&db).await.expect("damage");

    // Act
    let report = stockd::ledger::check_drift(&app.engine, &db, LedgerSide::Replayed).await.expect("check");
    let (repaired, refused) = stockd::ledger::repair_snapshot(&db, &report).await.expect("repair");

    // Assert
    let skus = |ms: &[stockd::ledger::Mismatch]| ms.iter().map(|m| m.sku.clone()).collect::<Vec<_>>();
    assert_eq!(skus(&report.mismatches), ["A", "B"]);
    assert_eq!(skus(&repaired), ["A"], "the ledger agrees with Redis for A");
    assert_eq!(skus(&refused), ["B"], "the ledger itself is wrong for B");
    assert_eq!(snapshot(&db).await.get(&("A".into(), "WH1".into())), Some(&(10, 0, 0, 0)));
    let again = stockd::ledger::check_drift(&app.engine, &db, LedgerSide::Replayed).await.expect("check");
    assert_eq!(skus(&again.mismatches), ["B"]);
    // The periodic check compares with the sums the reconciler kept, which
    // a later edit of the ledger's rows does not reach: only the full check
    // sees B.
    let periodic = stockd::ledger::check_drift(&app.engine, &db, LedgerSide::Totals).await.expect("check");
    assert!(periodic.mismatches.is_empty(), "{:?}", periodic.mismatches);
}

fn write_file(name: &str, content: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("stockd-{}-{name}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, content).expect("write");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importing_a_file_with_bad_rows_changes_nothing_and_names_every_bad_line() {
    // Arrange
    let app = TestApp::spawn().await;
    let file =
        write_file("bad.csv", "sku,name,location,on_hand\nA,Tee,WH1,5\nB B,Mug,WH1,1\nC,Cap,WH1,lots\nA,Tee,WH1,2\n");

    // Act
    let out = stockd_command(&app.config).arg("import").arg(&file).arg("--quiet").output().expect("runs");

    // Assert
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for line in ["line 3:", "line 4:", "line 5:"] {
        assert!(stderr.contains(line), "{line} in {stderr}");
    }
    assert!(!stderr.contains("line 2:"), "{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    let skus = app.catalog().list_skus(proto::ListSkusRequest::default()).await.expect("list").into_inner();
    assert!(skus.skus.is_empty());
    assert!(!app.levels("A").await.known);
    let _ = std::fs::remove_file(file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_row_import_completes_once_and_export_round_trips_exactly() {
    // Arrange: 50,000 SKUs at two locations.
    let app = TestApp::spawn().await;
    let mut csv = String::from("sku,name,location,on_hand,unit_price,unit_cost,supplier_id\n");
    for i in 0..50_000 {
        for (loc, qty) in [("WH-A", i % 97), ("WH-B", (i * 7) % 31)] {
            csv.push_str(&format!("SKU-{i:05},Item {i},{loc},{qty},{}.99,{}.5,sup-{}\n", i % 50, i % 20, i % 9));
        }
    }
    let file = write_file("big.csv", &csv);

    // Act
    let started = Instant::now();
    let first = stockd_command(&app.config).arg("import").arg(&file).arg("--quiet").output().expect("runs");
    let took = started.elapsed();
    let second = stockd_command(&app.config).arg("import").arg(&file).arg("--quiet").output().expect("runs");

    // Assert
    let said = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    println!("imported 100,000 rows in {took:.1?}: {}", said(&first).trim());
    assert!(said(&first).contains("imported 100000 rows (50000 SKUs)"), "{}", said(&first));
    assert!(said(&first).contains("100000 set, 0 already applied"), "{}", said(&first));
    assert!(second.status.success());
    assert!(said(&second).contains("0 set, 100000 already applied"), "{}", said(&second));
    let probe = app.levels("SKU-01234").await;
    let at = |loc: &str| probe.levels.iter().find(|l| l.location_id == loc).map(|l| l.on_hand);
    assert_eq!((at("WH-A"), at("WH-B")), (Some(1234 % 97), Some((1234 * 7) % 31)));

    // Export, import into a fresh store, export again: the same file.
    let exported = stockd_command(&app.config).arg("export").output().expect("runs");
    assert!(exported.status.success(), "{}", String::from_utf8_lossy(&exported.stderr));
    let exported = String::from_utf8(exported.stdout).expect("utf-8");
    assert_eq!(exported.lines().count(), 100_001);
    let fresh = TestApp::spawn().await;
    let copy = write_file("export.csv", &exported);
    let back = stockd_command(&fresh.config).arg("import").arg(&copy).arg("--quiet").output().expect("runs");
    assert!(back.status.success(), "{}", String::from_utf8_lossy(&back.stderr));
    let again = stockd_command(&fresh.config).arg("export").output().expect("runs");
    assert_eq!(String::from_utf8(again.stdout).expect("utf-8"), exported, "round trip is exact");
    let _ = (std::fs::remove_file(file), std::fs::remove_file(copy));
}

/// A fresh test schema with the migrations before `version` run, as a
/// database deployed then would have them. (Migrator's fields are public for
/// sqlx's macro; this is how to run a prefix.)
async fn migrated_before(version: i64) -> (stockd::config::Config, sqlx::PgPool) {
    let config = common::test_config();
    let pool = stockd::db::connect(&config).await.expect("postgres");
    let schema = config.database_schema.clone().expect("a test schema");
    sqlx::query(&format!("CREATE SCHEMA \"{schema}\"")).execute(&pool).await.expect("schema");
    let before = sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(
            stockd::db::MIGRATOR.iter().filter(|m| m.version < version).cloned().collect(),
        ),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    assert!(before.iter().count() >= 7, "the earlier migrations");
    before.run(&pool).await.expect("earlier migrations");
    (config, pool)
}

/// A database migrated and filled before the identifier-collation migration
/// (…0008) keeps its rows and views after it, and its identifiers sort and
/// compare byte by byte whatever the database's locale.
#[tokio::test]
async fn a_store_filled_before_the_collation_migration_reads_the_same_after_it() {
    let (config, pool) = migrated_before(20261130000008).await;
    sqlx::raw_sql(
        "INSERT INTO skus (sku, name) VALUES ('a-1', 'small a'), ('B-2', 'capital B'), ('é-3', 'e acute');
         INSERT INTO locations (location_id, name, priority) VALUES ('WH1', 'one', 1), ('wh2', 'two', 2);
         INSERT INTO reservations (order_id, status, channel, created_at, expires_at, updated_at)
             VALUES ('o-1', 'COMMITTED', 'web', '2026-11-30 10:00:00+00', '2026-11-30 10:30:00+00',
                     '2026-11-30 10:01:00+00');
         INSERT INTO ledger (partition, stream_ms, stream_seq, kind, sku, location_id, on_hand_delta,
                             reserved_delta, committed_delta, in_transit_delta, order_id, occurred_at)
             VALUES (1, 1, 0, 'reserve', 'a-1', 'WH1', 0, 2, 0, 0, 'o-1', '2026-11-30 10:00:00+00'),
                    (1, 1, 1, 'reserve', 'B-2', 'wh2', 0, 1, 0, 0, 'o-1', '2026-11-30 10:00:00+00'),
                    (1, 2, 0, 'commit', 'a-1', 'WH1', 0, -2, 2, 0, 'o-1', '2026-11-30 10:01:00+00'),
                    (1, 2, 1, 'commit', 'B-2', 'wh2', 0, -1, 1, 0, 'o-1', '2026-11-30 10:01:00+00');
         INSERT INTO stock_levels (sku, location_id, on_hand, reserved, committed, in_transit, partition,
                                   stream_ms, stream_seq)
             VALUES ('a-1', 'WH1', 10, 0, 2, 0, 1, 2, 0), ('B-2', 'wh2', 5, 0, 1, 0, 1, 2, 1);",
    )
    .execute(&pool)
    .await
    .expect("rows as the earlier schema holds them");

    stockd::db::migrate(&pool, &config).await.expect("the latest migrations over a filled database");

    let lines: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT sku, location_id, quantity FROM reservation_lines WHERE order_id = 'o-1' ORDER BY sku")
            .fetch_all(&pool)
            .await
            .expect("lines view");
    assert_eq!(lines, [("B-2".into(), "wh2".into(), 1), ("a-1".into(), "WH1".into(), 2)], "byte order: B before a");
    let history: Vec<String> =
        sqlx::query_scalar("SELECT status FROM reservation_history WHERE order_id = 'o-1' ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("history view");
    assert_eq!(history, ["ACTIVE", "COMMITTED"]);
    let skus: Vec<String> =
        sqlx::query_scalar("SELECT sku FROM skus ORDER BY sku").fetch_all(&pool).await.expect("skus");
    assert_eq!(skus, ["B-2", "a-1", "é-3"], "as Rust orders strings, under any database locale");
    assert_eq!(count(&pool, "SELECT count(*) FROM stock_levels WHERE sku = 'a-1' AND committed = 2").await, 1);
    // Migration …0009 sums the ledger it finds into the kept sums.
    assert_eq!(kept_sums(&pool).await, ledger_replayed(&pool).await);
    assert_eq!(kept_sums(&pool).await.get(&("a-1".into(), "WH1".into())), Some(&(0, 0, 2, 0)));
    let not_bytewise: Vec<String> = sqlx::query_scalar(
        "SELECT table_name || '.' || column_name FROM information_schema.columns
         WHERE table_schema = current_schema() AND data_type = 'text'
           AND column_name IN ('sku', 'location_id', 'order_id', 'operation_id')
           AND table_name IN (SELECT table_name FROM information_schema.tables
                              WHERE table_schema = current_schema() AND table_type = 'BASE TABLE')
           AND collation_name IS DISTINCT FROM 'C'
         ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .expect("collations");
    assert!(not_bytewise.is_empty(), "identifier columns under the database locale: {not_bytewise:?}");
    pool.close().await;
    common::cleanup(config);
}

/// Migration …0011 moves the kept sums into the snapshot's rows as they
/// were (a drift they show survives the move), gives a sum without a
/// snapshot row one with the snapshot at zero, and drops ledger_totals.
#[tokio::test]
async fn the_kept_sums_move_beside_the_snapshot_as_they_were() {
    let (config, pool) = migrated_before(20261130000011).await;
    sqlx::raw_sql(
        "INSERT INTO ledger (partition, stream_ms, stream_seq, kind, sku, location_id, on_hand_delta,
                             reserved_delta, committed_delta, in_transit_delta, occurred_at)
             VALUES (1, 1, 0, 'adjust', 'A', 'WH1', 10, 0, 0, 0, now()),
                    (1, 2, 0, 'reserve', 'A', 'WH1', 0, 2, 0, 0, now()),
                    (2, 1, 0, 'adjust', 'B', 'WH1', 4, 0, 0, 0, now());
         INSERT INTO stock_levels (sku, location_id, on_hand, reserved, committed, in_transit, partition,
                                   stream_ms, stream_seq)
             VALUES ('A', 'WH1', 10, 2, 0, 0, 1, 2, 0);
         INSERT INTO ledger_totals (sku, location_id, on_hand, reserved, committed, in_transit)
             VALUES ('A', 'WH1', 10, 5, 0, 0), ('B', 'WH1', 4, 0, 0, 0);",
    )
    .execute(&pool)
    .await
    .expect("rows as the earlier schema holds them");

    stockd::db::migrate(&pool, &config).await.expect("the latest migrations");

    let sums = kept_sums(&pool).await;
    assert_eq!(sums.get(&("A".into(), "WH1".into())), Some(&(10, 5, 0, 0)), "moved as it was, drift and all");
    assert_eq!(sums.get(&("B".into(), "WH1".into())), Some(&(4, 0, 0, 0)));
    let snap = snapshot(&pool).await;
    assert_eq!(snap.get(&("A".into(), "WH1".into())), Some(&(10, 2, 0, 0)), "the snapshot itself unchanged");
    assert_eq!(snap.get(&("B".into(), "WH1".into())), Some(&(0, 0, 0, 0)), "a row for the sum without one");
    let gone: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('ledger_totals')::text").fetch_one(&pool).await.expect("regclass");
    assert_eq!(gone, None);
    pool.close().await;
    common::cleanup(config);
}
