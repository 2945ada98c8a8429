//! Property tests: whatever a workload holds, the engine answers (findings, a patch, or a
//! typed error) and never panics. Inputs are recorded objects with random values planted at
//! the paths the rules read, and random JSON.

use proptest::prelude::*;
use rollout_safe_policy::admission::{
    AdmissionInput, NoLookups, Operation, mutate_request, validate_request,
};
use rollout_safe_policy::plan::plan_for;
use rollout_safe_policy::{Actor, RolloutPolicy, ServerInfo, Workload, audit, parse_documents};
use serde_json::{Value, json};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e9f64..1e9).prop_map(|f| json!(f)),
        "[a-z0-9%:/@.-]{0,12}".prop_map(Value::String),
        Just(json!("100%")),
        Just(json!("-5%")),
        Just(json!("99999999999%")),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const PATHS: &[&str] = &[
    "/spec/replicas",
    "/spec/revisionHistoryLimit",
    "/spec/progressDeadlineSeconds",
    "/spec/minReadySeconds",
    "/spec/strategy",
    "/spec/strategy/type",
    "/spec/strategy/rollingUpdate/maxSurge",
    "/spec/strategy/rollingUpdate/maxUnavailable",
    "/spec/template/spec/terminationGracePeriodSeconds",
    "/spec/template/spec/containers/0/image",
    "/spec/template/spec/containers/0/ports",
    "/spec/template/spec/containers/0/readinessProbe",
    "/spec/template/spec/containers/0/livenessProbe/periodSeconds",
    "/spec/template/spec/containers/0/livenessProbe/failureThreshold",
    "/spec/template/spec/containers/0/lifecycle/preStop",
    "/spec/template/spec/containers/0/lifecycle/preStop/exec/command",
    "/spec/template/spec/initContainers",
    "/metadata/annotations",
    "/metadata/annotations/rollout-safe.dev~1skip",
    "/spec/template",
    "/spec",
];

fn base() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/admission-reviews/01-create-deployment-apply.mutating.json"
    ))
    .expect("recorded review in ../shared");
    let v: Value = serde_json::from_str(&text).unwrap();
    v["request"]["object"].clone()
}

fn plant(mut v: Value, path: &str, value: Value) -> Value {
    let segs: Vec<String> = path
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/"))
        .collect();
    let mut cur = &mut v;
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        cur = match cur {
            Value::Object(m) => {
                if last {
                    m.insert(seg.clone(), value);
                    return v;
                }
                m.entry(seg.clone()).or_insert_with(|| json!({}))
            }
            Value::Array(a) => match seg.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(x) if !last => x,
                Some(x) => {
                    *x = value;
                    return v;
                }
                None => return v,
            },
            _ => return v,
        };
    }
    v
}

fn exercise(obj: &Value, old: Option<&Value>) {
    let policy = RolloutPolicy::default();
    for kind in ["Deployment", "StatefulSet", "DaemonSet"] {
        let mut o = obj.clone();
        if o.is_object() {
            o["kind"] = json!(kind);
        }
        let input = AdmissionInput {
            operation: if old.is_some() {
                Operation::Update
            } else {
                Operation::Create
            },
            group: "apps",
            kind,
            sub_resource: None,
            namespace: Some("ns"),
            object: Some(&o),
            old_object: old,
            actor: Actor::default(),
        };
        for server in [ServerInfo::default(), ServerInfo::from_version("1.24")] {
            if let Ok(Some(m)) = mutate_request(&policy, &input, server) {
                let mut fixed = o.clone();
                json_patch::patch(&mut fixed, &m.patch).expect("our own patch applies");
            }
        }
        let _ = validate_request(&policy, &input, &NoLookups);
        if let Ok(Some(w)) = Workload::from_value(&o) {
            let _ = plan_for(&w);
        }
    }
    let docs: Vec<_> = [obj.clone()]
        .into_iter()
        .map(|value| rollout_safe_policy::Document {
            source: "p".into(),
            line: 1,
            value,
        })
        .collect();
    let _ = audit(&policy, &docs, vec![]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn planted_values_never_panic(picks in prop::collection::vec((0..PATHS.len(), arb_json()), 1..5), as_update in any::<bool>()) {
        let mut v = base();
        for (i, val) in picks {
            v = plant(v, PATHS[i], val);
        }
        let old = base();
        exercise(&v, as_update.then_some(&old));
    }

    #[test]
    fn random_json_never_panics(v in arb_json()) {
        exercise(&v, None);
    }

    #[test]
    fn random_text_never_panics(s in "(apiVersion: apps/v1\nkind: Deployment\n|---\n|[ a-z:{}\\[\\]#\n-]{0,40}){0,8}") {
        let _ = parse_documents("p.yaml", &s);
    }
}
