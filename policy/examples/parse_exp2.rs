use std::time::Instant;
use serde::de::IgnoredAny;
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
    let texts: Vec<String> = files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
    let chunks: Vec<&str> = texts.iter().flat_map(|t| split(t)).collect();
    let variants: Vec<(&str, Box<dyn Fn() -> usize>)> = vec![
        ("saphyr Value default", Box::new(|| chunks.iter().filter(|c| serde_saphyr::from_str_with_options::<serde_json::Value>(c, opts(true, true)).is_ok()).count())),
        ("saphyr Value nocomments", Box::new(|| chunks.iter().filter(|c| serde_saphyr::from_str_with_options::<serde_json::Value>(c, opts(false, true)).is_ok()).count())),
        ("saphyr Value nobudget", Box::new(|| chunks.iter().filter(|c| serde_saphyr::from_str_with_options::<serde_json::Value>(c, opts(true, false)).is_ok()).count())),
        ("saphyr IgnoredAny", Box::new(|| chunks.iter().filter(|c| serde_saphyr::from_str_with_options::<IgnoredAny>(c, opts(true, true)).is_ok()).count())),
        ("granit events", Box::new(|| chunks.iter().map(|c| granit_parser::Parser::new_from_str(c).count()).sum())),
        ("serde_yaml Value", Box::new(|| chunks.iter().filter(|c| serde_yaml::from_str::<serde_json::Value>(c).is_ok()).count())),
        ("serde_yaml IgnoredAny", Box::new(|| chunks.iter().filter(|c| serde_yaml::from_str::<IgnoredAny>(c).is_ok()).count())),
    ];
    let mut best = vec![f64::MAX; variants.len()];
    let mut n = vec![0; variants.len()];
    for _ in 0..15 { for (i, (_, f)) in variants.iter().enumerate() { let t = Instant::now(); n[i] = f(); best[i] = best[i].min(t.elapsed().as_secs_f64()); } }
    println!("{} chunks", chunks.len());
    for (i, (name, _)) in variants.iter().enumerate() { println!("{name:30} {:8.2} ms ({})", best[i]*1e3, n[i]); }
}
