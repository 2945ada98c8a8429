//! Plain (unquoted) scalars: what one is, when that is certain.
//!
//! serde-saphyr types a plain scalar by the YAML 1.2 core schema plus YAML 1.1 spellings
//! (`yes`, `on`, legacy octal `0440`, sexagesimal `1:30`, `.inf`…). The fast readers only
//! decide the spellings whose type is beyond doubt and leave every other one to serde-saphyr
//! (`None`); `fast_yaml`'s tests compare each answer with serde-saphyr's.

use serde_json::{Number, Value};

/// What the plain scalar `s` is, or `None` when serde-saphyr must decide.
pub(crate) fn plain(s: &str) -> Option<Value> {
    match s {
        "" | "~" | "null" => return Some(Value::Null),
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        _ => {}
    }
    let first = s.bytes().next()?;
    if first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.') {
        // A decimal integer without a redundant leading zero or a sign other than `-`.
        let digits = s.strip_prefix('-').unwrap_or(s);
        if !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'))
        {
            return s
                .parse::<i64>()
                .ok()
                .map(|i| Value::Number(Number::from(i)));
        }
        // Anything a number, a timestamp or a non-finite float could be spelled with is left
        // to serde-saphyr: digits, hex digits, radix prefixes, signs, dots, exponents,
        // underscores, sexagesimal colons, date and time separators. Every one of them has a
        // digit, but for the non-finite floats caught below (`-c`, `--all` are text).
        let has_digit = s.bytes().any(|b| b.is_ascii_digit());
        if (has_digit || s.len() < 2)
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() || b"xXoObBeE_+-.:tTzZ ".contains(&b))
        {
            return None;
        }
        let lower = s.to_ascii_lowercase();
        if lower.contains("inf") || lower.contains("nan") {
            return None;
        }
        // `100m`, `25%`, `--port=80`, `1Gi`: a letter or sign no number has, so text.
        return Some(Value::String(s.to_owned()));
    }
    if first.is_ascii_alphabetic() {
        // Every other spelling of a boolean, null or non-finite float (YAML 1.1 `yes`/`on`,
        // `True`, `NULL`, `nan`, `inf`…).
        if s.len() <= 8
            && matches!(
                s.to_ascii_lowercase().as_str(),
                "y" | "yes"
                    | "n"
                    | "no"
                    | "on"
                    | "off"
                    | "true"
                    | "false"
                    | "null"
                    | "nan"
                    | "inf"
                    | "infinity"
            )
        {
            return None;
        }
        return Some(Value::String(s.to_owned()));
    }
    // `/healthz`, `$(POD_IP)`, `*.example.com` is not plain (an alias) and never reaches here.
    if matches!(
        first,
        b'/' | b'$' | b'(' | b'^' | b'\\' | b'~' | b';' | b'='
    ) && s != "="
    {
        return Some(Value::String(s.to_owned()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn certain_and_unsure_spellings() {
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
            "010",
            "0x10",
            "1.5",
            "1e3",
            ".inf",
            ".Inf",
            "-.inf",
            ".NaN",
            "-.5",
            "1_000",
            "yes",
            "On",
            "True",
            "NULL",
            "nan",
            "2026-01-01",
            "1:30",
            "-1.5",
            "+1",
            "=",
            "_x",
            "<<",
            "99999999999999999999",
        ] {
            assert_eq!(plain(unsure), None, "{unsure}");
        }
    }
}
