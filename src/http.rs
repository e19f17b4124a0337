//! The HTTP side on `STOCKD_HTTP_ADDR`: `/metrics` (Prometheus text),
//! `/healthz` (the process is alive) and `/readyz` (the hot path is ready:
//! Redis answers and holds the store).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::state::AppState;

#[derive(Clone)]
struct Http {
    state: AppState,
    metrics: Arc<Metrics>,
}

async fn metrics_text(State(h): State<Http>) -> impl IntoResponse {
    let body = h.metrics.render(&h.state.engine, &h.state.reconcile).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(h): State<Http>) -> (StatusCode, &'static str) {
    if h.state.hot_path_up() { (StatusCode::OK, "ready\n") } else { (StatusCode::SERVICE_UNAVAILABLE, "not ready\n") }
}

/// Serves the HTTP side on an already bound listener until `stop`.
pub async fn serve(listener: TcpListener, state: AppState, metrics: Arc<Metrics>, stop: CancellationToken) {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Http { state, metrics });
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(?addr, "stockd serving HTTP (metrics, probes)");
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await {
        tracing::error!(error = %e, "HTTP server failed");
    }
}
