//! The fastest reader: block-style YAML as manifests are written, line by line, straight into
//! a `serde_json::Value`.
//!
//! It reads block mappings with plain keys, block sequences (indentless ones included),
//! single-line plain, quoted and flow scalars and collections, and `|`, `|-`, `>`, `>-` block
//! scalars. Anything else, or anything it is not certain of (a tab, a carriage return, a
//! quoted key, an anchor, a tag, a scalar continued on the next line, a block scalar with
//! leading blank lines or more-indented folded lines, an unusual escape, a duplicate key, a
//! line indented where YAML would reject it…), gives `None` and the next reader takes the
//! document. It never reports an error: the last reader, serde-saphyr, does that.

use serde_json::{Map, Value};

use super::scalar::plain;

/// Nesting beyond this is left to the next reader.
const MAX_DEPTH: usize = 64;

/// Reads one YAML document, or `None` when the next reader must.
pub(crate) fn read_value(chunk: &str) -> Option<Value> {
    if !plain_text(chunk) {
        return None;
    }
    let mut reader = Reader {
        lines: chunk.split('\n').collect(),
        pos: 0,
        depth: 0,
    };
    let Some((indent, _)) = reader.peek() else {
        return Some(Value::Null);
    };
    let value = reader.block_node(indent)?;
    // Whatever follows the top node at a smaller indentation is not this reader's.
    if reader.peek().is_some() {
        return None;
    }
    Some(value)
}

/// Whether `text` is free of the characters this reader leaves alone: tabs, carriage returns
/// and other controls (C1 ones, NEL among them), the line and paragraph separators and a byte
/// order mark.
fn plain_text(text: &str) -> bool {
    if text.is_ascii() {
        return !text.bytes().any(|b| (b < 0x20 && b != b'\n') || b == 0x7f);
    }
    !text
        .chars()
        .any(|c| (c.is_control() && c != '\n') || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}'))
}

struct Reader<'a> {
    lines: Vec<&'a str>,
    /// The next line to read.
    pos: usize,
    depth: usize,
}

fn indentation(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Whether a line's content (after its indentation) starts a block sequence entry.
fn is_entry(content: &str) -> bool {
    content == "-" || content.starts_with("- ")
}

/// A block mapping entry's plain key and what follows its `:`, when the key is one this
/// reader is sure of: letters, digits and `_./-`, not starting with `-`, typed as a string.
fn split_key(content: &str) -> Option<(&str, &str)> {
    let end = content
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-')))?;
    let (key, rest) = content.split_at(end);
    let rest = rest.strip_prefix(':')?;
    if key.is_empty() || key.starts_with('-') || !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    match plain(key) {
        Some(Value::String(_)) => Some((key, rest)),
        _ => None,
    }
}

/// Whether what follows a scalar or flow collection on its line is nothing or a comment.
fn only_comment(rest: &str) -> bool {
    rest.is_empty() || {
        let trimmed = rest.trim_start_matches(' ');
        trimmed.len() < rest.len() && (trimmed.is_empty() || trimmed.starts_with('#'))
    }
}

impl<'a> Reader<'a> {
    /// The next line with content, skipping blank and comment lines: (indentation, content).
    fn peek(&mut self) -> Option<(usize, &'a str)> {
        while let Some(&line) = self.lines.get(self.pos) {
            let indent = indentation(line);
            let content = &line[indent..];
            if content.is_empty() || content.starts_with('#') {
                self.pos += 1;
                continue;
            }
            return Some((indent, content));
        }
        None
    }

    /// The block collection whose first line is the next content line, at `indent`.
    fn block_node(&mut self, indent: usize) -> Option<Value> {
        let (_, content) = self.peek()?;
        if is_entry(content) {
            self.nested(|r| r.block_sequence(indent))
        } else {
            self.nested(|r| r.block_mapping(indent, None))
        }
    }

    /// `read` one level deeper, or `None` past [`MAX_DEPTH`].
    fn nested(&mut self, read: impl FnOnce(&mut Self) -> Option<Value>) -> Option<Value> {
        if self.depth >= MAX_DEPTH {
            return None;
        }
        self.depth += 1;
        let node = read(self);
        self.depth -= 1;
        node
    }

    /// A block mapping at `indent`; `first` is an entry already read (a compact mapping in a
    /// sequence entry, `- name: web`).
    fn block_mapping(&mut self, indent: usize, first: Option<(&'a str, &'a str)>) -> Option<Value> {
        let mut map = Map::new();
        if let Some((key, rest)) = first {
            let value = self.entry_value(indent, rest)?;
            map.insert(key.to_owned(), value);
        }
        while let Some((at, content)) = self.peek() {
            if at < indent {
                break;
            }
            if at > indent {
                return None;
            }
            let (key, rest) = split_key(content)?;
            if key == "<<" || map.contains_key(key) {
                return None;
            }
            self.pos += 1;
            let value = self.entry_value(indent, rest)?;
            map.insert(key.to_owned(), value);
        }
        Some(Value::Object(map))
    }

    /// A block sequence whose entries' dashes are at `indent`.
    fn block_sequence(&mut self, indent: usize) -> Option<Value> {
        let mut items = Vec::new();
        while let Some((at, content)) = self.peek() {
            if at < indent {
                break;
            }
            if at > indent {
                return None;
            }
            if !is_entry(content) {
                // The parent mapping's next key (after an indentless sequence), or not YAML.
                break;
            }
            self.pos += 1;
            let after_dash = &content[1..];
            let item = after_dash.trim_start_matches(' ');
            if item.is_empty() || item.starts_with('#') {
                items.push(self.nested_or_null(indent, false)?);
                continue;
            }
            if is_entry(item) {
                return None;
            }
            let column = indent + 1 + (after_dash.len() - item.len());
            let value = match split_key(item) {
                Some(entry) => self.nested(|r| r.block_mapping(column, Some(entry)))?,
                None => self.inline_value(indent, item)?,
            };
            items.push(value);
        }
        Some(Value::Array(items))
    }

    /// The value of a mapping entry whose key is at `indent`; `rest` follows its `:`.
    fn entry_value(&mut self, indent: usize, rest: &'a str) -> Option<Value> {
        let value = rest.trim_start_matches(' ');
        if value.is_empty() || value.starts_with('#') {
            self.nested_or_null(indent, true)
        } else {
            self.inline_value(indent, value)
        }
    }

    /// What an entry with nothing after its indicator holds: a block collection indented
    /// more than `indent`, an indentless sequence (mapping values only), or null.
    fn nested_or_null(&mut self, indent: usize, indentless: bool) -> Option<Value> {
        match self.peek() {
            Some((at, _)) if at > indent => self.block_node(at),
            Some((at, content)) if at == indent && indentless && is_entry(content) => {
                self.nested(|r| r.block_sequence(indent))
            }
            _ => Some(Value::Null),
        }
    }

    /// A value written on its entry's line (`text`), the entry being at `indent`.
    fn inline_value(&mut self, indent: usize, text: &'a str) -> Option<Value> {
        let value = match text.as_bytes()[0] {
            b'|' | b'>' => return self.block_scalar(indent, text),
            b'"' | b'\'' | b'[' | b'{' => {
                let (value, rest) = flow_node(text, self.depth)?;
                if !only_comment(rest) {
                    return None;
                }
                value
            }
            b'&' | b'*' | b'!' | b'%' | b'@' | b'`' | b'?' | b',' | b']' | b'}' | b':' | b'#' => {
                return None;
            }
            _ => {
                if is_entry(text) {
                    return None;
                }
                let end = text.find(" #").unwrap_or(text.len());
                let scalar = text[..end].trim_end_matches(' ');
                if scalar.contains(": ") || scalar.ends_with(':') {
                    return None;
                }
                plain(scalar)?
            }
        };
        // A scalar continued on a more indented line (or a line YAML would reject there).
        match self.peek() {
            Some((at, _)) if at > indent => None,
            _ => Some(value),
        }
    }

    /// A `|`, `|-`, `>` or `>-` block scalar (header `header`) of an entry at `indent`.
    fn block_scalar(&mut self, indent: usize, header: &str) -> Option<Value> {
        let folded = header.starts_with('>');
        let (strip, rest) = match header[1..].strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, &header[1..]),
        };
        if !only_comment(rest) {
            return None;
        }
        let mut content_indent = None;
        let mut lines: Vec<&str> = Vec::new();
        while let Some(&line) = self.lines.get(self.pos) {
            let spaces = indentation(line);
            if spaces == line.len() {
                // A blank line: leading ones, and ones with spaces past the content's
                // indentation, are left to the next reader.
                match content_indent {
                    Some(ci) if spaces <= ci => lines.push(""),
                    _ => return None,
                }
                self.pos += 1;
                continue;
            }
            let ci = match content_indent {
                Some(ci) => ci,
                None if spaces > indent => {
                    content_indent = Some(spaces);
                    spaces
                }
                None => break,
            };
            if spaces < ci {
                if spaces > indent {
                    return None;
                }
                break;
            }
            let text = &line[ci..];
            if folded && text.starts_with(' ') {
                return None;
            }
            lines.push(text);
            self.pos += 1;
        }
        while lines.last() == Some(&"") {
            lines.pop();
        }
        let mut out = String::new();
        if folded {
            let mut blank_run = 0;
            for (i, line) in lines.iter().enumerate() {
                if line.is_empty() {
                    blank_run += 1;
                    continue;
                }
                if i > 0 {
                    if blank_run == 0 {
                        out.push(' ');
                    } else {
                        out.extend(std::iter::repeat_n('\n', blank_run));
                    }
                }
                blank_run = 0;
                out.push_str(line);
            }
        } else {
            for (i, line) in lines.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                out.push_str(line);
            }
        }
        if !strip && !lines.is_empty() {
            out.push('\n');
        }
        Some(Value::String(out))
    }
}

/// A quoted scalar or flow collection at the start of `text`, written on one line, and what
/// follows it.
fn flow_node(text: &str, depth: usize) -> Option<(Value, &str)> {
    if depth > MAX_DEPTH {
        return None;
    }
    match text.as_bytes().first()? {
        b'"' => double_quoted(&text[1..]),
        b'\'' => single_quoted(&text[1..]),
        b'[' => {
            let mut items = Vec::new();
            let mut rest = text[1..].trim_start_matches(' ');
            if let Some(after) = rest.strip_prefix(']') {
                return Some((Value::Array(items), after));
            }
            loop {
                let (item, after) = flow_item(rest, depth)?;
                items.push(item);
                let after = after.trim_start_matches(' ');
                if let Some(after) = after.strip_prefix(']') {
                    return Some((Value::Array(items), after));
                }
                rest = after.strip_prefix(',')?.trim_start_matches(' ');
            }
        }
        b'{' => {
            let mut map = Map::new();
            let mut rest = text[1..].trim_start_matches(' ');
            if let Some(after) = rest.strip_prefix('}') {
                return Some((Value::Object(map), after));
            }
            loop {
                let (key, after) = flow_item(rest, depth)?;
                let Value::String(key) = key else {
                    return None;
                };
                if key == "<<" || map.contains_key(&key) {
                    return None;
                }
                let after = after.strip_prefix(": ")?.trim_start_matches(' ');
                let (value, after) = flow_item(after, depth)?;
                map.insert(key, value);
                let after = after.trim_start_matches(' ');
                if let Some(after) = after.strip_prefix('}') {
                    return Some((Value::Object(map), after));
                }
                rest = after.strip_prefix(',')?.trim_start_matches(' ');
            }
        }
        _ => None,
    }
}

/// One item of a flow collection: a nested one, a quoted scalar or a plain one.
fn flow_item(text: &str, depth: usize) -> Option<(Value, &str)> {
    match text.as_bytes().first()? {
        b'"' | b'\'' | b'[' | b'{' => flow_node(text, depth + 1),
        b'&' | b'*' | b'!' | b'%' | b'@' | b'`' | b'?' | b',' | b']' | b'}' | b':' | b'#'
        | b'|' | b'>' => None,
        _ => {
            // A plain scalar ends at a flow indicator or `: `; a `#` or `: ` inside one is left
            // to the next reader.
            let end = text
                .bytes()
                .position(|b| matches!(b, b',' | b'[' | b']' | b'{' | b'}' | b'#' | b':'))
                .unwrap_or(text.len());
            let (scalar, rest) = text.split_at(end);
            if rest.starts_with('#') || rest.starts_with(':') && !rest.starts_with(": ") {
                return None;
            }
            let scalar = scalar.trim_end_matches(' ');
            if scalar.is_empty() || scalar == "-" || scalar.starts_with("- ") {
                return None;
            }
            Some((plain(scalar)?, rest))
        }
    }
}

/// A double-quoted scalar closed on its line (`text` follows the opening quote), with the
/// common escapes only.
fn double_quoted(text: &str) -> Option<(Value, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((Value::String(out), &text[i + 1..])),
            '\\' => {
                let (_, escaped) = chars.next()?;
                out.push(match escaped {
                    '\\' => '\\',
                    '"' => '"',
                    '/' => '/',
                    'n' => '\n',
                    't' => '\t',
                    _ => return None,
                });
            }
            c => out.push(c),
        }
    }
    None
}

/// A single-quoted scalar closed on its line (`text` follows the opening quote).
fn single_quoted(text: &str) -> Option<(Value, &str)> {
    let mut out = String::new();
    let mut rest = text;
    loop {
        let end = rest.find('\'')?;
        out.push_str(&rest[..end]);
        rest = &rest[end + 1..];
        match rest.strip_prefix('\'') {
            Some(after) => {
                out.push('\'');
                rest = after;
            }
            None => return Some((Value::String(out), rest)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn manifest_shapes() {
        let doc = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web   # the name
  labels: {app: web, tier: \"front\"}
spec:
  replicas: 3
  template:
    spec:
      containers:
      - name: web
        image: 'nginx:1.25'
        args: [\"--port=80\", -v]
        command:
          - sh
          - -c
          - |
            echo hi
            exit 0
        env:
        -
          name: A
          value: >-
            folded
            text
      volumes: []
";
        assert_eq!(
            read_value(doc),
            Some(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
                "spec": {"replicas": 3, "template": {"spec": {
                    "containers": [{
                        "name": "web", "image": "nginx:1.25", "args": ["--port=80", "-v"],
                        "command": ["sh", "-c", "echo hi\nexit 0\n"],
                        "env": [{"name": "A", "value": "folded text"}],
                    }],
                    "volumes": [],
                }}},
            }))
        );
    }

    #[test]
    fn left_to_the_next_reader() {
        for unsure in super::super::DECLINED_BY_ALL.iter().copied().chain([
            "\"a\": 1\n",
            "a: b\n  c\n",
            "a:\n  b\n",
            "a: |\n\n  x\n",
            "a: >\n  x\n    y\n",
            "a: |2\n   x\n",
            "a: |+\n  x\n",
            "a:\tb\n",
            "a: b\r\n",
            "- - a\n",
            "a: 1\n  b: 2\n",
            "a:\n  - x\n  b: y\n",
            "a: \"\\u0041\"\n",
            "a: b: c\n",
            "a: 1.5\n",
            "? a\n: b\n",
            "a: [b: c]\n",
            "a: x #\n b\n",
        ]) {
            assert_eq!(read_value(unsure), None, "{unsure:?}");
        }
    }

    #[test]
    fn deep_nesting_is_declined_not_recursed_into() {
        let deep: String = (0..200).map(|i| format!("{}a:\n", " ".repeat(i))).collect();
        assert_eq!(read_value(&deep), None);
        let flow = format!("a: {}{}\n", "[".repeat(200), "]".repeat(200));
        assert_eq!(read_value(&flow), None);
        let shallow: String = (0..20).map(|i| format!("{}a:\n", " ".repeat(i))).collect();
        assert!(read_value(&shallow).is_some());
    }
}
