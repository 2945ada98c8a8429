//! Describing a pod-template change in one line for `kubernetes.io/change-cause`
//! (what `kubectl --record` used to write, but saying what changed rather than the command).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar};

use crate::workload::Workload;

pub const RESTARTED_AT_ANNOTATION: &str = "kubectl.kubernetes.io/restartedAt";
pub const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";

/// Whether the pod template differs (a scale, pause or annotation change does not count).
pub fn template_changed(old: &Workload, new: &Workload) -> bool {
    old.template() != new.template()
}

/// Who changed it, and through what (the admission request's `userInfo.username` and
/// `options.fieldManager`, or the plugin's own name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    pub username: String,
    pub field_manager: Option<String>,
}

/// `alice: image web=shop/web:1.5.0 (was 1.4.2) via kubectl-set`. `old` is `None` on creation.
pub fn describe(old: Option<&Workload>, new: &Workload, actor: &Actor) -> String {
    let what = match old {
        None => format!("create with {}", images(new)),
        Some(old) => {
            let parts = changes(old, new);
            if parts.is_empty() {
                "pod template unchanged".to_string()
            } else {
                parts.join(", ")
            }
        }
    };
    let who = if actor.username.is_empty() {
        "unknown"
    } else {
        actor.username.as_str()
    };
    match actor.field_manager.as_deref() {
        Some(how) if !how.is_empty() => format!("{who}: {what} via {how}"),
        _ => format!("{who}: {what}"),
    }
}

fn containers(w: &Workload) -> Vec<&Container> {
    w.pod_spec()
        .map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
                .collect()
        })
        .unwrap_or_default()
}

fn images(w: &Workload) -> String {
    let list: Vec<String> = w
        .pod_spec()
        .map(|s| {
            s.containers
                .iter()
                .map(|c| format!("{}={}", c.name, c.image.as_deref().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    if list.is_empty() {
        "no containers".into()
    } else {
        format!("image {}", list.join(" "))
    }
}

/// `shop/web:1.4.2` → `1.4.2` when only the tag (or digest) moved; the whole reference otherwise.
fn was(old: &str, new: &str) -> String {
    let repo = |s: &str| -> String {
        if let Some((r, _)) = s.split_once('@') {
            return r.to_string();
        }
        let slash = s.rfind('/').map_or(0, |i| i + 1);
        match s[slash..].rfind(':') {
            Some(i) => s[..slash + i].to_string(),
            None => s.to_string(),
        }
    };
    if repo(old) == repo(new) && old.len() > repo(old).len() {
        old[repo(old).len() + 1..].to_string()
    } else {
        old.to_string()
    }
}

fn env_map(c: &Container) -> BTreeMap<&str, &EnvVar> {
    c.env
        .iter()
        .flatten()
        .map(|e| (e.name.as_str(), e))
        .collect()
}

fn changes(old: &Workload, new: &Workload) -> Vec<String> {
    let mut out = Vec::new();
    let old_cs: BTreeMap<&str, &Container> = containers(old)
        .into_iter()
        .map(|c| (c.name.as_str(), c))
        .collect();
    let new_cs = containers(new);
    let mut images = Vec::new();
    for c in &new_cs {
        match old_cs.get(c.name.as_str()) {
            None => out.push(format!("container {} added", c.name)),
            Some(o) => {
                let (oi, ni) = (
                    o.image.as_deref().unwrap_or(""),
                    c.image.as_deref().unwrap_or(""),
                );
                if oi != ni {
                    images.push(format!("{}={} (was {})", c.name, ni, was(oi, ni)));
                }
                let (oe, ne) = (env_map(o), env_map(c));
                let mut env = Vec::new();
                for (k, v) in &ne {
                    match oe.get(k) {
                        None => env.push(format!("+{k}")),
                        Some(ov) if ov != v => env.push(format!("~{k}")),
                        _ => {}
                    }
                }
                env.extend(
                    oe.keys()
                        .filter(|k| !ne.contains_key(*k))
                        .map(|k| format!("-{k}")),
                );
                if !env.is_empty() {
                    out.push(format!("env {}: {}", c.name, env.join(" ")));
                }
            }
        }
    }
    for name in old_cs.keys() {
        if !new_cs.iter().any(|c| c.name == *name) {
            out.push(format!("container {name} removed"));
        }
    }
    if !images.is_empty() {
        out.insert(0, format!("image {}", images.join(" ")));
    }
    let restarted = |w: &Workload| {
        w.template()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(RESTARTED_AT_ANNOTATION).cloned())
    };
    if restarted(old) != restarted(new) {
        out.push("restart".into());
    }
    if out.is_empty() {
        // Something else in the template: name the top-level fields that moved.
        let (o, n) = (
            serde_json::to_value(old.template()).unwrap_or_default(),
            serde_json::to_value(new.template()).unwrap_or_default(),
        );
        let mut fields = Vec::new();
        for section in ["metadata", "spec"] {
            let (os, ns) = (&o[section], &n[section]);
            let keys: std::collections::BTreeSet<&String> = os
                .as_object()
                .into_iter()
                .chain(ns.as_object())
                .flat_map(|m| m.keys())
                .collect();
            for k in keys {
                if os.get(k) != ns.get(k) {
                    fields.push(format!("{section}.{k}"));
                }
            }
        }
        if !fields.is_empty() {
            out.push(format!("pod template {}", fields.join(" ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(image: &str, env: serde_json::Value) -> Workload {
        Workload::from_value(&json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": image, "env": env}]}}}
        }))
        .unwrap()
        .unwrap()
    }

    #[test]
    fn image_change_reads_like_the_spec() {
        let a = Actor {
            username: "alice".into(),
            field_manager: Some("kubectl-set".into()),
        };
        let old = deploy("shop/web:1.4.2", json!([]));
        let new = deploy("shop/web:1.5.0", json!([]));
        assert_eq!(
            describe(Some(&old), &new, &a),
            "alice: image web=shop/web:1.5.0 (was 1.4.2) via kubectl-set"
        );
        let moved = deploy("other/web:2", json!([]));
        assert_eq!(
            describe(Some(&old), &moved, &a),
            "alice: image web=other/web:2 (was shop/web:1.4.2) via kubectl-set"
        );
        let reg = deploy("reg:5000/web:2", json!([]));
        let reg_old = deploy("reg:5000/web:1", json!([]));
        assert!(describe(Some(&reg_old), &reg, &a).contains("(was 1)"));
    }

    #[test]
    fn env_and_create() {
        let a = Actor {
            username: "bob".into(),
            field_manager: None,
        };
        let old = deploy(
            "w:1",
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "1"}]),
        );
        let new = deploy(
            "w:1",
            json!([{"name": "A", "value": "2"}, {"name": "C", "value": "1"}]),
        );
        assert_eq!(describe(Some(&old), &new, &a), "bob: env web: ~A +C -B");
        assert_eq!(describe(None, &new, &a), "bob: create with image web=w:1");
        assert!(template_changed(&old, &new));
        assert!(!template_changed(&old, &old));
    }
}
