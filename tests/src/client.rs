//! A real HTTPS client (tokio-rustls + hyper's connection API) that trusts one CA, with control
//! over connections: the tests need to know which connection a request used and which
//! certificate that connection saw.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::client::conn::{http1, http2};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Request bodies: a whole buffer or a paced stream.
pub type Body = BoxBody<Bytes, Infallible>;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A body sent as `chunks` with `pause` before each: a slow uploader.
pub fn slow_body(chunks: Vec<Bytes>, pause: Duration) -> Body {
    let stream = futures::stream::unfold(chunks.into_iter(), move |mut it| async move {
        let chunk = it.next()?;
        tokio::time::sleep(pause).await;
        Some((Ok::<_, Infallible>(Frame::data(chunk)), it))
    });
    StreamBody::new(stream).boxed()
}

/// An HTTPS client for one server address.
#[derive(Clone)]
pub struct HttpsClient {
    connector: TlsConnector,
    addr: SocketAddr,
    http2: bool,
}

impl HttpsClient {
    /// Trusts only `ca_pem`; speaks HTTP/1.1 unless [`HttpsClient::http2`].
    pub fn new(ca_pem: &str, addr: SocketAddr) -> Self {
        Self::with_versions(
            ca_pem,
            addr,
            &[&rustls::version::TLS13, &rustls::version::TLS12],
            false,
        )
    }

    /// As [`HttpsClient::new`], offering only the given TLS versions.
    pub fn with_versions(
        ca_pem: &str,
        addr: SocketAddr,
        versions: &[&'static rustls::SupportedProtocolVersion],
        http2: bool,
    ) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.expect("CA PEM")).expect("CA certificate");
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = if http2 {
            vec![b"h2".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        HttpsClient {
            connector: TlsConnector::from(Arc::new(config)),
            addr,
            http2,
        }
    }

    /// The same client speaking HTTP/2 (ALPN h2).
    pub fn http2(&self) -> Self {
        let mut c = self.clone();
        let mut config = (*self.connector_config()).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        c.connector = TlsConnector::from(Arc::new(config));
        c.http2 = true;
        c
    }

    fn connector_config(&self) -> Arc<rustls::ClientConfig> {
        self.connector.config().clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Opens a new TLS connection (SNI `localhost`) and does the HTTP handshake.
    pub async fn connect(&self) -> Result<Conn, Error> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from("localhost")?;
        let tls = self.connector.connect(name, tcp).await?;
        let (_, session) = tls.get_ref();
        let peer_cert = session
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .unwrap_or_default();
        let alpn = session.alpn_protocol().map(|p| p.to_vec());
        let io = TokioIo::new(tls);
        let sender = if self.http2 {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Sender::H2(sender)
        } else {
            let (sender, conn) = http1::handshake(io).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Sender::H1(sender)
        };
        Ok(Conn {
            sender,
            peer_cert,
            alpn,
        })
    }

    /// One request on a fresh connection.
    pub async fn post(&self, path: &str, body: impl Into<Bytes>) -> Result<Reply, Error> {
        self.connect().await?.post(path, body).await
    }

    pub async fn get(&self, path: &str) -> Result<Reply, Error> {
        self.connect().await?.get(path).await
    }
}

enum Sender {
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

/// One open connection (keep-alive: send as many requests as you like).
pub struct Conn {
    sender: Sender,
    /// DER of the certificate the server presented on this connection.
    pub peer_cert: Vec<u8>,
    pub alpn: Option<Vec<u8>>,
}

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {}", self.text()))
    }
}

impl Conn {
    pub async fn send(&mut self, method: Method, path: &str, body: Body) -> Result<Reply, Error> {
        let uri = match self.sender {
            // HTTP/2 needs an absolute URI (:scheme and :authority pseudo-headers).
            Sender::H2(_) => format!("https://localhost{path}"),
            Sender::H1(_) => path.to_string(),
        };
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(body)?;
        let resp = match &mut self.sender {
            Sender::H1(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
            Sender::H2(s) => {
                s.ready().await?;
                s.send_request(req).await?
            }
        };
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Reply {
            status,
            content_type,
            body,
        })
    }

    pub async fn post(&mut self, path: &str, body: impl Into<Bytes>) -> Result<Reply, Error> {
        self.send(Method::POST, path, full(body)).await
    }

    pub async fn get(&mut self, path: &str) -> Result<Reply, Error> {
        self.send(Method::GET, path, full(Bytes::new())).await
    }
}

/// GET over plain HTTP (the metrics port).
pub async fn plain_get(addr: SocketAddr, path: &str) -> Result<Reply, Error> {
    let tcp = TcpStream::connect(addr).await?;
    let (mut sender, conn) = http1::handshake::<_, Body>(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::builder()
        .uri(path)
        .header("host", addr.to_string())
        .body(full(Bytes::new()))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        content_type,
        body,
    })
}
