//! What the policy engine alone costs per admission request, on the recorded reviews, called
//! as the webhook calls it: each object handed over as the JSON text the API server sent,
//! decoded by the policy as far as it needs.
//!
//!   cargo run --release -p rollout-safe-policy --example admission_cost [-- ROUNDS]
//!
//! (ROUNDS passes over the reviews, 2000 by default; a few suffice under callgrind.)
//!
//! (The webhook benchmark, `cargo run --release -p rollout-safe-tests --bin webhook-bench`,
//! measures the whole server against no-op floors; this isolates the policy's share. Reading
//! the envelope is not the policy's, so it happens before the clock starts.)

use std::time::{Duration, Instant};

use rollout_safe_policy::admission::{
    AdmissionInput, NoLookups, ObjectJson, Operation, mutate_request, validate_request,
};
use rollout_safe_policy::{Actor, RolloutPolicy, ServerInfo, Workload};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// The request fields the policy reads, the objects left as text.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    operation: String,
    namespace: Option<String>,
    sub_resource: Option<String>,
    object: Option<Box<RawValue>>,
    old_object: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct Review {
    request: Request,
}

impl Request {
    fn input(&self) -> AdmissionInput<'_> {
        AdmissionInput {
            operation: if self.operation == "CREATE" {
                Operation::Create
            } else {
                Operation::Update
            },
            group: "apps",
            kind: "Deployment",
            sub_resource: self.sub_resource.as_deref(),
            namespace: self.namespace.as_deref(),
            object: self.object.as_deref().map(ObjectJson::Text),
            old_object: self.old_object.as_deref().map(ObjectJson::Text),
            actor: Actor {
                username: "admin".into(),
                field_manager: None,
            },
        }
    }
}

/// Mean time per call of `f` over `rounds` passes of `items`, in µs.
fn per_call<T>(rounds: usize, items: &[T], mut f: impl FnMut(&T)) -> f64 {
    let t = Instant::now();
    for _ in 0..rounds {
        for item in items {
            f(item);
        }
    }
    micros(t.elapsed(), rounds * items.len())
}

fn micros(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

fn main() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/admission-reviews"
    );
    let mut reviews: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("recorded reviews in tests/fixtures")
        .filter_map(|e| {
            let p = e.ok()?.path();
            let bytes = std::fs::read(&p).ok()?;
            let v: Value = serde_json::from_slice(&bytes).ok()?;
            let name = p.file_name()?.to_string_lossy().into_owned();
            // The webhook bench's set: Deployment writes (no subresource).
            (v["request"]["kind"]["kind"] == "Deployment" && v["request"]["subResource"].is_null())
                .then_some((name, bytes))
        })
        .collect();
    reviews.sort_by(|a, b| a.0.cmp(&b.0));
    let policy = RolloutPolicy::default();
    let rounds: usize = match std::env::args().nth(1) {
        Some(r) => r.parse().expect("ROUNDS: a number of passes"),
        None => 2000,
    };
    for (label, mutating) in [("validate", false), ("mutate", true)] {
        let set: Vec<Request> = reviews
            .iter()
            .filter(|(n, _)| n.contains(if mutating { "mutating" } else { "validating" }))
            .map(|(n, b)| {
                serde_json::from_slice::<Review>(b)
                    .unwrap_or_else(|e| panic!("{n}: {e}"))
                    .request
            })
            .collect();
        let total = per_call(rounds, &set, |req| {
            let input = req.input();
            if mutating {
                std::hint::black_box(mutate_request(&policy, &input, ServerInfo::default()).ok());
            } else {
                std::hint::black_box(validate_request(&policy, &input, &NoLookups).ok());
            }
        });
        println!(
            "{label}: {} reviews, {total:.1} µs/request in the policy (typed reads included)",
            set.len()
        );
    }
    // The typed read every decision starts with, from the text and, as the webhook used to,
    // from a parsed value.
    let objects: Vec<Box<RawValue>> = reviews
        .iter()
        .filter(|(n, _)| n.contains("validating"))
        .filter_map(|(_, b)| serde_json::from_slice::<Review>(b).ok()?.request.object)
        .collect();
    let values: Vec<Value> = objects
        .iter()
        .map(|o| serde_json::from_str(o.get()).expect("JSON"))
        .collect();
    let outline = per_call(rounds, &objects, |o| {
        std::hint::black_box(ObjectJson::Text(o).outline().ok());
    });
    let text = per_call(rounds, &objects, |o| {
        let outlined = ObjectJson::Text(o).outline().expect("outline");
        std::hint::black_box(outlined.workload().ok());
    });
    let parse = per_call(rounds, &objects, |o| {
        std::hint::black_box(serde_json::from_str::<Value>(o.get()).ok());
    });
    let value = per_call(rounds, &values, |v| {
        std::hint::black_box(Workload::from_value(v).ok());
    });
    println!(
        "  typed read of one object: {text:.1} µs from its text ({outline:.1} µs of it the outline); \
         {:.1} µs as text → Value → typed ({parse:.1} + {value:.1})",
        parse + value
    );
}
