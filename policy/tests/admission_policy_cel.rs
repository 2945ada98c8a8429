//! The differential test of the admission-policy export: every exported expression is evaluated
//! with a CEL implementation (`cel_harness`: the `cel` crate plus the Kubernetes library
//! functions) and its verdict compared with the engine's — the webhook's `validate_request` and
//! `mutate_request` — per rule per object, over the repository's own manifests, the recorded
//! admission reviews, the corpus (when present) and property-generated workloads, under several
//! policy files (defaults; namespace overrides of actions and parameters; exclusions).
//!
//! Agreement means, for every exported rule: the API server denies iff the webhook does, with
//! the webhook's first message for that rule (`RSxxx <message> Fix: <fix>`), and warns iff the
//! webhook does, with its first warning. With `--mutating`, the object the mutating policy
//! leaves equals the one the webhook's patch makes, and a second pass changes nothing.
//!
//! Excluded, exactly: the cases a rule's `CelForm::weaker` names (checked against the engine's
//! own reading: RS202's exec preStop parsing, RS401's percentages of 10 or more digits, RS301's
//! change-cause text beyond image changes), and messages quoting a string with control
//! characters (Rust escapes them; the API server never sees them in names). Objects the API
//! server would refuse outright (not a valid workload, duplicate container names) are not
//! admission requests and are skipped.

mod cel_harness;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use cel_harness::{Cluster, Decision, Request};
use proptest::prelude::*;
use rollout_safe_policy::admission::{AdmissionInput, NoLookups, ObjectJson, Operation};
use rollout_safe_policy::admission_policy::{ExportOptions, KubeVersion, export};
use rollout_safe_policy::check::prestop_seconds;
use rollout_safe_policy::mutate::ServerInfo;
use rollout_safe_policy::{Actor, RolloutPolicy, RuleId, Workload, parse_documents};
use rollout_safe_testkit::{corpus_or_skip, fixture, manifest_files, read_fixture};
use serde_json::{Value as Json, json};

// ---- the policies under test ----------------------------------------------------------------

const HEAD: &str = "apiVersion: rollout-safe.dev/v1alpha1\nkind: RolloutPolicy\n";

/// Overrides that change actions and parameters by glob and by name, excluded namespaces, and
/// rules turned to enforce so that grandfathering and deny messages are exercised everywhere.
const STRICT: &str = r#"metadata: {name: strict}
spec:
  rules:
    RS001: enforce
    RS102: enforce
    RS104: {action: enforce, minStartupSeconds: 45}
    RS201: {action: mutate, sleepSeconds: 7}
    RS202: {action: mutate, marginSeconds: 5}
    RS402: enforce
    RS403: {action: mutate, minimum: 3, default: 6}
    RS404: enforce
    RS501: enforce
  namespaceOverrides:
    - namespaces: ["dev-*", "sandbox"]
      rules:
        RS101: warn
        RS104: {minStartupSeconds: 10}
        RS201: {action: warn, sleepSeconds: 3}
        RS501: warn
    - namespaces: ["team-?", "dev-b*"]
      rules:
        RS105: off
        RS401: warn
        RS201: {handler: exec}
        RS403: {action: enforce, minimum: 4, default: 4}
    - namespaces: ["legacy"]
      rules:
        RS103: off
        RS202: {action: warn, marginSeconds: 20}
        RS301: enforce
  excludedNamespaces: ["kube-*", "ignored"]
"#;

/// Everything at its strictest where it can be.
const ALL_ENFORCE: &str = r#"metadata: {name: all-enforce}
spec:
  rules:
    RS001: enforce
    RS102: enforce
    RS103: enforce
    RS104: enforce
    RS201: enforce
    RS202: enforce
    RS301: enforce
    RS402: enforce
    RS403: enforce
    RS404: enforce
    RS501: enforce
"#;

/// The namespaces generated cases are admitted in: each override and exclusion of the policies
/// above, alone and (`dev-b1`: `dev-*` and `dev-b*`) together.
const NAMESPACES: &[&str] = &[
    "shop",
    "dev-a",
    "dev-b1",
    "sandbox",
    "team-x",
    "legacy",
    "kube-system",
    "ignored",
];

/// The namespaces each of the repository's manifests is admitted in (fewer: there are many).
const MANIFEST_NAMESPACES: &[&str] = &["shop", "dev-b1", "team-x", "legacy", "kube-system"];

/// The namespaces each corpus manifest is admitted in: the strict policy's base and two
/// overlapping overrides (the corpus is for breadth of real objects, the other sets for the
/// policy's variants).
const CORPUS_NAMESPACES: &[&str] = &["shop", "dev-b1"];

struct Setup {
    name: &'static str,
    policy: RolloutPolicy,
    /// Validating policies only (Kubernetes 1.30).
    validating: Cluster,
    /// With the MutatingAdmissionPolicy (Kubernetes 1.34: v1beta1; 1.36's v1 is the same but
    /// for its apiVersion, see `mutating_export_differs_by_api_version_only`).
    mutating: Vec<(KubeVersion, Cluster)>,
}

fn setups() -> &'static [Setup] {
    static SETUPS: OnceLock<Vec<Setup>> = OnceLock::new();
    SETUPS.get_or_init(|| {
        [
            ("defaults", String::new()),
            ("strict", STRICT.to_string()),
            ("all-enforce", ALL_ENFORCE.to_string()),
        ]
        .into_iter()
        .map(|(name, body)| {
            let policy = RolloutPolicy::from_yaml(&format!("{HEAD}{body}"))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let cluster = |version: KubeVersion, mutating: bool| {
                let e = export(
                    &policy,
                    &ExportOptions {
                        kubernetes_version: version,
                        mutating,
                    },
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
                Cluster::new(&e.objects).unwrap_or_else(|e| panic!("{name}: {e}"))
            };
            Setup {
                name,
                validating: cluster(KubeVersion::OLDEST, false),
                mutating: vec![(
                    KubeVersion::MUTATING_BETA,
                    cluster(KubeVersion::MUTATING_BETA, true),
                )],
                policy,
            }
        })
        .collect()
    })
}

// ---- cases ----------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Case {
    label: String,
    request: Request,
    field_manager: Option<String>,
}

/// The workload as the API server hands it to admission: read into its type and written back
/// (unknown fields dropped, as the API server's decoding drops them). `None` when it is not
/// a valid apps/v1 workload or names two containers alike (the API server refuses those).
fn admissible(v: &Json) -> Option<Json> {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
    if v["apiVersion"] != "apps/v1" {
        return None;
    }
    let typed = match v["kind"].as_str()? {
        "Deployment" => serde_json::to_value(serde_json::from_value::<Deployment>(v.clone()).ok()?),
        "StatefulSet" => {
            serde_json::to_value(serde_json::from_value::<StatefulSet>(v.clone()).ok()?)
        }
        "DaemonSet" => serde_json::to_value(serde_json::from_value::<DaemonSet>(v.clone()).ok()?),
        _ => return None,
    }
    .ok()?;
    let pod = &typed["spec"]["template"]["spec"];
    let mut names = BTreeSet::new();
    for list in ["containers", "initContainers"] {
        for c in pod[list].as_array().into_iter().flatten() {
            if !names.insert(c["name"].as_str()?.to_string()) {
                return None;
            }
        }
    }
    Workload::from_value(&typed).ok().flatten()?;
    Some(typed)
}

fn in_namespace(mut object: Json, ns: &str) -> Json {
    object["metadata"]["namespace"] = json!(ns);
    object
}

/// A manifest admitted as a creation, as an update that changes no pod template (replicas
/// changed) and as one that changes it (an image) without a fresh change-cause, in every
/// namespace.
fn manifest_cases(label: &str, object: &Json, namespaces: &[&str]) -> Vec<Case> {
    let Some(object) = admissible(object) else {
        return Vec::new();
    };
    let mut scaled = object.clone();
    scaled["spec"]["replicas"] = json!(object["spec"]["replicas"].as_i64().unwrap_or(1) + 1);
    let mut reimaged = object.clone();
    if let Some(c) = reimaged
        .pointer_mut("/spec/template/spec/containers/0")
        .and_then(Json::as_object_mut)
    {
        let next = format!(
            "{}-next",
            c.get("image").and_then(Json::as_str).unwrap_or("img")
        );
        c.insert("image".into(), json!(next));
    }
    let (Some(scaled), Some(reimaged)) = (admissible(&scaled), admissible(&reimaged)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for ns in namespaces {
        let o = in_namespace(object.clone(), ns);
        let mk = |op: &str, what: &str, obj: Json, old: Option<Json>| Case {
            label: format!("{label} {op} {what} in {ns}"),
            request: Request {
                operation: op.into(),
                namespace: ns.to_string(),
                sub_resource: None,
                object: obj,
                old_object: old,
                username: "alice".into(),
                options: Some(json!({"kind": "UpdateOptions", "fieldManager": "kubectl-edit"})),
            },
            field_manager: Some("kubectl-edit".into()),
        };
        out.push(mk("CREATE", "", o.clone(), None));
        out.push(mk(
            "UPDATE",
            "(replicas)",
            in_namespace(scaled.clone(), ns),
            Some(o.clone()),
        ));
        out.push(mk(
            "UPDATE",
            "(image)",
            in_namespace(reimaged.clone(), ns),
            Some(o.clone()),
        ));
    }
    out
}

fn manifests_under(dir: &std::path::Path, namespaces: &[&str]) -> Vec<Case> {
    let mut out = Vec::new();
    for path in manifest_files(dir) {
        let name = path.strip_prefix(dir).unwrap().display().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        for (i, d) in parse_documents(&name, &text)
            .into_iter()
            .flatten()
            .enumerate()
        {
            out.extend(manifest_cases(&format!("{name}#{i}"), &d.value, namespaces));
        }
    }
    out
}

/// The recorded AdmissionReviews, as the API server sent them.
fn review_cases() -> Vec<Case> {
    let dir = fixture("admission-reviews");
    let mut out = Vec::new();
    for path in manifest_files(&dir) {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let review: Json =
            serde_json::from_str(&read_fixture(&format!("admission-reviews/{name}")))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        let r = &review["request"];
        let Some(object) = admissible(&r["object"]) else {
            continue;
        };
        let old = r
            .get("oldObject")
            .filter(|o| !o.is_null())
            .and_then(admissible);
        out.push(Case {
            label: name,
            request: Request {
                operation: r["operation"].as_str().unwrap().into(),
                namespace: r["namespace"].as_str().unwrap_or("default").into(),
                sub_resource: r["subResource"].as_str().map(str::to_string),
                object,
                old_object: old,
                username: r["userInfo"]["username"].as_str().unwrap_or("").into(),
                options: r.get("options").cloned(),
            },
            field_manager: r["options"]["fieldManager"].as_str().map(str::to_string),
        });
    }
    out
}

// ---- the engine's answer --------------------------------------------------------------------

fn input<'a>(case: &'a Case, object: &'a Json) -> AdmissionInput<'a> {
    AdmissionInput {
        operation: match case.request.operation.as_str() {
            "CREATE" => Operation::Create,
            "UPDATE" => Operation::Update,
            "DELETE" => Operation::Delete,
            _ => Operation::Connect,
        },
        group: "apps",
        kind: object["kind"].as_str().unwrap_or_default(),
        sub_resource: case.request.sub_resource.as_deref(),
        namespace: Some(&case.request.namespace),
        object: Some(ObjectJson::Value(object)),
        old_object: case.request.old_object.as_ref().map(ObjectJson::Value),
        actor: Actor {
            username: case.request.username.clone(),
            field_manager: case.field_manager.clone(),
        },
    }
}

/// Per rule: (first denial, first warning), as `Finding::one_line`.
type PerRule = BTreeMap<String, (Option<String>, Option<String>)>;

fn engine_per_rule(policy: &RolloutPolicy, case: &Case, object: &Json) -> PerRule {
    let verdict =
        rollout_safe_policy::admission::validate_request(policy, &input(case, object), &NoLookups)
            .unwrap_or_else(|e| panic!("{}: the engine refused the object: {e}", case.label));
    let mut out = PerRule::new();
    for f in &verdict.denied {
        out.entry(f.rule.to_string())
            .or_default()
            .0
            .get_or_insert(f.one_line());
    }
    for f in &verdict.warnings {
        out.entry(f.rule.to_string())
            .or_default()
            .1
            .get_or_insert(f.one_line());
    }
    out
}

fn cel_per_rule(label: &str, decisions: &[Decision]) -> PerRule {
    let mut out = PerRule::new();
    for d in decisions {
        let slot = out.entry(d.rule.clone()).or_default();
        let deny = d.actions.iter().any(|a| a == "Deny");
        let warn = d.actions.iter().any(|a| a == "Warn");
        assert!(
            deny != warn,
            "{label}: {} has actions {:?}",
            d.policy,
            d.actions
        );
        let target = if deny { &mut slot.0 } else { &mut slot.1 };
        assert!(
            target.is_none(),
            "{label}: two {} decisions for {}",
            if deny { "Deny" } else { "Warn" },
            d.rule
        );
        *target = Some(d.message.clone());
    }
    out
}

// ---- exclusions: where a CEL form is weaker (CelForm::weaker), checked independently ----------

/// RS202's CEL reads a preStop's duration from the native sleep action and from an exec
/// command `[sleep, N]` only.
fn cel_prestop_seconds(c: &k8s_openapi::api::core::v1::Container) -> Option<i64> {
    let pre = c.lifecycle.as_ref()?.pre_stop.as_ref()?;
    if let Some(s) = &pre.sleep {
        return Some(s.seconds.clamp(0, 3600));
    }
    let cmd = pre.exec.as_ref()?.command.as_ref()?;
    let program_ok = cmd.first().is_some_and(|p| {
        !p.chars().any(char::is_whitespace) && (p == "sleep" || p.ends_with("/sleep"))
    });
    let arg = cmd.get(1)?;
    let digits_ok = (1..=4).contains(&arg.len()) && arg.bytes().all(|b| b.is_ascii_digit());
    let n: i64 = arg.parse().ok()?;
    (program_ok && digits_ok && n <= 3600).then_some(n)
}

fn rs202_weaker(object: &Json) -> bool {
    let Ok(Some(w)) = Workload::from_value(object) else {
        return false;
    };
    w.app_containers()
        .iter()
        .any(|ac| prestop_seconds(ac.container) != cel_prestop_seconds(ac.container))
}

/// A percentage RS401's CEL does not compute: 10 or more significant digits.
fn big_percentage(v: &Json) -> bool {
    let Some(s) = v.as_str() else { return false };
    let Some(p) = s.strip_suffix('%') else {
        return false;
    };
    let p = p.trim();
    let digits = p.strip_prefix(['+', '-']).unwrap_or(p);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.trim_start_matches('0').len() >= 10
}

fn rs401_weaker(object: &Json) -> bool {
    [
        "/spec/strategy/rollingUpdate/maxSurge",
        "/spec/strategy/rollingUpdate/maxUnavailable",
        "/spec/updateStrategy/rollingUpdate/maxUnavailable",
    ]
    .iter()
    .any(|p| object.pointer(p).is_some_and(big_percentage))
}

/// A string Rust's `{:?}` escapes beyond `\` and `"` (control characters and the like).
fn debug_escapes(v: &Json) -> bool {
    match v {
        Json::String(s) => {
            format!("{s:?}") != format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
        }
        Json::Array(a) => a.iter().any(debug_escapes),
        Json::Object(o) => o.values().any(debug_escapes),
        _ => false,
    }
}

/// Whether an update changes the pod template in more than its images (RS301's CEL
/// change-cause then differs from the webhook's).
fn template_changes_beyond_images(old: &Json, new: &Json) -> bool {
    let strip = |o: &Json| {
        let mut t = o.pointer("/spec/template").cloned().unwrap_or(Json::Null);
        for list in ["containers", "initContainers"] {
            if let Some(cs) = t
                .pointer_mut(&format!("/spec/{list}"))
                .and_then(Json::as_array_mut)
            {
                for c in cs {
                    if let Some(c) = c.as_object_mut() {
                        c.remove("image");
                    }
                }
            }
        }
        t
    };
    strip(old) != strip(new)
}

#[derive(Default)]
struct Exclusions {
    rules: BTreeSet<String>,
    messages: bool,
    /// JSON pointers the mutation comparison leaves out: (pointer, whether its presence is
    /// still compared).
    masks: Vec<(&'static str, bool)>,
}

fn exclusions(case: &Case, object: &Json) -> Exclusions {
    let mut x = Exclusions::default();
    let old = case.request.old_object.as_ref();
    if rs202_weaker(object) {
        x.rules.insert("RS202".into());
        x.masks
            .push(("/spec/template/spec/terminationGracePeriodSeconds", false));
    }
    if rs401_weaker(object) || old.is_some_and(rs401_weaker) {
        x.rules.insert("RS401".into());
    }
    x.messages = debug_escapes(object) || old.is_some_and(debug_escapes);
    if let Some(old) = old
        && template_changes_beyond_images(old, object)
    {
        x.masks
            .push(("/metadata/annotations/kubernetes.io~1change-cause", true));
    }
    x
}

// ---- the comparison -------------------------------------------------------------------------

#[derive(Default)]
struct Tally {
    cases: usize,
    /// rule → (agreed denials, agreed warnings, agreed passes)
    per_rule: BTreeMap<String, (usize, usize, usize)>,
    excluded: BTreeMap<String, usize>,
    mutated: usize,
}

fn compare_verdicts(
    setup: &Setup,
    cluster: &Cluster,
    case: &Case,
    object: &Json,
    cel_object: &Json,
    tally: &mut Tally,
) -> Result<(), String> {
    let x = exclusions(case, object);
    let engine = engine_per_rule(&setup.policy, case, object);
    let mut request = case.request.clone();
    request.object = cel_object.clone();
    let decisions = cluster
        .validate(&request)
        .map_err(|e| format!("{}: {e}", case.label))?;
    let cel = cel_per_rule(&case.label, &decisions);
    let exported: BTreeSet<&str> = RuleId::ALL
        .iter()
        .map(|r| r.as_str())
        .filter(|r| {
            rollout_safe_policy::admission_policy::RulePieces::of(r.parse().unwrap()).is_some()
        })
        .collect();
    for rule in exported {
        if x.rules.contains(rule) {
            *tally.excluded.entry(rule.into()).or_default() += 1;
            continue;
        }
        let none = (None, None);
        let (e, c) = (
            engine.get(rule).unwrap_or(&none),
            cel.get(rule).unwrap_or(&none),
        );
        let same = if x.messages {
            (e.0.is_some(), e.1.is_some()) == (c.0.is_some(), c.1.is_some())
        } else {
            e == c
        };
        if !same {
            return Err(format!(
                "{} ({}): {rule} disagrees\n  webhook deny: {:?}\n  policy  deny: {:?}\n  webhook warn: {:?}\n  policy  warn: {:?}\n  object: {}\n  old: {}",
                case.label,
                setup.name,
                e.0,
                c.0,
                e.1,
                c.1,
                object,
                case.request
                    .old_object
                    .as_ref()
                    .map(Json::to_string)
                    .unwrap_or_default()
            ));
        }
        let t = tally.per_rule.entry(rule.to_string()).or_default();
        match e {
            (Some(_), _) => t.0 += 1,
            (None, Some(_)) => t.1 += 1,
            (None, None) => t.2 += 1,
        }
    }
    Ok(())
}

fn masked(mut v: Json, masks: &[(&str, bool)]) -> Json {
    for (pointer, presence) in masks {
        if *presence {
            if let Some(slot) = v.pointer_mut(pointer) {
                *slot = json!("<not compared: CelForm::weaker>");
            }
        } else if let Some((parent, key)) = pointer.rsplit_once('/')
            && let Some(p) = v.pointer_mut(parent).and_then(Json::as_object_mut)
        {
            p.remove(key);
        }
    }
    v
}

/// One case under one setup: validation alone, then mutation and validation of the result.
fn check_case(setup: &Setup, case: &Case, tally: &mut Tally) -> Result<(), String> {
    let object = &case.request.object;
    compare_verdicts(setup, &setup.validating, case, object, object, tally)?;
    for (version, cluster) in &setup.mutating {
        let label = format!("{} (mutating, Kubernetes {version})", case.label);
        let server = ServerInfo::from_version(&version.to_string());
        // Two passes, as with reinvocationPolicy IfNeeded: the second one on what the first
        // left, by the webhook and by the policy alike.
        let (mut engine_object, mut cel_object) = (object.clone(), object.clone());
        let mut diverged = false;
        for pass in 1..=2 {
            // What this pass starts from decides what is weaker.
            let x = exclusions(case, &engine_object);
            let engine = rollout_safe_policy::admission::mutate_request(
                &setup.policy,
                &input(case, &engine_object),
                server,
            )
            .map_err(|e| format!("{label}: {e}"))?;
            if let Some(outcome) = engine {
                engine_object = outcome
                    .apply_to(&engine_object)
                    .map_err(|e| format!("{label}: the webhook's patch does not apply: {e}"))?;
            }
            let mut request = case.request.clone();
            request.object = cel_object.clone();
            if let Some(o) = cluster
                .mutate(&request)
                .map_err(|e| format!("{label}: {e}"))?
            {
                cel_object = o;
            }
            let (a, b) = (
                masked(engine_object.clone(), &x.masks),
                masked(cel_object.clone(), &x.masks),
            );
            if a != b {
                return Err(format!(
                    "{label} ({}), pass {pass}: the mutations differ\n  webhook: {engine_object}\n  policy:  {cel_object}\n  old: {}",
                    setup.name,
                    case.request
                        .old_object
                        .as_ref()
                        .map(Json::to_string)
                        .unwrap_or_default()
                ));
            }
            if engine_object != cel_object {
                // A weaker form left a different (masked) value: what follows starts from
                // different objects, so it is not compared.
                *tally
                    .excluded
                    .entry("mutation (weaker)".into())
                    .or_default() += 1;
                diverged = true;
                break;
            }
        }
        if diverged {
            continue;
        }
        if cel_object != *object {
            tally.mutated += 1;
        }
        let case = Case {
            label: label.clone(),
            ..case.clone()
        };
        compare_verdicts(setup, cluster, &case, &engine_object, &cel_object, tally)?;
    }
    tally.cases += 1;
    Ok(())
}

fn run(cases: &[Case]) -> Tally {
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for setup in setups() {
        for case in cases {
            if let Err(e) = check_case(setup, case, &mut tally) {
                failures.push(e);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreement(s); the first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    tally
}

fn report(what: &str, t: &Tally) {
    eprintln!(
        "{what}: {} case-setups agree ({} mutated)",
        t.cases, t.mutated
    );
    for (rule, (deny, warn, pass)) in &t.per_rule {
        eprintln!("  {rule}: {deny} denied, {warn} warned, {pass} passed");
    }
    for (rule, n) in &t.excluded {
        eprintln!("  {rule}: {n} excluded (CelForm::weaker)");
    }
}

// ---- the tests ------------------------------------------------------------------------------

#[test]
fn recorded_reviews_agree_and_deny_like_the_webhook() {
    let cases = review_cases();
    assert!(cases.len() >= 10, "{} workload reviews", cases.len());
    let t = run(&cases);
    report("recorded reviews", &t);
    // The goal, on the real requests: the Deployment without a readiness probe (02) is denied
    // by RS101 with the webhook's message, and `:latest` (14) warned about by RS501.
    let defaults = &setups()[0];
    let find = |prefix: &str| {
        cases
            .iter()
            .find(|c| c.label.starts_with(prefix) && c.label.contains("validating"))
            .unwrap_or_else(|| panic!("no review {prefix}"))
    };
    let bare = find("02-");
    let d = defaults.validating.validate(&bare.request).unwrap();
    let rs101 = d
        .iter()
        .find(|d| d.rule == "RS101")
        .expect("RS101 decides on 02");
    assert_eq!(rs101.actions, ["Deny", "Audit"]);
    assert_eq!(
        rs101.message,
        "RS101 Deployment shop/bare: container \"nginx\" has no readinessProbe (spec.template.spec.containers[0].readinessProbe) Fix: add a readinessProbe so the Service and the rollout only count pods that can serve"
    );
    let agent = find("14-");
    let d = defaults.validating.validate(&agent.request).unwrap();
    let rs501 = d
        .iter()
        .find(|d| d.rule == "RS501")
        .expect("RS501 decides on 14");
    assert_eq!(rs501.actions, ["Warn", "Audit"]);
    assert!(rs501.message.contains(":latest"), "{}", rs501.message);
}

/// Every expression's comprehensions, pinned in `snapshots/cel-comprehensions.txt`
/// (`UPDATE_SNAPSHOTS=1` rewrites it): the API server enforces a runtime cost budget per
/// evaluation and hands a request that exceeds it to `failurePolicy`, so the expressions stay
/// bounded by construction. At most one level of nesting, and only where a container's ports
/// are looked up inside the pass over containers (RS105).
#[test]
fn comprehensions_are_counted_and_bounded() {
    let mut report = String::from(
        "# comprehensions (count, nesting depth) per exported expression, defaults policy, --mutating\n",
    );
    let e = export(
        &RolloutPolicy::default(),
        &ExportOptions {
            kubernetes_version: KubeVersion::MUTATING_GA,
            mutating: true,
        },
    )
    .unwrap();
    let cluster = Cluster::new(&e.objects).unwrap();
    let mut total = 0;
    for (place, source) in cluster.expressions() {
        let (count, depth) = cel_harness::comprehensions(source).unwrap();
        total += count;
        if count > 0 {
            report.push_str(&format!("{place}: {count} (depth {depth})\n"));
        }
        assert!(depth <= 2, "{place}: comprehensions nested {depth} deep");
        if depth == 2 {
            assert!(
                place.contains("rs105") && source.contains(".ports.map("),
                "{place}: a nested comprehension outside RS105's port lookup: {source}"
            );
        }
    }
    report.push_str(&format!("total: {total}\n"));
    eprint!("{report}");
    let snap = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots/cel-comprehensions.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snap, &report).unwrap();
    } else {
        let pinned = std::fs::read_to_string(&snap).unwrap_or_default();
        assert_eq!(
            pinned, report,
            "the comprehension counts changed: review, then UPDATE_SNAPSHOTS=1"
        );
    }
}

#[test]
fn mutating_export_differs_by_api_version_only() {
    for setup in setups() {
        let at = |minor| {
            export(
                &setup.policy,
                &ExportOptions {
                    kubernetes_version: KubeVersion::new(1, minor),
                    mutating: true,
                },
            )
            .unwrap()
            .objects
        };
        let (beta, ga) = (at(35), at(36));
        assert_eq!(beta.len(), ga.len());
        let mut mutating = 0;
        for (b, g) in beta.iter().zip(&ga) {
            let mut b = b.clone();
            if b["apiVersion"] == "admissionregistration.k8s.io/v1beta1" {
                mutating += 1;
                b["apiVersion"] = json!("admissionregistration.k8s.io/v1");
            }
            assert_eq!(&b, g, "{}", setup.name);
        }
        let mutates = setup.name != "all-enforce";
        assert_eq!(
            mutating,
            if mutates { 2 } else { 0 },
            "{}: the policy and its binding, when a rule mutates",
            setup.name
        );
    }
}

#[test]
fn own_manifests_agree() {
    let cases = manifests_under(&fixture("manifests"), MANIFEST_NAMESPACES);
    assert!(
        cases.len() >= 19 * MANIFEST_NAMESPACES.len() * 3,
        "{} cases",
        cases.len()
    );
    let t = run(&cases);
    report("own manifests", &t);
    // Every exported rule was seen both failing and passing.
    for rule in RuleId::ALL {
        if rollout_safe_policy::admission_policy::RulePieces::of(*rule).is_none() {
            continue;
        }
        let (deny, warn, pass) = t.per_rule.get(rule.as_str()).copied().unwrap_or_default();
        assert!(
            deny + warn > 0 && pass > 0,
            "{rule}: {deny} denied, {warn} warned, {pass} passed"
        );
    }
}

#[test]
fn corpus_agrees() {
    let Some(dir) = corpus_or_skip("corpus_agrees") else {
        return;
    };
    let cases = manifests_under(&dir, CORPUS_NAMESPACES);
    let t = run(&cases);
    report("corpus", &t);
}

// ---- property-generated workloads -----------------------------------------------------------

fn int_or_string() -> impl Strategy<Value = Json> {
    prop_oneof![
        (-1i64..6).prop_map(|i| json!(i)),
        prop::sample::select(vec![
            "0%",
            "25%",
            "50%",
            "100%",
            "150%",
            " 30 %",
            "+5%",
            "-10%",
            "%",
            "2.5%",
            "abc",
            "10",
            "0001%",
            "99999999999%",
            "12345678901234567890%",
        ])
        .prop_map(|s| json!(s)),
    ]
}

fn probe() -> impl Strategy<Value = Option<Json>> {
    let handler = prop_oneof![
        prop::sample::select(vec!["http", "metrics", "8080", "missing"])
            .prop_map(|p| json!({"httpGet": {"port": p, "path": "/healthz"}})),
        (1i64..3).prop_map(|_| json!({"httpGet": {"port": 8080}})),
        prop::sample::select(vec!["http", "nope"]).prop_map(|p| json!({"tcpSocket": {"port": p}})),
        Just(json!({"exec": {"command": ["true"]}})),
        Just(json!({"httpGet": {"port": "http", "path": "/", "scheme": "HTTP"}})),
    ];
    prop::option::of((
        handler,
        prop::option::of(0i64..40),
        prop::option::of(1i64..15),
        prop::option::of(1i64..8),
        prop::option::of(1i64..3),
    ))
    .prop_map(|o| {
        o.map(|(mut h, delay, period, failures, timeout)| {
            for (k, v) in [
                ("initialDelaySeconds", delay),
                ("periodSeconds", period),
                ("failureThreshold", failures),
                ("timeoutSeconds", timeout),
            ] {
                if let Some(v) = v {
                    h[k] = json!(v);
                }
            }
            h
        })
    })
}

fn prestop() -> impl Strategy<Value = Option<Json>> {
    prop::option::of(prop_oneof![
        prop::sample::select(vec![-3i64, 0, 5, 30, 5000])
            .prop_map(|s| json!({"sleep": {"seconds": s}})),
        prop::sample::select(vec![
            vec!["sleep", "5"],
            vec!["/bin/sleep", "12"],
            vec!["sh", "-c", "sleep 5"],
            vec!["sleep", "2m"],
            vec!["sleep", "infinity"],
            vec!["sleep", "9999"],
            vec!["sleep"],
            vec!["sleep 3", "7"],
        ])
        .prop_map(|c| json!({"exec": {"command": c}})),
        Just(json!({"httpGet": {"port": 8080, "path": "/drain"}})),
    ])
}

fn container(name: String, sidecar: Option<bool>) -> impl Strategy<Value = Json> {
    (
        prop::sample::select(vec![
            "nginx",
            "nginx:latest",
            "nginx:1.27",
            "reg:5000/app",
            "reg:5000/app:v2",
            "app@sha256:abc",
            "",
            "a/b:",
            "shop/web:1.4.2",
            "\"odd\\image\"",
        ]),
        probe(),
        probe(),
        probe(),
        prop::sample::select(vec![vec![], vec!["http"], vec!["http", "metrics"]]),
        prestop(),
        any::<bool>(),
    )
        .prop_map(
            move |(image, readiness, liveness, startup, ports, pre, same)| {
                let mut c = json!({"name": name, "image": image});
                if image.is_empty() {
                    c.as_object_mut().unwrap().remove("image");
                }
                if same && readiness.is_some() {
                    c["livenessProbe"] = readiness.clone().unwrap();
                } else if let Some(l) = liveness {
                    c["livenessProbe"] = l;
                }
                if let Some(r) = readiness {
                    c["readinessProbe"] = r;
                }
                if let Some(s) = startup {
                    c["startupProbe"] = s;
                }
                if !ports.is_empty() {
                    c["ports"] = json!(
                        ports
                            .iter()
                            .enumerate()
                            .map(|(i, p)| json!({"name": p, "containerPort": 8080 + i}))
                            .chain([json!({"containerPort": 9999})])
                            .collect::<Vec<_>>()
                    );
                }
                if let Some(p) = pre {
                    c["lifecycle"] = json!({"preStop": p});
                }
                if sidecar == Some(true) {
                    c["restartPolicy"] = json!("Always");
                }
                c
            },
        )
}

fn annotations() -> impl Strategy<Value = Json> {
    (
        prop::option::of(prop::sample::select(vec![
            "RS101",
            "rs102, RS501",
            " RS101 ,RS999",
            "RS1O1",
            "",
            "RS201,RS202,RS401,RS403",
            "\u{a0}RS105\u{2003}",
            "RS104,,RS103",
        ])),
        prop::option::of(prop::sample::select(vec![
            "legacy app",
            "",
            "  ",
            "\u{3000}",
        ])),
        prop::option::of(prop::sample::select(vec!["v1", "deploy \"v2\""])),
    )
        .prop_map(|(skip, reason, cause)| {
            let mut a = serde_json::Map::new();
            if let Some(s) = skip {
                a.insert("rollout-safe.dev/skip".into(), json!(s));
            }
            if let Some(r) = reason {
                a.insert("rollout-safe.dev/skip-reason".into(), json!(r));
            }
            if let Some(c) = cause {
                a.insert("kubernetes.io/change-cause".into(), json!(c));
            }
            Json::Object(a)
        })
}

prop_compose! {
    fn workload()(
        kind in prop::sample::select(vec!["Deployment", "StatefulSet", "DaemonSet"]),
        replicas in prop::option::of(0i64..5),
        recreate in any::<bool>(),
        surge in prop::option::of(int_or_string()),
        unavailable in prop::option::of(int_or_string()),
        history in prop::option::of(0i64..12),
        deadline in prop::option::of(0i64..700),
        min_ready in prop::option::of(0i64..700),
        grace in prop::option::of(0i64..60),
        n in 1usize..3,
        sidecars in prop::collection::vec(any::<bool>(), 0..3),
        annotations in annotations(),
        seed in any::<u64>(),
    )(
        containers in (0..n).map(|i| container(format!("c{i}"), None)).collect::<Vec<_>>(),
        inits in sidecars.iter().enumerate().map(|(i, s)| container(format!("i{i}"), Some(*s))).collect::<Vec<_>>(),
        kind in Just(kind), replicas in Just(replicas), recreate in Just(recreate), surge in Just(surge),
        unavailable in Just(unavailable), history in Just(history), deadline in Just(deadline),
        min_ready in Just(min_ready), grace in Just(grace), annotations in Just(annotations), seed in Just(seed),
    ) -> Json {
        let mut pod = json!({"containers": containers});
        if !inits.is_empty() { pod["initContainers"] = json!(inits); }
        if let Some(g) = grace { pod["terminationGracePeriodSeconds"] = json!(g); }
        let mut spec = json!({
            "selector": {"matchLabels": {"app": "w"}},
            "template": {"metadata": {"labels": {"app": "w"}}, "spec": pod},
        });
        if kind != "DaemonSet" && let Some(r) = replicas { spec["replicas"] = json!(r); }
        if let Some(h) = history { spec["revisionHistoryLimit"] = json!(h); }
        match kind {
            "Deployment" => {
                let mut ru = json!({});
                if let Some(s) = surge { ru["maxSurge"] = s; }
                if let Some(u) = unavailable.clone() { ru["maxUnavailable"] = u; }
                spec["strategy"] = if recreate && seed % 3 == 0 {
                    json!({"type": "Recreate"})
                } else {
                    json!({"type": "RollingUpdate", "rollingUpdate": ru})
                };
                if let Some(d) = deadline { spec["progressDeadlineSeconds"] = json!(d); }
                if let Some(m) = min_ready { spec["minReadySeconds"] = json!(m); }
            }
            _ => {
                if let Some(u) = unavailable {
                    spec["updateStrategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": u}});
                }
                if kind == "StatefulSet" { spec["serviceName"] = json!("w"); }
            }
        }
        json!({
            "apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": "w", "annotations": annotations},
            "spec": spec,
        })
    }
}

/// A generated update: the old object, and what changed.
fn update_of(new: &Json, how: u8) -> Json {
    let mut old = new.clone();
    match how % 4 {
        // The template is the same (a scale or an annotation): grandfathering.
        0 => old["spec"]["replicas"] = json!(7),
        // An image changed.
        1 => {
            old["spec"]["template"]["spec"]["containers"][0]["image"] = json!("shop/web:0.9");
        }
        // The same change-cause as before, and a different template.
        2 => {
            old["spec"]["template"]["metadata"]["labels"]["rev"] = json!("1");
        }
        // Nothing but the skip annotation changed.
        _ => {
            old["metadata"]["annotations"] = json!({"rollout-safe.dev/skip": "RS101,RS105,RS401", "rollout-safe.dev/skip-reason": "old"});
        }
    }
    old
}

#[test]
fn generated_workloads_agree() {
    use proptest::test_runner::{Config, TestRunner};
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(200);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let tally = std::cell::RefCell::new(Tally::default());
    let admitted = std::cell::Cell::new(0usize);
    let strategy = (
        workload(),
        prop::sample::select(NAMESPACES.to_vec()),
        prop::option::of(any::<u8>()),
    );
    let result = runner.run(&strategy, |(w, ns, update)| {
        let Some(object) = admissible(&w) else {
            return Ok(());
        };
        admitted.set(admitted.get() + 1);
        let object = in_namespace(object, ns);
        let old = update.and_then(|how| admissible(&update_of(&object, how)));
        let op = if old.is_some() { "UPDATE" } else { "CREATE" };
        let case = Case {
            label: format!("generated {op} in {ns}"),
            request: Request {
                operation: op.into(),
                namespace: ns.into(),
                sub_resource: None,
                object,
                old_object: old,
                username: "bob".into(),
                options: None,
            },
            field_manager: None,
        };
        for setup in setups() {
            if let Err(e) = check_case(setup, &case, &mut tally.borrow_mut()) {
                return Err(proptest::test_runner::TestCaseError::fail(e));
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let t = tally.into_inner();
    report(
        &format!(
            "{cases} generated workloads ({} admissible)",
            admitted.get()
        ),
        &t,
    );
    // The generator reaches every exported rule, failing and passing.
    assert!(
        admitted.get() * 2 > cases as usize,
        "{} of {cases} admissible",
        admitted.get()
    );
    for rule in RuleId::ALL {
        if rollout_safe_policy::admission_policy::RulePieces::of(*rule).is_none() {
            continue;
        }
        let (deny, warn, pass) = t.per_rule.get(rule.as_str()).copied().unwrap_or_default();
        assert!(
            deny + warn > 0 && pass > 0,
            "{rule}: {deny} denied, {warn} warned, {pass} passed"
        );
    }
}
