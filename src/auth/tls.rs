//! Server TLS from PEM files (rustls through tonic), optionally requiring
//! client certificates signed by a CA (mutual TLS).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::config::Config;

/// A client that has not finished the TLS handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS settings the config asks for: None when neither `STOCKD_TLS_CERT`
/// nor `STOCKD_TLS_KEY` is set. Every file is read and checked here, so a
/// missing, unreadable or invalid file fails start-up with an error naming
/// its variable and path (never its contents).
pub fn tls_config(config: &Config) -> anyhow::Result<Option<ServerTlsConfig>> {
    let (cert_path, key_path) = match (&config.tls_cert, &config.tls_key) {
        (None, None) => {
            if let Some(ca) = &config.tls_client_ca {
                bail!(
                    "STOCKD_TLS_CLIENT_CA={} is set but TLS is off: mutual TLS also needs STOCKD_TLS_CERT and STOCKD_TLS_KEY",
                    ca.display()
                );
            }
            return Ok(None);
        }
        (Some(_), None) => bail!("STOCKD_TLS_CERT is set without STOCKD_TLS_KEY: set both to turn TLS on"),
        (None, Some(_)) => bail!("STOCKD_TLS_KEY is set without STOCKD_TLS_CERT: set both to turn TLS on"),
        (Some(cert), Some(key)) => (cert, key),
    };
    let cert = read_pem("STOCKD_TLS_CERT", cert_path, Pem::Certificate)?;
    let key = read_pem("STOCKD_TLS_KEY", key_path, Pem::PrivateKey)?;
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key)).timeout(HANDSHAKE_TIMEOUT);
    check(&tls).with_context(|| {
        format!(
            "STOCKD_TLS_CERT={} with STOCKD_TLS_KEY={}: not a usable certificate and key",
            cert_path.display(),
            key_path.display()
        )
    })?;
    if let Some(ca_path) = &config.tls_client_ca {
        let ca = read_pem("STOCKD_TLS_CLIENT_CA", ca_path, Pem::Certificate)?;
        tls = tls.client_ca_root(Certificate::from_pem(ca));
        check(&tls)
            .with_context(|| format!("STOCKD_TLS_CLIENT_CA={}: not a usable CA certificate", ca_path.display()))?;
    }
    Ok(Some(tls))
}

#[derive(Clone, Copy)]
enum Pem {
    Certificate,
    PrivateKey,
}

/// Reads a PEM file and checks it holds the expected kind of block.
fn read_pem(var: &str, path: &Path, kind: Pem) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("{var}={}: cannot read the file", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    let problem = match kind {
        Pem::Certificate if !text.contains("-----BEGIN CERTIFICATE-----") => {
            Some("no PEM certificate (-----BEGIN CERTIFICATE-----) in the file")
        }
        Pem::PrivateKey if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") => {
            Some("the private key is encrypted; give an unencrypted PEM key")
        }
        Pem::PrivateKey if !(text.contains("-----BEGIN ") && text.contains(" PRIVATE KEY-----")) => {
            Some("no PEM private key (-----BEGIN ... PRIVATE KEY-----) in the file")
        }
        _ => None,
    };
    if let Some(why) = problem {
        bail!("{var}={}: {why}", path.display());
    }
    Ok(bytes)
}

/// Builds the TLS acceptor the way the server will, to fail now rather than
/// at the first connection.
fn check(tls: &ServerTlsConfig) -> anyhow::Result<()> {
    Server::builder().tls_config(tls.clone()).map(drop).map_err(anyhow::Error::new)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use rcgen::{CertificateParams, Issuer, KeyPair};

    use super::*;

    /// Files in a fresh directory, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new() -> Dir {
            let d = std::env::temp_dir().join(format!("stockd-tls-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&d).expect("temp dir");
            Dir(d)
        }
        fn file(&self, name: &str, content: &str) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, content).expect("write");
            p
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A CA certificate, and a server certificate and key it signed.
    fn pki() -> (String, String, String) {
        let ca_key = KeyPair::generate().expect("key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec!["localhost".to_string()])
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("signed");
        (ca.pem(), cert.pem(), key.serialize_pem())
    }

    fn config(cert: Option<&PathBuf>, key: Option<&PathBuf>, ca: Option<&PathBuf>) -> Config {
        Config { tls_cert: cert.cloned(), tls_key: key.cloned(), tls_client_ca: ca.cloned(), ..Config::default() }
    }

    fn message(r: anyhow::Result<Option<ServerTlsConfig>>) -> String {
        format!("{:#}", r.expect_err("refused"))
    }

    #[test]
    fn no_files_means_no_tls() {
        assert!(tls_config(&Config::default()).expect("ok").is_none());
    }

    #[test]
    fn a_valid_certificate_and_key_turn_tls_on_with_or_without_a_client_ca() {
        let d = Dir::new();
        let (ca, cert, key) = pki();
        let (ca, cert, key) = (d.file("ca.pem", &ca), d.file("cert.pem", &cert), d.file("key.pem", &key));
        assert!(tls_config(&config(Some(&cert), Some(&key), None)).expect("tls").is_some());
        assert!(tls_config(&config(Some(&cert), Some(&key), Some(&ca))).expect("mtls").is_some());
    }

    #[test]
    fn a_certificate_without_a_key_or_a_ca_without_tls_is_refused() {
        let d = Dir::new();
        let (ca, cert, _) = pki();
        let (ca, cert) = (d.file("ca.pem", &ca), d.file("cert.pem", &cert));
        assert!(message(tls_config(&config(Some(&cert), None, None))).contains("STOCKD_TLS_KEY"));
        assert!(message(tls_config(&config(None, Some(&cert), None))).contains("STOCKD_TLS_CERT"));
        assert!(message(tls_config(&config(None, None, Some(&ca)))).contains("STOCKD_TLS_CLIENT_CA"));
    }

    #[test]
    fn a_missing_file_is_named() {
        let d = Dir::new();
        let (_, cert, key) = pki();
        let (cert, key) = (d.file("cert.pem", &cert), d.file("key.pem", &key));
        let gone = d.0.join("gone.pem");
        let m = message(tls_config(&config(Some(&gone), Some(&key), None)));
        assert!(m.contains("STOCKD_TLS_CERT") && m.contains("gone.pem"), "{m}");
        let m = message(tls_config(&config(Some(&cert), Some(&gone), None)));
        assert!(m.contains("STOCKD_TLS_KEY") && m.contains("gone.pem"), "{m}");
        let m = message(tls_config(&config(Some(&cert), Some(&key), Some(&gone))));
        assert!(m.contains("STOCKD_TLS_CLIENT_CA") && m.contains("gone.pem"), "{m}");
    }

    #[test]
    fn an_invalid_file_is_named_without_its_contents() {
        let d = Dir::new();
        let (_, cert, key) = pki();
        let (cert_path, key_path) = (d.file("cert.pem", &cert), d.file("key.pem", &key));
        let junk = d.file("junk.pem", "not a pem file\n");
        let m = message(tls_config(&config(Some(&junk), Some(&key_path), None)));
        assert!(m.contains("STOCKD_TLS_CERT") && m.contains("junk.pem"), "{m}");
        let m = message(tls_config(&config(Some(&cert_path), Some(&junk), None)));
        assert!(m.contains("STOCKD_TLS_KEY") && m.contains("junk.pem"), "{m}");
        let m = message(tls_config(&config(Some(&cert_path), Some(&key_path), Some(&junk))));
        assert!(m.contains("STOCKD_TLS_CLIENT_CA") && m.contains("junk.pem"), "{m}");
        // The key file given as the certificate (and the other way round).
        let m = message(tls_config(&config(Some(&key_path), Some(&cert_path), None)));
        assert!(m.contains("STOCKD_TLS_CERT") && !m.contains("PRIVATE KEY-----\n"), "{m}");
        // Base64 that does not decode: found only by parsing.
        let broken = d.file("broken.pem", "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
        let m = message(tls_config(&config(Some(&broken), Some(&key_path), None)));
        assert!(m.contains("STOCKD_TLS_CERT") && m.contains("broken.pem"), "{m}");
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate_is_refused() {
        let d = Dir::new();
        let (_, cert, _) = pki();
        let (_, _, other_key) = pki();
        let (cert, key) = (d.file("cert.pem", &cert), d.file("key.pem", &other_key));
        let m = message(tls_config(&config(Some(&cert), Some(&key), None)));
        assert!(m.contains("STOCKD_TLS_CERT") && m.contains("STOCKD_TLS_KEY"), "{m}");
    }
}
