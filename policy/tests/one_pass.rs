//! The one-pass reading of YAML documents (`audit_text`: each document straight into what the
//! rules need) gives exactly the report of the general path (`audit_text_general`: every
//! document into a `serde_json::Value` first): over the repository's manifests, the examples,
//! the corpus when present, and generated documents whose scalars are every awkward spelling
//! YAML has (quoted numbers, YAML 1.1 booleans, nulls, octal, floats where integers belong…).

use std::path::Path;

use proptest::prelude::*;
use rollout_safe_policy::audit::{AuditReport, audit_text, audit_text_general};
use rollout_safe_policy::{AuditCollector, RolloutPolicy};
use rollout_safe_testkit::{corpus_dir, fixture, manifest_files, workspace_dir};

/// The report of `files` (name, text), read one way or the other, and the workloads audited.
fn report(files: &[(String, String)], one_pass: bool) -> (AuditReport, Vec<String>) {
    let policy = RolloutPolicy::default();
    let mut collector = AuditCollector::new(&policy);
    for (i, (name, text)) in files.iter().enumerate() {
        let file = if one_pass {
            audit_text(&policy, name, text)
        } else {
            audit_text_general(&policy, name, text)
        };
        collector.add(i, file);
    }
    let result = collector.finish();
    let audited = result
        .audited_workloads()
        .iter()
        .map(|w| format!("{}:{} {} {:?}", w.file, w.line, w.object, w.checked))
        .collect();
    (result.into(), audited)
}

fn assert_same(files: &[(String, String)]) {
    let (fast, fast_audited) = report(files, true);
    let (general, general_audited) = report(files, false);
    assert_eq!(
        serde_json::to_value(&fast).unwrap(),
        serde_json::to_value(&general).unwrap(),
        "one pass and general path differ on {:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert_eq!(fast_audited, general_audited);
}

fn read_tree(root: &Path) -> Vec<(String, String)> {
    manifest_files(root)
        .iter()
        .map(|p| {
            (
                p.strip_prefix(root).unwrap().display().to_string(),
                std::fs::read_to_string(p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn own_manifests_and_examples() {
    let own = read_tree(&fixture("manifests"));
    assert!(own.len() >= 8);
    assert_same(&own);
    assert_same(&read_tree(&workspace_dir().join("examples")));
}

#[test]
fn corpus() {
    let Some(root) = corpus_dir() else {
        rollout_safe_testkit::skip(
            "policy/tests/one_pass.rs corpus",
            "no corpus: ../shared/corpus (or $ROLLOUT_SAFE_CORPUS) is not a directory",
        );
        return;
    };
    // File by file, so a difference names its file.
    for file in read_tree(&root) {
        assert_same(std::slice::from_ref(&file));
    }
}

/// Scalars in every spelling that types differently in YAML.
fn scalar() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "3",
        "\"3\"",
        "'3'",
        "3.0",
        "-1",
        "0x10",
        "010",
        "0o10",
        "1e3",
        ".inf",
        ".nan",
        "yes",
        "no",
        "on",
        "True",
        "false",
        "\"true\"",
        "null",
        "~",
        "",
        "\"\"",
        "abc",
        "a:1",
        "99999999999",
        "25%",
        "\"25%\"",
        "[]",
        "{}",
        "[a, 1]",
        "{a: 1}",
        "!!str 3",
        "!!int \"3\"",
        "&x 3",
        "*x",
        "2026-01-01",
        "\"80\"",
        "http",
    ])
}

fn deployment(s: &[&str]) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {}\n  namespace: shop\n  labels: {{app: {}}}\n  annotations: {{rollout-safe.dev/skip: {}, rollout-safe.dev/skip-reason: {}}}\nspec:\n  replicas: {}\n  revisionHistoryLimit: {}\n  strategy: {{rollingUpdate: {{maxSurge: {}, maxUnavailable: {}}}}}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: {}}}}}\n    spec:\n      terminationGracePeriodSeconds: {}\n      containers:\n        - name: {}\n          image: {}\n          ports: [{{name: http, containerPort: {}}}]\n          readinessProbe: {{httpGet: {{path: /, port: {}}}, periodSeconds: {}}}\n          env: [{{name: A, value: {}}}]\n          resources: {{limits: {{cpu: {}, memory: {}}}}}\n",
        s[0],
        s[1],
        s[2],
        s[3],
        s[4],
        s[5],
        s[6],
        s[7],
        s[8],
        s[9],
        s[10],
        s[11],
        s[12],
        s[13],
        s[14],
        s[15],
        s[16],
        s[17]
    )
}

fn surroundings(s: &[&str]) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {}, namespace: shop, annotations: {{rollout-safe.dev/skip: {}}}}}\nspec:\n  selector: {{app: {}, tier: {}}}\n  ports: [{{port: {}}}]\n---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {{name: p, namespace: {}}}\nspec:\n  maxUnavailable: {}\n  selector: {{matchLabels: {{app: {}}}}}\n---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {{name: h, namespace: shop}}\nspec:\n  scaleTargetRef: {{kind: {}, name: {}}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata: {{a: {}}}\n",
        s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9], s[10]
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn generated_deployments(s in prop::collection::vec(scalar(), 18)) {
        let doc = deployment(&s);
        assert_same(&[("d.yaml".into(), doc)]);
    }

    #[test]
    fn generated_surroundings(s in prop::collection::vec(scalar(), 11), d in prop::collection::vec(scalar(), 18)) {
        // The workload's labels and the selectors meet often enough for RS601/RS603 to vary.
        let mut d = d;
        d[8] = "web";
        let files = [
            ("d.yaml".to_string(), deployment(&d)),
            ("s.yaml".to_string(), surroundings(&s)),
        ];
        assert_same(&files);
    }
}
