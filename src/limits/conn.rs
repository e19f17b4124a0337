//! One connection's calls, shared by the calls (which start and end them)
//! and by the connection's socket (which closes the connection when the
//! deadline rule says so). The socket is polled by hyper's connection task;
//! the calls run in their own tasks, hence the lock and the waker.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::Duration;

use futures::task::AtomicWaker;
use tokio::time::Instant;
use tonic::transport::server::TcpConnectInfo;

use super::later;

/// What tonic puts in each request's extensions for a connection accepted
/// by [`super::Acceptor`] (also under TLS, beside `TlsConnectInfo`): the
/// addresses, and the connection, so a call can count itself on it.
#[derive(Clone)]
pub struct ConnInfo {
    /// The addresses, as tonic gives them for a plain TCP stream.
    pub tcp: TcpConnectInfo,
    /// The connection the request came on.
    pub conn: Arc<Conn>,
}

/// A connection's calls in progress. See the module docs.
pub struct Conn {
    state: Mutex<State>,
    /// The socket's task, woken when a deadline may have come earlier.
    socket: AtomicWaker,
    /// Request body bytes being read on this connection, not yet handed to
    /// a call (see `body.rs`).
    pub(super) pending_body: AtomicUsize,
}

struct State {
    /// Calls in progress.
    calls: usize,
    /// When `calls` last went to zero (or the connection was accepted).
    idle_since: Instant,
    /// Send deadlines of ready responses, with a tie-breaking id.
    sending: BTreeSet<(Instant, u64)>,
    next_id: u64,
}

impl Conn {
    /// A fresh connection, idle since now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State { calls: 0, idle_since: Instant::now(), sending: BTreeSet::new(), next_id: 0 }),
            socket: AtomicWaker::new(),
            pending_body: AtomicUsize::new(0),
        })
    }

    /// A call starts (its headers arrived); it ends when the [`Call`] drops.
    pub fn call(self: &Arc<Self>) -> Call {
        self.lock().calls += 1;
        Call { conn: self.clone(), sending: None }
    }

    /// Calls in progress, when they last were none, and the earliest send deadline.
    pub(super) fn snapshot(&self) -> (usize, Instant, Option<Instant>) {
        let s = self.lock();
        (s.calls, s.idle_since, s.sending.first().map(|(at, _)| *at))
    }

    /// The socket's task is to be woken by the next change.
    pub(super) fn register(&self, waker: &Waker) {
        self.socket.register(waker);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned one is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A call in progress on a connection, from its headers until its response
/// has been sent (the response body holds it, see [`super::Held`]).
pub struct Call {
    conn: Arc<Conn>,
    sending: Option<(Instant, u64)>,
}

impl Call {
    /// The response is ready: from now it must be sent within `timeout`, or
    /// the connection is closed (the client is not reading).
    pub fn sending(&mut self, timeout: Duration) {
        let Some(at) = later(Instant::now(), timeout) else { return };
        let first = {
            let mut s = self.conn.lock();
            let id = s.next_id;
            s.next_id += 1;
            if let Some(old) = self.sending.replace((at, id)) {
                s.sending.remove(&old);
            }
            let first = s.sending.is_empty();
            s.sending.insert((at, id));
            first
        };
        // With no other response waiting, the socket may be waiting with no
        // deadline at all; otherwise its timer is set no later than this one
        // (deadlines are made in the order responses get ready).
        if first {
            self.conn.socket.wake();
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        let now_idle = {
            let mut s = self.conn.lock();
            if let Some(key) = self.sending.take() {
                s.sending.remove(&key);
            }
            s.calls = s.calls.saturating_sub(1);
            if s.calls == 0 {
                s.idle_since = Instant::now();
            }
            s.calls == 0
        };
        if now_idle {
            // The idle clock starts: the socket may be waiting with no deadline.
            self.conn.socket.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_counts_its_calls_and_their_send_deadlines() {
        let conn = Conn::new();
        let mut a = conn.call();
        let b = conn.call();
        assert_eq!(conn.snapshot().0, 2);
        a.sending(Duration::from_secs(10));
        assert!(conn.snapshot().2.is_some());
        drop(a);
        assert_eq!((conn.snapshot().0, conn.snapshot().2), (1, None));
        let before = Instant::now();
        drop(b);
        let (calls, idle_since, _) = conn.snapshot();
        assert_eq!(calls, 0);
        assert!(idle_since >= before, "the idle clock starts when the last call ends");
    }
}
