//! The socket wrapper that closes a connection when [`super::deadline::due`]
//! says so. The check runs whenever a read or write would wait, which is
//! where a stuck connection sits: an HTTP/2 server always has a read
//! pending, and a peer that stops reading at the TCP level leaves a write
//! pending. Closing is an error on every later read and write, upon which
//! hyper drops the connection and its streams (their calls end, their
//! request slots come back).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use prometheus::{IntCounter, IntGauge};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tonic::transport::server::Connected;

use super::conn::{Conn, ConnInfo};
use super::deadline::{Clock, Due, Reason, Timeouts, due};

/// Counts the port's open connections while it lives.
pub(super) struct Open {
    pub(super) count: Arc<std::sync::atomic::AtomicUsize>,
    pub(super) gauge: IntGauge,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.count.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.gauge.dec();
    }
}

/// An accepted connection under the port's limits. See the module docs.
pub struct Tracked<IO> {
    io: IO,
    conn: Arc<Conn>,
    timeouts: Timeouts,
    /// Fires at the next deadline, waking the connection's task.
    timer: Pin<Box<Sleep>>,
    last_read: Instant,
    write_blocked_since: Option<Instant>,
    /// Set once closed: every later read and write fails.
    closed: Option<Reason>,
    /// `stockd_connections_closed_total` for idle and send_timeout on this port.
    closed_idle: IntCounter,
    closed_send: IntCounter,
    _open: Open,
}

impl<IO> Tracked<IO> {
    pub(super) fn new(io: IO, timeouts: Timeouts, closed: [IntCounter; 2], open: Open) -> Self {
        let now = Instant::now();
        let [closed_idle, closed_send] = closed;
        Self {
            io,
            conn: Conn::new(),
            timeouts,
            timer: Box::pin(tokio::time::sleep_until(now)),
            last_read: now,
            write_blocked_since: None,
            closed: None,
            closed_idle,
            closed_send,
            _open: open,
        }
    }

    /// The connection's calls (for servers that see the connection itself).
    pub fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }

    /// Whether the connection is due to be closed; if not, the timer is set
    /// to wake the task at the next deadline. Called only where a read or a
    /// write would wait.
    fn check(&mut self, cx: &mut Context<'_>) -> Option<Reason> {
        if self.closed.is_some() {
            return self.closed;
        }
        self.conn.register(cx.waker());
        // Twice at most: a timer that fires as it is set is looked at again once.
        for _ in 0..2 {
            let (calls, idle_since, earliest_send) = self.conn.snapshot();
            let clock = Clock {
                calls,
                idle_since,
                last_read: self.last_read,
                earliest_send,
                write_blocked_since: self.write_blocked_since,
            };
            match due(&clock, &self.timeouts, Instant::now()) {
                Due::Now(reason) => {
                    self.closed = Some(reason);
                    match reason {
                        Reason::Idle => self.closed_idle.inc(),
                        _ => self.closed_send.inc(),
                    }
                    tracing::debug!(reason = reason.as_str(), "closing connection");
                    return Some(reason);
                }
                Due::Never => return None,
                Due::At(at) => {
                    if self.timer.deadline() != at {
                        self.timer.as_mut().reset(at);
                    }
                    if self.timer.as_mut().poll(cx).is_pending() {
                        return None;
                    }
                }
            }
        }
        // Still firing: look again on the next poll rather than sleep unwoken.
        cx.waker().wake_by_ref();
        None
    }

    fn closed_error(reason: Reason) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, format!("connection closed by stockd: {}", reason.as_str()))
    }

    /// A write would wait: the socket refuses bytes since now (if not before).
    fn blocked(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        self.write_blocked_since.get_or_insert_with(Instant::now);
        match self.check(cx) {
            Some(reason) => Poll::Ready(Err(Self::closed_error(reason))),
            None => Poll::Pending,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Tracked<IO> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(reason) = this.closed {
            return Poll::Ready(Err(Self::closed_error(reason)));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.last_read = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => match this.check(cx) {
                Some(reason) => Poll::Ready(Err(Self::closed_error(reason))),
                None => Poll::Pending,
            },
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Tracked<IO> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(reason) = this.closed {
            return Poll::Ready(Err(Self::closed_error(reason)));
        }
        match Pin::new(&mut this.io).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.write_blocked_since = None;
                Poll::Ready(r)
            }
            Poll::Pending => this.blocked(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(reason) = this.closed {
            return Poll::Ready(Err(Self::closed_error(reason)));
        }
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                this.write_blocked_since = None;
                Poll::Ready(r)
            }
            Poll::Pending => this.blocked(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(reason) = this.closed {
            return Poll::Ready(Err(Self::closed_error(reason)));
        }
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => this.blocked(cx).map_ok(|_| ()),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl Connected for Tracked<TcpStream> {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        ConnInfo { tcp: self.io.connect_info(), conn: self.conn.clone() }
    }
}
