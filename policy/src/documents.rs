//! Reading manifest text: multi-document YAML, JSON (one object, several, or a `List`), each
//! object with the line it starts on, and a malformed document reported without losing the rest.
//!
//! Pure: the caller reads the file; this gets its name (for messages) and text.

use serde::Serialize;
use serde_json::Value;

use crate::fast_yaml;

/// The most a single document may hold before it is refused (a guard against YAML bombs and
/// accidental multi-gigabyte inputs; real manifests are kilobytes).
pub const MAX_DOCUMENT_BYTES: usize = 8 * 1024 * 1024;

/// One Kubernetes object read from a source.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The file name (or `<stdin>`), as given.
    pub source: String,
    /// 1-based line where the object's document starts (for `List` items, where the List starts).
    pub line: usize,
    pub value: Value,
}

/// A document that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}: {message}", self.location())]
pub struct DocumentError {
    pub file: String,
    /// 1-based; 0 when the error concerns the whole file (it could not be read).
    pub line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    pub message: String,
}

impl DocumentError {
    /// `file:line:column`, as far as known.
    pub fn location(&self) -> String {
        match (self.line, self.column) {
            (0, _) => self.file.clone(),
            (l, Some(c)) => format!("{}:{l}:{c}", self.file),
            (l, None) => format!("{}:{l}", self.file),
        }
    }
}

/// Splits `text` into objects. Empty documents (`---` alone, comments) are skipped.
pub fn parse_documents(source: &str, text: &str) -> Vec<Result<Document, DocumentError>> {
    let mut out = Vec::new();
    parse_with(source, text, YamlReader::SerdeSaphyr, &mut |doc| {
        out.push(doc)
    });
    out
}

/// [`parse_documents`], with YAML read by the fast readers (`fast_yaml`) wherever they are
/// sure to read it as serde-saphyr does: the same documents and errors, several times faster.
pub fn read_documents(source: &str, text: &str) -> Vec<Result<Document, DocumentError>> {
    let mut out = Vec::new();
    for_each_document(source, text, |doc| out.push(doc));
    out
}

/// [`read_documents`], each document handed to `each` as soon as it is read, so that a
/// file's documents are never all in memory at once.
pub fn for_each_document(
    source: &str,
    text: &str,
    mut each: impl FnMut(Result<Document, DocumentError>),
) {
    parse_with(source, text, YamlReader::Fast, &mut each);
}

/// How YAML documents are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum YamlReader {
    SerdeSaphyr,
    /// The fast readers, serde-saphyr for what they decline.
    Fast,
}

type Sink<'s> = dyn FnMut(Result<Document, DocumentError>) + 's;

fn parse_with(source: &str, text: &str, reader: YamlReader, sink: &mut Sink<'_>) {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let trimmed = text.trim_start();
    // JSON (one object, several, or an array). A YAML flow mapping such as
    // `{apiVersion: v1, kind: Service}` also starts with `{`: when the very first value is not
    // JSON, the text is read as YAML instead.
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let json = parse_json(source, text);
        if !matches!(json.first(), Some(Err(_))) {
            json.into_iter().for_each(sink);
            return;
        }
        let mut yaml = Vec::new();
        parse_yaml(source, text, reader, &mut |doc| yaml.push(doc));
        // Neither: the JSON parser's message is the one that fits text that starts like JSON.
        let chosen = if yaml.iter().any(Result::is_err) {
            json
        } else {
            yaml
        };
        chosen.into_iter().for_each(sink);
        return;
    }
    parse_yaml(source, text, reader, sink);
}

fn parse_yaml(source: &str, text: &str, reader: YamlReader, sink: &mut Sink<'_>) {
    // One document's objects (several for a `List`), handed on before the next is read.
    let mut docs = Vec::new();
    for (start_line, chunk) in split_yaml(text) {
        match YamlChunk::of(chunk) {
            YamlChunk::Empty => {}
            YamlChunk::TooLarge => sink(Err(too_large(source, start_line, chunk))),
            YamlChunk::Content => {
                let fast = match reader {
                    YamlReader::Fast => fast_yaml::read_value(chunk),
                    YamlReader::SerdeSaphyr => None,
                };
                match fast {
                    Some(Value::Null) => {}
                    Some(value) => expand(source, object_line(start_line, chunk), value, &mut docs),
                    None => parse_yaml_chunk(source, start_line, chunk, &mut docs),
                }
                docs.drain(..).for_each(&mut *sink);
            }
        }
    }
}

/// What a YAML document's text holds, before it is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum YamlChunk {
    /// Nothing but blank lines and comments (or a bare `---`).
    Empty,
    /// Over [`MAX_DOCUMENT_BYTES`].
    TooLarge,
    Content,
}

impl YamlChunk {
    fn of(chunk: &str) -> YamlChunk {
        if chunk.trim().is_empty()
            || chunk
                .lines()
                .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            YamlChunk::Empty
        } else if chunk.len() > MAX_DOCUMENT_BYTES {
            YamlChunk::TooLarge
        } else {
            YamlChunk::Content
        }
    }
}

fn too_large(source: &str, start_line: usize, chunk: &str) -> DocumentError {
    DocumentError {
        file: source.into(),
        line: start_line,
        column: None,
        message: format!(
            "document is {} bytes, over the {} byte limit; not read",
            chunk.len(),
            MAX_DOCUMENT_BYTES
        ),
    }
}

/// The line a document's object is reported at: its first line of content, not the `---`
/// before it.
fn object_line(start_line: usize, chunk: &str) -> usize {
    start_line + leading_blank_lines(chunk)
}

/// Parses one YAML document (`chunk`, starting at `start_line`) into `out`.
fn parse_yaml_chunk(
    source: &str,
    start_line: usize,
    chunk: &str,
    out: &mut Vec<Result<Document, DocumentError>>,
) {
    match serde_saphyr::from_str_with_options::<Value>(chunk, manifest_options()) {
        Ok(Value::Null) => {}
        Ok(value) => expand(source, object_line(start_line, chunk), value, out),
        Err(e) => {
            let (line, column) = e
                .location()
                .map(|l| {
                    (
                        start_line + l.line() as usize - 1,
                        Some(l.column() as usize),
                    )
                })
                .unwrap_or((start_line, None));
            out.push(Err(DocumentError {
                file: source.into(),
                line,
                column,
                message: format!("invalid YAML: {}", first_line(&e.to_string())),
            }));
        }
    }
}

/// serde-saphyr's reading of one document, as the audit does it (for the fast readers'
/// differential tests).
#[doc(hidden)]
pub fn read_reference(chunk: &str) -> Result<Value, String> {
    serde_saphyr::from_str_with_options::<Value>(chunk, manifest_options())
        .map_err(|e| e.to_string())
}

/// A YAML stream's documents as the audit splits them (for the fast readers' tests).
#[doc(hidden)]
pub fn split_documents(text: &str) -> Vec<&str> {
    split_yaml(text)
        .into_iter()
        .map(|(_, chunk)| chunk)
        .collect()
}

/// Kubernetes reads manifests as YAML 1.1 (sigs.k8s.io/yaml): `defaultMode: 0440` is octal 288.
fn manifest_options() -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    o.legacy_octal_numbers = true;
    // Comments are never read into a manifest's value; capturing them costs most of a parse.
    o.emit_comments = false;
    o
}

/// Blank and comment lines before a document's content (the marker line counts as blank).
fn leading_blank_lines(chunk: &str) -> usize {
    chunk
        .lines()
        .take_while(|l| {
            let t = l.trim_start();
            t.is_empty() || t.starts_with('#')
        })
        .count()
}

fn first_line(s: &str) -> String {
    let s = s.lines().next().unwrap_or("").trim();
    // The renderer prefixes positions we already give, and suggests a parser option the
    // user cannot set; keep the message itself.
    let s = s.strip_prefix("error: ").unwrap_or(s);
    let s = match s.split_once(": ") {
        Some((pos, rest)) if pos.starts_with("line ") && pos.contains(" column ") => rest,
        _ => s,
    };
    s.split(", set DuplicateKeyPolicy")
        .next()
        .unwrap_or(s)
        .to_string()
}

/// `(first line number, text)` of each YAML document. A document marker is `---` at column 0;
/// the text keeps the marker line (blanked) so the parser's line numbers stay relative to it.
fn split_yaml(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1usize;
    let mut offset = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let l = line.trim_end_matches(['\n', '\r']);
        let is_start =
            l.starts_with("---") && l[3..].chars().next().is_none_or(char::is_whitespace);
        let is_end = l.starts_with("...") && l[3..].trim().is_empty();
        if is_start || is_end {
            docs.push((start_line, &text[start..offset]));
            // The content after `--- ` on the marker line (rare) starts the next document.
            let after = if is_start {
                offset + 3
            } else {
                offset + line.len()
            };
            start = after.min(text.len());
            start_line = if is_start { i + 1 } else { i + 2 };
        }
        offset += line.len();
    }
    docs.push((start_line, &text[start..]));
    docs
}

fn parse_json(source: &str, text: &str) -> Vec<Result<Document, DocumentError>> {
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    loop {
        let before = stream.byte_offset();
        match stream.next() {
            None => break,
            Some(Ok(value)) => {
                let skipped_ws = text[before..].len() - text[before..].trim_start().len();
                let line = text[..before + skipped_ws].matches('\n').count() + 1;
                // A top-level array is a list of objects.
                match value {
                    Value::Array(items) => {
                        for item in items {
                            expand(source, line, item, &mut out);
                        }
                    }
                    v => expand(source, line, v, &mut out),
                }
            }
            Some(Err(e)) => {
                out.push(Err(DocumentError {
                    file: source.into(),
                    line: e.line(),
                    column: Some(e.column()),
                    message: format!("invalid JSON: {e}"),
                }));
                break; // a JSON stream cannot resynchronise after a syntax error
            }
        }
    }
    out
}

/// Pushes `value`, or its items when it is a `List` (`kind: List` or `*List`).
fn expand(source: &str, line: usize, value: Value, out: &mut Vec<Result<Document, DocumentError>>) {
    if !value.is_object() {
        out.push(Err(DocumentError {
            file: source.into(),
            line,
            column: None,
            message: format!(
                "expected a Kubernetes object (a mapping with apiVersion and kind), found {}",
                kind_of(&value)
            ),
        }));
        return;
    }
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind.ends_with("List") && value.get("items").is_some() {
        match value.get("items") {
            Some(Value::Array(items)) => {
                for item in items {
                    expand(source, line, item.clone(), out);
                }
            }
            Some(Value::Null) => {}
            Some(other) => out.push(Err(DocumentError {
                file: source.into(),
                line,
                column: None,
                message: format!("{kind}.items must be a list, found {}", kind_of(other)),
            })),
            None => {}
        }
        return;
    }
    for field in ["apiVersion", "kind"] {
        if !value.get(field).is_some_and(Value::is_string) {
            out.push(Err(DocumentError {
                file: source.into(),
                line,
                column: None,
                message: format!("object has no string {field}; not a Kubernetes object"),
            }));
            return;
        }
    }
    out.push(Ok(Document {
        source: source.into(),
        line,
        value,
    }));
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(r: &[Result<Document, DocumentError>]) -> Vec<(usize, String)> {
        r.iter()
            .filter_map(|d| d.as_ref().ok())
            .map(|d| {
                (
                    d.line,
                    d.value["metadata"]["name"]
                        .as_str()
                        .unwrap_or("")
                        .to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn multi_document_lines() {
        let text = "# header\napiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\n---\n# only a comment\n--- \napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n...\n";
        let r = parse_documents("f.yaml", text);
        assert_eq!(ok(&r), vec![(2, "a".into()), (9, "b".into())]);
    }

    #[test]
    fn malformed_document_keeps_the_rest() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: [unclosed\n---\napiVersion: v1\nkind: Service\nmetadata: {name: c}\n";
        let r = parse_documents("f.yaml", text);
        assert_eq!(ok(&r), vec![(1, "a".into()), (9, "c".into())]);
        let err = r.iter().find_map(|d| d.as_ref().err()).unwrap();
        assert_eq!(err.file, "f.yaml");
        assert!((5..=8).contains(&err.line), "{err}");
        assert!(err.to_string().starts_with("f.yaml:"), "{err}");
    }

    #[test]
    fn json_and_lists() {
        let text = "{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"x\"}}]}\n{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"y\"}}";
        let r = parse_documents("f.json", text);
        assert_eq!(ok(&r), vec![(1, "x".into()), (2, "y".into())]);
        let r = parse_documents("f.json", "{\"a\": ");
        assert!(r[0].as_ref().unwrap_err().message.contains("invalid JSON"));
    }

    #[test]
    fn yaml_1_1_octal_like_kubernetes() {
        let r = parse_documents(
            "f.yaml",
            "apiVersion: v1\nkind: X\nmode: 0440\nplain: 440\n",
        );
        let v = &r[0].as_ref().unwrap().value;
        assert_eq!(v["mode"], serde_json::json!(288));
        assert_eq!(v["plain"], serde_json::json!(440));
    }

    #[test]
    fn yaml_flow_mapping_is_not_taken_for_json() {
        let r = parse_documents(
            "f.yaml",
            "{apiVersion: v1, kind: Service, metadata: {name: a}}\n---\n{apiVersion: v1, kind: Service, metadata: {name: b}}\n",
        );
        assert_eq!(ok(&r), vec![(1, "a".into()), (3, "b".into())]);
    }

    #[test]
    fn not_objects() {
        let r = parse_documents("f.yaml", "- a\n- b\n");
        assert!(r[0].as_ref().unwrap_err().message.contains("found a list"));
        let r = parse_documents("f.yaml", "kind: Service\n");
        assert!(r[0].as_ref().unwrap_err().message.contains("apiVersion"));
        assert!(parse_documents("f.yaml", "").is_empty());
        assert!(parse_documents("f.yaml", "---\n# nothing\n").is_empty());
    }
}
