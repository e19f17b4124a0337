//! The tower layer in front of every gRPC service: a tracing span per call,
//! latency by method and status code, and load shedding. When more calls
//! are in progress than the limit, a new one is refused at once with
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
use std::time::Instant;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::Semaphore;
use tonic::codegen::http;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::metrics::Metrics;

/// Builds `Guard` services.
#[derive(Clone)]
pub struct GuardLayer {
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    draining: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl GuardLayer {
    /// At most `max_in_flight` calls at once; counts go to `metrics`.
    pub fn new(max_in_flight: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            draining: Arc::new(AtomicBool::new(false)),
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
        Guard { inner, permits: self.permits.clone(), draining: self.draining.clone(), metrics: self.metrics.clone() }
    }
}

/// See the module docs.
#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    permits: Arc<Semaphore>,
    draining: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
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

impl<S, B> Service<http::Request<B>> for Guard<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let method = method_label(req.uri().path()).to_owned();
        let draining = self.draining.load(Ordering::SeqCst);
        let permit = self.permits.clone().try_acquire_owned();
        // The service that was polled ready serves this call; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let metrics = self.metrics.clone();
        let span = tracing::info_span!("grpc", method = %method);
        Box::pin(
            async move {
                let resp = match permit {
                    _ if draining => {
                        Ok(tonic::Status::unavailable("shutting down; retry on another replica").into_http())
                    }
                    Ok(_permit) => answer_panics(inner.call(req)).await,
                    Err(_) => {
                        metrics.overload_rejections.inc();
                        tracing::debug!("refused: too many calls in progress");
                        Ok(tonic::Status::resource_exhausted("too many calls in progress; retry with backoff")
                            .into_http())
                    }
                };
                if let Ok(r) = &resp {
                    let code = code_of(r);
                    metrics
                        .rpc_duration
                        .with_label_values(&[method.as_str(), code])
                        .observe(started.elapsed().as_secs_f64());
                    if code != "OK" {
                        tracing::debug!(code, "call failed");
                    }
                }
                resp
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
        let inner = tower::service_fn(|req: http::Request<()>| async move {
            if req.uri().path().ends_with("/Panic") {
                panic!("handler bug");
            }
            Ok::<_, std::convert::Infallible>(http::Response::new(tonic::body::Body::empty()))
        });
        let metrics = Metrics::new().expect("metrics");
        let mut guard = GuardLayer::new(4, metrics).layer(inner);
        let call = |path: &str| http::Request::builder().uri(path).body(()).expect("request");

        let panicked = guard.call(call("/inventory.v1.X/Panic")).await.expect("an answer, not an unwind");
        let next = guard.call(call("/inventory.v1.X/Fine")).await.expect("served");

        assert_eq!(code_of(&panicked), "INTERNAL");
        assert_eq!(code_of(&next), "OK");
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
