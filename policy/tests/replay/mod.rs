//! The rollout recordings both replay tests read (`tests/fixtures/rollouts/*.jsonl`): one watch
//! event per line, `{"t": seconds, "resource": …, "type": …, "object": …}`.

use std::path::PathBuf;

use serde_json::Value;

const ROLLOUTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/rollouts");

pub struct Record {
    pub t: f64,
    // Read by judge_replay.rs only (the sets' replays watch one kind besides pods).
    #[allow(dead_code)]
    pub resource: String,
    pub type_: String,
    pub object: Value,
}

/// The records of the recording `name`.
pub fn load(name: &str) -> Vec<Record> {
    let path = PathBuf::from(ROLLOUTS_DIR).join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the recorded rollout {}: {e}. These recordings are committed in tests/fixtures/rollouts; \
             the replay tests need them and do not skip without them.",
            path.display()
        )
    });
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{name}:{}: bad JSON: {e}", i + 1));
            let field = |key: &str| {
                v[key]
                    .as_str()
                    .unwrap_or_else(|| panic!("{name}:{}: no {key}", i + 1))
                    .to_owned()
            };
            Record {
                t: v["t"]
                    .as_f64()
                    .unwrap_or_else(|| panic!("{name}:{}: no t", i + 1)),
                resource: field("resource"),
                type_: field("type"),
                object: v["object"].clone(),
            }
        })
        .collect()
}
