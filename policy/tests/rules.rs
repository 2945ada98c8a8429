//! Every rule, both ways: a safe object passes, and each targeted defect is reported by
//! exactly the rule that owns it, with the object, container and field named.

use rollout_safe_policy::check::{Facts, check, image_is_pinned};
use rollout_safe_policy::{
    Action, EffectivePolicy, Finding, RolloutPolicy, RuleId, Severity, Workload,
};
use serde_json::{Value, json};

/// A Deployment that passes every rule.
fn safe() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "annotations": {"kubernetes.io/change-cause": "initial"}},
        "spec": {
            "replicas": 3,
            "revisionHistoryLimit": 5,
            "progressDeadlineSeconds": 300,
            "minReadySeconds": 5,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "containers": [{
                        "name": "web",
                        "image": "registry.example.com/shop/web:1.4.2",
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5},
                        "livenessProbe": {"httpGet": {"path": "/live", "port": "http"}, "periodSeconds": 10, "failureThreshold": 6},
                        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}}
                    }]
                }
            }
        }
    })
}

fn with(mut v: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let p = v
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent}"));
    match p {
        Value::Object(m) => {
            if value.is_null() {
                m.remove(key);
            } else {
                m.insert(key.to_string(), value);
            }
        }
        Value::Array(a) => a[key.parse::<usize>().unwrap()] = value,
        _ => panic!("{parent} is not a container"),
    }
    v
}

fn run(v: &Value) -> Vec<Finding> {
    run_with(v, None, &EffectivePolicy::default(), &Facts::default())
}

fn run_with(v: &Value, old: Option<&Value>, p: &EffectivePolicy, facts: &Facts) -> Vec<Finding> {
    let w = Workload::from_value(v).unwrap().unwrap();
    let old = old.map(|o| Workload::from_value(o).unwrap().unwrap());
    check(&w, old.as_ref(), p, facts)
}

fn rules(f: &[Finding]) -> Vec<RuleId> {
    f.iter().map(|f| f.rule).collect()
}

const C0: &str = "/spec/template/spec/containers/0";

#[test]
fn safe_deployment_has_no_findings() {
    assert_eq!(run(&safe()), vec![]);
}

#[test]
fn rs101_readiness() {
    let f = run(&with(safe(), &format!("{C0}/readinessProbe"), Value::Null));
    assert_eq!(rules(&f), vec![RuleId::RS101]);
    let f = &f[0];
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.container.as_deref(), Some("web"));
    assert_eq!(f.field, "spec.template.spec.containers[0].readinessProbe");
    assert!(
        f.message.contains("Deployment shop/web") && f.message.contains("\"web\""),
        "{}",
        f.message
    );
    assert!(!f.fix.is_empty());
}

#[test]
fn rs102_liveness() {
    let f = run(&with(safe(), &format!("{C0}/livenessProbe"), Value::Null));
    assert_eq!(rules(&f), vec![RuleId::RS102]);
    assert_eq!(f[0].severity, Severity::Warning);
}

#[test]
fn rs103_identical_probes_compare_whole_probe() {
    let probe = json!({"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10});
    let v = with(safe(), &format!("{C0}/readinessProbe"), probe.clone());
    let same = with(v.clone(), &format!("{C0}/livenessProbe"), probe.clone());
    assert!(rules(&run(&same)).contains(&RuleId::RS103));
    // Spelled-out defaults are still identical.
    let spelled = with(
        v.clone(),
        &format!("{C0}/livenessProbe"),
        json!({"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"}, "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 1}),
    );
    assert!(rules(&run(&spelled)).contains(&RuleId::RS103));
    // Same handler, more tolerant timing: not identical (a lesson from peers' trackers).
    let tolerant = with(
        v,
        &format!("{C0}/livenessProbe"),
        json!({"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10, "failureThreshold": 6}),
    );
    assert!(!rules(&run(&tolerant)).contains(&RuleId::RS103));
}

#[test]
fn rs104_startup_budget() {
    let quick = with(
        safe(),
        &format!("{C0}/livenessProbe"),
        json!({"httpGet": {"path": "/live", "port": "http"}, "periodSeconds": 2, "failureThreshold": 3}),
    );
    let f = run(&quick);
    assert_eq!(rules(&f), vec![RuleId::RS104]);
    assert!(f[0].message.contains("6s"), "{}", f[0].message);
    // A startupProbe covers it.
    let covered = with(
        quick.clone(),
        &format!("{C0}/startupProbe"),
        json!({"httpGet": {"path": "/live", "port": "http"}, "failureThreshold": 30}),
    );
    assert_eq!(run(&covered), vec![]);
    // So does a floor the policy lowers.
    let mut p = EffectivePolicy::default();
    p.params.RS104.min_startup_seconds = 5;
    assert_eq!(run_with(&quick, None, &p, &Facts::default()), vec![]);
}

#[test]
fn rs105_named_port_must_exist() {
    let v = with(
        safe(),
        &format!("{C0}/readinessProbe"),
        json!({"httpGet": {"path": "/ready", "port": "htp"}}),
    );
    let f = run(&v);
    assert_eq!(rules(&f), vec![RuleId::RS105]);
    assert_eq!(
        f[0].field,
        "spec.template.spec.containers[0].readinessProbe.httpGet.port"
    );
    let numeric = with(
        safe(),
        &format!("{C0}/readinessProbe"),
        json!({"tcpSocket": {"port": 8080}}),
    );
    assert_eq!(run(&numeric), vec![]);
}

#[test]
fn rs201_prestop_and_sidecars() {
    let f = run(&with(safe(), &format!("{C0}/lifecycle"), Value::Null));
    assert_eq!(rules(&f), vec![RuleId::RS201]);
    // A sidecar (restartPolicy Always) is an app container; a plain init container is exempt.
    let v = with(
        safe(),
        "/spec/template/spec/initContainers",
        json!([
            {"name": "migrate", "image": "shop/migrate:1"},
            {"name": "proxy", "image": "envoy:1.30", "restartPolicy": "Always",
             "readinessProbe": {"tcpSocket": {"port": 9901}},
             "livenessProbe": {"tcpSocket": {"port": 9901}, "failureThreshold": 5}}
        ]),
    );
    let f = run(&v);
    assert_eq!(rules(&f), vec![RuleId::RS201]);
    assert_eq!(f[0].container.as_deref(), Some("proxy"));
    assert_eq!(
        f[0].field,
        "spec.template.spec.initContainers[1].lifecycle.preStop"
    );
}

#[test]
fn rs202_grace_covers_prestop() {
    let v = with(
        safe(),
        &format!("{C0}/lifecycle"),
        json!({"preStop": {"exec": {"command": ["/bin/sh", "-c", "sleep 25"]}}}),
    );
    let f = run(&v);
    assert_eq!(rules(&f), vec![RuleId::RS202]);
    assert!(f[0].message.contains("25s preStop"), "{}", f[0].message);
    assert!(f[0].fix.contains("35"));
    let ok = with(
        v,
        "/spec/template/spec/terminationGracePeriodSeconds",
        json!(35),
    );
    assert_eq!(run(&ok), vec![]);
    // `sleep 2m` is two minutes; `sleep infinity` is a hang, not a drain delay, and asks for nothing.
    let minutes = with(
        safe(),
        &format!("{C0}/lifecycle"),
        json!({"preStop": {"exec": {"command": ["sleep", "2m"]}}}),
    );
    assert!(run(&minutes)[0].fix.contains("130"), "{:?}", run(&minutes));
    let forever = with(
        safe(),
        &format!("{C0}/lifecycle"),
        json!({"preStop": {"exec": {"command": ["sh", "-c", "sleep infinity"]}}}),
    );
    assert_eq!(run(&forever), vec![]);
    // Unset grace is Kubernetes' 30 s.
    let unset = with(
        safe(),
        "/spec/template/spec/terminationGracePeriodSeconds",
        Value::Null,
    );
    assert_eq!(run(&unset), vec![]);
}

#[test]
fn rs301_fresh_change_cause_on_template_change() {
    let old = safe();
    let new_image = with(
        safe(),
        &format!("{C0}/image"),
        json!("registry.example.com/shop/web:1.5.0"),
    );
    let f = run_with(
        &new_image,
        Some(&old),
        &EffectivePolicy::default(),
        &Facts::default(),
    );
    assert_eq!(rules(&f), vec![RuleId::RS301], "stale cause kept");
    assert!(f[0].message.contains("\"initial\""));
    let fresh = with(
        new_image.clone(),
        "/metadata/annotations",
        json!({"kubernetes.io/change-cause": "bump"}),
    );
    assert_eq!(
        run_with(
            &fresh,
            Some(&old),
            &EffectivePolicy::default(),
            &Facts::default()
        ),
        vec![]
    );
    let none = with(new_image, "/metadata/annotations", Value::Null);
    assert_eq!(
        rules(&run_with(
            &none,
            Some(&old),
            &EffectivePolicy::default(),
            &Facts::default()
        )),
        vec![RuleId::RS301]
    );
    // A scale is not a template change.
    let scaled = with(safe(), "/spec/replicas", json!(5));
    assert_eq!(
        run_with(
            &scaled,
            Some(&old),
            &EffectivePolicy::default(),
            &Facts::default()
        ),
        vec![]
    );
}

#[test]
fn rs401_effective_max_unavailable() {
    let all_down = with(
        safe(),
        "/spec/strategy/rollingUpdate",
        json!({"maxSurge": 0, "maxUnavailable": "100%"}),
    );
    let f = run(&all_down);
    assert_eq!(rules(&f), vec![RuleId::RS401]);
    assert!(f[0].message.contains("3 of 3"), "{}", f[0].message);
    // 50 % of 3 rounds down to 1: fine.
    let half = with(
        safe(),
        "/spec/strategy/rollingUpdate",
        json!({"maxSurge": 1, "maxUnavailable": "50%"}),
    );
    assert_eq!(run(&half), vec![]);
    // 75 % of 4 is 3 < 4: fine; 4 of 4 is not.
    let four = with(half.clone(), "/spec/replicas", json!(4));
    let four = with(
        four,
        "/spec/strategy/rollingUpdate",
        json!({"maxUnavailable": 4}),
    );
    assert_eq!(rules(&run(&four)), vec![RuleId::RS401]);
    // One replica: the rule does not apply (RS405 speaks instead).
    let one = with(all_down, "/spec/replicas", json!(1));
    assert_eq!(rules(&run(&one)), vec![RuleId::RS405]);
    let invalid = with(
        safe(),
        "/spec/strategy/rollingUpdate",
        json!({"maxUnavailable": "lots"}),
    );
    assert!(run(&invalid)[0].message.contains("invalid"));
}

#[test]
fn rs402_recreate() {
    let v = with(safe(), "/spec/strategy", json!({"type": "Recreate"}));
    assert_eq!(rules(&run(&v)), vec![RuleId::RS402]);
    let single = with(v, "/spec/replicas", json!(1));
    assert_eq!(rules(&run(&single)), vec![RuleId::RS405]);
}

#[test]
fn rs403_history() {
    let v = with(safe(), "/spec/revisionHistoryLimit", json!(1));
    let f = run(&v);
    assert_eq!(rules(&f), vec![RuleId::RS403]);
    assert!(f[0].fix.contains('5'));
    let unset = with(safe(), "/spec/revisionHistoryLimit", Value::Null);
    assert_eq!(run(&unset), vec![], "Kubernetes defaults to 10");
}

#[test]
fn rs404_progress_deadline() {
    let v = with(safe(), "/spec/progressDeadlineSeconds", json!(5));
    assert_eq!(rules(&run(&v)), vec![RuleId::RS404]);
    // The suggested deadline is computed past i32 without overflowing, as the CEL form does.
    let max = with(
        with(safe(), "/spec/minReadySeconds", json!(i32::MAX)),
        "/spec/progressDeadlineSeconds",
        json!(i32::MAX),
    );
    let f = run(&max);
    assert_eq!(rules(&f), vec![RuleId::RS404]);
    assert!(f[0].fix.contains("2147483947"), "{}", f[0].fix);
}

#[test]
fn rs405_replicas_unless_autoscaled() {
    let v = with(safe(), "/spec/replicas", json!(1));
    assert_eq!(rules(&run(&v)), vec![RuleId::RS405]);
    let hpa = Facts {
        autoscaled: true,
        ..Default::default()
    };
    assert_eq!(
        run_with(&v, None, &EffectivePolicy::default(), &hpa),
        vec![]
    );
    let zero = with(safe(), "/spec/replicas", json!(0));
    assert_eq!(run(&zero), vec![], "scaled to zero on purpose");
}

#[test]
fn rs501_pinned_images() {
    for (image, pinned) in [
        ("nginx", false),
        ("nginx:latest", false),
        ("nginx:1.27", true),
        ("registry:5000/nginx", false),
        ("registry:5000/nginx:1.27", true),
        ("nginx@sha256:0123abcd", true),
        ("", false),
    ] {
        assert_eq!(image_is_pinned(image), pinned, "{image}");
    }
    let v = with(safe(), &format!("{C0}/image"), json!("shop/web:latest"));
    assert_eq!(rules(&run(&v)), vec![RuleId::RS501]);
    let init = with(
        safe(),
        "/spec/template/spec/initContainers",
        json!([{"name": "migrate", "image": "shop/migrate"}]),
    );
    let f = run(&init);
    assert_eq!(rules(&f), vec![RuleId::RS501]);
    assert_eq!(f[0].container.as_deref(), Some("migrate"));
}

#[test]
fn rs601_pdb_when_known() {
    let not_covered = Facts {
        pdb_covered: Some(false),
        ..Default::default()
    };
    assert_eq!(
        rules(&run_with(
            &safe(),
            None,
            &EffectivePolicy::default(),
            &not_covered
        )),
        vec![RuleId::RS601]
    );
    let covered = Facts {
        pdb_covered: Some(true),
        ..Default::default()
    };
    assert_eq!(
        run_with(&safe(), None, &EffectivePolicy::default(), &covered),
        vec![]
    );
}

#[test]
fn skip_annotation_needs_a_reason() {
    let bare = with(safe(), &format!("{C0}/image"), json!("nginx"));
    let skipped = with(
        bare.clone(),
        "/metadata/annotations",
        json!({"rollout-safe.dev/skip": "RS501", "rollout-safe.dev/skip-reason": "vendor image, tag moves with the chart"}),
    );
    assert_eq!(run(&skipped), vec![]);
    let no_reason = with(
        bare,
        "/metadata/annotations",
        json!({"rollout-safe.dev/skip": "RS501, RS999"}),
    );
    let f = run(&no_reason);
    assert_eq!(rules(&f), vec![RuleId::RS001, RuleId::RS001, RuleId::RS501]);
    assert!(f[0].message.contains("skip is ignored"));
    assert!(f[1].message.contains("RS999"));
}

#[test]
fn policy_actions_and_namespaces() {
    let p = RolloutPolicy::from_yaml(
        "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\nspec:\n  rules:\n    RS102: enforce\n    RS101: off\n  excludedNamespaces: [legacy]\n",
    )
    .unwrap();
    let v = with(safe(), &format!("{C0}/readinessProbe"), Value::Null);
    let v = with(v, &format!("{C0}/livenessProbe"), Value::Null);
    let f = run_with(&v, None, &p.for_namespace(Some("shop")), &Facts::default());
    assert_eq!(rules(&f), vec![RuleId::RS102]);
    assert_eq!(
        (f[0].action, f[0].severity),
        (Action::Enforce, Severity::Error)
    );
    assert_eq!(
        run_with(
            &v,
            None,
            &p.for_namespace(Some("legacy")),
            &Facts::default()
        ),
        vec![]
    );
}

fn workload(kind: &str, spec: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "x", "namespace": "ns"}, "spec": spec})
}

#[test]
fn statefulset_and_daemonset_rules() {
    let template = safe()["spec"]["template"].clone();
    let sts = workload(
        "StatefulSet",
        json!({"replicas": 3, "serviceName": "x", "selector": {"matchLabels": {"app": "web"}}, "template": template,
               "updateStrategy": {"rollingUpdate": {"maxUnavailable": "100%"}}}),
    );
    assert_eq!(rules(&run(&sts)), vec![RuleId::RS401]);
    let ds = workload(
        "DaemonSet",
        json!({"selector": {"matchLabels": {"app": "web"}}, "template": template,
               "updateStrategy": {"rollingUpdate": {"maxUnavailable": "100%"}}}),
    );
    assert_eq!(rules(&run(&ds)), vec![RuleId::RS401]);
    // RS404/RS405 have nothing to say about a DaemonSet.
    let ds_ok = workload(
        "DaemonSet",
        json!({"selector": {"matchLabels": {"app": "web"}}, "template": template}),
    );
    assert_eq!(run(&ds_ok), vec![]);
}
