//! End-to-end tests of `update`, `undo`, `history` and the automatic rollback against a real
//! cluster. They run only when `ROLLOUT_SAFE_E2E_KUBECONFIG` names a kubeconfig (any cluster
//! whose nodes can pull public images: kind, k3d, minikube…); otherwise each test prints
//! "skipped: ROLLOUT_SAFE_E2E_KUBECONFIG unset" and passes.
//!
//! Every test works in its own namespace `rollout-safe-e2e-…` (labelled
//! `rollout-safe.dev/e2e=true`), deleted at the end of a passing test.
//!
//! Images (override with the environment variables named):
//! - good: `ROLLOUT_SAFE_E2E_IMAGE_GOOD_1` (`nginx:1.27-alpine`), `ROLLOUT_SAFE_E2E_IMAGE_GOOD_2` (`nginx:1.28-alpine`)
//! - crashing: `ROLLOUT_SAFE_E2E_IMAGE_CRASH` (`busybox:1.36`: its shell exits at once → CrashLoopBackOff)
//! - never ready: `ROLLOUT_SAFE_E2E_IMAGE_UNREADY` (`registry.k8s.io/pause:3.10`: runs, never serves the readiness probe)

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::{Value, json};

const ENV: &str = "ROLLOUT_SAFE_E2E_KUBECONFIG";

fn kubeconfig() -> Option<PathBuf> {
    match std::env::var_os(ENV) {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            println!("skipped: {ENV} unset");
            None
        }
    }
}

fn image(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

fn good_1() -> String {
    image("ROLLOUT_SAFE_E2E_IMAGE_GOOD_1", "nginx:1.27-alpine")
}
fn good_2() -> String {
    image("ROLLOUT_SAFE_E2E_IMAGE_GOOD_2", "nginx:1.28-alpine")
}
fn crash() -> String {
    image("ROLLOUT_SAFE_E2E_IMAGE_CRASH", "busybox:1.36")
}
fn unready() -> String {
    image(
        "ROLLOUT_SAFE_E2E_IMAGE_UNREADY",
        "registry.k8s.io/pause:3.10",
    )
}

struct Env {
    kubeconfig: PathBuf,
    client: Client,
    ns: String,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Env {
    async fn new(test: &str) -> Env {
        let kubeconfig = kubeconfig().expect("checked by the caller");
        let kc = Kubeconfig::read_from(&kubeconfig).expect("the e2e kubeconfig reads");
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .unwrap();
        let client = Client::try_from(config).unwrap();
        let suffix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 1_000_000;
        let ns = format!("rollout-safe-e2e-{test}-{suffix}");
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let n: Namespace = serde_json::from_value(json!({
            "metadata": {"name": ns, "labels": {"rollout-safe.dev/e2e": "true"}}
        }))
        .unwrap();
        namespaces
            .create(&PostParams::default(), &n)
            .await
            .expect("create the test namespace");
        Env {
            kubeconfig,
            client,
            ns,
        }
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Creates Deployment `web` (2 replicas, probes, preStop, maxUnavailable 0) and waits until it is available.
    async fn create_web(&self) {
        let d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "annotations": {"kubernetes.io/change-cause": "initial release"}},
            "spec": {
                "replicas": 2, "revisionHistoryLimit": 5, "progressDeadlineSeconds": 180, "minReadySeconds": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "containers": [{"name": "web", "image": good_1(),
                        "ports": [{"name": "http", "containerPort": 80}],
                        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 2},
                        "livenessProbe": {"httpGet": {"path": "/", "port": "http"}, "initialDelaySeconds": 30, "periodSeconds": 10, "failureThreshold": 3},
                        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}}}]}}
            }
        }))
        .unwrap();
        self.deployments()
            .create(&PostParams::default(), &d)
            .await
            .expect("create deploy/web");
        let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}});
        let pdbs: Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> =
            Api::namespaced(self.client.clone(), &self.ns);
        pdbs.create(
            &PostParams::default(),
            &serde_json::from_value(pdb).unwrap(),
        )
        .await
        .expect("create the PDB");
        let r = self
            .run(&["status", "deploy/web", "--watch", "--timeout", "4m"], &[])
            .await;
        assert_eq!(r.code, 0, "deploy/web never became available: {}", r.stderr);
    }

    async fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-rollout_safe"));
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("-n")
            .arg(&self.ns)
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("the plugin runs"))
            .await
            .unwrap();
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        println!(
            "$ kubectl rollout-safe {}\n--- exit {}\n--- stdout\n{}--- stderr\n{}",
            args.join(" "),
            run.code,
            run.stdout,
            run.stderr
        );
        run
    }

    /// Runs `update … --debug-pause-before-write` (a hidden test hook: after its first read the
    /// plugin says so and waits for a line on stdin), runs `meanwhile` once the plugin has read,
    /// then lets it write: its precondition is then deterministically stale.
    async fn run_with_write_in_between(
        &self,
        args: &[&str],
        meanwhile: impl std::future::Future<Output = ()>,
    ) -> Run {
        use std::io::{BufRead, BufReader, Read, Write};
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-rollout_safe"));
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("-n")
            .arg(&self.ns)
            .args(args)
            .arg("--debug-pause-before-write")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("the plugin runs");
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (read_tx, read_rx) = std::sync::mpsc::channel();
        let stderr_reader = std::thread::spawn(move || {
            let mut all = String::new();
            for line in stderr.lines().map_while(Result::ok) {
                if line.contains("paused before writing") {
                    let _ = read_tx.send(());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let stdout_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let paused = tokio::task::spawn_blocking(move || {
            read_rx.recv_timeout(Duration::from_secs(120)).is_ok()
        })
        .await
        .unwrap();
        assert!(paused, "the plugin never said it had read the Deployment");
        meanwhile.await;
        stdin.write_all(b"\n").unwrap();
        drop(stdin);
        let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
            let status = child.wait().unwrap();
            (
                status.code().unwrap_or(-1),
                stdout_reader.join().unwrap(),
                stderr_reader.join().unwrap(),
            )
        })
        .await
        .unwrap();
        let run = Run {
            code,
            stdout,
            stderr,
        };
        println!(
            "$ kubectl rollout-safe {} --debug-pause-before-write\n--- exit {}\n--- stdout\n{}--- stderr\n{}",
            args.join(" "),
            run.code,
            run.stdout,
            run.stderr
        );
        run
    }

    async fn web(&self) -> Deployment {
        self.deployments().get("web").await.unwrap()
    }

    async fn cleanup(self) {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces
            .delete(&self.ns, &DeleteParams::background())
            .await;
    }
}

fn image_of(d: &Deployment) -> String {
    d.spec.template.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

fn cause_of(d: &Deployment) -> String {
    d.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("kubernetes.io/change-cause"))
        .cloned()
        .unwrap_or_default()
}

fn available(d: &Deployment) -> bool {
    let s = d.status.clone().unwrap_or_default();
    s.observed_generation >= d.metadata.generation
        && s.updated_replicas == d.spec.replicas
        && s.available_replicas == d.spec.replicas
        && s.replicas == d.spec.replicas
}

/// `failure → rollback: 1.4s` in the plugin's output.
fn latency(stderr: &str) -> Option<f64> {
    let rest = &stderr[stderr.find("failure → rollback: ")? + "failure → rollback: ".len()..];
    rest[..rest.find('s')?].parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_good_update() {
    if kubeconfig().is_none() {
        return;
    }
    let env = Env::new("good").await;
    env.create_web().await;
    let r = env
        .run(
            &[
                "update",
                "deploy/web",
                "--image",
                &format!("web={}", good_2()),
                "--timeout",
                "5m",
            ],
            &[],
        )
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let d = env.web().await;
    assert_eq!(image_of(&d), good_2());
    assert!(available(&d));
    assert!(
        cause_of(&d).contains(&format!("image web={}", good_2())),
        "{}",
        cause_of(&d)
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_crashing_image_detected_and_rolled_back() {
    if kubeconfig().is_none() {
        return;
    }
    let env = Env::new("crash").await;
    env.create_web().await;
    let r = env
        .run(
            &[
                "update",
                "deploy/web",
                "--image",
                &format!("web={}", crash()),
                "--timeout",
                "5m",
            ],
            &[],
        )
        .await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("CrashLoopBackOff") || r.stderr.contains("TooManyRestarts"),
        "{}",
        r.stderr
    );
    let secs = latency(&r.stderr).expect("the failure → rollback latency is printed");
    println!(
        "measured failure → rollback latency: {secs:.1}s (target ≤ 10s; kubectl's default deadline: 600s)"
    );
    assert!(secs <= 10.0, "failure → rollback took {secs}s");
    let d = env.web().await;
    assert_eq!(image_of(&d), good_1(), "rolled back to the previous image");
    assert!(available(&d), "healthy again after the rollback");
    assert!(
        cause_of(&d).starts_with("rollback to revision 1"),
        "{}",
        cause_of(&d)
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_never_ready_image_rolled_back() {
    if kubeconfig().is_none() {
        return;
    }
    let env = Env::new("unready").await;
    env.create_web().await;
    let r = env
        .run(
            &[
                "update",
                "deploy/web",
                "--image",
                &format!("web={}", unready()),
                "--readiness-budget",
                "20s",
                "--timeout",
                "5m",
            ],
            &[],
        )
        .await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("NeverReady") || r.stderr.contains("TooManyRestarts"),
        "{}",
        r.stderr
    );
    if let Some(secs) = latency(&r.stderr) {
        println!(
            "measured failure → rollback latency (readiness budget 20s counted from when the pod started): {secs:.1}s"
        );
    }
    let d = env.web().await;
    assert_eq!(image_of(&d), good_1());
    assert!(available(&d));
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_undo_to_revision_and_history_with_causes() {
    if kubeconfig().is_none() {
        return;
    }
    let env = Env::new("undo").await;
    env.create_web().await;
    let r = env
        .run(
            &[
                "update",
                "deploy/web",
                "--image",
                &format!("web={}", good_2()),
                "--timeout",
                "5m",
            ],
            &[],
        )
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = env
        .run(
            &[
                "update",
                "deploy/web",
                "--image",
                &format!("web={}", good_2()),
                "--env",
                "web:COLOR=blue",
                "--cause",
                "turn blue",
                "--timeout",
                "5m",
            ],
            &[],
        )
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);

    let r = env.run(&["history", "deploy/web", "-o", "json"], &[]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let h: Vec<Value> = serde_json::from_str(&r.stdout).unwrap();
    let causes: Vec<&str> = h
        .iter()
        .map(|r| r["changeCause"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        h.iter()
            .map(|r| r["revision"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(causes[0], "initial release");
    assert!(
        causes[1].contains(&format!("image web={}", good_2())),
        "{causes:?}"
    );
    assert_eq!(causes[2], "turn blue");
    assert_eq!(h[2]["current"], json!(true));

    let r = env
        .run(
            &[
                "undo",
                "deploy/web",
                "--to-revision",
                "1",
                "--timeout",
                "5m",
            ],
            &[],
        )
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let d = env.web().await;
    assert_eq!(image_of(&d), good_1());
    assert!(
        d.spec.template.spec.as_ref().unwrap().containers[0]
            .env
            .is_none()
    );
    assert!(
        cause_of(&d).starts_with("rollback to revision 1 (initial release)"),
        "{}",
        cause_of(&d)
    );
    assert!(
        !d.spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap()
            .contains_key("pod-template-hash")
    );
    assert!(available(&d));
    let r = env.run(&["history", "deploy/web"], &[]).await;
    assert!(
        r.stdout
            .contains("rollback to revision 1 (initial release)"),
        "{}",
        r.stdout
    );
    env.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e2e_conflict_during_update() {
    if kubeconfig().is_none() {
        return;
    }
    let env = Env::new("conflict").await;
    env.create_web().await;
    // Once the plugin has read the Deployment (and before it writes), someone else annotates
    // it, so the plugin's precondition is stale.
    let api = env.deployments();
    let other_writer = async move {
        api.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"example.com/other-writer": "was here"}}}),
            ),
        )
        .await
        .expect("the concurrent write");
    };
    let r = env
        .run_with_write_in_between(
            &[
                "update",
                "deploy/web",
                "--image",
                &format!("web={}", good_2()),
                "--timeout",
                "5m",
            ],
            other_writer,
        )
        .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("conflict: deployment/web changed since it was read"),
        "{}",
        r.stderr
    );
    let d = env.web().await;
    assert_eq!(image_of(&d), good_2());
    assert_eq!(
        d.metadata
            .annotations
            .as_ref()
            .unwrap()
            .get("example.com/other-writer")
            .map(String::as_str),
        Some("was here"),
        "the other write is not clobbered"
    );
    env.cleanup().await;
}
