//! Audit throughput: documents audited per second, end to end through the binary
//! (`audit -R -o json`), next to a baseline binary, the parse-only floor and checkov on the very
//! same files; then time per document and peak memory as one namespace grows to 100,000
//! documents.
//!
//!   cargo build --release -p kubectl-rollout-safe
//!   cargo bench -p kubectl-rollout-safe --bench audit_throughput -- \
//!       [--docs 2360] [--runs 5] [--baseline PATH] [--checkov PATH] [--scale 1000,10000,100000]
//!
//! The corpus is `../shared/corpus` (or `$ROLLOUT_SAFE_CORPUS`), else the repository's own
//! manifests, copied until the scratch tree holds `--docs` documents. `--baseline` (or
//! `$ROLLOUT_SAFE_BASELINE`) is another build of the binary measured side by side, such as the
//! release binary of the branch point; checkov is `--checkov`, `$CHECKOV` or `checkov` on PATH.
//! Every timing is the median of `--runs` runs; peak memory is the child's max RSS. The machine's
//! load average is printed: figures from a busy machine are lower bounds.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rollout_safe_policy::fast_yaml::read_value;
use rollout_safe_policy::{parse_documents, read_reference, split_documents};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// A run of a binary: wall time, peak RSS in KiB, exit code.
struct Run {
    wall: Duration,
    max_rss_kib: i64,
    code: Option<i32>,
}

/// Runs `cmd` with stdout discarded, measuring wall time and the child's peak RSS.
fn measure(mut cmd: Command) -> Run {
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let t = Instant::now();
    let child = cmd.spawn().expect("the binary starts");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our own unreaped child; `status` and `usage` are valid for writes.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = t.elapsed();
    assert_eq!(waited, pid, "wait4 failed");
    std::mem::forget(child); // reaped above
    Run {
        wall,
        max_rss_kib: usage.ru_maxrss,
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
    }
}

/// Each binary of `exes` audited `dir` `runs` times, taking turns so that a change in the
/// machine's speed (a shared VM's is not steady) weighs on all of them alike: per binary,
/// (median wall, largest peak RSS in KiB).
fn audit_binaries(exes: &[&Path], dir: &Path, runs: usize) -> Vec<(Duration, i64)> {
    let mut walls = vec![Vec::new(); exes.len()];
    let mut rss = vec![0; exes.len()];
    for _ in 0..runs {
        for (i, exe) in exes.iter().enumerate() {
            let mut cmd = Command::new(exe);
            cmd.args(["audit", "-R", "-o", "json", "-f"]).arg(dir);
            let r = measure(cmd);
            assert!(
                matches!(r.code, Some(0 | 2 | 3)),
                "{} audit failed: {:?}",
                exe.display(),
                r.code
            );
            walls[i].push(r.wall);
            rss[i] = rss[i].max(r.max_rss_kib);
        }
    }
    walls.into_iter().map(median).zip(rss).collect()
}

/// The binary audited `dir` `runs` times: (median wall, largest peak RSS in KiB).
fn audit_binary(exe: &Path, dir: &Path, runs: usize) -> (Duration, i64) {
    audit_binaries(&[exe], dir, runs)[0]
}

/// Copies `files` into `dir` `copies` times over.
fn copy_tree(files: &[PathBuf], dir: &Path, copies: usize) {
    let _ = std::fs::remove_dir_all(dir);
    for c in 0..copies {
        let sub = dir.join(format!("copy{c:04}"));
        std::fs::create_dir_all(&sub).unwrap();
        for (i, f) in files.iter().enumerate() {
            std::fs::copy(
                f,
                sub.join(format!(
                    "{i:03}-{}",
                    f.file_name().unwrap().to_string_lossy()
                )),
            )
            .unwrap();
        }
    }
}

/// How the parse-only floor reads YAML.
#[derive(Clone, Copy)]
enum Reader {
    /// serde-saphyr into `serde_json::Value` (what the baseline does).
    SerdeSaphyr,
    /// The audit's own: the fast readers, serde-saphyr for what they decline.
    Fast,
}

/// The parse-only floor: every file parsed into `serde_json::Value` documents on `threads`
/// threads, nothing checked. Returns (median wall, documents).
fn parse_floor(
    texts: &[(String, String)],
    reader: Reader,
    threads: usize,
    runs: usize,
) -> (Duration, usize) {
    let parse = |name: &str, text: &str| match reader {
        Reader::SerdeSaphyr => parse_documents(name, text).len(),
        Reader::Fast => split_documents(text)
            .into_iter()
            .filter(|chunk| !chunk.trim().is_empty())
            .filter_map(|chunk| read_value(chunk).or_else(|| read_reference(chunk).ok()))
            .filter(|v| !v.is_null())
            .count(),
    };
    let mut walls = Vec::new();
    let mut docs = 0;
    for _ in 0..runs {
        let next = AtomicUsize::new(0);
        let count = AtomicUsize::new(0);
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    while let Some((name, text)) = texts.get(next.fetch_add(1, Ordering::Relaxed)) {
                        count.fetch_add(parse(name, text), Ordering::Relaxed);
                    }
                });
            }
        });
        walls.push(t.elapsed());
        docs = count.load(Ordering::Relaxed);
    }
    (median(walls), docs)
}

fn rate(docs: usize, d: Duration) -> f64 {
    docs as f64 / d.as_secs_f64()
}

fn main() {
    let target_docs: usize = arg("--docs").and_then(|s| s.parse().ok()).unwrap_or(2360);
    let runs: usize = arg("--runs").and_then(|s| s.parse().ok()).unwrap_or(5);
    let scale: Vec<usize> = arg("--scale")
        .unwrap_or_else(|| "1000,10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let exe = root.join("target/release/kubectl-rollout_safe");
    assert!(
        exe.exists(),
        "build the binary first: cargo build --release -p kubectl-rollout-safe ({} is missing)",
        exe.display()
    );
    let baseline = arg("--baseline")
        .or_else(|| std::env::var("ROLLOUT_SAFE_BASELINE").ok())
        .map(PathBuf::from);
    let corpus = rollout_safe_testkit::corpus_dir().unwrap_or_else(|| {
        let own = rollout_safe_testkit::fixture("manifests");
        eprintln!(
            "no ../shared/corpus: benchmarking on the repository's own manifests in {}",
            own.display()
        );
        own
    });
    let files = rollout_safe_testkit::manifest_files(&corpus);
    let per_copy: usize = files
        .iter()
        .map(|f| parse_documents("f", &std::fs::read_to_string(f).unwrap()).len())
        .sum();
    let copies = target_docs.div_ceil(per_copy.max(1));
    let scratch = std::env::temp_dir().join(format!("rollout-safe-bench-{}", std::process::id()));
    let tree = scratch.join("corpus");
    copy_tree(&files, &tree, copies);
    let docs = per_copy * copies;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);

    println!("load average before: {} ({cores} cores)", load());
    println!(
        "corpus: {} files ({per_copy} documents) x {copies} copies = {docs} documents in {} files; median of {runs} runs",
        files.len(),
        files.len() * copies
    );
    let (ours, ours_rss, base) = match &baseline {
        Some(b) => {
            let both = audit_binaries(&[&exe, b], &tree, runs);
            (both[0].0, both[0].1, Some(both[1]))
        }
        None => {
            let (w, rss) = audit_binary(&exe, &tree, runs);
            (w, rss, None)
        }
    };
    let texts: Vec<(String, String)> = rollout_safe_testkit::manifest_files(&tree)
        .iter()
        .map(|p| (p.display().to_string(), std::fs::read_to_string(p).unwrap()))
        .collect();
    let floor1 = parse_floor(&texts, Reader::SerdeSaphyr, 1, runs);
    let floor2 = parse_floor(&texts, Reader::SerdeSaphyr, cores.max(2), runs);
    let fast1 = parse_floor(&texts, Reader::Fast, 1, runs);
    let fast2 = parse_floor(&texts, Reader::Fast, cores.max(2), runs);
    let checkov = checkov_run(&tree);

    println!();
    println!("| | wall (median) | documents/s | peak RSS | vs checkov |");
    println!("|---|---|---|---|---|");
    let vs = |d: Duration| match checkov {
        Some(c) => format!("{:.0}x", c.as_secs_f64() / d.as_secs_f64()),
        None => "not measured".into(),
    };
    println!(
        "| rollout-safe, this build (`audit -R -o json`) | {:.1} ms | {:.0} | {} MiB | {} |",
        ours.as_secs_f64() * 1e3,
        rate(docs, ours),
        ours_rss / 1024,
        vs(ours)
    );
    if let (Some(b), Some((bw, brss))) = (&baseline, base) {
        println!(
            "| baseline {} | {:.1} ms | {:.0} | {} MiB | {} |",
            b.display(),
            bw.as_secs_f64() * 1e3,
            rate(docs, bw),
            brss / 1024,
            vs(bw)
        );
    }
    for ((wall, n), threads, how) in [
        (floor1, 1, "serde-saphyr"),
        (floor2, cores.max(2), "serde-saphyr"),
        (
            fast1,
            1,
            "the fast readers (serde-saphyr for what they decline)",
        ),
        (
            fast2,
            cores.max(2),
            "the fast readers (serde-saphyr for what they decline)",
        ),
    ] {
        println!(
            "| parse-only floor: {how} into serde_json::Value, {threads} thread(s), in process | {:.1} ms | {:.0} | | |",
            wall.as_secs_f64() * 1e3,
            rate(n, wall)
        );
    }
    if let Some(c) = checkov {
        println!(
            "| checkov `--framework kubernetes --compact -o json` | {:.1} ms | {:.1} | | 1x |",
            c.as_secs_f64() * 1e3,
            rate(docs, c)
        );
    }
    println!();
    if let Some((bw, _)) = base {
        println!(
            "this build vs baseline: {:.2}x the documents per second",
            bw.as_secs_f64() / ours.as_secs_f64()
        );
    }
    println!(
        "this build vs the 1-thread parse-only floors: {:.2}x serde-saphyr's time, {:.2}x the fast readers'",
        ours.as_secs_f64() / floor1.0.as_secs_f64(),
        ours.as_secs_f64() / fast1.0.as_secs_f64()
    );

    // One namespace growing: copies of examples/unsafe/web.yaml (a Deployment and a Service
    // in namespace shop), 100 copies (200 documents) per file.
    println!();
    println!("one namespace, copies of examples/unsafe/web.yaml (median of {runs} runs):");
    println!();
    println!(
        "| documents | this build: wall | per document | peak RSS | baseline: wall | per document | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|");
    let web = std::fs::read_to_string(root.join("examples/unsafe/web.yaml")).unwrap();
    let block = format!("{}\n---\n", web.trim_end()).repeat(100);
    for &n in &scale {
        let dir = scratch.join(format!("web-{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..n.div_ceil(200) {
            std::fs::write(dir.join(format!("web-{i:05}.yaml")), &block).unwrap();
        }
        let docs = n.div_ceil(200) * 200;
        let (w, rss) = audit_binary(&exe, &dir, runs);
        // The baseline grows quadratically: it is measured up to 10,000 documents.
        let b = baseline
            .as_ref()
            .filter(|_| docs <= 10_000)
            .map(|b| audit_binary(b, &dir, runs.min(3)));
        let per = |d: Duration| format!("{:.1} µs", d.as_secs_f64() * 1e6 / docs as f64);
        let (bw, bp, br) = match b {
            Some((bw, brss)) => (
                format!("{:.0} ms", bw.as_secs_f64() * 1e3),
                per(bw),
                format!("{} MiB", brss / 1024),
            ),
            None => ("not run".into(), String::new(), String::new()),
        };
        println!(
            "| {docs} | {:.0} ms | {} | {} MiB | {bw} | {bp} | {br} |",
            w.as_secs_f64() * 1e3,
            per(w),
            rss / 1024
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    // Memory at 100,000 documents of the real-world corpus.
    let big_copies = 100_000usize.div_ceil(per_copy.max(1));
    let big = scratch.join("corpus-100k");
    copy_tree(&files, &big, big_copies);
    let (w, rss) = audit_binary(&exe, &big, 1);
    println!();
    println!(
        "corpus x {big_copies} = {} documents: {:.0} ms, peak RSS {} MiB",
        per_copy * big_copies,
        w.as_secs_f64() * 1e3,
        rss / 1024
    );
    println!("load average after: {}", load());
    let _ = std::fs::remove_dir_all(&scratch);
}

/// checkov on `dir`: its Kubernetes framework, compact output, no network. `None` when it
/// cannot be run.
fn checkov_run(dir: &Path) -> Option<Duration> {
    let checkov = arg("--checkov")
        .or_else(|| std::env::var("CHECKOV").ok())
        .unwrap_or_else(|| "checkov".into());
    let t = Instant::now();
    let out = Command::new(&checkov)
        .args([
            "--framework",
            "kubernetes",
            "--quiet",
            "--compact",
            "--skip-download",
            "-o",
            "json",
            "-d",
        ])
        .arg(dir)
        .env("BC_SKIP_MAPPING", "TRUE")
        .env("CHECKOV_RUN_SCA_PACKAGE_SCAN_V2", "false")
        .output();
    let el = t.elapsed();
    match out {
        Ok(o) if o.status.code().is_some_and(|c| c <= 1) => Some(el),
        Ok(o) => {
            println!(
                "checkov exited {:?}: {}; ratio not measured",
                o.status.code(),
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            None
        }
        Err(e) => {
            println!(
                "checkov not runnable ({checkov}: {e}); ratio not measured. Install: pip install checkov"
            );
            None
        }
    }
}
