//! How the plugin writes times, durations, verdicts and failures for people. Pure text: the
//! operations narrate with it, the commands and the live view render with it.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use rollout_safe_policy::WorkloadKind;
use rollout_safe_policy::judge::{Failure, FailureReason, Progress, Verdict};
pub use rollout_safe_policy::strategy::schema::ts_text;

/// Problems shown at most in the live view / per plain update.
pub const MAX_PROBLEMS_SHOWN: usize = 5;

/// `2026-11-22T23:10:24Z`
pub fn now_text() -> String {
    ts_text(Timestamp::now())
}

/// Seconds with one decimal: `1.4s`.
pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// `desired 4 · updated 2 · ready 3 · available 3`
pub fn counts(p: &Progress) -> String {
    format!(
        "desired {} · updated {} · ready {} · available {}",
        p.desired, p.updated, p.ready, p.available
    )
}

/// One line per pod problem (at most [`MAX_PROBLEMS_SHOWN`], then how many more).
pub fn problem_lines(p: &Progress) -> Vec<String> {
    let mut out: Vec<String> = p
        .problems
        .iter()
        .take(MAX_PROBLEMS_SHOWN)
        .map(|q| {
            let mark = if q.fatal { "✗" } else { "…" };
            let who = match &q.container {
                Some(c) => format!("{} {c}", q.pod),
                None => q.pod.clone(),
            };
            // A pod merely starting, within its readiness budget, is not labelled with the
            // failure it is not (yet): "not ready yet (6 s of 120 s)".
            let mut line = if !q.fatal && q.reason == FailureReason::NeverReady {
                format!("{mark} {who}: {}", q.message)
            } else {
                format!("{mark} {who}: {} ({})", q.message, q.reason)
            };
            if !q.fatal
                && let Some(at) = q.fails_at
            {
                line.push_str(&format!(", counts as failed at {}", ts_text(at)));
            }
            line
        })
        .collect();
    if p.problems.len() > MAX_PROBLEMS_SHOWN {
        out.push(format!(
            "… and {} more",
            p.problems.len() - MAX_PROBLEMS_SHOWN
        ));
    }
    out
}

/// The failure, told for people: reason, pod, container, message, failing pods, recent events.
pub fn failure_report(f: &Failure) -> String {
    let mut out = format!("rollout failed: {}\n", f.reason);
    match (&f.pod, &f.container) {
        (Some(p), Some(c)) => out.push_str(&format!("  pod:       {p}\n  container: {c}\n")),
        (Some(p), None) => out.push_str(&format!("  pod:       {p}\n")),
        _ => {}
    }
    out.push_str(&format!(
        "  reason:    {}\n  message:   {}\n",
        f.reason, f.message
    ));
    if let Some(t) = f.first_seen {
        out.push_str(&format!("  since:     {}\n", ts_text(t)));
    }
    if f.failing_pods.len() > 1 {
        out.push_str(&format!(
            "  failing pods of the new revision: {}\n",
            f.failing_pods.join(", ")
        ));
    }
    if !f.events.is_empty() {
        out.push_str("  recent events:\n");
        for e in &f.events {
            out.push_str(&format!("    {e}\n"));
        }
    }
    out.trim_end().to_owned()
}

/// The verdict for people (`status` without `-o`).
pub fn verdict_text(workload: &str, v: &Verdict) -> String {
    let p = v.progress();
    let mut out = format!(
        "{workload}: {}\n  {}\n  {}\n",
        v.label(),
        p.message,
        counts(p)
    );
    let new_rs_known = p.new_replica_set.is_some() || p.kind != Some(WorkloadKind::Deployment);
    if let Some(rev) = p.new_revision.as_ref().filter(|_| new_rs_known) {
        out.push_str(&format!("  new revision {rev}"));
        if let Some(rs) = &p.new_replica_set {
            out.push_str(&format!(" ({rs})"));
        }
        out.push_str(&format!(", {} old replica(s)\n", p.old_replicas));
    }
    if let Some(f) = v.failure() {
        out.push_str(&failure_report(f));
        out.push('\n');
    } else {
        for line in problem_lines(p) {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rollout_safe_policy::judge::PodProblem;

    #[test]
    fn texts() {
        assert_eq!(secs(Duration::from_millis(1449)), "1.4s");
        let mut p = Progress {
            desired: 4,
            updated: 2,
            ready: 3,
            available: 3,
            ..Progress::default()
        };
        assert_eq!(counts(&p), "desired 4 · updated 2 · ready 3 · available 3");
        for i in 0..7 {
            p.problems.push(PodProblem {
                pod: format!("web-{i}"),
                container: Some("app".into()),
                reason: FailureReason::CrashLoopBackOff,
                message: "back-off".into(),
                since: None,
                fails_at: None,
                fatal: true,
            });
        }
        let lines = problem_lines(&p);
        assert_eq!(lines.len(), MAX_PROBLEMS_SHOWN + 1);
        let starting = Progress {
            problems: vec![PodProblem {
                pod: "web-9".into(),
                container: Some("app".into()),
                reason: FailureReason::NeverReady,
                message: "not ready yet (6 s of 120 s)".into(),
                since: None,
                fails_at: None,
                fatal: false,
            }],
            ..Progress::default()
        };
        assert_eq!(
            problem_lines(&starting),
            ["… web-9 app: not ready yet (6 s of 120 s)"]
        );
        assert_eq!(lines[0], "✗ web-0 app: back-off (CrashLoopBackOff)");
        assert_eq!(lines[5], "… and 2 more");
        let f = Failure {
            reason: FailureReason::CrashLoopBackOff,
            pod: Some("web-0".into()),
            container: Some("app".into()),
            message: "crashing".into(),
            events: Vec::new(),
            first_seen: None,
            failing_pods: vec!["web-0".into(), "web-1".into()],
            progress: p,
        };
        let r = failure_report(&f);
        assert!(
            r.starts_with("rollout failed: CrashLoopBackOff\n  pod:       web-0"),
            "{r}"
        );
        assert!(
            r.ends_with("failing pods of the new revision: web-0, web-1"),
            "{r}"
        );
        let v = Verdict::Failed(Box::new(f));
        assert!(verdict_text("deployment/web", &v).starts_with("deployment/web: Failed\n"));
    }
}
