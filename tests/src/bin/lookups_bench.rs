//! Cluster lookups at scale: the real webhook binary with `--cluster-lookups` against the
//! stand-in API server holding 50,000 running pods (realistic: full spec, status and managed
//! fields, about 4 KB each), 2,000 PodDisruptionBudgets and 500 HorizontalPodAutoscalers,
//! spread over 100 namespaces. The stand-in answers a `resourceVersion=0` list whole, as the
//! API server's watch cache does.
//!
//! Measured: the time from start to every cache synced (the webhook's
//! `rollout_safe_cluster_cache_ready` gauges), the webhook's RSS (now and peak, from /proc),
//! admission latency on `/validate` (the recorded Deployment and Service reviews, namespace
//! `shop`) at a fixed rate while the watch streams pod changes, against the same webhook without
//! lookups under the same churn; and, from the stand-in's request log, that no admission
//! request made the webhook list anything.
//!
//! ```text
//! cargo build --release -p rollout-safe-webhook -p rollout-safe-tests --bin rollout-safe-webhook --bin lookups-bench
//! target/release/lookups-bench [--pods 50000] [--pdbs 2000] [--hpas 500] [--churn 200] [--rate 500] [--duration 20s]
//! ```
//!
//! The webhook binary is looked for beside this one (or given with `--webhook`). Prints a
//! markdown table.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rollout_safe_standin::{Standin, StandinError, Store, StoreError, Verb, seed};
use rollout_safe_tests::client::plain_get;
use rollout_safe_tests::fixtures::recorded_reviews;
use rollout_safe_tests::{HttpsClient, TestCa};
use serde_json::json;

/// The namespace of the recorded reviews: some of the pods, PDBs and HPAs are there.
const REVIEW_NAMESPACE: &str = "shop";
const NAMESPACES: usize = 100;

struct Options {
    pods: usize,
    pdbs: usize,
    hpas: usize,
    churn: u32,
    rate: u32,
    connections: usize,
    duration: Duration,
    /// The webhook binary (default: beside this one).
    webhook: Option<PathBuf>,
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("lookups-bench: {msg}");
    }
    eprintln!(
        "usage: lookups-bench [--pods N] [--pdbs N] [--hpas N] [--churn CHANGES_PER_S] [--rate REQ_PER_S] [--connections N] [--duration 20s] [--webhook PATH]"
    );
    std::process::exit(2)
}

fn parse_args(args: &[String]) -> Options {
    let mut o = Options {
        pods: 50_000,
        pdbs: 2_000,
        hpas: 500,
        churn: 200,
        rate: 500,
        connections: 8,
        duration: Duration::from_secs(20),
        webhook: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        let number = |v: String| -> usize {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{a}: not a number: {v}")))
        };
        match a.as_str() {
            "--pods" => o.pods = number(value()),
            "--pdbs" => o.pdbs = number(value()),
            "--hpas" => o.hpas = number(value()),
            "--churn" => o.churn = number(value()) as u32,
            "--rate" => o.rate = number(value()) as u32,
            "--connections" => o.connections = number(value()),
            "--duration" => {
                let v = value();
                let secs: f64 = v
                    .strip_suffix('s')
                    .unwrap_or(&v)
                    .parse()
                    .unwrap_or_else(|_| usage("--duration like 20s"));
                o.duration = Duration::from_secs_f64(secs);
            }
            "--webhook" => o.webhook = Some(PathBuf::from(value())),
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if o.rate == 0 || o.connections == 0 || o.duration.is_zero() || o.pods < NAMESPACES {
        usage("need --rate > 0, --connections > 0, --duration > 0 and --pods >= 100");
    }
    o
}

/// Why the bench could not run.
#[derive(Debug, thiserror::Error)]
enum BenchError {
    #[error(transparent)]
    Standin(#[from] StandinError),
    #[error("seeding the stand-in")]
    Seed(#[from] StoreError),
    #[error("cannot {what}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> BenchError {
    move |source| BenchError::Io { what, source }
}

fn namespace(i: usize) -> String {
    if i == 0 {
        REVIEW_NAMESPACE.to_owned()
    } else {
        format!("team-{i:03}")
    }
}

/// The cluster: pods in Deployments of 50 (app `svc-<n>`), one PDB per app up to `pdbs`, one
/// HPA per app up to `hpas`, round-robin over the namespaces. Returns the JSON bytes seeded.
fn seed_cluster(store: &mut Store, o: &Options) -> Result<usize, StoreError> {
    let mut bytes = 0;
    for i in 0..o.pods {
        let ns = namespace(i % NAMESPACES);
        let app = format!("svc-{}", (i / NAMESPACES) / 50);
        let mut pod = seed::running_pod(&format!("{app}-6d9f7c8b5-{i:06}"), &app, i, true);
        pod["metadata"]["namespace"] = json!(ns);
        bytes += pod.to_string().len();
        store.put("pods", pod)?;
    }
    for i in 0..o.pdbs {
        let ns = namespace(i % NAMESPACES);
        let app = format!("svc-{}", i / NAMESPACES);
        let mut pdb = seed::pdb(&app, &app);
        pdb["metadata"]["namespace"] = json!(ns);
        bytes += pdb.to_string().len();
        store.put("poddisruptionbudgets", pdb)?;
    }
    for i in 0..o.hpas {
        let ns = namespace(i % NAMESPACES);
        let app = format!("svc-{}", i / NAMESPACES);
        let mut hpa = seed::hpa(&app, &app);
        hpa["metadata"]["namespace"] = json!(ns);
        bytes += hpa.to_string().len();
        store.put("horizontalpodautoscalers", hpa)?;
    }
    Ok(bytes)
}

/// Flips the readiness of `per_second` pods a second (spread over the cluster), until `stop`.
fn churn(standin: Arc<Standin>, pods: usize, per_second: u32, stop: Arc<AtomicBool>) -> u64 {
    let mut changed = 0u64;
    if per_second == 0 {
        return 0;
    }
    let tick = Duration::from_millis(50);
    let per_tick = (per_second as usize).div_ceil(20);
    let start = Instant::now();
    let mut next = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let due = start + tick * (changed as u32 / per_tick as u32 + 1);
        standin.modify(|s| {
            for _ in 0..per_tick {
                // A stride coprime with the count walks every pod before repeating one.
                let i = (next * 7919) % pods;
                next += 1;
                let ns = namespace(i % NAMESPACES);
                let app = format!("svc-{}", (i / NAMESPACES) / 50);
                let name = format!("{app}-6d9f7c8b5-{i:06}");
                let Some(mut pod) = s.get("pods", &ns, &name).cloned() else {
                    continue;
                };
                let ready = &mut pod["status"]["conditions"][2]["status"];
                *ready = json!(if *ready == "True" { "False" } else { "True" });
                if s.put("pods", pod).is_ok() {
                    changed += 1;
                }
            }
        });
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    changed
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| usage(&format!("no free port: {e}")))
}

struct Webhook {
    child: Child,
    addr: SocketAddr,
    metrics: SocketAddr,
}

impl Webhook {
    fn spawn(exe: &Path, dir: &Path, kubeconfig: Option<&Path>, log: &str) -> Webhook {
        let addr = free_port();
        let metrics = free_port();
        let mut cmd = Command::new(exe);
        cmd.arg("serve")
            .arg("--tls-cert")
            .arg(dir.join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.join("tls.key"))
            .arg("--addr")
            .arg(addr.to_string())
            .arg("--metrics-addr")
            .arg(metrics.to_string())
            .arg("--kubernetes-version")
            .arg("1.33")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("ROLLOUT_SAFE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(dir.join(log))
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            );
        match kubeconfig {
            Some(k) => cmd.arg("--cluster-lookups").env("KUBECONFIG", k),
            None => cmd.env("KUBECONFIG", "/nonexistent"),
        };
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| usage(&format!("cannot start {}: {e}", exe.display())));
        Webhook {
            child,
            addr,
            metrics,
        }
    }

    /// (current RSS, peak RSS) in MB.
    fn rss_mb(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let kb = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
    }

    async fn metrics_text(&self) -> String {
        plain_get(self.metrics, "/metrics")
            .await
            .map(|r| r.text())
            .unwrap_or_default()
    }

    /// Waits until the server answers /metrics and, with lookups, every cache is synced.
    async fn wait_ready(&self, caches: &[&str], limit: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        loop {
            let text = self.metrics_text().await;
            let synced = caches.iter().all(|c| {
                text.lines().any(|l| {
                    l.starts_with("rollout_safe_cluster_cache_ready")
                        && l.contains(&format!("\"{c}\""))
                        && l.ends_with(" 1")
                })
            });
            if !text.is_empty() && synced {
                return Ok(start.elapsed());
            }
            if start.elapsed() > limit {
                return Err(format!("not ready after {limit:?}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

struct Latency {
    requests: usize,
    errors: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

/// Open-loop load on /validate: each connection sends on its schedule; a late answer makes the
/// next request count from its scheduled time (queueing is not hidden).
async fn load(client: &HttpsClient, bodies: Arc<Vec<Bytes>>, o: &Options) -> Latency {
    let start = Instant::now() + Duration::from_millis(50);
    let end = start + o.duration;
    let interval = Duration::from_secs_f64(o.connections as f64 / f64::from(o.rate));
    let tasks: Vec<_> = (0..o.connections)
        .map(|c| {
            let client = client.clone();
            let bodies = bodies.clone();
            let offset = interval.mul_f64(c as f64 / o.connections as f64);
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut errors = 0;
                let Ok(mut conn) = client.connect().await else {
                    return (lat, 1);
                };
                let mut prev_done = start;
                for n in 0u32.. {
                    let intended = start + offset + interval * n;
                    if intended >= end {
                        break;
                    }
                    let base = if prev_done <= intended {
                        tokio::time::sleep_until(intended.into()).await;
                        Instant::now()
                    } else {
                        intended
                    };
                    let body = bodies[(c + n as usize) % bodies.len()].clone();
                    match conn.post("/validate", body).await {
                        Ok(r) if r.status == 200 => {
                            let done = Instant::now();
                            lat.push(done.duration_since(base).as_micros() as u64);
                            prev_done = done;
                        }
                        _ => {
                            errors += 1;
                            prev_done = Instant::now();
                            match client.connect().await {
                                Ok(c) => conn = c,
                                Err(_) => break,
                            }
                        }
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len().max(1) - 1) as f64 * p).round() as usize)
            .map_or(f64::NAN, |v| *v as f64 / 1000.0)
    };
    Latency {
        requests: all.len(),
        errors,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        max_ms: all.last().map_or(f64::NAN, |v| *v as f64 / 1000.0),
    }
}

fn review_bodies() -> Vec<Bytes> {
    recorded_reviews()
        .into_iter()
        .filter(|r| !r.is_mutating())
        .filter(|r| {
            let kind = &r.review["request"]["kind"]["kind"];
            (kind == "Deployment" || kind == "Service")
                && r.review["request"]["subResource"].is_null()
        })
        .map(|r| Bytes::from(r.bytes))
        .collect()
}

/// Churn in the background for the span of `f`.
async fn with_churn<T>(
    standin: &Arc<Standin>,
    o: &Options,
    f: impl std::future::Future<Output = T>,
) -> (T, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let handle = {
        let (standin, stop) = (standin.clone(), stop.clone());
        let (pods, rate) = (o.pods, o.churn);
        std::thread::spawn(move || churn(standin, pods, rate, stop))
    };
    let out = f.await;
    stop.store(true, Ordering::Relaxed);
    let changed = handle.join().unwrap_or(0);
    (out, changed)
}

async fn run(o: Options) -> Result<(), BenchError> {
    let webhook_exe: PathBuf = o
        .webhook
        .clone()
        .or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(|d| d.join("rollout-safe-webhook")))
        })
        .filter(|p| p.exists())
        .unwrap_or_else(|| {
            usage("build rollout-safe-webhook first: it is looked for beside lookups-bench")
        });
    let t = Instant::now();
    let mut seeded = 0;
    let builder = Standin::builder(REVIEW_NAMESPACE)
        .worker_threads(2)
        .seed(|s| {
            seeded = seed_cluster(s, &o)?;
            Ok::<_, StoreError>(())
        })?;
    let standin = Arc::new(builder.start()?);
    eprintln!(
        "stand-in: {} pods, {} PDBs, {} HPAs in {NAMESPACES} namespaces ({:.0} MB of JSON), seeded in {:.1}s",
        o.pods,
        o.pdbs,
        o.hpas,
        seeded as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir().map_err(io("temp dir"))?;
    let ca = TestCa::new();
    let issued = ca.issue(1, 2031);
    std::fs::write(dir.path().join("tls.crt"), &issued.cert_pem).map_err(io("write tls.crt"))?;
    std::fs::write(dir.path().join("tls.key"), &issued.key_pem).map_err(io("write tls.key"))?;
    let bodies = Arc::new(review_bodies());

    // Without lookups, under the same churn (the stand-in's work competes for the same cores).
    let plain = Webhook::spawn(&webhook_exe, dir.path(), None, "plain.log");
    if let Err(e) = plain.wait_ready(&[], Duration::from_secs(30)).await {
        usage(&format!("the webhook without lookups: {e}"));
    }
    let client = HttpsClient::new(&ca.pem(), plain.addr);
    let (plain_lat, plain_churned) =
        with_churn(&standin, &o, load(&client, bodies.clone(), &o)).await;
    let plain_rss = plain.rss_mb();
    plain.stop();

    // With lookups: sync, then the same load under churn.
    let log_from = standin.requests().len();
    let started = Instant::now();
    let looked = Webhook::spawn(
        &webhook_exe,
        dir.path(),
        Some(standin.kubeconfig()),
        "lookups.log",
    );
    let synced = match looked
        .wait_ready(
            &["pods", "poddisruptionbudgets", "horizontalpodautoscalers"],
            Duration::from_secs(300),
        )
        .await
    {
        Ok(_) => started.elapsed(),
        Err(e) => usage(&format!("the webhook with lookups: {e}")),
    };
    let synced_rss = looked.rss_mb();
    let admission_from = standin.requests().len();
    let client = HttpsClient::new(&ca.pem(), looked.addr);
    let load_bytes = Arc::new(AtomicU64::new(0));
    let (lookup_lat, churned) = with_churn(&standin, &o, load(&client, bodies.clone(), &o)).await;
    let after_rss = looked.rss_mb();
    let requests = standin.requests();
    let during_admission = &requests[admission_from..];
    let lists_during_admission: Vec<String> = during_admission
        .iter()
        .filter(|r| r.verb == Verb::List)
        .map(|r| r.uri())
        .collect();
    // The sync's requests by verb and resource: (count, bytes, first URI).
    let mut syncing: std::collections::BTreeMap<(String, String), (usize, u64, String)> =
        std::collections::BTreeMap::new();
    for r in &requests[log_from..admission_from] {
        let e = syncing
            .entry((r.verb.to_string(), r.resource.clone()))
            .or_insert_with(|| (0, 0, r.uri()));
        e.0 += 1;
        e.1 += r.response_bytes;
    }
    let watched_bytes: u64 = requests[log_from..]
        .iter()
        .filter(|r| r.verb == Verb::Watch)
        .map(|r| r.response_bytes)
        .sum();
    load_bytes.store(watched_bytes, Ordering::Relaxed);
    looked.stop();

    println!(
        "\n## Cluster lookups at scale: {} running pods (~{:.1} KB each), {} PDBs, {} HPAs, {NAMESPACES} namespaces\n",
        o.pods,
        seeded as f64 / o.pods as f64 / 1000.0,
        o.pdbs,
        o.hpas
    );
    println!("| | value | goal |\n|---|---:|---|");
    println!(
        "| time to sync (start → all three caches ready) | {:.2} s | |",
        synced.as_secs_f64()
    );
    println!(
        "| webhook RSS after sync (peak while syncing) | {:.0} MB ({:.0} MB) | ≤ 150 MB |",
        synced_rss.0, synced_rss.1
    );
    println!(
        "| webhook RSS after {:.0} s of {} pod changes/s and admission load (peak) | {:.0} MB ({:.0} MB) | ≤ 150 MB |",
        o.duration.as_secs_f64(),
        o.churn,
        after_rss.0,
        after_rss.1
    );
    println!("| webhook RSS without lookups | {:.0} MB | |", plain_rss.0);
    println!(
        "| /validate p50 / p99 / max at {} req/s, no lookups ({} pod changes/s in the stand-in) | {:.2} / {:.2} / {:.2} ms ({} requests, {} errors) | |",
        o.rate,
        plain_churned as f64 / o.duration.as_secs_f64(),
        plain_lat.p50_ms,
        plain_lat.p99_ms,
        plain_lat.max_ms,
        plain_lat.requests,
        plain_lat.errors
    );
    println!(
        "| /validate p50 / p99 / max at {} req/s, lookups, watch streaming {:.0} pod changes/s | {:.2} / {:.2} / {:.2} ms ({} requests, {} errors) | p99 unchanged within noise |",
        o.rate,
        churned as f64 / o.duration.as_secs_f64(),
        lookup_lat.p50_ms,
        lookup_lat.p99_ms,
        lookup_lat.max_ms,
        lookup_lat.requests,
        lookup_lat.errors
    );
    println!(
        "| LIST requests made while admitting | {} | 0 |",
        lists_during_admission.len()
    );
    println!(
        "| bytes streamed to the webhook by its watches | {:.1} MB | |",
        load_bytes.load(Ordering::Relaxed) as f64 / 1e6
    );
    println!("\nThe webhook's requests while syncing (by verb and resource):");
    for ((verb, resource), (count, bytes, first)) in &syncing {
        println!(
            "- {count} {verb} of {resource}, {:.1} MB, the first `{first}`",
            *bytes as f64 / 1e6
        );
    }
    if !lists_during_admission.is_empty() {
        eprintln!("lookups-bench: LIST requests during admission: {lists_during_admission:?}");
        std::process::exit(1);
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = parse_args(&args);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| usage(&format!("no runtime: {e}")));
    if let Err(e) = runtime.block_on(run(o)) {
        let mut text = format!("lookups-bench: {e}");
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        eprintln!("{text}");
        std::process::exit(1);
    }
}
