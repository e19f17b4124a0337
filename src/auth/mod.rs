//! Access control for an internal service: optional TLS (with client
//! certificates) and bearer tokens with two roles.
//!
//! - TLS: `STOCKD_TLS_CERT` + `STOCKD_TLS_KEY` (PEM) turn it on;
//!   `STOCKD_TLS_CLIENT_CA` also requires client certificates that CA signed.
//!   See [`tls_config`].
//! - Tokens: `STOCKD_AUTH_TOKENS_FILE` holds one `<role> <token>` per line
//!   (`#` comments and blank lines ignored; roles `checkout` and `admin`;
//!   tokens of at least 16 printable ASCII characters). Calls then need
//!   `authorization: Bearer <token>`: none or an unknown token is
//!   UNAUTHENTICATED, a role that may not call the method is PERMISSION_DENIED.
//!   The file is read once at start-up (a rotated Secret needs a restart).
//!
//! **Open without a token:** `grpc.health.v1.Health/*` (Kubernetes probes)
//! and `grpc.reflection.*` (`grpcurl list`/`describe`). They tell whether the
//! service is up and what its schema is, never any data. The full table is in
//! [`policy`].
//!
//! Tokens never appear in a log line, an error or Debug output; denied calls
//! are logged at info with the method and the role.

pub mod policy;
pub mod tls;
pub mod tokens;

use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::Context as _;
use futures::future::{Either, Ready, ready};
use tonic::codegen::http;
use tower::Service;

pub use self::policy::Decision;
pub use self::tls::tls_config;
pub use self::tokens::{Role, TokenFileError, Tokens};
use crate::config::Config;

/// The tower layer that checks bearer tokens (None when tokens are off).
/// Debug shows only how many tokens each role has.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    tokens: Arc<Tokens>,
}

impl AuthLayer {
    /// The layer the config asks for; None when `auth_tokens_file` is unset.
    /// A missing, unreadable or invalid file is an error naming the file (and
    /// the line), never a token.
    pub fn from_config(config: &Config) -> anyhow::Result<Option<AuthLayer>> {
        let Some(path) = &config.auth_tokens_file else {
            return Ok(None);
        };
        let layer = AuthLayer::from_file(path)?;
        tracing::info!(
            file = %path.display(),
            checkout = layer.tokens.count(Role::Checkout),
            admin = layer.tokens.count(Role::Admin),
            "bearer tokens required (health and reflection stay open)"
        );
        if config.tls_cert.is_none() {
            tracing::warn!("bearer tokens are on but TLS is off: tokens cross the network in clear text");
        }
        Ok(Some(layer))
    }

    /// Reads a token file.
    pub fn from_file(path: &Path) -> anyhow::Result<AuthLayer> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("STOCKD_AUTH_TOKENS_FILE={}: cannot read the file", path.display()))?;
        let tokens = Tokens::parse(&text)
            .with_context(|| format!("STOCKD_AUTH_TOKENS_FILE={}: invalid token file", path.display()))?;
        Ok(AuthLayer::new(tokens))
    }

    /// A layer over parsed tokens.
    pub fn new(tokens: Tokens) -> AuthLayer {
        AuthLayer { tokens: Arc::new(tokens) }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService { inner, tokens: self.tokens.clone() }
    }
}

/// Checks each call's token against the method before the inner service
/// sees it; refused calls get a gRPC status and never reach it. An allowed
/// call carries its [`Role`] in the request extensions.
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    tokens: Arc<Tokens>,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for AuthService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<S::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        let path = req.uri().path();
        let header = req.headers().get(http::header::AUTHORIZATION).map(http::HeaderValue::as_bytes);
        let status = match policy::decide(&self.tokens, path, header) {
            Decision::Open => None,
            Decision::Allowed(role) => {
                req.extensions_mut().insert(role);
                None
            }
            Decision::Unauthenticated(why) => {
                tracing::info!(method = path, role = "none", reason = why, "call refused: unauthenticated");
                Some(tonic::Status::unauthenticated(why))
            }
            Decision::Denied(role) => {
                tracing::info!(method = path, role = role.as_str(), "call refused: permission denied");
                Some(tonic::Status::permission_denied(format!("role {role} may not call {path}")))
            }
        };
        match status {
            None => Either::Left(self.inner.call(req)),
            Some(status) => Either::Right(ready(Ok(status.into_http()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::{Layer, ServiceExt};

    use super::*;

    const CHECKOUT: &str = "ck_0123456789abcdef";
    const ADMIN: &str = "ad_0123456789abcdef";

    /// An inner service that answers 200 with the role it was given.
    #[derive(Clone)]
    struct Echo;

    impl Service<http::Request<()>> for Echo {
        type Response = http::Response<String>;
        type Error = Infallible;
        type Future = Ready<Result<Self::Response, Infallible>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, req: http::Request<()>) -> Self::Future {
            let role = req.extensions().get::<Role>().map_or("none", |r| r.as_str());
            ready(Ok(http::Response::new(format!("called as {role}"))))
        }
    }

    fn layer() -> AuthLayer {
        AuthLayer::new(Tokens::parse(&format!("checkout {CHECKOUT}\nadmin {ADMIN}\n")).expect("parses"))
    }

    async fn call(path: &str, token: Option<&str>) -> http::Response<String> {
        let mut req = http::Request::builder().uri(format!("http://stockd{path}"));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        layer().layer(Echo).oneshot(req.body(()).expect("request")).await.expect("infallible")
    }

    fn grpc_status(r: &http::Response<String>) -> Option<&str> {
        r.headers().get("grpc-status").and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn a_refused_call_gets_a_grpc_status_and_never_reaches_the_service() {
        let r = call("/inventory.v1.StockService/AdjustStock", None).await;
        assert_eq!(grpc_status(&r), Some("16"), "UNAUTHENTICATED");
        assert_eq!(r.body(), "", "the inner service was not called");
        let r = call("/inventory.v1.StockService/AdjustStock", Some(CHECKOUT)).await;
        assert_eq!(grpc_status(&r), Some("7"), "PERMISSION_DENIED");
        assert_eq!(r.body(), "");
    }

    #[tokio::test]
    async fn an_allowed_call_reaches_the_service_with_its_role() {
        let r = call("/inventory.v1.ReservationService/Reserve", Some(CHECKOUT)).await;
        assert_eq!((grpc_status(&r), r.body().as_str()), (None, "called as checkout"));
        let r = call("/inventory.v1.StockService/AdjustStock", Some(ADMIN)).await;
        assert_eq!(r.body(), "called as admin");
        let r = call("/grpc.health.v1.Health/Check", None).await;
        assert_eq!(r.body(), "called as none");
    }

    #[test]
    fn debug_output_of_the_layer_never_shows_a_token() {
        let shown = format!("{:?}", layer().layer("inner service"));
        assert!(!shown.contains(CHECKOUT) && !shown.contains(ADMIN), "{shown}");
        assert!(shown.contains("admin: 1"), "{shown}");
    }

    #[test]
    fn a_token_file_error_names_the_file_and_line_but_not_the_token() {
        let path = std::env::temp_dir().join(format!("stockd-tokens-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, "# tokens\nadmin short-secret\n").expect("write");
        let e = format!("{:#}", AuthLayer::from_file(&path).expect_err("short token"));
        let _ = std::fs::remove_file(&path);
        assert!(e.contains("STOCKD_AUTH_TOKENS_FILE") && e.contains(&path.display().to_string()), "{e}");
        assert!(e.contains("line 2") && !e.contains("short-secret"), "{e}");
        let e = format!("{:#}", AuthLayer::from_file(&path).expect_err("gone"));
        assert!(e.contains("cannot read") && e.contains(&path.display().to_string()), "{e}");
    }
}
