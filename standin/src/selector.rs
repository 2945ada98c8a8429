//! Label selectors (`a=b,c!=d,e in (x,y),f notin (z),g,!h`, and the `matchLabels` /
//! `matchExpressions` object form) and field selectors (`metadata.name=x`,
//! `involvedObject.kind=Pod`, …), matched against stored objects.

use std::collections::BTreeMap;

use serde_json::Value;

/// A selector the server cannot parse: the client gets a 400 with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("unable to parse requirement: {0:?}")]
    Requirement(String),
    #[error("unable to parse requirement: {0:?}: the set has no closing parenthesis")]
    Unclosed(String),
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
    #[error("invalid field selector term {0:?}: want field=value, field==value or field!=value")]
    FieldTerm(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &Value) -> bool {
        let value = |k: &str| labels.get(k).and_then(Value::as_str);
        match self {
            Requirement::Equals(k, v) => value(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => value(k) != Some(v.as_str()),
            Requirement::In(k, set) => value(k).is_some_and(|x| set.iter().any(|s| s == x)),
            Requirement::NotIn(k, set) => value(k).is_none_or(|x| set.iter().all(|s| s != x)),
            Requirement::Exists(k) => value(k).is_some(),
            Requirement::DoesNotExist(k) => value(k).is_none(),
        }
    }
}

/// A parsed label selector; the empty selector selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// The query form, as in `?labelSelector=`.
    pub fn parse(text: &str) -> Result<LabelSelector, SelectorError> {
        let mut requirements = Vec::new();
        for term in split_terms(text)? {
            requirements.push(parse_requirement(&term)?);
        }
        Ok(LabelSelector { requirements })
    }

    /// A map selector, as a Service's `spec.selector`.
    pub fn from_map(map: &BTreeMap<String, String>) -> LabelSelector {
        LabelSelector {
            requirements: map
                .iter()
                .map(|(k, v)| Requirement::Equals(k.clone(), v.clone()))
                .collect(),
        }
    }

    /// The object form (`matchLabels`, `matchExpressions`), as a workload's `spec.selector`.
    /// An unknown operator selects nothing, as the API server rejects such objects anyway.
    pub fn from_object(selector: &Value) -> LabelSelector {
        let mut requirements: Vec<Requirement> = string_map(&selector["matchLabels"])
            .into_iter()
            .map(|(k, v)| Requirement::Equals(k, v))
            .collect();
        for e in selector["matchExpressions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let key = e["key"].as_str().unwrap_or_default().to_owned();
            let values: Vec<String> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            requirements.push(match e["operator"].as_str() {
                Some("In") => Requirement::In(key, values),
                Some("NotIn") => Requirement::NotIn(key, values),
                Some("Exists") => Requirement::Exists(key),
                Some("DoesNotExist") => Requirement::DoesNotExist(key),
                _ => Requirement::In(key, Vec::new()),
            });
        }
        LabelSelector { requirements }
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object with these `metadata.labels` is selected.
    pub fn matches(&self, labels: &Value) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Whether `object` (its `metadata.labels`) is selected.
    pub fn selects(&self, object: &Value) -> bool {
        self.matches(&object["metadata"]["labels"])
    }
}

/// A JSON object of strings as a map (other values are left out).
pub fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect()
}

/// Splits on the commas that are not inside a `( … )` set.
fn split_terms(text: &str) -> Result<Vec<String>, SelectorError> {
    let mut terms = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if depth > 0 {
        return Err(SelectorError::Unclosed(current));
    }
    terms.push(current);
    Ok(terms
        .into_iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect())
}

fn parse_requirement(term: &str) -> Result<Requirement, SelectorError> {
    let bad = || SelectorError::Requirement(term.to_owned());
    let valid_key = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    };
    if let Some(key) = term.strip_prefix('!') {
        let key = key.trim();
        return if valid_key(key) {
            Ok(Requirement::DoesNotExist(key.to_owned()))
        } else {
            Err(bad())
        };
    }
    for (op, set_op) in [(" notin ", true), (" in ", false)] {
        if let Some((key, set)) = term.split_once(op) {
            let key = key.trim();
            let set = set.trim();
            let inner = set
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
                .ok_or_else(bad)?;
            let values: Vec<String> = inner
                .split(',')
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect();
            if !valid_key(key) {
                return Err(bad());
            }
            return Ok(if set_op {
                Requirement::NotIn(key.to_owned(), values)
            } else {
                Requirement::In(key.to_owned(), values)
            });
        }
    }
    if let Some((key, value)) = term.split_once("!=") {
        let key = key.trim();
        return if valid_key(key) {
            Ok(Requirement::NotEquals(
                key.to_owned(),
                value.trim().to_owned(),
            ))
        } else {
            Err(bad())
        };
    }
    if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
        let key = key.trim();
        return if valid_key(key) {
            Ok(Requirement::Equals(key.to_owned(), value.trim().to_owned()))
        } else {
            Err(bad())
        };
    }
    if valid_key(term) {
        Ok(Requirement::Exists(term.to_owned()))
    } else {
        Err(bad())
    }
}

/// A parsed field selector. Only the fields the real server supports for the type are accepted:
/// `metadata.name` and `metadata.namespace` everywhere, `involvedObject.*`, `reason`, `type` and
/// `source` for Events, `spec.nodeName` and `status.phase` for Pods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

impl FieldSelector {
    pub fn parse(text: &str, resource_plural: &str) -> Result<FieldSelector, SelectorError> {
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (field, equal, value) = if let Some((f, v)) = term.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, true, v)
            } else {
                return Err(SelectorError::FieldTerm(term.to_owned()));
            };
            let field = field.trim();
            if !field_supported(field, resource_plural) {
                return Err(SelectorError::UnsupportedField(field.to_owned()));
            }
            terms.push((field.to_owned(), equal, value.trim().to_owned()));
        }
        Ok(FieldSelector { terms })
    }

    pub fn selects(&self, object: &Value) -> bool {
        self.terms.iter().all(|(field, equal, value)| {
            let actual = field
                .split('.')
                .fold(object, |v, part| &v[part])
                .as_str()
                .unwrap_or_default();
            (actual == value) == *equal
        })
    }
}

fn field_supported(field: &str, resource_plural: &str) -> bool {
    match field {
        "metadata.name" | "metadata.namespace" => true,
        "involvedObject.kind"
        | "involvedObject.namespace"
        | "involvedObject.name"
        | "involvedObject.uid"
        | "involvedObject.apiVersion"
        | "involvedObject.resourceVersion"
        | "involvedObject.fieldPath"
        | "reason"
        | "type"
        | "source"
        | "reportingComponent" => resource_plural == "events",
        "spec.nodeName" | "status.phase" => resource_plural == "pods",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap()
    }

    #[test]
    fn equality_and_set_based_label_selectors() {
        let labels = json!({"app": "shop", "track": "canary", "tier": "web"});
        for (s, want) in [
            ("", true),
            ("app=shop", true),
            ("app==shop", true),
            ("app=other", false),
            ("app!=other", true),
            ("app!=shop", false),
            ("track in (canary,stable)", true),
            ("track in (stable)", false),
            ("track notin (stable, blue)", true),
            ("track notin (canary)", false),
            ("missing notin (x)", true),
            ("tier", true),
            ("missing", false),
            ("!missing", true),
            ("!tier", false),
            ("app=shop,track in (canary),!color", true),
            ("app=shop,track in (stable,blue),tier", false),
        ] {
            assert_eq!(sel(s).matches(&labels), want, "{s:?}");
        }
    }

    #[test]
    fn object_selectors() {
        let s = LabelSelector::from_object(&json!({
            "matchLabels": {"app": "shop"},
            "matchExpressions": [{"key": "track", "operator": "NotIn", "values": ["canary"]},
                                 {"key": "color", "operator": "Exists"}]}));
        assert!(s.matches(&json!({"app": "shop", "color": "blue"})));
        assert!(!s.matches(&json!({"app": "shop", "color": "blue", "track": "canary"})));
        assert!(!s.matches(&json!({"app": "shop"})));
    }

    #[test]
    fn bad_label_selectors_are_errors() {
        for bad in ["a in (x", "=x", "a in x", "!"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn field_selectors_for_events_and_names() {
        let ev = json!({"metadata": {"name": "e1"}, "involvedObject": {"kind": "Pod", "name": "p", "uid": "u1"}});
        let f = |s: &str| FieldSelector::parse(s, "events").unwrap().selects(&ev);
        assert!(f("involvedObject.name=p,involvedObject.kind=Pod"));
        assert!(f("involvedObject.uid=u1"));
        assert!(!f("involvedObject.kind=Deployment"));
        assert!(f("metadata.name!=e2"));
        assert_eq!(
            FieldSelector::parse("involvedObject.name=p", "pods"),
            Err(SelectorError::UnsupportedField(
                "involvedObject.name".into()
            ))
        );
        assert!(FieldSelector::parse("metadata.name", "pods").is_err());
    }
}
