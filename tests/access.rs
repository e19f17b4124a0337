//! Access control on a real server: bearer tokens with roles, health and
//! reflection open without a token, TLS and mutual TLS.

mod common;

use std::time::Duration;

use common::{Bearer, CertAndKey, TempDir, TestApp, TestCa, bearer, channel_with_tls};
use stockd::grpc::proto::catalog_service_client::CatalogServiceClient;
use stockd::grpc::proto::reservation_service_client::ReservationServiceClient;
use stockd::grpc::proto::stock_service_client::StockServiceClient;
use stockd::grpc::proto::{self, AdjustmentReason, ReserveOutcome};
use tonic::Code;
use tonic::codegen::InterceptedService;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const CHECKOUT: &str = "checkout-token-0123456789abcdef";
const ADMIN: &str = "admin-token-0123456789abcdef";

/// A token file with one checkout and one admin token (and a comment).
fn token_file(dir: &TempDir) -> std::path::PathBuf {
    dir.file("tokens", &format!("# stockd tokens\n\ncheckout {CHECKOUT}\nadmin {ADMIN}\n"))
}

/// A server that requires tokens, and the directory holding the file.
async fn app_with_tokens() -> (TestApp, TempDir) {
    let dir = TempDir::new();
    let path = token_file(&dir);
    let app = TestApp::spawn_with(|c| c.auth_tokens_file = Some(path)).await;
    (app, dir)
}

fn reservations(
    channel: &Channel,
    token: Option<&str>,
) -> ReservationServiceClient<InterceptedService<Channel, Bearer>> {
    ReservationServiceClient::with_interceptor(channel.clone(), bearer(token))
}

fn stock(channel: &Channel, token: Option<&str>) -> StockServiceClient<InterceptedService<Channel, Bearer>> {
    StockServiceClient::with_interceptor(channel.clone(), bearer(token))
}

fn catalog(channel: &Channel, token: Option<&str>) -> CatalogServiceClient<InterceptedService<Channel, Bearer>> {
    CatalogServiceClient::with_interceptor(channel.clone(), bearer(token))
}

fn reserve_request(order: &str, sku: &str, quantity: i64) -> proto::ReserveRequest {
    proto::ReserveRequest {
        order_id: order.into(),
        lines: vec![proto::ReserveLine { sku: sku.into(), quantity, location_id: String::new() }],
        ttl: None,
        channel: String::new(),
    }
}

fn adjust_request(sku: &str, delta: i64) -> proto::AdjustStockRequest {
    proto::AdjustStockRequest {
        sku: sku.into(),
        location_id: "WH1".into(),
        delta,
        reason: AdjustmentReason::Received.into(),
        operation_id: String::new(),
    }
}

/// Location WH1 and `sku` with `on_hand` there, set up with the admin token.
async fn stocked(channel: &Channel, sku: &str, on_hand: i64) {
    let mut catalog = catalog(channel, Some(ADMIN));
    catalog
        .upsert_location(proto::UpsertLocationRequest { location_id: "WH1".into(), name: "WH1".into(), priority: 1 })
        .await
        .expect("admin creates a location");
    catalog
        .upsert_sku(proto::UpsertSkuRequest { sku: sku.into(), name: sku.into(), ..Default::default() })
        .await
        .expect("admin creates a sku");
    stock(channel, Some(ADMIN))
        .set_on_hand(proto::SetOnHandRequest {
            sku: sku.into(),
            location_id: "WH1".into(),
            on_hand,
            reason: AdjustmentReason::Import.into(),
            operation_id: String::new(),
        })
        .await
        .expect("admin sets on hand");
}

/// On hand of `sku` in total, read with the checkout token.
async fn on_hand(channel: &Channel, sku: &str) -> i64 {
    stock(channel, Some(CHECKOUT))
        .get_availability(proto::GetAvailabilityRequest { skus: vec![sku.into()], location_id: String::new() })
        .await
        .expect("checkout reads availability")
        .into_inner()
        .items
        .remove(0)
        .total
        .expect("total")
        .on_hand
}

async fn overall_health(channel: &Channel) -> Result<ServingStatus, tonic::Status> {
    let r = HealthClient::new(channel.clone())
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await?
        .into_inner();
    Ok(r.status())
}

#[tokio::test]
async fn a_call_without_a_token_is_unauthenticated() {
    let (app, _dir) = app_with_tokens().await;
    let e = reservations(&app.channel, None).reserve(reserve_request("o-1", "A", 1)).await.expect_err("no token");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let e = app.catalog().list_locations(proto::ListLocationsRequest::default()).await.expect_err("no token");
    assert_eq!(e.code(), Code::Unauthenticated, "a read needs a token too: {e:?}");
}

#[tokio::test]
async fn a_call_with_a_wrong_token_is_unauthenticated_and_the_message_does_not_echo_it() {
    let (app, _dir) = app_with_tokens().await;
    let wrong = "not-a-real-token-0123456789";
    let e = reservations(&app.channel, Some(wrong)).reserve(reserve_request("o-1", "A", 1)).await.expect_err("wrong");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert!(!e.message().contains(wrong), "{e:?}");
    let almost = &CHECKOUT[..CHECKOUT.len() - 1];
    let e = reservations(&app.channel, Some(almost)).reserve(reserve_request("o-1", "A", 1)).await.expect_err("prefix");
    assert_eq!(e.code(), Code::Unauthenticated, "a prefix of a token is not the token: {e:?}");
}

#[tokio::test]
async fn checkout_may_reserve_and_read() {
    let (app, _dir) = app_with_tokens().await;
    stocked(&app.channel, "A", 10).await;
    let r = reservations(&app.channel, Some(CHECKOUT))
        .reserve(reserve_request("o-1", "A", 3))
        .await
        .expect("checkout reserves")
        .into_inner();
    assert_eq!(r.outcome(), ReserveOutcome::Reserved);
    let got = reservations(&app.channel, Some(CHECKOUT))
        .get_reservation(proto::GetReservationRequest { order_id: "o-1".into() })
        .await
        .expect("checkout reads its reservation")
        .into_inner();
    assert_eq!(got.order_id, "o-1");
    let skus = catalog(&app.channel, Some(CHECKOUT))
        .list_skus(proto::ListSkusRequest::default())
        .await
        .expect("checkout lists skus")
        .into_inner();
    assert_eq!(skus.skus.len(), 1);
}

#[tokio::test]
async fn checkout_may_not_adjust_stock_or_upsert_skus() {
    let (app, _dir) = app_with_tokens().await;
    stocked(&app.channel, "A", 10).await;
    let e = stock(&app.channel, Some(CHECKOUT)).adjust_stock(adjust_request("A", 5)).await.expect_err("adjust");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(!e.message().contains(CHECKOUT), "{e:?}");
    let e = catalog(&app.channel, Some(CHECKOUT))
        .upsert_sku(proto::UpsertSkuRequest { sku: "B".into(), name: "B".into(), ..Default::default() })
        .await
        .expect_err("upsert");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert_eq!(on_hand(&app.channel, "A").await, 10, "the refused adjustment changed nothing");
    let e = catalog(&app.channel, Some(CHECKOUT))
        .get_sku(proto::GetSkuRequest { sku: "B".into() })
        .await
        .expect_err("never created");
    assert_eq!(e.code(), Code::NotFound, "the refused upsert created nothing: {e:?}");
}

#[tokio::test]
async fn admin_may_adjust_stock() {
    let (app, _dir) = app_with_tokens().await;
    stocked(&app.channel, "A", 10).await;
    stock(&app.channel, Some(ADMIN)).adjust_stock(adjust_request("A", 5)).await.expect("admin adjusts");
    assert_eq!(on_hand(&app.channel, "A").await, 15);
}

#[tokio::test]
async fn health_needs_no_token() {
    let (app, _dir) = app_with_tokens().await;
    let serving = common::eventually(Duration::from_secs(5), || async {
        matches!(overall_health(&app.channel).await, Ok(ServingStatus::Serving))
    })
    .await;
    assert!(serving, "health answers SERVING without a token: {:?}", overall_health(&app.channel).await);
}

#[tokio::test]
async fn reflection_needs_no_token_in_v1_and_v1alpha() {
    use tonic_reflection::pb::{v1, v1alpha};
    let (app, _dir) = app_with_tokens().await;

    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut stream = v1::server_reflection_client::ServerReflectionClient::new(app.channel.clone())
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("v1 reflection without a token")
        .into_inner();
    let response = stream.message().await.expect("v1 answer").expect("one message");
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) = response.message_response
    else {
        panic!("not a service list: {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.iter().any(|n| n == "inventory.v1.ReservationService"), "{names:?}");

    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1alpha::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut stream = v1alpha::server_reflection_client::ServerReflectionClient::new(app.channel.clone())
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("v1alpha reflection without a token")
        .into_inner();
    let response = stream.message().await.expect("v1alpha answer").expect("one message");
    assert!(
        matches!(
            response.message_response,
            Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(_))
        ),
        "{response:?}"
    );
}

/// A server with TLS from `ca` (and mutual TLS when `client_ca` is given),
/// optionally requiring tokens.
async fn tls_app(dir: &TempDir, server: &CertAndKey, client_ca: Option<&TestCa>, tokens: bool) -> TestApp {
    let cert = dir.file("server.pem", &server.cert);
    let key = dir.file("server.key", &server.key);
    let client_ca = client_ca.map(|ca| dir.file("client-ca.pem", &ca.pem));
    let tokens = tokens.then(|| token_file(dir));
    TestApp::spawn_lazy_with(|c| {
        c.tls_cert = Some(cert);
        c.tls_key = Some(key);
        c.tls_client_ca = client_ca;
        c.auth_tokens_file = tokens;
    })
    .await
}

/// A call over `channel`, or why it failed (connection or call).
async fn list_locations(channel: Result<Channel, tonic::transport::Error>) -> Result<(), String> {
    let channel = channel.map_err(|e| format!("connect: {e:?}"))?;
    catalog(&channel, Some(ADMIN))
        .list_locations(proto::ListLocationsRequest::default())
        .await
        .map(drop)
        .map_err(|s| format!("call: {s:?}"))
}

#[tokio::test]
async fn a_client_trusting_the_ca_calls_over_tls_and_plaintext_is_refused() {
    let dir = TempDir::new();
    let ca = TestCa::new("stockd test CA");
    let app = tls_app(&dir, &ca.server(), None, false).await;

    list_locations(channel_with_tls(app.addr, &ca.pem, None).await).await.expect("a TLS call succeeds");
    let channel = channel_with_tls(app.addr, &ca.pem, None).await.expect("connects");
    assert_eq!(overall_health(&channel).await.expect("health over TLS"), ServingStatus::Serving);

    let e = app.catalog().list_locations(proto::ListLocationsRequest::default()).await.expect_err("plaintext");
    assert!(matches!(e.code(), Code::Unavailable | Code::Unknown | Code::Internal), "{e:?}");

    let stranger = TestCa::new("another CA");
    let r = list_locations(channel_with_tls(app.addr, &stranger.pem, None).await).await;
    assert!(r.is_err(), "a client that does not trust the server's CA does not get through: {r:?}");
}

#[tokio::test]
async fn with_a_client_ca_a_client_without_a_certificate_is_refused() {
    let dir = TempDir::new();
    let ca = TestCa::new("stockd test CA");
    let app = tls_app(&dir, &ca.server(), Some(&ca), false).await;

    let r = list_locations(channel_with_tls(app.addr, &ca.pem, None).await).await;
    let why = r.expect_err("no client certificate, no call");
    // TLS 1.3: the client finishes its side of the handshake, then the server's
    // alert fails the first call; either way nothing gets through.
    assert!(why.starts_with("connect") || why.contains("CertificateRequired"), "{why}");

    let stranger = TestCa::new("another CA").client("mallory");
    let r = list_locations(channel_with_tls(app.addr, &ca.pem, Some((&stranger.cert, &stranger.key))).await).await;
    assert!(r.is_err(), "a certificate from another CA is refused: {r:?}");
}

#[tokio::test]
async fn with_a_client_ca_a_client_with_a_signed_certificate_calls_and_tokens_still_apply() {
    let dir = TempDir::new();
    let ca = TestCa::new("stockd test CA");
    let app = tls_app(&dir, &ca.server(), Some(&ca), true).await;
    let client = ca.client("checkout");

    let channel = channel_with_tls(app.addr, &ca.pem, Some((&client.cert, &client.key))).await.expect("mTLS connects");
    catalog(&channel, Some(ADMIN))
        .list_locations(proto::ListLocationsRequest::default())
        .await
        .expect("a client certificate and a token: the call succeeds");
    let e = catalog(&channel, None)
        .list_locations(proto::ListLocationsRequest::default())
        .await
        .expect_err("a certificate alone is not a token");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert_eq!(overall_health(&channel).await.expect("health over mTLS"), ServingStatus::Serving);
}
