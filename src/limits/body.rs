//! Request bodies read before a call is admitted, within a size budget per
//! message and per connection; and the response body that keeps what a call
//! holds (its request slot, its place on the connection) until the response
//! has been sent.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::conn::Conn;

/// The largest request body read: tonic's default largest message (4 MiB)
/// and the 5-byte gRPC frame header. A larger one is refused.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024 + 5;

/// Request bytes one connection may have partly read at once (two of the
/// largest messages; stockd's own requests are at most a few hundred KB).
/// It bounds what a client sending bodies slowly on many streams can make
/// the server hold: this much per connection.
pub const CONNECTION_BODY_BUDGET: usize = 2 * MAX_REQUEST_BYTES;

/// Why a request body could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than [`MAX_REQUEST_BYTES`].
    TooLarge,
    /// The connection already has [`CONNECTION_BODY_BUDGET`] bytes of
    /// request bodies partly read.
    ConnectionBudget,
    /// The client reset the stream, or the connection failed.
    Failed(String),
}

/// Bytes counted against a connection's budget while a body is being read.
struct Reservation<'a> {
    conn: Option<&'a Conn>,
    bytes: usize,
}

impl Reservation<'_> {
    fn add(&mut self, n: usize) -> Result<(), BodyError> {
        let Some(conn) = self.conn else { return Ok(()) };
        let before = conn.pending_body.fetch_add(n, Ordering::SeqCst);
        if before.saturating_add(n) > CONNECTION_BODY_BUDGET {
            conn.pending_body.fetch_sub(n, Ordering::SeqCst);
            return Err(BodyError::ConnectionBudget);
        }
        self.bytes += n;
        Ok(())
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn {
            conn.pending_body.fetch_sub(self.bytes, Ordering::SeqCst);
        }
    }
}

/// Reads a whole request body (trailers, which gRPC requests do not have,
/// are dropped), counting it against `conn`'s budget while it arrives. The
/// caller bounds the time it may take.
pub async fn read_body<B>(mut body: B, conn: Option<&Conn>) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut reservation = Reservation { conn, bytes: 0 };
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Failed(e.to_string()))?;
        let Ok(data) = frame.into_data() else { continue };
        len = len.saturating_add(data.len());
        if len > MAX_REQUEST_BYTES {
            return Err(BodyError::TooLarge);
        }
        reservation.add(data.len())?;
        chunks.push(data);
    }
    // A unary request usually arrives in one frame: no copy then.
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => {
            let mut all = BytesMut::with_capacity(len);
            for c in chunks {
                all.extend_from_slice(&c);
            }
            all.freeze()
        }
    })
}

/// A response body that keeps `G` (a call's slot, its place on the
/// connection) until hyper drops it: once it has been sent, or its stream
/// or connection is gone.
pub struct Held<B, G> {
    body: B,
    _guard: G,
}

impl<B, G> Held<B, G> {
    /// `body`, holding `guard` while it lives.
    pub fn new(body: B, guard: G) -> Self {
        Self { body, _guard: guard }
    }
}

impl<B: Body + Unpin, G: Unpin> Body for Held<B, G> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{Full, StreamBody};

    use super::*;

    type Frames = futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>>;

    /// A body arriving in one frame per part.
    fn chunked(parts: &[&'static [u8]]) -> StreamBody<Frames> {
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> =
            parts.iter().map(|p| Ok(Frame::data(Bytes::from_static(p)))).collect();
        StreamBody::new(futures::stream::iter(frames))
    }

    #[tokio::test]
    async fn a_body_in_several_frames_is_read_whole_and_its_budget_returned() {
        let conn = Conn::new();
        let read = read_body(chunked(&[b"ab", b"cd"]), Some(&conn)).await;
        assert_eq!(read, Ok(Bytes::from_static(b"abcd")));
        assert_eq!(conn.pending_body.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_body_over_the_largest_message_is_refused() {
        let big = Full::new(Bytes::from(vec![0u8; MAX_REQUEST_BYTES + 1]));
        assert_eq!(read_body(big, None).await, Err(BodyError::TooLarge));
    }

    #[tokio::test]
    async fn a_connection_over_its_body_budget_is_refused_until_bytes_are_released() {
        let conn = Conn::new();
        conn.pending_body.store(CONNECTION_BODY_BUDGET - 1, Ordering::SeqCst);
        assert_eq!(read_body(chunked(&[b"xy"]), Some(&conn)).await, Err(BodyError::ConnectionBudget));
        assert_eq!(conn.pending_body.load(Ordering::SeqCst), CONNECTION_BODY_BUDGET - 1);
        conn.pending_body.store(0, Ordering::SeqCst);
        assert_eq!(read_body(chunked(&[b"xy"]), Some(&conn)).await, Ok(Bytes::from_static(b"xy")));
    }
}
