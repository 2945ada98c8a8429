//! Namespace globs (`namespaceOverrides`, `excludedNamespaces`) as CEL over
//! `namespaceObject.metadata.name`.
//!
//! The chart's templates build the same text with Helm's `regexQuoteMeta` (Go's
//! `regexp.QuoteMeta`), so the escaping here follows Go's byte for byte.

use crate::rules::cel::{lit, re_lit};

/// The namespace of the object under admission, in every policy's CEL.
pub const NAMESPACE: &str = "namespaceObject.metadata.name";

/// A glob of `wildmatch` (`*` any run of characters, `?` one character, nothing else special)
/// as an anchored regular expression: the other characters as `regexp.QuoteMeta` escapes
/// them, `*` as `.*` and `?` as `.`.
pub fn glob_regex(glob: &str) -> String {
    let mut re = String::from("^");
    for c in glob.chars() {
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            // regexp.QuoteMeta's special characters.
            '\\' | '.' | '+' | '(' | ')' | '|' | '[' | ']' | '{' | '}' | '^' | '$' => {
                re.push('\\');
                re.push(c);
            }
            c => re.push(c),
        }
    }
    re.push('$');
    re
}

/// CEL true when the namespace matches any of `globs` (in parentheses): `==` for a plain
/// name, `matches` for a glob with `*` or `?`.
pub fn namespace_matches(globs: &[String]) -> String {
    let one = |g: &String| {
        if g.contains(['*', '?']) {
            format!("{NAMESPACE}.matches({})", re_lit(&glob_regex(g)))
        } else {
            format!("{NAMESPACE} == {}", lit(g))
        }
    };
    if globs.is_empty() {
        return "false".into();
    }
    format!(
        "({})",
        globs.iter().map(one).collect::<Vec<_>>().join(" || ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_become_anchored_expressions() {
        assert_eq!(glob_regex("dev-*"), "^dev-.*$");
        assert_eq!(glob_regex("a.b?"), r"^a\.b.$");
        assert_eq!(
            glob_regex("x+(y)|[z]{1}^$\\"),
            r"^x\+\(y\)\|\[z\]\{1\}\^\$\\$"
        );
        assert_eq!(
            namespace_matches(&["dev-*".into(), "sandbox".into()]),
            r"(namespaceObject.metadata.name.matches(r'^dev-.*$') || namespaceObject.metadata.name == 'sandbox')"
        );
        assert_eq!(
            namespace_matches(&["kube-system".into()]),
            "(namespaceObject.metadata.name == 'kube-system')"
        );
    }
}
