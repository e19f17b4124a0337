//! The tower layer in front of every gRPC service: a tracing span per call,
//! latency by method and status code, and admission. A call takes one of
//! the request slots (`STOCKD_MAX_CONCURRENT_REQUESTS`) only once its
//! request message has arrived (within `STOCKD_REQUEST_BODY_TIMEOUT`, else
//! DEADLINE_EXCEEDED), so streams that send headers and no body hold
//! nothing; it keeps the slot until its response has been sent, so the
//! slots also bound the responses held for clients that do not read them.
//! When every slot is taken, a new call is refused at once with
//! RESOURCE_EXHAUSTED instead of queueing, so the service stays responsive
//! under overload and recovers as soon as the load drops. While draining
//! for a shutdown, new calls are refused with UNAVAILABLE (before they
//! change anything) and `drained` tells when the calls in progress are done.
//! A handler that panics answers INTERNAL, logged as an error, instead of a
//! reset stream that the client would see as CANCELLED (defence in depth:
//! bad input is refused before it can reach code that could panic).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use http_body_util::Full;
use prometheus::IntGauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::body::Body;
use tonic::codegen::http;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::limits::{BodyError, Call, ConnInfo, Held, MAX_REQUEST_BYTES, read_body};
use crate::metrics::Metrics;

/// The timeouts of one call.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    /// The request message must arrive within this of the headers.
    pub body_timeout: Duration,
    /// The response must be sent within this once ready (else the
    /// connection is closed, see `limits`).
    pub send_timeout: Duration,
}

/// Builds `Guard` services.
#[derive(Clone)]
pub struct GuardLayer {
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    draining: Arc<AtomicBool>,
    limits: CallLimits,
    metrics: Arc<Metrics>,
}

impl GuardLayer {
    /// At most `max_in_flight` calls at once, each under `limits`; counts go
    /// to `metrics`.
    pub fn new(max_in_flight: usize, limits: CallLimits, metrics: Arc<Metrics>) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            draining: Arc::new(AtomicBool::new(false)),
            limits,
            metrics,
        }
    }

    /// From now on, new calls are refused with UNAVAILABLE.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Resolves once no call is in progress.
    pub async fn drained(&self) {
        while self.permits.available_permits() < self.max_in_flight {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            permits: self.permits.clone(),
            draining: self.draining.clone(),
            limits: self.limits,
            metrics: self.metrics.clone(),
        }
    }
}

/// See the module docs.
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    permits: Arc<Semaphore>,
    draining: Arc<AtomicBool>,
    limits: CallLimits,
    metrics: Arc<Metrics>,
}

/// A request slot taken, counted in `stockd_calls_in_progress`.
struct Slot {
    _permit: OwnedSemaphorePermit,
    gauge: IntGauge,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, gauge: IntGauge) -> Self {
        gauge.inc();
        Self { _permit: permit, gauge }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// Streaming methods: their request is not read before the call (reflection
/// streams requests for as long as it runs), and the call holds its slot
/// only until its response starts (a health watch lasts as long as the
/// client likes). Every inventory.v1 method is unary; a streaming one added
/// to the API belongs here.
fn is_streaming(path: &str) -> bool {
    path.starts_with("/grpc.reflection.") || path == "/grpc.health.v1.Health/Watch"
}

/// Reads the request message within `timeout`, so the call can be admitted
/// with its body in hand.
async fn read_request(
    req: http::Request<Body>,
    info: Option<&ConnInfo>,
    timeout: Duration,
) -> Result<http::Request<Body>, tonic::Status> {
    let (parts, body) = req.into_parts();
    let read = read_body(body, info.map(|i| &*i.conn));
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(bytes)) => Ok(http::Request::from_parts(parts, Body::new(Full::new(bytes)))),
        Err(_) => Err(tonic::Status::deadline_exceeded(format!(
            "the request message did not arrive within {timeout:?} of its headers"
        ))),
        // OUT_OF_RANGE, as tonic answers a message over its own limit: the
        // same message will never fit, and RESOURCE_EXHAUSTED tells callers
        // to retry.
        Ok(Err(BodyError::TooLarge)) => {
            Err(tonic::Status::out_of_range(format!("request message larger than {MAX_REQUEST_BYTES} bytes")))
        }
        Ok(Err(BodyError::ConnectionBudget)) => Err(tonic::Status::resource_exhausted(
            "too many request bytes still arriving on this connection; retry with backoff",
        )),
        Ok(Err(BodyError::Failed(why))) => Err(tonic::Status::cancelled(format!("the request body failed: {why}"))),
    }
}

/// The method label: the path for this API and the standard services,
/// "other" for anything else (so a stray path cannot grow the label set).
fn method_label(path: &str) -> &str {
    if path.starts_with("/inventory.v1.") || path.starts_with("/grpc.") { path } else { "other" }
}

/// The gRPC status code name of a response: from its headers (a
/// trailers-only error), else OK (a unary success sends it in trailers).
fn code_of<B>(resp: &http::Response<B>) -> &'static str {
    let code = resp
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0);
    match tonic::Code::from_i32(code) {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "CANCELLED",
        tonic::Code::Unknown => "UNKNOWN",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::Aborted => "ABORTED",
        tonic::Code::OutOfRange => "OUT_OF_RANGE",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::DataLoss => "DATA_LOSS",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Runs a call; a panic inside it becomes INTERNAL. AssertUnwindSafe: what a
/// handler shares (pools, caches behind locks that recover from poisoning)
/// stays usable, and one call's broken state dies with its future.
async fn answer_panics<F, E>(call: F) -> Result<http::Response<tonic::body::Body>, E>
where
    F: std::future::Future<Output = Result<http::Response<tonic::body::Body>, E>>,
{
    match std::panic::AssertUnwindSafe(call).catch_unwind().await {
        Ok(resp) => resp,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %what, "a gRPC handler panicked; answered INTERNAL");
            Ok(tonic::Status::internal("internal error").into_http())
        }
    }
}

impl<S> Service<http::Request<Body>> for Guard<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<Body>) -> Self::Future {
        let started = Instant::now();
        let path = req.uri().path();
        let method = method_label(path).to_owned();
        let streaming = is_streaming(path);
        // The connection (see limits::Acceptor): the call counts on it from now
        // on, so the connection is not idle while the call runs.
        let info = req.extensions().get::<ConnInfo>().cloned();
        if let Some(i) = &info {
            // Where tonic's Request::remote_addr looks.
            req.extensions_mut().insert(i.tcp.clone());
        }
        let mut call: Option<Call> = info.as_ref().map(|i| i.conn.call());
        // The service that was polled ready serves this call; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let permits = self.permits.clone();
        let draining = self.draining.clone();
        let limits = self.limits;
        let metrics = self.metrics.clone();
        let span = tracing::info_span!("grpc", method = %method);
        Box::pin(
            async move {
                let refuse = |status: tonic::Status| Ok((status.into_http(), None));
                let answered: Result<(http::Response<Body>, Option<Slot>), S::Error> = async {
                    if draining.load(Ordering::SeqCst) {
                        return refuse(tonic::Status::unavailable("shutting down; retry on another replica"));
                    }
                    let req = if streaming {
                        req
                    } else {
                        match read_request(req, info.as_ref(), limits.body_timeout).await {
                            Ok(req) => req,
                            Err(status) => return refuse(status),
                        }
                    };
                    // Draining may have begun while the message arrived.
                    if draining.load(Ordering::SeqCst) {
                        return refuse(tonic::Status::unavailable("shutting down; retry on another replica"));
                    }
                    let Ok(permit) = permits.try_acquire_owned() else {
                        metrics.overload_rejections.inc();
                        tracing::debug!("refused: too many calls in progress");
                        return refuse(tonic::Status::resource_exhausted(
                            "too many calls in progress; retry with backoff",
                        ));
                    };
                    let slot = Slot::new(permit, metrics.calls_in_progress.clone());
                    let resp = answer_panics(inner.call(req)).await?;
                    Ok((resp, Some(slot)))
                }
                .await;
                let (resp, slot) = answered?;
                let code = code_of(&resp);
                metrics
                    .rpc_duration
                    .with_label_values(&[method.as_str(), code])
                    .observe(started.elapsed().as_secs_f64());
                if code != "OK" {
                    tracing::debug!(code, "call failed");
                }
                if streaming {
                    // The slot goes now; the call stays while the stream runs.
                    drop(slot);
                    return Ok(resp.map(|body| Body::new(Held::new(body, call))));
                }
                if let Some(c) = call.as_mut() {
                    c.sending(limits.send_timeout);
                }
                Ok(resp.map(|body| Body::new(Held::new(body, (slot, call)))))
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_paths_share_one_label() {
        assert_eq!(
            method_label("/inventory.v1.ReservationService/Reserve"),
            "/inventory.v1.ReservationService/Reserve"
        );
        assert_eq!(method_label("/grpc.health.v1.Health/Check"), "/grpc.health.v1.Health/Check");
        assert_eq!(method_label("/evil/aaaaaaaa"), "other");
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_internal_and_the_next_call_is_served() {
        let inner = tower::service_fn(|req: http::Request<Body>| async move {
            if req.uri().path().ends_with("/Panic") {
                panic!("handler bug");
            }
            Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
        });
        let metrics = Metrics::new().expect("metrics");
        let limits = CallLimits { body_timeout: Duration::from_secs(5), send_timeout: Duration::from_secs(5) };
        let mut guard = GuardLayer::new(4, limits, metrics).layer(inner);
        let call = |path: &str| http::Request::builder().uri(path).body(Body::empty()).expect("request");

        let panicked = guard.call(call("/inventory.v1.X/Panic")).await.expect("an answer, not an unwind");
        let next = guard.call(call("/inventory.v1.X/Fine")).await.expect("served");

        assert_eq!(code_of(&panicked), "INTERNAL");
        assert_eq!(code_of(&next), "OK");
        // A call holds its slot until its response is sent (here: dropped).
        drop((panicked, next));
        assert_eq!(guard.permits.available_permits(), 4, "the panicked call gave its permit back");
    }

    #[test]
    fn the_code_comes_from_the_headers_or_is_ok() {
        let ok = http::Response::new(());
        assert_eq!(code_of(&ok), "OK");
        let refused = tonic::Status::resource_exhausted("x").into_http::<tonic::body::Body>();
        assert_eq!(code_of(&refused), "RESOURCE_EXHAUSTED");
    }
}
