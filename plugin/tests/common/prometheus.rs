//! The metric side of the gate tests: a real Prometheus (Debian's `prometheus` 2.42, a plain
//! binary) scraping a small metrics endpoint whose error rate the test sets per image, and a
//! stand-in of Prometheus's HTTP API for the edge cases (matrix answers, HTTP errors, slow
//! answers) a real one does not produce on demand.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rollout_safe_testkit::ChildGuard;

/// Requests per second each ready pod serves, in the metrics endpoint.
pub const REQUESTS_PER_SECOND: f64 = 100.0;

/// The error-rate gate of the tests, over a window short enough for 1 s scrapes.
pub const ERRORS_GATE: &str = r#"errors: sum(rate(http_requests_total{namespace="{{namespace}}",pod=~"{{pods}}",code=~"5.."}[5s])) / sum(rate(http_requests_total{namespace="{{namespace}}",pod=~"{{pods}}"}[5s])) < 0.01"#;

/// A small HTTP/1.1 server on a loopback port, one thread, one request per connection.
struct TinyServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// One request as the tiny server read it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub path: String,
    /// The decoded `query` parameter, if any.
    pub query: Option<String>,
    pub authorization: Option<String>,
}

impl TinyServer {
    fn start(
        handle: impl Fn(&SeenRequest) -> (u16, String, Duration) + Send + Sync + 'static,
    ) -> std::io::Result<TinyServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let handle = Arc::new(handle);
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let handle = handle.clone();
                        // One thread per connection: a slow answer does not hold up the next.
                        std::thread::spawn(move || serve(stream, handle.as_ref()));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(TinyServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for TinyServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    handle: &(dyn Fn(&SeenRequest) -> (u16, String, Duration) + Send + Sync),
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    let target = first.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut authorization = None;
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "authorization" => authorization = Some(v.trim().to_owned()),
                "content-length" => content_length = v.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; content_length];
    let _ = reader.read_exact(&mut body);
    let (path, params) = target.split_once('?').unwrap_or((&target, ""));
    let query = params
        .split('&')
        .find_map(|kv| kv.strip_prefix("query="))
        .map(percent_decode);
    let seen = SeenRequest {
        path: path.to_owned(),
        query,
        authorization,
    };
    let (status, text, delay) = handle(&seen);
    std::thread::sleep(delay);
    let mut out = stream;
    let _ = write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A pod the metrics endpoint serves for: namespace, name, image, ready.
pub type PodInfo = (String, String, String, bool);

#[derive(Default)]
struct Counters {
    ok: f64,
    errors: f64,
    last: Option<Instant>,
}

/// `http_requests_total{namespace, pod, code}` for every ready pod the test's closure lists,
/// growing at [`REQUESTS_PER_SECOND`], a fraction of them `code="500"`: the fraction set for the
/// pod's image (default 0).
pub struct MetricsEndpoint {
    server: TinyServer,
    error_rates: Arc<Mutex<BTreeMap<String, f64>>>,
    scrapes: Arc<AtomicUsize>,
}

impl MetricsEndpoint {
    pub fn start(pods: impl Fn() -> Vec<PodInfo> + Send + Sync + 'static) -> std::io::Result<Self> {
        let error_rates: Arc<Mutex<BTreeMap<String, f64>>> = Arc::default();
        let scrapes = Arc::new(AtomicUsize::new(0));
        let counters: Arc<Mutex<BTreeMap<String, Counters>>> = Arc::default();
        let (rates, count) = (error_rates.clone(), scrapes.clone());
        let server = TinyServer::start(move |req| {
            if req.path != "/metrics" {
                return (404, String::new(), Duration::ZERO);
            }
            count.fetch_add(1, Ordering::SeqCst);
            let rates = rates.lock().unwrap().clone();
            let mut counters = counters.lock().unwrap();
            let now = Instant::now();
            let mut text = String::from("# TYPE http_requests_total counter\n");
            for (ns, pod, image, ready) in pods() {
                let c = counters.entry(pod.clone()).or_default();
                if let Some(last) = c.last
                    && ready
                {
                    let served = REQUESTS_PER_SECOND * now.duration_since(last).as_secs_f64();
                    let fraction = rates.get(&image).copied().unwrap_or(0.0);
                    c.errors += served * fraction;
                    c.ok += served * (1.0 - fraction);
                }
                c.last = Some(now);
                text.push_str(&format!(
                    "http_requests_total{{namespace=\"{ns}\",pod=\"{pod}\",code=\"200\"}} {}\nhttp_requests_total{{namespace=\"{ns}\",pod=\"{pod}\",code=\"500\"}} {}\n",
                    c.ok.floor(),
                    c.errors.floor()
                ));
            }
            (200, text, Duration::ZERO)
        })?;
        Ok(MetricsEndpoint {
            server,
            error_rates,
            scrapes,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// From now on pods of `image` answer `fraction` of their requests with HTTP 500.
    pub fn set_error_rate(&self, image: &str, fraction: f64) {
        self.error_rates
            .lock()
            .unwrap()
            .insert(image.to_owned(), fraction);
    }

    pub fn scrapes(&self) -> usize {
        self.scrapes.load(Ordering::SeqCst)
    }
}

/// Where the Prometheus binary is: `$ROLLOUT_SAFE_PROMETHEUS_BIN`, else `/usr/bin/prometheus`.
pub fn prometheus_bin() -> Option<PathBuf> {
    let from_env = std::env::var_os("ROLLOUT_SAFE_PROMETHEUS_BIN").map(PathBuf::from);
    from_env
        .into_iter()
        .chain([PathBuf::from("/usr/bin/prometheus")])
        .find(|p| p.is_file())
}

/// A real Prometheus, scraping one target every second, killed when dropped.
pub struct Prometheus {
    url: String,
    child: ChildGuard,
    dir: tempfile::TempDir,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Prometheus {
    /// Starts `bin` scraping `target`'s `/metrics` every second and waits until it is ready
    /// and has scraped the target once.
    pub fn start(
        bin: &PathBuf,
        target: SocketAddr,
    ) -> Result<Prometheus, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: app\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()?;
        let p = Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            child: ChildGuard::new(child),
            dir,
        };
        let started = Instant::now();
        loop {
            if let Ok((200, body)) =
                http_get(&format!("127.0.0.1:{port}"), "/api/v1/query?query=up")
                && body.contains("\"value\"")
                && body.contains(",\"1\"]")
            {
                return Ok(p);
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "Prometheus did not become ready with a scraped target in 60s: {}",
                    p.log()
                )
                .into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What Prometheus logged (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

/// A plain `GET path` to `host:port`: (status, body).
pub fn http_get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// A stand-in of Prometheus's `/api/v1/query`: answers what the test's closure says (status,
/// JSON body, delay), and remembers every query and its `Authorization` header.
pub struct PrometheusApiStandin {
    server: TinyServer,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
}

impl PrometheusApiStandin {
    pub fn start(
        answer: impl Fn(&str) -> (u16, String, Duration) + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let seen: Arc<Mutex<Vec<SeenRequest>>> = Arc::default();
        let log = seen.clone();
        let server = TinyServer::start(move |req| {
            log.lock().unwrap().push(req.clone());
            match (&req.path[..], &req.query) {
                ("/api/v1/query", Some(q)) => answer(q),
                _ => (404, "{}".into(), Duration::ZERO),
            }
        })?;
        Ok(PrometheusApiStandin { server, seen })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }
}

/// A one-sample vector answer.
pub fn vector_answer(value: &str) -> String {
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":[1700000000.5,"{value}"]}}]}}}}"#
    )
}
