//! The object store: every object by type, namespace and name, one resourceVersion counter for
//! all of them (as etcd has), and the log of every change (the source of watches and of the
//! traffic history).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::resources::{self, ResourceType};
use crate::time;

/// Why the store refused an object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("unknown resource {0:?} (the stand-in serves: {served})", served = resources::served())]
    UnknownResource(String),
    #[error("a {0} must be a JSON object")]
    NotAnObject(&'static str),
    #[error("a {0} needs metadata.name or metadata.generateName")]
    NoName(&'static str),
    #[error(
        "resourceVersion {wanted} is behind the store's {current}: resource versions only grow"
    )]
    Backwards { wanted: u64, current: u64 },
    #[error("{resource} {namespace}/{name} not found")]
    NotFound {
        resource: &'static str,
        namespace: String,
        name: String,
    },
}

/// What a watch event says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watches report it.
#[derive(Debug, Clone)]
pub struct Change {
    pub resource_version: u64,
    pub resource: &'static ResourceType,
    pub event: EventType,
    /// The object after the change (for a deletion: as it was, with the deletion's
    /// resourceVersion), with `apiVersion` and `kind`.
    pub object: Value,
    /// The object before the change, if it existed.
    pub previous: Option<Value>,
}

impl Change {
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }

    pub fn namespace(&self) -> &str {
        self.object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
    }
}

type Key = (&'static str, String, String);

/// All objects of the stand-in cluster.
#[derive(Debug)]
pub struct Store {
    default_namespace: String,
    resource_version: u64,
    objects: BTreeMap<Key, Value>,
    log: Vec<Change>,
    uids: u64,
    names: u64,
}

/// `rt` and the object with `apiVersion` and `kind` set, as single objects are served.
pub fn with_kind(rt: &ResourceType, mut object: Value) -> Value {
    if let Some(m) = object.as_object_mut() {
        m.insert("apiVersion".into(), json!(rt.api_version()));
        m.insert("kind".into(), json!(rt.kind));
    }
    object
}

/// The object without `apiVersion` and `kind`, as it is stored (and listed).
pub fn without_kind(mut object: Value) -> Value {
    if let Some(m) = object.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    object
}

/// The resource type with this plural, or an error naming the ones served.
pub fn resource(plural: &str) -> Result<&'static ResourceType, StoreError> {
    resources::by_plural(plural).ok_or_else(|| StoreError::UnknownResource(plural.to_owned()))
}

/// `metadata.name` of an object, `""` if it has none.
pub fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// `metadata.uid` of an object, `""` if it has none.
pub fn uid_of(object: &Value) -> &str {
    object["metadata"]["uid"].as_str().unwrap_or_default()
}

/// The uid of the owner that controls `object` (`ownerReferences[].controller`), if any.
pub fn controller_uid(object: &Value) -> Option<&str> {
    object["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)?["uid"]
        .as_str()
}

impl Store {
    /// An empty store; objects without a namespace go into `default_namespace`.
    pub fn new(default_namespace: &str) -> Store {
        Store {
            default_namespace: default_namespace.to_owned(),
            resource_version: 0,
            objects: BTreeMap::new(),
            log: Vec::new(),
            uids: 0,
            names: 0,
        }
    }

    pub fn default_namespace(&self) -> &str {
        &self.default_namespace
    }

    /// The resourceVersion of the last change.
    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    /// Makes the next change get resourceVersion `rv + 1` (as if the cluster had a history).
    pub fn advance_resource_version_to(&mut self, rv: u64) -> Result<(), StoreError> {
        if rv < self.resource_version {
            return Err(StoreError::Backwards {
                wanted: rv,
                current: self.resource_version,
            });
        }
        self.resource_version = rv;
        Ok(())
    }

    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<&Value> {
        let rt = resources::by_plural(resource)?;
        self.objects
            .get(&(rt.plural, scope(rt, namespace), name.to_owned()))
    }

    /// Objects of a type, in `namespace` or (with `None`) all namespaces, by namespace and name.
    pub fn list<'a>(
        &'a self,
        resource: &str,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        // Keys sort by type first: only that type's range is walked (and with a namespace,
        // only that namespace's).
        let plural = resources::by_plural(resource).map_or("", |r| r.plural);
        let start = (
            plural,
            namespace.unwrap_or_default().to_owned(),
            String::new(),
        );
        self.objects
            .range(start..)
            .take_while(move |((r, ns, _), _)| {
                *r == plural && namespace.is_none_or(|want| ns == want)
            })
            .filter(move |_| !plural.is_empty())
            .map(|(_, v)| v)
    }

    /// Objects of a type in `namespace` that `owner_uid` controls.
    pub fn controlled_by<'a>(
        &'a self,
        resource: &str,
        namespace: &'a str,
        owner_uid: &'a str,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        self.list(resource, Some(namespace))
            .filter(move |o| controller_uid(o) == Some(owner_uid))
    }

    /// The uids of every stored object.
    pub fn uids(&self) -> BTreeSet<&str> {
        self.objects.values().map(uid_of).collect()
    }

    /// Every change so far, oldest first.
    pub fn log(&self) -> &[Change] {
        &self.log
    }

    /// The changes after resourceVersion `rv`.
    pub fn changes_since(&self, rv: u64) -> &[Change] {
        let from = self.log.partition_point(|c| c.resource_version <= rv);
        &self.log[from..]
    }

    /// Stores `object` as the new state of its `resource` (creating it if new) and logs the
    /// change. An object equal to the stored one but for its resourceVersion changes nothing
    /// (as the API server skips no-op writes): returns whether it changed anything.
    ///
    /// Filled in when missing: the name from `generateName`, the namespace, `uid` and
    /// `creationTimestamp` (kept from the stored object when there is one); `generation`
    /// counts changes of `spec` for the types that have one.
    pub fn put(&mut self, resource: &str, object: Value) -> Result<bool, StoreError> {
        let rt = self::resource(resource)?;
        let mut object = without_kind(object);
        if !object.is_object() {
            return Err(StoreError::NotAnObject(rt.kind));
        }
        let meta = &mut object["metadata"];
        if !meta.is_object() {
            *meta = json!({});
        }
        if meta["name"].as_str().is_none_or(str::is_empty) {
            let Some(prefix) = meta["generateName"].as_str().map(str::to_owned) else {
                return Err(StoreError::NoName(rt.kind));
            };
            let suffix = self.name_suffix();
            object["metadata"]["name"] = json!(format!("{prefix}{suffix}"));
        }
        let namespace = if rt.namespaced {
            let ns = object["metadata"]["namespace"]
                .as_str()
                .filter(|ns| !ns.is_empty())
                .unwrap_or(&self.default_namespace)
                .to_owned();
            object["metadata"]["namespace"] = json!(ns);
            ns
        } else {
            if let Some(m) = object["metadata"].as_object_mut() {
                m.remove("namespace");
            }
            String::new()
        };
        let key = (rt.plural, namespace, name_of(&object).to_owned());
        let previous = self.objects.get(&key).cloned();
        if let Some(old) = &previous {
            if same_but_version(old, &object) {
                return Ok(false);
            }
            for field in KEPT_FIELDS {
                if object["metadata"][field].is_null() {
                    object["metadata"][field] = old["metadata"][field].clone();
                }
            }
            if rt.has_generation && old["spec"] != object["spec"] {
                let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
                object["metadata"]["generation"] = json!(generation);
                // The DaemonSet strategy's PrepareForUpdate: a new template gets the new
                // generation as its template generation, in the same write.
                if rt.plural == "daemonsets"
                    && old["spec"]["template"] != object["spec"]["template"]
                {
                    object["metadata"]["annotations"][DAEMONSET_TEMPLATE_GENERATION] =
                        json!(generation.to_string());
                }
            }
        } else if rt.has_generation && object["metadata"]["generation"].is_null() {
            object["metadata"]["generation"] = json!(1);
        }
        if object["metadata"]["uid"].is_null() {
            object["metadata"]["uid"] = json!(self.new_uid());
        }
        if object["metadata"]["creationTimestamp"].is_null() {
            object["metadata"]["creationTimestamp"] = json!(time::format(time::now()));
        }
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        self.log.push(Change {
            resource_version: self.resource_version,
            resource: rt,
            event: if previous.is_some() {
                EventType::Modified
            } else {
                EventType::Added
            },
            object: with_kind(rt, object.clone()),
            previous: previous.map(|p| with_kind(rt, p)),
        });
        self.objects.insert(key, object);
        Ok(true)
    }

    /// Stores the object again with a new resourceVersion although nothing changed (what a
    /// write that only touches managed fields does): for seeding a known resourceVersion.
    pub fn rewrite(
        &mut self,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Result<u64, StoreError> {
        let rt = self::resource(resource)?;
        let key = (rt.plural, scope(rt, namespace), name.to_owned());
        let Some(object) = self.objects.get_mut(&key) else {
            return Err(StoreError::NotFound {
                resource: rt.plural,
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            });
        };
        let previous = object.clone();
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        self.log.push(Change {
            resource_version: self.resource_version,
            resource: rt,
            event: EventType::Modified,
            object: with_kind(rt, object.clone()),
            previous: Some(with_kind(rt, previous)),
        });
        Ok(self.resource_version)
    }

    /// Removes an object and logs its deletion; returns it as it was.
    pub fn delete(
        &mut self,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Value>, StoreError> {
        let rt = self::resource(resource)?;
        let Some(object) = self
            .objects
            .remove(&(rt.plural, scope(rt, namespace), name.to_owned()))
        else {
            return Ok(None);
        };
        self.resource_version += 1;
        let mut gone = with_kind(rt, object.clone());
        gone["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        self.log.push(Change {
            resource_version: self.resource_version,
            resource: rt,
            event: EventType::Deleted,
            object: gone,
            previous: Some(with_kind(rt, object.clone())),
        });
        Ok(Some(object))
    }

    /// A fresh uid.
    pub fn new_uid(&mut self) -> String {
        self.uids += 1;
        format!("00000000-0000-4000-8000-{:012}", self.uids)
    }

    /// A fresh five-character suffix for generated names, from the alphabet the API server uses.
    pub fn name_suffix(&mut self) -> String {
        self.names += 1;
        encode_safe(self.names.wrapping_mul(0x9e37_79b9_7f4a_7c15), 5)
    }

    /// Pods of a Deployment, through the ReplicaSets it controls.
    pub fn pods_of_deployment(&self, namespace: &str, deployment: &str) -> Vec<Value> {
        let Some(d) = self.get("deployments", namespace, deployment) else {
            return Vec::new();
        };
        let rs_uids: Vec<&str> = self
            .controlled_by("replicasets", namespace, uid_of(d))
            .map(uid_of)
            .collect();
        self.list("pods", Some(namespace))
            .filter(|p| controller_uid(p).is_some_and(|u| rs_uids.contains(&u)))
            .cloned()
            .collect()
    }
}

fn scope(rt: &ResourceType, namespace: &str) -> String {
    if rt.namespaced {
        namespace.to_owned()
    } else {
        String::new()
    }
}

/// Metadata a write may leave out: it is kept from the stored object.
const KEPT_FIELDS: [&str; 3] = ["uid", "creationTimestamp", "generation"];

fn same_but_version(a: &Value, b: &Value) -> bool {
    let mut a = a.clone();
    let mut b = b.clone();
    for v in [&mut a, &mut b] {
        if let Some(m) = v["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
    }
    for field in KEPT_FIELDS {
        if b["metadata"][field].is_null() {
            b["metadata"][field] = a["metadata"][field].clone();
        }
    }
    a == b
}

/// `n` characters of `value` in the alphabet Kubernetes uses for generated names and hashes
/// (no vowels, no confusable digits).
/// The template generation of a DaemonSet, which the API server keeps.
const DAEMONSET_TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

pub fn encode_safe(mut value: u64, n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..n)
        .map(|_| {
            let c = ALPHABET[(value % ALPHABET.len() as u64) as usize] as char;
            value /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_fills_in_and_logs_and_skips_no_ops() {
        let mut s = Store::new("api");
        assert!(
            s.put(
                "deployments",
                json!({"metadata": {"name": "a"}, "spec": {"replicas": 1}})
            )
            .unwrap()
        );
        let a = s.get("deployments", "api", "a").unwrap().clone();
        assert_eq!(a["metadata"]["resourceVersion"], "1");
        assert_eq!(a["metadata"]["generation"], 1);
        assert!(a["metadata"]["uid"].is_string() && a.get("kind").is_none());
        // The same object again: nothing happens.
        assert!(!s.put("deployments", a.clone()).unwrap());
        assert_eq!(s.resource_version(), 1);
        // A spec change counts a generation; a metadata change does not.
        let mut b = a.clone();
        b["spec"]["replicas"] = json!(2);
        assert!(s.put("deployments", b).unwrap());
        let mut c = s.get("deployments", "api", "a").unwrap().clone();
        assert_eq!(c["metadata"]["generation"], 2);
        c["metadata"]["labels"] = json!({"x": "y"});
        s.put("deployments", c).unwrap();
        assert_eq!(
            s.get("deployments", "api", "a").unwrap()["metadata"]["generation"],
            2
        );
        let events: Vec<&str> = s.log().iter().map(|c| c.event.as_str()).collect();
        assert_eq!(events, ["ADDED", "MODIFIED", "MODIFIED"]);
        assert_eq!(s.log()[1].previous.as_ref().unwrap()["spec"]["replicas"], 1);
        assert_eq!(s.log()[1].object["kind"], "Deployment");
        assert_eq!(s.changes_since(2).len(), 1);
    }

    #[test]
    fn generate_name_delete_and_errors() {
        let mut s = Store::new("api");
        s.put(
            "pods",
            json!({"metadata": {"generateName": "web-", "namespace": "other"}}),
        )
        .unwrap();
        let pod = s.list("pods", Some("other")).next().unwrap().clone();
        let name = name_of(&pod).to_owned();
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
        assert_eq!(s.list("pods", Some("api")).count(), 0);
        let gone = s.delete("pods", "other", &name).unwrap().unwrap();
        assert_eq!(name_of(&gone), name);
        assert_eq!(s.log().last().unwrap().event, EventType::Deleted);
        assert_eq!(s.delete("pods", "other", &name).unwrap(), None);
        assert_eq!(
            s.put("widgets", json!({})),
            Err(StoreError::UnknownResource("widgets".into()))
        );
        assert_eq!(
            s.put("pods", json!({"metadata": {}})),
            Err(StoreError::NoName("Pod"))
        );
        assert_eq!(
            s.put("pods", json!([])),
            Err(StoreError::NotAnObject("Pod"))
        );
        assert!(s.advance_resource_version_to(1).is_err());
        s.advance_resource_version_to(399).unwrap();
        s.put(
            "namespaces",
            json!({"metadata": {"name": "x", "namespace": "y"}}),
        )
        .unwrap();
        let ns = s.get("namespaces", "whatever", "x").unwrap();
        assert_eq!(ns["metadata"]["resourceVersion"], "400");
        assert!(ns["metadata"].get("namespace").is_none());
        assert_eq!(s.rewrite("namespaces", "", "x").unwrap(), 401);
    }
}
