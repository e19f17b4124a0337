//! A raw HTTP/2 client (the `h2` crate) for tests that must behave unlike a
//! gRPC library: streams with headers and no body, a receive window of 0,
//! and raw frames (to see the server's PINGs).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::codegen::http;

/// One HTTP/2 connection; its driver runs in a task.
pub struct H2 {
    pub send: h2::client::SendRequest<Bytes>,
    addr: SocketAddr,
    /// SETTINGS_MAX_CONCURRENT_STREAMS the server advertised (as the driver last saw it).
    max_streams: Arc<AtomicUsize>,
    /// Whether the connection has ended (closed by either side).
    closed: Arc<AtomicBool>,
    /// The task driving the connection.
    driver: tokio::task::AbortHandle,
}

impl H2 {
    /// Connects with h2's defaults, or with a stream receive window of `window`.
    pub async fn connect(addr: SocketAddr, window: Option<u32>) -> Result<H2, String> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut builder = h2::client::Builder::new();
        if let Some(w) = window {
            builder.initial_window_size(w);
        }
        let (send, mut conn) = builder.handshake::<_, Bytes>(tcp).await.map_err(|e| e.to_string())?;
        let mut ping = conn.ping_pong().ok_or("no ping handle")?;
        let max_streams = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicBool::new(false));
        let (max, done) = (max_streams.clone(), closed.clone());
        let driver = tokio::spawn(async move {
            let _ = futures::future::poll_fn(|cx| {
                let r = std::future::Future::poll(Pin::new(&mut conn), cx);
                max.store(conn.max_concurrent_send_streams(), Ordering::SeqCst);
                r
            })
            .await;
            done.store(true, Ordering::SeqCst);
        })
        .abort_handle();
        // The server's SETTINGS come before its answer to a PING: once the
        // PONG is in, the connection is established and its limits known.
        tokio::time::timeout(Duration::from_secs(20), ping.ping(h2::Ping::opaque()))
            .await
            .map_err(|_| "no PONG within 20 s".to_string())?
            .map_err(|e| e.to_string())?;
        let h2 = H2 { send: send.ready().await.map_err(|e| e.to_string())?, addr, max_streams, closed, driver };
        Ok(h2)
    }

    pub fn advertised_max_streams(&self) -> usize {
        self.max_streams.load(Ordering::SeqCst)
    }

    /// Drops the connection at once (the TCP socket closes), whatever its
    /// streams are doing.
    pub fn kill(&self) {
        self.driver.abort();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// A gRPC request's headers for `path` (e.g. `/inventory.v1.StockService/GetAvailability`).
    pub fn request(&self, path: &str) -> http::Request<()> {
        http::Request::builder()
            .method("POST")
            .uri(format!("http://{}{path}", self.addr))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .expect("request")
    }

    /// A whole unary call: headers, `message`, then the response read to its
    /// end. Returns the grpc-status.
    pub async fn unary(&mut self, path: &str, message: Bytes) -> Result<i32, h2::Error> {
        self.send = self.send.clone().ready().await?;
        let (response, mut body) = self.send.send_request(self.request(path), false)?;
        body.send_data(message, true)?;
        let response = response.await?;
        if let Some(code) = grpc_status(response.headers()) {
            return Ok(code);
        }
        let mut recv = response.into_body();
        while let Some(chunk) = recv.data().await {
            let chunk = chunk?;
            let _ = recv.flow_control().release_capacity(chunk.len());
        }
        let trailers = recv.trailers().await?.unwrap_or_default();
        Ok(grpc_status(&trailers).unwrap_or(-1))
    }
}

/// The grpc-status in headers or trailers.
pub fn grpc_status(headers: &http::HeaderMap) -> Option<i32> {
    headers.get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// A gRPC length-prefixed message (uncompressed).
pub fn grpc_message(msg: &impl prost::Message) -> Bytes {
    let body = msg.encode_to_vec();
    let mut out = BytesMut::with_capacity(5 + body.len());
    out.put_u8(0);
    out.put_u32(u32::try_from(body.len()).expect("small message"));
    out.put_slice(&body);
    out.freeze()
}

/// A frame header as read from the wire: (type, flags, stream id, payload).
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub payload: Vec<u8>,
}

/// HTTP/2 frame types used here.
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const ACK: u8 = 0x1;

/// A plain TCP connection speaking HTTP/2 by hand: preface and an empty
/// SETTINGS sent, nothing else unless asked.
pub async fn raw_h2(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.expect("preface");
    write_frame(&mut s, SETTINGS, 0, &[]).await;
    s
}

pub async fn write_frame(s: &mut TcpStream, kind: u8, flags: u8, payload: &[u8]) {
    let len = u32::try_from(payload.len()).expect("small frame");
    let mut head = [0u8; 9];
    head[..3].copy_from_slice(&len.to_be_bytes()[1..]);
    head[3] = kind;
    head[4] = flags;
    s.write_all(&head).await.expect("frame header");
    s.write_all(payload).await.expect("frame payload");
}

/// The next frame, or None once the server has closed the connection.
pub async fn read_frame(s: &mut TcpStream) -> Option<Frame> {
    let mut head = [0u8; 9];
    s.read_exact(&mut head).await.ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await.ok()?;
    Some(Frame { kind: head[3], flags: head[4], payload })
}

/// Whether the server closes `s` within `within`, reading (and dropping)
/// whatever it sends meanwhile.
pub async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let drain = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, drain).await.is_ok()
}
