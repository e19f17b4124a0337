//! The HTTP side on `STOCKD_HTTP_ADDR`: `/metrics` (Prometheus text),
//! `/healthz` (the process is alive) and `/readyz` (the hot path is ready:
//! Redis answers and holds the store).
//!
//! Served with hyper's HTTP/1 connection builder rather than `axum::serve`,
//! for the limits it lacks: connections accepted under the port's cap and
//! idle/send timeouts (`crate::limits`), and a header read timeout against
//! clients that send their request slowly.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::Config;
use crate::limits::{Acceptor, Held, Tracked};
use crate::metrics::Metrics;
use crate::state::AppState;

/// The HTTP port's limits beyond the acceptor's.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// A request's headers must arrive within this.
    pub header_timeout: Duration,
    /// A response must be sent within this once ready.
    pub send_timeout: Duration,
}

impl HttpLimits {
    /// The limits a config asks for.
    pub fn from_config(config: &Config) -> Self {
        Self { header_timeout: config.http_header_timeout, send_timeout: config.send_timeout }
    }
}

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

/// Serves the HTTP side on an already bound listener until `stop`, then
/// lets the requests in progress finish.
pub async fn serve(acceptor: Acceptor, state: AppState, limits: HttpLimits, stop: CancellationToken) {
    let metrics = state.metrics.clone();
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Http { state, metrics });
    let addr: Option<SocketAddr> = acceptor.local_addr();
    tracing::info!(?addr, "stockd serving HTTP (metrics, probes)");
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let io = tokio::select! {
            _ = stop.cancelled() => break,
            io = acceptor.accept() => io,
        };
        // Forget the connections that have ended.
        while connections.try_join_next().is_some() {}
        connections.spawn(serve_connection(io, app.clone(), limits, stop.clone()));
    }
    // Stop listening at once; the connections finish their requests.
    drop(acceptor);
    while connections.join_next().await.is_some() {}
}

/// One connection: each request counts as a call on it (so it is not idle)
/// until its response has been sent.
async fn serve_connection(io: Tracked<TcpStream>, app: Router, limits: HttpLimits, stop: CancellationToken) {
    let conn = io.conn().clone();
    let service = hyper::service::service_fn(move |req: axum::http::Request<hyper::body::Incoming>| {
        let mut call = conn.call();
        let app = app.clone();
        async move {
            let resp = app.oneshot(req).await.unwrap_or_else(|never: Infallible| match never {});
            call.sending(limits.send_timeout);
            Ok::<_, Infallible>(resp.map(|body| Held::new(body, call)))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let served = tokio::select! {
        r = connection.as_mut() => r,
        _ = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = served {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}
