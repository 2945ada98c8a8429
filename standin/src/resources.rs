//! The resource types the stand-in serves: where they live in the API and what they are called.

/// One served resource type.
#[derive(Debug, PartialEq, Eq)]
pub struct ResourceType {
    /// The plural in URLs, e.g. `deployments`.
    pub plural: &'static str,
    /// The API group, `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    /// Has a `status` subresource: writes to the object itself leave `status` alone.
    pub has_status: bool,
    /// `metadata.generation` counts changes of `spec`.
    pub has_generation: bool,
    /// Has a `scale` subresource.
    pub has_scale: bool,
}

impl ResourceType {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, or `pods` for the core group: how the server names it in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// The URL of a collection of this type in `namespace` (all namespaces with `None`).
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace {
            Some(ns) if self.namespaced => format!("{base}/namespaces/{ns}/{}", self.plural),
            _ => format!("{base}/{}", self.plural),
        }
    }
}

macro_rules! resource {
    ($name:ident, $plural:literal, $group:literal, $version:literal, $kind:literal, namespaced: $ns:literal, status: $st:literal, generation: $gen:literal, scale: $scale:literal) => {
        pub static $name: ResourceType = ResourceType {
            plural: $plural,
            group: $group,
            version: $version,
            kind: $kind,
            namespaced: $ns,
            has_status: $st,
            has_generation: $gen,
            has_scale: $scale,
        };
    };
}

resource!(DEPLOYMENTS, "deployments", "apps", "v1", "Deployment", namespaced: true, status: true, generation: true, scale: true);
resource!(REPLICASETS, "replicasets", "apps", "v1", "ReplicaSet", namespaced: true, status: true, generation: true, scale: true);
resource!(STATEFULSETS, "statefulsets", "apps", "v1", "StatefulSet", namespaced: true, status: true, generation: true, scale: true);
resource!(DAEMONSETS, "daemonsets", "apps", "v1", "DaemonSet", namespaced: true, status: true, generation: true, scale: false);
resource!(CONTROLLERREVISIONS, "controllerrevisions", "apps", "v1", "ControllerRevision", namespaced: true, status: false, generation: false, scale: false);
resource!(PODS, "pods", "", "v1", "Pod", namespaced: true, status: true, generation: false, scale: false);
resource!(EVENTS, "events", "", "v1", "Event", namespaced: true, status: false, generation: false, scale: false);
resource!(SERVICES, "services", "", "v1", "Service", namespaced: true, status: true, generation: false, scale: false);
resource!(CONFIGMAPS, "configmaps", "", "v1", "ConfigMap", namespaced: true, status: false, generation: false, scale: false);
resource!(NAMESPACES, "namespaces", "", "v1", "Namespace", namespaced: false, status: true, generation: false, scale: false);
resource!(ENDPOINTSLICES, "endpointslices", "discovery.k8s.io", "v1", "EndpointSlice", namespaced: true, status: false, generation: false, scale: false);
resource!(PODDISRUPTIONBUDGETS, "poddisruptionbudgets", "policy", "v1", "PodDisruptionBudget", namespaced: true, status: true, generation: true, scale: false);
resource!(HORIZONTALPODAUTOSCALERS, "horizontalpodautoscalers", "autoscaling", "v2", "HorizontalPodAutoscaler", namespaced: true, status: true, generation: false, scale: false);

/// Every served type.
pub static ALL: [&ResourceType; 13] = [
    &DEPLOYMENTS,
    &REPLICASETS,
    &STATEFULSETS,
    &DAEMONSETS,
    &CONTROLLERREVISIONS,
    &PODS,
    &EVENTS,
    &SERVICES,
    &CONFIGMAPS,
    &NAMESPACES,
    &ENDPOINTSLICES,
    &PODDISRUPTIONBUDGETS,
    &HORIZONTALPODAUTOSCALERS,
];

// Custom resources: served only by a stand-in built with their CRD (`StandinBuilder::crd`);
// any other answers 404, as a cluster without the CRD does.
resource!(POLICYREPORTS, "policyreports", "wgpolicyk8s.io", "v1alpha2", "PolicyReport", namespaced: true, status: false, generation: false, scale: false);
resource!(OPENREPORTS, "reports", "openreports.io", "v1alpha1", "Report", namespaced: true, status: false, generation: false, scale: false);

/// The custom resource types a stand-in can be built with.
pub static CUSTOM: [&ResourceType; 2] = [&POLICYREPORTS, &OPENREPORTS];

impl ResourceType {
    /// A custom resource: served only when the stand-in has its CRD.
    pub fn is_custom(&self) -> bool {
        CUSTOM.iter().any(|c| std::ptr::eq(*c, self))
    }

    /// `<plural>.<group>`: the name of its CustomResourceDefinition.
    pub fn crd_name(&self) -> String {
        format!("{}.{}", self.plural, self.group)
    }
}

/// Every type the stand-in knows, custom resources last.
fn known() -> impl Iterator<Item = &'static ResourceType> {
    ALL.iter().chain(CUSTOM.iter()).copied()
}

/// The served type with this plural.
pub fn by_plural(plural: &str) -> Option<&'static ResourceType> {
    known().find(|r| r.plural == plural)
}

/// The served type with this kind (as in `ownerReferences`).
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    ALL.iter()
        .copied()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// The served type at `/apis/<group>/<version>/…/<plural>` (`group` empty for `/api/<version>`).
pub fn by_path(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    known().find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The plurals served, for messages.
pub fn served() -> String {
    ALL.iter().map(|r| r.plural).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert_eq!(DEPLOYMENTS.qualified(), "deployments.apps");
        assert_eq!(PODS.qualified(), "pods");
        assert_eq!(
            DEPLOYMENTS.collection_path(Some("api")),
            "/apis/apps/v1/namespaces/api/deployments"
        );
        assert_eq!(PODS.collection_path(None), "/api/v1/pods");
        assert_eq!(NAMESPACES.collection_path(Some("x")), "/api/v1/namespaces");
        assert_eq!(by_path("apps", "v1", "deployments"), Some(&DEPLOYMENTS));
        assert_eq!(by_path("apps", "v1", "pods"), None, "pods are not in apps");
        assert_eq!(by_kind("apps/v1", "ReplicaSet"), Some(&REPLICASETS));
        assert_eq!(ENDPOINTSLICES.list_kind(), "EndpointSliceList");
    }

    #[test]
    fn custom_resources() {
        assert_eq!(
            by_path("wgpolicyk8s.io", "v1alpha2", "policyreports"),
            Some(&POLICYREPORTS)
        );
        assert_eq!(by_plural("reports"), Some(&OPENREPORTS));
        assert!(POLICYREPORTS.is_custom() && !DEPLOYMENTS.is_custom());
        assert_eq!(OPENREPORTS.crd_name(), "reports.openreports.io");
    }
}
