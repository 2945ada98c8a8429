//! Every AdmissionReview a real kube-apiserver recorded, sent to the real webhook over TLS:
//! the uid is echoed, the decision is the expected one, and every patch, applied to
//! `request.object`, gives an object that re-validates clean for the mutate-mode rules, is not
//! patched again, and passes the Kubernetes schema.

use std::collections::BTreeSet;

use base64::Engine;
use rollout_safe_tests::fixtures::{Recorded, recorded, recorded_reviews};
use rollout_safe_tests::schema::{self, SchemaCheck};
use rollout_safe_tests::{Conn, TestOptions, TestServer};
use serde_json::{Value, json};

/// The rules the mutating webhook fixes with the default policy.
const MUTATE_RULES: [&str; 4] = ["RS201", "RS202", "RS301", "RS403"];

/// What one recorded file must get with the default policy and no cluster lookups.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Expect {
    allowed: bool,
    /// Rules in the denial message.
    denied: BTreeSet<String>,
    /// Rules in `response.warnings`.
    warned: BTreeSet<String>,
    /// Rules whose fixes the patch carries (auditAnnotations `mutations`); empty: no patch.
    patched: BTreeSet<String>,
}

fn set(rules: &[&str]) -> BTreeSet<String> {
    rules.iter().map(|s| s.to_string()).collect()
}

fn allowed() -> Expect {
    Expect {
        allowed: true,
        ..Default::default()
    }
}

fn patched(rules: &[&str]) -> Expect {
    Expect {
        allowed: true,
        patched: set(rules),
        ..Default::default()
    }
}

fn warned(rules: &[&str]) -> Expect {
    Expect {
        allowed: true,
        warned: set(rules),
        ..Default::default()
    }
}

fn denied(rules: &[&str], warnings: &[&str]) -> Expect {
    Expect {
        allowed: false,
        denied: set(rules),
        warned: set(warnings),
        ..Default::default()
    }
}

/// Worked out per file from the recordings and the default policy. The validating recordings
/// carry objects no mutating webhook had touched, so mutate-mode rules show up there as
/// warnings (that is what the validating webhook says when the mutating one is disabled).
fn expected(r: &Recorded) -> Expect {
    match (r.number(), r.is_mutating()) {
        // apply of a Deployment with probes, preStop, maxSurge 1 / maxUnavailable 0: only the
        // first change-cause is written, and validation has nothing to say.
        (1, true) => patched(&["RS301"]),
        (1, false) => allowed(),
        // kubectl create deployment bare --image=nginx --replicas=2: no probes, no preStop,
        // untagged image. Replicas 2, so no RS405.
        (2, true) => patched(&["RS201", "RS301"]),
        (2, false) => denied(&["RS101"], &["RS102", "RS201", "RS501"]),
        // set image: a template change gets a fresh cause naming the image diff.
        (3, true) => patched(&["RS301"]),
        (3, false) => warned(&["RS301"]),
        // The scale subresource, annotate, pause, resume: not template changes, untouched.
        (4..=7, _) => allowed(),
        // rollout undo replaces the template: a new cause.
        (8, true) => patched(&["RS301"]),
        (8, false) => warned(&["RS301"]),
        // Services: not workloads; a selector switch needs cluster lookups (none here).
        (9 | 10, _) => allowed(),
        // --dry-run=server: judged exactly like a real create (nginx:1.25, 1 replica).
        (11, true) => patched(&["RS201", "RS301"]),
        (11, false) => denied(&["RS101"], &["RS102", "RS201", "RS405"]),
        // rollout restart: a template change (restartedAt), so a cause.
        (12, true) => patched(&["RS301"]),
        (12, false) => warned(&["RS301"]),
        // StatefulSet postgres:16 with no probes.
        (13, true) => patched(&["RS201", "RS301"]),
        (13, false) => denied(&["RS101"], &["RS102", "RS201"]),
        // DaemonSet example/agent:latest with no probes.
        (14, true) => patched(&["RS201", "RS301"]),
        (14, false) => denied(&["RS101"], &["RS102", "RS201", "RS501"]),
        (n, _) => panic!(
            "{}: no expectation for recording {n:02}; add one to this table",
            r.name
        ),
    }
}

/// The rule ID a finding line starts with (`RS101 Deployment shop/web: ...`).
fn rule_of(line: &str) -> Option<String> {
    let id = line.split_whitespace().next()?;
    (id.len() == 5 && id.starts_with("RS")).then(|| id.to_string())
}

/// What a response says, in the terms of [`Expect`].
fn observed(resp: &Value) -> Expect {
    let message = resp["status"]["message"].as_str().unwrap_or_default();
    Expect {
        allowed: resp["allowed"].as_bool().expect("response.allowed"),
        denied: message.lines().skip(1).filter_map(rule_of).collect(),
        warned: resp["warnings"]
            .as_array()
            .map(|w| {
                w.iter()
                    .filter_map(|w| w.as_str().and_then(rule_of))
                    .collect()
            })
            .unwrap_or_default(),
        patched: resp["auditAnnotations"]["mutations"]
            .as_str()
            .map(|m| m.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
    }
}

fn decode_patch(resp: &Value) -> Option<json_patch::Patch> {
    let b64 = resp
        .get("patch")?
        .as_str()
        .expect("response.patch is a base64 string");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("response.patch is valid base64");
    Some(serde_json::from_slice(&bytes).expect("response.patch is a JSON Patch"))
}

async fn post_review(conn: &mut Conn, path: &str, review: &Value) -> Value {
    let reply = conn
        .post(path, serde_json::to_vec(review).expect("JSON"))
        .await
        .expect("request");
    assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(body["kind"], "AdmissionReview");
    assert!(
        body.get("request").is_none(),
        "the request is not echoed back"
    );
    body["response"].clone()
}

/// `review` with `request.object` replaced and a new uid.
fn with_object(review: &Value, object: &Value, uid: &str) -> Value {
    let mut r = review.clone();
    r["request"]["object"] = object.clone();
    r["request"]["uid"] = json!(uid);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_answers_every_recorded_review() {
    let server = TestServer::start().await;
    let mut conn = server.client().connect().await.expect("connect");
    let reviews = recorded_reviews();
    assert_eq!(reviews.len(), 28, "14 recordings × mutating/validating");
    let mut patched_objects = Vec::new();
    let mut failures = Vec::new();

    for r in &reviews {
        let resp = post_review(&mut conn, r.path, &r.review).await;
        assert_eq!(
            resp["uid"].as_str(),
            Some(r.uid()),
            "{}: uid echoed",
            r.name
        );

        let want = expected(r);
        let got = observed(&resp);
        if got != want {
            failures.push(format!(
                "{}:\n  expected {want:?}\n  got      {got:?}\n  response {resp}",
                r.name
            ));
            continue;
        }
        if !want.allowed {
            assert_eq!(resp["status"]["code"], 403, "{}: denial code", r.name);
            let msg = resp["status"]["message"].as_str().unwrap_or_default();
            assert!(
                msg.contains("Fix:"),
                "{}: the denial says how to fix it: {msg}",
                r.name
            );
        }

        match decode_patch(&resp) {
            None => assert!(want.patched.is_empty(), "{}: expected a patch", r.name),
            Some(patch) => {
                assert!(
                    !patch.0.is_empty(),
                    "{}: an empty patch is sent as no patch",
                    r.name
                );
                assert_eq!(resp["patchType"], "JSONPatch", "{}", r.name);
                let mut object = r.review["request"]["object"].clone();
                json_patch::patch(&mut object, &patch).unwrap_or_else(|e| {
                    panic!("{}: patch does not apply to request.object: {e}", r.name)
                });

                // The mutated object passes re-validation for every mutate-mode rule...
                let validating = with_object(&r.review, &object, "revalidate");
                let v = observed(&post_review(&mut conn, "/validate", &validating).await);
                for rule in MUTATE_RULES {
                    assert!(
                        !v.denied.contains(rule) && !v.warned.contains(rule),
                        "{}: after the patch, validation still reports {rule}: {v:?}",
                        r.name
                    );
                }
                // ...and mutating it again changes nothing (reinvocationPolicy: IfNeeded).
                let again = post_review(
                    &mut conn,
                    "/mutate",
                    &with_object(&r.review, &object, "remutate"),
                )
                .await;
                assert!(
                    again.get("patch").is_none(),
                    "{}: re-mutation patched again: {again}",
                    r.name
                );
                assert_eq!(again["allowed"], true);

                patched_objects.push((r.name.clone(), object));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "unexpected decisions:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        patched_objects.len(),
        8,
        "patched recordings: 01 02 03 08 11 12 13 14"
    );
    let check = schema::validate(&patched_objects, None);
    if check == SchemaCheck::Skipped {
        eprintln!("patched objects were not schema-checked");
    }

    let metrics = server.metrics().await;
    assert!(
        metrics.contains(r#"rollout_safe_admission_requests_total{webhook="validate",operation="CREATE",kind="Deployment",decision="denied"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"rollout_safe_findings_total{rule="RS101",action="enforce"}"#));
    assert!(metrics.contains(r#"rollout_safe_mutations_total{rule="RS201"}"#));
    server.stop().await.expect("clean shutdown");
}

/// A dry-run create is judged exactly like the real one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_is_evaluated_like_a_real_request() {
    let server = TestServer::start().await;
    let mut conn = server.client().connect().await.expect("connect");
    let dry = recorded("11-create-deployment-dry-run.validating");
    assert_eq!(dry.review["request"]["dryRun"], true);
    let mut real = dry.review.clone();
    real["request"]["dryRun"] = json!(false);
    let a = post_review(&mut conn, "/validate", &dry.review).await;
    let b = post_review(&mut conn, "/validate", &real).await;
    assert_eq!(a["allowed"], b["allowed"]);
    assert_eq!(a["status"], b["status"]);
    assert_eq!(a["warnings"], b["warnings"]);
}

/// With a Kubernetes older than 1.30 the native sleep action does not exist: with `allowExec`
/// the hook is `exec sleep`, and the result passes that version's schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_kubernetes_gets_exec_sleep_when_allowed() {
    let policy = "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\nmetadata: {name: old}\nspec:\n  rules:\n    RS201: {action: mutate, sleepSeconds: 7, allowExec: true}\n";
    let server = TestServer::start_with(TestOptions {
        kubernetes_version: Some("v1.29.3".into()),
        policy: Some(policy.into()),
        ..Default::default()
    })
    .await;
    let mut conn = server.client().connect().await.expect("connect");
    let r = recorded("02-create-deployment-kubectl-create.mutating");
    let resp = post_review(&mut conn, "/mutate", &r.review).await;
    let patch = decode_patch(&resp).expect("a patch");
    let mut object = r.review["request"]["object"].clone();
    json_patch::patch(&mut object, &patch).expect("patch applies");
    assert_eq!(
        object["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["preStop"],
        json!({"exec": {"command": ["sleep", "7"]}})
    );
    schema::validate(&[("exec-sleep".into(), object)], Some("1.29"));
}

/// Without `allowExec` on an old Kubernetes, RS201 cannot be fixed: no hook, and a warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_kubernetes_without_exec_warns_instead() {
    let server = TestServer::start_with(TestOptions {
        kubernetes_version: Some("1.28".into()),
        ..Default::default()
    })
    .await;
    let mut conn = server.client().connect().await.expect("connect");
    let r = recorded("02-create-deployment-kubectl-create.mutating");
    let resp = post_review(&mut conn, "/mutate", &r.review).await;
    let got = observed(&resp);
    assert_eq!(got.patched, set(&["RS301"]), "{resp}");
    assert!(got.warned.contains("RS201"), "{resp}");
    let warning = resp["warnings"][0].as_str().unwrap_or_default();
    assert!(warning.contains("1.30"), "the warning says why: {warning}");
}

/// Objects whose fields have the wrong type are denied with a message naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_object_is_denied_naming_the_field() {
    let server = TestServer::start().await;
    let mut conn = server.client().connect().await.expect("connect");
    for name in [
        "02-create-deployment-kubectl-create.mutating",
        "02-create-deployment-kubectl-create.validating",
    ] {
        let r = recorded(name);
        let mut review = r.review.clone();
        review["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["ports"] =
            json!("eighty");
        let resp = post_review(&mut conn, r.path, &review).await;
        assert_eq!(resp["allowed"], false, "{name}: {resp}");
        assert_eq!(resp["uid"].as_str(), Some(r.uid()));
        let msg = resp["status"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("spec.template.spec.containers[0].ports"),
            "{name}: the message names the field: {msg}"
        );
    }
}

/// The same reviews over HTTP/2 (the API server's client negotiates h2 when offered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_works() {
    let server = TestServer::start().await;
    let mut conn = server.client().http2().connect().await.expect("h2 connect");
    assert_eq!(conn.alpn.as_deref(), Some(&b"h2"[..]));
    let r = recorded("02-create-deployment-kubectl-create.validating");
    let resp = post_review(&mut conn, "/validate", &r.review).await;
    assert_eq!(resp["uid"].as_str(), Some(r.uid()));
    assert_eq!(resp["allowed"], false);
}
