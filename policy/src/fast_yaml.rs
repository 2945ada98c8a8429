//! A faster reader for the YAML that manifests are made of: a document is built into a
//! `serde_json::Value` straight from granit-parser's events (the parser serde-saphyr itself
//! runs on), without serde-saphyr's deserializer layer, which costs several times the parse.
//!
//! It reads only what it is certain to read as serde-saphyr would: block and flow mappings
//! and sequences, quoted and block scalars (strings), and plain scalars whose type is beyond
//! doubt (`true`, `false`, `null`, `~`, nothing, decimal integers, and text that cannot be a
//! number, boolean or null). Anything else — anchors, aliases, tags, merge keys, duplicate
//! keys, keys that are not strings, floats, radix or legacy-octal integers, YAML 1.1
//! booleans, a syntax error — gives `None`, and the caller reads the document with
//! serde-saphyr, which then also reports any error with its usual message. Tests compare the
//! two on every manifest at hand and on generated documents.

use granit_parser::{Event, Options, Parser, ScalarStyle};
use serde_json::{Map, Number, Value};

/// Nesting beyond this is left to serde-saphyr and its budget.
const MAX_DEPTH: usize = 128;

/// What a plain scalar is, when that is certain.
fn plain(s: &str) -> Option<Value> {
    match s {
        "" | "~" | "null" => return Some(Value::Null),
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        _ => {}
    }
    let first = s.chars().next()?;
    if first.is_ascii_digit() || matches!(first, '-' | '+' | '.') {
        // A decimal integer without a redundant leading zero is a number.
        let digits = s.strip_prefix('-').unwrap_or(s);
        if !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'))
        {
            return s.parse::<i64>().ok().map(|i| Value::Number(Number::from(i)));
        }
        // Only characters that can spell a number (hex digits, radix prefixes, signs, dots,
        // exponents, underscores, sexagesimal colons): left to serde-saphyr.
        if s
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b"xXoObB_+-.:".contains(&b))
        {
            return None;
        }
        // `--port=80`, `-Xmx512m`, `100m`, `25%`: text.
        if matches!(first, '-' | '+') && s[1..].starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            // `-1.5e3` and friends were caught above; `-5x` is text, but stay on the safe side.
            return None;
        }
        return Some(Value::String(s.to_owned()));
    }
    if first.is_ascii_alphabetic() {
        // Every other spelling of a boolean, null or non-finite float (YAML 1.1 `yes`/`on`,
        // `True`, `NULL`, `nan`, `inf`…) is left to serde-saphyr.
        let lower = s.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "y" | "yes" | "n" | "no" | "on" | "off" | "true" | "false" | "null" | "nan"
                | "inf" | "infinity"
        ) {
            return None;
        }
        return Some(Value::String(s.to_owned()));
    }
    if first == '_' || first == '<' {
        return None;
    }
    Some(Value::String(s.to_owned()))
}

/// A collection being built.
enum Open {
    Seq(Vec<Value>),
    /// The map, and the key waiting for its value.
    Map(Map<String, Value>, Option<String>),
}

/// Reads one YAML document, or `None` when serde-saphyr must (see the module's comment).
pub(crate) fn read_value(chunk: &str) -> Option<Value> {
    let mut stack: Vec<Open> = Vec::new();
    let mut done: Option<Value> = None;
    let mut documents = 0;
    let mut options = Options::default();
    options.emit_comments = false;
    for event in Parser::new_from_str_with_options(chunk, options) {
        let (event, _) = event.ok()?;
        let node = match event {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => continue,
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return None;
                }
                continue;
            }
            Event::Scalar(value, style, anchor, tag) => {
                if anchor != 0 || tag.is_some() {
                    return None;
                }
                match style {
                    ScalarStyle::Plain => plain(&value)?,
                    _ => Value::String(value.into_owned()),
                }
            }
            Event::SequenceStart(_, anchor, tag) | Event::MappingStart(_, anchor, tag)
                if anchor != 0 || tag.is_some() =>
            {
                return None;
            }
            Event::SequenceStart(..) => {
                if stack.len() >= MAX_DEPTH {
                    return None;
                }
                stack.push(Open::Seq(Vec::new()));
                continue;
            }
            Event::MappingStart(..) => {
                if stack.len() >= MAX_DEPTH {
                    return None;
                }
                stack.push(Open::Map(Map::new(), None));
                continue;
            }
            Event::SequenceEnd => match stack.pop()? {
                Open::Seq(items) => Value::Array(items),
                Open::Map(..) => return None,
            },
            Event::MappingEnd => match stack.pop()? {
                Open::Map(map, None) => Value::Object(map),
                _ => return None,
            },
            // Aliases, anchors' metadata, comments and anything newer: serde-saphyr.
            _ => return None,
        };
        match stack.last_mut() {
            None => {
                if done.is_some() {
                    return None;
                }
                done = Some(node);
            }
            Some(Open::Seq(items)) => items.push(node),
            Some(Open::Map(map, pending)) => match pending.take() {
                None => {
                    // A key: a string, not `<<` (a merge), not seen before.
                    let Value::String(key) = node else {
                        return None;
                    };
                    if key == "<<" || map.contains_key(&key) {
                        return None;
                    }
                    *pending = Some(key);
                }
                Some(key) => {
                    map.insert(key, node);
                }
            },
        }
    }
    if !stack.is_empty() {
        return None;
    }
    // An empty document is null, as serde-saphyr reads it.
    Some(done.unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_scalars() {
        assert_eq!(plain("3"), Some(json!(3)));
        assert_eq!(plain("-12"), Some(json!(-12)));
        assert_eq!(plain("0"), Some(json!(0)));
        assert_eq!(plain("100m"), Some(json!("100m")));
        assert_eq!(plain("128Mi"), Some(json!("128Mi")));
        assert_eq!(plain("25%"), Some(json!("25%")));
        assert_eq!(plain("--port=80"), Some(json!("--port=80")));
        assert_eq!(plain("nginx:1.25"), Some(json!("nginx:1.25")));
        assert_eq!(plain("/healthz"), Some(json!("/healthz")));
        for unsure in [
            "010", "0x10", "1.5", "1e3", ".inf", "-.5", "1_000", "yes", "On", "True", "NULL",
            "nan", "2026-01-01", "1:30", "-1.5",
        ] {
            assert_eq!(plain(unsure), None, "{unsure}");
        }
    }

    #[test]
    fn documents() {
        assert_eq!(
            read_value("a: 1\nb: [x, 'y', {c: true}]\nd:\n  - ~\n"),
            Some(json!({"a": 1, "b": ["x", "y", {"c": true}], "d": [null]}))
        );
        assert_eq!(read_value("# only a comment\n"), Some(Value::Null));
        for unsure in [
            "a: &x 1\nb: *x\n",
            "a: !!str 3\n",
            "a: 1\na: 2\n",
            "<<: {a: 1}\n",
            "1: a\n",
            "a: [unclosed\n",
            "a: 1\n---\nb: 2\n",
        ] {
            assert_eq!(read_value(unsure), None, "{unsure:?}");
        }
    }
}
