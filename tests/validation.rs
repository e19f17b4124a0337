//! Bad input gets INVALID_ARGUMENT naming the field, and changes nothing.

mod common;

use common::{TestApp, violated_fields};
use stockd::grpc::proto::{self, AdjustmentReason};
use tonic::Code;

fn line(sku: &str, quantity: i64, location_id: &str) -> proto::ReserveLine {
    proto::ReserveLine { sku: sku.into(), quantity, location_id: location_id.into() }
}

fn reserve(order_id: &str, lines: Vec<proto::ReserveLine>) -> proto::ReserveRequest {
    proto::ReserveRequest { order_id: order_id.into(), lines, ttl: None, channel: String::new() }
}

fn secs(seconds: i64, nanos: i32) -> Option<prost_types::Duration> {
    Some(prost_types::Duration { seconds, nanos })
}

/// Asserts INVALID_ARGUMENT with a BadRequest violation of exactly `field`.
fn assert_names(status: tonic::Status, field: &str, case: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
    assert_eq!(violated_fields(&status), [field], "{case}");
    assert!(status.message().contains(field), "{case}: message names the field: {}", status.message());
}

/// Everything a bad request could have changed.
async fn snapshot(app: &TestApp) -> (proto::Levels, Vec<String>) {
    let orders = ["good", "", "o-1"];
    let mut found = Vec::new();
    for o in orders {
        if app.reservations().get_reservation(proto::GetReservationRequest { order_id: o.into() }).await.is_ok() {
            found.push(o.to_string());
        }
    }
    (app.total("A").await, found)
}

#[tokio::test]
async fn every_bad_reserve_is_refused_naming_its_field_and_nothing_changes() {
    let app = TestApp::spawn().await;
    app.stocked("A", 10).await;
    let before = snapshot(&app).await;
    let ok = || line("A", 1, "");
    let cases: Vec<(&str, proto::ReserveRequest, &str)> = vec![
        ("empty order id", reserve("", vec![ok()]), "order_id"),
        ("129-character order id", reserve(&"o".repeat(129), vec![ok()]), "order_id"),
        ("order id with a space", reserve("o 1", vec![ok()]), "order_id"),
        ("order id with a brace", reserve("o{1}", vec![ok()]), "order_id"),
        ("no lines", reserve("o-1", vec![]), "lines"),
        ("101 lines", reserve("o-1", (0..101).map(|_| ok()).collect()), "lines"),
        ("zero quantity", reserve("o-1", vec![line("A", 0, "")]), "lines[0].quantity"),
        ("negative quantity", reserve("o-1", vec![line("A", -1, "")]), "lines[0].quantity"),
        ("quantity over a million", reserve("o-1", vec![ok(), line("A", 1_000_001, "")]), "lines[1].quantity"),
        ("empty sku", reserve("o-1", vec![line("", 1, "")]), "lines[0].sku"),
        ("sku with a pipe", reserve("o-1", vec![line("A|B", 1, "")]), "lines[0].sku"),
        ("location with a space", reserve("o-1", vec![line("A", 1, "WH 1")]), "lines[0].location_id"),
        ("unknown location", reserve("o-1", vec![line("A", 1, "NOWHERE")]), "lines[0].location_id"),
        (
            "ttl under a second",
            proto::ReserveRequest { ttl: secs(0, 500_000_000), ..reserve("o-1", vec![ok()]) },
            "ttl",
        ),
        ("ttl over a day", proto::ReserveRequest { ttl: secs(86_401, 0), ..reserve("o-1", vec![ok()]) }, "ttl"),
        ("negative ttl", proto::ReserveRequest { ttl: secs(-5, 0), ..reserve("o-1", vec![ok()]) }, "ttl"),
        ("bad channel", proto::ReserveRequest { channel: "shop ify".into(), ..reserve("o-1", vec![ok()]) }, "channel"),
    ];

    for (case, req, field) in cases {
        let err = app.reservations().reserve(req).await.expect_err(case);
        assert_names(err, field, case);
    }

    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn several_bad_fields_are_all_named_at_once() {
    let app = TestApp::spawn().await;

    let err = app.reservations().reserve(reserve("", vec![line("", 0, "")])).await.expect_err("bad");

    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["order_id", "lines[0].sku", "lines[0].quantity"]);
}

#[tokio::test]
async fn bad_transitions_are_refused_naming_their_field() {
    let app = TestApp::spawn().await;
    app.stocked("A", 10).await;
    app.reserve("good", &[("A", 2)], 0).await.expect("reserve");
    let before = snapshot(&app).await;
    let mut r = app.reservations();

    let e = r.commit(proto::CommitRequest { order_id: "".into() }).await.expect_err("empty");
    assert_names(e, "order_id", "commit");
    let e = r.fulfill(proto::FulfillRequest { order_id: "a b".into() }).await.expect_err("space");
    assert_names(e, "order_id", "fulfill");
    let e = r.get_reservation(proto::GetReservationRequest { order_id: "x".repeat(200) }).await.expect_err("long");
    assert_names(e, "order_id", "get");
    let e = r.extend(proto::ExtendRequest { order_id: "good".into(), ttl: None }).await.expect_err("no ttl");
    assert_names(e, "ttl", "extend without ttl");
    let e = r.extend(proto::ExtendRequest { order_id: "good".into(), ttl: secs(90_000, 0) }).await.expect_err("ttl");
    assert_names(e, "ttl", "extend over a day");
    let e = r
        .release(proto::ReleaseRequest { order_id: "good".into(), reason: "x".repeat(257) })
        .await
        .expect_err("long reason");
    assert_names(e, "reason", "release reason too long");

    assert_eq!(snapshot(&app).await, before);
    assert_eq!(before.0.reserved, 2);
}

#[tokio::test]
async fn bad_stock_changes_are_refused_naming_their_field() {
    let app = TestApp::spawn().await;
    app.stocked("A", 10).await;
    let before = snapshot(&app).await;
    let adjust = |delta, reason: AdjustmentReason| proto::AdjustStockRequest {
        sku: "A".into(),
        location_id: "WH1".into(),
        delta,
        reason: reason.into(),
        operation_id: "op-1".into(),
    };
    let cases: Vec<(&str, proto::AdjustStockRequest, &str)> = vec![
        ("zero delta", adjust(0, AdjustmentReason::Received), "delta"),
        ("huge delta", adjust(1_000_001, AdjustmentReason::Received), "delta"),
        ("huge negative delta", adjust(-1_000_001, AdjustmentReason::Shrinkage), "delta"),
        ("no reason", adjust(1, AdjustmentReason::Unspecified), "reason"),
        ("unknown reason", proto::AdjustStockRequest { reason: 99, ..adjust(1, AdjustmentReason::Received) }, "reason"),
        ("bad sku", proto::AdjustStockRequest { sku: "A*".into(), ..adjust(1, AdjustmentReason::Received) }, "sku"),
        (
            "bad location",
            proto::AdjustStockRequest { location_id: "".into(), ..adjust(1, AdjustmentReason::Received) },
            "location_id",
        ),
        (
            "bad operation id",
            proto::AdjustStockRequest { operation_id: "op 1".into(), ..adjust(1, AdjustmentReason::Received) },
            "operation_id",
        ),
    ];
    for (case, req, field) in cases {
        assert_names(app.stock().adjust_stock(req).await.expect_err(case), field, case);
    }
    let set = proto::SetOnHandRequest {
        sku: "A".into(),
        location_id: "WH1".into(),
        on_hand: -1,
        reason: AdjustmentReason::Count.into(),
        operation_id: String::new(),
    };
    assert_names(app.stock().set_on_hand(set).await.expect_err("negative"), "on_hand", "negative on_hand");

    assert_eq!(snapshot(&app).await, before);
    assert_eq!(before.0.on_hand, 10);
}

#[tokio::test]
async fn stock_changes_to_unknown_skus_or_locations_are_not_found() {
    let app = TestApp::spawn().await;
    app.stocked("A", 10).await;
    let req = |sku: &str, loc: &str| proto::AdjustStockRequest {
        sku: sku.into(),
        location_id: loc.into(),
        delta: 1,
        reason: AdjustmentReason::Received.into(),
        operation_id: String::new(),
    };

    let unknown_sku = app.stock().adjust_stock(req("GHOST", "WH1")).await.expect_err("unknown sku");
    let unknown_loc = app.stock().adjust_stock(req("A", "ATLANTIS")).await.expect_err("unknown location");

    assert_eq!(unknown_sku.code(), Code::NotFound);
    assert_eq!(unknown_loc.code(), Code::NotFound);
    assert_eq!(app.total("A").await.on_hand, 10);
    assert!(!app.levels("GHOST").await.known);
}

#[tokio::test]
async fn availability_reads_take_one_to_a_thousand_valid_skus() {
    let app = TestApp::spawn().await;
    app.stocked("A", 10).await;
    let ask = |skus: Vec<String>| proto::GetAvailabilityRequest { skus, location_id: String::new() };

    let none = app.stock().get_availability(ask(vec![])).await.expect_err("none");
    let too_many = app.stock().get_availability(ask((0..1001).map(|i| format!("S{i}")).collect())).await;
    let bad = app.stock().get_availability(ask(vec!["A".into(), "B B".into()])).await.expect_err("bad sku");
    let max = app.stock().get_availability(ask((0..1000).map(|i| format!("S{i}")).collect())).await.expect("1000 ok");

    assert_names(none, "skus", "no skus");
    assert_names(too_many.expect_err("1001"), "skus", "1001 skus");
    assert_names(bad, "skus[1]", "bad sku");
    assert_eq!(max.into_inner().items.len(), 1000);
}

#[tokio::test]
async fn bad_catalog_writes_are_refused_naming_their_field() {
    let app = TestApp::spawn().await;
    let sku = |f: fn(&mut proto::UpsertSkuRequest)| {
        let mut r = proto::UpsertSkuRequest { sku: "A".into(), name: "A tee".into(), ..Default::default() };
        f(&mut r);
        r
    };
    let cases: Vec<(&str, proto::UpsertSkuRequest, &str)> = vec![
        ("bad sku", sku(|r| r.sku = "a b".into()), "sku"),
        ("empty name", sku(|r| r.name = String::new()), "name"),
        ("long name", sku(|r| r.name = "n".repeat(257)), "name"),
        ("negative price", sku(|r| r.unit_price = "-1".into()), "unit_price"),
        ("price with 5 decimals", sku(|r| r.unit_price = "1.00001".into()), "unit_price"),
        ("cost not a number", sku(|r| r.unit_cost = "abc".into()), "unit_cost"),
        ("bad supplier", sku(|r| r.supplier_id = "s s".into()), "supplier_id"),
        ("negative reorder point", sku(|r| r.reorder_point = Some(-1)), "reorder_point"),
        ("negative case pack", sku(|r| r.case_pack = Some(-3)), "case_pack"),
        ("case pack 0", sku(|r| r.case_pack = Some(0)), "case_pack"),
    ];
    for (case, req, field) in cases {
        assert_names(app.catalog().upsert_sku(req).await.expect_err(case), field, case);
    }
    let loc = proto::UpsertLocationRequest { location_id: "WH1".into(), name: "W".into(), priority: -1 };
    assert_names(app.catalog().upsert_location(loc).await.expect_err("priority"), "priority", "negative priority");
    let page = proto::ListSkusRequest { page_size: 10, page_token: "not-a-token".into() };
    assert_names(app.catalog().list_skus(page).await.expect_err("token"), "page_token", "foreign page token");

    let skus = app.catalog().list_skus(proto::ListSkusRequest::default()).await.expect("list").into_inner();
    let locations = app.catalog().list_locations(proto::ListLocationsRequest::default()).await.expect("list");
    assert!(skus.skus.is_empty(), "no SKU was written");
    assert!(locations.into_inner().locations.is_empty(), "no location was written");
    assert!(!app.levels("A").await.known, "the engine never heard of A");
}

#[tokio::test]
async fn catalog_lists_page_through_everything_once() {
    let app = TestApp::spawn().await;
    for i in 0..7 {
        app.sku(&format!("SKU-{i}")).await;
    }

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .catalog()
            .list_skus(proto::ListSkusRequest { page_size: 3, page_token: token.clone() })
            .await
            .expect("page")
            .into_inner();
        assert!(page.skus.len() <= 3);
        seen.extend(page.skus.into_iter().map(|s| s.sku));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }

    assert_eq!(seen, (0..7).map(|i| format!("SKU-{i}")).collect::<Vec<_>>());
    let got = app.catalog().get_sku(proto::GetSkuRequest { sku: "SKU-3".into() }).await.expect("get").into_inner();
    assert_eq!((got.sku.as_str(), got.case_pack, got.unit_price.as_str()), ("SKU-3", 1, "0.0000"));
    let missing = app.catalog().get_sku(proto::GetSkuRequest { sku: "NOPE".into() }).await.expect_err("missing");
    assert_eq!(missing.code(), Code::NotFound);
}
