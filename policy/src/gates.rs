//! Metric gates, as written: `NAME: QUERY OP THRESHOLD` (a `--gate` flag, or a `gates:` entry of
//! the policy file), the placeholders a query may hold, and what one answer from Prometheus
//! means (a sample compared with the threshold, or an inconclusive absence of one).
//!
//! Below `config` (the policy file holds gates) and `strategy` (which runs them): pure, no I/O.
//! The running state of gates (consecutive failures, "passed since the step began", the
//! annotation) is `strategy::gates`.

use std::fmt;

use serde_json::Value;

/// How a gate's sample is compared with its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Comparison {
    /// The operators, longest first (so `<=` is not read as `<`).
    const ALL: [Comparison; 4] = [
        Comparison::Le,
        Comparison::Ge,
        Comparison::Lt,
        Comparison::Gt,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
        }
    }

    pub fn parse(s: &str) -> Option<Comparison> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether `value OP threshold` holds (NaN never holds; callers treat it as inconclusive).
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Lt => value < threshold,
            Comparison::Le => value <= threshold,
            Comparison::Gt => value > threshold,
            Comparison::Ge => value >= threshold,
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One gate: a PromQL query (with placeholders) whose one sample must satisfy `op threshold`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub name: String,
    /// The query as written, placeholders unexpanded.
    pub query: String,
    pub op: Comparison,
    pub threshold: f64,
}

impl Gate {
    /// `errors < 0.01`
    pub fn condition(&self) -> String {
        format!("{} {}", self.op, number_text(self.threshold))
    }
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} {} {}",
            self.name,
            self.query,
            self.op,
            number_text(self.threshold)
        )
    }
}

/// A number as a gate shows it: `0.01`, `500`, `NaN`.
pub fn number_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.6}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        if s == "0" || s == "-0" {
            format!("{v:e}")
        } else {
            s.to_owned()
        }
    }
}

/// A gate that cannot be read. `origin` names where it was written (`--gate`,
/// `spec.gates[1].query`); `position` is the 1-based character in that text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin} {text:?}: at character {position}: {message}")]
pub struct GateSyntaxError {
    pub origin: String,
    pub text: String,
    pub position: usize,
    pub message: String,
}

/// The placeholders a query may hold, each written `{{name}}`.
pub const PLACEHOLDERS: [&str; 6] = [
    "namespace",
    "workload",
    "replicaset",
    "pods",
    "color",
    "track",
];

/// Parses `NAME: QUERY OP THRESHOLD` (OP one of `< <= > >=`; the last operator of the text is
/// the gate's, so a query may compare inside itself).
pub fn parse_gate(spec: &str, origin: &str) -> Result<Gate, GateSyntaxError> {
    let err = |position: usize, message: String| GateSyntaxError {
        origin: origin.to_owned(),
        text: spec.to_owned(),
        position,
        message,
    };
    let Some(colon) = spec.find(':') else {
        return Err(err(
            1,
            "expected NAME: QUERY OP THRESHOLD, e.g. 'errors: sum(rate(...)) < 0.01' (no ':' after a name)".into(),
        ));
    };
    let name = spec[..colon].trim();
    check_name(name).map_err(|m| err(1, m))?;
    let rest = &spec[colon + 1..];
    let rest_at = colon + 2; // 1-based position of `rest`'s first character
    let trimmed = rest.trim_end();
    let Some(space) = trimmed.rfind(char::is_whitespace) else {
        return Err(err(
            rest_at,
            "expected QUERY OP THRESHOLD after the name".into(),
        ));
    };
    let threshold_text = &trimmed[space + 1..];
    let threshold_at = rest_at + char_count(&rest[..space + 1]);
    let (before, threshold_text, threshold_at) = match Comparison::ALL
        .into_iter()
        .find(|c| threshold_text.starts_with(c.as_str()) && threshold_text.len() > c.as_str().len())
    {
        // `< 0.01` written without a space: `<0.01`.
        Some(c) => (
            &trimmed[..space + 1 + c.as_str().len()],
            &threshold_text[c.as_str().len()..],
            threshold_at + c.as_str().len(),
        ),
        None => (&trimmed[..space], threshold_text, threshold_at),
    };
    let threshold = parse_threshold(threshold_text).ok_or_else(|| {
        err(
            threshold_at,
            format!("the threshold {threshold_text:?} is not a number"),
        )
    })?;
    let before = before.trim_end();
    let Some(op) = Comparison::ALL
        .into_iter()
        .find(|c| before.ends_with(c.as_str()))
    else {
        return Err(err(
            rest_at + char_count(&rest[..before.len()]),
            "expected an operator (<, <=, > or >=) before the threshold".into(),
        ));
    };
    let query_raw = &before[..before.len() - op.as_str().len()];
    let query = query_raw.trim();
    if query.is_empty() {
        return Err(err(rest_at, "the query is empty".into()));
    }
    let query_at =
        rest_at + char_count(&query_raw[..query_raw.len() - query_raw.trim_start().len()]);
    check_placeholders(query).map_err(|(at, m)| err(query_at + at - 1, m))?;
    Ok(Gate {
        name: name.to_owned(),
        query: query.to_owned(),
        op,
        threshold,
    })
}

fn char_count(s: &str) -> usize {
    s.chars().count()
}

fn parse_threshold(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| !v.is_nan())
}

/// A gate's name: letters, digits, `-`, `_`, `.` (it is shown in reports and the annotation).
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the gate has no name (expected NAME: QUERY OP THRESHOLD)".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "the gate name {name:?} has {c:?}; use letters, digits, '-', '_' or '.'"
        ));
    }
    Ok(())
}

/// Every `{{...}}` of a query names a known placeholder. Err: (1-based position, message).
pub fn check_placeholders(query: &str) -> Result<(), (usize, String)> {
    let mut rest = query;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        let at = offset + open;
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err((
                char_count(&query[..at]) + 1,
                "'{{' without a closing '}}'".into(),
            ));
        };
        let name = after[..close].trim();
        if !PLACEHOLDERS.contains(&name) {
            return Err((
                char_count(&query[..at]) + 1,
                format!(
                    "unknown placeholder {{{{{name}}}}}; known: {}",
                    PLACEHOLDERS
                        .iter()
                        .map(|p| format!("{{{{{p}}}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        offset = at + 2 + close + 2;
        rest = &query[offset..];
    }
    Ok(())
}

/// What the placeholders stand for in one evaluation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placeholders {
    pub namespace: String,
    /// The Deployment whose version is judged.
    pub workload: String,
    /// Its ReplicaSet of that version.
    pub replicaset: String,
    /// The pods of that version (`{{pods}}` is a regex matching exactly these names).
    pub pods: Vec<String>,
    /// `blue` or `green` in a blue-green, else empty.
    pub color: String,
    /// `canary` or `stable` in a canary, else empty.
    pub track: String,
}

/// A regex that matches exactly `names`, written for a double-quoted PromQL string (a
/// backslash is doubled): `web-1|web-2`.
pub fn pods_regex(names: &[String]) -> String {
    let mut sorted: Vec<&String> = names.iter().collect();
    sorted.sort();
    sorted.dedup();
    sorted
        .iter()
        .map(|n| {
            let mut out = String::new();
            for c in n.chars() {
                if "\\.+*?()|[]{}^$".contains(c) {
                    out.push_str("\\\\");
                }
                out.push(c);
            }
            out
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// The query with its placeholders filled in (placeholders were checked at parse time;
/// anything else between `{{ }}` stays as written).
pub fn expand(query: &str, values: &Placeholders) -> String {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let value = match after[..close].trim() {
            "namespace" => values.namespace.clone(),
            "workload" => values.workload.clone(),
            "replicaset" => values.replicaset.clone(),
            "pods" => pods_regex(&values.pods),
            "color" => values.color.clone(),
            "track" => values.track.clone(),
            _ => rest[open..open + 2 + close + 2].to_owned(),
        };
        out.push_str(&value);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// What one query gave: a sample, or why there is none (no data, NaN, no answer).
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    Sample(f64),
    Inconclusive(String),
}

/// A gate's result for one check.
#[derive(Debug, Clone, PartialEq)]
pub enum GateResult {
    Pass(f64),
    Fail(f64),
    Inconclusive(String),
}

impl GateResult {
    pub fn value(&self) -> Option<f64> {
        match self {
            GateResult::Pass(v) | GateResult::Fail(v) => Some(*v),
            GateResult::Inconclusive(_) => None,
        }
    }

    pub fn word(&self) -> &'static str {
        match self {
            GateResult::Pass(_) => "pass",
            GateResult::Fail(_) => "fail",
            GateResult::Inconclusive(_) => "inconclusive",
        }
    }
}

/// Compares a reading with the gate's threshold: NaN is inconclusive, like no sample.
pub fn evaluate(gate: &Gate, reading: &Reading) -> GateResult {
    match reading {
        Reading::Inconclusive(why) => GateResult::Inconclusive(why.clone()),
        Reading::Sample(v) if v.is_nan() => {
            GateResult::Inconclusive("the query returned NaN (no requests to divide?)".into())
        }
        Reading::Sample(v) if gate.op.holds(*v, gate.threshold) => GateResult::Pass(*v),
        Reading::Sample(v) => GateResult::Fail(*v),
    }
}

/// An answer of Prometheus's `/api/v1/query` that a gate cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// A gate compares one number: the query must return at most one series.
    #[error("the query returned {count} series ({}); a gate needs one number: aggregate it (sum, max, ...)", .series.join(", "))]
    SeveralSeries { count: usize, series: Vec<String> },
    #[error("the query returned a {0}; a gate needs an instant vector or a scalar")]
    WrongType(String),
    #[error("Prometheus answered status {status:?}: {error_type}: {error}")]
    Error {
        status: String,
        error_type: String,
        error: String,
    },
    #[error("the answer is not a Prometheus query response: {0}")]
    Malformed(String),
}

/// Reads the JSON body of `/api/v1/query`: one sample (a one-element vector or a scalar), an
/// empty vector (inconclusive), or an error (several series, a range vector, an error
/// status).
pub fn reading_from_response(body: &Value) -> Result<Reading, ResponseError> {
    let malformed = |what: &str| ResponseError::Malformed(what.to_owned());
    let status = body
        .get("status")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("no \"status\""))?;
    if status != "success" {
        return Err(ResponseError::Error {
            status: status.to_owned(),
            error_type: body
                .get("errorType")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            error: body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        });
    }
    let data = body.get("data").ok_or_else(|| malformed("no \"data\""))?;
    let kind = data
        .get("resultType")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("no \"data.resultType\""))?;
    let result = data
        .get("result")
        .ok_or_else(|| malformed("no \"data.result\""))?;
    match kind {
        "vector" => {
            let items = result
                .as_array()
                .ok_or_else(|| malformed("\"data.result\" is not a list"))?;
            match items.as_slice() {
                [] => Ok(Reading::Inconclusive(
                    "the query returned no data (an empty result)".into(),
                )),
                [one] => sample_value(
                    one.get("value")
                        .ok_or_else(|| malformed("a vector element has no \"value\""))?,
                )
                .map(Reading::Sample),
                many => Err(ResponseError::SeveralSeries {
                    count: many.len(),
                    series: many
                        .iter()
                        .take(3)
                        .map(|s| series_text(s.get("metric")))
                        .collect(),
                }),
            }
        }
        "scalar" => sample_value(result).map(Reading::Sample),
        other => Err(ResponseError::WrongType(other.to_owned())),
    }
}

/// `[ <unix time>, "<value>" ]` → the value (Prometheus writes `NaN`, `+Inf`, `-Inf`).
fn sample_value(v: &Value) -> Result<f64, ResponseError> {
    let text = v
        .as_array()
        .and_then(|pair| pair.get(1))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ResponseError::Malformed(format!("a sample is not [time, \"value\"]: {v}"))
        })?;
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        t => t
            .parse()
            .map_err(|_| ResponseError::Malformed(format!("the sample {t:?} is not a number"))),
    }
}

/// `{code="500",pod="web-1"}`
fn series_text(metric: Option<&Value>) -> String {
    let Some(map) = metric.and_then(Value::as_object) else {
        return "{}".into();
    };
    let labels: Vec<String> = map
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.as_str()
                    .map_or_else(|| v.to_string(), |s| format!("{s:?}"))
            )
        })
        .collect();
    format!("{{{}}}", labels.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ERRORS: &str = r#"errors: sum(rate(http_requests_total{namespace="{{namespace}}",pod=~"{{pods}}",code=~"5.."}[1m])) / sum(rate(http_requests_total{namespace="{{namespace}}",pod=~"{{pods}}"}[1m])) < 0.01"#;

    #[test]
    fn parses_name_query_operator_threshold() {
        let g = parse_gate(ERRORS, "--gate").unwrap();
        assert_eq!(g.name, "errors");
        assert_eq!(g.op, Comparison::Lt);
        assert_eq!(g.threshold, 0.01);
        assert!(g.query.starts_with("sum(rate(") && g.query.ends_with("[1m]))"));
        let g = parse_gate("p99: histogram_quantile(0.99, x) <= 0.5", "--gate").unwrap();
        assert_eq!((g.op, g.threshold), (Comparison::Le, 0.5));
        let g = parse_gate("up:up>=1", "--gate").unwrap_err();
        assert!(g.message.contains("QUERY OP THRESHOLD"), "{g}");
        let g = parse_gate("up: up >=1", "--gate").unwrap();
        assert_eq!(
            (g.query.as_str(), g.op, g.threshold),
            ("up", Comparison::Ge, 1.0)
        );
        // The last operator is the gate's; the query may compare too.
        let g = parse_gate("ok: (x > 0) > 0.5", "--gate").unwrap();
        assert_eq!((g.query.as_str(), g.op), ("(x > 0)", Comparison::Gt));
        assert_eq!(g.to_string(), "ok: (x > 0) > 0.5");
        assert_eq!(g.condition(), "> 0.5");
    }

    #[test]
    fn syntax_errors_name_the_flag_and_the_position() {
        let e = parse_gate("no colon here < 1", "--gate").unwrap_err();
        assert_eq!((e.origin.as_str(), e.position), ("--gate", 1));
        let e = parse_gate("errors: rate(x[1m]) < lots", "--gate").unwrap_err();
        assert_eq!(e.position, 23, "{e}");
        assert!(
            e.to_string().starts_with(
                "--gate \"errors: rate(x[1m]) < lots\": at character 23: the threshold \"lots\""
            ),
            "{e}"
        );
        let e = parse_gate("errors: rate(x[1m]) 0.01", "--gate").unwrap_err();
        assert!(e.message.contains("operator"), "{e}");
        let e = parse_gate("errors:  < 0.01", "--gate").unwrap_err();
        assert!(e.message.contains("empty"), "{e}");
        let e = parse_gate("bad name: x < 1", "spec.gates[0]").unwrap_err();
        assert!(e.message.contains("' '"), "{e}");
        let e = parse_gate("e: x{pod=~\"{{podz}}\"} < 1", "--gate").unwrap_err();
        assert_eq!(e.position, 12, "{e}");
        assert!(e.message.contains("unknown placeholder {{podz}}"), "{e}");
        let e = parse_gate("e: x{pod=~\"{{pods\"} < 1", "--gate").unwrap_err();
        assert!(e.message.contains("without a closing"), "{e}");
        let e = parse_gate("e: x < NaN", "--gate").unwrap_err();
        assert!(e.message.contains("not a number"), "{e}");
    }

    #[test]
    fn placeholders_expand_to_the_values() {
        let g = parse_gate(ERRORS, "--gate").unwrap();
        let v = Placeholders {
            namespace: "shop".into(),
            workload: "web".into(),
            replicaset: "web-7c9".into(),
            pods: vec!["web-7c9-b".into(), "web-7c9-a".into(), "web.x".into()],
            color: "green".into(),
            track: "canary".into(),
        };
        let q = expand(&g.query, &v);
        assert!(
            q.contains(r#"namespace="shop",pod=~"web-7c9-a|web-7c9-b|web\\.x",code=~"5..""#),
            "{q}"
        );
        assert!(!q.contains("{{"), "{q}");
        assert_eq!(
            expand("{{workload}}/{{ replicaset }}/{{color}}/{{track}}", &v),
            "web/web-7c9/green/canary"
        );
        assert_eq!(expand("a{{b", &v), "a{{b");
    }

    #[test]
    fn a_sample_is_compared_and_nan_is_inconclusive() {
        let g = parse_gate("e: x < 0.01", "--gate").unwrap();
        assert_eq!(evaluate(&g, &Reading::Sample(0.0)), GateResult::Pass(0.0));
        assert_eq!(evaluate(&g, &Reading::Sample(0.05)), GateResult::Fail(0.05));
        assert_eq!(evaluate(&g, &Reading::Sample(0.01)), GateResult::Fail(0.01));
        assert!(matches!(
            evaluate(&g, &Reading::Sample(f64::NAN)),
            GateResult::Inconclusive(ref w) if w.contains("NaN")
        ));
        assert!(matches!(
            evaluate(&g, &Reading::Inconclusive("down".into())),
            GateResult::Inconclusive(ref w) if w == "down"
        ));
        let ge = parse_gate("ok: x >= 0.99", "--gate").unwrap();
        assert_eq!(
            evaluate(&ge, &Reading::Sample(0.99)),
            GateResult::Pass(0.99)
        );
        assert_eq!(
            evaluate(&ge, &Reading::Sample(f64::NEG_INFINITY)),
            GateResult::Fail(f64::NEG_INFINITY)
        );
    }

    #[test]
    fn responses_give_one_sample_or_say_why_not() {
        let vector = |result: Value| json!({"status": "success", "data": {"resultType": "vector", "result": result}});
        assert_eq!(
            reading_from_response(&vector(json!([{"metric": {}, "value": [1.5, "0.05"]}]))),
            Ok(Reading::Sample(0.05))
        );
        assert!(matches!(
            reading_from_response(&vector(json!([]))),
            Ok(Reading::Inconclusive(ref w)) if w.contains("no data")
        ));
        match reading_from_response(&vector(
            json!([{"metric": {"pod": "a"}, "value": [1, "1"]}, {"metric": {"pod": "b"}, "value": [1, "2"]}]),
        )) {
            Err(e @ ResponseError::SeveralSeries { count: 2, .. }) => {
                assert!(e.to_string().contains(r#"{pod="a"}, {pod="b"}"#), "{e}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            reading_from_response(&json!({"status": "success", "data": {"resultType": "scalar", "result": [1, "NaN"]}}))
                .map(|r| matches!(r, Reading::Sample(v) if v.is_nan())),
            Ok(true)
        );
        assert_eq!(
            reading_from_response(
                &json!({"status": "success", "data": {"resultType": "matrix", "result": []}})
            ),
            Err(ResponseError::WrongType("matrix".into()))
        );
        let e = reading_from_response(
            &json!({"status": "error", "errorType": "bad_data", "error": "parse error at char 5"}),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Prometheus answered status \"error\": bad_data: parse error at char 5"
        );
        assert!(matches!(
            reading_from_response(&json!({"x": 1})),
            Err(ResponseError::Malformed(_))
        ));
        assert!(matches!(
            reading_from_response(&vector(json!([{"metric": {}, "value": [1, "lots"]}]))),
            Err(ResponseError::Malformed(ref m)) if m.contains("lots")
        ));
    }

    #[test]
    fn numbers_are_shown_short() {
        assert_eq!(number_text(0.01), "0.01");
        assert_eq!(number_text(500.0), "500");
        assert_eq!(number_text(0.05000000001), "0.05");
        assert_eq!(number_text(f64::NAN), "NaN");
        assert_eq!(number_text(1e-9), "1e-9");
    }
}
