//! Replenishment end to end: suggestions from a sales history, reorder
//! checks into draft POs, the PO lifecycle through the engine, notifications
//! to a local HTTP server, the event-driven watch, and bad input.
//!
//! Sales histories are written straight into the ledger with controlled
//! times (`write_history`); today's on_hand is set through the engine, so
//! the snapshot is what the reconciler wrote. The worker is off (its
//! setting) except in the tests of the watch and of notifications, so that
//! a test's RunReorderCheck is the only one.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Hook, TestApp, eventually, supplier_request, violated_fields, write_history};
use stockd::domain::{LocationId, Sku};
use stockd::grpc::proto;
use stockd::reservation::{PoMoveKind, PoMoveLine};
use tonic::Code;

/// No worker: RunReorderCheck alone makes POs.
async fn app_without_worker() -> TestApp {
    TestApp::spawn_with(|c| c.replenishment_enabled = false).await
}

/// `units` fulfilled on each of days 0..`days` before now.
fn daily_sales(days: u32, units: i64) -> Vec<(u32, &'static str, i64)> {
    (0..days).map(|d| (d, "fulfill", -units)).collect()
}

async fn suggestions(app: &TestApp, supplier: &str) -> Vec<proto::ReorderSuggestion> {
    app.replenishment()
        .get_reorder_suggestions(proto::GetReorderSuggestionsRequest {
            supplier_id: supplier.into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("suggestions")
        .into_inner()
        .suggestions
}

fn find<'a>(list: &'a [proto::ReorderSuggestion], sku: &str) -> &'a proto::ReorderSuggestion {
    list.iter().find(|s| s.sku == sku).unwrap_or_else(|| panic!("{sku} is suggested: {list:#?}"))
}

async fn run_check(app: &TestApp) -> Vec<proto::PurchaseOrder> {
    app.replenishment()
        .run_reorder_check(proto::RunReorderCheckRequest {})
        .await
        .expect("reorder check")
        .into_inner()
        .purchase_orders
}

fn lines(po: &proto::PurchaseOrder) -> Vec<(String, i64, i64)> {
    po.lines.iter().map(|l| (l.sku.clone(), l.quantity, l.received)).collect()
}

fn ms(t: &Option<prost_types::Timestamp>) -> i64 {
    let t = t.as_ref().expect("timestamp set");
    t.seconds * 1000 + i64::from(t.nanos) / 1_000_000
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).expect("clock after 1970")
}

/// The store the suggestion and check tests share, at WH1:
/// - acme (lead 4 days): HOT sells 5 a day for 28 days, 20 on hand;
///   SLOW sells 1 a day, 100 on hand; GAP sold, ran out for a week, sold
///   again, 50 on hand; NEW has 3 days of history (4 a day), 5 on hand;
///   NEWFB the same history with a fallback of 9 a day, 100 on hand.
/// - bolt (lead 10, minimum 100): BOLT-1 in cases of 12 sells 2 a day, 5 on hand.
/// - LOOSE has no supplier, GHOST a supplier nobody set up: neither is suggested.
async fn best_sellers(app: &TestApp) {
    let db = app.db().await;
    app.location("WH1", 1).await;
    app.supplier(supplier_request("acme", 4)).await;
    app.supplier(proto::UpsertSupplierRequest { min_order_quantity: 100, ..supplier_request("bolt", 10) }).await;
    app.supplied_sku("HOT", "acme", |_| {}).await;
    app.supplied_sku("SLOW", "acme", |_| {}).await;
    app.supplied_sku("GAP", "acme", |_| {}).await;
    app.supplied_sku("NEW", "acme", |_| {}).await;
    app.supplied_sku("NEWFB", "acme", |r| r.fallback_velocity = Some(9.0)).await;
    app.supplied_sku("BOLT-1", "bolt", |r| r.case_pack = Some(12)).await;
    app.supplied_sku("LOOSE", "", |_| {}).await;
    app.supplied_sku("GHOST", "nobody", |_| {}).await;
    write_history(&db, "HOT", "WH1", &daily_sales(28, 5)).await;
    write_history(&db, "SLOW", "WH1", &daily_sales(28, 1)).await;
    write_history(&db, "BOLT-1", "WH1", &daily_sales(28, 2)).await;
    write_history(&db, "LOOSE", "WH1", &daily_sales(28, 9)).await;
    write_history(&db, "GHOST", "WH1", &daily_sales(28, 9)).await;
    write_history(&db, "NEW", "WH1", &daily_sales(3, 4)).await;
    write_history(&db, "NEWFB", "WH1", &daily_sales(3, 4)).await;
    // GAP, walked back from 50 now (policy.rs): days 0-5 sold 5 each; on day 6
    // 35 arrived on an empty shelf and 5 sold (it began empty: left out);
    // days 7-13 nothing (empty); day 14 sold its last unit (ended empty:
    // left out); days 15-27 sold 1 each with stock left.
    let mut gap: Vec<(u32, &str, i64)> = (0..6).map(|d| (d, "fulfill", -5)).collect();
    gap.extend([(6, "adjust", 35), (6, "fulfill", -5)]);
    gap.extend((14..28).map(|d| (d, "fulfill", -1)));
    write_history(&db, "GAP", "WH1", &gap).await;
    for (sku, on_hand) in [("HOT", 20), ("SLOW", 100), ("GAP", 50), ("NEW", 5), ("NEWFB", 100), ("BOLT-1", 5)] {
        app.set_on_hand(sku, "WH1", on_hand).await;
    }
    app.set_on_hand("LOOSE", "WH1", 1).await;
    app.set_on_hand("GHOST", "WH1", 1).await;
    app.wait_reconciled().await;
}

#[tokio::test]
async fn suggestions_show_every_figure_of_a_best_seller_below_its_reorder_point_and_only_supplied_skus() {
    // Arrange
    let app = app_without_worker().await;
    best_sellers(&app).await;

    // Act
    let acme = suggestions(&app, "acme").await;
    let bolt = suggestions(&app, "bolt").await;
    let all = suggestions(&app, "").await;

    // Assert: HOT by hand. 5 a day, σ 0: safety stock 0, reorder point
    // 5 × 4 = 20, position 20 (at the point), target 5 × (4 + 30) = 170.
    let hot = find(&acme, "HOT");
    assert_eq!((hot.location_id.as_str(), hot.supplier_id.as_str()), ("WH1", "acme"));
    assert_eq!((hot.velocity_per_day, hot.sigma_daily, hot.lead_time_days), (5.0, 0.0, 4));
    assert_eq!((hot.safety_stock, hot.reorder_point), (0, 20));
    assert_eq!((hot.available, hot.in_transit, hot.on_order, hot.position), (20, 0, 0, 20));
    assert_eq!(hot.days_of_cover, Some(4.0));
    let out = ms(&hot.stockout_date) - now_ms();
    assert!((out - 4 * 86_400_000).abs() < 60_000, "stock-out in 4 days, got {out} ms");
    assert_eq!((hot.order_quantity, hot.below_reorder_point), (150, true));
    assert_eq!((hot.velocity_basis(), hot.history_days), (proto::VelocityBasis::History, 28));

    let slow = find(&acme, "SLOW");
    assert_eq!(
        (slow.velocity_per_day, slow.reorder_point, slow.below_reorder_point, slow.order_quantity),
        (1.0, 4, false, 0)
    );

    // GAP: only the 19 days in stock count, weighted 28 − k: days 0-5
    // (weights 153 in all) sold 5, days 15-27 (weights 91) sold 1.
    let gap = find(&acme, "GAP");
    let v = (153.0 * 5.0 + 91.0) / 244.0;
    assert!((gap.velocity_per_day - v).abs() < 1e-9, "GAP velocity {} not {v}", gap.velocity_per_day);
    let sigma = ((153.0 * (5.0 - v) * (5.0 - v) + 91.0 * (1.0 - v) * (1.0 - v)) / 244.0f64).sqrt();
    assert!((gap.sigma_daily - sigma).abs() < 1e-9, "GAP σ {} not {sigma}", gap.sigma_daily);
    assert_eq!(gap.history_days, 19);
    // 1.6449 × 1.934 × √4 = 6.36 -> 7; 3.508 × 4 = 14.03 -> 15.
    assert_eq!((gap.safety_stock, gap.reorder_point, gap.below_reorder_point), (7, 22, false));

    let new = find(&acme, "NEW");
    assert_eq!((new.velocity_basis(), new.history_days, new.velocity_per_day), (proto::VelocityBasis::NewSku, 3, 4.0));
    // 4 × 4 = 16, position 5: below; 4 × 34 = 136 − 5 = 131.
    assert_eq!((new.reorder_point, new.order_quantity), (16, 131));
    let fallback = find(&acme, "NEWFB");
    assert_eq!(
        (fallback.velocity_basis(), fallback.velocity_per_day, fallback.sigma_daily),
        (proto::VelocityBasis::Fallback, 9.0, 3.0)
    );

    // BOLT-1: 2 × 10 = 20 > 5; 2 × 40 − 5 = 75, the minimum 100, 9 cases of 12.
    let b = find(&bolt, "BOLT-1");
    assert_eq!((b.reorder_point, b.position, b.order_quantity, b.below_reorder_point), (20, 5, 108, true));

    let skus: Vec<&str> = all.iter().map(|s| s.sku.as_str()).collect();
    assert_eq!(skus, ["BOLT-1", "GAP", "HOT", "NEW", "NEWFB", "SLOW"], "no LOOSE or GHOST, in SKU order");
    let below = app
        .replenishment()
        .get_reorder_suggestions(proto::GetReorderSuggestionsRequest { below_only: true, ..Default::default() })
        .await
        .expect("below only")
        .into_inner();
    let below: Vec<&str> = below.suggestions.iter().map(|s| s.sku.as_str()).collect();
    assert_eq!(below, ["BOLT-1", "HOT", "NEW"]);
}

#[tokio::test]
async fn suggestions_page_through_every_sku_location_once() {
    // Arrange
    let app = app_without_worker().await;
    best_sellers(&app).await;

    // Act
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = app
            .replenishment()
            .get_reorder_suggestions(proto::GetReorderSuggestionsRequest {
                page_size: 4,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        pages += 1;
        assert!(page.suggestions.len() <= 4);
        seen.extend(page.suggestions.into_iter().map(|s| s.sku));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }

    // Assert
    assert_eq!(seen, ["BOLT-1", "GAP", "HOT", "NEW", "NEWFB", "SLOW"]);
    assert_eq!(pages, 2);
}

#[tokio::test]
async fn a_reorder_check_makes_one_draft_per_supplier_merges_later_lines_and_never_a_second_line() {
    // Arrange
    let app = app_without_worker().await;
    best_sellers(&app).await;

    // Act: the first check.
    let mut first = run_check(&app).await;
    first.sort_by(|a, b| a.supplier_id.cmp(&b.supplier_id));

    // Assert: one draft per supplier at WH1, with the SKUs below their point.
    assert_eq!(first.len(), 2, "{first:#?}");
    let (acme, bolt) = (&first[0], &first[1]);
    assert_eq!((acme.supplier_id.as_str(), acme.location_id.as_str()), ("acme", "WH1"));
    assert_eq!(acme.status(), proto::PurchaseOrderStatus::Draft);
    assert_eq!(lines(acme), [("HOT".into(), 150, 0), ("NEW".into(), 131, 0)]);
    assert_eq!(lines(bolt), [("BOLT-1".into(), 108, 0)]);
    assert!(acme.submitted_at.is_none());

    // A second check creates nothing: on order now covers them.
    assert!(run_check(&app).await.is_empty(), "re-running creates nothing");
    let hot = find(&suggestions(&app, "acme").await, "HOT").clone();
    assert_eq!((hot.on_order, hot.position, hot.below_reorder_point, hot.covered_by_open_po), (150, 170, false, true));

    // SLOW drops below its point: its line joins acme's open draft.
    app.stock()
        .adjust_stock(proto::AdjustStockRequest {
            sku: "SLOW".into(),
            location_id: "WH1".into(),
            delta: -97,
            reason: proto::AdjustmentReason::Damaged.into(),
            operation_id: "damaged-slow".into(),
        })
        .await
        .expect("adjust");
    app.wait_reconciled().await;
    let merged = run_check(&app).await;
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0].po_id, acme.po_id, "merged into the open draft");
    assert_eq!(lines(&merged[0]), [("HOT".into(), 150, 0), ("NEW".into(), 131, 0), ("SLOW".into(), 31, 0)]);

    // Submitted, then HOT's point raised far above its position: HOT is
    // below again, but the open PO covers it, so no second line.
    let id = acme.po_id.clone();
    app.replenishment().submit_purchase_order(proto::SubmitPurchaseOrderRequest { po_id: id }).await.expect("submit");
    app.supplied_sku("HOT", "acme", |r| r.reorder_point = Some(1000)).await;
    // Suggestions read the reconciled snapshot: in_transit shows once the
    // submit's events are in Postgres (the open PO covers HOT meanwhile).
    app.wait_reconciled().await;
    let hot = find(&suggestions(&app, "acme").await, "HOT").clone();
    assert_eq!((hot.in_transit, hot.on_order, hot.below_reorder_point, hot.covered_by_open_po), (150, 0, true, true));
    assert!(run_check(&app).await.is_empty(), "a SKU an open PO covers gets no second line");
    let drafts = app
        .replenishment()
        .list_purchase_orders(proto::ListPurchaseOrdersRequest {
            status: proto::PurchaseOrderStatus::Draft.into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .purchase_orders;
    assert_eq!(drafts.iter().map(|p| p.supplier_id.as_str()).collect::<Vec<_>>(), ["bolt"]);
}

/// A SKU BOX at WH1 with nothing on hand and a static reorder point of 10,
/// from acme in cases of 12; the check orders one case. Returns the PO id.
async fn one_case_of_box(app: &TestApp) -> String {
    app.location("WH1", 1).await;
    app.supplier(supplier_request("acme", 3)).await;
    app.supplied_sku("BOX", "acme", |r| {
        r.reorder_point = Some(10);
        r.case_pack = Some(12);
    })
    .await;
    app.sku("OTHER").await;
    app.set_on_hand("BOX", "WH1", 0).await;
    app.wait_reconciled().await;
    let pos = run_check(app).await;
    assert_eq!(pos.len(), 1);
    assert_eq!(lines(&pos[0]), [("BOX".into(), 12, 0)], "position 0 -> 11 needed -> one case");
    pos[0].po_id.clone()
}

async fn wh1(app: &TestApp, sku: &str) -> (i64, i64) {
    let item = app.levels(sku).await;
    let l = item.levels.iter().find(|l| l.location_id == "WH1").expect("a WH1 level");
    (l.on_hand, l.in_transit)
}

async fn receive(
    app: &TestApp,
    po: &str,
    sku: &str,
    quantity: i64,
    op: &str,
) -> Result<proto::PurchaseOrder, tonic::Status> {
    app.replenishment()
        .receive_purchase_order(proto::ReceivePurchaseOrderRequest {
            po_id: po.into(),
            lines: vec![proto::ReceiptLine { sku: sku.into(), quantity }],
            operation_id: op.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn receipts_move_stock_exactly_once_a_partial_one_leaves_the_rest_in_transit_and_cancel_releases_it() {
    // Arrange
    let app = app_without_worker().await;
    let po = one_case_of_box(&app).await;
    let r = app.replenishment();
    let submit = || proto::SubmitPurchaseOrderRequest { po_id: po.clone() };

    // Act + Assert: submit moves the case into in_transit, once.
    let submitted = r.clone().submit_purchase_order(submit()).await.expect("submit").into_inner();
    assert_eq!(submitted.status(), proto::PurchaseOrderStatus::Submitted);
    assert!(submitted.submitted_at.is_some());
    assert_eq!(wh1(&app, "BOX").await, (0, 12));
    r.clone().submit_purchase_order(submit()).await.expect("submit again");
    assert_eq!(wh1(&app, "BOX").await, (0, 12), "a second submit changes nothing");

    // A partial receipt, then its replay.
    let partial = receive(&app, &po, "BOX", 5, "dock-1").await.expect("receive 5");
    assert_eq!(partial.status(), proto::PurchaseOrderStatus::PartiallyReceived);
    assert_eq!(lines(&partial), [("BOX".into(), 12, 5)]);
    assert_eq!(wh1(&app, "BOX").await, (5, 7));
    let replay = receive(&app, &po, "BOX", 5, "dock-1").await.expect("replay");
    assert_eq!((lines(&replay), wh1(&app, "BOX").await), (vec![("BOX".into(), 12, 5)], (5, 7)));

    // A crash between the engine and marking the movement applied: the
    // next call applies it again, and the engine's operation id makes that
    // a no-op.
    let db = app.db().await;
    sqlx::query("UPDATE po_movements SET applied_at = NULL WHERE operation_id = $1")
        .bind(format!("po:{po}:receive:dock-1"))
        .execute(&db)
        .await
        .expect("forget applied_at");
    receive(&app, &po, "BOX", 5, "dock-1").await.expect("replay after the crash");
    assert_eq!(wh1(&app, "BOX").await, (5, 7), "moved exactly once");
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM po_movements WHERE applied_at IS NULL")
        .fetch_one(&db)
        .await
        .expect("pending");
    assert_eq!(pending, 0);

    // More than still expected, or a SKU not on the PO: refused, nothing moves.
    let over = receive(&app, &po, "BOX", 8, "dock-2").await.expect_err("8 of 7");
    assert_eq!((over.code(), violated_fields(&over)), (Code::InvalidArgument, vec!["lines[0].quantity".to_owned()]));
    let stranger = receive(&app, &po, "OTHER", 1, "dock-3").await.expect_err("not on the PO");
    assert_eq!(violated_fields(&stranger), ["lines[0].sku"]);
    assert_eq!(wh1(&app, "BOX").await, (5, 7));

    // Cancel: the 7 still in transit leave it; twice is once.
    let cancel = || proto::CancelPurchaseOrderRequest { po_id: po.clone() };
    let cancelled = r.clone().cancel_purchase_order(cancel()).await.expect("cancel").into_inner();
    assert_eq!(cancelled.status(), proto::PurchaseOrderStatus::Cancelled);
    assert_eq!(wh1(&app, "BOX").await, (5, 0));
    r.clone().cancel_purchase_order(cancel()).await.expect("cancel again");
    assert_eq!(wh1(&app, "BOX").await, (5, 0));
    let resubmit = r.clone().submit_purchase_order(submit()).await.expect_err("submit a cancelled PO");
    assert_eq!(resubmit.code(), Code::FailedPrecondition);
    let late = receive(&app, &po, "BOX", 1, "dock-4").await.expect_err("receive a cancelled PO");
    assert_eq!(late.code(), Code::FailedPrecondition);

    // The ledger has each movement once, with its in_transit delta.
    app.wait_reconciled().await;
    let moves = app
        .stock()
        .list_movements(proto::ListMovementsRequest { sku: "BOX".into(), ..Default::default() })
        .await
        .expect("movements")
        .into_inner()
        .movements;
    let po_moves: Vec<(proto::MovementKind, i64, i64)> = moves
        .iter()
        .rev()
        .filter(|m| m.in_transit_delta != 0)
        .map(|m| (m.kind(), m.on_hand_delta, m.in_transit_delta))
        .collect();
    use proto::MovementKind as K;
    assert_eq!(po_moves, [(K::PoSubmit, 0, 12), (K::PoReceive, 5, -5), (K::PoCancel, 0, -7)]);
    assert!(moves.iter().all(|m| m.in_transit_delta == 0 || m.operation_id.starts_with(&format!("po:{po}:"))));
}

#[tokio::test]
async fn a_full_receipt_marks_the_po_received_and_a_received_po_cannot_be_cancelled() {
    // Arrange
    let app = app_without_worker().await;
    let po = one_case_of_box(&app).await;
    let r = app.replenishment();
    r.clone().submit_purchase_order(proto::SubmitPurchaseOrderRequest { po_id: po.clone() }).await.expect("submit");

    // Act
    let got = receive(&app, &po, "BOX", 12, "all").await.expect("receive all");

    // Assert
    assert_eq!(got.status(), proto::PurchaseOrderStatus::Received);
    assert_eq!(wh1(&app, "BOX").await, (12, 0));
    let cancel = r.clone().cancel_purchase_order(proto::CancelPurchaseOrderRequest { po_id: po.clone() }).await;
    assert_eq!(cancel.expect_err("received").code(), Code::FailedPrecondition);
    let more = receive(&app, &po, "BOX", 1, "one-more").await.expect_err("nothing left to receive");
    assert_eq!(more.code(), Code::FailedPrecondition);
    let listed = r
        .clone()
        .list_purchase_orders(proto::ListPurchaseOrdersRequest {
            status: proto::PurchaseOrderStatus::Received.into(),
            supplier_id: "acme".into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.purchase_orders.iter().map(|p| p.po_id.as_str()).collect::<Vec<_>>(), [po.as_str()]);
}

#[tokio::test]
async fn an_auto_submit_supplier_gets_its_po_submitted_by_the_check() {
    // Arrange
    let app = app_without_worker().await;
    app.location("WH1", 1).await;
    app.supplier(proto::UpsertSupplierRequest { auto_submit: true, ..supplier_request("fast", 2) }).await;
    app.supplied_sku("PIN", "fast", |r| r.reorder_point = Some(3)).await;
    app.set_on_hand("PIN", "WH1", 1).await;
    app.wait_reconciled().await;

    // Act
    let pos = run_check(&app).await;

    // Assert: position 1, point 3: 3 − 1 + 1 = 3 ordered and in transit at once.
    assert_eq!(pos.len(), 1);
    assert_eq!(pos[0].status(), proto::PurchaseOrderStatus::Submitted);
    assert_eq!(lines(&pos[0]), [("PIN".into(), 3, 0)]);
    assert_eq!(wh1(&app, "PIN").await, (1, 3));
}

#[tokio::test]
async fn after_a_redis_loss_in_transit_comes_back_from_postgres_and_the_submit_is_still_remembered() {
    // Arrange: a submitted PO, reconciled.
    let app = app_without_worker().await;
    let po = one_case_of_box(&app).await;
    app.replenishment()
        .submit_purchase_order(proto::SubmitPurchaseOrderRequest { po_id: po.clone() })
        .await
        .expect("submit");
    app.wait_reconciled().await;

    // Act: the store's keys vanish (as a Redis restart without persistence).
    common::delete_prefix(&app.config.redis_url, &app.config.redis_prefix).await;
    let back = eventually(Duration::from_secs(20), || async {
        matches!(app.engine.generation().await, Ok(Some(_))) && app.engine.is_ready()
    })
    .await;
    assert!(back, "rebuilt from Postgres");

    // Assert
    assert_eq!(wh1(&app, "BOX").await, (0, 12), "in_transit restored");
    let line = PoMoveLine { sku: Sku::parse("BOX").expect("sku"), on_hand: 0, in_transit: 12 };
    let location = LocationId::parse("WH1").expect("location");
    let op = format!("po:{po}:submit");
    let again = app.engine.po_move(PoMoveKind::Submit, &location, &op, &po, &[line]).await.expect("replayed submit");
    assert_eq!((again.applied, again.replayed), (0, 1), "the submit's operation id survived the loss");
    assert_eq!(wh1(&app, "BOX").await, (0, 12));
}

#[tokio::test]
async fn a_created_po_is_notified_as_json_with_a_slack_text_and_a_failing_url_is_retried_without_losing_the_po() {
    // Arrange: a hook that fails twice, then takes it; a second supplier's
    // URL where nothing listens.
    let hook = Hook::start(vec![500, 503]).await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("http://{}/nobody", dead.local_addr().expect("addr"));
    drop(dead);
    let app = TestApp::spawn_with(|c| {
        c.replenishment.watch_interval = Duration::from_millis(100);
        c.replenishment.notify_backoff = Duration::from_millis(100);
        c.replenishment.notify_timeout = Duration::from_secs(2);
        c.replenishment.sweep_interval = Duration::from_secs(3600);
    })
    .await;
    app.location("WH1", 1).await;
    app.supplier(proto::UpsertSupplierRequest {
        name: "Acme".into(),
        notify_url: hook.url(),
        ..supplier_request("acme", 3)
    })
    .await;
    app.supplier(proto::UpsertSupplierRequest { notify_url: dead_url, ..supplier_request("gone", 3) }).await;
    app.supplied_sku("MUG", "acme", |r| r.reorder_point = Some(5)).await;
    app.supplied_sku("CUP", "gone", |r| r.reorder_point = Some(5)).await;
    app.set_on_hand("MUG", "WH1", 1).await;
    app.set_on_hand("CUP", "WH1", 1).await;
    app.wait_reconciled().await;

    // Act
    let pos = run_check(&app).await;

    // Assert: delivered after two failures, with the PO and the text.
    let mug_po = pos.iter().find(|p| p.supplier_id == "acme").expect("acme PO").po_id.clone();
    let delivered = eventually(Duration::from_secs(20), || async { !hook.bodies().is_empty() }).await;
    assert!(delivered, "the hook got the notification");
    let body = hook.bodies().remove(0);
    assert_eq!(body["text"], "Auto PO for 1 SKU from Acme");
    assert_eq!(body["event"], "created");
    assert_eq!(body["purchase_order"]["po_id"], mug_po.as_str());
    assert_eq!(body["purchase_order"]["location_id"], "WH1");
    assert_eq!(body["purchase_order"]["lines"][0]["sku"], "MUG");
    assert_eq!(body["purchase_order"]["lines"][0]["quantity"], 5);
    assert_eq!(hook.requests.load(std::sync::atomic::Ordering::SeqCst), 3, "two failures, then delivered");
    let db = app.db().await;
    let (attempts, delivered_at): (i32, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as("SELECT attempts, delivered_at FROM po_notifications WHERE po_id = $1")
            .bind(&mug_po)
            .fetch_one(&db)
            .await
            .expect("notification row");
    assert_eq!((attempts, delivered_at.is_some()), (3, true));

    // The dead URL keeps failing, with its error kept; its PO is untouched.
    let cup_po = pos.iter().find(|p| p.supplier_id == "gone").expect("gone PO").po_id.clone();
    let retried = eventually(Duration::from_secs(20), || async {
        let (attempts, error): (i32, String) =
            sqlx::query_as("SELECT attempts, last_error FROM po_notifications WHERE po_id = $1")
                .bind(&cup_po)
                .fetch_one(&db)
                .await
                .expect("notification row");
        attempts >= 2 && !error.is_empty()
    })
    .await;
    assert!(retried, "the failing URL is retried and its error recorded");
    let cup = app
        .replenishment()
        .get_purchase_order(proto::GetPurchaseOrderRequest { po_id: cup_po })
        .await
        .expect("the PO is still there")
        .into_inner();
    assert_eq!((cup.status(), lines(&cup)), (proto::PurchaseOrderStatus::Draft, vec![("CUP".into(), 5, 0)]));
}

#[tokio::test]
async fn a_sale_that_takes_a_best_seller_to_its_reorder_point_drafts_a_po_without_a_sweep() {
    // Arrange: the worker on, its sweep an hour away (it ran once at start,
    // before anything existed); HOT well above its point (5 a day × 4 = 20).
    let app = TestApp::spawn_with(|c| {
        c.replenishment.watch_interval = Duration::from_millis(100);
        c.replenishment.sweep_interval = Duration::from_secs(3600);
    })
    .await;
    let db = app.db().await;
    app.location("WH1", 1).await;
    app.supplier(supplier_request("acme", 4)).await;
    app.supplied_sku("HOT", "acme", |_| {}).await;
    write_history(&db, "HOT", "WH1", &daily_sales(28, 5)).await;
    app.set_on_hand("HOT", "WH1", 100).await;
    app.wait_reconciled().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let none = app.replenishment().list_purchase_orders(proto::ListPurchaseOrdersRequest::default()).await;
    assert!(none.expect("list").into_inner().purchase_orders.is_empty(), "nothing below its point yet");

    // Act: a reservation of 85 leaves 15 available.
    let reserved = app.reserve("order-85", &[("HOT", 85)], 600).await.expect("reserve");
    assert_eq!(reserved.outcome(), proto::ReserveOutcome::Reserved);

    // Assert
    let drafted = eventually(Duration::from_secs(20), || async {
        let list = app.replenishment().list_purchase_orders(proto::ListPurchaseOrdersRequest::default()).await;
        list.map(|l| l.into_inner().purchase_orders.len() == 1).unwrap_or(false)
    })
    .await;
    assert!(drafted, "the reconciled reservation triggered a check");
    let list = app.replenishment().list_purchase_orders(proto::ListPurchaseOrdersRequest::default()).await;
    let po = list.expect("list").into_inner().purchase_orders.remove(0);
    // 170 − 15 = 155.
    assert_eq!((po.supplier_id.as_str(), lines(&po)), ("acme", vec![("HOT".into(), 155, 0)]));
}

#[tokio::test]
async fn bad_replenishment_input_is_refused_naming_every_field() {
    // Arrange
    let app = app_without_worker().await;
    app.location("WH1", 1).await;
    app.supplier(supplier_request("acme", 3)).await;
    let catalog = app.catalog();

    // Act + Assert: suppliers.
    let bad = proto::UpsertSupplierRequest {
        supplier_id: "a b".into(),
        name: String::new(),
        lead_time_days: -1,
        min_order_quantity: -5,
        notify_url: "https://hooks.example/x".into(),
        auto_submit: false,
        service_level: Some(1.5),
    };
    let e = catalog.clone().upsert_supplier(bad).await.expect_err("bad supplier");
    assert_eq!(e.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&e);
    fields.sort();
    assert_eq!(fields, ["lead_time_days", "min_order_quantity", "name", "notify_url", "service_level", "supplier_id"]);
    let negative = proto::UpsertSupplierRequest { lead_time_days: -3, ..supplier_request("acme", 0) };
    assert_eq!(violated_fields(&catalog.clone().upsert_supplier(negative).await.expect_err("neg")), ["lead_time_days"]);
    let stored = catalog.clone().get_supplier(proto::GetSupplierRequest { supplier_id: "acme".into() }).await;
    assert_eq!(stored.expect("acme kept").into_inner().lead_time_days, 3, "nothing written");
    let missing = catalog.clone().get_supplier(proto::GetSupplierRequest { supplier_id: "nobody".into() }).await;
    assert_eq!(missing.expect_err("unknown").code(), Code::NotFound);

    // SKUs: case pack 0, a negative fallback velocity.
    let sku = proto::UpsertSkuRequest {
        sku: "S".into(),
        name: "S".into(),
        case_pack: Some(0),
        fallback_velocity: Some(-1.0),
        ..Default::default()
    };
    let mut fields = violated_fields(&catalog.clone().upsert_sku(sku).await.expect_err("bad sku"));
    fields.sort();
    assert_eq!(fields, ["case_pack", "fallback_velocity"]);

    // Suggestions and lists: an unknown supplier or location, a bad token.
    let r = app.replenishment();
    let unknown = proto::GetReorderSuggestionsRequest { supplier_id: "nobody".into(), ..Default::default() };
    assert_eq!(r.clone().get_reorder_suggestions(unknown).await.expect_err("unknown").code(), Code::NotFound);
    let nowhere = proto::GetReorderSuggestionsRequest { location_id: "WH9".into(), ..Default::default() };
    assert_eq!(r.clone().get_reorder_suggestions(nowhere).await.expect_err("unknown").code(), Code::NotFound);
    let token = proto::GetReorderSuggestionsRequest { page_token: "zz".into(), page_size: -1, ..Default::default() };
    let mut fields = violated_fields(&r.clone().get_reorder_suggestions(token).await.expect_err("token"));
    fields.sort();
    assert_eq!(fields, ["page_size", "page_token"]);
    let list = proto::ListPurchaseOrdersRequest { supplier_id: "nobody".into(), ..Default::default() };
    assert_eq!(r.clone().list_purchase_orders(list).await.expect_err("unknown").code(), Code::NotFound);
    let status = proto::ListPurchaseOrdersRequest { status: 42, ..Default::default() };
    assert_eq!(violated_fields(&r.clone().list_purchase_orders(status).await.expect_err("status")), ["status"]);

    // Purchase orders: unknown, malformed, and bad receipts.
    let get = r.clone().get_purchase_order(proto::GetPurchaseOrderRequest { po_id: "PO-nope".into() }).await;
    assert_eq!(get.expect_err("unknown").code(), Code::NotFound);
    let submit = r.clone().submit_purchase_order(proto::SubmitPurchaseOrderRequest { po_id: "a b".into() }).await;
    assert_eq!(violated_fields(&submit.expect_err("bad id")), ["po_id"]);
    let unknown = receive(&app, "PO-nope", "S", 1, "op-1").await.expect_err("unknown PO");
    assert_eq!(unknown.code(), Code::NotFound);
    let bad = proto::ReceivePurchaseOrderRequest {
        po_id: "PO-nope".into(),
        lines: vec![
            proto::ReceiptLine { sku: "S".into(), quantity: 0 },
            proto::ReceiptLine { sku: "S".into(), quantity: 2 },
            proto::ReceiptLine { sku: "s s".into(), quantity: 1 },
        ],
        operation_id: String::new(),
    };
    let mut fields = violated_fields(&r.clone().receive_purchase_order(bad).await.expect_err("bad receipt"));
    fields.sort();
    assert_eq!(fields, ["lines[0].quantity", "lines[1].sku", "lines[2].sku", "operation_id"]);
    let empty = proto::ReceivePurchaseOrderRequest { po_id: "P".into(), lines: vec![], operation_id: "x".into() };
    assert_eq!(violated_fields(&r.clone().receive_purchase_order(empty).await.expect_err("no lines")), ["lines"]);
}

#[tokio::test]
async fn the_replenishment_service_reports_health_and_is_listed_by_reflection() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    use tonic_reflection::pb::v1;
    let app = app_without_worker().await;

    let serving = eventually(Duration::from_secs(10), || async {
        let status = HealthClient::new(app.channel.clone())
            .check(HealthCheckRequest { service: "inventory.v1.ReplenishmentService".into() })
            .await
            .map(|r| r.into_inner().status());
        matches!(status, Ok(ServingStatus::Serving))
    })
    .await;
    assert!(serving, "ReplenishmentService follows Postgres, which is up");

    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut stream = v1::server_reflection_client::ServerReflectionClient::new(app.channel.clone())
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = stream.message().await.expect("answer").expect("one message");
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) = response.message_response
    else {
        panic!("not a service list: {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.iter().any(|n| n == "inventory.v1.ReplenishmentService"), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_while_redis_is_down_is_kept_and_reaches_in_transit_once_redis_returns() {
    // Arrange: a private Redis, the worker on, one draft PO of 12 BOX.
    let mut redis = common::redis_server::RedisServer::start().await;
    let url = redis.url();
    let app = TestApp::spawn_with(|c| {
        c.redis_url = url;
        c.redis_timeout = Duration::from_millis(500);
        c.replenishment.watch_interval = Duration::from_millis(100);
    })
    .await;
    app.location("WH1", 1).await;
    app.supplier(supplier_request("acme", 3)).await;
    app.supplied_sku("BOX", "acme", |r| {
        r.reorder_point = Some(10);
        r.case_pack = Some(12);
    })
    .await;
    app.set_on_hand("BOX", "WH1", 0).await;
    app.wait_reconciled().await;
    run_check(&app).await;
    let drafts = app.replenishment().list_purchase_orders(proto::ListPurchaseOrdersRequest::default()).await;
    let po = drafts.expect("list").into_inner().purchase_orders.remove(0).po_id;

    // Act: Redis dies; the submit is answered UNAVAILABLE.
    redis.stop();
    let submit = app
        .replenishment()
        .submit_purchase_order(proto::SubmitPurchaseOrderRequest { po_id: po.clone() })
        .await
        .expect_err("redis is down");
    assert_eq!(submit.code(), Code::Unavailable, "{submit:?}");

    // Assert: the PO says submitted (Postgres decided), its movement waits.
    let got = app.replenishment().get_purchase_order(proto::GetPurchaseOrderRequest { po_id: po.clone() }).await;
    assert_eq!(got.expect("get").into_inner().status(), proto::PurchaseOrderStatus::Submitted);
    let db = app.db().await;
    let pending = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM po_movements WHERE applied_at IS NULL")
            .fetch_one(&db)
            .await
            .expect("pending")
    };
    assert_eq!(pending().await, 1);

    // Redis returns empty, is rebuilt from Postgres, and the worker applies
    // the movement: the case is in transit, once.
    redis.restart().await;
    let moved = eventually(Duration::from_secs(20), || async {
        let item = app
            .stock()
            .get_availability(proto::GetAvailabilityRequest { skus: vec!["BOX".into()], location_id: "WH1".into() })
            .await;
        let in_transit = item.ok().and_then(|r| r.into_inner().items.pop()).and_then(|i| i.total).map(|t| t.in_transit);
        in_transit == Some(12)
    })
    .await;
    assert!(moved, "the submit reached in_transit");
    assert!(eventually(Duration::from_secs(10), || async { pending().await == 0 }).await, "marked applied");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(wh1(&app, "BOX").await, (0, 12), "applied once, however many rounds ran");
}
