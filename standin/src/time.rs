//! Timestamps as the API server writes them: RFC 3339, UTC, whole seconds.

pub use jiff::Timestamp;

pub fn now() -> Timestamp {
    Timestamp::now()
}

/// `2026-11-22T23:10:24Z`.
pub fn format(t: Timestamp) -> String {
    t.round(jiff::Unit::Second).unwrap_or(t).to_string()
}

/// A timestamp field of an object, if it is one.
pub fn parse(v: &serde_json::Value) -> Option<Timestamp> {
    v.as_str()?.parse().ok()
}
