//! The reason stockd exists: many buyers, little stock, nobody oversold.

mod common;

use std::collections::HashMap;

use common::TestApp;
use futures::future::join_all;
use rand::{Rng, SeedableRng};
use stockd::grpc::proto::{self, ReserveOutcome};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_buyers_get_exactly_the_hundred_units_on_hand() {
    // Arrange
    let app = TestApp::spawn().await;
    app.stocked("FLASH-1", 100).await;

    // Act: 1,000 buyers at once, one unit each.
    let calls = (0..1000).map(|i| {
        let app = &app;
        async move { app.reserve(&format!("order-{i}"), &[("FLASH-1", 1)], 0).await }
    });
    let results = join_all(calls).await;

    // Assert
    let mut reserved = 0;
    let mut short = 0;
    for r in results {
        let r = r.expect("no call fails");
        match r.outcome() {
            ReserveOutcome::Reserved => reserved += 1,
            ReserveOutcome::InsufficientStock => short += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(reserved, 100);
    assert_eq!(short, 900);
    let total = app.total("FLASH-1").await;
    assert_eq!((total.on_hand, total.reserved, total.available), (100, 100, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_multi_line_orders_over_ten_skus_never_oversell() {
    // Arrange: ten SKUs with 20..=60 units each.
    let app = TestApp::spawn().await;
    app.location("WH1", 1).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut stock = HashMap::new();
    for s in 0..10 {
        let sku = format!("SKU-{s}");
        let qty = rng.random_range(20..=60);
        app.sku(&sku).await;
        app.set_on_hand(&sku, "WH1", qty).await;
        stock.insert(sku, qty);
    }
    let orders: Vec<Vec<(String, i64)>> = (0..600)
        .map(|_| {
            let n = rng.random_range(1..=4);
            let mut lines: Vec<(String, i64)> = Vec::new();
            for _ in 0..n {
                let sku = format!("SKU-{}", rng.random_range(0..10));
                if !lines.iter().any(|(s, _)| *s == sku) {
                    lines.push((sku, rng.random_range(1..=3)));
                }
            }
            lines
        })
        .collect();

    // Act
    let calls = orders.iter().enumerate().map(|(i, lines)| {
        let app = &app;
        async move {
            let lines: Vec<(&str, i64)> = lines.iter().map(|(s, q)| (s.as_str(), *q)).collect();
            (i, app.reserve(&format!("multi-{i}"), &lines, 0).await)
        }
    });
    let results = join_all(calls).await;

    // Assert: the held quantities per SKU equal what Redis says is reserved,
    // and never exceed the stock.
    let mut held: HashMap<String, i64> = HashMap::new();
    for (i, r) in results {
        let r = r.expect("no call fails");
        if r.outcome() == ReserveOutcome::Reserved {
            for (sku, q) in &orders[i] {
                *held.entry(sku.clone()).or_default() += q;
            }
        } else {
            assert_eq!(r.outcome(), ReserveOutcome::InsufficientStock);
            assert!(r.reservation.is_none());
        }
    }
    for (sku, on_hand) in &stock {
        let total = app.total(sku).await;
        let h = held.get(sku).copied().unwrap_or(0);
        assert_eq!(total.reserved, h, "{sku}: reserved equals the sum of granted lines");
        assert!(total.reserved <= *on_hand, "{sku} oversold: {} > {on_hand}", total.reserved);
        assert!(total.available >= 0, "{sku}");
    }
    assert!(held.values().sum::<i64>() > 0, "some orders were granted");
}

#[tokio::test]
async fn a_short_line_fails_the_whole_order_and_holds_nothing() {
    // Arrange
    let app = TestApp::spawn().await;
    app.stocked("A", 10).await;
    app.sku("B").await;
    app.set_on_hand("B", "WH1", 2).await;

    // Act
    let r = app.reserve("o-1", &[("A", 5), ("B", 3)], 0).await.expect("answer");

    // Assert
    assert_eq!(r.outcome(), ReserveOutcome::InsufficientStock);
    assert!(r.reservation.is_none());
    assert_eq!(
        r.shortages,
        vec![proto::Shortage { sku: "B".into(), location_id: String::new(), requested: 3, available: 2 }]
    );
    assert_eq!(app.total("A").await.reserved, 0);
    assert_eq!(app.total("B").await.reserved, 0);
    let err = app
        .reservations()
        .get_reservation(proto::GetReservationRequest { order_id: "o-1".into() })
        .await
        .expect_err("no reservation was made");
    assert_eq!(err.code(), tonic::Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserves_coalesced_into_shared_script_calls_stay_all_or_nothing_each() {
    // Arrange: one script call in flight at a time, so concurrent calls queue
    // and share the next one. A has plenty, B only 3.
    let app = TestApp::spawn_with(|c| c.reserve_calls = 1).await;
    app.stocked("BATCH-A", 1000).await;
    app.stocked("BATCH-B", 3).await;

    // Act: 200 calls at once, of four kinds: one A; A and B (B runs out
    // after three, so the rest are short and must give back the A they
    // took first); pairs with the same order id; A with a SKU nobody
    // registered.
    let order = |i: usize| match i % 4 {
        0 => (format!("a-{i}"), vec![("BATCH-A", 1)]),
        1 => (format!("ab-{i}"), vec![("BATCH-A", 1), ("BATCH-B", 1)]),
        2 => (format!("dup-{}", i / 8), vec![("BATCH-A", 1)]),
        _ => (format!("unknown-{i}"), vec![("BATCH-A", 1), ("NO-SUCH-SKU", 1)]),
    };
    let calls = (0..200).map(|i| {
        let app = &app;
        let (id, lines) = order(i);
        async move { (id.clone(), app.reserve(&id, &lines, 0).await.expect("no call fails")) }
    });
    let results = join_all(calls).await;

    // Assert: what the answers say was held is exactly what the levels hold
    // (an order id reserved twice is one reservation, answered twice).
    let mut held: HashMap<&str, &proto::Reservation> = HashMap::new();
    let mut by_dup: HashMap<&str, Vec<&proto::ReserveResponse>> = HashMap::new();
    for (id, r) in &results {
        if r.outcome() == ReserveOutcome::Reserved {
            held.insert(id, r.reservation.as_ref().expect("a reservation"));
        }
        if id.starts_with("unknown-") {
            assert_eq!(r.outcome(), ReserveOutcome::UnknownSku, "{id}");
        }
        if id.starts_with("dup-") {
            by_dup.entry(id).or_default().push(r);
        }
    }
    let (mut held_a, mut held_b) = (0, 0);
    for line in held.values().flat_map(|r| &r.lines) {
        match line.sku.as_str() {
            "BATCH-A" => held_a += line.quantity,
            "BATCH-B" => held_b += line.quantity,
            other => panic!("held an unexpected sku {other}"),
        }
    }
    let (a, b) = (app.total("BATCH-A").await, app.total("BATCH-B").await);
    assert_eq!((a.reserved, b.reserved), (held_a, held_b));
    assert_eq!(held_a, 50 + 3 + 25, "every single-A order, the three A+B that fit, one per duplicated id");
    assert_eq!(a.available, 1000 - held_a);
    assert_eq!((b.reserved, b.available), (3, 0), "B sells out");
    assert_eq!(by_dup.len(), 25);
    for (id, answers) in &by_dup {
        assert_eq!(answers.len(), 2, "{id}");
        assert_eq!(answers[0].outcome(), answers[1].outcome(), "{id}");
        if answers[0].outcome() == ReserveOutcome::Reserved {
            let created = |r: &proto::ReserveResponse| r.reservation.as_ref().and_then(|x| x.created_at);
            assert_eq!(created(answers[0]), created(answers[1]), "{id} was reserved twice");
        }
    }
    // And the calls were in fact coalesced: fewer script calls than orders.
    let (_, page) = common::http_get(app.http_addr, "/metrics").await;
    let (orders, script_calls) = (
        common::metric(&page, "stockd_reserve_batch_orders_sum"),
        common::metric(&page, "stockd_reserve_batch_orders_count"),
    );
    assert!(orders >= 200.0, "every Reserve went through a batch: {orders}");
    assert!(script_calls < orders, "{script_calls} script calls for {orders} orders");
}
