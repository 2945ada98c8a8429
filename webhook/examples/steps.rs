use std::time::Instant;
use rollout_safe_webhook::admission;
use rollout_safe_webhook::metrics::Metrics;
use rollout_safe_policy::{RolloutPolicy, ServerInfo};
use rollout_safe_policy::admission::NoLookups;

fn main() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/admission-reviews/");
    let metrics = Metrics::new();
    let policy = RolloutPolicy::default();
    let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".json").to_string()).filter(|n| n.ends_with("ing")).collect();
    names.sort();
    for name in &names {
        let name = name.as_str();
        let body = std::fs::read(format!("{dir}{name}.json")).unwrap();
        let v0: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if v0["request"]["kind"]["kind"] != "Deployment" || !v0["request"]["subResource"].is_null() { continue; }
        let mf = serde_json::to_vec(&v0["request"]["object"]["metadata"]["managedFields"]).unwrap().len() + serde_json::to_vec(&v0["request"]["oldObject"]["metadata"]["managedFields"]).unwrap().len();
        let n = 2000;
        let t = Instant::now();
        for _ in 0..n { let _ = admission::parse_review(&body).unwrap(); }
        let parse = t.elapsed() / n;
        let req0 = admission::parse_review(&body).unwrap();
        let t = Instant::now();
        for _ in 0..n { let _ = serde_json::to_value(req0.object.as_ref().unwrap()).unwrap(); }
        let tov = t.elapsed() / n;
        let t = Instant::now();
        for _ in 0..n {
            let mut req = req0.clone();
            let e = if name.ends_with("mutating") { admission::mutate(&policy, ServerInfo::default(), &mut req, &metrics, false) } else { admission::validate(&policy, &NoLookups, &mut req, &metrics, false) }.unwrap();
            std::hint::black_box(e);
        }
        let eval = t.elapsed() / n;
        let e = admission::validate(&policy, &NoLookups, &mut req0.clone(), &metrics, false).unwrap();
        let t = Instant::now();
        for _ in 0..n { let _ = admission::encode_review(e.response.clone()).unwrap(); }
        let enc = t.elapsed() / n;
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let obj = v["request"]["object"].clone();
        let t = Instant::now();
        for _ in 0..n { let _ = rollout_safe_policy::Workload::from_value(&obj).unwrap(); }
        let wl = t.elapsed() / n;
        let t = Instant::now();
        for _ in 0..n { let _: serde_json::Value = serde_json::from_slice(&body).unwrap(); }
        let rawv = t.elapsed() / n;
        println!("{name}: {} bytes (managedFields {mf}) parse_review {parse:?} to_value {tov:?} eval(total incl to_value) {eval:?} encode {enc:?} | Workload::from_value {wl:?} raw Value parse {rawv:?}", body.len());
    }
}
