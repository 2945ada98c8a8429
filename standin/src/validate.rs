//! The validation the stand-in does on writes, answered as a 422 `Invalid` with field causes
//! (recording 06): required names, environment variable names, a workload selector that must
//! select its template's labels and may not change.

use serde_json::Value;

use crate::resources::ResourceType;
use crate::selector::LabelSelector;
use crate::status::Cause;

const WORKLOADS: [&str; 4] = ["deployments", "replicasets", "statefulsets", "daemonsets"];

/// The field errors of `new` (replacing `old`, if given); empty when it is valid.
pub fn validate(rt: &ResourceType, old: Option<&Value>, new: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if new["metadata"]["name"].as_str().is_none_or(str::is_empty)
        && new["metadata"]["generateName"]
            .as_str()
            .is_none_or(str::is_empty)
    {
        causes.push(Cause {
            field: "metadata.name".into(),
            message: "Required value: name or generateName is required".into(),
        });
    }
    let pod_spec_path = match rt.plural {
        "pods" => Some("spec"),
        p if WORKLOADS.contains(&p) => Some("spec.template.spec"),
        _ => None,
    };
    if let Some(path) = pod_spec_path {
        let pod_spec = path.split('.').fold(new, |v, part| &v[part]);
        env_names(path, pod_spec, &mut causes);
    }
    if WORKLOADS.contains(&rt.plural) {
        let labels = &new["spec"]["template"]["metadata"]["labels"];
        if !LabelSelector::from_object(&new["spec"]["selector"]).matches(labels) {
            causes.push(Cause {
                field: "spec.template.metadata.labels".into(),
                message: format!(
                    "Invalid value: {labels}: `selector` does not match template `labels`"
                ),
            });
        }
        if let Some(old) = old
            && old["spec"]["selector"] != new["spec"]["selector"]
        {
            causes.push(Cause {
                field: "spec.selector".into(),
                message: format!(
                    "Invalid value: {}: field is immutable",
                    new["spec"]["selector"]
                ),
            });
        }
    }
    causes
}

fn env_names(path: &str, pod_spec: &Value, causes: &mut Vec<Cause>) {
    for list in ["initContainers", "containers"] {
        for (ci, c) in pod_spec[list].as_array().into_iter().flatten().enumerate() {
            for (ei, e) in c["env"].as_array().into_iter().flatten().enumerate() {
                let name = e["name"].as_str().unwrap_or_default();
                let valid = name.chars().next().is_some_and(|ch| !ch.is_ascii_digit())
                    && name
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || "_-.".contains(ch));
                if !valid {
                    causes.push(Cause {
                        field: format!("{path}.{list}[{ci}].env[{ei}].name"),
                        message: format!(
                            "Invalid value: {name:?}: a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit"
                        ),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::DEPLOYMENTS;
    use serde_json::json;

    #[test]
    fn env_names_selectors_and_immutability() {
        let d = json!({"metadata": {"name": "a"}, "spec": {"selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "env": [{"name": "OK"}, {"name": "1BAD"}]}]}}}});
        let causes = validate(&DEPLOYMENTS, None, &d);
        assert_eq!(causes.len(), 1, "{causes:?}");
        assert_eq!(
            causes[0].field,
            "spec.template.spec.containers[0].env[1].name"
        );
        let mut moved = d.clone();
        moved["spec"]["template"]["spec"]["containers"][0]["env"] = json!([]);
        moved["spec"]["selector"]["matchLabels"]["color"] = json!("green");
        let fields: Vec<String> = validate(&DEPLOYMENTS, Some(&d), &moved)
            .into_iter()
            .map(|c| c.field)
            .collect();
        assert_eq!(fields, ["spec.template.metadata.labels", "spec.selector"]);
        assert_eq!(
            validate(
                &DEPLOYMENTS,
                None,
                &json!({"metadata": {}, "spec": {"selector": {}}})
            )[0]
            .field,
            "metadata.name"
        );
    }
}
