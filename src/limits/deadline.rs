//! When a connection is due to be closed. A pure rule over what the
//! connection's socket and calls report, so it reads like the README and is
//! tested without sockets.

use std::time::Duration;

use tokio::time::Instant;

use super::later;

/// Bytes read this recently may be a request that hyper has read but not yet
/// handed to a call: an idle connection waits this long after its last read
/// (but never more than this past its idle deadline, so a client that sends
/// a byte now and then is still closed).
pub const READ_SETTLE: Duration = Duration::from_secs(1);

/// A connection's timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// No call in progress for this long: closed.
    pub idle: Duration,
    /// A response not read this long after it was ready, or a socket that
    /// takes no bytes for this long: closed.
    pub send: Duration,
}

/// Why stockd closed a connection (the `reason` label of
/// `stockd_connections_closed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Over `STOCKD_MAX_CONNECTIONS`, closed at accept.
    OverLimit,
    /// No call in progress for `STOCKD_IDLE_TIMEOUT`.
    Idle,
    /// The client did not read a response, or the socket took no bytes,
    /// within `STOCKD_SEND_TIMEOUT`.
    SendTimeout,
}

impl Reason {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::OverLimit => "over_limit",
            Reason::Idle => "idle",
            Reason::SendTimeout => "send_timeout",
        }
    }
}

/// What a connection reports at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Calls in progress (from their headers until their response is sent).
    pub calls: usize,
    /// When the last call ended (or the connection was accepted).
    pub idle_since: Instant,
    /// When bytes were last read from the socket.
    pub last_read: Instant,
    /// The earliest deadline by which a ready response must be sent.
    pub earliest_send: Option<Instant>,
    /// Since when the socket has refused bytes (a write pending).
    pub write_blocked_since: Option<Instant>,
}

/// When a connection is due to be closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Now, for this reason.
    Now(Reason),
    /// Not before this instant (look again then).
    At(Instant),
    /// Not while nothing changes (a call is running with no deadline of its own:
    /// the request timeout bounds it, or it is a stream).
    Never,
}

/// The rule: idle when no call has been in progress for `idle` (and the last
/// read has settled), and not reading when a ready response or a blocked
/// write is older than `send`.
pub fn due(c: &Clock, t: &Timeouts, now: Instant) -> Due {
    let mut next: Option<(Instant, Reason)> = None;
    let mut consider = |at: Option<Instant>, reason: Reason| {
        if let Some(at) = at
            && next.is_none_or(|(n, _)| at < n)
        {
            next = Some((at, reason));
        }
    };
    if c.calls == 0
        && let Some(at) = later(c.idle_since, t.idle)
    {
        let settled = later(c.last_read, READ_SETTLE).min(later(at, READ_SETTLE));
        consider(Some(settled.map_or(at, |s| s.max(at))), Reason::Idle);
    }
    consider(c.earliest_send, Reason::SendTimeout);
    consider(c.write_blocked_since.and_then(|since| later(since, t.send)), Reason::SendTimeout);
    match next {
        None => Due::Never,
        Some((at, reason)) if at <= now => Due::Now(reason),
        Some((at, _)) => Due::At(at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts { idle: Duration::from_secs(60), send: Duration::from_secs(10) };

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn quiet(start: Instant) -> Clock {
        Clock { calls: 0, idle_since: start, last_read: start, earliest_send: None, write_blocked_since: None }
    }

    #[test]
    fn a_connection_without_calls_is_closed_once_the_idle_timeout_has_passed() {
        let t0 = Instant::now();
        let c = quiet(t0);
        assert_eq!(due(&c, &T, t0 + secs(59)), Due::At(t0 + secs(60)));
        assert_eq!(due(&c, &T, t0 + secs(60)), Due::Now(Reason::Idle));
    }

    #[test]
    fn a_call_in_progress_keeps_a_connection_open_however_long_it_runs() {
        let t0 = Instant::now();
        let c = Clock { calls: 1, ..quiet(t0) };
        assert_eq!(due(&c, &T, t0 + secs(3600)), Due::Never);
    }

    #[test]
    fn a_recent_read_delays_the_idle_close_by_at_most_the_settle_time() {
        let t0 = Instant::now();
        let just_read = Clock { last_read: t0 + secs(60), ..quiet(t0) };
        assert_eq!(due(&just_read, &T, t0 + secs(60)), Due::At(t0 + secs(60) + READ_SETTLE));
        // A client that keeps sending a byte now and then is still closed.
        let chatty = Clock { last_read: t0 + secs(3600), ..quiet(t0) };
        assert_eq!(due(&chatty, &T, t0 + secs(3600)), Due::Now(Reason::Idle));
    }

    #[test]
    fn a_response_not_read_in_time_closes_the_connection_even_with_calls_in_progress() {
        let t0 = Instant::now();
        let c = Clock { calls: 3, earliest_send: Some(t0 + secs(10)), ..quiet(t0) };
        assert_eq!(due(&c, &T, t0 + secs(5)), Due::At(t0 + secs(10)));
        assert_eq!(due(&c, &T, t0 + secs(10)), Due::Now(Reason::SendTimeout));
    }

    #[test]
    fn a_socket_that_takes_no_bytes_for_the_send_timeout_is_closed() {
        let t0 = Instant::now();
        let c = Clock { calls: 1, write_blocked_since: Some(t0), ..quiet(t0) };
        assert_eq!(due(&c, &T, t0 + secs(9)), Due::At(t0 + secs(10)));
        assert_eq!(due(&c, &T, t0 + secs(10)), Due::Now(Reason::SendTimeout));
    }

    #[test]
    fn the_earliest_deadline_wins() {
        let t0 = Instant::now();
        let c = Clock { earliest_send: Some(t0 + secs(10)), ..quiet(t0) };
        assert_eq!(due(&c, &T, t0), Due::At(t0 + secs(10)));
    }

    #[test]
    fn a_timeout_too_large_for_the_clock_means_never() {
        let t0 = Instant::now();
        let huge = Timeouts { idle: Duration::MAX, send: Duration::MAX };
        let c = Clock { write_blocked_since: Some(t0), ..quiet(t0) };
        assert_eq!(due(&c, &huge, t0 + secs(3600)), Due::Never);
    }
}
