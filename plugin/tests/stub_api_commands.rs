//! The plugin's Kubernetes-facing commands (update, undo, history, pause/resume, status,
//! audit --cluster, plan) against the stand-in API server (`rollout-safe-standin`), seeded with
//! the recorded Deployment `good` (01, 07, 08, 14) at revision 2 and StatefulSet `db`. Its
//! controllers react 300 ms after a write; images whose tag contains `crash` crash-loop.
//!
//! Each test runs the real binary with a kubeconfig pointing at the stand-in.

mod common;

use std::time::Duration;

use common::{
    TestResult, cause_of, deployment, good, good_with, good_with_deployment, other_writers, update,
};
use rollout_safe_standin::controllers::deployment::NAME as DEPLOYMENT_CONTROLLER;
use rollout_safe_standin::scenarios::{GOOD_IMAGE_1 as IMAGE_1, GOOD_IMAGE_2 as IMAGE_2};
use rollout_safe_standin::{Fault, Interrupt, LoggedRequest, RunOptions, StaleAnswer, Times, Verb};
use serde_json::{Value, json};

const IMAGE_3: &str = "registry.example.com/team/good:2.5.0";
const CRASHING: &str = "registry.example.com/team/good:2.5.0-crash";
const NEVER_READY: &str = "registry.example.com/team/good:2.5.0-unready";
const CAUSE_PATH: &str = "/metadata/annotations/kubernetes.io~1change-cause";

fn patch_ops(r: &LoggedRequest) -> Vec<Value> {
    r.json_body()
        .and_then(|b| b.as_array().cloned())
        .unwrap_or_else(|| panic!("not a JSON Patch: {}", r.body))
}

fn op_at<'a>(ops: &'a [Value], path: &str) -> Option<&'a Value> {
    ops.iter().find(|o| o["path"] == json!(path))
}

fn image_of_good(standin: &rollout_safe_standin::Standin) -> Value {
    deployment(standin, "good")["spec"]["template"]["spec"]["containers"][0]["image"].clone()
}

#[test]
fn stub_api_update_happy_path_patch_carries_precondition_and_cause() -> TestResult {
    let (standin, plugin) = good()?;
    let r = plugin.run(&update(IMAGE_3, &["--timeout", "30s"]))?;
    r.assert_code(0);
    let patches = standin.requests_with(Verb::Patch);
    assert_eq!(patches.len(), 1);
    let p = &patches[0];
    assert!(
        p.content_type.starts_with("application/json-patch+json"),
        "{}",
        p.content_type
    );
    assert!(
        p.uri().contains("fieldManager=kubectl-rollout-safe"),
        "{}",
        p.uri()
    );
    let ops = patch_ops(p);
    assert_eq!(
        ops[0],
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": "400"})
    );
    assert_eq!(
        op_at(&ops, "/spec/template/spec/containers/0/image").unwrap()["value"],
        json!(IMAGE_3)
    );
    let cause = op_at(&ops, CAUSE_PATH).unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        cause.starts_with("alice: image app=registry.example.com/team/good:2.5.0 (was 2.4.0)"),
        "{cause}"
    );
    // Only what changed was sent: probes, ports and the preStop hook survive.
    assert_eq!(ops.len(), 3, "{ops:?}");
    let d = deployment(&standin, "good");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], json!(IMAGE_3));
    assert!(
        c["readinessProbe"].is_object()
            && c["livenessProbe"].is_object()
            && c["lifecycle"]["preStop"].is_object()
    );
    assert_eq!(cause_of(&d), cause);
    r.assert_stderr_has("rolled out");
    // Pods are read by the Deployment's selector, never the whole namespace.
    let pod_reads: Vec<_> = standin
        .requests()
        .into_iter()
        .filter(|r| r.resource == "pods" && matches!(r.verb, Verb::List | Verb::Watch))
        .collect();
    assert!(!pod_reads.is_empty());
    assert!(
        pod_reads.iter().all(|r| r.label_selector().is_some()),
        "{pod_reads:#?}"
    );
    Ok(())
}

#[test]
fn stub_api_update_conflict_rereads_and_retries_without_clobbering() -> TestResult {
    // A concurrent writer makes the first precondition stale: the real server answers the failed
    // JSON Patch `test` with a bare 422 (05); the plugin re-reads, sees a new resourceVersion,
    // recomputes and writes again.
    let (standin, plugin) = good_with(other_writers(1, StaleAnswer::Evaluate))?;
    let r = plugin.run(&update(IMAGE_3, &["--timeout", "30s"]))?;
    r.assert_code(0)
        .assert_stderr_has("conflict: deployment/good changed since it was read");
    let patches = standin.requests_with(Verb::Patch);
    assert_eq!(patches.len(), 2);
    assert_eq!(
        patches[0].status, 422,
        "the recorded answer to a failed `test` op"
    );
    let first = patch_ops(&patches[0]);
    let second = patch_ops(&patches[1]);
    assert_eq!(first[0]["value"], json!("400"));
    assert_eq!(
        second[0]["value"],
        json!("401"),
        "the retry carries the fresh resourceVersion"
    );
    let d = deployment(&standin, "good");
    assert_eq!(
        d["metadata"]["annotations"]["example.com/other-writer"],
        json!("touch 0"),
        "the other write survives"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        json!(IMAGE_3)
    );
    Ok(())
}

#[test]
fn stub_api_update_409_conflict_retries() -> TestResult {
    let (standin, plugin) = good_with(other_writers(2, StaleAnswer::Conflict))?;
    let r = plugin.run(&update(IMAGE_3, &["--timeout", "30s"]))?;
    r.assert_code(0);
    assert_eq!(standin.requests_with(Verb::Patch).len(), 3);
    assert_eq!(r.stderr.matches("conflict:").count(), 2, "{}", r.stderr);
    Ok(())
}

#[test]
fn stub_api_update_gives_up_after_bounded_retries() -> TestResult {
    let (standin, plugin) = good_with(other_writers(100, StaleAnswer::Evaluate))?;
    let r = plugin.run(&update("x:1", &["--timeout", "30s"]))?;
    r.assert_code(5)
        .assert_stderr_has("gave up after 5 conflicting writes");
    assert_eq!(standin.requests_with(Verb::Patch).len(), 5);
    Ok(())
}

#[test]
fn stub_api_forbidden_is_exit_5_with_the_missing_permission() -> TestResult {
    let (standin, plugin) = good_with(|b| {
        b.fault(
            Fault::Forbidden {
                verb: Verb::Get,
                resource: "deployments".into(),
            },
            Times::Always,
        )
    })?;
    for args in [
        &["update", "deploy/good", "--image", "app=x:1"][..],
        &["history", "deploy/good"],
        &["undo", "deploy/good"],
    ] {
        let r = plugin.run(args)?;
        r.assert_code(5)
            .assert_stderr_has("forbidden: you need get on deployments.apps in namespace \"api\"");
        // The server's message is kept.
        r.assert_stderr_has("system:serviceaccount:api:viewer");
    }
    assert!(standin.requests_with(Verb::Patch).is_empty());
    Ok(())
}

#[test]
fn stub_api_not_found_is_exit_5() -> TestResult {
    let (_standin, plugin) = good()?;
    for args in [
        &["update", "deploy/nope", "--image", "app=x:1"][..],
        &["status", "deploy/nope"],
        &["undo", "deployment.apps/nope"],
    ] {
        let r = plugin.run(args)?;
        r.assert_code(5)
            .assert_stderr_has("deployments.apps \"nope\" not found in namespace \"api\"");
    }
    Ok(())
}

#[test]
fn stub_api_bad_input_is_exit_2() -> TestResult {
    let (standin, plugin) = good()?;
    let r = plugin.run(&["update", "deploy/good", "--image", "web=x:1"])?;
    r.assert_code(2)
        .assert_stderr_has("has no container \"web\" (containers: app)");
    let r = plugin.run(&["update", "good", "--image", "app=x:1"])?;
    r.assert_code(2).assert_stderr_has("deploy/good");
    // A command on a kind it does not take (`undo` takes StatefulSets since issue 14;
    // `pause` still takes Deployments only).
    plugin
        .run(&["pause", "sts/good"])?
        .assert_code(2)
        .assert_stderr_has("pause works on Deployments only");
    // A 422 about the user's input: the Status message and its field causes, exit 2.
    let r = plugin.run(&update("x:1", &["--env", "app:1BAD=x"]))?;
    r.assert_code(2)
        .assert_stderr_has("spec.template.spec.containers[0].env[0].name")
        .assert_stderr_has("a valid environment variable name");
    assert!(
        deployment(&standin, "good")["spec"]["template"]["spec"]["containers"][0]["env"].is_null()
    );
    Ok(())
}

#[test]
fn stub_api_update_refuses_unsafe_spec_unless_forced() -> TestResult {
    let (standin, plugin) = good_with_deployment(common::without_readiness_probe)?;
    let r = plugin.run(&update(IMAGE_3, &[]))?;
    r.assert_code(3).assert_stderr_has("RS101");
    assert!(standin.requests_with(Verb::Patch).is_empty());
    let r = plugin.run(&update(IMAGE_3, &["--force", "--timeout", "30s"]))?;
    r.assert_code(0);
    assert_eq!(standin.requests_with(Verb::Patch).len(), 1);
    Ok(())
}

#[test]
fn stub_api_dry_runs() -> TestResult {
    let (standin, plugin) = good()?;
    let r = plugin.run(&update(IMAGE_3, &["--dry-run=client"]))?;
    r.assert_code(0);
    assert!(
        standin.requests_with(Verb::Patch).is_empty(),
        "client dry run sends nothing"
    );
    let ops: Vec<Value> = serde_json::from_str(&r.stdout)?;
    assert_eq!(ops[0]["op"], json!("test"));
    let r = plugin.run(&update(IMAGE_3, &["--dry-run=server"]))?;
    r.assert_code(0);
    let p = standin.requests_with(Verb::Patch);
    assert_eq!(p.len(), 1);
    assert!(p[0].uri().contains("dryRun=All"), "{}", p[0].uri());
    assert_eq!(image_of_good(&standin), json!(IMAGE_2));
    Ok(())
}

#[test]
fn stub_api_undo_restores_previous_revision_template_without_hash() -> TestResult {
    let (standin, plugin) = good()?;
    let r = plugin.run(&["undo", "deploy/good", "--timeout", "30s"])?;
    r.assert_code(0);
    let p = standin.requests_with(Verb::Patch);
    assert_eq!(p.len(), 1);
    let ops = patch_ops(&p[0]);
    assert_eq!(
        ops[0],
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": "400"})
    );
    let d = deployment(&standin, "good");
    let t = &d["spec"]["template"];
    assert_eq!(t["spec"]["containers"][0]["image"], json!(IMAGE_1));
    assert!(
        t["metadata"]["labels"].get("pod-template-hash").is_none(),
        "{t}"
    );
    assert_eq!(t["metadata"]["labels"], json!({"app": "good"}));
    let cause = cause_of(&d);
    assert!(
        cause.starts_with("rollback to revision 1 (initial release 2.3.1)"),
        "{cause}"
    );
    // Nothing but the template and the cause changed.
    assert!(
        ops.iter().skip(1).all(|o| {
            let p = o["path"].as_str().unwrap();
            p.starts_with("/spec/template/") || p == CAUSE_PATH
        }),
        "{ops:?}"
    );
    r.assert_stderr_has("rolled back to revision 1");
    Ok(())
}

#[test]
fn stub_api_undo_to_revision_and_dry_run() -> TestResult {
    let (standin, plugin) = good()?;
    let r = plugin.run(&["undo", "deploy/good", "--to-revision", "2"])?;
    r.assert_code(0).assert_stdout_has("skipped rollback");
    let r = plugin.run(&["undo", "deploy/good", "--to-revision", "7"])?;
    r.assert_code(2)
        .assert_stderr_has("unable to find revision 7")
        .assert_stderr_has("revisions: 1, 2");
    let r = plugin.run(&["undo", "deploy/good", "--to-revision", "1", "--dry-run"])?;
    r.assert_code(0)
        .assert_stderr_has("would roll back to revision 1");
    assert!(standin.requests_with(Verb::Patch).is_empty());
    Ok(())
}

#[test]
fn stub_api_undo_refused_when_paused() -> TestResult {
    let (standin, plugin) = good_with_deployment(|d| d["spec"]["paused"] = json!(true))?;
    plugin
        .run(&["undo", "deploy/good"])?
        .assert_code(2)
        .assert_stderr_has("resume first");
    assert!(standin.requests_with(Verb::Patch).is_empty());
    Ok(())
}

#[test]
fn stub_api_history_output() -> TestResult {
    let (_standin, plugin) = good()?;
    let r = plugin.run(&["history", "deploy/good"])?;
    r.assert_code(0)
        .assert_stdout_has("initial release 2.3.1")
        .assert_stdout_has(&format!("app={IMAGE_2}"))
        .assert_stdout_has("2 (current)");
    let v = plugin
        .run(&["history", "deploy/good", "-o", "json"])?
        .json()?;
    let revs = v.as_array().unwrap();
    assert_eq!(revs.len(), 2);
    assert_eq!(revs[0]["revision"], json!(1));
    assert_eq!(revs[0]["changeCause"], json!("initial release 2.3.1"));
    assert_eq!(
        revs[0]["images"],
        json!([{"container": "app", "image": IMAGE_1}])
    );
    assert_eq!(revs[0]["replicaSet"], json!("good-69bb684dd9"));
    assert_eq!(revs[0]["created"], json!("2026-11-22T23:10:24Z"));
    assert_eq!(revs[1]["current"], json!(true));
    let v = plugin
        .run(&["history", "deploy/good", "--revision", "1", "-o", "json"])?
        .json()?;
    assert!(
        v["template"]["metadata"]["labels"]
            .get("pod-template-hash")
            .is_none()
    );
    let r = plugin.run(&["history", "deploy/good", "-o", "yaml"])?;
    r.assert_code(0)
        .assert_stdout_has("revision: 1")
        .assert_stdout_has("changeCause: initial release 2.3.1");
    plugin
        .run(&["history", "deploy/good", "--revision", "9"])?
        .assert_code(2);
    Ok(())
}

#[test]
fn stub_api_pause_resume_with_precondition() -> TestResult {
    let (standin, plugin) = good()?;
    plugin.run(&["pause", "deploy/good"])?.assert_code(0);
    let ops = patch_ops(&standin.requests_with(Verb::Patch)[0]);
    assert_eq!(ops[0]["op"], json!("test"));
    assert_eq!(
        ops[1],
        json!({"op": "add", "path": "/spec/paused", "value": true})
    );
    assert_eq!(deployment(&standin, "good")["spec"]["paused"], json!(true));
    plugin
        .run(&["pause", "deploy/good"])?
        .assert_stdout_has("already paused");
    plugin.run(&["resume", "deploy/good"])?.assert_code(0);
    assert!(deployment(&standin, "good")["spec"].get("paused").is_none());
    assert_eq!(standin.requests_with(Verb::Patch).len(), 2);
    Ok(())
}

#[test]
fn stub_api_status_once_and_json() -> TestResult {
    let (_standin, plugin) = good()?;
    let r = plugin.run(&["status", "deploy/good", "-o", "json"])?;
    r.assert_code(0);
    let v = r.json()?;
    assert_eq!(v["verdict"], json!("Complete"));
    assert_eq!(v["progress"]["newReplicaSet"], json!("good-7bd446db9"));
    let r = plugin.run(&["status", "deploy/good", "--watch", "--timeout", "20s"])?;
    r.assert_code(0)
        .assert_stdout_has("successfully rolled out");
    Ok(())
}

#[test]
fn stub_api_update_crashloop_is_detected_and_rolled_back() -> TestResult {
    let (standin, plugin) = good()?;
    let r = plugin.run(&update(CRASHING, &["--timeout", "30s"]))?;
    r.assert_code(1)
        .assert_stderr_has("rollout failed: CrashLoopBackOff")
        .assert_stderr_has("container: app")
        // Events are quoted.
        .assert_stderr_has("Back-off restarting failed container")
        .assert_stderr_has("failure → rollback:")
        .assert_stderr_has("rolled back to revision 2 and healthy again");
    let p = standin.requests_with(Verb::Patch);
    assert_eq!(p.len(), 2, "the update, then the rollback");
    let rollback = patch_ops(&p[1]);
    assert_eq!(rollback[0]["op"], json!("test"));
    let d = deployment(&standin, "good");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        json!(IMAGE_2)
    );
    let cause = cause_of(&d);
    assert!(
        cause.starts_with(&format!("rollback to revision 2 (image app={IMAGE_2})")),
        "{cause}"
    );
    Ok(())
}

#[test]
fn stub_api_update_crashloop_no_rollback() -> TestResult {
    let (standin, plugin) = good()?;
    let r = plugin.run(&update(CRASHING, &["--no-rollback", "--timeout", "30s"]))?;
    r.assert_code(1).assert_stderr_has("--no-rollback");
    assert_eq!(standin.requests_with(Verb::Patch).len(), 1);
    let r = plugin.run(&["status", "deploy/good"])?;
    r.assert_code(1).assert_stdout_has("CrashLoopBackOff");
    Ok(())
}

#[test]
fn stub_api_ctrl_c_stops_watching_and_says_how_to_resume() -> TestResult {
    let (standin, plugin) = good()?;
    standin.set_stuck(DEPLOYMENT_CONTROLLER, true)?;
    let interrupt = Interrupt::WhenWatching {
        after: Duration::from_millis(500),
    };
    let options = RunOptions {
        interrupt: Some(interrupt),
        ..RunOptions::default()
    };
    let r = plugin.run_with(&update(IMAGE_3, &["--timeout", "60s"]), options)?;
    r.assert_code(4)
        .assert_stderr_has("interrupted: stopped watching deployment/good")
        .assert_stderr_has("kubectl rollout-safe status deployment/good -n api --watch")
        .assert_stderr_has("kubectl rollout-safe undo deployment/good -n api");
    assert_eq!(
        standin.requests_with(Verb::Patch).len(),
        1,
        "nothing is rolled back on Ctrl-C"
    );
    Ok(())
}

#[test]
fn stub_api_update_timeout_rolls_back_and_exits_4() -> TestResult {
    let (standin, plugin) = good()?;
    standin.set_stuck(DEPLOYMENT_CONTROLLER, true)?;
    let r = plugin.run(&update(IMAGE_3, &["--timeout", "2s"]))?;
    r.assert_code(4).assert_stderr_has("timed out after 2.0s");
    let p = standin.requests_with(Verb::Patch);
    assert_eq!(p.len(), 2, "the update, then the rollback");
    let d = deployment(&standin, "good");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        json!(IMAGE_2)
    );
    assert!(
        cause_of(&d).contains("automatic, after the update failed (timeout)"),
        "{}",
        cause_of(&d)
    );
    Ok(())
}

#[test]
fn stub_api_status_statefulset() -> TestResult {
    let (_standin, plugin) = good()?;
    let r = plugin.run(&["status", "sts/db", "-o", "json"])?;
    r.assert_code(0);
    let v = r.json()?;
    assert_eq!(v["verdict"], json!("Complete"), "{v}");
    assert_eq!(v["workload"], json!("statefulset/db"));
    let r = plugin.run(&["status", "statefulset/db", "--watch", "--timeout", "20s"])?;
    r.assert_code(0)
        .assert_stdout_has("rolling update complete");
    Ok(())
}

#[test]
fn stub_api_audit_cluster_and_plan() -> TestResult {
    let (_standin, plugin) = good()?;
    for scope in [&[][..], &["-A"][..]] {
        let mut args = vec!["audit", "--cluster", "-o", "json"];
        args.extend_from_slice(scope);
        let r = plugin.run(&args)?;
        // The StatefulSet has no readiness probe (enforced).
        r.assert_code(3);
        let text = r.json()?.to_string();
        assert!(text.contains("cluster:api/StatefulSet/db"), "{text}");
        assert!(text.contains("RS101"), "{text}");
    }
    plugin
        .run(&["plan", "deploy/good"])?
        .assert_code(0)
        .assert_stdout_has("3 replicas");
    Ok(())
}

#[test]
fn stub_api_progress_deadline_exceeded_is_a_failure_with_its_reason() -> TestResult {
    // A rollout whose new pods never become ready makes no progress: once
    // progressDeadlineSeconds pass, the deployment controller says so, and `status` reports it.
    let (standin, plugin) = good_with_deployment(|d| {
        d["spec"]["progressDeadlineSeconds"] = json!(1);
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(NEVER_READY);
    })?;
    standin.wait_until(Duration::from_secs(20), "ProgressDeadlineExceeded", |s| {
        s.get("deployments", "api", "good")
            .is_some_and(|d| d["status"].to_string().contains("ProgressDeadlineExceeded"))
    })?;
    let r = plugin.run(&["status", "deploy/good"])?;
    r.assert_code(1);
    assert!(
        format!("{}{}", r.stdout, r.stderr).contains("ProgressDeadlineExceeded"),
        "{r:?}"
    );
    Ok(())
}
