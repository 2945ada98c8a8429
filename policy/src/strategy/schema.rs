//! The annotation and label schema of blue-green and canary (`rollout-safe.dev/...`), and how
//! the state kept in annotations is read and written.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// The pod label that tells the colours apart.
pub const COLOR_LABEL: &str = "rollout-safe.dev/color";
/// The pod label of canary pods (`canary`).
pub const TRACK_LABEL: &str = "rollout-safe.dev/track";
/// [`TRACK_LABEL`]'s value on canary pods.
pub const CANARY_TRACK: &str = "canary";

/// Annotation keys.
pub mod ann {
    // On the Service.
    pub const PHASE: &str = "rollout-safe.dev/blue-green-phase";
    pub const ACTIVE: &str = "rollout-safe.dev/blue-green-active";
    pub const PREVIOUS: &str = "rollout-safe.dev/blue-green-previous";
    pub const TARGET: &str = "rollout-safe.dev/blue-green-target";
    pub const IMAGES: &str = "rollout-safe.dev/blue-green-images";
    pub const SWITCHED_AT: &str = "rollout-safe.dev/blue-green-switched-at";
    pub const KEEP_UNTIL: &str = "rollout-safe.dev/blue-green-keep-until";
    pub const WORKLOAD: &str = "rollout-safe.dev/blue-green-workload";
    /// `true`: `blue-green --detach` left the rollback window to `finish` or the next run.
    pub const DETACHED: &str = "rollout-safe.dev/blue-green-detached";
    // On the colour Deployments.
    pub const SERVICE: &str = "rollout-safe.dev/blue-green-service";
    pub const COLOR: &str = "rollout-safe.dev/blue-green-color";
    pub const BASE: &str = "rollout-safe.dev/blue-green-base";
    pub const RESTORE_REPLICAS: &str = "rollout-safe.dev/blue-green-replicas";
    // Canary: on the stable Deployment, and `CANARY_OF` on the canary.
    pub const CANARY_PHASE: &str = "rollout-safe.dev/canary-phase";
    pub const CANARY_TOTAL: &str = "rollout-safe.dev/canary-total";
    pub const CANARY_STEP: &str = "rollout-safe.dev/canary-step";
    pub const CANARY_IMAGES: &str = "rollout-safe.dev/canary-images";
    pub const CANARY_OF: &str = "rollout-safe.dev/canary-of";
}

/// A Deployment's annotation.
pub fn annotation<'a>(d: &'a Deployment, key: &str) -> Option<&'a str> {
    d.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// A Deployment's annotation parsed as a number.
pub fn annotation_i32(d: &Deployment, key: &str) -> Option<i32> {
    annotation(d, key)?.parse().ok()
}

/// Sets (`Some`) or removes (`None`) an annotation.
pub fn set_annotation(d: &mut Deployment, key: &str, value: Option<&str>) {
    let a = d.metadata.annotations.get_or_insert_default();
    match value {
        Some(v) => {
            a.insert(key.to_owned(), v.to_owned());
        }
        None => {
            a.remove(key);
        }
    }
}

/// `spec.replicas`, defaulted as the API server does.
pub fn replicas(d: &Deployment) -> i32 {
    d.spec.replicas.unwrap_or(1)
}

/// How the state annotations (and messages) write a time: RFC 3339, whole seconds, truncated,
/// so a time recorded is never later than the moment (`2026-11-22T23:10:24Z`).
pub fn ts_text(t: Timestamp) -> String {
    Timestamp::from_second(t.as_second())
        .unwrap_or(t)
        .to_string()
}

/// `t + d` (saturating at the far future).
pub fn ts_add(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_truncated_to_the_second() {
        let t: Timestamp = "2026-11-22T23:10:24.9Z".parse().unwrap();
        assert_eq!(ts_text(t), "2026-11-22T23:10:24Z");
        assert_eq!(
            ts_text(ts_add(t, Duration::from_secs(600))),
            "2026-11-22T23:20:24Z"
        );
        assert_eq!(ts_add(t, Duration::MAX), Timestamp::MAX);
    }

    #[test]
    fn annotations_set_read_and_remove() {
        let mut d = Deployment::default();
        assert_eq!(replicas(&d), 1);
        set_annotation(&mut d, ann::CANARY_TOTAL, Some("7"));
        assert_eq!(annotation_i32(&d, ann::CANARY_TOTAL), Some(7));
        set_annotation(&mut d, ann::CANARY_TOTAL, Some("seven"));
        assert_eq!(annotation(&d, ann::CANARY_TOTAL), Some("seven"));
        assert_eq!(annotation_i32(&d, ann::CANARY_TOTAL), None);
        set_annotation(&mut d, ann::CANARY_TOTAL, None);
        assert_eq!(annotation(&d, ann::CANARY_TOTAL), None);
    }
}
