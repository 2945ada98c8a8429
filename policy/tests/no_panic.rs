//! Property tests: whatever a workload holds, the engine answers (findings, a patch, or a
//! typed error) and never panics. Inputs are recorded objects with random values planted at
//! the paths the rules read, and random JSON.

use proptest::prelude::*;
use rollout_safe_policy::admission::{
    AdmissionInput, NoLookups, ObjectJson, Operation, mutate_request, validate_request,
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
    "/apiVersion",
    "/metadata/managedFields",
    "/metadata/name",
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
        "/../tests/fixtures/admission-reviews/01-create-deployment-apply.mutating.json"
    ))
    .expect("recorded review in tests/fixtures");
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
    // Each object as JSON text, and as the value that text reads as (a float need not read
    // back bit for bit, so the values are not the generated ones).
    let text = |v: &Value| serde_json::value::to_raw_value(v).expect("JSON");
    let value =
        |t: &serde_json::value::RawValue| -> Value { serde_json::from_str(t.get()).expect("JSON") };
    let old_text = old.map(text);
    let old_value = old_text.as_deref().map(value);
    let old = old_value.as_ref();
    for kind in ["Deployment", "StatefulSet", "DaemonSet"] {
        let mut o = obj.clone();
        if o.is_object() {
            o["kind"] = json!(kind);
        }
        let o_text = text(&o);
        let o = value(&o_text);
        // The objects as values, and as the JSON text the webhook hands over: the same answers.
        let mut answers = Vec::new();
        for (object, old_object) in [
            (ObjectJson::Value(&o), old.map(ObjectJson::Value)),
            (
                ObjectJson::Text(&o_text),
                old_text.as_deref().map(ObjectJson::Text),
            ),
        ] {
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
                object: Some(object),
                old_object,
                actor: Actor::default(),
            };
            let mut mutations = Vec::new();
            for server in [ServerInfo::default(), ServerInfo::from_version("1.24")] {
                let m = mutate_request(&policy, &input, server);
                if let Ok(Some(m)) = &m {
                    let mut fixed = o.clone();
                    json_patch::patch(&mut fixed, &m.patch).expect("our own patch applies");
                }
                mutations.push(m.map(|m| m.map(|m| (m.patch, m.mutations, m.warnings))));
            }
            answers.push((mutations, validate_request(&policy, &input, &NoLookups)));
        }
        assert_eq!(answers[0], answers[1], "value and text forms answer alike");
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

mod judge_on_hostile_data {
    use super::*;
    use rollout_safe_policy::judge::{JudgeConfig, RolloutState, WatchEvent, judge};

    fn recorded_objects() -> Vec<Value> {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/rollouts/crashloop-then-undo.jsonl"
        ))
        .expect("recorded rollout in tests/fixtures");
        text.lines()
            .take(60)
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["object"].clone())
            .collect()
    }

    const STATUS_PATHS: &[&str] = &[
        "/status/replicas",
        "/status/updatedReplicas",
        "/status/availableReplicas",
        "/status/readyReplicas",
        "/status/observedGeneration",
        "/status/conditions",
        "/status/containerStatuses",
        "/status/containerStatuses/0/restartCount",
        "/status/containerStatuses/0/state",
        "/spec/replicas",
        "/spec/strategy/rollingUpdate/partition",
        "/metadata/ownerReferences",
        "/metadata/annotations",
        "/metadata/generation",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Recorded watch objects with random values planted in the fields the judge reads
        /// (negative counts, i32 extremes, wrong shapes): decoded or refused, never a panic.
        #[test]
        fn judge_never_panics(
            picks in prop::collection::vec((0..60usize, 0..STATUS_PATHS.len(), prop_oneof![
                arb_json(),
                Just(json!(i32::MIN)),
                Just(json!(i32::MAX)),
                Just(json!(-1)),
            ]), 1..8),
            now_offset in -100_000i64..100_000,
        ) {
            let mut objects = recorded_objects();
            for (i, p, v) in picks {
                let i = i % objects.len();
                objects[i] = plant(objects[i].clone(), STATUS_PATHS[p], v);
            }
            let mut state = RolloutState::new();
            let now = k8s_openapi::jiff::Timestamp::from_second(1_790_000_000 + now_offset).unwrap();
            for o in objects {
                if let Ok(ev) = WatchEvent::from_json("MODIFIED", o) {
                    state.apply(ev);
                    let _ = judge(&state, now, &JudgeConfig::default());
                }
            }
        }
    }
}
