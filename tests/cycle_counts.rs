//! Cycle counting: counts judged against on_hand in the engine, the 5% and
//! 10% gates, investigations and their resolution, stop-sell per
//! SKU-location (through allocation, availability and a Redis rebuild), ABC
//! classes from the ledger's revenue, and due counts.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{TestApp, eventually, http_get, metric, violated_fields};
use stockd::cycle_count::{CountAction, CountGates, GATE_TABLE, decide};
use stockd::domain::{LocationId, OnHand, OperationId, Sku};
use stockd::grpc::proto::{self, AbcClass, InvestigationStatus, ReserveOutcome};
use stockd::reservation::StockChange;
use tonic::Code;

async fn count(
    app: &TestApp,
    sku: &str,
    loc: &str,
    counted: i64,
    op: &str,
) -> Result<proto::SubmitCountResponse, tonic::Status> {
    app.cycle_counts()
        .submit_count(proto::SubmitCountRequest {
            sku: sku.into(),
            location_id: loc.into(),
            counted,
            counted_by: "Ana".into(),
            operation_id: op.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn resolve(app: &TestApp, id: &str, accepted: i64) -> Result<proto::Investigation, tonic::Status> {
    app.cycle_counts()
        .resolve_investigation(proto::ResolveInvestigationRequest {
            investigation_id: id.into(),
            accepted_on_hand: accepted,
            resolved_by: "Sam".into(),
            note: "recounted: 12 were in the returns cage".into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn investigations(app: &TestApp, status: InvestigationStatus) -> Vec<proto::Investigation> {
    app.cycle_counts()
        .list_investigations(proto::ListInvestigationsRequest { status: status.into(), ..Default::default() })
        .await
        .expect("list investigations")
        .into_inner()
        .investigations
}

/// The level of `sku` at `loc` as GetAvailability lists it.
async fn level(app: &TestApp, sku: &str, loc: &str) -> proto::LocationLevel {
    let item = app.levels(sku).await;
    item.levels.into_iter().find(|l| l.location_id == loc).unwrap_or_else(|| panic!("{sku} has a level at {loc}"))
}

async fn reserve_at(app: &TestApp, order: &str, sku: &str, qty: i64, loc: &str) -> proto::ReserveResponse {
    app.reservations()
        .reserve(proto::ReserveRequest {
            order_id: order.into(),
            lines: vec![proto::ReserveLine { sku: sku.into(), quantity: qty, location_id: loc.into() }],
            ttl: None,
            channel: String::new(),
        })
        .await
        .expect("reserve answers")
        .into_inner()
}

async fn fulfill(app: &TestApp, order: &str) {
    app.reservations().fulfill(proto::FulfillRequest { order_id: order.into() }).await.expect("fulfil");
}

/// Every movement of `sku`, newest first.
async fn movements(app: &TestApp, sku: &str) -> Vec<proto::Movement> {
    app.stock()
        .list_movements(proto::ListMovementsRequest { sku: sku.into(), page_size: 1000, ..Default::default() })
        .await
        .expect("movements")
        .into_inner()
        .movements
}

/// Deletes every key of the app's store, as a Redis restart without
/// persistence would (the shared server is not flushed), and waits for the
/// rebuild from Postgres.
async fn wipe_redis_and_wait_for_the_rebuild(app: &TestApp) {
    common::delete_prefix(&app.config.redis_url, &app.config.redis_prefix).await;
    let back = eventually(Duration::from_secs(20), || async {
        matches!(app.engine.generation().await, Ok(Some(_))) && app.engine.is_ready()
    })
    .await;
    assert!(back, "the store was rebuilt from Postgres");
}

#[tokio::test]
async fn the_seeds_case_stops_selling_at_38_of_50_until_resolved_and_the_ledger_shows_minus_12() {
    // Arrange: the system says 50.
    let app = TestApp::spawn().await;
    app.stocked("TEE", 50).await;

    // Act: the shelf holds 38 (24% off).
    let counted = count(&app, "TEE", "WH1", 38, "count-1").await.expect("count");

    // Assert: an investigation with stop-sell, on_hand unchanged, selling refused.
    assert_eq!((counted.expected, counted.counted), (50, 38));
    assert!((counted.discrepancy - 0.24).abs() < 1e-12, "{}", counted.discrepancy);
    assert_eq!(counted.action(), proto::CountAction::StopSell);
    assert!(!counted.investigation_id.is_empty());
    let stopped = level(&app, "TEE", "WH1").await;
    assert!(stopped.stop_sell, "the level shows the stop");
    assert_eq!(stopped.on_hand, 50, "on_hand stays until resolved");
    assert!(app.levels("TEE").await.stop_sell, "stopped at its only location: stopped everywhere");
    let refused = app.reserve("o-1", &[("TEE", 1)], 0).await.expect("answer");
    assert_eq!(refused.outcome(), ReserveOutcome::StopSell);
    assert_eq!(refused.shortages.iter().map(|s| s.sku.as_str()).collect::<Vec<_>>(), ["TEE"]);
    let open = investigations(&app, InvestigationStatus::Open).await;
    assert_eq!(open.len(), 1);
    assert_eq!((open[0].expected, open[0].counted, open[0].stop_sell), (50, 38, true));
    assert_eq!((open[0].opened_by.as_str(), open[0].resolved_at), ("Ana", None));

    // Act: resolved at 38.
    let resolved = resolve(&app, &counted.investigation_id, 38).await.expect("resolve");

    // Assert: selling again with 38, and the ledger shows -12 for the count.
    assert_eq!(resolved.status(), InvestigationStatus::Resolved);
    assert_eq!((resolved.accepted_on_hand, resolved.resolved_by.as_str()), (Some(38), "Sam"));
    assert!(resolved.resolved_at.is_some());
    let after = level(&app, "TEE", "WH1").await;
    assert_eq!((after.on_hand, after.stop_sell), (38, false));
    let sold = app.reserve("o-2", &[("TEE", 38)], 0).await.expect("answer");
    assert_eq!(sold.outcome(), ReserveOutcome::Reserved, "all 38 can be sold");
    assert!(investigations(&app, InvestigationStatus::Open).await.is_empty());
    app.wait_reconciled().await;
    let count_moves: Vec<_> = movements(&app, "TEE").await.into_iter().filter(|m| m.reason == "count").collect();
    assert_eq!(count_moves.len(), 1, "{count_moves:?}");
    assert_eq!(count_moves[0].on_hand_delta, -12);
    assert_eq!(count_moves[0].operation_id, format!("inv:{}:resolve", counted.investigation_id));
    let db = app.db().await;
    let flag: bool =
        sqlx::query_scalar("SELECT stop_sell FROM stop_sell_locations WHERE sku = 'TEE' AND location_id = 'WH1'")
            .fetch_one(&db)
            .await
            .expect("the stop and its lifting reached Postgres (the seam channel sync reads)");
    assert!(!flag);
}

#[tokio::test]
async fn three_percent_is_corrected_at_once_and_seven_percent_investigates_while_selling_goes_on() {
    // Arrange
    let app = TestApp::spawn().await;
    app.stocked("SMALL", 100).await;
    app.sku("MID").await;
    app.set_on_hand("MID", "WH1", 100).await;

    // Act
    let small = count(&app, "SMALL", "WH1", 97, "c-small").await.expect("count");
    let mid = count(&app, "MID", "WH1", 93, "c-mid").await.expect("count");

    // Assert: 3% is corrected (reason count, in the ledger) without an investigation.
    assert_eq!(small.action(), proto::CountAction::Adjusted);
    assert!(small.investigation_id.is_empty());
    assert_eq!(level(&app, "SMALL", "WH1").await.on_hand, 97);
    // 7%: an investigation, still selling, on_hand unchanged.
    assert_eq!(mid.action(), proto::CountAction::Investigation);
    assert!(!mid.investigation_id.is_empty());
    let l = level(&app, "MID", "WH1").await;
    assert_eq!((l.on_hand, l.stop_sell), (100, false));
    assert_eq!(app.reserve("o-mid", &[("MID", 5)], 0).await.expect("answer").outcome(), ReserveOutcome::Reserved);
    let open = investigations(&app, InvestigationStatus::Open).await;
    assert_eq!(open.iter().map(|i| (i.sku.as_str(), i.stop_sell)).collect::<Vec<_>>(), [("MID", false)]);

    // Act: resolved at 93, with 5 held.
    resolve(&app, &mid.investigation_id, 93).await.expect("resolve");

    // Assert
    let l = level(&app, "MID", "WH1").await;
    assert_eq!((l.on_hand, l.reserved, l.available), (93, 5, 88));
    app.wait_reconciled().await;
    let small_moves: Vec<i64> =
        movements(&app, "SMALL").await.iter().filter(|m| m.reason == "count").map(|m| m.on_hand_delta).collect();
    assert_eq!(small_moves, [-3]);
    let recorded: Vec<(String, String, String)> =
        sqlx::query_as("SELECT sku, action, counted_by FROM cycle_counts ORDER BY sku")
            .fetch_all(&app.db().await)
            .await
            .expect("counts");
    assert_eq!(
        recorded,
        [("MID".into(), "INVESTIGATION".into(), "Ana".into()), ("SMALL".into(), "ADJUSTED".into(), "Ana".into())]
    );
}

#[tokio::test]
async fn a_count_compares_with_on_hand_not_available() {
    // Arrange: 50 on the shelf, 10 of them held.
    let app = TestApp::spawn().await;
    app.stocked("A", 50).await;
    app.reserve("o-1", &[("A", 10)], 0).await.expect("reserve");

    // Act
    let counted = count(&app, "A", "WH1", 50, "c-1").await.expect("count");

    // Assert
    assert_eq!((counted.expected, counted.action()), (50, proto::CountAction::Matched));
    assert_eq!(counted.discrepancy, 0.0);
    let l = level(&app, "A", "WH1").await;
    assert_eq!((l.on_hand, l.reserved, l.available), (50, 10, 40));
}

#[tokio::test]
async fn a_count_racing_with_fulfilments_is_judged_at_its_instant_and_loses_none() {
    // Arrange: 100 on hand, 20 orders of one unit held.
    let app = TestApp::spawn().await;
    app.stocked("A", 100).await;
    for i in 0..20 {
        let r = app.reserve(&format!("o-{i}"), &[("A", 1)], 0).await.expect("reserve");
        assert_eq!(r.outcome(), ReserveOutcome::Reserved);
    }

    // Act: the orders ship while the count is submitted.
    let mut shipping = tokio::task::JoinSet::new();
    for i in 0..20 {
        let reservations = app.reservations();
        shipping.spawn(async move {
            let mut r = reservations;
            r.fulfill(proto::FulfillRequest { order_id: format!("o-{i}") }).await.map(|_| ())
        });
    }
    let counted = count(&app, "A", "WH1", 95, "race").await.expect("count");
    while let Some(done) = shipping.join_next().await {
        done.expect("task").expect("fulfil");
    }

    // Assert: judged against on_hand at its instant (100 less the orders
    // shipped before it), and every fulfilment after it still counts.
    let shipped_before = 100 - counted.expected;
    assert!((0..=20).contains(&shipped_before), "expected {}", counted.expected);
    assert_eq!(counted.action(), decide(counted.expected, 95, &CountGates::default()).into_proto());
    let want = match counted.action() {
        proto::CountAction::Adjusted => 95 - (20 - shipped_before),
        _ => 80,
    };
    let l = level(&app, "A", "WH1").await;
    assert_eq!((l.on_hand, l.reserved, l.committed), (want, 0, 0));
    app.wait_reconciled().await;
    let ledger: i64 = movements(&app, "A").await.iter().map(|m| m.on_hand_delta).sum();
    assert_eq!(ledger, want, "the ledger replays to the same on_hand");
}

/// The proto action of a domain action (the API's names).
trait IntoProto {
    fn into_proto(self) -> proto::CountAction;
}

impl IntoProto for CountAction {
    fn into_proto(self) -> proto::CountAction {
        match self {
            CountAction::Matched => proto::CountAction::Matched,
            CountAction::Adjusted => proto::CountAction::Adjusted,
            CountAction::Investigation => proto::CountAction::Investigation,
            CountAction::StopSell => proto::CountAction::StopSell,
        }
    }
}

#[tokio::test]
async fn count_lua_goes_through_the_gates_exactly_as_the_policy_function_does() {
    // Arrange: one SKU per row of the table, on_hand at its expected value.
    let app = TestApp::spawn().await;
    app.location("WH1", 1).await;
    let wh1 = LocationId::parse("WH1").expect("id");
    for (i, &(expected, counted, action)) in GATE_TABLE.iter().enumerate() {
        let name = format!("G{i}");
        app.sku(&name).await;
        let sku = Sku::parse(name.as_str()).expect("sku");
        let op = OperationId::parse(format!("init-{i}")).expect("op");
        let stock = if expected >= 0 { StockChange::Set(expected) } else { StockChange::Delta(expected) };
        app.engine.adjust(&sku, &wh1, stock, &op, "import").await.expect("stock");

        // Act
        let op = OperationId::parse(format!("gate-{i}")).expect("op");
        let counted_on = OnHand::parse(counted).expect("count");
        let got = app
            .engine
            .count(&sku, &wh1, counted_on, &op, &format!("inv-{i}"), &CountGates::default())
            .await
            .expect("count");

        // Assert
        assert_eq!(got.action, action, "{expected} -> {counted}");
        assert_eq!(got.action, decide(expected, counted, &CountGates::default()));
        assert_eq!((got.expected, got.counted, got.replayed), (expected, counted, false));
        assert_eq!(got.investigation_id.is_some(), action.investigates());
    }
    // Gates of another configuration go through as passed.
    let sku = Sku::parse("G0").expect("sku");
    let strict = CountGates { adjust_bp: 0, stop_bp: 0, min_units: 0 };
    let op = OperationId::parse("strict").expect("op");
    let got = app.engine.count(&sku, &wh1, OnHand::parse(49).expect("n"), &op, "inv-s", &strict).await.expect("count");
    assert_eq!(got.action, CountAction::StopSell, "with no gates, one unit off stops selling");
}

#[tokio::test]
async fn a_resubmitted_count_answers_the_same_and_changes_nothing() {
    // Arrange
    let app = TestApp::spawn().await;
    app.stocked("A", 100).await;
    app.sku("B").await;
    app.set_on_hand("B", "WH1", 100).await;
    let first = count(&app, "A", "WH1", 97, "same-op").await.expect("count");
    let opened = count(&app, "B", "WH1", 80, "b-op").await.expect("count");

    // Act: submitted again; then again after the Postgres record was lost
    // (a crash between the engine and Postgres), answered by the engine.
    let again = count(&app, "A", "WH1", 97, "same-op").await.expect("count again");
    let db = app.db().await;
    sqlx::query("DELETE FROM investigations").execute(&db).await.expect("delete");
    sqlx::query("DELETE FROM cycle_counts").execute(&db).await.expect("delete");
    let from_engine = count(&app, "A", "WH1", 97, "same-op").await.expect("count after a crash");
    let reopened = count(&app, "B", "WH1", 80, "b-op").await.expect("count after a crash");

    // Assert
    for a in [&again, &from_engine] {
        assert_eq!((a.expected, a.counted, a.action()), (100, 97, proto::CountAction::Adjusted));
    }
    assert_eq!(level(&app, "A", "WH1").await.on_hand, 97, "corrected once");
    assert_eq!(reopened.investigation_id, opened.investigation_id, "the same investigation");
    assert_eq!(reopened.action(), proto::CountAction::StopSell);
    let open = investigations(&app, InvestigationStatus::Open).await;
    assert_eq!(
        open.iter().map(|i| i.investigation_id.as_str()).collect::<Vec<_>>(),
        [opened.investigation_id.as_str()]
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM cycle_counts").fetch_one(&db).await.expect("count");
    assert_eq!(rows, 2, "recorded again, once each");
    assert_eq!(first.operation_id, "same-op");
}

#[tokio::test]
async fn a_stopped_location_is_skipped_by_allocation_and_refused_when_only_it_could_serve() {
    // Arrange: NEAR is allocated first; both hold 5. A count of 0 at NEAR stops it.
    let app = TestApp::spawn().await;
    app.location("NEAR", 1).await;
    app.location("FAR", 2).await;
    app.sku("A").await;
    app.set_on_hand("A", "NEAR", 5).await;
    app.set_on_hand("A", "FAR", 5).await;
    let stopped = count(&app, "A", "NEAR", 0, "c-near").await.expect("count");
    assert_eq!(stopped.action(), proto::CountAction::StopSell);

    // Act
    let from_far = app.reserve("o-1", &[("A", 3)], 0).await.expect("answer");
    let needs_near = app.reserve("o-2", &[("A", 4)], 0).await.expect("answer");
    let too_many = app.reserve("o-3", &[("A", 50)], 0).await.expect("answer");
    let at_near = reserve_at(&app, "o-4", "A", 1, "NEAR").await;

    // Assert
    assert_eq!(from_far.outcome(), ReserveOutcome::Reserved);
    let lines = from_far.reservation.expect("reservation").lines;
    assert_eq!(lines.iter().map(|l| (l.location_id.as_str(), l.quantity)).collect::<Vec<_>>(), [("FAR", 3)]);
    assert_eq!(needs_near.outcome(), ReserveOutcome::StopSell, "the stock is there, but only at a stopped location");
    assert_eq!(too_many.outcome(), ReserveOutcome::InsufficientStock, "not there even counting the stopped one");
    assert_eq!(too_many.shortages[0].available, 2, "what can be sold: FAR's 2 left");
    assert_eq!(at_near.outcome(), ReserveOutcome::StopSell);
    let item = app.levels("A").await;
    assert!(!item.stop_sell, "FAR still sells");
    let flags: Vec<(&str, bool)> = item.levels.iter().map(|l| (l.location_id.as_str(), l.stop_sell)).collect();
    assert_eq!(flags, [("FAR", false), ("NEAR", true)]);
    let only_near = app
        .stock()
        .get_availability(proto::GetAvailabilityRequest { skus: vec!["A".into()], location_id: "NEAR".into() })
        .await
        .expect("availability")
        .into_inner();
    assert!(only_near.items[0].levels[0].stop_sell);
}

#[tokio::test]
async fn stop_sell_is_still_in_force_after_a_redis_wipe_and_rebuild() {
    // Arrange: a stop, reconciled into Postgres.
    let app = TestApp::spawn().await;
    app.stocked("A", 50).await;
    let stopped = count(&app, "A", "WH1", 38, "c-1").await.expect("count");
    app.wait_reconciled().await;

    // Act
    wipe_redis_and_wait_for_the_rebuild(&app).await;

    // Assert: still stopped, still 50; resolving lifts it.
    let l = level(&app, "A", "WH1").await;
    assert_eq!((l.on_hand, l.stop_sell), (50, true));
    assert_eq!(app.reserve("o-1", &[("A", 1)], 0).await.expect("answer").outcome(), ReserveOutcome::StopSell);
    resolve(&app, &stopped.investigation_id, 38).await.expect("resolve");
    assert_eq!(app.reserve("o-2", &[("A", 1)], 0).await.expect("answer").outcome(), ReserveOutcome::Reserved);
    assert_eq!(level(&app, "A", "WH1").await.on_hand, 38);
}

#[tokio::test]
async fn a_stop_not_yet_reconciled_is_restored_from_its_open_investigation() {
    // Arrange: no reconciler, so the stop exists in Postgres only as the
    // investigation the count opened.
    let app = TestApp::spawn_with(|c| c.reconciler_enabled = false).await;
    app.stocked("A", 50).await;
    count(&app, "A", "WH1", 38, "c-1").await.expect("count");

    // Act
    wipe_redis_and_wait_for_the_rebuild(&app).await;

    // Assert (the levels were never reconciled: they are lost, the stop is not)
    let l = level(&app, "A", "WH1").await;
    assert!(l.stop_sell, "{l:?}");
    assert!(app.levels("A").await.stop_sell);
}

#[tokio::test]
async fn abc_classes_on_a_seeded_revenue_history_match_a_hand_computed_split() {
    // Arrange: ten SKUs at 2.50, fulfilled in these quantities.
    let app = TestApp::spawn().await;
    app.location("WH1", 1).await;
    let sold = [5, 1, 9, 3, 2, 8, 0, 4, 6, 0];
    for (i, q) in sold.iter().enumerate() {
        let sku = format!("S{i:02}");
        app.catalog()
            .upsert_sku(proto::UpsertSkuRequest {
                sku: sku.clone(),
                name: sku.clone(),
                unit_price: "2.5".into(),
                ..Default::default()
            })
            .await
            .expect("sku");
        app.set_on_hand(&sku, "WH1", 20).await;
        if *q > 0 {
            app.reserve(&format!("o-{sku}"), &[(sku.as_str(), *q)], 0).await.expect("reserve");
            fulfill(&app, &format!("o-{sku}")).await;
        }
    }
    // A big sale of S06 a hundred days ago, outside the 90-day window.
    app.wait_reconciled().await;
    let db = app.db().await;
    sqlx::query(
        "INSERT INTO ledger (partition, stream_ms, stream_seq, kind, sku, location_id, on_hand_delta, reserved_delta,
                             committed_delta, in_transit_delta, occurred_at)
         VALUES (-1, 0, 0, 'fulfill', 'S06', 'WH1', -1000, 0, 0, 0, now() - interval '100 days')",
    )
    .execute(&db)
    .await
    .expect("old history");

    // Act
    let classed = app
        .cycle_counts()
        .recompute_abc_classes(proto::RecomputeAbcClassesRequest {})
        .await
        .expect("recompute")
        .into_inner();
    let mut listed = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .cycle_counts()
            .list_abc_classes(proto::ListAbcClassesRequest { page_size: 4, page_token: token })
            .await
            .expect("page")
            .into_inner();
        assert!(page.classes.len() <= 4);
        listed.extend(page.classes);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }

    // Assert: revenue 12.5, 2.5, 22.5, 7.5, 5, 20, 0, 10, 15, 0. A: the top
    // 2 (S02, S05); B: the next 3 (S08, S00, S07); C: the rest and no sales.
    assert_eq!(classed.skus, 10);
    use AbcClass::{A, B, C};
    let got: Vec<(&str, AbcClass, &str)> =
        listed.iter().map(|c| (c.sku.as_str(), c.abc_class(), c.revenue.as_str())).collect();
    assert_eq!(
        got,
        [
            ("S00", B, "12.5"),
            ("S01", C, "2.5"),
            ("S02", A, "22.5"),
            ("S03", C, "7.5"),
            ("S04", C, "5"),
            ("S05", A, "20"),
            ("S06", C, "0"),
            ("S07", B, "10"),
            ("S08", B, "15"),
            ("S09", C, "0"),
        ]
    );
    assert!(listed.iter().all(|c| !c.overridden));

    // Act: overrides, kept through a recompute, then removed.
    let set = |sku: &str, class: AbcClass| proto::SetAbcClassRequest { sku: sku.into(), abc_class: class.into() };
    let s09 = app.cycle_counts().set_abc_class(set("S09", A)).await.expect("override").into_inner();
    app.cycle_counts().recompute_abc_classes(proto::RecomputeAbcClassesRequest {}).await.expect("recompute");
    let kept = app.cycle_counts().list_abc_classes(proto::ListAbcClassesRequest::default()).await.expect("list");
    let removed =
        app.cycle_counts().set_abc_class(set("S09", AbcClass::Unspecified)).await.expect("remove").into_inner();

    // Assert
    assert_eq!((s09.abc_class(), s09.overridden), (A, true));
    let s09_kept = kept.into_inner().classes.into_iter().find(|c| c.sku == "S09").expect("S09 listed");
    assert_eq!((s09_kept.abc_class(), s09_kept.overridden), (A, true));
    assert_eq!((removed.abc_class(), removed.overridden), (C, false));
}

fn secs(t: &Option<prost_types::Timestamp>) -> i64 {
    t.as_ref().expect("timestamp").seconds
}

#[tokio::test]
async fn never_counted_skus_are_due_by_class_and_a_count_takes_them_off_the_list() {
    // Arrange: DA is an A (weekly) by hand, DC a C (quarterly); both stocked.
    let app = TestApp::spawn().await;
    app.location("WH1", 1).await;
    app.location("WH2", 2).await;
    for sku in ["DA", "DC"] {
        app.sku(sku).await;
        app.set_on_hand(sku, "WH1", 10).await;
    }
    app.set_on_hand("DC", "WH2", 10).await;
    let a = proto::SetAbcClassRequest { sku: "DA".into(), abc_class: AbcClass::A.into() };
    app.cycle_counts().set_abc_class(a).await.expect("override");
    app.wait_reconciled().await;
    let due = |loc: &str, size: i32, token: String| proto::ListDueCountsRequest {
        location_id: loc.into(),
        page_size: size,
        page_token: token,
    };

    // Act
    let before = app.cycle_counts().list_due_counts(due("WH1", 0, String::new())).await.expect("due").into_inner();
    count(&app, "DA", "WH1", 10, "c-da").await.expect("count");
    let after = app.cycle_counts().list_due_counts(due("WH1", 0, String::new())).await.expect("due").into_inner();
    let first = app.cycle_counts().list_due_counts(due("", 1, String::new())).await.expect("page").into_inner();
    let second =
        app.cycle_counts().list_due_counts(due("", 1, first.next_page_token.clone())).await.expect("page").into_inner();

    // Assert: never counted, so due, within their class's period; blind.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64;
    let today = now - now % 86_400;
    let listed: Vec<(&str, AbcClass)> = before.counts.iter().map(|c| (c.sku.as_str(), c.abc_class())).collect();
    assert_eq!(listed, [("DA", AbcClass::A), ("DC", AbcClass::C)]);
    for (c, days) in before.counts.iter().zip([7, 90]) {
        assert!(c.last_counted_at.is_none());
        let due_at = secs(&c.due_at);
        assert!(due_at <= today && due_at > today - days * 86_400, "{c:?}");
        assert_eq!(c.overdue, due_at < today);
    }
    let after: Vec<&str> = after.counts.iter().map(|c| c.sku.as_str()).collect();
    assert_eq!(after, ["DC"], "counted today: not due again for a while");
    let pages: Vec<(&str, &str)> =
        first.counts.iter().chain(&second.counts).map(|c| (c.location_id.as_str(), c.sku.as_str())).collect();
    assert_eq!(pages, [("WH1", "DC"), ("WH2", "DC")]);
    assert!(!first.next_page_token.is_empty());
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_changes_nothing() {
    // Arrange
    let app = TestApp::spawn().await;
    app.stocked("A", 50).await;
    let submit = |sku: &str, counted: i64, by: &str| proto::SubmitCountRequest {
        sku: sku.into(),
        location_id: "WH1".into(),
        counted,
        counted_by: by.into(),
        operation_id: String::new(),
    };

    // Act / Assert: the fields of a count.
    let cc = app.cycle_counts();
    for (req, fields) in [
        (submit("A", -1, "Ana"), vec!["counted"]),
        (submit("A", 1_000_000_001, "Ana"), vec!["counted"]),
        (submit("A", 5, ""), vec!["counted_by"]),
        (submit("A", 5, "Ana\u{7}"), vec!["counted_by"]),
        (submit("A", 5, &"x".repeat(101)), vec!["counted_by"]),
        (submit("a b", -3, ""), vec!["sku", "counted", "counted_by"]),
    ] {
        let e = cc.clone().submit_count(req).await.expect_err("refused");
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&e), fields);
    }
    let unknown_sku = count(&app, "NOPE", "WH1", 5, "").await.expect_err("unknown sku");
    assert_eq!(unknown_sku.code(), Code::NotFound);
    let unknown_location = count(&app, "A", "NOWHERE", 5, "").await.expect_err("unknown location");
    assert_eq!(unknown_location.code(), Code::NotFound);
    assert_eq!(level(&app, "A", "WH1").await.on_hand, 50, "nothing changed");

    // Investigations: unknown, resolved twice, bad fields.
    let unknown = resolve(&app, "no-such-investigation", 5).await.expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);
    let opened = count(&app, "A", "WH1", 40, "c-1").await.expect("count");
    let again = count(&app, "A", "WH1", 41, "c-2").await.expect_err("counting under investigation");
    assert_eq!(again.code(), Code::FailedPrecondition);
    let reused = count(&app, "A", "WH1", 41, "c-1").await.expect("the same op answers the same");
    assert_eq!(reused.investigation_id, opened.investigation_id);
    let bad = app
        .cycle_counts()
        .resolve_investigation(proto::ResolveInvestigationRequest {
            investigation_id: "bad id".into(),
            accepted_on_hand: -1,
            resolved_by: String::new(),
            note: "a\u{0}b".into(),
        })
        .await
        .expect_err("bad fields");
    assert_eq!(violated_fields(&bad), ["investigation_id", "accepted_on_hand", "resolved_by", "note"]);
    resolve(&app, &opened.investigation_id, 40).await.expect("resolve");
    let twice = resolve(&app, &opened.investigation_id, 45).await.expect_err("resolved twice");
    assert_eq!(twice.code(), Code::FailedPrecondition);
    assert_eq!(level(&app, "A", "WH1").await.on_hand, 40, "the second resolution set nothing");
    app.sku("B").await;
    let other_sku = count(&app, "B", "WH1", 3, "c-1").await.expect_err("op id of another count");
    assert_eq!(other_sku.code(), Code::FailedPrecondition);

    // Classes and lists.
    let set = proto::SetAbcClassRequest { sku: "A".into(), abc_class: 9 };
    assert_eq!(violated_fields(&cc.clone().set_abc_class(set).await.expect_err("bad class")), ["abc_class"]);
    let set = proto::SetAbcClassRequest { sku: "NOPE".into(), abc_class: AbcClass::A.into() };
    assert_eq!(cc.clone().set_abc_class(set).await.expect_err("unknown sku").code(), Code::NotFound);
    let list = proto::ListInvestigationsRequest { status: 7, page_size: -1, page_token: "zz".into() };
    let e = cc.clone().list_investigations(list).await.expect_err("bad list");
    assert_eq!(violated_fields(&e), ["status", "page_size", "page_token"]);
    let due = proto::ListDueCountsRequest { location_id: "a b".into(), page_size: 0, page_token: "41".into() };
    let e = cc.clone().list_due_counts(due).await.expect_err("bad due");
    assert_eq!(violated_fields(&e), ["location_id", "page_token"]);
}

#[tokio::test]
async fn counts_discrepancies_investigations_and_stops_are_measured() {
    // Arrange
    let app = TestApp::spawn().await;
    app.stocked("A", 50).await;
    app.sku("B").await;
    app.set_on_hand("B", "WH1", 100).await;

    // Act
    count(&app, "A", "WH1", 38, "c-a").await.expect("count");
    count(&app, "B", "WH1", 100, "c-b").await.expect("count");
    count(&app, "B", "WH1", 100, "c-b").await.expect("the same count again");

    // Assert
    let (status, page) = http_get(app.http_addr, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(metric(&page, "stockd_cycle_counts_total{action=\"STOP_SELL\"}"), 1.0);
    assert_eq!(metric(&page, "stockd_cycle_counts_total{action=\"MATCHED\"}"), 1.0, "a resubmission is not a count");
    assert_eq!(metric(&page, "stockd_count_discrepancies_total{abc_class=\"C\"}"), 1.0);
    assert_eq!(metric(&page, "stockd_open_investigations"), 1.0);
    assert_eq!(metric(&page, "stockd_stopped_sku_locations"), 1.0);
    let health = tonic_health::pb::health_client::HealthClient::new(app.channel.clone())
        .check(tonic_health::pb::HealthCheckRequest { service: "inventory.v1.CycleCountService".into() })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(health.status(), tonic_health::pb::health_check_response::ServingStatus::Serving);
}
