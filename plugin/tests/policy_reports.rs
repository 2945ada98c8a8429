//! `audit --cluster -o policyreport` and `--write-reports`, against the stand-in API server:
//! the reports' shape is checked against the published CRD schemas (`tests/data/crds`, see
//! its README for their sources), and writing them is server-side apply with field manager
//! `rollout-safe`, replacing the previous run's reports and deleting those of workloads that
//! are gone. A cluster without the CRD is an error that names it (exit 5).

mod common;

use common::{TestResult, good_with};
use rollout_safe_standin::resources::{OPENREPORTS, POLICYREPORTS};
use rollout_safe_standin::scenarios::NAMESPACE;
use rollout_safe_standin::{Standin, Verb};
use serde_json::Value;

/// The `openAPIV3Schema` of the vendored CRD `file`.
fn crd_schema(file: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/crds")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let crd: Value = serde_saphyr::from_str(&text).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// Validates `v` against a structural schema (the subset CRDs use: type, properties,
/// additionalProperties, items, required, enum, integer formats). Fields the schema does not
/// declare are errors too: a real server would prune them silently.
fn validate(schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    let ty = schema["type"].as_str().unwrap_or("");
    let ok = match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        "" => true,
        other => panic!("schema type {other} not handled"),
    };
    if !ok {
        errors.push(format!("{path}: expected {ty}, found {v}"));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(v)
    {
        errors.push(format!("{path}: {v} is not one of {allowed:?}"));
    }
    if schema["format"] == "int32" && v.as_i64().is_some_and(|i| i32::try_from(i).is_err()) {
        errors.push(format!("{path}: {v} does not fit int32"));
    }
    if let Some(obj) = v.as_object() {
        for req in schema["required"].as_array().into_iter().flatten() {
            if !obj.contains_key(req.as_str().unwrap()) {
                errors.push(format!("{path}: required field {req} missing"));
            }
        }
        let props = schema["properties"].as_object();
        for (k, child) in obj {
            let sub = format!("{path}.{k}");
            match (
                props.and_then(|p| p.get(k)),
                schema.get("additionalProperties"),
            ) {
                (Some(s), _) => validate(s, child, &sub, errors),
                (None, Some(s)) => validate(s, child, &sub, errors),
                // `metadata: {type: object}`: the API server validates ObjectMeta itself.
                (None, None) if props.is_none() => {}
                (None, None) => errors.push(format!("{sub}: not in the schema")),
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            validate(items, item, &format!("{path}[{i}]"), errors);
        }
    }
}

fn assert_valid(schema: &Value, report: &Value) {
    let mut errors = Vec::new();
    validate(schema, report, "", &mut errors);
    assert!(errors.is_empty(), "{errors:#?}\nin {report:#}");
}

fn uid_of(standin: &Standin, resource: &str, name: &str) -> String {
    standin.get(resource, name).unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn yaml_documents(text: &str) -> Vec<Value> {
    text.split("\n---")
        .map(|d| d.trim_start_matches("---"))
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_saphyr::from_str(d).unwrap())
        .collect()
}

#[test]
fn policy_reports_match_the_crd_schema_one_per_workload() -> TestResult {
    let (standin, plugin) = good_with(|b| b)?;
    let r = plugin.run(&["audit", "--cluster", "-o", "policyreport"])?;
    // The StatefulSet has no readiness probe (enforced): the audit still fails.
    r.assert_code(3);
    let reports = yaml_documents(&r.stdout);
    let schema = crd_schema("wgpolicyk8s.io_policyreports.yaml");
    assert_eq!(reports.len(), 2, "{}", r.stdout);
    for report in &reports {
        assert_valid(&schema, report);
        assert_eq!(report["apiVersion"], "wgpolicyk8s.io/v1alpha2");
        assert_eq!(report["kind"], "PolicyReport");
        assert_eq!(
            report["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "rollout-safe"
        );
    }
    let db = reports
        .iter()
        .find(|r| r["scope"]["name"] == "db")
        .expect("a report for the StatefulSet");
    let uid = uid_of(&standin, "statefulsets", "db");
    assert_eq!(db["metadata"]["name"], format!("rollout-safe-{uid}"));
    assert_eq!(db["metadata"]["namespace"], NAMESPACE);
    assert_eq!(db["scope"]["uid"], uid);
    assert_eq!(db["scope"]["kind"], "StatefulSet");
    assert_eq!(db["metadata"]["ownerReferences"][0]["uid"], uid);
    let results = db["results"].as_array().unwrap();
    let rs101 = results
        .iter()
        .find(|r| r["rule"] == "RS101")
        .expect("RS101 result");
    assert_eq!(rs101["result"], "fail");
    assert_eq!(rs101["severity"], "high");
    assert_eq!(rs101["source"], "rollout-safe");
    assert!(
        rs101["message"]
            .as_str()
            .unwrap()
            .contains("StatefulSet api/db")
    );
    // Rules that found nothing are passes, and the summary counts every result.
    let count = |what: &str| results.iter().filter(|r| r["result"] == what).count();
    assert!(count("pass") > 0, "{db:#}");
    for what in ["pass", "fail", "warn"] {
        assert_eq!(db["summary"][what], count(what), "{what} in {db:#}");
    }
    Ok(())
}

#[test]
fn openreports_match_their_crd_schema() -> TestResult {
    let (_standin, plugin) = good_with(|b| b)?;
    let r = plugin.run(&[
        "audit",
        "--cluster",
        "-o",
        "policyreport",
        "--report-api",
        "openreports",
    ])?;
    r.assert_code(3);
    let schema = crd_schema("openreports.io_reports.yaml");
    let reports = yaml_documents(&r.stdout);
    assert_eq!(reports.len(), 2);
    for report in &reports {
        assert_valid(&schema, report);
        assert_eq!(report["apiVersion"], "openreports.io/v1alpha1");
        assert_eq!(report["kind"], "Report");
        assert_eq!(report["source"], "rollout-safe");
    }
    // The validator is not blind: a report with a wrong result fails it.
    let mut bad = reports[0].clone();
    bad["results"][0]["result"] = "broken".into();
    bad["summary"]["pass"] = "many".into();
    let mut errors = Vec::new();
    validate(&schema, &bad, "", &mut errors);
    assert_eq!(errors.len(), 2, "{errors:?}");
    Ok(())
}

#[test]
fn write_reports_applies_replaces_and_deletes_stale_ones() -> TestResult {
    let (standin, plugin) = good_with(|b| b.crd(&POLICYREPORTS))?;
    let r = plugin.run(&["audit", "--cluster", "--write-reports"])?;
    r.assert_code(3)
        .assert_stderr_has("2 PolicyReport(s) applied");
    let stored: Vec<Value> = standin.read(|s| s.list("policyreports", None).cloned().collect());
    assert_eq!(stored.len(), 2, "{stored:#?}");
    let db_report = format!("rollout-safe-{}", uid_of(&standin, "statefulsets", "db"));
    let good_report = format!("rollout-safe-{}", uid_of(&standin, "deployments", "good"));
    assert!(standin.get("policyreports", &db_report).is_some());
    // Server-side apply, as the field manager rollout-safe.
    let applies: Vec<_> = standin
        .requests_with(Verb::Patch)
        .into_iter()
        .filter(|p| p.resource == "policyreports")
        .collect();
    assert_eq!(applies.len(), 2);
    for p in &applies {
        assert!(
            p.content_type.starts_with("application/apply-patch+yaml"),
            "{}",
            p.content_type
        );
        assert!(p.uri().contains("fieldManager=rollout-safe"), "{}", p.uri());
        assert!(p.uri().contains("force=true"), "{}", p.uri());
    }

    // The StatefulSet gets a readiness probe and the Deployment goes away: the next run
    // replaces the one report and deletes the other.
    standin.modify(|s| {
        let mut db = s.get("statefulsets", NAMESPACE, "db").cloned().unwrap();
        db["spec"]["template"]["spec"]["containers"][0]["readinessProbe"] =
            serde_json::json!({"tcpSocket": {"port": 5432}});
        s.put("statefulsets", db).unwrap();
        s.delete("deployments", NAMESPACE, "good").unwrap();
    });
    let r = plugin.run(&["audit", "--cluster", "--write-reports"])?;
    r.assert_stderr_has("1 PolicyReport(s) applied")
        .assert_stderr_has("1 stale one(s) deleted");
    assert!(standin.get("policyreports", &good_report).is_none());
    let db = standin.get("policyreports", &db_report).unwrap();
    let rs101 = db["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "RS101")
        .unwrap()
        .clone();
    assert_eq!(rs101["result"], "pass", "{db:#}");
    Ok(())
}

#[test]
fn write_reports_without_the_crd_says_so_and_exits_5() -> TestResult {
    // This stand-in has the openreports CRD, not the PolicyReport one.
    let (standin, plugin) = good_with(|b| b.crd(&OPENREPORTS))?;
    let r = plugin.run(&["audit", "--cluster", "--write-reports"])?;
    r.assert_code(5)
        .assert_stderr_has("policyreports.wgpolicyk8s.io is not installed");
    assert!(
        standin.requests_with(Verb::Patch).is_empty(),
        "nothing is written"
    );
    // The API it has works.
    let r = plugin.run(&[
        "audit",
        "--cluster",
        "--write-reports",
        "--report-api",
        "openreports",
    ])?;
    r.assert_code(3).assert_stderr_has("2 Report(s) applied");
    assert_eq!(standin.read(|s| s.list("reports", None).count()), 2);
    Ok(())
}

#[test]
fn policy_reports_need_the_cluster() -> TestResult {
    let dir = tempfile::tempdir()?;
    let plugin = rollout_safe_standin::Plugin::new(env!("CARGO_BIN_EXE_kubectl-rollout_safe"));
    let r = plugin.run(&[
        "audit",
        "-o",
        "policyreport",
        "-f",
        dir.path().to_str().unwrap(),
    ])?;
    r.assert_code(2).assert_stderr_has("needs --cluster");
    Ok(())
}
