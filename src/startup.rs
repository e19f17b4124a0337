//! Builds the application: connects the backends, binds the gRPC listener
//! first (so tests can ask for port 0 and read `port()`), then serves until
//! told to stop, with the background workers beside it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;

use crate::catalog::{LocationCache, LocationStore, SkuStore};
use crate::config::Config;
use crate::db;
use crate::grpc::proto::catalog_service_server::CatalogServiceServer;
use crate::grpc::proto::reservation_service_server::ReservationServiceServer;
use crate::grpc::proto::stock_service_server::StockServiceServer;
use crate::grpc::{self, CatalogApi, HealthMonitor, ReservationApi, StockApi};
use crate::reconcile::{Reconciler, ReconcilerSettings};
use crate::recovery::Recovery;
use crate::reservation::{Engine, EngineSettings, Keys, Sweeper};
use crate::state::AppState;

/// How often the location cache is re-read from Postgres.
const LOCATION_REFRESH: Duration = Duration::from_secs(5);

/// A built, bound, not yet serving stockd.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    db: PgPool,
    config: Config,
}

/// The engine settings a config asks for.
pub fn engine_settings(config: &Config) -> EngineSettings {
    EngineSettings {
        default_ttl: config.reservation_ttl,
        tombstone: config.tombstone_ttl,
        operation_retention: config.operation_retention,
        expiry_batch: config.expiry_batch,
        call_timeout: config.redis_timeout,
        pool_size: config.redis_pool_size,
    }
}

/// Connects the engine for a store whose Postgres is `db`. A fresh store, or
/// a Redis that lost it, is set up from Postgres before this returns.
pub async fn connect_engine(config: &Config, db: &PgPool) -> anyhow::Result<Arc<Engine>> {
    let partitions = db::partition_count(db, config.partitions).await?;
    let keys = Keys::new(&config.redis_prefix, partitions).map_err(anyhow::Error::msg)?;
    let engine = Engine::new(&config.redis_url, keys, engine_settings(config))?;
    engine.ping().await.with_context(|| format!("cannot reach Redis at {}", db::redact(&config.redis_url)))?;
    let engine = Arc::new(engine);
    Recovery::new(engine.clone(), db.clone(), config.health_interval).ensure().await.context("restoring redis")?;
    Ok(engine)
}

impl Application {
    /// Connects Postgres (which must be migrated) and Redis, and binds the
    /// gRPC address. Fails with a clear message when either backend is down.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let db = db::connect(&config).await?;
        db::check_migrated(&db).await?;
        let engine = connect_engine(&config, &db).await?;
        let locations = LocationStore::new(db.clone());
        let location_cache = LocationCache::new(locations.clone());
        location_cache.refresh().await.context("reading locations")?;
        let state = AppState {
            engine,
            skus: SkuStore::new(db.clone()),
            locations,
            location_cache,
            db: db.clone(),
            reconcile: Arc::default(),
        };
        let listener = TcpListener::bind(config.grpc_addr)
            .await
            .with_context(|| format!("cannot listen on STOCKD_GRPC_ADDR={}", config.grpc_addr))?;
        let addr = listener.local_addr()?;
        Ok(Self { listener, addr, state, db, config })
    }

    /// The bound gRPC port (useful when the config asked for port 0).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The bound gRPC address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared handles (tests use the engine directly).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves gRPC and runs the workers until `shutdown` is cancelled. Health
    /// goes NOT_SERVING first, then in-flight calls finish.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Application { listener, addr, state, db, config } = self;
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let monitor = HealthMonitor::new(reporter, state.engine.clone(), db.clone(), config.health_interval);
        monitor.try_execute_task().await;

        let workers = CancellationToken::new();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(monitor.run_until_stopped(workers.clone()));
        tasks.spawn(Sweeper::new(state.engine.clone(), config.sweep_interval).run_until_stopped(workers.clone()));
        tasks.spawn(state.location_cache.clone().run_until_stopped(LOCATION_REFRESH, workers.clone()));
        let reconciler = Reconciler::new(
            state.engine.clone(),
            db.clone(),
            ReconcilerSettings {
                interval: config.reconcile_interval,
                batch: config.reconcile_batch,
                lag_alert: config.reconcile_lag_alert,
            },
            state.reconcile.clone(),
        );
        if config.reconciler_enabled {
            tasks.spawn(reconciler.run_until_stopped(workers.clone()));
            tasks.spawn(crate::ledger::run_drift_checks(
                state.engine.clone(),
                db.clone(),
                config.drift_check_interval,
                state.reconcile.clone(),
                workers.clone(),
            ));
        }
        tasks.spawn(
            Recovery::new(state.engine.clone(), db.clone(), config.health_interval).run_until_stopped(workers.clone()),
        );

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(grpc::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            // google.rpc.BadRequest, so grpcurl can print error details.
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        // grpcurl 1.8 speaks only v1alpha.
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(grpc::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        tracing::info!(%addr, "stockd serving gRPC");
        let stopping = {
            let workers = workers.clone();
            async move {
                shutdown.cancelled().await;
                tracing::info!("shutting down: health NOT_SERVING, finishing in-flight calls");
                workers.cancel();
            }
        };
        let served = Server::builder()
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(ReservationServiceServer::new(ReservationApi::new(state.clone())))
            .add_service(StockServiceServer::new(StockApi::new(state.clone())))
            .add_service(CatalogServiceServer::new(CatalogApi::new(state.clone())))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stopping)
            .await;
        workers.cancel();
        while tasks.join_next().await.is_some() {}
        db.close().await;
        served.context("gRPC server failed")
    }
}
