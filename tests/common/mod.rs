//! Test harness: a real stockd on port 0 against real Redis and Postgres,
//! isolated per test (own Redis key prefix, own Postgres schema), and
//! throw-away redis-server instances for tests that stop one.
//!
//! `TEST_REDIS_URL` (default redis://127.0.0.1:6379) and `TEST_DATABASE_URL`
//! (default postgres://postgres@127.0.0.1:5432/test) name the shared servers;
//! nothing here flushes or stops them.

#![allow(dead_code)]

pub mod pg_server;
pub mod raw_h2;
pub mod redis_server;

use std::sync::Arc;
use std::time::Duration;

use stockd::config::Config;
use stockd::grpc::proto;
use stockd::grpc::proto::catalog_service_client::CatalogServiceClient;
use stockd::grpc::proto::cycle_count_service_client::CycleCountServiceClient;
use stockd::grpc::proto::reservation_service_client::ReservationServiceClient;
use stockd::grpc::proto::stock_service_client::StockServiceClient;
use stockd::reconcile::ReconcileStats;
use stockd::reservation::Engine;
use stockd::startup::Application;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// The shared Redis.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The shared Postgres database tests make their schemas in.
pub fn database_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A config isolated for one test: unique key prefix and schema, port 0,
/// fast sweeps and health probes.
pub fn test_config() -> Config {
    let id = uuid::Uuid::new_v4().simple().to_string();
    Config {
        redis_url: redis_url(),
        database_url: database_url(),
        database_schema: Some(format!("t_{}", &id[..16])),
        redis_prefix: format!("t:{}", &id[..16]),
        partitions: 32,
        grpc_addr: "127.0.0.1:0".parse().expect("addr"),
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        sweep_interval: Duration::from_millis(200),
        health_interval: Duration::from_millis(200),
        redis_timeout: Duration::from_millis(1500),
        ..Config::default()
    }
}

/// A running stockd and clients to it. Dropping it stops the server and
/// removes its schema and keys.
pub struct TestApp {
    pub addr: std::net::SocketAddr,
    /// The HTTP side (/metrics, /healthz, /readyz).
    pub http_addr: std::net::SocketAddr,
    pub engine: Arc<Engine>,
    /// The reconciler's counters this app exports (a reconciler a test
    /// drives by hand can share them, so /metrics and /readyz show its work).
    pub reconcile: Arc<ReconcileStats>,
    pub config: Config,
    pub channel: Channel,
    stop: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    /// Whether Drop removes the schema and keys (false after `stop_keeping_data`).
    clean_on_drop: bool,
}

impl TestApp {
    /// Starts stockd with the test config.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// Starts stockd with the test config changed by `f`.
    pub async fn spawn_with(f: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = test_config();
        f(&mut config);
        Self::spawn_on(config).await
    }

    /// Starts stockd on an existing config (e.g. to restart over the same data).
    pub async fn spawn_on(config: Config) -> TestApp {
        Self::launch(config, true).await
    }

    /// Builds and runs stockd; `connect` makes `channel` connect now (a TLS
    /// server needs its own channel, so its plaintext one stays lazy).
    async fn launch(config: Config, connect: bool) -> TestApp {
        if let Ok(filter) = std::env::var("STOCKD_TEST_LOG") {
            stockd::telemetry::init(&filter, stockd::config::LogFormat::Text);
        }
        migrate(&config).await;
        let app = Application::build(config.clone()).await.expect("stockd builds");
        let addr = app.addr();
        let http_addr = app.http_addr();
        let engine = app.state().engine.clone();
        let reconcile = app.state().reconcile.clone();
        let stop = CancellationToken::new();
        let handle = tokio::spawn(app.run_until_stopped(stop.clone()));
        let endpoint =
            Channel::from_shared(format!("http://{addr}")).expect("uri").connect_timeout(Duration::from_secs(5));
        let channel =
            if connect { endpoint.connect().await.expect("connects to stockd") } else { endpoint.connect_lazy() };
        TestApp { addr, http_addr, engine, reconcile, config, channel, stop, handle: Some(handle), clean_on_drop: true }
    }

    pub fn reservations(&self) -> ReservationServiceClient<Channel> {
        ReservationServiceClient::new(self.channel.clone())
    }

    pub fn stock(&self) -> StockServiceClient<Channel> {
        StockServiceClient::new(self.channel.clone())
    }

    pub fn catalog(&self) -> CatalogServiceClient<Channel> {
        CatalogServiceClient::new(self.channel.clone())
    }

    pub fn cycle_counts(&self) -> CycleCountServiceClient<Channel> {
        CycleCountServiceClient::new(self.channel.clone())
    }

    /// Creates a location.
    pub async fn location(&self, id: &str, priority: i32) {
        self.catalog()
            .upsert_location(proto::UpsertLocationRequest { location_id: id.into(), name: id.into(), priority })
            .await
            .expect("upsert location");
    }

    /// Creates a SKU.
    pub async fn sku(&self, sku: &str) {
        self.catalog()
            .upsert_sku(proto::UpsertSkuRequest { sku: sku.into(), name: sku.into(), ..Default::default() })
            .await
            .expect("upsert sku");
    }

    /// Sets on_hand of a SKU at a location.
    pub async fn set_on_hand(&self, sku: &str, location: &str, on_hand: i64) {
        self.stock()
            .set_on_hand(proto::SetOnHandRequest {
                sku: sku.into(),
                location_id: location.into(),
                on_hand,
                reason: proto::AdjustmentReason::Import.into(),
                operation_id: String::new(),
            })
            .await
            .expect("set on hand");
    }

    /// A location WH1 and a SKU with `on_hand` there.
    pub async fn stocked(&self, sku: &str, on_hand: i64) {
        self.location("WH1", 1).await;
        self.sku(sku).await;
        self.set_on_hand(sku, "WH1", on_hand).await;
    }

    /// The availability item of one SKU.
    pub async fn levels(&self, sku: &str) -> proto::SkuAvailability {
        self.stock()
            .get_availability(proto::GetAvailabilityRequest { skus: vec![sku.into()], location_id: String::new() })
            .await
            .expect("availability")
            .into_inner()
            .items
            .remove(0)
    }

    /// Totals of one SKU.
    pub async fn total(&self, sku: &str) -> proto::Levels {
        self.levels(sku).await.total.expect("total")
    }

    /// Reserve with a ttl in seconds (0: server default).
    pub async fn reserve(
        &self,
        order: &str,
        lines: &[(&str, i64)],
        ttl_secs: i64,
    ) -> Result<proto::ReserveResponse, tonic::Status> {
        self.reservations()
            .reserve(proto::ReserveRequest {
                order_id: order.into(),
                lines: lines
                    .iter()
                    .map(|(sku, q)| proto::ReserveLine { sku: (*sku).into(), quantity: *q, location_id: String::new() })
                    .collect(),
                ttl: (ttl_secs > 0).then_some(prost_types::Duration { seconds: ttl_secs, nanos: 0 }),
                channel: String::new(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }

    /// Stops the server but keeps its schema and keys; returns the config to
    /// start another one over the same data (which then cleans up).
    pub async fn stop_keeping_data(mut self) -> Config {
        self.clean_on_drop = false;
        self.stop.cancel();
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
        self.config.clone()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
        if self.clean_on_drop {
            cleanup(self.config.clone());
        }
    }
}

/// Creates the test schema and applies migrations.
pub async fn migrate(config: &Config) {
    let pool = stockd::db::connect(config).await.expect("postgres reachable");
    stockd::db::migrate(&pool, config).await.expect("migrations apply");
    pool.close().await;
}

/// Removes a test's Redis keys and Postgres schema. Drop cannot await, and
/// the test's runtime is blocked while Drop runs, so an open transaction of
/// the app could hold a lock DROP SCHEMA waits for: the keys are deleted on a
/// joined thread (Redis never waits for the app), the schema on a detached
/// one that finishes once the runtime has let the app's connections go.
/// Schemas a test binary did not get to drop are swept by scripts/test.sh.
pub fn cleanup(config: Config) {
    let redis_config = config.clone();
    let _ = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(delete_prefix(&redis_config.redis_url, &redis_config.redis_prefix));
    })
    .join();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(async move {
            if let Some(schema) = &config.database_schema {
                let base = Config { database_schema: None, ..config.clone() };
                if let Ok(pool) = stockd::db::connect(&base).await {
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).execute(&pool).await;
                    pool.close().await;
                }
            }
        });
    });
}

/// Deletes every key under `prefix` (SCAN + DEL; never FLUSH).
pub async fn delete_prefix(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else { return };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else { return };
    let mut cursor: u64 = 0;
    loop {
        let res: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await;
        let Ok((next, keys)) = res else { return };
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await;
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

/// Polls `f` until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The field names of a status's google.rpc.BadRequest details.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

impl TestApp {
    /// A pool on this app's schema.
    pub async fn db(&self) -> sqlx::PgPool {
        stockd::db::connect(&self.config).await.expect("postgres reachable")
    }

    /// Events still in the streams (not yet reconciled and trimmed).
    pub async fn stream_backlog(&self) -> u64 {
        self.engine.stream_lengths().await.expect("xlen").into_iter().sum()
    }

    /// Waits until every event so far is in Postgres.
    pub async fn wait_reconciled(&self) {
        let done = eventually(Duration::from_secs(20), || async { self.stream_backlog().await == 0 }).await;
        assert!(done, "the reconciler caught up");
    }
}

// ---------------------------------------------------------------------------
// Access control (tests/access.rs): TLS channels, bearer tokens, test PKI.
// ---------------------------------------------------------------------------

impl TestApp {
    /// Starts stockd like `spawn_with`, but `channel` is plain HTTP/2 and lazy
    /// (never connected unless used): for servers that speak TLS, where the
    /// eager plaintext connect of `spawn_on` has nothing to talk to.
    pub async fn spawn_lazy_with(f: impl FnOnce(&mut Config)) -> TestApp {
        let mut config = test_config();
        f(&mut config);
        Self::launch(config, false).await
    }
}

/// A TLS channel to `addr` (an IP) that trusts `ca_pem`, expects the server
/// certificate to name `localhost`, and presents `identity` (certificate and
/// key PEM) when given.
pub async fn channel_with_tls(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<Channel, tonic::transport::Error> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem)).domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Endpoint::from_shared(format!("https://127.0.0.1:{}", addr.port()))
        .expect("uri")
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
}

/// Adds `authorization: Bearer <token>` to every call (nothing when None).
#[derive(Clone)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

/// A [`Bearer`] interceptor for `token`.
pub fn bearer(token: Option<&str>) -> Bearer {
    Bearer(token.map(|t| format!("Bearer {t}").parse().expect("ascii token")))
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A throw-away directory, removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("stockd-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    /// Writes `name` in the directory and returns its path.
    pub fn file(&self, name: &str, content: &str) -> std::path::PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A test certificate authority (rcgen) that signs server and client certificates.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The CA certificate, PEM.
    pub pem: String,
}

/// A certificate and its private key, both PEM.
pub struct CertAndKey {
    pub cert: String,
    pub key: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().expect("ca key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let pem = params.self_signed(&key).expect("ca cert").pem();
        TestCa { issuer: rcgen::Issuer::new(params, key), pem }
    }

    /// A server certificate for `localhost` and 127.0.0.1.
    pub fn server(&self) -> CertAndKey {
        self.sign(vec!["localhost".into(), "127.0.0.1".into()], rcgen::ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate.
    pub fn client(&self, name: &str) -> CertAndKey {
        self.sign(vec![name.into()], rcgen::ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn sign(&self, names: Vec<String>, usage: rcgen::ExtendedKeyUsagePurpose) -> CertAndKey {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(names).expect("params");
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        CertAndKey { cert: cert.pem(), key: key.serialize_pem() }
    }
}

/// A plain HTTP/1.1 GET (no client library needed): (status, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: stockd\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// The value of one series in a Prometheus text page (0 when absent).
pub fn metric(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The stockd binary with a test config in its environment.
pub fn stockd_command(config: &Config) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_stockd"));
    cmd.env("REDIS_URL", &config.redis_url)
        .env("DATABASE_URL", &config.database_url)
        .env("STOCKD_DATABASE_SCHEMA", config.database_schema.clone().unwrap_or_default())
        .env("STOCKD_REDIS_PREFIX", &config.redis_prefix)
        .env("STOCKD_PARTITIONS", config.partitions.to_string())
        .env("STOCKD_LOG", "warn");
    cmd
}

// ---------------------------------------------------------------------------
// Replenishment (tests/replenishment.rs): suppliers, ledger history written
// with controlled times, and a local HTTP server that records notifications.
// ---------------------------------------------------------------------------

impl TestApp {
    pub fn replenishment(
        &self,
    ) -> stockd::grpc::proto::replenishment_service_client::ReplenishmentServiceClient<Channel> {
        stockd::grpc::proto::replenishment_service_client::ReplenishmentServiceClient::new(self.channel.clone())
    }

    /// Creates or updates a supplier.
    pub async fn supplier(&self, req: proto::UpsertSupplierRequest) -> proto::Supplier {
        self.catalog().upsert_supplier(req).await.expect("upsert supplier").into_inner()
    }

    /// Creates a SKU supplied by `supplier`, with `f` changing the request.
    pub async fn supplied_sku(&self, sku: &str, supplier: &str, f: impl FnOnce(&mut proto::UpsertSkuRequest)) {
        let mut req = proto::UpsertSkuRequest {
            sku: sku.into(),
            name: sku.into(),
            supplier_id: supplier.into(),
            ..Default::default()
        };
        f(&mut req);
        self.catalog().upsert_sku(req).await.expect("upsert sku");
    }
}

/// A supplier request with a name, lead time and nothing else.
pub fn supplier_request(id: &str, lead_time_days: i32) -> proto::UpsertSupplierRequest {
    proto::UpsertSupplierRequest {
        supplier_id: id.into(),
        name: format!("{id} supplies"),
        lead_time_days,
        ..Default::default()
    }
}

/// Writes ledger rows straight into Postgres, `days_ago` whole days and 12
/// hours before now (the middle of that day of the velocity window), each
/// (days_ago, kind, on_hand_delta). Tests only: it gives a SKU-location a
/// history of weeks without weeks of waiting. The stream position is
/// made up (partition -1), unique within the schema.
pub async fn write_history(db: &sqlx::PgPool, sku: &str, location: &str, rows: &[(u32, &str, i64)]) {
    let base = -i64::from(rand_u32()) * 1_000_000;
    for (i, (days_ago, kind, delta)) in rows.iter().enumerate() {
        sqlx::query(
            "INSERT INTO ledger (partition, stream_ms, stream_seq, stream_idx, kind, sku, location_id, on_hand_delta,
                                 reserved_delta, committed_delta, in_transit_delta, occurred_at)
             VALUES (-1, $1, 0, 0, $2, $3, $4, $5, 0, 0, 0,
                     now() - make_interval(days => $6) - interval '12 hours')",
        )
        .bind(base - i as i64)
        .bind(*kind)
        .bind(sku)
        .bind(location)
        .bind(*delta)
        .bind(i32::try_from(*days_ago).expect("days"))
        .execute(db)
        .await
        .expect("history row");
    }
}

fn rand_u32() -> u32 {
    let id = uuid::Uuid::new_v4();
    u32::from_le_bytes([id.as_bytes()[0], id.as_bytes()[1], id.as_bytes()[2], id.as_bytes()[3]]) >> 1
}

/// A local HTTP server that records the JSON bodies POSTed to it and answers
/// each with the next status of `plan` (then 200 once the plan runs out).
pub struct Hook {
    pub addr: std::net::SocketAddr,
    pub received: Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    /// Requests answered, failed ones included.
    pub requests: Arc<std::sync::atomic::AtomicUsize>,
    stop: CancellationToken,
}

impl Hook {
    pub async fn start(plan: Vec<u16>) -> Hook {
        use axum::extract::State;
        use axum::http::StatusCode;
        type Shared = (
            Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
            Arc<std::sync::Mutex<std::collections::VecDeque<u16>>>,
            Arc<std::sync::atomic::AtomicUsize>,
        );
        async fn record(State((received, plan, requests)): State<Shared>, body: String) -> StatusCode {
            requests.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let status = plan.lock().expect("plan").pop_front().unwrap_or(200);
            if status == 200 {
                let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
                received.lock().expect("received").push(json);
            }
            StatusCode::from_u16(status).expect("status")
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind hook");
        let addr = listener.local_addr().expect("hook addr");
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let shared: Shared = (received.clone(), Arc::new(std::sync::Mutex::new(plan.into())), requests.clone());
        let app = axum::Router::new().route("/hook", axum::routing::post(record)).with_state(shared);
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(async move { stopped.cancelled().await }).await;
        });
        Hook { addr, received, requests, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.received.lock().expect("received").clone()
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
