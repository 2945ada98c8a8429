//! Mutations as data, on the AdmissionReviews a real kube-apiserver sent: applying the patch
//! and checking again leaves nothing for the mutate-mode rules; a second pass yields no
//! operations; explicit user values are never overwritten.

use std::path::PathBuf;

use rollout_safe_policy::admission::{
    AdmissionInput, NoLookups, ObjectJson, Operation, mutate_request, validate_request,
};
use rollout_safe_policy::check::{Facts, check};
use rollout_safe_policy::{
    Actor, EffectivePolicy, RolloutPolicy, RuleId, ServerInfo, Workload, mutate,
};
use serde_json::{Value, json};

fn reviews_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/admission-reviews");
    assert!(
        dir.is_dir(),
        "recorded reviews missing: {} (copied into tests/fixtures/admission-reviews)",
        dir.display()
    );
    dir
}

fn recorded() -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = std::fs::read_dir(reviews_dir())
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "json").then(|| {
                let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                (p.file_name().unwrap().to_string_lossy().into_owned(), v)
            })
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() >= 28,
        "expected the 28 recorded reviews, found {}",
        out.len()
    );
    out
}

fn input(req: &Value) -> AdmissionInput<'_> {
    AdmissionInput {
        operation: match req["operation"].as_str().unwrap() {
            "CREATE" => Operation::Create,
            "UPDATE" => Operation::Update,
            "DELETE" => Operation::Delete,
            _ => Operation::Connect,
        },
        group: req["kind"]["group"].as_str().unwrap(),
        kind: req["kind"]["kind"].as_str().unwrap(),
        sub_resource: req["subResource"].as_str(),
        namespace: req["namespace"].as_str(),
        object: req
            .get("object")
            .filter(|o| !o.is_null())
            .map(ObjectJson::Value),
        old_object: req
            .get("oldObject")
            .filter(|o| !o.is_null())
            .map(ObjectJson::Value),
        actor: Actor {
            username: req["userInfo"]["username"].as_str().unwrap_or("").into(),
            field_manager: req["options"]["fieldManager"].as_str().map(Into::into),
        },
    }
}

/// `spec.template.spec.containers[0].lifecycle.preStop` → `/spec/template/spec/containers/0/lifecycle/preStop`;
/// `metadata.annotations[kubernetes.io/change-cause]` → `/metadata/annotations/kubernetes.io~1change-cause`.
fn pointer_of(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while !rest.is_empty() {
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        if end > 0 {
            out.push('/');
            out.push_str(&rest[..end]);
        }
        rest = &rest[end..];
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
        } else if let Some(r) = rest.strip_prefix('[') {
            let close = r.find(']').expect("a closing bracket");
            out.push('/');
            out.push_str(&r[..close].replace('~', "~0").replace('/', "~1"));
            rest = r[close + 1..].trim_start_matches('.');
        }
    }
    out
}

fn op_path(op: &json_patch::PatchOperation) -> String {
    match op {
        json_patch::PatchOperation::Add(a) => a.path.to_string(),
        json_patch::PatchOperation::Replace(r) => r.path.to_string(),
        json_patch::PatchOperation::Remove(r) => r.path.to_string(),
        other => panic!("unexpected diff operation {other:?}"),
    }
}

#[test]
fn field_paths_become_pointers() {
    assert_eq!(
        pointer_of("spec.template.spec.containers[0].lifecycle.preStop"),
        "/spec/template/spec/containers/0/lifecycle/preStop"
    );
    assert_eq!(
        pointer_of("metadata.annotations[kubernetes.io/change-cause]"),
        "/metadata/annotations/kubernetes.io~1change-cause"
    );
}

const MUTATE_RULES: [RuleId; 4] = [RuleId::RS201, RuleId::RS202, RuleId::RS301, RuleId::RS403];

#[test]
fn every_recorded_review_mutates_to_a_fixed_point() {
    let policy = RolloutPolicy::default();
    let mut patched = 0;
    for (name, review) in recorded() {
        let req = &review["request"];
        let inp = input(req);
        let Some(out) = mutate_request(&policy, &inp, ServerInfo::default()).unwrap() else {
            assert!(
                inp.kind == "Scale" || inp.kind == "Service",
                "{name}: a workload write must be handled"
            );
            continue;
        };
        // The patch applies to the submitted object, and changes nothing but the fields the
        // mutations name.
        let obj = out
            .apply_to(&req["object"])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let touched: Vec<String> = out.mutations.iter().map(|m| pointer_of(&m.field)).collect();
        for op in &json_patch::diff(&req["object"], &obj).0 {
            let path = op_path(op);
            assert!(
                touched
                    .iter()
                    .any(|t| t.starts_with(&path) || path.starts_with(t.as_str())),
                "{name}: {path} changed, but the mutations name only {touched:?}"
            );
        }
        if !out.patch.0.is_empty() {
            patched += 1;
        }
        // Checking the result again: nothing left for the rules the mutator owns.
        let w = Workload::from_value(&obj).unwrap().unwrap();
        let old = req
            .get("oldObject")
            .filter(|o| !o.is_null())
            .map(|o| Workload::from_value(o).unwrap().unwrap());
        let left: Vec<_> = check(
            &w,
            old.as_ref(),
            &EffectivePolicy::default(),
            &Facts::default(),
        )
        .into_iter()
        .filter(|f| MUTATE_RULES.contains(&f.rule))
        .collect();
        assert!(left.is_empty(), "{name}: {left:#?}");
        // A second pass over the fixed object yields no operations (reinvocationPolicy: IfNeeded).
        let again = AdmissionInput {
            object: Some(ObjectJson::Value(&obj)),
            ..inp.clone()
        };
        let second = mutate_request(&policy, &again, ServerInfo::default())
            .unwrap()
            .unwrap();
        assert!(
            second.patch.0.is_empty(),
            "{name}: second pass patched {:?}",
            second.patch
        );
        // Patches never remove anything the user wrote.
        for op in &out.patch.0 {
            assert!(
                matches!(
                    op,
                    json_patch::PatchOperation::Add(_) | json_patch::PatchOperation::Replace(_)
                ),
                "{name}: {op:?}"
            );
        }
    }
    assert!(
        patched >= 5,
        "expected most workload reviews to need fixes, got {patched}"
    );
}

fn review(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(reviews_dir().join(name)).unwrap()).unwrap()
}

#[test]
fn explicit_user_values_are_kept() {
    // 01: preStop exec sleep 10 and a 45 s grace period, chosen by the user.
    let r = review("01-create-deployment-apply.mutating.json");
    let out = mutate_request(
        &RolloutPolicy::default(),
        &input(&r["request"]),
        ServerInfo::default(),
    )
    .unwrap()
    .unwrap();
    let paths: Vec<String> = out
        .patch
        .0
        .iter()
        .map(|op| match op {
            json_patch::PatchOperation::Add(a) => a.path.to_string(),
            json_patch::PatchOperation::Replace(r) => r.path.to_string(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(
        paths
            .iter()
            .all(|p| !p.contains("lifecycle") && !p.contains("terminationGracePeriodSeconds")),
        "{paths:?}"
    );
    let fixed = out.apply_to(&r["request"]["object"]).unwrap();
    assert_eq!(
        fixed["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
        json!(45)
    );
}

#[test]
fn set_image_gets_a_fresh_cause_naming_who_what_how() {
    let r = review("03-update-deployment-set-image.mutating.json");
    let inp = input(&r["request"]);
    let out = mutate_request(&RolloutPolicy::default(), &inp, ServerInfo::default())
        .unwrap()
        .unwrap();
    let fixed = out.apply_to(&r["request"]["object"]).unwrap();
    let cause = fixed["metadata"]["annotations"]["kubernetes.io/change-cause"]
        .as_str()
        .unwrap();
    assert!(cause.starts_with("admin: image web="), "{cause}");
    assert!(
        cause.contains("(was 1.4.2)") && cause.ends_with("via kubectl-set"),
        "{cause}"
    );
}

#[test]
fn bare_deployment_gets_hook_grace_history() {
    let r = review("02-create-deployment-kubectl-create.mutating.json");
    let out = mutate_request(
        &RolloutPolicy::default(),
        &input(&r["request"]),
        ServerInfo::default(),
    )
    .unwrap()
    .unwrap();
    let rules: Vec<RuleId> = out.mutations.iter().map(|m| m.rule).collect();
    assert!(rules.contains(&RuleId::RS201), "{rules:?}");
    assert!(
        rules.contains(&RuleId::RS301),
        "creation gets a first cause: {rules:?}"
    );
    let fixed = out.apply_to(&r["request"]["object"]).unwrap();
    let c = &fixed["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["lifecycle"]["preStop"], json!({"sleep": {"seconds": 5}}));
    // Validation still denies what the mutator cannot fix (no readiness probe).
    let v = validate_request(
        &RolloutPolicy::default(),
        &AdmissionInput {
            object: Some(ObjectJson::Value(&fixed)),
            ..input(&r["request"])
        },
        &NoLookups,
    )
    .unwrap();
    assert!(!v.allowed());
    assert!(v.deny_message().contains("RS101"), "{}", v.deny_message());
}

#[test]
fn old_servers_get_exec_only_when_allowed() {
    let r = review("02-create-deployment-kubectl-create.mutating.json");
    let obj = &r["request"]["object"];
    let old_server = ServerInfo::from_version("v1.29.0");
    let mut p = EffectivePolicy::default();
    let out = mutate(obj, None, &p, old_server, &Actor::default())
        .unwrap()
        .unwrap();
    assert!(out.mutations.iter().all(|m| m.rule != RuleId::RS201));
    assert!(
        out.warnings
            .iter()
            .any(|w| w.contains("RS201") && w.contains("allowExec")),
        "{:?}",
        out.warnings
    );
    p.params.RS201.allow_exec = true;
    let out = mutate(obj, None, &p, old_server, &Actor::default())
        .unwrap()
        .unwrap();
    assert_eq!(
        out.apply_to(obj).unwrap()["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["preStop"],
        json!({"exec": {"command": ["sleep", "5"]}})
    );
}

#[test]
fn scale_and_pause_are_not_template_changes() {
    for name in [
        "04-update-deployment-scale-subresource.mutating.json",
        "06-update-deployment-rollout-pause.mutating.json",
        "07-update-deployment-rollout-resume.mutating.json",
        "05-update-deployment-annotate-change-cause.mutating.json",
    ] {
        let r = review(name);
        let out = mutate_request(
            &RolloutPolicy::default(),
            &input(&r["request"]),
            ServerInfo::default(),
        )
        .unwrap();
        if let Some(out) = out {
            assert!(
                out.mutations.iter().all(|m| m.rule != RuleId::RS301),
                "{name}: {:?}",
                out.mutations
            );
        }
    }
}

#[test]
fn mutate_mode_off_means_no_patch() {
    let p = RolloutPolicy::from_yaml(
        "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\nspec:\n  rules:\n    RS201: warn\n    RS202: warn\n    RS301: warn\n    RS403: warn\n",
    )
    .unwrap();
    let r = review("02-create-deployment-kubectl-create.mutating.json");
    let out = mutate_request(&p, &input(&r["request"]), ServerInfo::default())
        .unwrap()
        .unwrap();
    assert!(out.patch.0.is_empty(), "{:?}", out.patch);
}

#[test]
fn updates_without_a_rollout_do_not_block_legacy_workloads() {
    // 02's bare Deployment violates RS101 (enforce). Scaling it by an edit, or pausing it, is
    // not a rollout: warned, not denied. Changing its image is: denied.
    let r = review("02-create-deployment-kubectl-create.validating.json");
    let before = r["request"]["object"].clone();
    let mut scaled = before.clone();
    scaled["spec"]["replicas"] = json!(5);
    let policy = RolloutPolicy::default();
    let update = |after: &Value| {
        validate_request(
            &policy,
            &AdmissionInput {
                operation: Operation::Update,
                object: Some(ObjectJson::Value(after)),
                old_object: Some(ObjectJson::Value(&before)),
                ..input(&r["request"])
            },
            &NoLookups,
        )
        .unwrap()
    };
    let v = update(&scaled);
    assert!(v.allowed(), "{}", v.deny_message());
    assert!(
        v.warnings
            .iter()
            .any(|f| f.rule == RuleId::RS101 && f.message.contains("not enforced"))
    );
    // A violation the update introduces is enforced even without a template change.
    let mut all_down = scaled.clone();
    all_down["spec"]["strategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "100%"}});
    let v = update(&all_down);
    assert_eq!(
        v.denied.iter().map(|f| f.rule).collect::<Vec<_>>(),
        vec![RuleId::RS401]
    );
    // A template change is a rollout: everything is enforced.
    let mut new_image = before.clone();
    new_image["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:1.27");
    let v = update(&new_image);
    assert!(v.denied.iter().any(|f| f.rule == RuleId::RS101), "{v:?}");
}
