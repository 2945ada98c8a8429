//! Label selector matching, as the API server does it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Whether `selector` selects an object with `labels`. An empty selector selects everything
/// (PodDisruptionBudget policy/v1 semantics); an unknown operator selects nothing.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = selector.match_expressions.iter().flatten().all(|req| {
        let values = req.values.as_deref().unwrap_or_default();
        let have = labels.get(&req.key);
        match req.operator.as_str() {
            "In" => have.is_some_and(|v| values.contains(v)),
            "NotIn" => have.is_none_or(|v| !values.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

/// Whether a Service-style map selector (all pairs must match) selects `labels`.
/// An empty map selects nothing, as for Services (no selector = manually managed endpoints).
pub fn map_selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// `k=v,k2=v2`, for messages.
pub fn map_text(selector: &BTreeMap<String, String>) -> String {
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn match_labels_and_expressions() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "track".into(),
                operator: "In".into(),
                values: Some(vec!["blue".into(), "green".into()]),
            }]),
        };
        assert!(selector_matches(
            &sel,
            &labels(&[("app", "web"), ("track", "blue")])
        ));
        assert!(!selector_matches(
            &sel,
            &labels(&[("app", "web"), ("track", "red")])
        ));
        assert!(!selector_matches(&sel, &labels(&[("app", "web")])));
        assert!(selector_matches(
            &LabelSelector::default(),
            &labels(&[("x", "y")])
        ));
        assert!(map_selects(
            &labels(&[("app", "web")]),
            &labels(&[("app", "web"), ("v", "1")])
        ));
        assert!(!map_selects(&labels(&[]), &labels(&[("app", "web")])));
    }
}
