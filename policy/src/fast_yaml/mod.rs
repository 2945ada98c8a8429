//! Fast readers for the YAML that manifests are made of, each certain to read a document as
//! serde-saphyr does or to decline it (`None`), in which case the next one tries:
//!
//! 1. `block`: block-style YAML as people write manifests, line by line (most documents);
//! 2. `events`: anything granit-parser (serde-saphyr's own parser) reads, without
//!    serde-saphyr's deserializer layer;
//! 3. the caller's serde-saphyr, which also reports every error.
//!
//! The audit spends most of its time reading YAML; these readers make it several times
//! faster. `policy/tests/fast_yaml.rs` compares each reader's every answer with serde-saphyr's
//! over the corpus, our manifests and generated documents and scalars.

mod block;
mod events;
mod scalar;

/// Documents every fast reader declines: what YAML makes of them is serde-saphyr's to say
/// (an alias, a tag, a duplicate or merge key, a key that is not a string) or an error.
#[cfg(test)]
const DECLINED_BY_ALL: &[&str] = &[
    "a: &x 1\nb: *x\n",
    "a: !!str 3\n",
    "a: 1\na: 2\n",
    "<<: {a: 1}\n",
    "1: a\n",
    "a: [unclosed\n",
];

use serde_json::Value;

/// Reads one YAML document (no `---` inside), or `None` when serde-saphyr must.
pub fn read_value(chunk: &str) -> Option<Value> {
    block::read_value(chunk).or_else(|| events::read_value(chunk))
}

/// The block reader alone (for the differential tests).
#[doc(hidden)]
pub fn read_block(chunk: &str) -> Option<Value> {
    block::read_value(chunk)
}

/// The event reader alone (for the differential tests).
#[doc(hidden)]
pub fn read_events(chunk: &str) -> Option<Value> {
    events::read_value(chunk)
}

/// What a plain scalar is when certain (for the differential tests).
#[doc(hidden)]
pub fn read_plain(s: &str) -> Option<Value> {
    scalar::plain(s)
}
