//! The rules in CEL, for in-cluster admission policies (`crate::admission_policy` turns them into
//! ValidatingAdmissionPolicies and a MutatingAdmissionPolicy): what [`super::Rule::cel`]
//! returns, and the pieces the rule files build it from.
//!
//! A form's expressions read `object` (and `oldObject`, `request`), the variables the export
//! defines for every policy (`variables.ref`: the object as the engine names it, e.g.
//! `Deployment shop/web`), the rule's parameters as `variables.<key>` (e.g.
//! `variables.minStartupSeconds`: the export binds them, per namespace when the policy file's
//! overrides change them), and the form's own variables. The message and fix reproduce the
//! engine's [`crate::Finding`] text for the first finding, so the API server's answer reads
//! like the webhook's.
//!
//! Kubernetes evaluates these within a runtime cost budget, so a form iterates each container
//! list once (a `filter`), nests a comprehension inside that only where it cannot be avoided
//! (RS105's ports), and uses only functions the API server has had since 1.30: the standard
//! library, the strings extension (`split`, `trim`, `upperAscii`, `join`, `replace`,
//! `indexOf`, `lastIndexOf`, `substring`) and Kubernetes' list library (`indexOf`, `max`).

use std::fmt::Write as _;

use super::RuleId;

/// A rule as CEL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CelForm {
    /// Named expressions the others read as `variables.<name>`, in order: each may read the
    /// ones before it. Evaluated lazily (a variable that is never read is never evaluated).
    pub variables: Vec<CelVariable>,
    /// True when the object breaks the rule (the engine has at least one finding).
    pub violation: String,
    /// The first finding's message (`Finding::message`); read only when `violation` holds.
    pub message: String,
    /// The first finding's fix (`Finding::fix`); read only when `violation` holds.
    pub fix: String,
    /// What the rule reads, which decides how an update that changes no pod template treats
    /// a finding the object already had (the webhook warns instead of denying).
    pub reads: CelReads,
    /// The fix as JSON Patch operations, for rules with a `mutate` action.
    pub mutation: Option<CelMutation>,
    /// Where the CEL form is deliberately weaker than the engine's check, and how. The
    /// catalogue (README table, docs/rules.md) shows it, and the differential test excludes
    /// exactly these cases.
    pub weaker: Option<&'static str>,
}

/// `variables.<name>` of an admission policy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CelVariable {
    pub name: String,
    pub expression: String,
}

impl CelVariable {
    pub fn new(name: impl Into<String>, expression: impl Into<String>) -> Self {
        CelVariable {
            name: name.into(),
            expression: expression.into(),
        }
    }
}

/// What a rule's check reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CelReads {
    /// The pod template only: when an update leaves the template alone, the old object had
    /// exactly the findings the new one has.
    Template,
    /// More of the object. `old_same` is true when `oldObject` has the finding the object
    /// has first (same field); it reads `oldObject` and the form's `old…` variables.
    Object { old_same: String },
    /// The object before an update: the rule only fires when the pod template changes.
    TemplateChange,
}

/// A rule's fix in a MutatingAdmissionPolicy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CelMutation {
    /// Variables only the mutation reads (after the form's own).
    pub variables: Vec<CelVariable>,
    /// A list of `JSONPatch{op, path, value}`: the fix, `[]` when there is nothing to fix.
    /// Evaluated on the object as the mutations before it left it; it must yield `[]` on an
    /// object it already fixed.
    pub patches: String,
}

// ---- building blocks ---------------------------------------------------------------------

/// A CEL string literal (single-quoted) of `s`.
pub fn lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A CEL literal of the regular expression `re`: raw (`r'...'`, backslashes as written) unless
/// it holds a quote or a line break.
pub fn re_lit(re: &str) -> String {
    if re.contains(['\'', '\n', '\r']) {
        lit(re)
    } else {
        format!("r'{re}'")
    }
}

/// CEL giving the string `expr` quoted as Rust's `{:?}` writes it, for text without control
/// characters: in double quotes, with `\` and `"` escaped.
pub fn debug_quoted(expr: &str) -> String {
    format!(
        "{q} + ({expr}).replace({bs}, {bs2}).replace({q}, {esc_q}) + {q}",
        q = lit("\""),
        bs = lit("\\"),
        bs2 = lit("\\\\"),
        esc_q = lit("\\\"")
    )
}

/// `has(a.b) && has(a.b.c)` for the path `a.b.c` (its first segment is the root variable).
pub fn has_path(path: &str) -> String {
    let segments: Vec<&str> = path.split('.').collect();
    (2..=segments.len())
        .map(|n| format!("has({})", segments[..n].join(".")))
        .collect::<Vec<_>>()
        .join(" && ")
}

/// The value at `path`, or `default` when it (or a parent) is missing.
pub fn or_default(path: &str, default: &str) -> String {
    format!("({} ? {path} : {default})", has_path(path))
}

/// A regular-expression class of the characters Rust's `str::trim` removes (Unicode
/// White_Space): RE2's `\s` is ASCII only (Rust's is Unicode), so the rest is spelled out.
pub const WHITE_SPACE: &str =
    r"[\s\x{0B}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}]";

/// The regular-expression class of the characters [`WHITE_SPACE`] does not match.
pub fn not_white_space() -> String {
    format!("[^{}]", &WHITE_SPACE[1..WHITE_SPACE.len() - 1])
}

/// The pod spec of the object `root`.
fn pod(root: &str) -> String {
    format!("{root}.spec.template.spec")
}

/// True when `root`'s `rollout-safe.dev/skip` annotation exempts it from `rule`, as
/// [`crate::check::Skip`] reads it: the rule among the comma-separated IDs (trimmed, ASCII
/// case-insensitive) and a skip-reason that is not blank.
pub fn exempt(rule: RuleId, root: &str) -> String {
    use crate::check::{SKIP_ANNOTATION, SKIP_REASON_ANNOTATION};
    let ann = format!("{root}.metadata.annotations");
    let id: String = rule
        .as_str()
        .chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
            } else {
                c.to_string()
            }
        })
        .collect();
    let entry = format!("(^|,){WHITE_SPACE}*{id}{WHITE_SPACE}*(,|$)");
    format!(
        "(has({ann}) && {skip} in {ann} && {reason} in {ann} && {ann}[{reason}].matches({not_blank}) && {ann}[{skip}].matches({entry}))",
        skip = lit(SKIP_ANNOTATION),
        reason = lit(SKIP_REASON_ANNOTATION),
        not_blank = re_lit(&not_white_space()),
        entry = re_lit(&entry),
    )
}

/// The variable every policy defines first: the object as [`crate::ObjectRef`] writes it.
pub fn ref_variable() -> CelVariable {
    CelVariable::new(
        "ref",
        "object.kind + ' ' + (has(object.metadata.namespace) ? object.metadata.namespace + '/' : '') + (has(object.metadata.name) ? object.metadata.name : '')",
    )
}

/// The variables the export defines beside a form's own: a form may not name its own so.
pub const RESERVED_VARIABLES: &[&str] = &["ref", "action", "grandfathered"];

/// The variables `containers` and `initContainers` of `root` (empty lists when absent); with a
/// `prefix`, `<prefix>Containers` and `<prefix>InitContainers`.
pub fn container_lists(root: &str, prefix: &str) -> Vec<CelVariable> {
    let pod = pod(root);
    let name = |n: &str| prefixed(prefix, n);
    vec![
        CelVariable::new(
            name("containers"),
            format!("{} ? {pod}.containers : []", has_path(&pod)),
        ),
        CelVariable::new(
            name("initContainers"),
            or_default(&format!("{pod}.initContainers"), "[]"),
        ),
    ]
}

/// `name` with `prefix` in camelCase: `("old", "replicas")` → `oldReplicas`.
pub fn prefixed(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        return name.to_string();
    }
    let mut c = name.chars();
    let first = c.next().map(|f| f.to_ascii_uppercase()).unwrap_or_default();
    format!("{prefix}{first}{}", c.as_str())
}

/// CEL true when the container `c` is a sidecar (an init container that keeps running).
pub const SIDECAR: &str = "has(c.restartPolicy) && c.restartPolicy == 'Always'";

/// A check of every app container (containers, then sidecars), as the engine's
/// `for ac in &w.app_containers` loops: the bad ones, the first of them and its field path.
///
/// Variables: `containers`, `initContainers`, `badContainers`, `badSidecars`, `first` (the
/// first bad app container) and `firstField` (`spec.template.spec.containers[i]`).
pub struct AppContainerCheck {
    /// CEL over one container `c`: true when it breaks the rule.
    pub bad: String,
}

impl AppContainerCheck {
    pub fn new(bad: impl Into<String>) -> Self {
        AppContainerCheck { bad: bad.into() }
    }

    pub fn variables(&self) -> Vec<CelVariable> {
        let bad = &self.bad;
        let mut v = container_lists("object", "");
        v.push(CelVariable::new(
            "badContainers",
            format!("variables.containers.filter(c, {bad})"),
        ));
        v.push(CelVariable::new(
            "badSidecars",
            format!("variables.initContainers.filter(c, {SIDECAR} && ({bad}))"),
        ));
        v.push(CelVariable::new(
            "first",
            "size(variables.badContainers) > 0 ? variables.badContainers[0] : variables.badSidecars[0]",
        ));
        v.push(CelVariable::new(
            "firstField",
            "size(variables.badContainers) > 0 ? 'spec.template.spec.containers[' + string(variables.containers.indexOf(variables.first)) + ']' : 'spec.template.spec.initContainers[' + string(variables.initContainers.indexOf(variables.first)) + ']'",
        ));
        v
    }

    pub fn violation(&self) -> String {
        "size(variables.badContainers) + size(variables.badSidecars) > 0".into()
    }

    /// `Report::container`'s message for the first bad container: `what` is CEL text, the
    /// field is its path plus `field_suffix` (e.g. `.readinessProbe`, CEL text too).
    pub fn message(what: &str, field_suffix: &str) -> String {
        format!(
            "variables.ref + ': container ' + {} + ' ' + ({what}) + ' (' + variables.firstField + {field_suffix} + ')'",
            debug_quoted("variables.first.name")
        )
    }

    /// JSON Patch operations, one per bad app container (containers, then sidecars): `op`
    /// makes one from the container `c` and the CEL text of its JSON Pointer
    /// (`/spec/template/spec/containers/0`).
    pub fn patches(op: impl Fn(&str) -> String) -> String {
        let each = |bad: &str, list: &str| {
            let pointer =
                format!("'/spec/template/spec/{list}/' + string(variables.{list}.indexOf(c))");
            format!("variables.{bad}.map(c, {})", op(&pointer))
        };
        format!(
            "{} + {}",
            each("badContainers", "containers"),
            each("badSidecars", "initContainers")
        )
    }
}

/// `Report::object`'s message: `what` (CEL) about the object, at `field` (literal).
pub fn object_message(what: &str, field: &str) -> String {
    format!(
        "variables.ref + ': ' + ({what}) + {}",
        lit(&format!(" ({field})"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_what_cel_needs() {
        assert_eq!(lit("a'b\\c"), r"'a\'b\\c'");
        assert_eq!(lit("x\ny\u{7}"), r"'x\ny\u0007'");
        assert_eq!(lit("× ≥"), "'× ≥'");
    }

    /// Every form's variables are CEL identifiers (as Kubernetes requires of variable names),
    /// named once, and clash neither with the export's own nor with the rule's parameters.
    #[test]
    fn variable_names_are_identifiers_and_unique() {
        let ident = |n: &str| {
            n.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        for rule in RuleId::ALL {
            let Some(form) = rule.cel() else { continue };
            let params: Vec<&str> = rule.param_docs().iter().map(|p| p.key).collect();
            let mut seen = std::collections::BTreeSet::new();
            let own = form
                .variables
                .iter()
                .chain(form.mutation.iter().flat_map(|m| &m.variables));
            for v in own {
                assert!(ident(&v.name), "{rule}: {:?} is not an identifier", v.name);
                assert!(seen.insert(v.name.clone()), "{rule}: {} twice", v.name);
                assert!(
                    !RESERVED_VARIABLES.contains(&v.name.as_str())
                        && !params.contains(&v.name.as_str()),
                    "{rule}: {} clashes with the export's variables or a parameter",
                    v.name
                );
            }
            for p in params {
                assert!(ident(p), "{rule}: parameter {p:?} is not an identifier");
            }
        }
    }

    #[test]
    fn has_path_checks_every_parent() {
        assert_eq!(has_path("o.a.b"), "has(o.a) && has(o.a.b)");
        assert_eq!(or_default("o.a", "1"), "(has(o.a) ? o.a : 1)");
    }
}
