//! ControllerRevisions, the revision history of StatefulSets and DaemonSets, kept as their
//! controllers keep it (`pkg/controller/history`): one revision per distinct pod template, named
//! `<owner>-<hash>`, holding `{"spec":{"template":{"$patch":"replace",…}}}` in `data`, numbered
//! in `revision`; a template that comes back gets the next number (which is how `kubectl
//! rollout undo` shows up in `rollout history`); the owner's annotations are copied onto it
//! (the change-cause among them, recorded in `api-responses/16` and `18`); revisions no pod
//! uses are pruned beyond `revisionHistoryLimit`.

use serde_json::{Value, json};

use super::deployment::{hash_template, normalized};
use crate::store::{Store, StoreError, controller_uid, name_of, uid_of};

/// What [`current_revision`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The template already had the highest revision.
    None,
    /// A new revision for a new template.
    Created,
    /// A template that came back: its revision got the next number.
    Renumbered,
}

/// A revision's number, 0 without one.
pub fn number(cr: &Value) -> i64 {
    cr["revision"].as_i64().unwrap_or(0)
}

/// The pod template a revision holds.
pub fn template_of(cr: &Value) -> Value {
    let mut t = cr["data"]["spec"]["template"].clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    t
}

/// The revisions `owner` controls, oldest number first.
pub fn owned(store: &Store, namespace: &str, owner_uid: &str) -> Vec<Value> {
    let mut v: Vec<Value> = store
        .list("controllerrevisions", Some(namespace))
        .filter(|o| controller_uid(o) == Some(owner_uid))
        .cloned()
        .collect();
    v.sort_by_key(number);
    v
}

/// The revision of `owner`'s current template, created or renumbered as the real controllers
/// do. `kind`: `StatefulSet` or `DaemonSet`; `hash_labels`: the labels that carry the hash on
/// the revision (`controller.kubernetes.io/hash` for StatefulSets, `controller-revision-hash`
/// for DaemonSets). Returns the revision and whether it is new to being current (created or
/// renumbered: the template changed).
pub fn current_revision(
    store: &mut Store,
    owner: &Value,
    kind: &str,
    hash_labels: &[&str],
) -> Result<(Value, Change), StoreError> {
    let ns = owner["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let uid = uid_of(owner).to_owned();
    let template = normalized(&owner["spec"]["template"]);
    let revisions = owned(store, &ns, &uid);
    let max = revisions.iter().map(number).max().unwrap_or(0);
    let annotations = owner["metadata"]["annotations"].clone();
    if let Some(existing) = revisions
        .iter()
        .find(|cr| normalized(&template_of(cr)) == template)
    {
        if number(existing) == max {
            return Ok((existing.clone(), Change::None));
        }
        // Only the number changes (`UpdateControllerRevision`): the revision keeps the
        // annotations, change-cause included, it was made with.
        let mut cr = existing.clone();
        cr["revision"] = json!(max + 1);
        store.put("controllerrevisions", cr.clone())?;
        return Ok((cr, Change::Renumbered));
    }
    let hash = hash_template(&owner["spec"]["template"]);
    let name = name_of(owner);
    let mut labels = owner["spec"]["template"]["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    for l in hash_labels {
        labels[*l] = json!(hash);
    }
    let mut data_template = owner["spec"]["template"].clone();
    data_template["$patch"] = json!("replace");
    let mut cr = json!({
        "metadata": {"name": format!("{name}-{hash}"), "namespace": ns, "labels": labels,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": name,
                "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
        "data": {"spec": {"template": data_template}},
        "revision": max + 1
    });
    if annotations.is_object() {
        cr["metadata"]["annotations"] = annotations;
    }
    store.put("controllerrevisions", cr.clone())?;
    let stored = store
        .get("controllerrevisions", &ns, &format!("{name}-{hash}"))
        .cloned()
        .unwrap_or(cr);
    Ok((stored, Change::Created))
}

/// Deletes the oldest revisions beyond `revisionHistoryLimit` that are neither in `keep` (the
/// current and update revisions) nor used by a pod (`in_use`: revision names).
pub fn prune(
    store: &mut Store,
    owner: &Value,
    keep: &[&str],
    in_use: &[String],
) -> Result<(), StoreError> {
    let ns = owner["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let limit = owner["spec"]["revisionHistoryLimit"]
        .as_i64()
        .unwrap_or(10)
        .max(0) as usize;
    let idle: Vec<String> = owned(store, &ns, uid_of(owner))
        .iter()
        .map(|cr| name_of(cr).to_owned())
        .filter(|n| !keep.contains(&n.as_str()) && !in_use.contains(n))
        .collect();
    let excess = idle.len().saturating_sub(limit);
    for n in &idle[..excess] {
        store.delete("controllerrevisions", &ns, n)?;
    }
    Ok(())
}
