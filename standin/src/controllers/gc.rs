//! Garbage collection with background propagation: an object whose owners (of types the
//! stand-in serves) are all gone is deleted, so deleting a Deployment takes its ReplicaSets and
//! then their pods with it.

use super::Controller;
use crate::resources;
use crate::store::{Store, StoreError, name_of};
use crate::time::Timestamp;

pub const NAME: &str = "garbage-collector";

#[derive(Debug, Default)]
pub struct GarbageCollector;

impl Controller for GarbageCollector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn reconcile(&mut self, store: &mut Store, _now: Timestamp) -> Result<(), StoreError> {
        let uids = store.uids();
        let mut orphans = Vec::new();
        for rt in resources::ALL {
            for o in store.list(rt.plural, None) {
                let Some(owners) = o["metadata"]["ownerReferences"].as_array() else {
                    continue;
                };
                let served = owners.iter().all(|r| {
                    resources::by_kind(
                        r["apiVersion"].as_str().unwrap_or_default(),
                        r["kind"].as_str().unwrap_or_default(),
                    )
                    .is_some()
                });
                let gone = owners
                    .iter()
                    .all(|r| r["uid"].as_str().is_none_or(|u| !uids.contains(u)));
                if !owners.is_empty() && served && gone {
                    let ns = o["metadata"]["namespace"].as_str().unwrap_or_default();
                    orphans.push((rt.plural, ns.to_owned(), name_of(o).to_owned()));
                }
            }
        }
        for (resource, ns, name) in orphans {
            store.delete(resource, &ns, &name)?;
        }
        Ok(())
    }
}
