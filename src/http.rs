//! The HTTP side on `STOCKD_HTTP_ADDR`: `/metrics` (Prometheus text),
//! `/healthz` (the process is alive) and `/readyz` (the hot path is ready:
//! Redis answers and holds the store; the body also says when the
//! reconciler fails or has events in quarantine, and `/readyz?verbose`
//! gives its backlog and lag).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{RawQuery, State};
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
