//! GitOps ownership: whether a workload is kept in step with Git by Argo CD or Flux, which
//! revert whatever `update`, `undo`, `blue-green` and `canary` write (and, with Argo CD's
//! label tracking, adopt and prune the Deployments they create). Those commands refuse such a
//! workload unless told otherwise; the objects the plugin creates never carry these keys.
//!
//! Recognised owners:
//! - Argo CD: the annotation `argocd.argoproj.io/tracking-id` (annotation tracking, the default
//!   since 3.0), or the tracking label (`app.kubernetes.io/instance` unless configured; label
//!   tracking, the default before 3.0);
//! - Flux: `kustomize.toolkit.fluxcd.io/name` + `/namespace` (a Kustomization), and
//!   `helm.toolkit.fluxcd.io/name` + `/namespace` (a HelmRelease).
//!
//! A plain Helm release (`app.kubernetes.io/managed-by: Helm`, `meta.helm.sh/release-name`)
//! does not revert drift and is not an owner, although Helm charts set `app.kubernetes.io/instance`
//! to the release name: that label counts as Argo CD's only when it differs from the release.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Argo CD's tracking annotation (annotation tracking, the default since Argo CD 3.0).
pub const ARGOCD_TRACKING_ID: &str = "argocd.argoproj.io/tracking-id";
/// Argo CD's tracking label by default (label tracking, the default before 3.0).
pub const ARGOCD_DEFAULT_TRACKING_LABEL: &str = "app.kubernetes.io/instance";
/// Flux's labels on what a Kustomization applied.
pub const FLUX_KUSTOMIZE_NAME: &str = "kustomize.toolkit.fluxcd.io/name";
pub const FLUX_KUSTOMIZE_NAMESPACE: &str = "kustomize.toolkit.fluxcd.io/namespace";
/// Flux's labels on what a HelmRelease installed.
pub const FLUX_HELM_NAME: &str = "helm.toolkit.fluxcd.io/name";
pub const FLUX_HELM_NAMESPACE: &str = "helm.toolkit.fluxcd.io/namespace";
/// The annotation `helm install` puts on every object of a release.
pub const HELM_RELEASE_NAME: &str = "meta.helm.sh/release-name";

/// The command-line flag that lets a command act on a GitOps-owned workload anyway.
pub const ALLOW_FLAG: &str = "--allow-gitops-owned";

/// How Argo CD tracks its resources here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracking {
    /// Argo CD's tracking label (`application.resourceTrackingMethod: label`, key set by
    /// `application.instanceLabelKey`); `None` when label tracking is not in use.
    pub argocd_label: Option<String>,
}

impl Default for Tracking {
    fn default() -> Self {
        Tracking {
            argocd_label: Some(ARGOCD_DEFAULT_TRACKING_LABEL.to_owned()),
        }
    }
}

impl Tracking {
    /// From a flag's value: empty turns label tracking off.
    pub fn with_label(label: &str) -> Tracking {
        let label = label.trim();
        Tracking {
            argocd_label: (!label.is_empty()).then(|| label.to_owned()),
        }
    }

    /// The label keys that make an object part of a GitOps application (never copied onto an
    /// object the plugin creates).
    pub fn ownership_labels(&self) -> Vec<&str> {
        let mut keys = vec![
            FLUX_KUSTOMIZE_NAME,
            FLUX_KUSTOMIZE_NAMESPACE,
            FLUX_HELM_NAME,
            FLUX_HELM_NAMESPACE,
        ];
        if let Some(l) = &self.argocd_label {
            keys.push(l);
        }
        if !keys.contains(&ARGOCD_DEFAULT_TRACKING_LABEL) {
            // Another Argo CD instance may still track by the default label.
            keys.push(ARGOCD_DEFAULT_TRACKING_LABEL);
        }
        keys
    }

    /// The annotation keys that make an object part of a GitOps application.
    pub fn ownership_annotations(&self) -> Vec<&str> {
        vec![ARGOCD_TRACKING_ID]
    }
}

/// The GitOps tool that owns a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    ArgoCd,
    FluxKustomization,
    FluxHelmRelease,
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tool::ArgoCd => "Argo CD",
            Tool::FluxKustomization | Tool::FluxHelmRelease => "Flux",
        })
    }
}

/// Who owns a workload, and the key that said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub tool: Tool,
    /// The application, or the Kustomization/HelmRelease as `namespace/name`.
    pub name: String,
    /// What was seen: `label app.kubernetes.io/instance=shop`.
    pub seen: String,
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.tool {
            Tool::ArgoCd => "application",
            Tool::FluxKustomization => "Kustomization",
            Tool::FluxHelmRelease => "HelmRelease",
        };
        write!(f, "{} {what} {:?} ({})", self.tool, self.name, self.seen)
    }
}

fn flux(
    labels: &BTreeMap<String, String>,
    tool: Tool,
    name_key: &str,
    ns_key: &str,
) -> Option<Owner> {
    let name = labels.get(name_key)?;
    let ns = labels.get(ns_key);
    let (name, seen) = match ns {
        Some(ns) => (
            format!("{ns}/{name}"),
            format!("labels {name_key}={name}, {ns_key}={ns}"),
        ),
        None => (name.clone(), format!("label {name_key}={name}")),
    };
    Some(Owner { tool, name, seen })
}

/// The GitOps owner of an object, from its metadata; `None` for anything else (plain Helm
/// releases included).
pub fn owner(meta: &ObjectMeta, tracking: &Tracking) -> Option<Owner> {
    let empty = BTreeMap::new();
    let labels = meta.labels.as_ref().unwrap_or(&empty);
    let annotations = meta.annotations.as_ref().unwrap_or(&empty);
    if let Some(id) = annotations.get(ARGOCD_TRACKING_ID) {
        // `<application>:<group>/<kind>:<namespace>/<name>`
        let app = id.split(':').next().unwrap_or(id);
        return Some(Owner {
            tool: Tool::ArgoCd,
            name: app.to_owned(),
            seen: format!("annotation {ARGOCD_TRACKING_ID}={id}"),
        });
    }
    if let Some(o) = flux(
        labels,
        Tool::FluxKustomization,
        FLUX_KUSTOMIZE_NAME,
        FLUX_KUSTOMIZE_NAMESPACE,
    ) {
        return Some(o);
    }
    if let Some(o) = flux(
        labels,
        Tool::FluxHelmRelease,
        FLUX_HELM_NAME,
        FLUX_HELM_NAMESPACE,
    ) {
        return Some(o);
    }
    let key = tracking.argocd_label.as_deref()?;
    let app = labels.get(key)?;
    // Helm charts set `app.kubernetes.io/instance` to the release name; Argo CD's label
    // tracking overwrites it with the application's name (and renders with `helm template`,
    // which adds no `meta.helm.sh/*` annotations).
    if annotations.get(HELM_RELEASE_NAME) == Some(app) {
        return None;
    }
    Some(Owner {
        tool: Tool::ArgoCd,
        name: app.clone(),
        seen: format!("label {key}={app}"),
    })
}

/// What a command that writes a workload knows about GitOps: how Argo CD tracks, and whether
/// `--allow-gitops-owned` was given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub tracking: Tracking,
    pub allow_owned: bool,
}

impl Settings {
    /// [`check`] with these settings.
    pub fn check(
        &self,
        command: &'static str,
        workload: &str,
        meta: &ObjectMeta,
    ) -> Result<Option<Owner>, Refusal> {
        check(command, workload, meta, &self.tracking, self.allow_owned)
    }
}

/// A command refused because a GitOps tool owns the workload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refusing to {action}: it is managed by {owner}, which reverts what {command} writes at its next sync{why}; change it in Git instead, or pass {ALLOW_FLAG} to {command} it anyway"
)]
pub struct Refusal {
    /// `update deployment/shop`.
    pub action: String,
    /// `update`, `undo`, `blue-green`, `canary`.
    pub command: &'static str,
    pub owner: Owner,
    why: &'static str,
}

/// Whether `command` may act on a workload with this metadata: `Err` names the owner and the
/// key seen, unless `allow` (`--allow-gitops-owned`).
pub fn check(
    command: &'static str,
    workload: &str,
    meta: &ObjectMeta,
    tracking: &Tracking,
    allow: bool,
) -> Result<Option<Owner>, Refusal> {
    let Some(owner) = owner(meta, tracking) else {
        return Ok(None);
    };
    if allow {
        return Ok(Some(owner));
    }
    let why = match (command, owner.tool) {
        ("blue-green", Tool::ArgoCd) => {
            " (and the Service selector the switch sets is drift it may undo, or keep on a version Git does not declare)"
        }
        ("blue-green", _) => {
            " (and the Service selector the switch sets is drift a re-apply leaves pointing at a version Git does not declare)"
        }
        _ => "",
    };
    Err(Refusal {
        action: format!("{command} {workload}"),
        command,
        owner,
        why,
    })
}

/// Removes every GitOps ownership label and annotation from `meta` (an object the plugin
/// creates beside a GitOps-owned one must not become part of the application: Argo CD would
/// prune it, Flux would garbage-collect it).
pub fn strip_ownership(meta: &mut ObjectMeta, tracking: &Tracking) {
    if let Some(labels) = meta.labels.as_mut() {
        for k in tracking.ownership_labels() {
            labels.remove(k);
        }
        if labels.is_empty() {
            meta.labels = None;
        }
    }
    if let Some(annotations) = meta.annotations.as_mut() {
        for k in tracking.ownership_annotations() {
            annotations.remove(k);
        }
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> ObjectMeta {
        let map = |kv: &[(&str, &str)]| {
            (!kv.is_empty()).then(|| {
                kv.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect()
            })
        };
        ObjectMeta {
            labels: map(labels),
            annotations: map(annotations),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn argocd_annotation_tracking() {
        let m = meta(
            &[],
            &[(ARGOCD_TRACKING_ID, "shop-prod:apps/Deployment:shop/web")],
        );
        let o = owner(&m, &Tracking::default()).unwrap();
        assert_eq!(o.tool, Tool::ArgoCd);
        assert_eq!(o.name, "shop-prod");
        assert_eq!(
            o.seen,
            "annotation argocd.argoproj.io/tracking-id=shop-prod:apps/Deployment:shop/web"
        );
        // Whatever the label setting.
        assert!(owner(&m, &Tracking::with_label("")).is_some());
    }

    #[test]
    fn argocd_label_tracking_default_and_configured() {
        let m = meta(&[("app.kubernetes.io/instance", "shop-prod")], &[]);
        let o = owner(&m, &Tracking::default()).unwrap();
        assert_eq!((o.tool, o.name.as_str()), (Tool::ArgoCd, "shop-prod"));
        assert_eq!(o.seen, "label app.kubernetes.io/instance=shop-prod");
        // Label tracking off: not an owner.
        assert_eq!(owner(&m, &Tracking::with_label("")), None);
        // Another key configured: that key counts, the default does not.
        let custom = Tracking::with_label("argocd.argoproj.io/instance");
        assert_eq!(owner(&m, &custom), None);
        let m2 = meta(&[("argocd.argoproj.io/instance", "shop")], &[]);
        assert_eq!(
            owner(&m2, &custom).unwrap().seen,
            "label argocd.argoproj.io/instance=shop"
        );
    }

    #[test]
    fn flux_kustomization_and_helmrelease() {
        let k = meta(
            &[
                (FLUX_KUSTOMIZE_NAME, "apps"),
                (FLUX_KUSTOMIZE_NAMESPACE, "flux-system"),
            ],
            &[],
        );
        let o = owner(&k, &Tracking::default()).unwrap();
        assert_eq!(o.tool, Tool::FluxKustomization);
        assert_eq!(o.name, "flux-system/apps");
        assert_eq!(
            o.seen,
            "labels kustomize.toolkit.fluxcd.io/name=apps, kustomize.toolkit.fluxcd.io/namespace=flux-system"
        );
        let h = meta(
            &[(FLUX_HELM_NAME, "shop"), (FLUX_HELM_NAMESPACE, "shop")],
            &[],
        );
        let o = owner(&h, &Tracking::default()).unwrap();
        assert_eq!(
            (o.tool, o.name.as_str()),
            (Tool::FluxHelmRelease, "shop/shop")
        );
        // The name alone still names the owner.
        let only_name = meta(&[(FLUX_HELM_NAME, "shop")], &[]);
        assert_eq!(
            owner(&only_name, &Tracking::default()).unwrap().seen,
            "label helm.toolkit.fluxcd.io/name=shop"
        );
        // The namespace alone does not.
        assert_eq!(
            owner(
                &meta(&[(FLUX_HELM_NAMESPACE, "shop")], &[]),
                &Tracking::default()
            ),
            None
        );
    }

    #[test]
    fn plain_helm_is_not_an_owner() {
        let helm = meta(
            &[
                ("app.kubernetes.io/managed-by", "Helm"),
                ("app.kubernetes.io/instance", "shop"),
            ],
            &[
                (HELM_RELEASE_NAME, "shop"),
                ("meta.helm.sh/release-namespace", "shop"),
            ],
        );
        assert_eq!(owner(&helm, &Tracking::default()), None);
        assert!(
            check(
                "update",
                "deployment/shop",
                &helm,
                &Tracking::default(),
                false
            )
            .is_ok()
        );
        // Argo CD rendering a chart: its label overwrites the release's name.
        let argo_helm = meta(
            &[
                ("app.kubernetes.io/managed-by", "Helm"),
                ("app.kubernetes.io/instance", "shop-prod"),
            ],
            &[(HELM_RELEASE_NAME, "shop")],
        );
        assert!(owner(&argo_helm, &Tracking::default()).is_some());
        assert_eq!(
            owner(&meta(&[("app", "shop")], &[]), &Tracking::default()),
            None
        );
    }

    #[test]
    fn refusal_names_owner_key_and_flag() {
        let m = meta(
            &[(FLUX_HELM_NAME, "shop"), (FLUX_HELM_NAMESPACE, "apps")],
            &[],
        );
        let e = check("canary", "deployment/shop", &m, &Tracking::default(), false).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("refusing to canary deployment/shop: it is managed by Flux HelmRelease \"apps/shop\" (labels helm.toolkit.fluxcd.io/name=shop, helm.toolkit.fluxcd.io/namespace=apps)"),
            "{text}"
        );
        assert!(
            text.ends_with("or pass --allow-gitops-owned to canary it anyway"),
            "{text}"
        );
        let bg = check(
            "blue-green",
            "deployment/shop",
            &m,
            &Tracking::default(),
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(bg.contains("Service selector"), "{bg}");
        // Allowed: the owner is still reported.
        let allowed = check("update", "deployment/shop", &m, &Tracking::default(), true).unwrap();
        assert_eq!(allowed.unwrap().tool, Tool::FluxHelmRelease);
    }

    #[test]
    fn stripping_removes_every_ownership_key_and_nothing_else() {
        let tracking = Tracking::with_label("team.example/app");
        let mut m = meta(
            &[
                ("app", "shop"),
                ("app.kubernetes.io/instance", "shop"),
                ("team.example/app", "shop"),
                (FLUX_KUSTOMIZE_NAME, "a"),
                (FLUX_KUSTOMIZE_NAMESPACE, "b"),
                (FLUX_HELM_NAME, "c"),
                (FLUX_HELM_NAMESPACE, "d"),
            ],
            &[
                (ARGOCD_TRACKING_ID, "x:apps/Deployment:s/shop"),
                ("note", "kept"),
            ],
        );
        strip_ownership(&mut m, &tracking);
        assert_eq!(
            m.labels,
            Some(BTreeMap::from([("app".to_owned(), "shop".to_owned())]))
        );
        assert_eq!(
            m.annotations,
            Some(BTreeMap::from([("note".to_owned(), "kept".to_owned())]))
        );
        assert_eq!(owner(&m, &tracking), None);
        assert_eq!(owner(&m, &Tracking::default()), None);
    }
}
