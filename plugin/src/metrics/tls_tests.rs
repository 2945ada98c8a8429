//! The Prometheus client over TLS: a CA file as `--prometheus-certificate-authority` gives it,
//! the bearer token, and the certificate problem named when the CA is not given.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{MetricsError, Prometheus, PrometheusOptions};

/// A CA, and a serving certificate for 127.0.0.1 it signed.
fn ca_and_leaf() -> (rcgen::Certificate, rcgen::Certificate, KeyPair) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "rollout-safe test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().expect("a key");
    let ca = ca_params.self_signed(&ca_key).expect("the CA");
    let mut leaf_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("leaf params");
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "prometheus");
    let leaf_key = KeyPair::generate().expect("a key");
    let leaf = leaf_params
        .signed_by(&leaf_key, &ca, &ca_key)
        .expect("the leaf");
    (ca, leaf, leaf_key)
}

/// An HTTPS server answering every request with one vector sample; it records each
/// request's head.
async fn serve(leaf: &rcgen::Certificate, key: &KeyPair, seen: Arc<Mutex<Vec<String>>>) -> String {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
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
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let mut buf = vec![0u8; 8192];
                let n = tls.read(&mut buf).await.unwrap_or(0);
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let body = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.25"]}]}}"#;
                let _ = tls
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    format!("https://{addr}")
}

fn options(url: &str) -> PrometheusOptions {
    PrometheusOptions {
        url: url.to_owned(),
        token: None,
        token_file: None,
        ca_file: None,
        insecure_skip_tls_verify: false,
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_file_and_a_token_file_reach_an_https_prometheus() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (ca, leaf, key) = ca_and_leaf();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let url = serve(&leaf, &key, seen.clone()).await;
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("the CA file");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret\n").expect("the token file");
    let prometheus = Prometheus::new(&PrometheusOptions {
        ca_file: Some(ca_file),
        token_file: Some(token_file),
        ..options(&url)
    })
    .expect("a client");
    let answer = prometheus.query("up == 1").await.expect("an answer");
    assert_eq!(answer["data"]["result"][0]["value"][1], "0.25");
    let head = seen.lock().unwrap()[0].clone();
    assert!(
        head.starts_with("GET /api/v1/query?query=up%20%3D%3D%201 "),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("authorization: bearer s3cret\r\n"),
        "{head}"
    );

    // Without the CA: no answer, and the certificate problem is named.
    let e = Prometheus::new(&options(&url))
        .expect("a client")
        .query("up")
        .await
        .expect_err("an untrusted certificate");
    assert!(matches!(e, MetricsError::Unreachable { .. }), "{e:?}");
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    assert!(
        text.starts_with(&format!("cannot reach Prometheus {url}")),
        "{text}"
    );
    assert!(text.contains("UnknownIssuer"), "{text}");

    // --prometheus-insecure-skip-tls-verify: answered.
    let insecure = Prometheus::new(&PrometheusOptions {
        insecure_skip_tls_verify: true,
        ..options(&url)
    })
    .expect("a client");
    assert!(insecure.query("up").await.is_ok());
}
