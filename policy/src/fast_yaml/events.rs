//! The second reader: a document built into a `serde_json::Value` straight from
//! granit-parser's events (the parser serde-saphyr itself runs on), without serde-saphyr's
//! deserializer layer, which costs as much as the parse. It takes what the block reader left:
//! multi-line flow collections and scalars, quoted keys, unusual block scalars.
//!
//! It reads only what it is certain to read as serde-saphyr would: block and flow mappings
//! and sequences, quoted and block scalars (strings), and plain scalars whose type is beyond
//! doubt (`scalar::plain`). Anything else (anchors, aliases, tags, merge keys, duplicate keys,
//! keys that are not strings, several documents, a syntax error) gives `None`, and the caller
//! reads the document with serde-saphyr, which then also reports any error with its message.

use granit_parser::{Event, Options, Parser, ScalarStyle};
use serde_json::{Map, Value};

use super::scalar::plain;

/// Nesting beyond this is left to serde-saphyr and its budget.
const MAX_DEPTH: usize = 128;

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
    fn documents() {
        assert_eq!(
            read_value("a: 1\nb: [x, 'y', {c: true}]\nd:\n  - ~\n"),
            Some(json!({"a": 1, "b": ["x", "y", {"c": true}], "d": [null]}))
        );
        assert_eq!(read_value("# only a comment\n"), Some(Value::Null));
        for unsure in super::super::DECLINED_BY_ALL
            .iter()
            .copied()
            .chain(["a: 1\n---\nb: 2\n"])
        {
            assert_eq!(read_value(unsure), None, "{unsure:?}");
        }
    }
}
