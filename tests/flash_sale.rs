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
