//! HTTP/2 and connection limits on both ports (issue 17): what a client
//! that opens streams without bodies, does not read its responses, stays
//! idle or sends slowly can hold, and what it sees.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::raw_h2::{
    ACK, H2, PING, SETTINGS, closed_within, grpc_message, grpc_status, raw_h2, read_frame, write_frame,
};
use common::{TestApp, eventually, http_get, metric};
use stockd::grpc::proto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const AVAILABILITY: &str = "/inventory.v1.StockService/GetAvailability";
const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
/// gRPC's DEADLINE_EXCEEDED.
const DEADLINE_EXCEEDED: i32 = 4;

fn availability_of(sku: &str) -> Bytes {
    grpc_message(&proto::GetAvailabilityRequest { skus: vec![sku.into()], location_id: String::new() })
}

fn health_check() -> Bytes {
    grpc_message(&tonic_health::pb::HealthCheckRequest { service: String::new() })
}

async fn scrape(app: &TestApp, series: &str) -> f64 {
    let (_, page) = http_get(app.http_addr, "/metrics").await;
    metric(&page, series)
}

/// The answer to an HTTP/1.1 GET on a fresh connection, if any (None when
/// the connection is closed first).
async fn try_get(addr: std::net::SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: stockd\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    text.starts_with("HTTP/1.1 200").then_some(text)
}

/// Whether an HTTP/1.1 GET on a fresh connection gets an answer at all.
async fn http_answers(addr: std::net::SocketAddr) -> bool {
    try_get(addr, "/healthz").await.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_with_headers_and_no_body_on_one_connection_leave_the_request_slots_to_other_clients() {
    // Arrange: the default slots (1,024) and streams per connection (200).
    let app = TestApp::spawn_with(|c| c.request_body_timeout = Duration::from_secs(1)).await;
    app.stocked("A", 10).await;
    let mut attacker = H2::connect(app.addr, None).await.expect("h2 handshake");

    // Act: 1,100 streams that send their headers and never a body, on one
    // connection (h2 queues those over the server's limit and opens each as
    // soon as one ends).
    let answered = Arc::new(AtomicUsize::new(0));
    let mut answers = Vec::new();
    let mut bodies = Vec::new();
    let request = attacker.request(AVAILABILITY);
    for _ in 0..1100 {
        attacker.send = attacker.send.clone().ready().await.expect("stream slot");
        let (response, body) = attacker.send.send_request(request.clone(), false).expect("send headers");
        bodies.push(body);
        let answered = answered.clone();
        answers.push(tokio::spawn(async move {
            let r = response.await.expect("an answer");
            answered.fetch_add(1, Ordering::SeqCst);
            grpc_status(r.headers())
        }));
    }
    // Let the first ones reach the server.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Meanwhile, 100 calls from another client, 10 at a time.
    let mut ok = 0;
    for _ in 0..10 {
        let calls = (0..10).map(|_| {
            let mut stock = app.stock();
            async move {
                let mut req = tonic::Request::new(proto::GetAvailabilityRequest {
                    skus: vec!["A".into()],
                    location_id: String::new(),
                });
                req.set_timeout(Duration::from_secs(20));
                stock.get_availability(req).await
            }
        });
        ok += futures::future::join_all(calls).await.iter().filter(|r| r.is_ok()).count();
    }

    let slots_held = scrape(&app, "stockd_calls_in_progress").await;

    // Assert: the other client was served; the streams without a body held
    // no request slot; the connection was told its stream limit; every
    // body-less stream was ended by the body timeout.
    assert!(ok >= 95, "only {ok} of 100 calls from another client succeeded");
    assert!(answered.load(Ordering::SeqCst) < 1100, "the attack was still going on");
    assert_eq!(slots_held, 0.0, "streams waiting for their body hold no slot");
    assert_eq!(attacker.advertised_max_streams(), 200);
    for a in answers {
        let code = tokio::time::timeout(Duration::from_secs(120), a).await.expect("answered").expect("task");
        assert_eq!(code, Some(DEADLINE_EXCEEDED));
    }
    drop(bodies);
    assert_eq!(
        attacker.unary(AVAILABILITY, availability_of("A")).await.expect("call"),
        0,
        "the connection still works"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_holds_at_most_its_stream_limit_of_responses() {
    // Arrange: a short stream limit; no send timeout during the test.
    let app = TestApp::spawn_with(|c| {
        c.max_concurrent_streams = 20;
        c.send_timeout = Duration::from_secs(600);
    })
    .await;
    app.stocked("A", 10).await;
    // A receive window of 0: the server can send headers, never data.
    let client = H2::connect(app.addr, Some(0)).await.expect("h2 handshake");

    // Act: 30 whole requests; their responses are never read.
    let answered = Arc::new(AtomicUsize::new(0));
    let sender = {
        let answered = answered.clone();
        let mut send = client.send.clone();
        let request = client.request(AVAILABILITY);
        tokio::spawn(async move {
            let mut kept = Vec::new();
            for _ in 0..30 {
                send = send.ready().await.expect("stream slot");
                let (response, mut body) = send.send_request(request.clone(), false).expect("send headers");
                body.send_data(availability_of("A"), true).expect("send message");
                let answered = answered.clone();
                kept.push(tokio::spawn(async move {
                    let r = response.await.expect("headers");
                    answered.fetch_add(1, Ordering::SeqCst);
                    // Hold the response, unread.
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    drop(r);
                }));
            }
            kept
        })
    };

    // Assert: the connection was told 20; 20 responses wait (each holding its
    // request slot, which bounds what unread responses can hold across all
    // connections), the other 10 requests wait in the client.
    assert!(
        eventually(Duration::from_secs(30), || async { answered.load(Ordering::SeqCst) >= 20 }).await,
        "20 responses started"
    );
    assert_eq!(client.advertised_max_streams(), 20);
    assert!(
        eventually(Duration::from_secs(30), || async { scrape(&app, "stockd_calls_in_progress").await == 20.0 }).await,
        "the 20 unread responses hold their slots"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(answered.load(Ordering::SeqCst), 20, "no stream beyond the limit was answered");
    assert!(!client.is_closed());

    // A client that goes away takes its held responses with it.
    client.kill();
    for t in sender.await.expect("sender") {
        t.abort();
    }
    assert!(
        eventually(Duration::from_secs(30), || async { scrape(&app, "stockd_calls_in_progress").await == 0.0 }).await,
        "the slots came back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_responses_are_not_read_is_closed_after_the_send_timeout() {
    // Arrange
    let app = TestApp::spawn_with(|c| c.send_timeout = Duration::from_secs(1)).await;
    app.stocked("A", 10).await;
    let mut client = H2::connect(app.addr, Some(0)).await.expect("h2 handshake");

    // Act: a few calls whose responses cannot be sent (window 0).
    let mut held = Vec::new();
    for _ in 0..5 {
        client.send = client.send.clone().ready().await.expect("stream slot");
        let (response, mut body) = client.send.send_request(client.request(AVAILABILITY), false).expect("headers");
        body.send_data(availability_of("A"), true).expect("message");
        held.push((response, body));
    }

    // Assert: the server closes the connection, its slots come back, and
    // other clients are served.
    assert!(eventually(Duration::from_secs(30), || async { client.is_closed() }).await, "connection closed");
    assert!(
        eventually(Duration::from_secs(30), || async {
            scrape(&app, r#"stockd_connections_closed_total{port="grpc",reason="send_timeout"}"#).await == 1.0
        })
        .await
    );
    assert!(
        eventually(Duration::from_secs(30), || async { scrape(&app, "stockd_calls_in_progress").await == 0.0 }).await
    );
    assert_eq!(app.total("A").await.on_hand, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_grpc_connection_is_closed_after_the_idle_timeout_and_a_busy_one_is_not() {
    // Arrange
    let app = TestApp::spawn_with(|c| c.idle_timeout = Duration::from_secs(3)).await;
    let mut idle = H2::connect(app.addr, None).await.expect("h2 handshake");
    assert_eq!(idle.unary(HEALTH_CHECK, health_check()).await.expect("call"), 0);
    let mut silent = TcpStream::connect(app.addr).await.expect("connect");
    let mut busy = H2::connect(app.addr, None).await.expect("h2 handshake");

    // Act: one connection calls every 100 ms for 8 s; the others do nothing.
    for _ in 0..80 {
        assert_eq!(busy.unary(HEALTH_CHECK, health_check()).await.expect("busy call"), 0);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Assert
    assert!(eventually(Duration::from_secs(30), || async { idle.is_closed() }).await, "idle h2 connection closed");
    assert!(closed_within(&mut silent, Duration::from_secs(30)).await, "silent TCP connection closed");
    assert!(!busy.is_closed(), "a connection making calls stays open");
    // The idle and the silent connection, and the test app's own (idle) channel.
    assert_eq!(scrape(&app, r#"stockd_connections_closed_total{port="grpc",reason="idle"}"#).await, 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http_connection_is_closed_after_the_idle_timeout() {
    // Arrange: a long header timeout, so only the idle timeout can close.
    let app = TestApp::spawn_with(|c| {
        c.idle_timeout = Duration::from_secs(1);
        c.http_header_timeout = Duration::from_secs(600);
    })
    .await;
    let mut kept_alive = TcpStream::connect(app.http_addr).await.expect("connect");
    kept_alive.write_all(b"GET /healthz HTTP/1.1\r\nHost: stockd\r\n\r\n").await.expect("request");
    let mut buf = [0u8; 1024];
    let n = kept_alive.read(&mut buf).await.expect("response");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let mut silent = TcpStream::connect(app.http_addr).await.expect("connect");

    // Act / Assert
    assert!(closed_within(&mut kept_alive, Duration::from_secs(30)).await, "kept-alive connection closed");
    assert!(closed_within(&mut silent, Duration::from_secs(30)).await, "silent connection closed");
    assert_eq!(scrape(&app, r#"stockd_connections_closed_total{port="http",reason="idle"}"#).await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_request_whose_headers_arrive_too_slowly_is_closed() {
    // Arrange: a long idle timeout, so only the header timeout can close.
    let app = TestApp::spawn_with(|c| {
        c.idle_timeout = Duration::from_secs(600);
        c.http_header_timeout = Duration::from_secs(1);
    })
    .await;
    let mut slow = TcpStream::connect(app.http_addr).await.expect("connect");

    // Act: half a request, then nothing.
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: st").await.expect("partial request");

    // Assert
    assert!(closed_within(&mut slow, Duration::from_secs(30)).await, "slow request closed");
    let (status, _) = http_get(app.http_addr, "/healthz").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_closed_at_once_on_both_ports() {
    // Arrange: 3 connections per port; the test app's own gRPC channel holds one.
    let app = TestApp::spawn_with(|c| c.max_connections = 3).await;
    let first = H2::connect(app.addr, None).await.expect("second gRPC connection");
    let _second = H2::connect(app.addr, None).await.expect("third gRPC connection");
    let mut http_held = Vec::new();
    for _ in 0..3 {
        http_held.push(TcpStream::connect(app.http_addr).await.expect("connect"));
    }
    // (Connections are accepted in the order they were made: these come first.)

    // Act / Assert: one more is closed at once, on each port.
    let mut over = TcpStream::connect(app.addr).await.expect("TCP connect");
    assert!(closed_within(&mut over, Duration::from_secs(30)).await, "gRPC connection over the cap closed");
    assert!(H2::connect(app.addr, None).await.is_err(), "no HTTP/2 handshake over the cap");
    assert!(!http_answers(app.http_addr).await, "HTTP connection over the cap closed");
    assert!(!first.is_closed(), "connections within the cap stay open");

    // A closed connection makes room.
    drop(first);
    drop(http_held.pop());
    assert!(
        eventually(Duration::from_secs(30), || async {
            match H2::connect(app.addr, None).await {
                Ok(mut c) => c.unary(HEALTH_CHECK, health_check()).await.is_ok(),
                Err(_) => false,
            }
        })
        .await,
        "a gRPC connection is accepted again"
    );
    assert!(eventually(Duration::from_secs(30), || http_answers(app.http_addr)).await, "HTTP answers again");
    drop(http_held);
    let mut page = None;
    for _ in 0..300 {
        page = try_get(app.http_addr, "/metrics").await;
        if page.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page = page.expect("the metrics page, once the held connections are gone");
    assert!(metric(&page, r#"stockd_connections_closed_total{port="grpc",reason="over_limit"}"#) >= 2.0);
    assert!(metric(&page, r#"stockd_connections_closed_total{port="http",reason="over_limit"}"#) >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_pings_a_quiet_connection_and_closes_it_when_the_ping_goes_unanswered() {
    // Arrange: fast pings; a long idle timeout, so only the ping can close.
    let app = TestApp::spawn_with(|c| {
        c.keepalive_interval = Duration::from_millis(300);
        c.keepalive_timeout = Duration::from_millis(500);
        c.idle_timeout = Duration::from_secs(600);
    })
    .await;
    let mut s = raw_h2(app.addr).await;

    // Act: acknowledge the server's SETTINGS, then wait for its PING.
    let mut pinged = false;
    let wait = async {
        while let Some(frame) = read_frame(&mut s).await {
            if frame.kind == SETTINGS && frame.flags & ACK == 0 {
                write_frame(&mut s, SETTINGS, ACK, &[]).await;
            }
            if frame.kind == PING && frame.flags & ACK == 0 && frame.payload.len() == 8 {
                pinged = true;
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(30), wait).await;

    // Assert: pinged; not answering closes the connection.
    assert!(pinged, "the server sent a PING");
    assert!(closed_within(&mut s, Duration::from_secs(30)).await, "closed after the unanswered PING");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_client_calls_again_after_its_idle_connection_was_closed() {
    // Arrange: the test app's channel (tonic) makes a call, then sits idle.
    let app = TestApp::spawn_with(|c| c.idle_timeout = Duration::from_secs(1)).await;
    app.stocked("A", 10).await;
    let closed = r#"stockd_connections_closed_total{port="grpc",reason="idle"}"#;
    assert!(eventually(Duration::from_secs(30), || async { scrape(&app, closed).await >= 1.0 }).await);

    // Act: the next call goes out on a closed connection.
    let after = app.total("A").await;

    // Assert: the channel reconnected; the call succeeded.
    assert_eq!(after.on_hand, 10);
}
