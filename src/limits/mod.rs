//! Connection limits shared by the gRPC and HTTP ports, so that no client
//! can hold a port's resources by opening connections, leaving them idle, or
//! not reading what it is sent:
//!
//! - `accept.rs`: the accept loop, with a cap on open connections per port.
//! - `conn.rs`: one connection's calls in progress and their send deadlines,
//!   shared by the connection's calls and its socket.
//! - `deadline.rs`: the rule that says when a connection is due to be closed
//!   (idle, or a response not read in time); pure, unit-tested.
//! - `socket.rs`: the socket wrapper that applies that rule by failing the
//!   connection's reads and writes, which makes hyper drop it.
//! - `body.rs`: reading a request body within a size budget, and the response
//!   body that keeps a call (and its request slot) alive until it is sent.
//!
//! HTTP/2 itself (streams per connection, keep-alive pings) is configured on
//! the servers, in `startup.rs`; what each limit does to a client is in the
//! README's Operations section.

mod accept;
mod body;
mod conn;
mod deadline;
mod socket;

use std::time::Duration;

pub use accept::Acceptor;
pub use body::{BodyError, Held, MAX_REQUEST_BYTES, read_body};
pub use conn::{Call, Conn, ConnInfo};
pub use deadline::{Reason, Timeouts};
pub use socket::Tracked;

use crate::config::Config;

/// The limits of one listening port.
#[derive(Debug, Clone, Copy)]
pub struct PortLimits {
    /// Open connections at most; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// When a connection is closed for being idle or not reading.
    pub timeouts: Timeouts,
}

impl PortLimits {
    /// The limits a config asks for (the same for both ports).
    pub fn from_config(config: &Config) -> Self {
        Self {
            max_connections: config.max_connections,
            timeouts: Timeouts { idle: config.idle_timeout, send: config.send_timeout },
        }
    }
}

/// `now + d`, or None when that is past what a clock can hold (a huge
/// configured duration then means "never").
fn later(now: tokio::time::Instant, d: Duration) -> Option<tokio::time::Instant> {
    now.checked_add(d)
}
