//! The accept loop of a port: at most `max_connections` open at once (one
//! more is closed as soon as it is accepted, so the client learns at once
//! instead of waiting in the kernel's backlog), each wrapped in [`Tracked`].

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::Stream;
use prometheus::{IntCounter, IntGauge};
use tokio::net::{TcpListener, TcpStream};

use super::PortLimits;
use super::deadline::Reason;
use super::socket::{Open, Tracked};
use crate::metrics::Metrics;

/// After a failed accept (e.g. out of file descriptors), wait this long
/// before the next, rather than spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A port's listener with its limits.
pub struct Acceptor {
    listener: TcpListener,
    limits: PortLimits,
    open: Arc<AtomicUsize>,
    gauge: IntGauge,
    over_limit: IntCounter,
    closed: [IntCounter; 2],
}

impl Acceptor {
    /// Accepts on `listener` under `limits`; `port` labels the metrics
    /// (`grpc`, `http`).
    pub fn new(listener: TcpListener, limits: PortLimits, port: &str, metrics: &Metrics) -> Self {
        let closed = |r: Reason| metrics.connections_closed.with_label_values(&[port, r.as_str()]);
        Self {
            listener,
            limits,
            open: Arc::new(AtomicUsize::new(0)),
            gauge: metrics.connections.with_label_values(&[port]),
            over_limit: closed(Reason::OverLimit),
            closed: [closed(Reason::Idle), closed(Reason::SendTimeout)],
        }
    }

    /// The address listened on.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// The next connection within the limit. Connections over it are closed
    /// here; accept errors are logged and retried.
    pub async fn accept(&self) -> Tracked<TcpStream> {
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            if self.open.fetch_add(1, Ordering::SeqCst) >= self.limits.max_connections {
                self.open.fetch_sub(1, Ordering::SeqCst);
                self.over_limit.inc();
                tracing::debug!(%peer, max = self.limits.max_connections, "connection refused: too many open");
                drop(stream);
                continue;
            }
            // Small responses must not wait for Nagle and delayed ACKs (tens of ms).
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY");
            }
            self.gauge.inc();
            let open = Open { count: self.open.clone(), gauge: self.gauge.clone() };
            return Tracked::new(stream, self.limits.timeouts, self.closed.clone(), open);
        }
    }

    /// The connections as a stream (for tonic's `serve_with_incoming_shutdown`);
    /// it never ends and never yields an error.
    pub fn into_stream(self) -> impl Stream<Item = Result<Tracked<TcpStream>, io::Error>> + Send + 'static {
        futures::stream::unfold(self, |acceptor| async move {
            let conn = acceptor.accept().await;
            Some((Ok(conn), acceptor))
        })
    }
}
