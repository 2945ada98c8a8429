//! Audit throughput: documents audited per second on the real-world corpus repeated to a few
//! thousand documents, next to checkov on the very same files in the same run.
//!
//!   cargo bench -p kubectl-rollout-safe --bench audit_throughput [-- --docs 5000 --checkov PATH]
//!
//! Without `../shared/corpus` (or `$ROLLOUT_SAFE_CORPUS`) it repeats `tests/fixtures/manifests`.
//!
//! checkov is looked up as `--checkov PATH`, then `$CHECKOV`, then `checkov` on PATH; without it
//! the rollout-safe figures are printed alone and the ratio is reported as not measured.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use kubectl_rollout_safe::input::read_manifests;
use rollout_safe_policy::{RolloutPolicy, audit};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let target_docs: usize = arg("--docs").and_then(|s| s.parse().ok()).unwrap_or(5000);
    // The real-world corpus when it is beside the repository (it is never committed), else the
    // repository's own manifests.
    let corpus = rollout_safe_testkit::corpus_dir().unwrap_or_else(|| {
        let own = rollout_safe_testkit::fixture("manifests");
        eprintln!(
            "no ../shared/corpus: benchmarking on the repository's own manifests in {}",
            own.display()
        );
        own
    });
    let files = rollout_safe_testkit::manifest_files(&corpus);

    // Copy the corpus into a scratch tree, repeated until it holds `target_docs` documents.
    let scratch = std::env::temp_dir().join(format!("rollout-safe-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let per_copy = read_manifests(&files, false).documents.len();
    let copies = target_docs.div_ceil(per_copy.max(1));
    for c in 0..copies {
        for (i, f) in files.iter().enumerate() {
            let dir = scratch.join(format!("copy{c:03}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::copy(
                f,
                dir.join(format!(
                    "{i:03}-{}",
                    f.file_name().unwrap().to_string_lossy()
                )),
            )
            .unwrap();
        }
    }
    let roots = vec![scratch.clone()];
    let policy = RolloutPolicy::default();

    // rollout-safe, in process: read + parse + audit, best of 5.
    let mut best = Duration::MAX;
    let mut docs = 0;
    let mut findings = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let m = read_manifests(&roots, true);
        let report = audit(&policy, &m.documents, m.errors);
        let el = t.elapsed();
        docs = m.documents.len();
        findings = report.findings.len();
        best = best.min(el);
    }
    let ours = docs as f64 / best.as_secs_f64();
    println!(
        "corpus: {} files x {copies} copies = {docs} documents ({} files on disk)",
        files.len(),
        files.len() * copies
    );
    println!(
        "rollout-safe (in process, best of 5): {:.1} ms, {ours:.0} documents/s, {findings} findings",
        best.as_secs_f64() * 1e3
    );

    // rollout-safe, the real binary end to end (process start, output rendering), once.
    let exe =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/kubectl-rollout_safe");
    let cli = if exe.exists() {
        let t = Instant::now();
        let out = Command::new(&exe)
            .args(["audit", "-R", "-o", "json", "-f"])
            .arg(&scratch)
            .output()
            .unwrap();
        let el = t.elapsed();
        assert!(
            matches!(out.status.code(), Some(0 | 2 | 3)),
            "audit failed: {:?}",
            out.status
        );
        println!(
            "rollout-safe (binary, -o json): {:.1} ms, {:.0} documents/s",
            el.as_secs_f64() * 1e3,
            docs as f64 / el.as_secs_f64()
        );
        Some(el)
    } else {
        println!(
            "rollout-safe binary not built in release ({}); skipping the end-to-end figure",
            exe.display()
        );
        None
    };

    // checkov on the same files: its Kubernetes framework, compact output, no network.
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
        .arg(&scratch)
        .env("BC_SKIP_MAPPING", "TRUE")
        .env("CHECKOV_RUN_SCA_PACKAGE_SCAN_V2", "false")
        .output();
    let el = t.elapsed();
    match out {
        Ok(o) if o.status.code().is_some_and(|c| c <= 1) => {
            let theirs = docs as f64 / el.as_secs_f64();
            println!(
                "checkov ({checkov}): {:.1} ms, {theirs:.0} documents/s",
                el.as_secs_f64() * 1e3
            );
            println!("ratio (in process): {:.0}x checkov", ours / theirs);
            if let Some(cli) = cli {
                println!(
                    "ratio (binary end to end): {:.0}x checkov",
                    el.as_secs_f64() / cli.as_secs_f64()
                );
            }
        }
        Ok(o) => println!(
            "checkov exited {:?}: {}; ratio not measured",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(e) => println!(
            "checkov not runnable ({checkov}: {e}); ratio not measured. Install: pip install checkov"
        ),
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
