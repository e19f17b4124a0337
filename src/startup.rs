//! Builds the application: connects the backends, binds the gRPC and HTTP
//! listeners first (so tests can ask for port 0 and read `port()`), then
//! serves until told to stop, with the background workers beside it.
//!
//! Shutdown (SIGTERM/SIGINT, or the token in tests) goes in this order:
//! health NOT_SERVING and /readyz 503 first, then the listener stops
//! accepting and in-flight calls finish (at most `STOCKD_SHUTDOWN_GRACE`),
//! then the workers stop and the pools close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;

use crate::auth::{AuthLayer, tls_config};
use crate::catalog::{LocationCache, LocationStore, SkuStore, SupplierStore};
use crate::config::Config;
use crate::cycle_count::{AbcWorker, CycleCounts};
use crate::db;
use crate::grpc::proto::catalog_service_server::CatalogServiceServer;
use crate::grpc::proto::cycle_count_service_server::CycleCountServiceServer;
use crate::grpc::proto::replenishment_service_server::ReplenishmentServiceServer;
use crate::grpc::proto::reservation_service_server::ReservationServiceServer;
use crate::grpc::proto::stock_service_server::StockServiceServer;
use crate::grpc::{
    self, CallLimits, CatalogApi, CycleCountApi, GuardLayer, HealthMonitor, ReplenishmentApi, ReservationApi, StockApi,
};
use crate::limits::{Acceptor, PortLimits};
use crate::metrics::Metrics;
use crate::reconcile::{Reconciler, ReconcilerSettings};
use crate::recovery::Recovery;
use crate::replenishment::{Replenishment, ReplenishmentWorker};
use crate::reservation::{Engine, EngineSettings, Keys, Sweeper};
use crate::state::AppState;

/// How often the location cache is re-read from Postgres.
const LOCATION_REFRESH: Duration = Duration::from_secs(5);
/// How long a shutting-down server keeps answering UNAVAILABLE before it
/// closes its connections (bounded by the shutdown grace).
const DRAIN_MIN: Duration = Duration::from_secs(1);
/// How long workers get to stop once the server has.
const WORKER_STOP: Duration = Duration::from_secs(5);

/// A built, bound, not yet serving stockd.
pub struct Application {
    /// TLS settings, read and checked at build time (None: plaintext).
    tls: Option<tonic::transport::ServerTlsConfig>,
    /// Bearer-token checks (None: off).
    auth: Option<AuthLayer>,
    listener: TcpListener,
    http_listener: TcpListener,
    addr: SocketAddr,
    http_addr: SocketAddr,
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
        reserve_batch: config.reserve_batch,
        reserve_calls: config.reserve_calls,
    }
}

/// Connects the engine for a store whose Postgres is `db`, counting into
/// `metrics`. A fresh store, or a Redis that lost it, is set up from Postgres
/// before this returns.
pub async fn connect_engine(config: &Config, db: &PgPool, metrics: Arc<Metrics>) -> anyhow::Result<Arc<Engine>> {
    let partitions = db::partition_count(db, config.partitions).await?;
    let keys = Keys::new(&config.redis_prefix, partitions).map_err(anyhow::Error::msg)?;
    let engine = Engine::new(&config.redis_url, keys, engine_settings(config))?.with_metrics(metrics);
    engine.ping().await.with_context(|| format!("cannot reach Redis at {}", db::redact(&config.redis_url)))?;
    let engine = Arc::new(engine);
    Recovery::new(engine.clone(), db.clone(), config.health_interval).ensure().await.context("restoring redis")?;
    Ok(engine)
}

impl Application {
    /// Connects Postgres (which must be migrated) and Redis, and binds the
    /// gRPC and HTTP addresses. Fails with a clear message when either
    /// backend is down or a setting is wrong.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // Access-control files first: a bad one fails before anything connects.
        let tls = tls_config(&config)?;
        let auth = AuthLayer::from_config(&config)?;
        let metrics = Metrics::new().context("registering metrics")?;
        let db = db::connect(&config).await?;
        db::check_migrated(&db).await?;
        let engine = connect_engine(&config, &db, metrics.clone()).await?;
        let locations = LocationStore::new(db.clone());
        let location_cache = LocationCache::new(locations.clone());
        location_cache.refresh().await.context("reading locations")?;
        let state = AppState {
            replenishment: Replenishment::new(db.clone(), engine.clone(), config.replenishment.clone()),
            engine,
            skus: SkuStore::new(db.clone()),
            locations,
            location_cache,
            suppliers: SupplierStore::new(db.clone()),
            db: db.clone(),
            reconcile: Arc::default(),
            metrics,
            hot_path: Arc::new(AtomicBool::new(true)),
        };
        let listener = TcpListener::bind(config.grpc_addr)
            .await
            .with_context(|| format!("cannot listen on STOCKD_GRPC_ADDR={}", config.grpc_addr))?;
        let http_listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("cannot listen on STOCKD_HTTP_ADDR={}", config.http_addr))?;
        let addr = listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;
        Ok(Self { tls, auth, listener, http_listener, addr, http_addr, state, db, config })
    }

    /// The bound gRPC port (useful when the config asked for port 0).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The bound gRPC address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound HTTP address (metrics and probes).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The shared handles (tests use the engine directly).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves gRPC and HTTP and runs the workers until `shutdown` is
    /// cancelled, then shuts down in the order the module docs give.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Application { tls, auth, listener, http_listener, addr, http_addr: _, state, db, config } = self;

        let (reporter, health_service) = tonic_health::server::health_reporter();
        let monitor = HealthMonitor::new(
            reporter.clone(),
            state.engine.clone(),
            db.clone(),
            config.health_interval,
            state.hot_path.clone(),
        );
        monitor.try_execute_task().await;

        // Workers stop after the server; the health monitor stops first of all.
        let workers = CancellationToken::new();
        let monitor_stop = CancellationToken::new();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(monitor.run_until_stopped(monitor_stop.clone()));
        tasks.spawn(Sweeper::new(state.engine.clone(), config.sweep_interval).run_until_stopped(workers.clone()));
        tasks.spawn(state.location_cache.clone().run_until_stopped(LOCATION_REFRESH, workers.clone()));
        let http_acceptor = Acceptor::new(http_listener, PortLimits::from_config(&config), "http", &state.metrics);
        tasks.spawn(crate::http::serve(
            http_acceptor,
            state.clone(),
            crate::http::HttpLimits::from_config(&config),
            workers.clone(),
        ));
        if config.reconciler_enabled {
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
        let abc = AbcWorker::new(db.clone(), &config.redis_prefix, config.cycle_count.clone(), state.metrics.clone());
        tasks.spawn(abc.run_until_stopped(workers.clone()));
        let cycle_counts = CycleCounts::new(
            db.clone(),
            state.engine.clone(),
            state.location_cache.clone(),
            config.cycle_count.clone(),
            state.metrics.clone(),
        );
        if config.replenishment_enabled {
            let worker = ReplenishmentWorker::new(db.clone(), state.engine.clone(), config.replenishment.clone());
            tasks.spawn(worker.run_until_stopped(workers.clone()));
        }

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

        // Health goes NOT_SERVING and new calls are refused with UNAVAILABLE
        // first; once the calls in progress are done (or the grace is up),
        // the listener stops.
        let call_limits = CallLimits { body_timeout: config.request_body_timeout, send_timeout: config.send_timeout };
        let guard = GuardLayer::new(config.max_concurrent_requests, call_limits, state.metrics.clone());
        let stop_accepting = CancellationToken::new();
        let draining = {
            let stop_accepting = stop_accepting.clone();
            let hot_path = state.hot_path.clone();
            let guard = guard.clone();
            let grace = config.shutdown_grace;
            async move {
                shutdown.cancelled().await;
                tracing::info!("shutting down: health NOT_SERVING, finishing in-flight calls");
                monitor_stop.cancel();
                hot_path.store(false, Ordering::SeqCst);
                for s in grpc::HEALTH_SERVICES {
                    reporter.set_service_status(s, tonic_health::ServingStatus::NotServing).await;
                }
                guard.start_draining();
                // Refuse for a moment even when idle, so a client between two
                // calls learns UNAVAILABLE rather than meeting a closed stream.
                let refuse_for = DRAIN_MIN.min(grace);
                let drained = async { tokio::join!(guard.drained(), tokio::time::sleep(refuse_for)) };
                if tokio::time::timeout(grace, drained).await.is_err() {
                    tracing::warn!(?grace, "calls still in progress at the end of the shutdown grace");
                }
                stop_accepting.cancel();
            }
        };
        tokio::spawn(draining);

        let mut builder = Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls).context("TLS settings")?;
        }
        // HTTP/2 limits: the streams one connection may have open (so also
        // the request slots it can hold), and pings that find dead peers.
        // Idle and unread connections, and the connection cap, are the
        // acceptor's (crate::limits).
        let router = builder
            .timeout(config.request_timeout)
            .max_concurrent_streams(config.max_concurrent_streams)
            .http2_keepalive_interval(Some(config.keepalive_interval))
            .http2_keepalive_timeout(Some(config.keepalive_timeout))
            .layer(guard)
            .layer(tower::util::option_layer(auth))
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(ReservationServiceServer::new(ReservationApi::new(state.clone())))
            .add_service(StockServiceServer::new(StockApi::new(state.clone())))
            .add_service(CatalogServiceServer::new(CatalogApi::new(state.clone())))
            .add_service(CycleCountServiceServer::new(CycleCountApi::new(cycle_counts)))
            .add_service(ReplenishmentServiceServer::new(ReplenishmentApi::new(state.clone())));
        tracing::info!(%addr, tls = config.tls_cert.is_some(), tokens = config.auth_tokens_file.is_some(), "stockd serving gRPC");
        let grace = config.shutdown_grace;
        let stopped = stop_accepting.clone();
        // Our own listener (bound early, for port 0), accepted under the
        // connection limits; the acceptor sets TCP_NODELAY (tonic's setting
        // does not apply to it).
        let incoming = Acceptor::new(listener, PortLimits::from_config(&config), "grpc", &state.metrics).into_stream();
        let serve = router.serve_with_incoming_shutdown(incoming, async move { stopped.cancelled().await });
        tokio::pin!(serve);
        // Serve until stopped; once stopping, in-flight calls get `grace`.
        let served = tokio::select! {
            r = &mut serve => r,
            _ = stop_accepting.cancelled() => match tokio::time::timeout(grace, &mut serve).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!(?grace, "in-flight calls did not finish within the shutdown grace; exiting");
                    Ok(())
                }
            },
        };
        workers.cancel();
        let _ = tokio::time::timeout(WORKER_STOP, async { while tasks.join_next().await.is_some() {} }).await;
        db.close().await;
        tracing::info!("stockd stopped");
        served.context("gRPC server failed")
    }
}
