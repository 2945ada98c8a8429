//! The layering rules of ARCHITECTURE.md, checked on the sources: no module of `cluster` uses
//! `commands`, `ops`, `cli`, `display` or `signals`; no module of `ops` uses `commands`, `cli`
//! or `display`; `metrics` uses no module of the plugin; and no crate of the workspace has an import cycle between its modules.
//!
//! A module's imports are every `crate::…`, `super::…` and `self::…` path in it (`use` trees
//! expanded, paths in code too), plus `use child::…` of its own child modules, each resolved to
//! the deepest module it names. Comments, string literals and `#[cfg(test)]` modules are left
//! out: test code may reach across layers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A crate's modules (`""` is the root, `cluster::watch` a module) and their sources.
type Sources = BTreeMap<String, String>;
/// Which modules each module imports.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn read_crate(src: &Path) -> Sources {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .map(|e| e.expect("a directory entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                // `src/bin/*` are crates of their own.
                if p.parent() == Some(root) && p.file_name().is_some_and(|n| n == "bin") {
                    continue;
                }
                walk(&p, root, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, src, &mut files);
    let has_lib = src.join("lib.rs").exists();
    let mut sources = Sources::new();
    for f in files {
        let rel = f.strip_prefix(src).expect("under src");
        let mut parts: Vec<String> = rel
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let last = parts.pop().expect("a file name");
        let stem = last.trim_end_matches(".rs");
        match (parts.is_empty(), stem) {
            (true, "lib") => {}
            // The binary is a crate of its own that uses the library by name.
            (true, "main") if has_lib => continue,
            (true, "main") => {}
            (_, "mod") => {}
            _ => parts.push(stem.to_owned()),
        }
        let text = std::fs::read_to_string(&f)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", f.display()));
        sources.insert(parts.join("::"), text);
    }
    sources
}

/// The source without comments, string and char literals, and `#[cfg(test)]` modules.
fn code_only(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        if c[i] == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c[i] == 'r'
            && (next == Some('"') || next == Some('#'))
            && (i == 0 || !(c[i - 1].is_alphanumeric() || c[i - 1] == '_'))
        {
            // A raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                out.push(c[i]);
                i += 1;
                continue;
            }
            j += 1;
            while j < c.len() {
                if c[j] == '"' && (1..=hashes).all(|k| c.get(j + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c[i] == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c[i] == '\'' && (next == Some('\\') || c.get(i + 2) == Some(&'\'')) {
            // A char literal ('x', '\n', '\u{1F600}'); a lifetime ('a) stays.
            i += 1;
            while i < c.len() && c[i] != '\'' {
                if c[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    strip_test_modules(&out)
}

fn strip_test_modules(code: &str) -> String {
    let mut out = code.to_owned();
    while let Some(at) = out.find("#[cfg(test)]") {
        let rest = &out[at..];
        let end = match (rest.find('{'), rest.find(';')) {
            // `#[cfg(test)] mod tests;` (a file of its own: not read as this module's code).
            (_, Some(semi)) if rest.find('{').is_none_or(|b| semi < b) => at + semi + 1,
            (Some(open), _) => {
                let mut depth = 0;
                let mut end = out.len();
                for (k, ch) in out[at + open..].char_indices() {
                    match ch {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = at + open + k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            _ => out.len(),
        };
        out.replace_range(at..end, "");
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The paths of a `use` tree and the names they bind (`a::{b, c::{self, d as e}}` →
/// `(a::b, b)`, `(a::c, c)`, `(a::c::d, e)`).
fn use_paths(tree: &str) -> Vec<(String, String)> {
    fn expand(tree: &str, prefix: &str, out: &mut Vec<(String, String)>) {
        let tree = tree.trim();
        if let Some(open) = tree.find('{') {
            let head = tree[..open].trim().trim_end_matches("::");
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let base = join(prefix, head);
            let mut depth = 0;
            let mut start = 0;
            for (k, ch) in inner.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&inner[start..k], &base, out);
                        start = k + 1;
                    }
                    _ => {}
                }
            }
            expand(&inner[start..], &base, out);
        } else {
            let mut parts = tree.split(" as ");
            let path = parts.next().unwrap_or_default().trim();
            if path.is_empty() {
                return;
            }
            let mut full = join(prefix, path);
            if let Some(parent) = full.strip_suffix("::self") {
                full = parent.to_owned();
            }
            let bound = parts
                .next()
                .map(str::trim)
                .unwrap_or_else(|| full.rsplit("::").next().unwrap_or_default())
                .to_owned();
            out.push((full, bound));
        }
    }
    fn join(a: &str, b: &str) -> String {
        match (a.is_empty(), b.is_empty()) {
            (true, _) => b.to_owned(),
            (_, true) => a.to_owned(),
            _ => format!("{a}::{b}"),
        }
    }
    let mut out = Vec::new();
    expand(tree, "", &mut out);
    out
}

/// What a module's code names.
#[derive(Debug, Default)]
struct Named {
    /// Paths it uses: `use` trees expanded, and `crate::…`/`super::…`/`self::…` paths in code.
    uses: Vec<String>,
    /// `pub use` re-exports: `(path, name bound here)`. A re-export is an alias for its users,
    /// not a dependency of the module that makes it.
    reexports: Vec<(String, String)>,
}

fn named_paths(code: &str) -> Named {
    let mut named = Named::default();
    let mut rest = String::with_capacity(code.len());
    let mut from = 0;
    // `use` statements (also `pub use`, `pub(crate) use`), cut out of the code.
    while let Some(k) = find_word(&code[from..], "use") {
        let at = from + k;
        let end = code[at..].find(';').map_or(code.len(), |e| at + e);
        let before = code[..at].trim_end();
        let public = before.ends_with("pub")
            || (before.ends_with(')')
                && before
                    .rfind("pub(")
                    .is_some_and(|p| !before[p..].contains(['\n', ';', '}'])));
        for (path, bound) in use_paths(&code[at + 3..end]) {
            if public {
                named.reexports.push((path, bound));
            } else {
                named.uses.push(path);
            }
        }
        rest.push_str(&code[from..at]);
        from = (end + 1).min(code.len());
    }
    rest.push_str(&code[from..]);
    let chars: Vec<(usize, char)> = rest.char_indices().collect();
    for (n, &(at, _)) in chars.iter().enumerate() {
        let before = n.checked_sub(1).map(|p| chars[p].1);
        if before.is_some_and(|b| is_ident(b) || b == ':') {
            continue;
        }
        let tail = &rest[at..];
        if ["crate::", "super::", "self::"]
            .iter()
            .any(|p| tail.starts_with(p))
        {
            let len = tail
                .find(|ch: char| !(is_ident(ch) || ch == ':'))
                .unwrap_or(tail.len());
            named
                .uses
                .push(tail[..len].trim_end_matches(':').to_owned());
        }
    }
    named
}

fn find_word(s: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(k) = s[from..].find(word) {
        let at = from + k;
        let before = s[..at].chars().next_back();
        let after = s[at + word.len()..].chars().next();
        if !before.is_some_and(is_ident) && after.is_some_and(char::is_whitespace) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// Names modules re-export: `(module, name)` → the module the name comes from.
type Aliases = BTreeMap<(String, String), String>;

/// The module a path names, seen from `module`: the deepest known module it starts with, or,
/// when the next name is one that module re-exports, the module it re-exports it from.
/// `None` for other crates' paths.
fn resolve(
    module: &str,
    path: &str,
    modules: &BTreeSet<String>,
    aliases: &Aliases,
) -> Option<String> {
    let here: Vec<&str> = if module.is_empty() {
        Vec::new()
    } else {
        module.split("::").collect()
    };
    let mut segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut abs: Vec<&str> = match segs.first().copied() {
        Some("crate") => {
            segs.remove(0);
            Vec::new()
        }
        Some("self") => {
            segs.remove(0);
            here.clone()
        }
        Some("super") => {
            let mut up = here.clone();
            while segs.first() == Some(&"super") {
                segs.remove(0);
                up.pop();
            }
            up
        }
        // A 2018 relative path into a child module (`use client::Cluster` in `cluster`).
        Some(first) => {
            let child = if module.is_empty() {
                first.to_owned()
            } else {
                format!("{module}::{first}")
            };
            if !modules.contains(&child) {
                return None;
            }
            here.clone()
        }
        None => return None,
    };
    abs.extend(segs);
    let k = (0..=abs.len())
        .rev()
        .find(|k| modules.contains(&abs[..*k].join("::")))?;
    let found = abs[..k].join("::");
    Some(match abs.get(k) {
        Some(name) => aliases
            .get(&(found.clone(), (*name).to_owned()))
            .cloned()
            .unwrap_or(found),
        None => found,
    })
}

fn graph(sources: &Sources) -> Graph {
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    let named: BTreeMap<&String, Named> = sources
        .iter()
        .map(|(m, src)| (m, named_paths(&code_only(src))))
        .collect();
    // Re-exports of re-exports: resolve until nothing changes.
    let mut aliases = Aliases::new();
    for _ in 0..8 {
        let mut next = Aliases::new();
        for (m, n) in &named {
            for (path, bound) in &n.reexports {
                if let Some(target) = resolve(m, path, &modules, &aliases) {
                    next.insert(((*m).clone(), bound.clone()), target);
                }
            }
        }
        if next == aliases {
            break;
        }
        aliases = next;
    }
    named
        .iter()
        .map(|(m, n)| {
            let uses = n
                .uses
                .iter()
                .filter_map(|p| resolve(m, p, &modules, &aliases))
                .filter(|t| t != *m)
                .collect();
            ((*m).clone(), uses)
        })
        .collect()
}

/// The import cycles (each as the modules along it, the first repeated at the end).
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unseen,
        Open,
        Done,
    }
    fn visit(
        m: &str,
        g: &Graph,
        mark: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        mark.insert(m.to_owned(), Mark::Open);
        stack.push(m.to_owned());
        for next in g.get(m).into_iter().flatten() {
            match mark.get(next).copied().unwrap_or(Mark::Unseen) {
                Mark::Unseen => visit(next, g, mark, stack, found),
                Mark::Open => {
                    let from = stack.iter().position(|s| s == next).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    found.push(cycle);
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        mark.insert(m.to_owned(), Mark::Done);
    }
    let mut mark = BTreeMap::new();
    let mut found = Vec::new();
    for m in g.keys() {
        if mark.get(m).copied().unwrap_or(Mark::Unseen) == Mark::Unseen {
            visit(m, g, &mut mark, &mut Vec::new(), &mut found);
        }
    }
    found
}

fn under(module: &str, top: &str) -> bool {
    module == top || module.starts_with(&format!("{top}::"))
}

/// Imports that break a rule: `(module, imported module)` for every module under `layer` that
/// imports a module under one of `forbidden`.
fn violations(g: &Graph, layer: &str, forbidden: &[&str]) -> Vec<(String, String)> {
    g.iter()
        .filter(|(m, _)| under(m, layer))
        .flat_map(|(m, uses)| {
            uses.iter()
                .filter(|u| forbidden.iter().any(|f| under(u, f)))
                .map(move |u| (m.clone(), u.clone()))
        })
        .collect()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds the plugin")
        .to_owned()
}

#[test]
fn lower_layers_do_not_import_upper_ones() {
    let g = graph(&read_crate(&workspace().join("plugin/src")));
    // The scan sees the layers at all (a scan that finds nothing proves nothing).
    assert!(
        g["ops::update"].contains("cluster::patch"),
        "{:?}",
        g["ops::update"]
    );
    assert!(g["commands::update"].contains("ops::update"));
    assert!(g["cluster::watch"].contains("interrupt"));
    let cluster = violations(
        &g,
        "cluster",
        &["commands", "ops", "cli", "display", "signals"],
    );
    assert!(
        cluster.is_empty(),
        "cluster imports upper layers: {cluster:?}"
    );
    let ops = violations(&g, "ops", &["commands", "cli", "display"]);
    assert!(ops.is_empty(), "ops imports upper layers: {ops:?}");
    // `metrics` (Prometheus's HTTP API) is a bottom layer: it imports nothing of the plugin.
    let metrics = violations(
        &g,
        "metrics",
        &[
            "commands",
            "ops",
            "cluster",
            "cli",
            "display",
            "signals",
            "error",
            "exit",
            "interrupt",
            "text",
            "input",
            "report",
        ],
    );
    assert!(
        metrics.is_empty(),
        "metrics imports the plugin: {metrics:?}"
    );
    assert!(g["ops::gates"].contains("metrics"), "{:?}", g["ops::gates"]);
}

#[test]
fn no_crate_has_an_import_cycle() {
    let root = workspace();
    for krate in ["plugin", "policy", "webhook", "tests", "testkit"] {
        let sources = read_crate(&root.join(krate).join("src"));
        assert!(
            sources.len() > 1 || krate == "testkit",
            "{krate}: no modules read"
        );
        let found = cycles(&graph(&sources));
        assert!(
            found.is_empty(),
            "{krate}: import cycles between modules: {}",
            found
                .iter()
                .map(|c| c.join(" → "))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
}

#[test]
fn the_checker_sees_what_it_must() {
    let sources: Sources = [
        ("", "pub mod a; pub mod b; pub mod c; pub use b::inner::X as Y; pub const K: u8 = 1;"),
        (
            "a",
            "//! uses crate::c in a comment only\nuse crate::b::{self, inner::X};\nfn f() { let s = \"crate::c\"; let k = crate::K; }",
        ),
        ("b", "pub mod inner; use super::a as _; pub use inner::X;"),
        ("b::inner", "pub struct X; fn g() { crate::c::h() }"),
        (
            "c",
            "use crate::Y;\npub fn h() {}\n#[cfg(test)]\nmod tests { use crate::a; }",
        ),
    ]
    .into_iter()
    .map(|(m, s)| (m.to_owned(), s.to_owned()))
    .collect();
    let g = graph(&sources);
    assert_eq!(
        g["a"],
        BTreeSet::from(["".to_owned(), "b".to_owned(), "b::inner".to_owned()])
    );
    // `mod inner;` declares a module, `pub use inner::X` re-exports: neither is an import.
    assert_eq!(g["b"], BTreeSet::from(["a".to_owned()]));
    assert_eq!(g["b::inner"], BTreeSet::from(["c".to_owned()]));
    // `crate::Y` is `b::inner::X` re-exported by the root; test modules are left out.
    assert_eq!(g["c"], BTreeSet::from(["b::inner".to_owned()]));
    assert!(g[""].is_empty(), "{:?}", g[""]);
    let found = cycles(&g);
    assert_eq!(
        found,
        [vec!["a", "b", "a"], vec!["b::inner", "c", "b::inner"]]
    );
    assert_eq!(
        violations(&g, "b", &["c"]),
        [("b::inner".to_owned(), "c".to_owned())]
    );
    assert_eq!(
        use_paths("x::{y, z::{self, w as v}}"),
        [
            ("x::y".to_owned(), "y".to_owned()),
            ("x::z".to_owned(), "z".to_owned()),
            ("x::z::w".to_owned(), "v".to_owned())
        ]
    );
}
