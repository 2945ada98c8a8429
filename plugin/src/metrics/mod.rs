//! Prometheus's HTTP API, as the metric gates use it: one instant query
//! (`GET /api/v1/query?query=…`), with a bearer token and a CA file as kubectl users pass them.
//! I/O only: what an answer means is `rollout_safe_policy::gates::reading_from_response`.
//!
//! The bottom layer: it imports nothing of the plugin. The HTTP/TLS stack is kube's (hyper,
//! hyper-util, rustls), reused through `kube::Client::send`, which hands back the raw
//! response: nothing Kubernetes-specific happens to the request or the answer.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::client::Body;
use serde_json::Value;

/// How to reach Prometheus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrometheusOptions {
    /// The base URL (`http://prometheus.monitoring:9090`, or with a path prefix).
    pub url: String,
    /// A bearer token sent with every query.
    pub token: Option<String>,
    /// A file holding the bearer token (read once).
    pub token_file: Option<PathBuf>,
    /// PEM CA certificates to trust for an `https` URL.
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_tls_verify: bool,
    /// How long one query may take (connect and answer): longer is no answer.
    pub timeout: Duration,
}

/// A query that got no usable answer, or a client that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("--prometheus {url:?} is not a URL like http://prometheus:9090: {message}")]
    BadUrl { url: String, message: String },
    #[error("cannot read the Prometheus token file {}", .path.display())]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the Prometheus CA file {}", .path.display())]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the Prometheus CA file {} holds no PEM certificate ({message})", .path.display())]
    CaFileContent { path: PathBuf, message: String },
    #[error("the Prometheus token is not a valid HTTP header value")]
    BadToken,
    #[error("cannot build an HTTP client for Prometheus {url}")]
    Client {
        url: String,
        #[source]
        source: kube::Error,
    },
    #[error("Prometheus {url} did not answer within {}s", .timeout.as_secs_f64())]
    Timeout { url: String, timeout: Duration },
    #[error("cannot reach Prometheus {url}")]
    Unreachable {
        url: String,
        #[source]
        source: kube::Error,
    },
    /// Prometheus refused the query itself (400 bad_data, 422 execution): the query is wrong.
    #[error("Prometheus {url} refused the query (HTTP {status}): {error_type}: {error}")]
    Rejected {
        url: String,
        status: u16,
        error_type: String,
        error: String,
    },
    /// Any other HTTP error (503 while starting, a proxy's 502, 401 without a token).
    #[error("Prometheus {url} answered HTTP {status}: {body}")]
    Http {
        url: String,
        status: u16,
        body: String,
    },
    #[error("Prometheus {url} answered something that is not JSON")]
    NotJson {
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

impl MetricsError {
    /// The query itself is at fault (a 400/422 from Prometheus), not the connection.
    pub fn is_rejected_query(&self) -> bool {
        matches!(self, MetricsError::Rejected { .. })
    }
}

/// A client for one Prometheus.
#[derive(Clone)]
pub struct Prometheus {
    client: kube::Client,
    url: String,
    timeout: Duration,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("url", &self.url)
            .finish()
    }
}

impl Prometheus {
    /// Builds the client (reads the token and CA files; connects on the first query).
    pub fn new(opts: &PrometheusOptions) -> Result<Self, MetricsError> {
        let url = opts.url.trim_end_matches('/').to_owned();
        let bad = |message: String| MetricsError::BadUrl {
            url: opts.url.clone(),
            message,
        };
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(e.to_string()))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => return Err(bad("the scheme must be http or https".into())),
        }
        if uri.host().is_none() {
            return Err(bad("there is no host".into()));
        }
        let mut config = kube::Config::new(uri);
        config.connect_timeout = Some(opts.timeout);
        config.read_timeout = Some(opts.timeout);
        config.write_timeout = Some(opts.timeout);
        // A gate's check is retried by the next interval, not by the client.
        config.default_retry = false;
        config.accept_invalid_certs = opts.insecure_skip_tls_verify;
        if let Some(path) = &opts.ca_file {
            config.root_cert = Some(read_pem_certificates(path)?);
        }
        let token = match (&opts.token, &opts.token_file) {
            (Some(t), _) => Some(t.trim().to_owned()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|source| MetricsError::TokenFile {
                        path: path.clone(),
                        source,
                    })?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        if let Some(t) = token.filter(|t| !t.is_empty()) {
            let mut value = http::HeaderValue::from_str(&format!("Bearer {t}"))
                .map_err(|_| MetricsError::BadToken)?;
            value.set_sensitive(true);
            config.headers.push((http::header::AUTHORIZATION, value));
        }
        let client = kube::Client::try_from(config).map_err(|source| MetricsError::Client {
            url: url.clone(),
            source,
        })?;
        Ok(Prometheus {
            client,
            url,
            timeout: opts.timeout,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs an instant query; `Ok`: Prometheus's JSON answer with HTTP 200.
    pub async fn query(&self, promql: &str) -> Result<Value, MetricsError> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let request = http::Request::get(path)
            .header(http::header::ACCEPT, "application/json")
            .body(Body::empty())
            .map_err(|e| MetricsError::BadUrl {
                url: self.url.clone(),
                message: e.to_string(),
            })?;
        let exchange =
            async {
                let response = self.client.send(request).await.map_err(|source| {
                    MetricsError::Unreachable {
                        url: self.url.clone(),
                        source,
                    }
                })?;
                let status = response.status().as_u16();
                let body = response
                    .into_body()
                    .collect_bytes()
                    .await
                    .map_err(|source| MetricsError::Unreachable {
                        url: self.url.clone(),
                        source,
                    })?;
                Ok::<_, MetricsError>((status, body))
            };
        // The client's read timeout covers a silent peer; this covers a slow trickle too.
        let (status, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| MetricsError::Timeout {
                url: self.url.clone(),
                timeout: self.timeout,
            })??;
        let json: Result<Value, _> = serde_json::from_slice(&body);
        match (status, json) {
            (200, Ok(v)) => Ok(v),
            (200, Err(source)) => Err(MetricsError::NotJson {
                url: self.url.clone(),
                source,
            }),
            (400 | 422, Ok(v)) if v.get("status").and_then(Value::as_str) == Some("error") => {
                Err(MetricsError::Rejected {
                    url: self.url.clone(),
                    status,
                    error_type: text_field(&v, "errorType"),
                    error: text_field(&v, "error"),
                })
            }
            (status, _) => Err(MetricsError::Http {
                url: self.url.clone(),
                status,
                body: String::from_utf8_lossy(&body).chars().take(300).collect(),
            }),
        }
    }
}

fn text_field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Percent-encodes a query-string value (RFC 3986 unreserved characters stay).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The DER bytes of every `CERTIFICATE` block of a PEM file.
fn read_pem_certificates(path: &Path) -> Result<Vec<Vec<u8>>, MetricsError> {
    let text = std::fs::read_to_string(path).map_err(|source| MetricsError::CaFile {
        path: path.to_owned(),
        source,
    })?;
    let content = |message: String| MetricsError::CaFileContent {
        path: path.to_owned(),
        message,
    };
    let mut certs = Vec::new();
    let mut rest = text.as_str();
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    while let Some(start) = rest.find(BEGIN) {
        let body = &rest[start + BEGIN.len()..];
        let end = body
            .find(END)
            .ok_or_else(|| content(format!("a {BEGIN} has no {END}")))?;
        let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64_decode(&b64).ok_or_else(|| {
            content(format!(
                "certificate {} is not valid base64",
                certs.len() + 1
            ))
        })?;
        certs.push(der);
        rest = &body[end + END.len()..];
    }
    if certs.is_empty() {
        return Err(content(format!("no {BEGIN} block")));
    }
    Ok(certs)
}

/// Standard base64 with padding (PEM bodies).
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes = s.trim_end_matches('=').as_bytes();
    if !s.len().is_multiple_of(4) || s.len() - bytes.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tls_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_percent_encoded() {
        assert_eq!(
            percent_encode(r#"sum(rate(x{pod=~"a|b"}[1m])) < 0.01"#),
            "sum%28rate%28x%7Bpod%3D~%22a%7Cb%22%7D%5B1m%5D%29%29%20%3C%200.01"
        );
    }

    #[test]
    fn pem_bodies_decode() {
        assert_eq!(base64_decode("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(base64_decode("aGVsbG8h").as_deref(), Some(&b"hello!"[..]));
        assert_eq!(base64_decode("aGk="), Some(b"hi".to_vec()));
        assert_eq!(base64_decode("a"), None);
        assert_eq!(base64_decode("a*=="), None);
    }

    #[test]
    fn bad_options_are_clear_errors() {
        let opts = |url: &str| PrometheusOptions {
            url: url.into(),
            token: None,
            token_file: None,
            ca_file: None,
            insecure_skip_tls_verify: false,
            timeout: Duration::from_secs(1),
        };
        for bad in ["prometheus:9090", "ftp://x", "not a url"] {
            let e = Prometheus::new(&opts(bad)).unwrap_err();
            assert!(matches!(e, MetricsError::BadUrl { .. }), "{bad}: {e}");
            assert!(e.to_string().contains(bad), "{e}");
        }
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.pem");
        let e = Prometheus::new(&PrometheusOptions {
            ca_file: Some(missing.clone()),
            ..opts("https://p:9090")
        })
        .unwrap_err();
        assert!(e.to_string().contains("nope.pem"), "{e}");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello").unwrap();
        let e = Prometheus::new(&PrometheusOptions {
            ca_file: Some(junk),
            ..opts("https://p:9090")
        })
        .unwrap_err();
        assert!(matches!(e, MetricsError::CaFileContent { .. }), "{e}");
        let e = Prometheus::new(&PrometheusOptions {
            token_file: Some(missing),
            ..opts("https://p:9090")
        })
        .unwrap_err();
        assert!(matches!(e, MetricsError::TokenFile { .. }), "{e}");
    }
}
