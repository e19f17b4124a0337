//! The HTTP side on `STOCKD_HTTP_ADDR`: `/metrics` (Prometheus text),
//! `/healthz` (the process is alive) and `/readyz` (the hot path is ready:
//! Redis answers and holds the store; the body also says when the
//! reconciler fails or has events in quarantine, and `/readyz?verbose`
//! gives its backlog and lag).
//!
//! Served with hyper's HTTP/1 connection builder rather than `axum::serve`,
//! for the limits it lacks: connections accepted under the port's cap and
//! idle/send timeouts (`crate::limits`), and a header read timeout against
//! clients that send their request slowly.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
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

/// The status follows the hot path only: checkout must not go down because
/// Postgres is, or because the reconciler set an event apart. The system of
/// record's trouble is in the body instead (a line each), for an operator
/// or a check that reads it.
async fn readyz(State(h): State<Http>, RawQuery(query): RawQuery) -> (StatusCode, String) {
    let up = h.state.hot_path_up();
    let mut body = String::from(if up { "ready\n" } else { "not ready\n" });
    let stats = &h.state.reconcile;
    if let Some((n, error)) = stats.failing() {
        body.push_str(&format!("reconciler: failing, {n} rounds in a row; last error: {error}\n"));
    }
    let quarantined = stats.quarantined.load(Ordering::Relaxed);
    if quarantined > 0 {
        body.push_str(&format!(
            "quarantine: {quarantined} events set apart by the reconciler, unresolved (stockd quarantine list)\n"
        ));
    }
    if wants_verbose(query.as_deref()) {
        body.push_str(&format!(
            "reconciler: {}; {} events written by this process, {} failed rounds\n",
            if stats.leading.load(Ordering::Relaxed) { "leading" } else { "not leading here" },
            stats.events.load(Ordering::Relaxed),
            stats.failures.load(Ordering::Relaxed)
        ));
        match crate::reconcile::backlog(&h.state.engine).await {
            Ok(b) => body.push_str(&format!(
                "backlog: {} stream entries not yet in Postgres, the oldest {:.1} s old\n",
                b.entries,
                b.lag_ms as f64 / 1000.0
            )),
            Err(e) => body.push_str(&format!("backlog: unknown ({e})\n")),
        }
        body.push_str(&format!("quarantine: {quarantined} unresolved\n"));
    }
    (if up { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body)
}

/// Whether the query asks for details: `verbose`, or `verbose=` anything but
/// `0` or `false`.
fn wants_verbose(query: Option<&str>) -> bool {
    query.unwrap_or_default().split('&').any(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        k == "verbose" && !matches!(v, "0" | "false")
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_given_when_the_query_asks_for_them() {
        for q in ["verbose", "verbose=1", "verbose=true", "x=1&verbose"] {
            assert!(wants_verbose(Some(q)), "{q}");
        }
        for q in [None, Some(""), Some("verbose=0"), Some("verbose=false"), Some("verbosely")] {
            assert!(!wants_verbose(q), "{q:?}");
        }
    }
}
