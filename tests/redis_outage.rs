//! Redis down: calls fail fast with UNAVAILABLE, the hot path reports
//! NOT_SERVING, and both recover when Redis returns. Uses a private
//! redis-server, never the shared one.

mod common;

use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use common::{TestApp, eventually};
use stockd::grpc::proto::{self, ReserveOutcome};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

async fn status(app: &TestApp, service: &str) -> ServingStatus {
    HealthClient::new(app.channel.clone())
        .check(HealthCheckRequest { service: service.into() })
        .await
        .map(|r| r.into_inner().status())
        .unwrap_or(ServingStatus::Unknown)
}

const HOT_PATH: [&str; 3] = ["", "inventory.v1.ReservationService", "inventory.v1.StockService"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_calls_fail_fast_and_health_follows_redis() {
    // Arrange
    let mut redis = RedisServer::start().await;
    let url = redis.url();
    let app = TestApp::spawn_with(|c| {
        c.redis_url = url;
        c.redis_timeout = Duration::from_millis(500);
    })
    .await;
    app.stocked("A", 10).await;
    app.wait_reconciled().await;
    for s in HOT_PATH {
        assert_eq!(status(&app, s).await, ServingStatus::Serving, "{s:?} before");
    }

    // Act: Redis dies.
    redis.stop();

    // Assert: every hot-path call answers UNAVAILABLE, and quickly.
    let started = Instant::now();
    let reserve = app.reserve("o-1", &[("A", 1)], 0).await.expect_err("redis is down");
    assert_eq!(reserve.code(), tonic::Code::Unavailable, "{reserve:?}");
    let read = app
        .stock()
        .get_availability(proto::GetAvailabilityRequest { skus: vec!["A".into()], location_id: String::new() })
        .await
        .expect_err("redis is down");
    assert_eq!(read.code(), tonic::Code::Unavailable);
    let commit = app.reservations().commit(proto::CommitRequest { order_id: "o-1".into() }).await.expect_err("down");
    assert_eq!(commit.code(), tonic::Code::Unavailable);
    assert!(started.elapsed() < Duration::from_secs(6), "three calls took {:?}", started.elapsed());

    let not_serving = eventually(Duration::from_secs(10), || async {
        for s in HOT_PATH {
            if status(&app, s).await != ServingStatus::NotServing {
                return false;
            }
        }
        true
    })
    .await;
    assert!(not_serving, "hot path reports NOT_SERVING while Redis is down");
    assert_eq!(
        status(&app, "inventory.v1.CatalogService").await,
        ServingStatus::Serving,
        "the catalog follows Postgres, which is up"
    );

    // Act: Redis returns empty (this one keeps nothing on disk).
    redis.restart().await;

    // Assert: serving again once rebuilt from Postgres, with the stock back.
    let serving = eventually(Duration::from_secs(10), || async {
        for s in HOT_PATH {
            if status(&app, s).await != ServingStatus::Serving {
                return false;
            }
        }
        true
    })
    .await;
    assert!(serving, "hot path reports SERVING once Redis is back");
    assert_eq!(app.total("A").await.on_hand, 10, "levels rebuilt from Postgres");
    let r = app.reserve("o-2", &[("A", 1)], 0).await.expect("answered once Redis is back");
    assert_eq!(r.outcome(), ReserveOutcome::Reserved);
}
