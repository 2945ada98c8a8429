//! The second Deployment both strategies run beside the original one (the idle colour, the
//! canary): the source's spec with a derived pod template and one extra label in its selector
//! and pods, so the two Deployments never fight over pods while a Service's base selector still
//! matches both.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodTemplateSpec;

use super::edit::{EditError, ImageSet, edit};
use super::schema::set_annotation;
use crate::change_cause::CHANGE_CAUSE_ANNOTATION;
use crate::gitops::{Tracking, strip_ownership};
use crate::judge::{equal_ignore_hash, normalized_template};
use crate::selector::{map_text, selector_matches};

/// Why a sibling Deployment cannot be made or reused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiblingError {
    #[error(transparent)]
    Edit(#[from] EditError),
    /// An existing Deployment whose selector would not select the pods it would run.
    #[error("deployment/{name}'s selector does not select the pods it would run (labels {}); it cannot be reused", map_text(.labels))]
    SelectorMismatch {
        name: String,
        labels: BTreeMap<String, String>,
    },
}

/// A pod template's labels.
pub fn template_labels(t: &PodTemplateSpec) -> BTreeMap<String, String> {
    t.metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

fn set_label(t: &mut PodTemplateSpec, key: &str, value: &str) {
    t.metadata
        .get_or_insert_default()
        .labels
        .get_or_insert_default()
        .insert(key.to_owned(), value.to_owned());
}

/// Whether the Deployment's selector selects its own template (else the API server would
/// refuse it: `selector does not match template labels`).
pub fn selects_template(d: &Deployment) -> bool {
    selector_matches(&d.spec.selector, &template_labels(&d.spec.template))
}

/// The source's pod template with `images` and the label `key=value` (`pod-template-hash`
/// dropped).
pub fn derived_template(
    source: &Deployment,
    images: &[ImageSet],
    key: &str,
    value: &str,
) -> Result<PodTemplateSpec, EditError> {
    let mut t = normalized_template(&edit(source, images, &[])?.spec.template);
    set_label(&mut t, key, value);
    Ok(t)
}

/// A new Deployment beside `source` (the active colour, or the stable one): its spec with the
/// derived template, its selector plus `key=value`, `replicas`, its labels and `annotations`.
/// Never the source's GitOps ownership labels (`tracking`): a Deployment that is not in Git
/// must not join the application, or Argo CD's auto-prune would delete the very Deployment
/// serving traffic. (The pod template keeps its labels: pods are owned by the Deployment, and
/// the Service's selector may use them.)
pub fn sibling_deployment(
    source: &Deployment,
    name: &str,
    template: PodTemplateSpec,
    (key, value): (&str, &str),
    replicas: i32,
    annotations: &[(&str, &str)],
    tracking: &Tracking,
) -> Deployment {
    let mut spec = source.spec.clone();
    spec.template = template;
    spec.replicas = Some(replicas);
    spec.paused = None;
    spec.selector
        .match_labels
        .get_or_insert_default()
        .insert(key.to_owned(), value.to_owned());
    let mut d = Deployment {
        spec,
        ..Deployment::default()
    };
    d.metadata.name = Some(name.to_owned());
    d.metadata.labels = source.metadata.labels.clone();
    strip_ownership(&mut d.metadata, tracking);
    for (k, v) in annotations {
        set_annotation(&mut d, k, Some(v));
    }
    d
}

/// `existing` (the idle colour, or a canary left from before) made to run `template` at
/// `replicas`, with `annotations` (`None` removes) and `cause` as its change-cause when the
/// template changes. `None` when nothing changes.
pub fn refreshed_deployment(
    existing: &Deployment,
    template: &PodTemplateSpec,
    replicas: i32,
    annotations: &[(&str, Option<&str>)],
    cause: &str,
) -> Result<Option<Deployment>, SiblingError> {
    let mut d = existing.clone();
    let template_changed = !equal_ignore_hash(&d.spec.template, template);
    d.spec.template = template.clone();
    d.spec.replicas = Some(replicas);
    for (k, v) in annotations {
        set_annotation(&mut d, k, *v);
    }
    if template_changed {
        set_annotation(&mut d, CHANGE_CAUSE_ANNOTATION, Some(cause));
    }
    if !selects_template(&d) {
        return Err(SiblingError::SelectorMismatch {
            name: d.metadata.name.clone().unwrap_or_default(),
            labels: template_labels(template),
        });
    }
    Ok((d != *existing).then_some(d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::REVISION_ANNOTATION;
    use crate::selector::map_selects;
    use crate::strategy::edit::template_images;
    use crate::strategy::schema::{COLOR_LABEL, ann, annotation};
    use serde_json::json;

    fn imgs(s: &[(&str, &str)]) -> Vec<ImageSet> {
        s.iter()
            .map(|(c, i)| ImageSet {
                container: (*c).into(),
                image: (*i).into(),
            })
            .collect()
    }

    pub(crate) fn shop() -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "shop", "namespace": "default", "resourceVersion": "7", "uid": "u1",
                "labels": {"team": "x"},
                "annotations": {"deployment.kubernetes.io/revision": "3", "kubernetes.io/change-cause": "old"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "shop"}},
                "template": {"metadata": {"labels": {"app": "shop"}},
                    "spec": {"containers": [{"name": "app", "image": "shop:1"}]}}},
            "status": {"replicas": 3}
        }))
        .unwrap()
    }

    #[test]
    fn green_beside_blue() {
        let blue = shop();
        let t = derived_template(&blue, &imgs(&[("app", "shop:2")]), COLOR_LABEL, "green").unwrap();
        let g = sibling_deployment(
            &blue,
            "shop-green",
            t,
            (COLOR_LABEL, "green"),
            3,
            &[(ann::COLOR, "green")],
            &Tracking::default(),
        );
        assert_eq!(g.metadata.name.as_deref(), Some("shop-green"));
        assert!(
            g.metadata.resource_version.is_none() && g.metadata.uid.is_none() && g.status.is_none()
        );
        assert_eq!(annotation(&g, ann::COLOR), Some("green"));
        assert_eq!(annotation(&g, REVISION_ANNOTATION), None);
        assert_eq!(
            map_text(g.spec.selector.match_labels.as_ref().unwrap()),
            "app=shop,rollout-safe.dev/color=green"
        );
        assert!(selects_template(&g));
        // The Service's base selector still matches the green pods.
        assert!(map_selects(
            &BTreeMap::from([("app".into(), "shop".into())]),
            &template_labels(&g.spec.template)
        ));
        assert_eq!(
            template_images(&g.spec.template),
            [("app".to_string(), "shop:2".to_string())]
        );
        // An unknown container is refused.
        assert!(matches!(
            derived_template(&blue, &imgs(&[("web", "x")]), COLOR_LABEL, "green"),
            Err(EditError::UnknownContainer { .. })
        ));
    }

    #[test]
    fn siblings_never_carry_gitops_ownership() {
        use crate::gitops::{self, owner};
        let mut blue = shop();
        let tracking = Tracking::with_label("example.com/app");
        let labels = blue.metadata.labels.get_or_insert_default();
        for k in [
            gitops::ARGOCD_DEFAULT_TRACKING_LABEL,
            "example.com/app",
            gitops::FLUX_KUSTOMIZE_NAME,
            gitops::FLUX_KUSTOMIZE_NAMESPACE,
            gitops::FLUX_HELM_NAME,
            gitops::FLUX_HELM_NAMESPACE,
        ] {
            labels.insert(k.into(), "shop".into());
        }
        // A pod template label the Service may select on is kept.
        set_label(
            &mut blue.spec.template,
            gitops::ARGOCD_DEFAULT_TRACKING_LABEL,
            "shop",
        );
        blue.metadata.annotations.get_or_insert_default().insert(
            gitops::ARGOCD_TRACKING_ID.into(),
            "shop:apps/Deployment:default/shop".into(),
        );
        assert!(owner(&blue.metadata, &tracking).is_some());
        let t = derived_template(&blue, &imgs(&[("app", "shop:2")]), COLOR_LABEL, "green").unwrap();
        let g = sibling_deployment(
            &blue,
            "shop-green",
            t,
            (COLOR_LABEL, "green"),
            3,
            &[(ann::COLOR, "green")],
            &tracking,
        );
        assert_eq!(owner(&g.metadata, &tracking), None);
        assert_eq!(owner(&g.metadata, &Tracking::default()), None);
        assert_eq!(
            g.metadata.labels,
            Some(BTreeMap::from([("team".into(), "x".into())]))
        );
        assert_eq!(annotation(&g, gitops::ARGOCD_TRACKING_ID), None);
        assert_eq!(annotation(&g, ann::COLOR), Some("green"));
        assert_eq!(
            template_labels(&g.spec.template).get(gitops::ARGOCD_DEFAULT_TRACKING_LABEL),
            Some(&"shop".to_owned())
        );
    }

    #[test]
    fn refreshing_the_idle_colour() {
        let blue = shop();
        let t = derived_template(&blue, &imgs(&[("app", "shop:3")]), COLOR_LABEL, "blue").unwrap();
        let d = refreshed_deployment(&blue, &t, 4, &[(ann::RESTORE_REPLICAS, None)], "cause")
            .unwrap()
            .unwrap();
        assert_eq!(d.spec.replicas, Some(4));
        assert_eq!(annotation(&d, CHANGE_CAUSE_ANNOTATION), Some("cause"));
        assert!(
            refreshed_deployment(&d, &t, 4, &[], "cause")
                .unwrap()
                .is_none()
        );
        // A Deployment whose selector cannot select the template is refused.
        let mut odd = blue.clone();
        odd.spec.selector.match_labels = Some(BTreeMap::from([("app".into(), "other".into())]));
        let e = refreshed_deployment(&odd, &t, 4, &[], "c").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("deployment/shop's selector does not select the pods it would run"),
            "{e}"
        );
    }
}
