//! Access control for an internal service: optional TLS (with client
//! certificates) and bearer tokens with two roles. Being written.

use tonic::transport::ServerTlsConfig;

use crate::config::Config;

/// The tower layer that checks bearer tokens (None when tokens are off).
#[derive(Clone, Debug, Default)]
pub struct AuthLayer;

impl AuthLayer {
    /// The layer the config asks for; None when `auth_tokens_file` is unset.
    pub fn from_config(_config: &Config) -> anyhow::Result<Option<AuthLayer>> {
        Ok(None)
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = S;
    fn layer(&self, inner: S) -> S {
        inner
    }
}

/// The TLS settings the config asks for; None when TLS is off.
pub fn tls_config(_config: &Config) -> anyhow::Result<Option<ServerTlsConfig>> {
    Ok(None)
}
