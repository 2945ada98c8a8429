//! An API server whose certificate the plugin cannot trust: the error names the server and the
//! certificate problem (the TLS cause, several layers under kube's `ServiceError`), exit 5.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use clap::Parser;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::commands::app::{self, App};
use crate::error::chain;
use crate::exit::{Exit, exit_code};

/// A certificate for `127.0.0.1` named `name`, self-signed; a CA certificate when `ca`.
fn self_signed(name: &str, ca: bool) -> (rcgen::Certificate, KeyPair) {
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("certificate params");
    params.distinguished_name.push(DnType::CommonName, name);
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
    }
    let key = KeyPair::generate().expect("a key");
    let cert = params.self_signed(&key).expect("a certificate");
    (cert, key)
}

/// A TLS server on loopback presenting `cert`; every handshake is left to fail or not.
async fn serve_tls(cert: &rcgen::Certificate, key: &KeyPair) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("a server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(stream).await;
            });
        }
    });
    addr
}

fn kubeconfig(dir: &Path, server: &str, ca_pem: &str) -> String {
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ca_pem).expect("the CA file");
    let config = dir.join("config");
    std::fs::write(
        &config,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\n\
             clusters:\n- name: c\n  cluster: {{server: \"{server}\", certificate-authority: \"{}\"}}\n\
             contexts:\n- name: test\n  context: {{cluster: c, user: u, namespace: shop}}\n\
             users:\n- name: u\n  user: {{token: t}}\n",
            ca.display()
        ),
    )
    .expect("the kubeconfig");
    config.display().to_string()
}

/// Runs `status deploy/web` against the kubeconfig; returns the message and the exit code.
async fn status(kubeconfig: &str) -> (String, Exit) {
    let app = App::try_parse_from([
        "kubectl-rollout_safe",
        "--kubeconfig",
        kubeconfig,
        "status",
        "deploy/web",
    ])
    .expect("a command line");
    let result = app::run(app).await;
    let message = match &result {
        Err(e) => chain(e),
        Ok(outcome) => panic!("an untrusted API server answered: {outcome:?}"),
    };
    (message, exit_code(&result))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_certificate_serving_the_api_is_named() {
    let dir = tempfile::tempdir().expect("a temp dir");
    // The kubeconfig trusts the very certificate the server presents, but it is a CA
    // certificate, not a serving one: kubectl says `x509: …`, webpki `CaUsedAsEndEntity`.
    let (cert, key) = self_signed("rollout-safe test API server", true);
    let addr = serve_tls(&cert, &key).await;
    let server = format!("https://{addr}");
    let (message, exit) = status(&kubeconfig(dir.path(), &server, &cert.pem())).await;
    assert_eq!(exit, Exit::Cluster, "{message}");
    assert!(
        message.starts_with(&format!(
            "cannot get deployments.apps \"web\" in namespace \"shop\" (API server {server}/)"
        )),
        "{message}"
    );
    assert!(message.contains("invalid peer certificate"), "{message}");
    assert!(message.contains("CaUsedAsEndEntity"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_named() {
    let dir = tempfile::tempdir().expect("a temp dir");
    // The server's certificate is not the one the kubeconfig trusts.
    let (served, key) = self_signed("rollout-safe test API server", false);
    let (trusted, _) = self_signed("rollout-safe test CA", true);
    let addr = serve_tls(&served, &key).await;
    let server = format!("https://{addr}");
    let (message, exit) = status(&kubeconfig(dir.path(), &server, &trusted.pem())).await;
    assert_eq!(exit, Exit::Cluster, "{message}");
    assert!(message.contains(&server), "{message}");
    assert!(
        message.contains("invalid peer certificate: UnknownIssuer"),
        "{message}"
    );
}
