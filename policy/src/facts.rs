//! What the rules may know about a workload's surroundings: the other files of an audit, or
//! the cluster's caches in the webhook and the plugin.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::workload::Workload;

/// What is known about the workload's surroundings (other files in an audit, or the cluster).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// A HorizontalPodAutoscaler targets the workload (RS405 does not apply).
    pub autoscaled: bool,
    /// Whether a PodDisruptionBudget selects the workload's pods; `None` when unknown (RS601 is skipped).
    pub pdb_covered: Option<bool>,
}

impl Facts {
    /// The facts for `w` from what its namespace holds: the selectors of its
    /// PodDisruptionBudgets and the (kind, name) scale targets of its HPAs.
    pub fn gather<'a>(
        w: &Workload,
        pdb_selectors: impl IntoIterator<Item = &'a LabelSelector>,
        hpa_targets: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Facts {
        let autoscaled = hpa_targets
            .into_iter()
            .any(|(kind, name)| kind == w.kind().as_str() && name == w.name());
        Facts::from_lookups(w, Some(autoscaled), |labels| {
            Some(
                pdb_selectors
                    .into_iter()
                    .any(|s| crate::selector::selector_matches(s, labels)),
            )
        })
    }

    /// The facts for `w` from lookups that may not know: whether an HPA targets it, and
    /// whether a PDB selects pods with given labels. RS601 is only asked of workloads that run
    /// (or may scale to) several replicas, so `pdb_covers` is only called for those.
    pub fn from_lookups(
        w: &Workload,
        autoscaled: Option<bool>,
        pdb_covers: impl FnOnce(&BTreeMap<String, String>) -> Option<bool>,
    ) -> Facts {
        let autoscaled = autoscaled.unwrap_or(false);
        let multi = autoscaled || w.replicas().is_some_and(|r| r >= 2);
        Facts {
            autoscaled,
            pdb_covered: if multi {
                pdb_covers(&w.pod_labels())
            } else {
                None
            },
        }
    }
}
