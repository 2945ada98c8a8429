use std::time::Instant;
use rollout_safe_policy::RolloutPolicy;
use rollout_safe_policy::audit::{audit_text, audit_text_general};
fn main() {
    let root = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let files = rollout_safe_testkit::manifest_files(&root);
    let texts: Vec<(String, String)> = files.iter().map(|p| (p.display().to_string(), std::fs::read_to_string(p).unwrap())).collect();
    let policy = RolloutPolicy::default();
    let variants: Vec<(&str, Box<dyn Fn() -> usize>)> = vec![
        ("parse_documents", Box::new(|| texts.iter().map(|(n, t)| rollout_safe_policy::parse_documents(n, t).len()).sum())),
        ("audit_text_general", Box::new(|| texts.iter().map(|(n, t)| audit_text_general(&policy, n, t).objects).sum())),
        ("audit_text (one pass)", Box::new(|| texts.iter().map(|(n, t)| audit_text(&policy, n, t).objects).sum())),
    ];
    let mut best = vec![f64::MAX; variants.len()];
    let mut n = vec![0; variants.len()];
    for _ in 0..15 { for (i, (_, f)) in variants.iter().enumerate() { let t = Instant::now(); n[i] = f(); best[i] = best[i].min(t.elapsed().as_secs_f64()); } }
    for (i, (name, _)) in variants.iter().enumerate() { println!("{name:30} {:8.2} ms ({})", best[i]*1e3, n[i]); }
}
