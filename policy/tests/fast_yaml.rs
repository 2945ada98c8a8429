//! The fast YAML readers read a document exactly as serde-saphyr does, or decline it.
//!
//! Every answer of the block reader, the event reader and the two chained is compared with
//! serde-saphyr's (with the audit's options): a reader that returns a value must return
//! serde-saphyr's value, and must decline whatever serde-saphyr rejects. Inputs: our
//! manifests, examples, fixtures and chart (its templates are not YAML: good inputs to
//! decline), the corpus when present, thousands of mutations of all of those (lines deleted,
//! duplicated, re-indented, awkward characters inserted), generated documents in every block
//! and flow style, and scalars in every spelling YAML types differently.

use std::path::Path;

use proptest::prelude::*;
use rollout_safe_policy::fast_yaml::{read_block, read_events, read_plain, read_value};
use rollout_safe_policy::{read_reference, split_documents};
use rollout_safe_testkit::{corpus_dir, manifest_files, workspace_dir};
use serde_json::Value;

/// A fast reader.
type Reader = fn(&str) -> Option<Value>;

/// Each reader's answer on `chunk` agrees with serde-saphyr's. Returns whether the block
/// reader read it.
fn agree(chunk: &str, name: &str) -> bool {
    let reference = read_reference(chunk);
    let readers: [(&str, Reader); 3] = [
        ("block", read_block),
        ("events", read_events),
        ("chained", read_value),
    ];
    for (reader, read) in readers {
        if let Some(value) = read(chunk) {
            match &reference {
                Ok(expected) => assert_eq!(
                    &value, expected,
                    "the {reader} reader reads {name} otherwise than serde-saphyr:\n{chunk}"
                ),
                Err(e) => panic!(
                    "the {reader} reader reads {name}, which serde-saphyr rejects ({e}):\n{chunk}"
                ),
            }
        }
    }
    read_block(chunk).is_some()
}

/// The YAML files under `dir`, recursively (chart templates included).
fn yaml_files(dir: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "tpl")
            && let Ok(text) = std::fs::read_to_string(&path)
        {
            out.push((path.display().to_string(), text));
        }
    }
}

/// Our own YAML: manifests, examples, fixtures, the chart, the CI and pre-commit files.
fn own_yaml() -> Vec<(String, String)> {
    let root = workspace_dir();
    let mut files = Vec::new();
    for dir in ["tests/fixtures", "examples", "charts", "docs", ".github"] {
        yaml_files(&root.join(dir), &mut files);
    }
    for file in [".pre-commit-hooks.yaml", "action.yml"] {
        if let Ok(text) = std::fs::read_to_string(root.join(file)) {
            files.push((file.into(), text));
        }
    }
    assert!(files.len() >= 20, "only {} YAML files found", files.len());
    files
}

fn corpus_yaml() -> Option<Vec<(String, String)>> {
    let root = corpus_dir()?;
    Some(
        manifest_files(&root)
            .iter()
            .filter_map(|p| Some((p.display().to_string(), std::fs::read_to_string(p).ok()?)))
            .collect(),
    )
}

/// Every document of `files`: (read by the block reader, in all).
fn agree_on_files(files: &[(String, String)]) -> (usize, usize) {
    let (mut block, mut all) = (0, 0);
    for (name, text) in files {
        for chunk in split_documents(text) {
            if chunk.trim().is_empty() {
                continue;
            }
            all += 1;
            if agree(chunk, name) {
                block += 1;
            }
        }
    }
    (block, all)
}

#[test]
fn own_yaml_as_serde_saphyr_reads_it() {
    let (block, all) = agree_on_files(&own_yaml());
    // Most of it is the block style the fast reader is for.
    assert!(
        block * 2 > all,
        "the block reader read only {block} of {all}"
    );
}

#[test]
fn corpus_as_serde_saphyr_reads_it() {
    let Some(files) = corpus_yaml() else {
        rollout_safe_testkit::skip(
            "policy/tests/fast_yaml.rs corpus",
            "no corpus: ../shared/corpus (or $ROLLOUT_SAFE_CORPUS) is not a directory",
        );
        return;
    };
    let (block, all) = agree_on_files(&files);
    eprintln!("corpus: block read {block} of {all}");
    // What makes the audit fast: the block reader reads nearly every real-world manifest.
    assert!(
        block * 10 >= all * 9,
        "the block reader read only {block} of {all} corpus documents"
    );
}

/// Characters and fragments that change how YAML reads a line.
const AWKWARD: &[&str] = &[
    "#", " #", ":", ": ", " ", "  ", "-", "- ", "'", "\"", "|", ">", "|-", ">-", "[", "]", "{",
    "}", ",", "&a ", "*a", "!", "!!str ", "\\", "\t", "\r", "?", "%", "@", "`", "~", "<<", "0",
    "1.5", "yes", "null", "\u{85}", "\u{feff}", "é", "\n", "\n\n", "\n  ", "---", "...",
];

/// `text` changed at one place: a line deleted, duplicated or re-indented, or a fragment
/// inserted.
fn mutate(text: &str, what: usize, at: usize, fragment: usize) -> String {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    let i = at % lines.len();
    match what % 6 {
        0 => {
            lines.remove(i);
        }
        1 => {
            let line = lines[i].clone();
            lines.insert(i, line);
        }
        2 => lines[i].insert(0, ' '),
        3 => {
            if lines[i].starts_with(' ') {
                lines[i].remove(0);
            }
        }
        4 => lines[i].insert_str(0, "  "),
        _ => {
            let count = lines.len();
            let line = &mut lines[i];
            let mut cut = (at / count) % (line.len() + 1);
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.insert_str(cut, AWKWARD[fragment % AWKWARD.len()]);
        }
    }
    lines.join("\n")
}

/// Documents to mutate: our own and, when present, the corpus's (workloads first, since those
/// are what the audit reads most).
fn seeds() -> Vec<String> {
    let mut files = own_yaml();
    files.extend(corpus_yaml().unwrap_or_default());
    let mut docs: Vec<String> = files
        .iter()
        .flat_map(|(_, text)| split_documents(text))
        .filter(|c| !c.trim().is_empty() && c.len() < 20_000)
        .map(str::to_string)
        .collect();
    docs.sort_by_key(|d| !d.contains("containers:"));
    docs
}

#[test]
fn mutations_of_every_document() {
    // Deterministic: every seed, several mutations each, positions spread by a simple LCG.
    let docs = seeds();
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    // Counted over the seeds the block reader reads as they are: the mutations of those must
    // not all be declined, or this would prove nothing about it.
    let (mut read, mut tried) = (0, 0);
    for (n, doc) in docs.iter().enumerate() {
        let readable = read_block(doc).is_some();
        for _ in 0..24 {
            let once = mutate(doc, next(), next(), next());
            let text = if next() % 3 == 0 {
                mutate(&once, next(), next(), next())
            } else {
                once
            };
            let block_read = agree(&text, &format!("mutation of seed document {n}"));
            if readable {
                tried += 1;
                read += usize::from(block_read);
            }
        }
    }
    eprintln!("mutations of block-readable seeds: the block reader read {read} of {tried}");
    assert!(
        tried >= 500 && read * 4 > tried,
        "the block reader read only {read} of {tried} mutations of documents it reads"
    );
}

/// Scalars in every spelling that types differently in YAML, and ones that do not.
const SCALARS: &[&str] = &[
    "3",
    "-12",
    "0",
    "-0",
    "00",
    "010",
    "0440",
    "0x1F",
    "0o17",
    "0b11",
    "+3",
    "1_000",
    "1e3",
    "1E3",
    "1.5",
    "-1.5",
    ".5",
    "5.",
    ".inf",
    ".Inf",
    "-.inf",
    "+.INF",
    ".nan",
    ".NaN",
    "inf",
    "nan",
    "Infinity",
    "99999999999999999999",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "true",
    "false",
    "True",
    "FALSE",
    "yes",
    "No",
    "on",
    "OFF",
    "y",
    "n",
    "null",
    "Null",
    "NULL",
    "~",
    "2026-01-01",
    "2026-01-01T10:00:00Z",
    "2026-01-01 10:00:00",
    "1:30",
    "12:30:45",
    "190:20:30",
    "100m",
    "128Mi",
    "1Gi",
    "25%",
    "--port=80",
    "-Xmx512m",
    "nginx:1.25",
    "/healthz",
    "$(POD_IP)",
    "http://a:8080/x",
    "a b",
    "a  b",
    "a#b",
    "a,b",
    "a[0]",
    "a{b}",
    "=",
    "==",
    "_",
    "_x",
    "<<",
    "<x>",
    "(x)",
    "^x",
    "\\x",
    ";x",
    "é",
    "日本",
    "e5",
    "E",
    "x1",
    "0.0.0.0",
    "10.0.0.1",
    "1.2.3",
    "v1",
    "1.25.3",
    "0x",
    "0o",
    "1e",
    "-",
    "--",
    "-.",
    "+",
    ".",
    "..",
    "1-2",
    "1+2",
    "12e",
    "0e0",
    "0_1",
    "1__0",
    "'3'",
    "\"3\"",
    "'it''s'",
    "\"a\\\"b\"",
    "\"a\\nb\"",
    "\"\\u0041\"",
    "\"\\x41\"",
    "\"\\/\"",
    "''",
    "\"\"",
    "[]",
    "{}",
    "[a, 1]",
    "{a: 1}",
    "[a, [b, {c: d}]]",
    "{a: [1, 2], b: {c: ~}}",
    "[a,b]",
    "[ a , b ]",
    "{a: 1, a: 2}",
    "{\"a\": 1}",
    "{a:1}",
    "[a: 1]",
    "[,]",
    "[a,]",
    "{a}",
    "[1.5]",
    "[yes]",
    "{1: a}",
    "{'k': v}",
    "nil",
    "Nil",
    "None",
    "none",
    "undefined",
    "YES",
    "Y",
    "N",
    "NaN",
    "-Infinity",
    "~~",
    "0b",
    "0x_1",
    "1_0",
    "١٢",
    "٣",
    "Ⅻ",
    "1.0e+3",
    "0.",
    "-0.0",
    "+.5",
    "0o7",
    "0O7",
    "0X1",
    "0B1",
    "1:2:3",
    "x:",
    "x: y",
    "true1",
    "nullx",
    "Truex",
];

#[test]
fn scalar_spellings_as_serde_saphyr_types_them() {
    let mut decided = 0;
    for s in SCALARS {
        // The type of a spelling that can stand as a plain scalar (the readers decline the
        // others, `x: y` say, before asking its type: `agree` below checks that).
        if let (Some(value), Ok(reference)) = (read_plain(s), read_reference(&format!("k: {s}\n")))
        {
            decided += 1;
            assert_eq!(Some(&value), reference.get("k"), "{s:?}");
        }
        for doc in [
            format!("k: {s}\n"),
            format!("k: {s} # c\n"),
            format!("- {s}\n- x\n"),
            format!("k:\n- {s}\n"),
            format!("k: [{s}, x]\n"),
            format!("k: {{a: {s}}}\n"),
            format!("- k: {s}\n  j: x\n"),
            format!("{s}: x\n"),
        ] {
            agree(&doc, s);
        }
    }
    assert!(decided > 30, "only {decided} spellings decided");
}

/// A tree to render in YAML.
#[derive(Debug, Clone)]
enum Node {
    Scalar(&'static str),
    Text(Vec<&'static str>),
    Seq(Vec<Node>),
    Map(Vec<(&'static str, Node)>),
}

fn node() -> impl Strategy<Value = Node> {
    let keys = prop::sample::select(vec![
        "a",
        "name",
        "image",
        "app.kubernetes.io/name",
        "x-y",
        "k_8",
        "a.b/c",
        "1",
        "true",
    ]);
    let lines = prop::collection::vec(
        prop::sample::select(vec![
            "echo hi",
            "",
            "  indented",
            "# not a comment",
            "a: b",
            "x",
        ]),
        0..4,
    );
    let leaf = prop_oneof![
        prop::sample::select(SCALARS.to_vec()).prop_map(Node::Scalar),
        lines.prop_map(Node::Text),
    ];
    leaf.prop_recursive(4, 24, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Node::Seq),
            prop::collection::vec((keys.clone(), inner), 0..4).prop_map(Node::Map),
        ]
    })
}

/// Renders `node` as the value of an entry at `indent`, choosing styles from `style`.
fn render(node: &Node, indent: usize, picks: &mut Picks, out: &mut String) {
    let pad = " ".repeat(indent);
    match node {
        Node::Scalar(s) => {
            out.push(' ');
            out.push_str(s);
            out.push('\n');
        }
        Node::Text(lines) => {
            out.push_str([" |", " |-", " >", " >-", " |+"][picks.next() as usize % 5]);
            out.push('\n');
            for line in lines {
                if !line.is_empty() {
                    out.push_str(&pad);
                    out.push_str("  ");
                }
                out.push_str(line);
                out.push('\n');
            }
        }
        Node::Seq(items) if items.is_empty() || picks.next().is_multiple_of(4) => {
            out.push_str(" [");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                match item {
                    Node::Scalar(s) => out.push_str(s),
                    _ => out.push('x'),
                }
            }
            out.push_str("]\n");
        }
        Node::Seq(items) => {
            out.push('\n');
            // Indentless (at the key's column) or indented.
            let at = if picks.next().is_multiple_of(2) {
                indent
            } else {
                indent + 2
            };
            for item in items {
                out.push_str(&" ".repeat(at));
                out.push('-');
                match item {
                    Node::Map(entries) if !entries.is_empty() && picks.next().is_multiple_of(2) => {
                        // Compact: the first key on the dash's line.
                        for (i, (key, value)) in entries.iter().enumerate() {
                            if i == 0 {
                                out.push(' ');
                            } else {
                                out.push_str(&" ".repeat(at + 2));
                            }
                            out.push_str(key);
                            out.push(':');
                            render(value, at + 2, picks, out);
                        }
                    }
                    other => render(other, at, picks, out),
                }
            }
        }
        Node::Map(entries) if entries.is_empty() || picks.next().is_multiple_of(5) => {
            out.push_str(" {");
            for (i, (key, value)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(key);
                out.push_str(": ");
                match value {
                    Node::Scalar(s) => out.push_str(s),
                    _ => out.push_str("[]"),
                }
            }
            out.push_str("}\n");
        }
        Node::Map(entries) => {
            out.push('\n');
            let at = indent + [2, 4, 1][picks.next() as usize % 3];
            for (key, value) in entries {
                out.push_str(&" ".repeat(at));
                out.push_str(key);
                out.push(':');
                if picks.next().is_multiple_of(7) {
                    out.push_str(" # comment");
                }
                render(value, at, picks, out);
            }
        }
    }
}

/// The rendering's style choices, drawn from a seed.
struct Picks(u64);

impl Picks {
    fn next(&mut self) -> u8 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 56) as u8
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn generated_documents_as_serde_saphyr_reads_them(
        entries in prop::collection::vec((prop::sample::select(vec!["apiVersion", "kind", "metadata", "spec", "data"]), node()), 1..5),
        seed in any::<u64>(),
    ) {
        let mut doc = String::new();
        let mut picks = Picks(seed);
        for (key, value) in &entries {
            doc.push_str(key);
            doc.push(':');
            render(value, 0, &mut picks, &mut doc);
        }
        agree(&doc, "a generated document");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Text made of YAML's punctuation and a little else: no reader panics, and whatever a
    /// reader returns is serde-saphyr's.
    #[test]
    fn yaml_punctuation_as_serde_saphyr_reads_it(text in "[a-c0-9:\\- #'\"\\[\\]{},|>&*!?\n\t~.]{0,60}") {
        agree(&text, "punctuation");
    }

    /// Any text at all.
    #[test]
    fn any_text_as_serde_saphyr_reads_it(text in "\\PC{0,40}(\n\\PC{0,40}){0,4}") {
        agree(&text, "any text");
    }
}
