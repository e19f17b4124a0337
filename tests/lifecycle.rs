//! Reservation lifecycle: idempotency, transitions, expiry, allocation.

mod common;

use std::time::Duration;

use common::{TestApp, eventually, http_get, metric};
use stockd::domain::{OperationId, Sku};
use stockd::grpc::proto::{self, ReservationStatus, ReserveOutcome};
use tonic::Code;

fn order(o: &str) -> proto::GetReservationRequest {
    proto::GetReservationRequest { order_id: o.into() }
}

async fn get(app: &TestApp, o: &str) -> Result<proto::Reservation, tonic::Status> {
    app.reservations().get_reservation(order(o)).await.map(tonic::Response::into_inner)
}

async fn commit(app: &TestApp, o: &str) -> Result<proto::Reservation, tonic::Status> {
    app.reservations()
        .commit(proto::CommitRequest { order_id: o.into() })
        .await
        .map(|r| r.into_inner().reservation.expect("reservation"))
}

async fn fulfill(app: &TestApp, o: &str) -> Result<proto::Reservation, tonic::Status> {
    app.reservations()
        .fulfill(proto::FulfillRequest { order_id: o.into() })
        .await
        .map(|r| r.into_inner().reservation.expect("reservation"))
}

async fn release(app: &TestApp, o: &str) -> Result<proto::Reservation, tonic::Status> {
    app.reservations()
        .release(proto::ReleaseRequest { order_id: o.into(), reason: "cancelled".into() })
        .await
        .map(|r| r.into_inner().reservation.expect("reservation"))
}

async fn extend(app: &TestApp, o: &str, secs: i64) -> Result<proto::Reservation, tonic::Status> {
    app.reservations()
        .extend(proto::ExtendRequest {
            order_id: o.into(),
            ttl: Some(prost_types::Duration { seconds: secs, nanos: 0 }),
        })
        .await
        .map(|r| r.into_inner().reservation.expect("reservation"))
}

fn numbers(l: &proto::Levels) -> (i64, i64, i64, i64) {
    (l.on_hand, l.reserved, l.committed, l.available)
}

#[tokio::test]
async fn a_retried_reserve_returns_the_same_reservation_and_holds_nothing_more() {
    let app = TestApp::spawn().await;
    app.stocked("A", 10).await;

    let first = app.reserve("o-1", &[("A", 3)], 0).await.expect("reserve");
    let again = app.reserve("o-1", &[("A", 3)], 0).await.expect("retry");

    assert_eq!(first.outcome(), ReserveOutcome::Reserved);
    assert_eq!(again.outcome(), ReserveOutcome::Reserved);
    assert_eq!(first.reservation, again.reservation, "the same reservation, same times");
    assert_eq!(numbers(&app.total("A").await), (10, 3, 0, 7));
}

#[tokio::test]
async fn reusing_an_order_id_with_other_lines_is_refused_and_changes_nothing() {
    let app = TestApp::spawn().await;
    app.stocked("A", 10).await;
    app.reserve("o-1", &[("A", 3)], 0).await.expect("reserve");

    let err = app.reserve("o-1", &[("A", 4)], 0).await.expect_err("different lines");

    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(numbers(&app.total("A").await), (10, 3, 0, 7));
}

#[tokio::test]
async fn a_replayed_operation_id_changes_nothing() {
    let app = TestApp::spawn().await;
    app.stocked("A", 10).await;
    let adjust = || proto::AdjustStockRequest {
        sku: "A".into(),
        location_id: "WH1".into(),
        delta: 5,
        reason: proto::AdjustmentReason::Received.into(),
        operation_id: "po:1:receive:1".into(),
    };

    let first = app.stock().adjust_stock(adjust()).await.expect("adjust").into_inner();
    let replay = app.stock().adjust_stock(adjust()).await.expect("replay").into_inner();

    assert!(!first.replayed);
    assert!(replay.replayed);
    assert_eq!(first.level.as_ref().map(|l| l.on_hand), Some(15));
    assert_eq!(replay.level.as_ref().map(|l| l.on_hand), Some(15));
    assert_eq!(app.total("A").await.on_hand, 15);
}

#[tokio::test]
async fn commit_then_fulfil_moves_stock_from_reserved_to_committed_to_gone() {
    let app = TestApp::spawn().await;
    app.stocked("A", 10).await;
    app.reserve("o-1", &[("A", 4)], 0).await.expect("reserve");

    let committed = commit(&app, "o-1").await.expect("commit");
    assert_eq!(committed.status(), ReservationStatus::Committed);
    assert_eq!(numbers(&app.total("A").await), (10, 0, 4, 6));
    assert_eq!(commit(&app, "o-1").await.expect("commit again is a no-op").status(), ReservationStatus::Committed);
    assert_eq!(numbers(&app.total("A").await), (10, 0, 4, 6));

    let fulfilled = fulfill(&app, "o-1").await.expect("fulfill");
    assert_eq!(fulfilled.status(), ReservationStatus::Fulfilled);
    assert_eq!(numbers(&app.total("A").await), (6, 0, 0, 6));
    assert_eq!(fulfill(&app, "o-1").await.expect("fulfill again is a no-op").status(), ReservationStatus::Fulfilled);
    assert_eq!(numbers(&app.total("A").await), (6, 0, 0, 6));
}

#[tokio::test]
async fn fulfilling_an_uncommitted_reservation_commits_and_ships_at_once() {
    let app = TestApp::spawn().await;
    app.stocked("A", 10).await;
    app.reserve("o-1", &[("A", 4)], 0).await.expect("reserve");

    assert_eq!(fulfill(&app, "o-1").await.expect("fulfill").status(), ReservationStatus::Fulfilled);

    assert_eq!(numbers(&app.total("A").await), (6, 0, 0, 6));
}

#[tokio::test]
async fn release_returns_held_stock_whether_reserved_or_committed() {
    let app = TestApp::spawn().await;
    app.stocked("A", 10).await;
    app.reserve("o-1", &[("A", 4)], 0).await.expect("reserve");
    app.reserve("o-2", &[("A", 2)], 0).await.expect("reserve");
    commit(&app, "o-2").await.expect("commit");
    assert_eq!(numbers(&app.total("A").await), (10, 4, 2, 4));

    let r1 = release(&app, "o-1").await.expect("release active");
    let r2 = release(&app, "o-2").await.expect("release committed");

    assert_eq!(r1.status(), ReservationStatus::Released);
    assert_eq!(r1.release_reason, "cancelled");
    assert_eq!(r2.status(), ReservationStatus::Released);
    assert_eq!(numbers(&app.total("A").await), (10, 0, 0, 10));
    assert_eq!(release(&app, "o-1").await.expect("release again is a no-op").status(), ReservationStatus::Released);
    assert_eq!(numbers(&app.total("A").await), (10, 0, 0, 10));
}

#[tokio::test]
async fn a_released_order_keeps_its_lines_and_exact_reason_in_its_tombstone() {
    // The header is one packed string (see common.lua): lines, channel and a
    // free-text reason must come back exactly as they went in.
    let app = TestApp::spawn().await;
    app.stocked("A", 10).await;
    app.stocked("B", 10).await;
    let held = app.reserve("o-1", &[("A", 2), ("B", 3)], 0).await.expect("reserve");
    let held = held.reservation.expect("reservation");
    let reason = "kunde: nicht mehr nötig — 2 of 3 items, see ticket #4411";

    let released = app
        .reservations()
        .release(proto::ReleaseRequest { order_id: "o-1".into(), reason: reason.into() })
        .await
        .expect("release")
        .into_inner()
        .reservation
        .expect("reservation");
    let got = get(&app, "o-1").await.expect("get");

    for r in [&released, &got] {
        assert_eq!(r.status(), ReservationStatus::Released);
        assert_eq!(r.release_reason, reason);
        assert_eq!(r.lines, held.lines, "lines as reserved");
        assert_eq!(r.created_at, held.created_at);
        assert_eq!(r.expires_at, held.expires_at);
    }
    assert_eq!(numbers(&app.total("A").await), (10, 0, 0, 10));
    assert_eq!(numbers(&app.total("B").await), (10, 0, 0, 10));
}

#[tokio::test]
async fn transitions_the_state_forbids_are_failed_precondition_and_change_nothing() {
    let app = TestApp::spawn().await;
    app.stocked("A", 10).await;
    app.reserve("released", &[("A", 1)], 0).await.expect("reserve");
    release(&app, "released").await.expect("release");
    app.reserve("shipped", &[("A", 2)], 0).await.expect("reserve");
    fulfill(&app, "shipped").await.expect("fulfill");
    app.reserve("picking", &[("A", 3)], 0).await.expect("reserve");
    commit(&app, "picking").await.expect("commit");
    let before = numbers(&app.total("A").await);

    let cases = [
        ("fulfill a released order", fulfill(&app, "released").await),
        ("commit a released order", commit(&app, "released").await),
        ("extend a released order", extend(&app, "released", 60).await),
        ("release a fulfilled order", release(&app, "shipped").await),
        ("commit a fulfilled order", commit(&app, "shipped").await),
        ("extend a committed order", extend(&app, "picking", 60).await),
    ];

    for (what, result) in cases {
        assert_eq!(result.expect_err(what).code(), Code::FailedPrecondition, "{what}");
    }
    assert_eq!(numbers(&app.total("A").await), before);
    assert_eq!(before, (8, 0, 3, 5));
}

#[tokio::test]
async fn an_unknown_order_is_not_found() {
    let app = TestApp::spawn().await;
    for r in
        [get(&app, "nope").await, commit(&app, "nope").await, fulfill(&app, "nope").await, release(&app, "nope").await]
    {
        assert_eq!(r.expect_err("unknown order").code(), Code::NotFound);
    }
}

#[tokio::test]
async fn a_released_order_id_is_not_reserved_again() {
    let app = TestApp::spawn().await;
    app.stocked("A", 10).await;
    app.reserve("o-1", &[("A", 1)], 0).await.expect("reserve");
    release(&app, "o-1").await.expect("release");

    let err = app.reserve("o-1", &[("A", 1)], 0).await.expect_err("tombstone");

    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(numbers(&app.total("A").await), (10, 0, 0, 10));
}

#[tokio::test]
async fn extend_moves_the_expiry_of_an_active_reservation() {
    let app = TestApp::spawn().await;
    app.stocked("A", 10).await;
    let r = app.reserve("o-1", &[("A", 1)], 60).await.expect("reserve").reservation.expect("reservation");
    let before = r.expires_at.expect("expiry").seconds;

    let extended = extend(&app, "o-1", 3600).await.expect("extend");

    let after = extended.expires_at.expect("expiry").seconds;
    assert!(after >= before + 3500, "{before} -> {after}");
    assert_eq!(get(&app, "o-1").await.expect("get").expires_at.map(|t| t.seconds), Some(after));
}

#[tokio::test]
async fn expiry_returns_stock_with_no_further_calls_on_that_sku() {
    // The sweeper runs every 200 ms in tests; the design promises release
    // within 2 s of expiry on an idle SKU.
    let app = TestApp::spawn().await;
    app.stocked("A", 5).await;
    app.reserve("o-1", &[("A", 5)], 1).await.expect("reserve");
    assert_eq!(numbers(&app.total("A").await), (5, 5, 0, 0));

    let released = eventually(Duration::from_secs(4), || async { app.total("A").await.reserved == 0 }).await;

    assert!(released, "the hold was released by the sweeper");
    assert_eq!(numbers(&app.total("A").await), (5, 0, 0, 5));
    assert_eq!(get(&app, "o-1").await.expect("get").status(), ReservationStatus::Expired);
    assert_eq!(commit(&app, "o-1").await.expect_err("expired").code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn a_reserve_on_the_sku_releases_expired_holds_itself() {
    // No sweeper help: it runs once an hour here.
    let app = TestApp::spawn_with(|c| c.sweep_interval = Duration::from_secs(3600)).await;
    app.stocked("A", 5).await;
    app.reserve("old", &[("A", 5)], 10).await.expect("reserve");
    assert_eq!(
        app.reserve("blocked", &[("A", 1)], 0).await.expect("answer").outcome(),
        ReserveOutcome::InsufficientStock
    );

    app.engine.advance_clock(Duration::from_secs(11));
    let r = app.reserve("new", &[("A", 5)], 0).await.expect("reserve");

    assert_eq!(r.outcome(), ReserveOutcome::Reserved);
    assert_eq!(numbers(&app.total("A").await), (5, 5, 0, 0));
    assert_eq!(get(&app, "old").await.expect("get").status(), ReservationStatus::Expired);
}

#[tokio::test]
async fn an_unknown_sku_and_a_stopped_sku_are_answers_not_errors() {
    let app = TestApp::spawn().await;
    app.stocked("A", 5).await;
    app.sku("STOPPED").await;
    app.set_on_hand("STOPPED", "WH1", 5).await;
    let sku = Sku::parse("STOPPED").expect("sku");
    app.engine.set_stop_sell(&sku, true, &OperationId::generate()).await.expect("stop");

    let unknown = app.reserve("o-1", &[("A", 1), ("NEVER-HEARD-OF", 1)], 0).await.expect("answer");
    let stopped = app.reserve("o-2", &[("A", 1), ("STOPPED", 1)], 0).await.expect("answer");

    assert_eq!(unknown.outcome(), ReserveOutcome::UnknownSku);
    assert_eq!(unknown.shortages.iter().map(|s| s.sku.as_str()).collect::<Vec<_>>(), ["NEVER-HEARD-OF"]);
    assert_eq!(stopped.outcome(), ReserveOutcome::StopSell);
    assert!(app.levels("STOPPED").await.stop_sell);
    assert_eq!(numbers(&app.total("A").await), (5, 0, 0, 5), "nothing held");
}

#[tokio::test]
async fn allocation_takes_the_first_location_that_fills_a_line_then_splits_by_priority() {
    let app = TestApp::spawn().await;
    app.location("NEAR", 1).await;
    app.location("FAR", 2).await;
    app.sku("A").await;
    app.set_on_hand("A", "NEAR", 3).await;
    app.set_on_hand("A", "FAR", 10).await;

    let whole = app.reserve("o-1", &[("A", 5)], 0).await.expect("reserve").reservation.expect("held");
    let near = app.reserve("o-2", &[("A", 2)], 0).await.expect("reserve").reservation.expect("held");
    let split = app.reserve("o-3", &[("A", 6)], 0).await.expect("reserve").reservation.expect("held");

    let lines =
        |r: &proto::Reservation| r.lines.iter().map(|l| (l.location_id.clone(), l.quantity)).collect::<Vec<_>>();
    assert_eq!(lines(&whole), [("FAR".to_string(), 5)], "NEAR cannot fill 5 alone");
    assert_eq!(lines(&near), [("NEAR".to_string(), 2)], "NEAR fills 2");
    assert_eq!(lines(&split), [("NEAR".to_string(), 1), ("FAR".to_string(), 5)], "split in priority order");
    assert_eq!(numbers(&app.total("A").await), (13, 13, 0, 0));
}

#[tokio::test]
async fn an_explicit_location_must_fill_its_line_alone() {
    let app = TestApp::spawn().await;
    app.location("NEAR", 1).await;
    app.location("FAR", 2).await;
    app.sku("A").await;
    app.set_on_hand("A", "NEAR", 3).await;
    app.set_on_hand("A", "FAR", 10).await;
    let req = proto::ReserveRequest {
        order_id: "o-1".into(),
        lines: vec![proto::ReserveLine { sku: "A".into(), quantity: 4, location_id: "NEAR".into() }],
        ttl: None,
        channel: "shopify".into(),
    };

    let r = app.reservations().reserve(req).await.expect("answer").into_inner();

    assert_eq!(r.outcome(), ReserveOutcome::InsufficientStock);
    assert_eq!(
        r.shortages,
        [proto::Shortage { sku: "A".into(), location_id: "NEAR".into(), requested: 4, available: 3 }]
    );
}

#[tokio::test]
async fn stock_and_reservations_survive_a_stockd_restart() {
    let app = TestApp::spawn().await;
    app.stocked("A", 10).await;
    app.reserve("o-1", &[("A", 4)], 0).await.expect("reserve");
    commit(&app, "o-1").await.expect("commit");
    app.reserve("o-2", &[("A", 1)], 0).await.expect("reserve");
    let config = app.stop_keeping_data().await;

    let app = TestApp::spawn_on(config).await;

    assert_eq!(numbers(&app.total("A").await), (10, 1, 4, 5));
    assert_eq!(get(&app, "o-1").await.expect("get").status(), ReservationStatus::Committed);
    assert_eq!(get(&app, "o-2").await.expect("get").status(), ReservationStatus::Active);
    assert_eq!(fulfill(&app, "o-1").await.expect("fulfill").status(), ReservationStatus::Fulfilled);
    assert_eq!(numbers(&app.total("A").await), (6, 1, 0, 5));
}

async fn get_order_reads(app: &TestApp) -> f64 {
    let (status, page) = http_get(app.http_addr, "/metrics").await;
    assert_eq!(status, 200);
    metric(&page, r#"stockd_script_duration_seconds_count{script="get_order"}"#)
}

#[tokio::test]
async fn transitions_of_an_order_this_replica_reserved_skip_reading_the_header() {
    let app = TestApp::spawn().await;
    app.stocked("A", 10).await;
    app.stocked("B", 10).await;
    app.reserve("o-1", &[("A", 2), ("B", 1)], 0).await.expect("reserve");
    let reads = get_order_reads(&app).await;

    extend(&app, "o-1", 600).await.expect("extend");
    commit(&app, "o-1").await.expect("commit");
    let shipped = fulfill(&app, "o-1").await.expect("fulfill");

    assert_eq!(get_order_reads(&app).await, reads, "no header read before the three transitions");
    assert_eq!(shipped.status(), ReservationStatus::Fulfilled);
    assert_eq!(numbers(&app.total("A").await), (8, 0, 0, 8));
    assert_eq!(numbers(&app.total("B").await), (9, 0, 0, 9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_an_outdated_view_of_a_reused_order_id_acts_on_the_current_reservation() {
    // Arrange: replica X reserved o-1 on A and remembers it; through replica
    // Y it was released, its tombstone lapsed, and o-1 was reserved again on B.
    let x = TestApp::spawn_with(|c| c.tombstone_ttl = Duration::from_millis(300)).await;
    let y = TestApp::spawn_on(x.config.clone()).await;
    x.stocked("A", 10).await;
    x.stocked("B", 10).await;
    x.reserve("o-1", &[("A", 2)], 0).await.expect("reserve through X");
    release(&y, "o-1").await.expect("release through Y");
    let lapsed = eventually(Duration::from_secs(10), || async {
        get(&y, "o-1").await.is_err_and(|e| e.code() == Code::NotFound)
    })
    .await;
    assert!(lapsed, "the tombstone lapsed");
    y.reserve("o-1", &[("B", 3)], 0).await.expect("reserve o-1 again through Y");

    // Act
    let committed = commit(&x, "o-1").await.expect("commit through X");

    // Assert: the current reservation was committed, A was not touched.
    assert_eq!(committed.status(), ReservationStatus::Committed);
    let lines: Vec<(String, i64)> = committed.lines.iter().map(|l| (l.sku.clone(), l.quantity)).collect();
    assert_eq!(lines, vec![("B".to_owned(), 3)]);
    assert_eq!(numbers(&x.total("A").await), (10, 0, 0, 10));
    assert_eq!(numbers(&x.total("B").await), (10, 0, 3, 7));
    // And X now knows the current one: releasing it through X works.
    release(&x, "o-1").await.expect("release through X");
    assert_eq!(numbers(&x.total("B").await), (10, 0, 0, 10));
}
