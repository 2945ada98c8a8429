//! The deployment controller: a ReplicaSet per pod template (named `<deployment>-<hash>`), the
//! current one numbered with the next `deployment.kubernetes.io/revision` (a template that comes
//! back is numbered again, as `kubectl rollout undo` shows), a rolling update that keeps to
//! `maxSurge` / `maxUnavailable` (or Recreate), old ReplicaSets pruned to
//! `revisionHistoryLimit`, and the status with its `Available` and `Progressing` conditions,
//! `ProgressDeadlineExceeded` once `progressDeadlineSeconds` pass without progress. A paused
//! Deployment gets its status only. Ready pods count as available at once: `minReadySeconds` is
//! not modelled.

use serde_json::{Map, Value, json};

use super::ObjectController;
use crate::store::{Store, StoreError, encode_safe, name_of, uid_of};
use crate::time::{self, Timestamp};

pub const NAME: &str = "deployment-controller";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const HASH_LABEL: &str = "pod-template-hash";
pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

/// Deployment annotations the real controller does not copy onto its ReplicaSets.
const NOT_COPIED: [&str; 5] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
];

#[derive(Debug, Default)]
pub struct DeploymentController;

impl ObjectController for DeploymentController {
    const NAME: &'static str = NAME;
    const RESOURCE: &'static str = "deployments";

    fn sync(&mut self, store: &mut Store, d: Value, now: Timestamp) -> Result<(), StoreError> {
        sync(store, d, now)
    }
}

/// The `pod-template-hash` of a pod template: a hash of its canonical JSON (keys sorted,
/// nulls and any `pod-template-hash` label left out), in the alphabet of generated names.
pub fn hash_template(template: &Value) -> String {
    let mut text = String::new();
    canonical(&normalized(template), &mut text);
    // FNV-1a: stable across runs and Rust versions, unlike the std hasher.
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    encode_safe(hash, 10)
}

/// The template without its `pod-template-hash` label and without null fields: what two
/// templates are compared by.
pub fn normalized(template: &Value) -> Value {
    fn strip_nulls(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.retain(|_, v| !v.is_null());
                m.values_mut().for_each(strip_nulls);
            }
            Value::Array(a) => a.iter_mut().for_each(strip_nulls),
            _ => {}
        }
    }
    let mut t = template.clone();
    if let Some(labels) = t["metadata"]["labels"].as_object_mut() {
        labels.remove(HASH_LABEL);
    }
    strip_nulls(&mut t);
    t
}

fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// `deployment.kubernetes.io/revision` of an object, 0 without one.
pub fn revision(v: &Value) -> i64 {
    v["metadata"]["annotations"][REVISION]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn count(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn spec_replicas(v: &Value) -> i64 {
    v["spec"]["replicas"].as_i64().unwrap_or(1)
}

/// An `IntOrString` of the rolling update against `replicas`.
fn scaled(v: &Value, replicas: i64, round_up: bool) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => {
            let percent = s.trim_end_matches('%').parse::<i64>().unwrap_or(25);
            let x = replicas * percent;
            if round_up { (x + 99) / 100 } else { x / 100 }
        }
        // The API server's defaults: 25% each.
        _ => {
            if round_up {
                (replicas * 25 + 99) / 100
            } else {
                replicas * 25 / 100
            }
        }
    }
}

struct Strategy {
    recreate: bool,
    max_surge: i64,
    max_unavailable: i64,
}

fn strategy(d: &Value, replicas: i64) -> Strategy {
    let s = &d["spec"]["strategy"];
    if s["type"] == "Recreate" {
        return Strategy {
            recreate: true,
            max_surge: 0,
            max_unavailable: 0,
        };
    }
    let ru = &s["rollingUpdate"];
    let max_surge = scaled(&ru["maxSurge"], replicas, true);
    let mut max_unavailable = scaled(&ru["maxUnavailable"], replicas, false);
    if max_surge == 0 && max_unavailable == 0 {
        max_unavailable = 1;
    }
    Strategy {
        recreate: false,
        max_surge,
        max_unavailable: max_unavailable.min(replicas),
    }
}

fn sync(store: &mut Store, d: Value, now: Timestamp) -> Result<(), StoreError> {
    let ns = d["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let ns = ns.as_str();
    let uid = uid_of(&d).to_owned();
    let replicas = spec_replicas(&d);
    let strategy = strategy(&d, replicas);
    let paused = d["spec"]["paused"] == true;
    let template = normalized(&d["spec"]["template"]);
    let mut rss: Vec<Value> = store
        .controlled_by("replicasets", ns, &uid)
        .cloned()
        .collect();
    rss.sort_by_key(revision);
    let max_revision = rss.iter().map(revision).max().unwrap_or(0);
    let mut current = rss
        .iter()
        .position(|rs| normalized(&rs["spec"]["template"]) == template);
    if !paused {
        let i = match current {
            Some(i) => i,
            None => {
                rss.push(new_replicaset(&d, max_revision + 1));
                rss.len() - 1
            }
        };
        if revision(&rss[i]) < max_revision || revision(&rss[i]) == 0 {
            rss[i]["metadata"]["annotations"][REVISION] = json!((max_revision + 1).to_string());
        }
        copy_annotations(&d, &mut rss[i]);
        if strategy.recreate {
            recreate(&mut rss, i, replicas);
        } else {
            roll(&mut rss, i, replicas, &strategy);
        }
        for rs in &rss {
            store.put("replicasets", rs.clone())?;
        }
        prune_history(store, &d, &rss, i)?;
        current = Some(i);
    }
    let current_name = current.map(|i| name_of(&rss[i]).to_owned());
    // Counts from what the ReplicaSet controller last reported.
    let rss: Vec<Value> = store
        .controlled_by("replicasets", ns, &uid)
        .cloned()
        .collect();
    let current_rs = current_name
        .as_deref()
        .and_then(|n| rss.iter().find(|rs| name_of(rs) == n));
    let mut out = d.clone();
    if let Some(rs) = current_rs {
        out["metadata"]["annotations"][REVISION] = json!(revision(rs).to_string());
    }
    out["status"] = status(&d, &rss, current_rs, &strategy, paused, now);
    store.put("deployments", out)?;
    Ok(())
}

fn new_replicaset(d: &Value, revision: i64) -> Value {
    let name = name_of(d);
    let hash = hash_template(&d["spec"]["template"]);
    let mut template = d["spec"]["template"].clone();
    template["metadata"]["labels"][HASH_LABEL] = json!(hash);
    let mut selector = d["spec"]["selector"].clone();
    selector["matchLabels"][HASH_LABEL] = json!(hash);
    json!({
        "metadata": {"name": format!("{name}-{hash}"), "namespace": d["metadata"]["namespace"].clone(),
            "labels": template["metadata"]["labels"].clone(),
            "annotations": {REVISION: revision.to_string()},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                "uid": uid_of(d), "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"replicas": 0, "minReadySeconds": d["spec"]["minReadySeconds"].as_i64().unwrap_or(0),
            "selector": selector, "template": template},
        "status": {"replicas": 0}
    })
}

/// As the real controller: the current ReplicaSet carries the Deployment's annotations.
fn copy_annotations(d: &Value, rs: &mut Value) {
    let Some(from) = d["metadata"]["annotations"].as_object() else {
        return;
    };
    for (k, v) in from {
        if !NOT_COPIED.contains(&k.as_str()) {
            rs["metadata"]["annotations"][k] = v.clone();
        }
    }
}

fn set_replicas(rs: &mut Value, n: i64) {
    rs["spec"]["replicas"] = json!(n);
}

fn available(rs: &Value) -> i64 {
    count(&rs["status"]["availableReplicas"])
}

fn recreate(rss: &mut [Value], current: usize, replicas: i64) {
    let mut old_pods = 0;
    for (i, rs) in rss.iter_mut().enumerate() {
        if i != current {
            set_replicas(rs, 0);
            old_pods += count(&rs["status"]["replicas"]);
        }
    }
    if old_pods == 0 {
        set_replicas(&mut rss[current], replicas);
    }
}

/// One step of a rolling update, as the real controller takes it: scale the current
/// ReplicaSet up within `maxSurge`, then old ones down (unhealthy pods first) as far as
/// `maxUnavailable` allows.
fn roll(rss: &mut [Value], current: usize, replicas: i64, s: &Strategy) {
    let new_spec = spec_replicas(&rss[current]);
    if new_spec > replicas {
        set_replicas(&mut rss[current], replicas);
    } else if new_spec < replicas {
        let total: i64 = rss.iter().map(spec_replicas).sum();
        let up = (replicas + s.max_surge - total)
            .min(replicas - new_spec)
            .max(0);
        set_replicas(&mut rss[current], new_spec + up);
    }
    let min_available = replicas - s.max_unavailable;
    let total: i64 = rss.iter().map(spec_replicas).sum();
    let new_unavailable = spec_replicas(&rss[current]) - available(&rss[current]);
    let mut max_scale_down = total - min_available - new_unavailable;
    if max_scale_down <= 0 {
        return;
    }
    // Oldest first (the slice is sorted by revision).
    for (i, rs) in rss.iter_mut().enumerate() {
        let spec = spec_replicas(rs);
        if i == current || spec == 0 {
            continue;
        }
        let unhealthy = (spec - available(rs)).max(0);
        let down = unhealthy.min(max_scale_down);
        set_replicas(rs, spec - down);
        max_scale_down -= down;
    }
    let available_total: i64 = rss.iter().map(available).sum();
    let mut can_scale_down = (available_total - min_available).max(0);
    for (i, rs) in rss.iter_mut().enumerate() {
        let spec = spec_replicas(rs);
        if i == current || spec == 0 || can_scale_down == 0 {
            continue;
        }
        let down = spec.min(can_scale_down);
        set_replicas(rs, spec - down);
        can_scale_down -= down;
    }
}

/// Deletes the oldest idle ReplicaSets beyond `revisionHistoryLimit`.
fn prune_history(
    store: &mut Store,
    d: &Value,
    rss: &[Value],
    current: usize,
) -> Result<(), StoreError> {
    let limit = d["spec"]["revisionHistoryLimit"]
        .as_i64()
        .unwrap_or(10)
        .max(0) as usize;
    let idle: Vec<&Value> = rss
        .iter()
        .enumerate()
        .filter(|(i, rs)| {
            *i != current && spec_replicas(rs) == 0 && count(&rs["status"]["replicas"]) == 0
        })
        .map(|(_, rs)| rs)
        .collect();
    let excess = idle.len().saturating_sub(limit);
    for rs in &idle[..excess] {
        let ns = rs["metadata"]["namespace"].as_str().unwrap_or_default();
        store.delete("replicasets", ns, name_of(rs))?;
    }
    Ok(())
}

struct Counts {
    replicas: i64,
    updated: i64,
    ready: i64,
    available: i64,
    unavailable: i64,
}

fn counts(rss: &[Value], current: Option<&Value>) -> Counts {
    let sum = |f: &dyn Fn(&Value) -> i64| rss.iter().map(f).sum::<i64>();
    let available_all = sum(&available);
    Counts {
        replicas: sum(&|rs| count(&rs["status"]["replicas"])),
        updated: current.map_or(0, |rs| count(&rs["status"]["replicas"])),
        ready: sum(&|rs| count(&rs["status"]["readyReplicas"])),
        available: available_all,
        unavailable: (sum(&spec_replicas) - available_all).max(0),
    }
}

fn status(
    d: &Value,
    rss: &[Value],
    current: Option<&Value>,
    strategy: &Strategy,
    paused: bool,
    now: Timestamp,
) -> Value {
    let replicas = spec_replicas(d);
    let c = counts(rss, current);
    let old = &d["status"];
    let progressed = [
        ("replicas", c.replicas),
        ("updatedReplicas", c.updated),
        ("readyReplicas", c.ready),
        ("availableReplicas", c.available),
    ]
    .iter()
    .any(|(k, v)| count(&old[*k]) != *v);
    let old_conditions = old["conditions"].as_array().cloned().unwrap_or_default();
    let old_condition = |t: &str| {
        old_conditions
            .iter()
            .find(|c| c["type"] == t)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let min_available = replicas - strategy.max_unavailable;
    let available = if c.available >= min_available {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".to_owned(),
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".to_owned(),
        )
    };
    let current_name = current.map(name_of).unwrap_or_default();
    let complete = current.is_some()
        && c.updated == replicas
        && c.available == replicas
        && c.replicas == replicas;
    let old_progressing = old_condition("Progressing");
    let progressing_msg = format!("ReplicaSet {current_name:?} is progressing.");
    let timed_out_msg = format!("ReplicaSet {current_name:?} has timed out progressing.");
    let progressing = if paused {
        (
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".to_owned(),
        )
    } else if complete {
        (
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet {current_name:?} has successfully progressed."),
        )
    } else {
        let deadline = d["spec"]["progressDeadlineSeconds"].as_i64().unwrap_or(600);
        let was_timed_out = old_progressing["reason"] == PROGRESS_DEADLINE_EXCEEDED
            && old_progressing["message"] == timed_out_msg.as_str();
        let stalled_since = (old_progressing["message"] == progressing_msg.as_str() && !progressed)
            .then(|| time::parse(&old_progressing["lastUpdateTime"]))
            .flatten();
        let deadline_passed =
            stalled_since.is_some_and(|t| now.as_second() - t.as_second() > deadline);
        if was_timed_out || deadline_passed {
            ("False", PROGRESS_DEADLINE_EXCEEDED, timed_out_msg)
        } else {
            ("True", "ReplicaSetUpdated", progressing_msg)
        }
    };
    let mut status = Map::new();
    status.insert(
        "observedGeneration".into(),
        d["metadata"]["generation"].clone(),
    );
    status.insert("replicas".into(), json!(c.replicas));
    status.insert("updatedReplicas".into(), json!(c.updated));
    status.insert("readyReplicas".into(), json!(c.ready));
    status.insert("availableReplicas".into(), json!(c.available));
    if c.unavailable > 0 {
        status.insert("unavailableReplicas".into(), json!(c.unavailable));
    }
    status.insert(
        "conditions".into(),
        json!([
            condition(
                &old_condition("Available"),
                "Available",
                available,
                false,
                now
            ),
            condition(
                &old_progressing,
                "Progressing",
                progressing,
                progressed,
                now
            ),
        ]),
    );
    Value::Object(status)
}

/// A condition; its times stay as they were while nothing about it changes (as the real
/// controller keeps them), `lastUpdateTime` moves on progress.
fn condition(
    old: &Value,
    type_: &str,
    (status, reason, message): (&str, &str, String),
    progressed: bool,
    now: Timestamp,
) -> Value {
    let now = time::format(now);
    let same_status = old["status"] == status;
    let unchanged = same_status && old["reason"] == reason && old["message"] == message.as_str();
    let keep = |field: &str, keep: bool| {
        if keep && old[field].is_string() {
            old[field].clone()
        } else {
            json!(now)
        }
    };
    json!({"type": type_, "status": status, "reason": reason, "message": message,
        "lastUpdateTime": keep("lastUpdateTime", unchanged && !progressed),
        "lastTransitionTime": keep("lastTransitionTime", same_status)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_ignores_key_order_nulls_and_its_own_label() {
        let a = json!({"metadata": {"labels": {"app": "x"}, "creationTimestamp": null}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let b = json!({"spec": {"containers": [{"image": "i", "name": "c"}]}, "metadata": {"labels": {"app": "x", HASH_LABEL: "abc"}}});
        assert_eq!(hash_template(&a), hash_template(&b));
        assert_eq!(hash_template(&a).len(), 10);
        let c = json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "j"}]}});
        assert_ne!(hash_template(&a), hash_template(&c));
    }

    #[test]
    fn rolling_update_steps_respect_surge_and_unavailability() {
        let s = Strategy {
            recreate: false,
            max_surge: 1,
            max_unavailable: 0,
        };
        let rs = |spec: i64, avail: i64| json!({"spec": {"replicas": spec}, "status": {"availableReplicas": avail}});
        // Start: the new ReplicaSet gets one surge pod, the old one stays.
        let mut rss = vec![rs(3, 3), rs(0, 0)];
        roll(&mut rss, 1, 3, &s);
        assert_eq!((spec_replicas(&rss[0]), spec_replicas(&rss[1])), (3, 1));
        // The surge pod is not available: nothing more.
        roll(&mut rss, 1, 3, &s);
        assert_eq!((spec_replicas(&rss[0]), spec_replicas(&rss[1])), (3, 1));
        // It became available: one old pod goes.
        rss[1]["status"]["availableReplicas"] = json!(1);
        roll(&mut rss, 1, 3, &s);
        assert_eq!((spec_replicas(&rss[0]), spec_replicas(&rss[1])), (2, 1));
        // Back to an old template while the new one crash-loops: the unhealthy pod goes first.
        let mut rss = vec![rs(3, 3), rs(1, 0)];
        roll(&mut rss, 0, 3, &s);
        assert_eq!((spec_replicas(&rss[0]), spec_replicas(&rss[1])), (3, 0));
        assert_eq!(scaled(&json!("25%"), 3, true), 1);
        assert_eq!(scaled(&json!("25%"), 3, false), 0);
        assert_eq!(scaled(&Value::Null, 4, false), 1);
    }
}
