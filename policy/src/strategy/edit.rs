//! The change every strategy makes to a pod template: new images (and, for `update`, env
//! edits), as `kubectl set image` / `set env` would make it.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, EnvVar, PodTemplateSpec};

/// `--image C=IMG` (`*=IMG`: every container).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    pub container: String,
    pub image: String,
}

/// `--env C:K=V` (set) or `--env C:K-` (remove).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvEdit {
    pub container: String,
    pub key: String,
    pub value: Option<String>,
}

/// Why an edit cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// An edit names a container the workload does not have.
    #[error("{flag}: {workload} has no container {container:?} (containers: {})", .containers.join(", "))]
    UnknownContainer {
        /// The edit as given: `--image web=x:1`, `--env web:KEY`.
        flag: String,
        /// `deployment/web`, `statefulset/db`.
        workload: String,
        container: String,
        containers: Vec<String>,
    },
    #[error("the workload's pod template has no spec")]
    NoPodSpec,
}

/// `(container, image)` of a pod template, init containers first.
pub fn template_images(t: &PodTemplateSpec) -> Vec<(String, String)> {
    t.spec
        .iter()
        .flat_map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
        })
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
        .collect()
}

/// `image app=shop/web:1.4.2 side=x:1` (what a template runs).
pub fn images_text(images: &[(String, String)]) -> String {
    if images.is_empty() {
        return "no containers".to_owned();
    }
    let list: Vec<String> = images.iter().map(|(c, i)| format!("{c}={i}")).collect();
    format!("image {}", list.join(" "))
}

/// The requested images as one stable string (`app=shop:2,side=x:1`), for the state annotations.
pub fn images_key(images: &[ImageSet]) -> String {
    let mut v: Vec<String> = images
        .iter()
        .map(|i| format!("{}={}", i.container, i.image))
        .collect();
    v.sort();
    v.dedup();
    v.join(",")
}

/// Whether the template already runs the requested images (`*` = every container).
pub fn runs_images(t: &PodTemplateSpec, images: &[ImageSet]) -> bool {
    let have = template_images(t);
    images.iter().all(|i| {
        let mut matching = have
            .iter()
            .filter(|(c, _)| i.container == "*" || *c == i.container)
            .peekable();
        matching.peek().is_some() && matching.all(|(_, img)| *img == i.image)
    })
}

fn container_names(t: &PodTemplateSpec) -> Vec<String> {
    template_images(t)
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

fn unknown_container(
    workload: &str,
    t: &PodTemplateSpec,
    container: &str,
    flag: String,
) -> EditError {
    EditError::UnknownContainer {
        flag,
        workload: workload.to_owned(),
        container: container.to_owned(),
        containers: container_names(t),
    }
}

/// The Deployment with the edits applied (containers and init containers alike, as kubectl
/// set image does). An edit naming an unknown container is refused, listing the containers.
pub fn edit(
    current: &Deployment,
    images: &[ImageSet],
    env: &[EnvEdit],
) -> Result<Deployment, EditError> {
    let mut d = current.clone();
    let workload = format!(
        "deployment/{}",
        current.metadata.name.as_deref().unwrap_or_default()
    );
    d.spec.template = edit_template(&workload, &current.spec.template, images, env)?;
    Ok(d)
}

/// A pod template with the edits applied, as [`edit`] makes them; `workload`
/// (`statefulset/db`) names its owner in the error.
pub fn edit_template(
    workload: &str,
    current: &PodTemplateSpec,
    images: &[ImageSet],
    env: &[EnvEdit],
) -> Result<PodTemplateSpec, EditError> {
    let mut t = current.clone();
    let names = container_names(current);
    for i in images {
        if i.container != "*" && !names.contains(&i.container) {
            return Err(unknown_container(
                workload,
                current,
                &i.container,
                format!("--image {}={}", i.container, i.image),
            ));
        }
    }
    for e in env {
        if !names.contains(&e.container) {
            return Err(unknown_container(
                workload,
                current,
                &e.container,
                format!("--env {}:{}", e.container, e.key),
            ));
        }
    }
    let Some(spec) = t.spec.as_mut() else {
        return Err(EditError::NoPodSpec);
    };
    let all: Vec<&mut Container> = spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut())
        .collect();
    for c in all {
        for i in images
            .iter()
            .filter(|i| i.container == "*" || i.container == c.name)
        {
            c.image = Some(i.image.clone());
        }
        for e in env.iter().filter(|e| e.container == c.name) {
            let vars = c.env.get_or_insert_default();
            match &e.value {
                Some(v) => match vars.iter_mut().find(|x| x.name == e.key) {
                    Some(x) => {
                        x.value = Some(v.clone());
                        x.value_from = None;
                    }
                    None => vars.push(EnvVar {
                        name: e.key.clone(),
                        value: Some(v.clone()),
                        value_from: None,
                    }),
                },
                None => vars.retain(|x| x.name != e.key),
            }
            if vars.is_empty() {
                c.env = None;
            }
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep() -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"initContainers": [{"name": "init", "image": "busybox:1"}],
                        "containers": [{"name": "app", "image": "web:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
                                       {"name": "side", "image": "side:1"}]}}}
        }))
        .unwrap()
    }

    fn img(c: &str, i: &str) -> ImageSet {
        ImageSet {
            container: c.into(),
            image: i.into(),
        }
    }

    fn env(c: &str, k: &str, v: Option<&str>) -> EnvEdit {
        EnvEdit {
            container: c.into(),
            key: k.into(),
            value: v.map(str::to_owned),
        }
    }

    #[test]
    fn edits() {
        let d = dep();
        let n = edit(
            &d,
            &[img("app", "web:2")],
            &[
                env("app", "A", Some("9")),
                env("app", "B", Some("x")),
                env("app", "C", Some("3")),
                env("side", "Z", None),
            ],
        )
        .unwrap();
        let s = n.spec.template.spec.as_ref().unwrap();
        assert_eq!(s.containers[0].image.as_deref(), Some("web:2"));
        assert_eq!(s.containers[1].image.as_deref(), Some("side:1"));
        let vars = s.containers[0].env.as_ref().unwrap();
        assert_eq!(
            vars.iter()
                .map(|e| (e.name.as_str(), e.value.as_deref()))
                .collect::<Vec<_>>(),
            [("A", Some("9")), ("B", Some("x")), ("C", Some("3"))]
        );
        assert!(vars[1].value_from.is_none());
        let n = edit(
            &d,
            &[img("*", "x:1")],
            &[env("app", "A", None), env("app", "B", None)],
        )
        .unwrap();
        let s = n.spec.template.spec.as_ref().unwrap();
        assert!(
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
                .all(|c| c.image.as_deref() == Some("x:1"))
        );
        assert!(s.containers[0].env.is_none());
        let e = edit(&d, &[img("nope", "x:1")], &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--image nope=x:1: deployment/web has no container \"nope\" (containers: init, app, side)"
        );
        let e = edit(&d, &[], &[env("nope", "K", None)]).unwrap_err();
        assert!(e.to_string().starts_with("--env nope:K: "), "{e}");
        let mut bare = d.clone();
        bare.spec.template.spec = None;
        assert_eq!(edit(&bare, &[], &[]).unwrap_err(), EditError::NoPodSpec);
    }

    #[test]
    fn images_helpers() {
        let d = dep();
        let t = &d.spec.template;
        assert!(runs_images(t, &[img("app", "web:1")]));
        assert!(!runs_images(t, &[img("*", "web:1")]));
        assert!(!runs_images(t, &[img("app", "web:2")]));
        assert!(!runs_images(t, &[img("nope", "web:1")]));
        assert_eq!(
            images_key(&[img("b", "2"), img("a", "1"), img("b", "2")]),
            "a=1,b=2"
        );
        assert_eq!(
            images_text(&template_images(t)),
            "image init=busybox:1 app=web:1 side=side:1"
        );
        assert_eq!(images_text(&[]), "no containers");
    }
}
