// Temporary experiment (not committed): where the parse time goes.
use std::time::Instant;
use serde::Deserialize;
use serde::de::IgnoredAny;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

#[derive(Deserialize)]
#[allow(dead_code)]
struct Head { #[serde(rename="apiVersion")] api_version: Option<String>, kind: Option<String>, metadata: Option<ObjectMeta>, #[serde(default)] spec: IgnoredAny }

fn opts(comments: bool, budget: bool) -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    o.legacy_octal_numbers = true;
    o.emit_comments = comments;
    if !budget { o.budget = None; }
    o
}

fn split(text: &str) -> Vec<&str> {
    let mut out = vec![]; let mut start = 0; let mut off = 0;
    for line in text.split_inclusive('\n') {
        if line.starts_with("---") { out.push(&text[start..off]); start = off + line.len(); }
        off += line.len();
    }
    out.push(&text[start..]);
    out.into_iter().filter(|c| c.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))).collect()
}

fn main() {
    let root = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let files = rollout_safe_testkit::manifest_files(&root);
    let texts: Vec<(String, String)> = files.iter().map(|p| (p.display().to_string(), std::fs::read_to_string(p).unwrap())).collect();
    let reps = 20;
    let chunks: Vec<&str> = texts.iter().flat_map(|(_, t)| split(t)).collect();
    println!("{} files, {} chunks, {} bytes", texts.len(), chunks.len(), texts.iter().map(|t| t.1.len()).sum::<usize>());
    let time = |name: &str, f: &dyn Fn() -> usize| {
        let mut best = f64::MAX; let mut n = 0;
        for _ in 0..5 { let t = Instant::now(); for _ in 0..reps { n = f(); } best = best.min(t.elapsed().as_secs_f64() / reps as f64); }
        println!("{name:50} {:8.2} ms/corpus  ({n})", best * 1e3);
    };
    time("parse_documents (today)", &|| texts.iter().map(|(n, t)| rollout_safe_policy::parse_documents(n, t).len()).sum());
    time("parse_documents + Workload::from_value", &|| texts.iter().map(|(n, t)| rollout_safe_policy::parse_documents(n, t).into_iter().filter_map(|d| d.ok()).filter_map(|d| rollout_safe_policy::Workload::from_value(&d.value).ok().flatten()).count()).sum());
    for (c, b) in [(true, true), (false, true), (false, false)] {
        time(&format!("Value comments={c} budget={b}"), &|| chunks.iter().filter(|c| serde_saphyr::from_str_with_options::<serde_json::Value>(c, opts(c.len() > 0 && false || true, true)).is_ok()).count());
        let _ = (c, b);
        break;
    }
    for (c, b) in [(true, true), (false, true), (false, false)] {
        time(&format!("Value comments={c} budget={b}"), &|| chunks.iter().filter(|ch| serde_saphyr::from_str_with_options::<serde_json::Value>(ch, opts(c, b)).is_ok()).count());
        time(&format!("IgnoredAny comments={c} budget={b}"), &|| chunks.iter().filter(|ch| serde_saphyr::from_str_with_options::<IgnoredAny>(ch, opts(c, b)).is_ok()).count());
        time(&format!("Head comments={c} budget={b}"), &|| chunks.iter().filter(|ch| serde_saphyr::from_str_with_options::<Head>(ch, opts(c, b)).is_ok()).count());
        time(&format!("Deployment-or-ignored comments={c} budget={b}"), &|| chunks.iter().filter(|ch| if ch.contains("kind: Deployment") { serde_saphyr::from_str_with_options::<Deployment>(ch, opts(c, b)).is_ok() } else { serde_saphyr::from_str_with_options::<IgnoredAny>(ch, opts(c, b)).is_ok() }).count());
    }
    time("Value->Deployment (from Value)", &|| { 0 });
    let vals: Vec<serde_json::Value> = chunks.iter().filter(|c| c.contains("kind: Deployment")).filter_map(|c| serde_saphyr::from_str_with_options::<serde_json::Value>(c, opts(true,true)).ok()).collect();
    time("Deployment::deserialize(&Value)", &|| vals.iter().filter(|v| Deployment::deserialize(*v).is_ok()).count());
    time("Deployment via from_str direct", &|| chunks.iter().filter(|c| c.contains("kind: Deployment")).filter(|ch| serde_saphyr::from_str_with_options::<Deployment>(ch, opts(false, true)).is_ok()).count());
    time("Value for Deployment chunks", &|| chunks.iter().filter(|c| c.contains("kind: Deployment")).filter(|ch| serde_saphyr::from_str_with_options::<serde_json::Value>(ch, opts(false, true)).is_ok()).count());
}
