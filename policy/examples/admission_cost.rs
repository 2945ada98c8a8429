//! What the policy engine alone costs per admission request, on the recorded reviews:
//!
//!   cargo run --release -p rollout-safe-policy --example admission_cost
//!
//! (The webhook benchmark, `cargo run --release -p rollout-safe-tests --bin webhook-bench`,
//! measures the whole server against a no-op floor; this isolates the policy's share.)

use std::time::Instant;

use rollout_safe_policy::admission::{
    AdmissionInput, NoLookups, Operation, mutate_request, validate_request,
};
use rollout_safe_policy::{Actor, RolloutPolicy, ServerInfo};
use serde_json::Value;

fn main() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/admission-reviews"
    );
    let mut reviews: Vec<(String, Value)> = std::fs::read_dir(dir)
        .expect("recorded reviews in tests/fixtures")
        .filter_map(|e| {
            let p = e.ok()?.path();
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).ok()?).ok()?;
            let kind = v["request"]["kind"]["kind"].as_str()?.to_string();
            let name = p.file_name()?.to_string_lossy().into_owned();
            (kind == "Deployment").then_some((name, v))
        })
        .collect();
    reviews.sort_by(|a, b| a.0.cmp(&b.0));
    let policy = RolloutPolicy::default();
    let rounds = 2000;
    for (label, mutating) in [("validate", false), ("mutate", true)] {
        let set: Vec<&Value> = reviews
            .iter()
            .filter(|(n, _)| n.contains(if mutating { "mutating" } else { "validating" }))
            .map(|(_, v)| &v["request"])
            .collect();
        let t = Instant::now();
        let mut parse = std::time::Duration::ZERO;
        for _ in 0..rounds {
            for req in &set {
                let p0 = Instant::now();
                let text = serde_json::to_vec(req).unwrap();
                let req: Value = serde_json::from_slice(&text).unwrap();
                parse += p0.elapsed();
                let input = AdmissionInput {
                    operation: if req["operation"] == "CREATE" {
                        Operation::Create
                    } else {
                        Operation::Update
                    },
                    group: "apps",
                    kind: "Deployment",
                    sub_resource: req["subResource"].as_str(),
                    namespace: req["namespace"].as_str(),
                    object: req.get("object").filter(|o| !o.is_null()),
                    old_object: req.get("oldObject").filter(|o| !o.is_null()),
                    actor: Actor {
                        username: "admin".into(),
                        field_manager: None,
                    },
                };
                if mutating {
                    std::hint::black_box(
                        mutate_request(&policy, &input, ServerInfo::default()).ok(),
                    );
                } else {
                    std::hint::black_box(validate_request(&policy, &input, &NoLookups).ok());
                }
            }
        }
        let n = (rounds * set.len()) as f64;
        let total = t.elapsed().as_secs_f64() * 1e6 / n;
        let json = parse.as_secs_f64() * 1e6 / n;
        if !mutating {
            // The typed read every decision starts with.
            let t = Instant::now();
            for _ in 0..rounds {
                for req in &set {
                    std::hint::black_box(
                        rollout_safe_policy::Workload::from_value(&req["object"]).ok(),
                    );
                }
            }
            println!(
                "  typed read of one object: {:.1} µs",
                t.elapsed().as_secs_f64() * 1e6 / (rounds * set.len()) as f64
            );
        }
        println!(
            "{label}: {} reviews, {:.1} µs/request in the policy, {:.1} µs JSON encode+decode (not policy)",
            set.len(),
            total - json,
            json
        );
    }
}
