//! Rendering an audit report: a table for people, JSON, SARIF 2.1.0 for code scanning, JUnit for CI.

use std::io::Write;

use comfy_table::{ContentArrangement, Table, presets};
use rollout_safe_policy::{AuditResult, LocatedFinding, Notice, RuleId, Severity};
use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};
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
pub fn table(report: &AuditResult) -> String {
    let mut out = String::new();
    if report.finding_count() > 0 {
        let mut t = Table::new();
        t.load_preset(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(["LOCATION", "RULE", "LEVEL", "OBJECT", "FINDING"]);
        // On a terminal the table fits the window; in CI logs keep lines readable.
        if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            t.set_width(160);
        }
        for lf in report.findings() {
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
        out.push_str(&format!("note: {}\n", notice_text(n)));
    }
    for e in &report.errors {
        out.push_str(&format!("error: {e}\n"));
    }
    out.push_str(&summary(report));
    out.push('\n');
    out
}

/// `file:line: message`.
pub fn notice_text(n: &Notice) -> String {
    format!("{}: {}", location(&n.file, n.line), n.message)
}

pub fn summary(report: &AuditResult) -> String {
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

/// The report as JSON (the fields of `rollout_safe_policy::AuditReport`), written as it is
/// rendered: findings are never all in memory at once.
pub fn write_json(report: &AuditResult, out: &mut impl Write) -> serde_json::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &JsonReport(report))?;
    out.write_all(b"\n").map_err(serde_json::Error::io)
}

struct JsonReport<'a>(&'a AuditResult);

impl Serialize for JsonReport<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_struct("AuditReport", 5)?;
        m.serialize_field("findings", &Findings(r))?;
        m.serialize_field("errors", &r.errors)?;
        m.serialize_field("notices", &r.notices)?;
        m.serialize_field("workloads", &r.workloads)?;
        m.serialize_field("objects", &r.objects)?;
        m.end()
    }
}

/// The findings as a JSON array, rendered one at a time.
struct Findings<'a>(&'a AuditResult);

impl Serialize for Findings<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.findings())
    }
}

fn sarif_rules() -> Vec<Value> {
    RuleId::ALL
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
        .collect()
}

fn sarif_result(lf: &LocatedFinding) -> Value {
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
}

/// SARIF 2.1.0: one result per finding, located at its document's file and line; unreadable
/// inputs as tool execution notifications. Written as it is rendered, results one at a time
/// (keys in the order serde_json sorts them).
pub fn write_sarif(report: &AuditResult, out: &mut impl Write) -> serde_json::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &Sarif(report))?;
    out.write_all(b"\n").map_err(serde_json::Error::io)
}

struct Sarif<'a>(&'a AuditResult);

impl Serialize for Sarif<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("$schema", "https://json.schemastore.org/sarif-2.1.0.json")?;
        m.serialize_entry("runs", &[SarifRun(self.0)])?;
        m.serialize_entry("version", "2.1.0")?;
        m.end()
    }
}

struct SarifRun<'a>(&'a AuditResult);

impl Serialize for SarifRun<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let report = self.0;
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
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry(
            "invocations",
            &json!([{
                "executionSuccessful": report.errors.is_empty(),
                "toolExecutionNotifications": notifications,
            }]),
        )?;
        m.serialize_entry("results", &SarifResults(report))?;
        m.serialize_entry(
            "tool",
            &json!({"driver": {
                "name": TOOL_NAME,
                "informationUri": TOOL_URI,
                "version": env!("CARGO_PKG_VERSION"),
                "rules": sarif_rules(),
            }}),
        )?;
        m.end()
    }
}

struct SarifResults<'a>(&'a AuditResult);

impl Serialize for SarifResults<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.findings().map(|lf| sarif_result(&lf)))
    }
}

/// A relative path as a URI reference (SARIF wants forward slashes, no scheme for relative).
fn uri(file: &str) -> String {
    file.replace('\\', "/").replace(' ', "%20")
}

/// JUnit XML: a test suite per file, a test case per audited workload (passing when clean)
/// and per other object with findings; findings at or above the fail level are failures, the
/// rest go to the case's system-out; unreadable inputs are errors.
pub fn junit(report: &AuditResult, fail_at: Severity) -> String {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    use std::collections::BTreeMap;

    let mut suites: BTreeMap<String, BTreeMap<String, Vec<LocatedFinding>>> = BTreeMap::new();
    for w in report.audited_workloads() {
        suites
            .entry(w.file.to_string())
            .or_default()
            .entry(w.object.to_string())
            .or_default();
    }
    for lf in report.findings() {
        suites
            .entry(lf.file.clone())
            .or_default()
            .entry(lf.finding.object.to_string())
            .or_default()
            .push(lf);
    }
    let mut r = Report::new(TOOL_NAME);
    for (file, objects) in suites {
        let mut suite = TestSuite::new(file.as_str());
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
            case.set_classname(file.as_str());
            if !text.is_empty() {
                case.set_system_out(text.join("\n"));
            }
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
