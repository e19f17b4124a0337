//! Numbers at and past their bounds: every number a request carries is
//! range-checked before it reaches a script, no sum the engine or the ledger
//! keeps can overflow, and errors with many bad fields stay small enough for
//! every standard client.

mod common;

use common::{TestApp, violated_fields};
use stockd::grpc::proto::{self, AdjustmentReason};
use stockd::ledger::{LedgerSide, check_drift};
use tonic::Code;

const EXTREMES: [i64; 4] = [i64::MIN, i64::MIN + 1, i64::MAX, i64::MAX - 1];

/// Asserts INVALID_ARGUMENT with a BadRequest violation naming `field`.
fn assert_names(result: Result<impl std::fmt::Debug, tonic::Status>, field: &str, case: &str) {
    let status = result.expect_err(case);
    assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
    assert_eq!(violated_fields(&status), [field], "{case}");
}

fn adjust(delta: i64) -> proto::AdjustStockRequest {
    proto::AdjustStockRequest {
        sku: "A".into(),
        location_id: "WH1".into(),
        delta,
        reason: AdjustmentReason::Received.into(),
        operation_id: String::new(),
    }
}

fn set_on_hand(on_hand: i64) -> proto::SetOnHandRequest {
    proto::SetOnHandRequest {
        sku: "A".into(),
        location_id: "WH1".into(),
        on_hand,
        reason: AdjustmentReason::Correction.into(),
        operation_id: String::new(),
    }
}

fn reserve(order_id: &str, lines: Vec<(i64, &str)>, ttl: Option<prost_types::Duration>) -> proto::ReserveRequest {
    proto::ReserveRequest {
        order_id: order_id.into(),
        lines: lines
            .into_iter()
            .map(|(quantity, sku)| proto::ReserveLine { sku: sku.into(), quantity, location_id: String::new() })
            .collect(),
        ttl,
        channel: String::new(),
    }
}

fn duration(seconds: i64, nanos: i32) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds, nanos })
}

/// How many movements SKU A has.
async fn movements(app: &TestApp) -> usize {
    let page = app
        .stock()
        .list_movements(proto::ListMovementsRequest {
            sku: "A".into(),
            location_id: String::new(),
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .expect("movements");
    page.into_inner().movements.len()
}

#[tokio::test]
async fn stock_changes_at_the_extremes_of_i64_are_refused_naming_their_field_and_change_nothing() {
    let app = TestApp::spawn().await;
    app.stocked("A", 10).await;
    app.wait_reconciled().await;
    let before = (app.total("A").await, movements(&app).await);
    for n in EXTREMES {
        assert_names(app.stock().adjust_stock(adjust(n)).await, "delta", &format!("AdjustStock delta {n}"));
        assert_names(app.stock().set_on_hand(set_on_hand(n)).await, "on_hand", &format!("SetOnHand {n}"));
    }
    for n in [-1_000_001, 1_000_001, 0] {
        assert_names(app.stock().adjust_stock(adjust(n)).await, "delta", &format!("AdjustStock delta {n}"));
    }
    assert_names(app.stock().set_on_hand(set_on_hand(1_000_000_001)).await, "on_hand", "SetOnHand past the bound");
    app.wait_reconciled().await;
    assert_eq!((app.total("A").await, movements(&app).await), before, "nothing changed");
}

#[tokio::test]
async fn reservation_numbers_at_the_extremes_are_refused_naming_their_field() {
    let app = TestApp::spawn().await;
    app.stocked("A", 10).await;
    let before = app.total("A").await;
    for n in EXTREMES {
        let case = format!("Reserve quantity {n}");
        assert_names(
            app.reservations().reserve(reserve("o-1", vec![(n, "A")], None)).await,
            "lines[0].quantity",
            &case,
        );
        let case = format!("Reserve ttl of {n} s");
        assert_names(app.reservations().reserve(reserve("o-1", vec![(1, "A")], duration(n, 0))).await, "ttl", &case);
    }
    for nanos in [i32::MIN, i32::MAX, -1, 1_000_000_000] {
        let case = format!("Reserve ttl with {nanos} ns");
        assert_names(
            app.reservations().reserve(reserve("o-1", vec![(1, "A")], duration(1, nanos))).await,
            "ttl",
            &case,
        );
    }
    // 24 h plus a nanosecond: over the limit only once the parts are added.
    let case = "ttl of 24 h and 1 ns";
    assert_names(app.reservations().reserve(reserve("o-1", vec![(1, "A")], duration(86_400, 1))).await, "ttl", case);
    assert_eq!(app.total("A").await, before, "nothing reserved");

    app.reserve("o-2", &[("A", 1)], 0).await.expect("reserved");
    for n in [i64::MIN, i64::MAX] {
        let r = app.reservations().extend(proto::ExtendRequest { order_id: "o-2".into(), ttl: duration(n, 0) }).await;
        assert_names(r, "ttl", &format!("Extend ttl of {n} s"));
    }
    let extend = proto::ExtendRequest { order_id: "o-2".into(), ttl: duration(i64::MAX, 999_999_999) };
    assert_names(app.reservations().extend(extend).await, "ttl", "Extend by the longest Duration there is");
}

#[tokio::test]
async fn catalog_numbers_at_the_extremes_are_refused_naming_their_field() {
    let app = TestApp::spawn().await;
    let sku = |f: fn(&mut proto::UpsertSkuRequest)| {
        let mut r = proto::UpsertSkuRequest { sku: "A".into(), name: "A".into(), ..Default::default() };
        f(&mut r);
        r
    };
    let cases: Vec<(&str, proto::UpsertSkuRequest, &str)> = vec![
        ("reorder point i64::MIN", sku(|r| r.reorder_point = Some(i64::MIN)), "reorder_point"),
        ("reorder point i64::MAX", sku(|r| r.reorder_point = Some(i64::MAX)), "reorder_point"),
        ("case pack i64::MIN", sku(|r| r.case_pack = Some(i64::MIN)), "case_pack"),
        ("case pack i64::MAX", sku(|r| r.case_pack = Some(i64::MAX)), "case_pack"),
        ("price past numeric(14,4)", sku(|r| r.unit_price = "9".repeat(40)), "unit_price"),
        ("cost with 30 decimals", sku(|r| r.unit_cost = format!("1.{}", "9".repeat(30))), "unit_cost"),
    ];
    for (case, request, field) in cases {
        assert_names(app.catalog().upsert_sku(request).await, field, case);
    }
    for priority in [i32::MIN, i32::MAX, -1] {
        let r = proto::UpsertLocationRequest { location_id: "WH9".into(), name: "x".into(), priority };
        assert_names(app.catalog().upsert_location(r).await, "priority", &format!("priority {priority}"));
    }
    let list = app.catalog().list_skus(proto::ListSkusRequest { page_size: i32::MIN, page_token: String::new() }).await;
    assert_names(list, "page_size", "ListSkus page_size i32::MIN");
    let list = app.catalog().list_skus(proto::ListSkusRequest { page_size: i32::MAX, page_token: String::new() }).await;
    assert!(list.is_ok(), "a page size past the largest is capped, as AIP-158 says: {list:?}");
    let locations = proto::ListLocationsRequest { page_size: i32::MIN, page_token: String::new() };
    assert_names(app.catalog().list_locations(locations).await, "page_size", "ListLocations page_size i32::MIN");
    let movements = proto::ListMovementsRequest {
        sku: "A".into(),
        location_id: String::new(),
        page_size: i32::MIN,
        page_token: String::new(),
    };
    assert_names(app.stock().list_movements(movements).await, "page_size", "ListMovements page_size i32::MIN");
    let missing = app.catalog().get_sku(proto::GetSkuRequest { sku: "A".into() }).await;
    assert_eq!(missing.expect_err("nothing stored").code(), Code::NotFound);
}

#[tokio::test]
async fn adjustments_that_overflow_only_when_added_are_refused_and_the_ledger_stays_whole() {
    let app = TestApp::spawn().await;
    app.stocked("A", 0).await;
    // Up to the bound exactly, then one more: refused, naming delta, and on_hand stays.
    app.stock().set_on_hand(set_on_hand(1_000_000_000)).await.expect("at the bound");
    let over = app.stock().adjust_stock(adjust(1)).await;
    let status = over.expect_err("past the bound");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(violated_fields(&status), ["delta"]);
    assert!(status.message().contains("1000000000"), "the bound is named: {}", status.message());
    assert_eq!(app.total("A").await.on_hand, 1_000_000_000);
    // The refused call did not use up its operation id.
    let retried = proto::AdjustStockRequest { operation_id: "op-1".into(), ..adjust(1) };
    assert!(app.stock().adjust_stock(retried.clone()).await.is_err());
    let back = proto::AdjustStockRequest { operation_id: "op-1".into(), ..adjust(-1) };
    let applied = app.stock().adjust_stock(back).await.expect("applied under the same id").into_inner();
    assert!(!applied.replayed, "the id was not consumed by the refusal");
    assert_eq!(applied.level.expect("level").on_hand, 999_999_999);

    // Downwards: shrinkage may take on_hand below zero, but not past -bound.
    app.stock().set_on_hand(set_on_hand(0)).await.expect("zero");
    let shrink = |delta| proto::AdjustStockRequest { reason: AdjustmentReason::Shrinkage.into(), ..adjust(delta) };
    for _ in 0..1000 {
        app.stock().adjust_stock(shrink(-1_000_000)).await.expect("within the bound");
    }
    assert_eq!(app.total("A").await.on_hand, -1_000_000_000);
    assert_names(app.stock().adjust_stock(shrink(-1)).await, "delta", "one past the bound downwards");
    // Exact arithmetic back up: +1 moves it by exactly one.
    let up = app.stock().adjust_stock(adjust(1)).await.expect("+1").into_inner();
    assert_eq!(up.level.expect("level").on_hand, -999_999_999);
    // SetOnHand from the bottom reports an exact delta.
    let set = app.stock().set_on_hand(set_on_hand(10)).await.expect("set").into_inner();
    assert_eq!(set.delta, 1_000_000_009);
    assert_eq!(set.level.expect("level").on_hand, 10);

    // The system of record took every event, and its sums add up.
    app.wait_reconciled().await;
    let db = app.db().await;
    let report = check_drift(&app.engine, &db, LedgerSide::Replayed).await.expect("check runs");
    assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
}

#[tokio::test]
async fn big_reservations_keep_exact_numbers() {
    let app = TestApp::spawn().await;
    app.stocked("A", 1_000_000_000).await;
    // A hundred lines of a million each, all of one SKU.
    let lines = (0..100).map(|_| (1_000_000, "A")).collect();
    let r = app.reservations().reserve(reserve("big", lines, None)).await.expect("reserve").into_inner();
    assert_eq!(r.outcome(), proto::ReserveOutcome::Reserved);
    let total = app.total("A").await;
    assert_eq!((total.reserved, total.available), (100_000_000, 900_000_000));
    app.reservations().fulfill(proto::FulfillRequest { order_id: "big".into() }).await.expect("fulfil");
    let total = app.total("A").await;
    assert_eq!((total.on_hand, total.reserved, total.committed), (900_000_000, 0, 0));
    app.wait_reconciled().await;
    let db = app.db().await;
    let report = check_drift(&app.engine, &db, LedgerSide::Replayed).await.expect("check runs");
    assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
}

#[tokio::test]
async fn errors_with_many_bad_fields_reach_a_client_with_default_metadata_limits_as_invalid_argument() {
    let app = TestApp::spawn().await;
    // A client that accepts at most 8 KiB of headers or trailers, as grpcio does by default.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", app.addr))
        .expect("endpoint")
        .http2_max_header_list_size(8 * 1024)
        .connect()
        .await
        .expect("connect");
    let mut stock = proto::stock_service_client::StockServiceClient::new(channel.clone());
    let mut reservations = proto::reservation_service_client::ReservationServiceClient::new(channel);

    let empty = proto::GetAvailabilityRequest { skus: vec![String::new(); 1000], location_id: String::new() };
    let status = stock.get_availability(empty).await.expect_err("every SKU is empty");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(violated_fields(&status).len(), 20, "the first 20 violations are in the details");
    assert_eq!(violated_fields(&status)[0], "skus[0]");
    assert!(status.message().contains("and 995 more"), "the rest are counted: {}", status.message());

    let long = "x".repeat(120);
    let lines = (0..100)
        .map(|_| proto::ReserveLine { sku: format!("{long}*"), quantity: -1, location_id: format!("{long} ") })
        .collect();
    let bad = proto::ReserveRequest { order_id: String::new(), lines, ttl: duration(-1, -1), channel: "{}".into() };
    let status = reservations.reserve(bad).await.expect_err("every line is bad");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(violated_fields(&status)[0], "order_id");
    assert!(status.message().contains("more"), "{}", status.message());
}

#[tokio::test]
async fn purchase_order_movements_past_the_level_bound_are_refused_and_change_nothing() {
    use stockd::domain::{LocationId, Sku};
    use stockd::reservation::{EngineError, PoMoveKind, PoMoveLine};
    let app = TestApp::spawn().await;
    app.stocked("A", 0).await;
    let wh1 = LocationId::parse("WH1").expect("id");
    let line = |in_transit| PoMoveLine { sku: Sku::parse("A").expect("sku"), on_hand: 0, in_transit };

    app.engine.po_move(PoMoveKind::Submit, &wh1, "po:1:submit", "1", &[line(600_000_000)]).await.expect("within");
    let over = app.engine.po_move(PoMoveKind::Submit, &wh1, "po:2:submit", "2", &[line(600_000_000)]).await;

    assert!(matches!(over, Err(EngineError::OutOfRange { field: "lines", .. })), "{over:?}");
    assert_eq!(app.total("A").await.in_transit, 600_000_000, "the refused movement changed nothing");
    // Its operation id was not used up: once within the bound it applies.
    let later = app.engine.po_move(PoMoveKind::Submit, &wh1, "po:2:submit", "2", &[line(400_000_000)]).await;
    assert_eq!(later.expect("applies").applied, 1);
    assert_eq!(app.total("A").await.in_transit, 1_000_000_000);
}
