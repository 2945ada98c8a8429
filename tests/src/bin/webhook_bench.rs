//! Webhook benchmark: concurrent keep-alive HTTPS load on /validate and /mutate with the
//! recorded Deployment reviews, against the real webhook and against two no-op floor servers on
//! the same stack (`rollout_safe_webhook::serve_https`: axum + hyper + rustls/ring), which
//! decode the body, as any webhook must to echo the uid, and answer "allowed" without running a
//! policy:
//!
//! - `floor`: a kube-rs webhook as written by the book, the body read as
//!   `AdmissionReview<DynamicObject>`;
//! - `lean-floor`: the body read as the real webhook reads it (kube's `AdmissionRequest`, the
//!   objects left as raw JSON text), so the real server's cost beyond it is the policy alone.
//!
//! All run as child processes, so their CPU time and RSS are measured apart from the load
//! generator (from /proc, Linux only).
//!
//! ```text
//! cargo run --release -p rollout-safe-tests --bin webhook-bench -- [--duration 5s] [--rate 5000] [--connections 32]
//! ```
//!
//! Two loads per endpoint: a fixed rate (open loop; latency counted from the scheduled send
//! time whenever the previous request ran late, so queueing is not hidden) and as fast as the
//! connections go (closed loop). Prints a markdown table.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::{get, post};
use rollout_safe_tests::fixtures::recorded_reviews;
use rollout_safe_tests::{HttpsClient, TestCa};

struct Options {
    duration: Duration,
    rate: u32,
    connections: usize,
}

fn parse_args(args: &[String]) -> Options {
    let mut opts = Options {
        duration: Duration::from_secs(5),
        rate: 5000,
        connections: 32,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--duration" => {
                opts.duration =
                    humantime_secs(&value()).unwrap_or_else(|| usage("--duration like 5s"));
            }
            "--rate" => opts.rate = value().parse().unwrap_or_else(|_| usage("--rate N")),
            "--connections" => {
                opts.connections = value().parse().unwrap_or_else(|_| usage("--connections N"))
            }
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if opts.connections == 0
        || opts.rate == 0
        || opts.duration.is_zero()
        || opts.duration > Duration::from_secs(120)
    {
        usage("need connections > 0, rate > 0 and 0 < duration <= 120s");
    }
    opts
}

fn humantime_secs(s: &str) -> Option<Duration> {
    let n: f64 = s.strip_suffix('s').unwrap_or(s).parse().ok()?;
    (n > 0.0).then(|| Duration::from_secs_f64(n))
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("webhook-bench: {msg}");
    }
    eprintln!("usage: webhook-bench [--duration 5s] [--rate 5000] [--connections 32]");
    std::process::exit(2)
}

// ---------------------------------------------------------------- child servers

/// The floor: a no-op webhook on the same stack — axum + rustls, the body decoded as a
/// kube `AdmissionReview<DynamicObject>` (a webhook must, to echo the uid) and answered
/// "allowed". What the real server costs beyond it is the policy and its glue.
fn floor_router() -> Router {
    async fn allow(body: Bytes) -> axum::response::Response {
        use axum::response::IntoResponse;
        use kube::core::DynamicObject;
        use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
        let review: AdmissionReview<DynamicObject> = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => return (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        };
        let req: AdmissionRequest<DynamicObject> = match review.try_into() {
            Ok(r) => r,
            Err(e) => return (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        };
        axum::Json(AdmissionResponse::from(&req).into_review()).into_response()
    }
    Router::new()
        .route("/validate", post(allow))
        .route("/mutate", post(allow))
        .route("/healthz", get(|| async { "ok\n" }))
}

/// The lean floor: the request read exactly as the real webhook reads it
/// (`rollout_safe_webhook::admission::parse_review`: the envelope decoded, the objects kept as
/// JSON text) and the answer encoded as it encodes it, with no policy in between.
fn lean_floor_router() -> Router {
    async fn allow(body: Bytes) -> axum::response::Response {
        use axum::response::IntoResponse;
        use kube::core::admission::AdmissionResponse;
        use rollout_safe_webhook::admission::{encode_review, parse_review};
        let req = match parse_review(&body) {
            Ok(r) => r,
            Err(e) => return e.into_response(),
        };
        match encode_review(AdmissionResponse::from(&req)) {
            Ok(json) => (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                json,
            )
                .into_response(),
            Err(e) => {
                (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
            }
        }
    }
    Router::new()
        .route("/validate", post(allow))
        .route("/mutate", post(allow))
        .route("/healthz", get(|| async { "ok\n" }))
}

async fn run_child(kind: &str, cert: &str, key: &str) {
    let announce = |addr: SocketAddr| {
        println!("LISTENING {addr}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
    };
    match kind {
        "real" => {
            // As deployed: JSON logs at info (denials are logged), here into the void.
            rollout_safe_webhook::log::init_tracing(rollout_safe_webhook::LogFormat::Json);
            let mut args = rollout_safe_webhook::ServeArgs::new(cert, key);
            args.server.addr = "127.0.0.1:0".parse().expect("addr");
            args.server.metrics_addr = "127.0.0.1:0".parse().expect("addr");
            args.cluster.kubernetes_version = Some("1.33".into());
            let server = rollout_safe_webhook::Server::bind(args)
                .await
                .expect("webhook starts");
            announce(server.local_addr());
            server
                .run(rollout_safe_webhook::shutdown_signal())
                .await
                .expect("webhook runs");
        }
        "floor" | "lean-floor" => {
            use rollout_safe_webhook::tls;
            let provider = tls::provider();
            let cert_pem = std::fs::read(cert).expect("cert");
            let key_pem = std::fs::read(key).expect("key");
            let loaded = tls::load_pem(&cert_pem, &key_pem, &provider).expect("certificate");
            let resolver = Arc::new(tls::ReloadableCert::new(loaded));
            let config = tls::server_config(resolver, provider).expect("TLS config");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            announce(listener.local_addr().expect("addr"));
            rollout_safe_webhook::serve_https(
                listener,
                config,
                if kind == "floor" {
                    floor_router()
                } else {
                    lean_floor_router()
                },
                rollout_safe_webhook::shutdown_signal(),
                Duration::from_secs(5),
            )
            .await;
        }
        other => usage(&format!("unknown child kind {other}")),
    }
}

struct ChildServer {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
}

impl ChildServer {
    fn spawn(name: &'static str, cert: &std::path::Path, key: &std::path::Path) -> ChildServer {
        let exe = std::env::current_exe().expect("own path");
        let mut child = Command::new(exe)
            .arg("--child")
            .arg(name)
            .arg(cert)
            .arg(key)
            .env(
                "ROLLOUT_SAFE_LOG",
                std::env::var("ROLLOUT_SAFE_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read LISTENING");
        let addr = line
            .trim()
            .strip_prefix("LISTENING ")
            .unwrap_or_else(|| panic!("{name}: unexpected first line {line:?}"))
            .parse()
            .expect("address");
        ChildServer { name, child, addr }
    }

    /// (user + system CPU seconds, current RSS bytes, peak RSS bytes).
    fn usage(&self) -> (f64, u64, u64) {
        let pid = self.child.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let cpu = (ticks(11) + ticks(12)) / hz;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kb = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        (cpu, kb("VmRSS:"), kb("VmHWM:"))
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- load

#[derive(Default)]
struct Sample {
    latencies_us: Vec<u32>,
    errors: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Load {
    Rate(u32),
    Max,
}

/// One phase's shape, shared by its connections.
#[derive(Clone, Copy)]
struct Plan {
    path: &'static str,
    load: Load,
    connections: usize,
    start: Instant,
    end: Instant,
}

async fn worker(client: HttpsClient, bodies: Arc<Vec<Bytes>>, plan: Plan, index: usize) -> Sample {
    let Plan {
        path,
        load,
        connections,
        start,
        end,
    } = plan;
    let mut sample = Sample::default();
    let mut conn = match client.connect().await {
        Ok(c) => c,
        Err(_) => {
            sample.errors += 1;
            return sample;
        }
    };
    let interval = match load {
        Load::Rate(r) => Some(Duration::from_secs_f64(connections as f64 / f64::from(r))),
        Load::Max => None,
    };
    // Stagger the connections' schedules across one interval.
    let offset = interval.map(|i| i.mul_f64(index as f64 / connections as f64));
    let mut prev_done = start;
    let mut n: u32 = 0;
    loop {
        let body = bodies[(index + n as usize) % bodies.len()].clone();
        let base = match (interval, offset) {
            (Some(iv), Some(off)) => {
                let intended = start + off + iv * n;
                if intended >= end {
                    break;
                }
                if prev_done <= intended {
                    tokio::time::sleep_until(intended.into()).await;
                    // On schedule: count from the actual send (timer lateness is not the server's).
                    Instant::now()
                } else {
                    // Running late because the previous answer was slow: count from the schedule.
                    intended
                }
            }
            _ => {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                now
            }
        };
        match conn.post(path, body).await {
            Ok(r) if r.status == 200 => {
                let done = Instant::now();
                sample.latencies_us.push(
                    done.duration_since(base)
                        .as_micros()
                        .min(u128::from(u32::MAX)) as u32,
                );
                prev_done = done;
            }
            _ => {
                sample.errors += 1;
                prev_done = Instant::now();
                match client.connect().await {
                    Ok(c) => conn = c,
                    Err(_) => return sample,
                }
            }
        }
        n += 1;
    }
    sample
}

struct Row {
    server: &'static str,
    path: &'static str,
    load: Load,
    requests: usize,
    errors: usize,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    cpu_us: f64,
    rss_mb: f64,
}

async fn phase(
    server: &ChildServer,
    client: &HttpsClient,
    bodies: &Arc<Vec<Bytes>>,
    path: &'static str,
    load: Load,
    opts: &Options,
) -> Row {
    let (cpu0, _, _) = server.usage();
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + opts.duration;
    let plan = Plan {
        path,
        load,
        connections: opts.connections,
        start,
        end,
    };
    let tasks: Vec<_> = (0..opts.connections)
        .map(|i| tokio::spawn(worker(client.clone(), bodies.clone(), plan, i)))
        .collect();
    // RSS under load: sampled in the middle of the phase.
    tokio::time::sleep_until((start + opts.duration / 2).into()).await;
    let (_, rss, _) = server.usage();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let s = t.await.expect("worker");
        all.extend(s.latencies_us);
        errors += s.errors;
    }
    let elapsed = Instant::now()
        .duration_since(start)
        .as_secs_f64()
        .min(opts.duration.as_secs_f64() + 1.0);
    let (cpu1, _, _) = server.usage();
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return f64::NAN;
        }
        let i = ((all.len() as f64 - 1.0) * p).round() as usize;
        f64::from(all[i]) / 1000.0
    };
    Row {
        server: server.name,
        path,
        load,
        requests: all.len(),
        errors,
        rps: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: all.last().map_or(f64::NAN, |m| f64::from(*m) / 1000.0),
        cpu_us: if all.is_empty() {
            f64::NAN
        } else {
            (cpu1 - cpu0) * 1e6 / all.len() as f64
        },
        rss_mb: rss as f64 / (1024.0 * 1024.0),
    }
}

fn bodies(mutating: bool) -> Vec<Bytes> {
    recorded_reviews()
        .into_iter()
        .filter(|r| r.is_mutating() == mutating)
        .filter(|r| {
            r.review["request"]["kind"]["kind"] == "Deployment"
                && r.review["request"]["subResource"].is_null()
        })
        .map(|r| Bytes::from(r.bytes))
        .collect()
}

async fn drive(opts: Options) {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::new();
    let issued = ca.issue(1, 2031);
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, &issued.cert_pem).expect("cert");
    std::fs::write(&key, &issued.key_pem).expect("key");
    let validate = Arc::new(bodies(false));
    let mutate = Arc::new(bodies(true));
    eprintln!(
        "webhook-bench: {} validating + {} mutating Deployment reviews, {} connections, {:?} per phase, fixed rate {} req/s",
        validate.len(),
        mutate.len(),
        opts.connections,
        opts.duration,
        opts.rate
    );

    let mut rows = Vec::new();
    let mut peaks = Vec::new();
    for name in ["floor", "lean-floor", "real"] {
        let server = ChildServer::spawn(name, &cert, &key);
        let client = HttpsClient::new(&ca.pem(), server.addr);
        // Warm-up: connections, allocator, branch predictors.
        let warm = Options {
            duration: Duration::from_millis(500),
            ..opts
        };
        let _ = phase(&server, &client, &validate, "/validate", Load::Max, &warm).await;
        for (path, bodies) in [("/validate", &validate), ("/mutate", &mutate)] {
            for load in [Load::Rate(opts.rate), Load::Max] {
                let row = phase(&server, &client, bodies, path, load, &opts).await;
                eprintln!(
                    "  {name} {path} {}: {:.0} req/s p99 {:.2} ms",
                    load_label(load),
                    row.rps,
                    row.p99_ms
                );
                rows.push(row);
            }
        }
        let (_, _, hwm) = server.usage();
        peaks.push((name, hwm as f64 / (1024.0 * 1024.0)));
        server.stop();
    }
    print_table(&rows, &peaks);
}

fn load_label(load: Load) -> String {
    match load {
        Load::Rate(r) => format!("{r} req/s"),
        Load::Max => "max".into(),
    }
}

/// `a / b` as a ratio cell.
fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}×", a / b)
}

fn print_table(rows: &[Row], peaks: &[(&str, f64)]) {
    println!(
        "| server | endpoint | load | requests | errors | req/s | p50 ms | p99 ms | max ms | CPU µs/req | RSS MB |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} |",
            r.server,
            r.path,
            load_label(r.load),
            r.requests,
            r.errors,
            r.rps,
            r.p50_ms,
            r.p99_ms,
            r.max_ms,
            r.cpu_us,
            r.rss_mb,
        );
    }
    // Each server against each floor below it: p99 and CPU at the fixed rate, req/s at max.
    println!(
        "\n| server | endpoint | against | p99 at fixed rate | CPU/req at fixed rate | CPU/req at max | req/s at max |"
    );
    println!("|---|---|---|---:|---:|---:|---:|");
    let find = |server: &str, path: &str, max: bool| {
        rows.iter()
            .find(|r| r.server == server && r.path == path && (r.load == Load::Max) == max)
    };
    for server in ["lean-floor", "real"] {
        for floor in ["floor", "lean-floor"] {
            if floor == server {
                continue;
            }
            for path in ["/validate", "/mutate"] {
                let (Some(r), Some(f), Some(rm), Some(fm)) = (
                    find(server, path, false),
                    find(floor, path, false),
                    find(server, path, true),
                    find(floor, path, true),
                ) else {
                    continue;
                };
                println!(
                    "| {server} | {path} | {floor} | {} | {} | {} | {} |",
                    ratio(r.p99_ms, f.p99_ms),
                    ratio(r.cpu_us, f.cpu_us),
                    ratio(rm.cpu_us, fm.cpu_us),
                    ratio(rm.rps, fm.rps),
                );
            }
        }
    }
    for (name, mb) in peaks {
        println!("\npeak RSS ({name}): {mb:.1} MB");
    }
    println!(
        "\nmachine: {} CPUs (load generator and server share them)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if args.first().map(String::as_str) == Some("--child") {
        let [_, kind, cert, key] = args.as_slice() else {
            usage("--child KIND CERT KEY");
        };
        runtime.block_on(run_child(kind, cert, key));
        return;
    }
    let opts = parse_args(&args);
    runtime.block_on(drive(opts));
}
