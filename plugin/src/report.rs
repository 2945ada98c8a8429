//! Rendering an audit report: a table for people, JSON, SARIF 2.1.0 for code scanning, JUnit for CI.

use comfy_table::{ContentArrangement, Table, presets};
use rollout_safe_policy::audit::AuditReport;
use rollout_safe_policy::{RuleId, Severity};
use serde_json::{Value, json};

pub const TOOL_NAME: &str = "rollout-safe";
pub const TOOL_URI: &str = "https://github.com/rollout-safe/rollout-safe";

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// `file:line`, or just the file when the line is unknown (0).
fn location(file: &str, line: usize) -> String {
    if line == 0 {
        file.to_string()
    } else {
        format!("{file}:{line}")
    }
}

/// The table people read, with a summary line.
pub fn table(report: &AuditReport) -> String {
    let mut out = String::new();
    if !report.findings.is_empty() {
        let mut t = Table::new();
        t.load_preset(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(["LOCATION", "RULE", "LEVEL", "OBJECT", "FINDING"]);
        // On a terminal the table fits the window; in CI logs keep lines readable.
        if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            t.set_width(160);
        }
        for lf in &report.findings {
            let f = &lf.finding;
            let object = match &f.container {
                Some(c) => format!("{}\ncontainer {c}", f.object),
                None => f.object.to_string(),
            };
            // The message repeats the object; the table has a column for it.
            let prefix = format!("{}: ", f.object);
            let what = f.message.strip_prefix(&prefix).unwrap_or(&f.message);
            t.add_row([
                location(&lf.file, lf.line),
                f.rule.to_string(),
                level(f.severity).to_string(),
                object,
                format!("{what}\nfix: {}", f.fix),
            ]);
        }
        out.push_str(&t.to_string());
        out.push('\n');
    }
    for n in &report.notices {
        out.push_str(&format!(
            "note: {}: {}\n",
            location(&n.file, n.line),
            n.message
        ));
    }
    for e in &report.errors {
        out.push_str(&format!("error: {e}\n"));
    }
    out.push_str(&summary(report));
    out.push('\n');
    out
}

pub fn summary(report: &AuditReport) -> String {
    let mut s = format!(
        "{} workload(s) in {} object(s) audited: {} error(s), {} warning(s)",
        report.workloads,
        report.objects,
        report.count(Severity::Error),
        report.count(Severity::Warning)
    );
    if !report.errors.is_empty() {
        s.push_str(&format!(
            "; {} input(s) could not be read",
            report.errors.len()
        ));
    }
    s
}

pub fn json(report: &AuditReport) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// SARIF 2.1.0: one result per finding, located at its document's file and line; unreadable
/// inputs as tool execution notifications.
pub fn sarif(report: &AuditReport) -> String {
    let rules: Vec<Value> = RuleId::ALL
        .iter()
        .map(|r| {
            json!({
                "id": r.as_str(),
                "name": r.title(),
                "shortDescription": {"text": r.title()},
                "defaultConfiguration": {"level": level(r.default_action().severity().unwrap_or(Severity::Warning))},
                "helpUri": format!("{TOOL_URI}#{}", r.as_str().to_lowercase()),
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|lf| {
            let f = &lf.finding;
            json!({
                "ruleId": f.rule.as_str(),
                "ruleIndex": RuleId::ALL.iter().position(|r| *r == f.rule),
                "level": level(f.severity),
                "message": {"text": format!("{} Fix: {}", f.message, f.fix)},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": uri(&lf.file)},
                        "region": {"startLine": lf.line.max(1)},
                    },
                    "logicalLocations": [{
                        "fullyQualifiedName": f.object.to_string(),
                        "kind": "object",
                    }],
                }],
                "properties": {
                    "action": f.action.to_string(),
                    "field": f.field,
                    "container": f.container,
                },
            })
        })
        .collect();
    let notifications: Vec<Value> = report
        .errors
        .iter()
        .map(|e| {
            json!({
                "level": "error",
                "message": {"text": e.message},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": uri(&e.file)},
                        "region": {"startLine": e.line.max(1)},
                    }
                }],
            })
        })
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": TOOL_NAME,
                "informationUri": TOOL_URI,
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "invocations": [{
                "executionSuccessful": report.errors.is_empty(),
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// A relative path as a URI reference (SARIF wants forward slashes, no scheme for relative).
fn uri(file: &str) -> String {
    file.replace('\\', "/").replace(' ', "%20")
}

/// JUnit XML: a test suite per file, a test case per audited object; findings at or above the
/// fail level are failures, the rest go to the case's system-out; unreadable inputs are errors.
pub fn junit(report: &AuditReport, fail_at: Severity) -> String {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    use std::collections::BTreeMap;

    let mut suites: BTreeMap<&str, BTreeMap<String, Vec<&rollout_safe_policy::LocatedFinding>>> =
        BTreeMap::new();
    for lf in &report.findings {
        suites
            .entry(lf.file.as_str())
            .or_default()
            .entry(lf.finding.object.to_string())
            .or_default()
            .push(lf);
    }
    let mut r = Report::new(TOOL_NAME);
    for (file, objects) in suites {
        let mut suite = TestSuite::new(file);
        for (object, findings) in objects {
            let failing: Vec<_> = findings
                .iter()
                .filter(|f| f.finding.severity >= fail_at)
                .collect();
            let text: Vec<String> = findings
                .iter()
                .map(|f| {
                    format!(
                        "{} {}: {} Fix: {}",
                        level(f.finding.severity),
                        f.finding.rule,
                        f.finding.message,
                        f.finding.fix
                    )
                })
                .collect();
            let mut case = if failing.is_empty() {
                TestCase::new(object.clone(), TestCaseStatus::success())
            } else {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                status.set_message(format!(
                    "{} finding(s): {}",
                    failing.len(),
                    failing
                        .iter()
                        .map(|f| f.finding.rule.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                status.set_type("policy-violation");
                TestCase::new(object.clone(), status)
            };
            case.set_classname(file);
            case.set_system_out(text.join("\n"));
            suite.add_test_case(case);
        }
        r.add_test_suite(suite);
    }
    if !report.errors.is_empty() {
        let mut suite = TestSuite::new("unreadable inputs");
        for e in &report.errors {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
            status.set_message(e.to_string());
            let mut case = TestCase::new(location(&e.file, e.line), status);
            case.set_classname(e.file.clone());
            suite.add_test_case(case);
        }
        r.add_test_suite(suite);
    }
    r.to_string()
        .unwrap_or_else(|e| format!("<!-- cannot render JUnit: {e} -->"))
}
