//! Shared by the corpus-style tests: audit a tree of manifests and render the result as one
//! line per error, notice and finding, for snapshots and spot checks.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rollout_safe_policy::audit::{AuditReport, audit_text};
use rollout_safe_policy::{AuditCollector, RolloutPolicy};
use rollout_safe_testkit::manifest_files;

/// (the rendered report, files read, workloads audited): each file checked on its own and
/// collected, as the plugin does.
pub fn render(root: &Path) -> (String, usize, usize) {
    let paths = manifest_files(root);
    let policy = RolloutPolicy::default();
    let mut collector = AuditCollector::new(&policy);
    for (i, p) in paths.iter().enumerate() {
        let name = p.strip_prefix(root).unwrap().display().to_string();
        collector.add(
            i,
            audit_text(&policy, &name, &std::fs::read_to_string(p).unwrap()),
        );
    }
    let report = AuditReport::from(collector.finish());
    let mut s = String::new();
    for e in &report.errors {
        writeln!(s, "ERROR {e}").unwrap();
    }
    for n in &report.notices {
        writeln!(s, "NOTE {}:{} {}", n.file, n.line, n.message).unwrap();
    }
    for f in &report.findings {
        let x = &f.finding;
        writeln!(
            s,
            "{}:{} {} {} {}{} {}",
            f.file,
            f.line,
            x.rule,
            x.severity,
            x.object,
            x.container
                .as_deref()
                .map(|c| format!(" [{c}]"))
                .unwrap_or_default(),
            x.field
        )
        .unwrap();
    }
    (s, paths.len(), report.workloads)
}

/// Compares `actual` with `tests/snapshots/<file>`; `UPDATE_SNAPSHOTS=1` rewrites it instead.
pub fn assert_snapshot(file: &str, actual: &str) {
    let snap = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(file);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snap, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&snap).unwrap_or_default();
    if expected != actual {
        let exp: Vec<&str> = expected.lines().collect();
        let act: Vec<&str> = actual.lines().collect();
        let gone: Vec<&&str> = exp.iter().filter(|l| !act.contains(l)).collect();
        let new: Vec<&&str> = act.iter().filter(|l| !exp.contains(l)).collect();
        panic!(
            "findings in {file} changed (review, then UPDATE_SNAPSHOTS=1 cargo test -p rollout-safe-policy)\n-- gone:\n{gone:#?}\n-- new:\n{new:#?}"
        );
    }
}
