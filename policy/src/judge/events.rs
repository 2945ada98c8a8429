//! The events a failure report quotes.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;

use super::config::MAX_FAILURE_EVENTS;
use super::sets::PodSets;
use super::state::RolloutState;
use super::verdict::EventNote;

/// When an event last happened, from whichever timestamp it carries.
pub fn event_time(e: &Event) -> Option<Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The most recent events about the failing pods, the new ReplicaSet and the
/// workload, from this rollout on, oldest first.
pub(super) fn relevant_events(
    state: &RolloutState,
    sets: &PodSets<'_>,
    pods: &BTreeSet<&str>,
) -> Vec<EventNote> {
    let mut notes: Vec<(Option<Timestamp>, usize, EventNote)> = state
        .events()
        .enumerate()
        .filter(|(_, e)| {
            let obj = &e.involved_object;
            let kind = obj.kind.as_deref().unwrap_or_default();
            let name = obj.name.as_deref().unwrap_or_default();
            let concerns = (kind == "Pod" && pods.contains(name))
                || sets.related.iter().any(|(k, n)| k == kind && n == name);
            let recent = match (sets.since, event_time(e)) {
                (Some(since), Some(t)) => t >= since,
                _ => true,
            };
            concerns && recent
        })
        .map(|(i, e)| {
            let obj = &e.involved_object;
            let note = EventNote {
                type_: e.type_.clone().unwrap_or_else(|| "Normal".to_owned()),
                reason: e.reason.clone().unwrap_or_default(),
                object: format!(
                    "{}/{}",
                    obj.kind.as_deref().unwrap_or_default(),
                    obj.name.as_deref().unwrap_or_default()
                ),
                message: e.message.clone().unwrap_or_default().trim().to_owned(),
                count: e.count.unwrap_or(1),
                last_seen: event_time(e),
            };
            (event_time(e), i, note)
        })
        .collect();
    notes.sort_by_key(|a| (a.0, a.1));
    let skip = notes.len().saturating_sub(MAX_FAILURE_EVENTS);
    notes.into_iter().skip(skip).map(|(_, _, n)| n).collect()
}
