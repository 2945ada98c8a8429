//! The stand-in over HTTP, as a client sees it (a minimal HTTP/1.1 client over a socket, so
//! these tests need no Kubernetes client).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rollout_safe_standin::controllers::deployment::NAME as DEPLOYMENT_CONTROLLER;
use rollout_safe_standin::recording::{Recording, files};
use rollout_safe_standin::{
    Fault, StaleAnswer, Standin, StandinBuilder, Times, Verb, scenarios, seed,
};
use serde_json::{Value, json};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const JSON_PATCH: &str = "application/json-patch+json";
const MERGE_PATCH: &str = "application/merge-patch+json";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/api/deployments";
const PODS: &str = "/api/v1/namespaces/api/pods";

struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One request on a fresh connection; the body is read to its end (a watch must be given a
/// `timeoutSeconds`).
fn call(standin: &Standin, method: &str, target: &str, content_type: &str, body: &str) -> Reply {
    let addr = standin.url().trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect to the stand-in");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the reply");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("a header section");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Reply { status, body }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&tail[..size]);
        rest = &tail[size + 2..];
    }
    out
}

/// A recorded error body about Deployment `good`, as it would read for Deployment `name`.
fn recorded_for(file: &str, name: &str) -> Value {
    let mut body = Recording::load(file).unwrap().json().unwrap();
    let message = body["message"]
        .as_str()
        .unwrap()
        .replace("\"good\"", &format!("{name:?}"));
    body["message"] = json!(message);
    body["details"]["name"] = json!(name);
    body
}

fn get(standin: &Standin, target: &str) -> Reply {
    call(standin, "GET", target, "", "")
}

/// A merge patch of Deployment `shop`'s replicas.
fn scale_shop(standin: &Standin, replicas: i64) -> Reply {
    let patch = json!({"spec": {"replicas": replicas}}).to_string();
    call(
        standin,
        "PATCH",
        &format!("{DEPLOYMENTS}/shop"),
        MERGE_PATCH,
        &patch,
    )
}

fn items(reply: &Reply) -> Vec<String> {
    reply.json()["items"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|i| {
            i["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

fn shop() -> Standin {
    shop_with(3, |b| b)
}

/// Deployment `shop` (`replicas` pods of `shop:1`) behind Service `shop`, the builder's
/// options set by `configure`.
fn shop_with(replicas: i64, configure: impl FnOnce(StandinBuilder) -> StandinBuilder) -> Standin {
    let builder = scenarios::shop(
        Standin::builder("api").kubernetes_controllers(),
        replicas,
        "shop:1",
    )
    .expect("the shop scenario");
    configure(builder).start().expect("the stand-in starts")
}

#[test]
fn objects_lists_and_selectors_answer_like_the_recordings() {
    let standin = shop();
    let d = get(&standin, &format!("{DEPLOYMENTS}/shop"));
    assert_eq!(d.status, 200);
    assert_eq!(
        (d.json()["kind"].as_str(), d.json()["apiVersion"].as_str()),
        (Some("Deployment"), Some("apps/v1"))
    );
    let missing = get(&standin, &format!("{DEPLOYMENTS}/nope"));
    assert_eq!(missing.status, 404);
    let recorded = Recording::load(files::NOT_FOUND).unwrap().json().unwrap();
    assert_eq!(
        missing.json(),
        recorded,
        "a missing Deployment of the same name answers exactly as recorded"
    );
    assert_eq!(
        get(&standin, "/version").json(),
        Recording::load(files::VERSION).unwrap().json().unwrap()
    );
    assert_eq!(
        get(&standin, "/apis/apps/v1/namespaces/api/widgets").status,
        404
    );

    let pods = get(&standin, &format!("{PODS}?labelSelector=app%3Dshop"));
    assert_eq!(pods.json()["kind"], "PodList");
    assert!(
        pods.json()["items"][0].get("kind").is_none(),
        "list items carry no kind, as recorded"
    );
    assert_eq!(items(&pods).len(), 3);
    for (selector, want) in [
        ("app%20in%20(shop,other),!rollout-safe.dev%2Ftrack", 3),
        ("app%20notin%20(shop)", 0),
        ("pod-template-hash", 3),
        ("app!%3Dshop", 0),
    ] {
        assert_eq!(
            items(&get(&standin, &format!("{PODS}?labelSelector={selector}"))).len(),
            want,
            "{selector}"
        );
    }
    assert_eq!(
        get(&standin, &format!("{PODS}?labelSelector=app%20in%20(shop")).status,
        400
    );
    assert_eq!(
        get(
            &standin,
            &format!("{PODS}?fieldSelector=involvedObject.name%3Dx")
        )
        .status,
        400
    );
    let by_name = get(
        &standin,
        &format!("{DEPLOYMENTS}?fieldSelector=metadata.name%3Dshop"),
    );
    assert_eq!(items(&by_name), ["shop"]);
    assert_eq!(
        items(&get(&standin, "/apis/apps/v1/deployments")),
        ["shop"],
        "across namespaces"
    );

    // Pages, unless served from the watch cache (resourceVersion=0).
    let page = get(&standin, &format!("{PODS}?limit=2"));
    let token = page.json()["metadata"]["continue"]
        .as_str()
        .expect("a continue token")
        .to_owned();
    assert_eq!(page.json()["metadata"]["remainingItemCount"], 1);
    let next = get(&standin, &format!("{PODS}?limit=2&continue={token}"));
    assert_eq!(items(&page).len() + items(&next).len(), 3);
    assert!(next.json()["metadata"].get("continue").is_none());
    assert_eq!(
        items(&get(&standin, &format!("{PODS}?limit=2&resourceVersion=0"))).len(),
        3
    );
    assert_eq!(
        get(&standin, &format!("{PODS}?limit=2&continue=bogus")).status,
        400
    );
}

#[test]
fn writes_preconditions_and_validation() {
    let standin = shop();
    let shop = format!("{DEPLOYMENTS}/shop");
    let rv = get(&standin, &shop).json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let generation = get(&standin, &shop).json()["metadata"]["generation"]
        .as_i64()
        .unwrap();

    let failed_test = r#"[{"op":"test","path":"/metadata/resourceVersion","value":"1"},{"op":"replace","path":"/spec/replicas","value":5}]"#;
    let r = call(&standin, "PATCH", &shop, JSON_PATCH, failed_test);
    assert_eq!(
        (r.status, r.json()),
        (
            422,
            Recording::load(files::JSON_PATCH_TEST_FAILED)
                .unwrap()
                .json()
                .unwrap()
        )
    );
    let stale = r#"{"metadata":{"resourceVersion":"1"},"spec":{"replicas":4}}"#;
    let r = call(&standin, "PATCH", &shop, MERGE_PATCH, stale);
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (409, Some("Conflict"))
    );
    assert_eq!(r.json(), recorded_for(files::CONFLICT, "shop"));

    let fresh = format!(r#"{{"metadata":{{"resourceVersion":"{rv}"}},"spec":{{"replicas":4}}}}"#);
    let r = call(
        &standin,
        "PATCH",
        &format!("{shop}?dryRun=All"),
        MERGE_PATCH,
        &fresh,
    );
    assert_eq!(
        (r.status, r.json()["spec"]["replicas"].as_i64()),
        (200, Some(4))
    );
    assert_eq!(
        get(&standin, &shop).json()["spec"]["replicas"],
        3,
        "a dry run stores nothing"
    );
    let r = call(&standin, "PATCH", &shop, MERGE_PATCH, &fresh);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["metadata"]["generation"].as_i64(),
        Some(generation + 1)
    );
    assert_eq!(
        call(
            &standin,
            "PATCH",
            &shop,
            "application/strategic-merge-patch+json",
            "{}"
        )
        .status,
        415
    );
    let status_write = r#"{"status":{"replicas":99}}"#;
    call(&standin, "PATCH", &shop, MERGE_PATCH, status_write);
    assert_ne!(
        get(&standin, &shop).json()["status"]["replicas"],
        99,
        "status belongs to the status subresource"
    );

    let bad_env =
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","env":[{"name":"1BAD"}]}]}}}}"#;
    let r = call(&standin, "PATCH", &shop, MERGE_PATCH, bad_env);
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (422, Some("Invalid"))
    );
    assert_eq!(
        r.json()["details"]["causes"][0]["field"],
        "spec.template.spec.containers[0].env[0].name"
    );
    let new_selector = r#"{"spec":{"selector":{"matchLabels":{"app":"shop","color":"green"}}}}"#;
    let r = call(&standin, "PATCH", &shop, MERGE_PATCH, new_selector);
    let causes = r.json()["details"]["causes"].clone();
    let fields: Vec<&str> = causes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["spec.template.metadata.labels", "spec.selector"],
        "as recorded in 06"
    );

    let body = seed::typed(
        &rollout_safe_standin::resources::DEPLOYMENTS,
        get(&standin, &shop).json(),
    );
    let r = call(
        &standin,
        "POST",
        DEPLOYMENTS,
        "application/json",
        &body.to_string(),
    );
    assert_eq!(
        (r.status, r.json()["reason"].as_str()),
        (409, Some("AlreadyExists"))
    );
    let mut stale_put = get(&standin, &shop).json();
    stale_put["metadata"]["resourceVersion"] = json!("1");
    assert_eq!(
        call(
            &standin,
            "PUT",
            &shop,
            "application/json",
            &stale_put.to_string()
        )
        .status,
        409
    );

    let scale = get(&standin, &format!("{shop}/scale"));
    assert_eq!(
        (
            scale.json()["kind"].as_str(),
            scale.json()["spec"]["replicas"].as_i64()
        ),
        (Some("Scale"), Some(4))
    );
    assert_eq!(scale.json()["status"]["selector"], "app=shop");
    let r = call(
        &standin,
        "PATCH",
        &format!("{shop}/scale"),
        MERGE_PATCH,
        r#"{"spec":{"replicas":1}}"#,
    );
    assert_eq!(r.status, 200);
    assert_eq!(get(&standin, &shop).json()["spec"]["replicas"], 1);
}

#[test]
fn controllers_roll_out_crash_loop_and_collect_garbage() -> TestResult {
    let standin = shop();
    assert_eq!(standin.pods_of("shop").len(), 3);
    let slices = get(
        &standin,
        "/apis/discovery.k8s.io/v1/namespaces/api/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dshop",
    );
    let endpoints = slices.json()["items"][0]["endpoints"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(endpoints, 3);
    assert_eq!(
        slices.json()["items"][0]["ports"][0]["port"],
        8080,
        "targetPort `http` resolved"
    );

    // A crashing image: one surge pod crash-loops, the old pods stay (maxUnavailable 0).
    let shop = format!("{DEPLOYMENTS}/shop");
    let crash =
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"shop:2-crash"}]}}}}"#;
    assert_eq!(
        call(&standin, "PATCH", &shop, MERGE_PATCH, crash).status,
        200
    );
    let d = standin.get("deployments", "shop").unwrap();
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    assert_eq!(
        (
            d["status"]["replicas"].as_i64(),
            d["status"]["updatedReplicas"].as_i64()
        ),
        (Some(4), Some(1))
    );
    assert_eq!(d["status"]["conditions"][1]["reason"], "ReplicaSetUpdated");
    let pods = standin.pods_of("shop");
    let crashing: Vec<&Value> = pods
        .iter()
        .filter(|p| p["status"].to_string().contains("CrashLoopBackOff"))
        .collect();
    assert_eq!(crashing.len(), 1);
    let events = items(&get(
        &standin,
        "/api/v1/namespaces/api/events?fieldSelector=involvedObject.kind%3DPod,reason%3DBackOff",
    ));
    assert_eq!(events.len(), 1, "the kubelet's BackOff event");

    // Back to the good image: its ReplicaSet is revision 3 now, and the crashing pod goes.
    let good = r#"{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"shop:1"}]}}}}"#;
    call(&standin, "PATCH", &shop, MERGE_PATCH, good);
    let d = standin.get("deployments", "shop").unwrap();
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    assert_eq!(
        d["status"]["conditions"][1]["reason"],
        "NewReplicaSetAvailable"
    );
    assert_eq!(standin.pods_of("shop").len(), 3);

    // Deleting the Deployment takes its ReplicaSets and pods with it.
    assert_eq!(
        call(
            &standin,
            "DELETE",
            &shop,
            "application/json",
            r#"{"propagationPolicy":"Background"}"#
        )
        .status,
        200
    );
    assert!(items(&get(&standin, "/apis/apps/v1/namespaces/api/replicasets")).is_empty());
    assert!(items(&get(&standin, PODS)).is_empty());
    assert!(
        standin.controller_errors().is_empty(),
        "{:?}",
        standin.controller_errors()
    );
    Ok(())
}

#[test]
fn watches_stream_changes_filtered_with_bookmarks() -> TestResult {
    let standin = shop_with(1, |b| {
        b.bookmark_interval(Duration::from_millis(100))
            .worker_threads(2)
    });
    let rv = standin.read(|s| s.resource_version());
    scale_shop(&standin, 2);
    let watch = get(
        &standin,
        &format!(
            "{PODS}?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=1"
        ),
    );
    assert_eq!(watch.status, 200);
    let events: Vec<Value> = watch
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types[..2],
        ["ADDED", "MODIFIED"],
        "the new pod, then its start: {types:?}"
    );
    assert!(types.contains(&"BOOKMARK"), "{types:?}");
    assert_eq!(
        events[0]["object"]["kind"], "Pod",
        "watch objects carry their kind, as recorded in 11"
    );

    // From "0": what exists first; a label selector turns leaving the selection into DELETED.
    let from_zero = get(
        &standin,
        &format!("{PODS}?watch=1&timeoutSeconds=1&labelSelector=app%3Dshop"),
    );
    assert_eq!(from_zero.body.lines().count(), 2);
    let before = standin.read(|s| s.resource_version());
    let pod = standin.pods_of("shop")[0].clone();
    standin.modify(|s| {
        let mut p = pod.clone();
        p["metadata"]["labels"]["app"] = json!("elsewhere");
        s.put("pods", p)
    })?;
    let left = get(
        &standin,
        &format!(
            "{PODS}?watch=1&timeoutSeconds=1&labelSelector=app%3Dshop&resourceVersion={before}"
        ),
    );
    let first: Value = serde_json::from_str(left.body.lines().next().unwrap())?;
    assert_eq!(
        (
            first["type"].as_str(),
            first["object"]["metadata"]["name"].as_str()
        ),
        (Some("DELETED"), pod["metadata"]["name"].as_str())
    );
    let log = standin.requests_with(Verb::Watch);
    assert!(
        log.iter().all(|r| r.response_bytes > 0),
        "watch bytes are counted"
    );
    Ok(())
}

#[test]
fn faults_stuck_controllers_and_the_request_log() -> TestResult {
    let standin = shop();
    let shop = format!("{DEPLOYMENTS}/shop");
    standin.inject(
        Fault::Forbidden {
            verb: Verb::Get,
            resource: "deployments".into(),
        },
        Times::Next(1),
    );
    let r = get(&standin, &shop);
    assert_eq!(r.status, 403);
    assert_eq!(r.json(), recorded_for(files::FORBIDDEN, "shop"));
    assert_eq!(
        get(&standin, &shop).status,
        200,
        "only the next GET was forbidden"
    );

    standin.inject(
        Fault::ConcurrentWrite {
            resource: "deployments".into(),
            body_contains: None,
            answer: StaleAnswer::Conflict,
        },
        Times::Next(1),
    );
    let r = call(
        &standin,
        "PATCH",
        &shop,
        MERGE_PATCH,
        r#"{"spec":{"replicas":2}}"#,
    );
    assert_eq!(r.status, 409);
    assert_eq!(
        standin.get("deployments", "shop").unwrap()["metadata"]["annotations"]["example.com/other-writer"],
        "touch 0"
    );

    standin.set_stuck(DEPLOYMENT_CONTROLLER, true)?;
    call(
        &standin,
        "PATCH",
        &shop,
        MERGE_PATCH,
        r#"{"spec":{"replicas":5}}"#,
    );
    assert_eq!(
        standin.pods_of("shop").len(),
        3,
        "a stuck deployment controller does nothing"
    );
    standin.set_stuck(DEPLOYMENT_CONTROLLER, false)?;
    assert_eq!(standin.pods_of("shop").len(), 5, "…until it is unstuck");
    assert!(standin.set_stuck("nope", true).is_err());

    let log = standin.requests();
    let patch = log.iter().find(|r| r.verb == Verb::Patch).unwrap();
    assert_eq!(
        (
            patch.status,
            patch.content_type.as_str(),
            patch.resource.as_str()
        ),
        (409, MERGE_PATCH, "deployments")
    );
    assert_eq!(patch.json_body().unwrap()["spec"]["replicas"], 2);
    assert!(log.iter().all(|r| r.response_bytes > 0));
    Ok(())
}

#[test]
fn a_reaction_delay_lets_clients_see_the_write_before_its_effect() -> TestResult {
    let standin = shop_with(1, |b| b.reaction_delay(Duration::from_millis(300)));
    scale_shop(&standin, 2);
    assert_eq!(standin.pods_of("shop").len(), 1, "not yet");
    standin.wait_until(Duration::from_secs(5), "the second pod", |s| {
        s.pods_of_deployment("api", "shop").len() == 2
    })?;
    Ok(())
}
