//! The serving certificate: loading PEM files, and a rustls resolver whose certificate can be
//! swapped while the server runs.
//!
//! rustls asks the resolver for a certificate on every handshake, so swapping the
//! [`CertifiedKey`] behind an [`ArcSwap`] rotates the certificate for new connections without
//! touching established ones: no connection is dropped and no request fails during rotation.

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use clap::Args;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::x509::{self, CertInfo};

#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// PEM certificate chain (leaf first). Reloaded when it changes.
    #[arg(long, env = "ROLLOUT_SAFE_TLS_CERT", value_name = "FILE")]
    pub tls_cert: PathBuf,
    /// PEM private key of the certificate. Reloaded when it changes.
    #[arg(long, env = "ROLLOUT_SAFE_TLS_KEY", value_name = "FILE")]
    pub tls_key: PathBuf,
}

/// Why a certificate/key pair could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate file: no PEM CERTIFICATE block found")]
    NoCertificate,
    #[error("certificate file: {0}")]
    CertificatePem(rustls::pki_types::pem::Error),
    #[error("key file: {0} (expected a PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)")]
    KeyPem(rustls::pki_types::pem::Error),
    #[error("certificate and key: {0}")]
    Key(rustls::Error),
    #[error("certificate: {0}")]
    X509(#[from] x509::X509Error),
}

/// A loaded certificate chain and key, with the leaf's serial and expiry.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    pub info: CertInfo,
}

/// The crypto provider used for serving: ring (aws-lc-rs is a slow C build and not needed).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM certificate chain (leaf first) and its private key, and checks that they match.
pub fn load_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<LoadedCert, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsError::CertificatePem)?;
    let leaf = chain.first().ok_or(TlsError::NoCertificate)?;
    let info = x509::parse(leaf)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if info.expired_at(now) {
        // Still loaded: refusing it would turn an expired certificate into a crash loop (or
        // a reload that never applies) without making TLS work; the API server's handshake
        // fails either way, and this says why.
        tracing::warn!(
            serial = %info.serial_hex(),
            not_after = info.not_after,
            "the serving certificate has already expired; clients will reject the TLS handshake"
        );
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(TlsError::KeyPem)?;
    // from_der parses the key and compares its public half with the leaf's: a cert rotated
    // without its key (or the reverse) is refused here rather than at the next handshake.
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(TlsError::Key)?;
    Ok(LoadedCert {
        key: Arc::new(certified),
        info,
    })
}

/// A certificate resolver whose certificate can be replaced at any time.
#[derive(Debug)]
pub struct ReloadableCert {
    current: ArcSwap<LoadedCert>,
}

impl ReloadableCert {
    pub fn new(cert: LoadedCert) -> Self {
        ReloadableCert {
            current: ArcSwap::from_pointee(cert),
        }
    }

    /// Serves `cert` to every handshake from now on.
    pub fn replace(&self, cert: LoadedCert) {
        self.current.store(Arc::new(cert));
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().key.clone())
    }
}

/// TLS 1.2 and 1.3 only (rustls has no older versions at all), ALPN h2 and http/1.1: the
/// API server's webhook client speaks both.
pub fn server_config(
    resolver: Arc<dyn ResolvesServerCert>,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
