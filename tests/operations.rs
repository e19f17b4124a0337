//! Running it: metrics, probes, load shedding, graceful shutdown.

mod common;

use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use common::{TestApp, eventually, http_get, metric, stockd_command};
use futures::future::join_all;
use stockd::grpc::proto::{self, ReserveOutcome};
use tonic::Code;

#[tokio::test]
async fn metrics_count_a_known_number_of_reservations_exactly() {
    // Arrange
    let app = TestApp::spawn().await;
    app.stocked("A", 5).await;

    // Act: 5 granted, 2 refused for stock, 1 retry of a granted order.
    for i in 0..7 {
        app.reserve(&format!("o-{i}"), &[("A", 1)], 0).await.expect("answer");
    }
    app.reserve("o-0", &[("A", 1)], 0).await.expect("retry");
    let (status, page) = http_get(app.http_addr, "/metrics").await;

    // Assert
    assert_eq!(status, 200);
    assert_eq!(metric(&page, r#"stockd_reservations_total{outcome="reserved"}"#), 5.0);
    assert_eq!(metric(&page, r#"stockd_reservations_total{outcome="insufficient_stock"}"#), 2.0);
    assert_eq!(metric(&page, r#"stockd_reservations_total{outcome="existing"}"#), 1.0);
    assert_eq!(
        metric(
            &page,
            r#"stockd_rpc_duration_seconds_count{code="OK",method="/inventory.v1.ReservationService/Reserve"}"#
        ),
        8.0
    );
    assert_eq!(metric(&page, "stockd_active_holds"), 5.0);
    assert!(metric(&page, r#"stockd_script_duration_seconds_count{script="reserve"}"#) >= 8.0);
    assert_eq!(metric(&page, "stockd_ready"), 1.0);
}

#[tokio::test]
async fn the_probes_answer_on_the_http_port() {
    let app = TestApp::spawn().await;

    let (live, _) = http_get(app.http_addr, "/healthz").await;
    let (ready, body) = http_get(app.http_addr, "/readyz").await;
    let (missing, _) = http_get(app.http_addr, "/nope").await;

    assert_eq!((live, ready, missing), (200, 200, 404));
    assert_eq!(body.trim(), "ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_concurrency_limit_calls_are_refused_at_once_and_the_service_recovers() {
    // Arrange: a private Redis we can stall, and room for 4 calls at a time.
    let redis = RedisServer::start().await;
    let url = redis.url();
    let app = TestApp::spawn_with(|c| {
        c.redis_url = url.clone();
        c.max_concurrent_requests = 4;
        c.redis_timeout = Duration::from_secs(10);
        c.health_interval = Duration::from_secs(30);
    })
    .await;
    app.stocked("A", 100).await;
    let stall = tokio::spawn(async move {
        let client = redis::Client::open(url).expect("url");
        let mut conn = client.get_multiplexed_async_connection().await.expect("conn");
        // Redis answers nothing for 2 s: the 4 calls below hold their slots.
        let stalled: redis::RedisResult<()> = redis::cmd("DEBUG").arg("SLEEP").arg(2).query_async(&mut conn).await;
        stalled.expect("DEBUG SLEEP (enabled on private servers)");
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let held: Vec<_> = (0..4)
        .map(|i| {
            let mut r = app.reservations();
            tokio::spawn(async move {
                r.reserve(proto::ReserveRequest {
                    order_id: format!("held-{i}"),
                    lines: vec![proto::ReserveLine { sku: "A".into(), quantity: 1, location_id: String::new() }],
                    ..Default::default()
                })
                .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Act: 20 more while the 4 are stuck.
    let started = Instant::now();
    let extra = join_all((0..20).map(|i| {
        let app = &app;
        async move { app.reserve(&format!("extra-{i}"), &[("A", 1)], 0).await }
    }))
    .await;
    let refused_in = started.elapsed();

    // Assert: refused at once, not queued behind Redis.
    for r in &extra {
        assert_eq!(r.as_ref().expect_err("over the limit").code(), Code::ResourceExhausted);
    }
    assert!(refused_in < Duration::from_millis(1500), "refusals took {refused_in:?}");
    let _ = stall.await;
    for h in held {
        let r = h.await.expect("task").expect("the held calls complete once Redis answers");
        assert_eq!(r.into_inner().outcome(), ReserveOutcome::Reserved);
    }
    let after = app.reserve("after", &[("A", 1)], 0).await.expect("the service recovers");
    assert_eq!(after.outcome(), ReserveOutcome::Reserved);
    assert_eq!(app.total("A").await.reserved, 5);
    let (_, page) = http_get(app.http_addr, "/metrics").await;
    assert_eq!(metric(&page, "stockd_overload_rejections_total"), 20.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_reservations_finishes_or_refuses_each_call_and_exits_cleanly() {
    // Arrange: stockd as a real process.
    let config = common::test_config();
    common::migrate(&config).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let mut child = stockd_command(&config)
        .arg("serve")
        .env("STOCKD_GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env("STOCKD_HTTP_ADDR", "127.0.0.1:0")
        .env("STOCKD_SHUTDOWN_GRACE", "10s")
        .spawn()
        .expect("starts");
    let endpoint = format!("http://127.0.0.1:{port}");
    let up = eventually(Duration::from_secs(20), || {
        let endpoint = endpoint.clone();
        async move { tonic::transport::Channel::from_shared(endpoint).expect("uri").connect().await.is_ok() }
    })
    .await;
    assert!(up, "stockd serves");
    let channel = tonic::transport::Channel::from_shared(endpoint).expect("uri").connect().await.expect("channel");
    let mut catalog = proto::catalog_service_client::CatalogServiceClient::new(channel.clone());
    catalog
        .upsert_location(proto::UpsertLocationRequest { location_id: "WH1".into(), name: "W".into(), priority: 1 })
        .await
        .expect("location");
    catalog
        .upsert_sku(proto::UpsertSkuRequest { sku: "A".into(), name: "A".into(), ..Default::default() })
        .await
        .expect("sku");
    proto::stock_service_client::StockServiceClient::new(channel.clone())
        .set_on_hand(proto::SetOnHandRequest {
            sku: "A".into(),
            location_id: "WH1".into(),
            on_hand: 100_000,
            reason: proto::AdjustmentReason::Import.into(),
            operation_id: "stock".into(),
        })
        .await
        .expect("stock");

    // Act: four buyers in a loop; SIGTERM in the middle.
    let buyers: Vec<_> = (0..4)
        .map(|b| {
            let mut client = proto::reservation_service_client::ReservationServiceClient::new(channel.clone());
            tokio::spawn(async move {
                let mut results = Vec::new();
                for i in 0..100_000 {
                    let order = format!("b{b}-{i}");
                    let r = client
                        .reserve(proto::ReserveRequest {
                            order_id: order.clone(),
                            lines: vec![proto::ReserveLine {
                                sku: "A".into(),
                                quantity: 1,
                                location_id: String::new(),
                            }],
                            ..Default::default()
                        })
                        .await;
                    let failed = r.is_err();
                    if let Err(s) = &r {
                        println!("{order}: {:?} {}", s.code(), s.message());
                    }
                    results.push((order, r.map(|r| r.into_inner().outcome()).map_err(|s| s.code())));
                    if failed {
                        break;
                    }
                }
                results
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = std::process::Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill");
    assert!(killed.success());
    let mut results = Vec::new();
    for b in buyers {
        results.extend(b.await.expect("buyer"));
    }
    let exit = tokio::task::spawn_blocking(move || child.wait()).await.expect("join").expect("wait");

    // Assert: exit 0; every call completed or was refused as UNAVAILABLE;
    // what completed is held, what was refused left nothing behind.
    assert!(exit.success(), "exit status {exit:?}");
    let granted: Vec<&String> = results.iter().filter(|(_, r)| r.is_ok()).map(|(o, _)| o).collect();
    let refused: Vec<&String> = results.iter().filter(|(_, r)| r.is_err()).map(|(o, _)| o).collect();
    assert!(!granted.is_empty(), "calls went through before the signal");
    for (order, r) in &results {
        match r {
            Ok(outcome) => assert_eq!(*outcome, ReserveOutcome::Reserved, "{order}"),
            Err(code) => assert_eq!(*code, Code::Unavailable, "{order} refused with {code:?}"),
        }
    }
    let app = TestApp::spawn_on(config).await;
    assert_eq!(app.total("A").await.reserved, granted.len() as i64, "exactly the granted orders are held");
    for order in refused {
        let r = app.reservations().get_reservation(proto::GetReservationRequest { order_id: order.clone() }).await;
        assert_eq!(r.expect_err("nothing half-made").code(), Code::NotFound, "{order}");
    }
}
