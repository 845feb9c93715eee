//! Block-style YAML writer for config snapshots and state files.
//!
//! The run directory is shared with Python tooling that reads these files
//! with PyYAML's `yaml.safe_load`, so the output must load back to exactly
//! the `serde_json::Value` that was written, and should look like
//! `yaml.safe_dump(v, sort_keys=False, default_flow_style=False)` so files
//! written by either side diff cleanly. That needs PyYAML's YAML 1.1 rules
//! for which plain strings would load as something else (`yes`, `010`,
//! `1:30`, `2026-01-01`, ...) and its float spellings, hence this writer.
//!
//! Like PyYAML (default `allow_unicode=False`) the output is pure ASCII:
//! non-ASCII text is double-quoted with `\xXX` / `\uXXXX` / `\UXXXXXXXX`
//! escapes. Differences from PyYAML that do not change what is loaded back:
//! strings that cannot be plain are always double-quoted (PyYAML prefers
//! single quotes where it can), long lines are never folded, an empty key
//! is written `"": v` (PyYAML: `? ''`), and the one-letter words `y`/`n`
//! are quoted for the benefit of other YAML 1.1 readers.
//!
//! Float text comes from [`crate::vocab::canonical::python_float_repr`].

use crate::vocab::canonical::python_float_repr;
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// Renders `v` as block-style YAML ending with a newline.
///
/// Map key order is preserved; empty collections are written `{}` / `[]`;
/// a top-level plain scalar is followed by the `...` document end marker,
/// as PyYAML does.
pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(map) if !map.is_empty() => write_mapping(&mut out, map, 0, false),
        Value::Array(items) if !items.is_empty() => write_sequence(&mut out, items, 0, false),
        _ => {
            let (text, plain) = scalar(v);
            out.push_str(&text);
            out.push('\n');
            if plain {
                out.push_str("...\n");
            }
        }
    }
    out
}

/// Spells a float the way PyYAML's `represent_float` does: lowercase
/// `repr`, `.0` inserted before a bare exponent (`1.0e-05`), and
/// `.inf` / `-.inf` / `.nan`.
fn yaml_float(x: f64) -> String {
    if x.is_nan() {
        return ".nan".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { ".inf" } else { "-.inf" }.to_owned();
    }
    let repr = python_float_repr(x).to_ascii_lowercase();
    if !repr.contains('.') && repr.contains('e') {
        repr.replacen('e', ".0e", 1)
    } else {
        repr
    }
}

/// Writes the entries of a non-empty map at `indent`. With `inline_first`
/// the cursor already sits after a `- ` (or `: `) indicator, so the first
/// key goes on the current line.
fn write_mapping(out: &mut String, map: &Map<String, Value>, indent: usize, inline_first: bool) {
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 || !inline_first {
            pad(out, indent);
        }
        let key_text = string_scalar(key).0;
        // PyYAML's simple-key limit is 128 including the 5-char `!!str` tag.
        let simple = key.chars().count() < 123 && !key.chars().any(is_line_break);
        if simple {
            out.push_str(&key_text);
            out.push(':');
            write_after_key(out, value, indent);
        } else {
            // PyYAML's explicit-key form for long or multi-line keys.
            out.push_str("? ");
            out.push_str(&key_text);
            out.push('\n');
            pad(out, indent);
            out.push_str(": ");
            write_after_indicator(out, value, indent + 2);
        }
    }
}

/// Writes the items of a non-empty list at `indent` (see [`write_mapping`]).
fn write_sequence(out: &mut String, items: &[Value], indent: usize, inline_first: bool) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !inline_first {
            pad(out, indent);
        }
        out.push_str("- ");
        write_after_indicator(out, item, indent + 2);
    }
}

/// Value of a simple `key:`: nested maps indented by 2 on the next lines,
/// lists at the key's own indent (PyYAML's indentless sequences).
fn write_after_key(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_mapping(out, map, indent + 2, false);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_sequence(out, items, indent, false);
        }
        _ => {
            out.push(' ');
            out.push_str(&scalar(value).0);
            out.push('\n');
        }
    }
}

/// Value right after a `- ` / `: ` indicator: collections start inline.
fn write_after_indicator(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => write_mapping(out, map, indent, true),
        Value::Array(items) if !items.is_empty() => write_sequence(out, items, indent, true),
        _ => {
            out.push_str(&scalar(value).0);
            out.push('\n');
        }
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// Text of a scalar (or empty collection) and whether it is a plain scalar.
fn scalar(v: &Value) -> (String, bool) {
    match v {
        Value::Null => ("null".to_owned(), true),
        Value::Bool(b) => ((if *b { "true" } else { "false" }).to_owned(), true),
        Value::Number(n) => {
            let text = if let Some(i) = n.as_i64() {
                i.to_string()
            } else if let Some(u) = n.as_u64() {
                u.to_string()
            } else if let Some(f) = n.as_f64() {
                yaml_float(f)
            } else {
                n.to_string()
            };
            (text, true)
        }
        Value::String(s) => string_scalar(s),
        Value::Object(_) => ("{}".to_owned(), false),
        Value::Array(_) => ("[]".to_owned(), false),
    }
}

/// A string as a plain scalar when PyYAML would read it back unchanged,
/// otherwise double-quoted.
fn string_scalar(s: &str) -> (String, bool) {
    if plain_allowed(s) && !resolves_to_non_string(s) {
        return (s.to_owned(), true);
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        let escape = match c {
            '\0' => "\\0",
            '\u{07}' => "\\a",
            '\u{08}' => "\\b",
            '\t' => "\\t",
            '\n' => "\\n",
            '\u{0b}' => "\\v",
            '\u{0c}' => "\\f",
            '\r' => "\\r",
            '\u{1b}' => "\\e",
            '"' => "\\\"",
            '\\' => "\\\\",
            '\u{85}' => "\\N",
            '\u{a0}' => "\\_",
            '\u{2028}' => "\\L",
            '\u{2029}' => "\\P",
            ' '..='~' => {
                out.push(c);
                continue;
            }
            _ => {
                // Same as PyYAML with its default allow_unicode=False.
                let code = u32::from(c);
                let _ = match code {
                    0..=0xff => write!(out, "\\x{code:02X}"),
                    0x100..=0xffff => write!(out, "\\u{code:04X}"),
                    _ => write!(out, "\\U{code:08X}"),
                };
                continue;
            }
        };
        out.push_str(escape);
    }
    out.push('"');
    (out, false)
}

fn is_line_break(c: char) -> bool {
    matches!(c, '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// The scanner-level part of PyYAML's `analyze_scalar` for block context
/// (with its default `allow_unicode=False`): may `s` be written plain?
fn plain_allowed(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || !b.iter().all(|c| (b' '..=b'~').contains(c)) {
        return false;
    }
    if s.starts_with("---") || s.starts_with("...") || s.starts_with(' ') || s.ends_with(' ') {
        return false;
    }
    // Only spaces can be whitespace here: everything else was rejected above.
    let followed_by_space = |i: usize| i + 1 >= b.len() || b[i + 1] == b' ';
    match b[0] {
        b'#' | b',' | b'[' | b']' | b'{' | b'}' | b'&' | b'*' | b'!' | b'|' | b'>' | b'\''
        | b'"' | b'%' | b'@' | b'`' => return false,
        b'?' | b':' | b'-' if followed_by_space(0) => return false,
        _ => {}
    }
    for i in 1..b.len() {
        if b[i] == b':' && followed_by_space(i) {
            return false;
        }
        if b[i] == b'#' && b[i - 1] == b' ' {
            return false;
        }
    }
    true
}

/// Would PyYAML's implicit resolvers (YAML 1.1: bool, null, int, float,
/// timestamp, merge, value) type the plain text `s` as something other than
/// a string? `y`/`n` are included although PyYAML itself does not resolve
/// them.
fn resolves_to_non_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE",
        "on", "On", "ON", "off", "Off", "OFF", "y", "Y", "n", "N", "~", "null", "Null", "NULL", "",
        "<<", "=",
    ];
    WORDS.contains(&s) || is_yaml_int(s) || is_yaml_float(s) || is_yaml_timestamp(s)
}

fn all_bytes(s: &str, f: impl Fn(u8) -> bool) -> bool {
    s.bytes().all(f)
}

fn strip_sign(s: &str) -> &str {
    s.strip_prefix(['-', '+']).unwrap_or(s)
}

fn is_digit_or_underscore(c: u8) -> bool {
    c.is_ascii_digit() || c == b'_'
}

/// `[0-9][0-9_]*`, or `[1-9][0-9_]*` when `nonzero_lead`.
fn is_digit_run(s: &str, nonzero_lead: bool) -> bool {
    match s.as_bytes().first() {
        Some(b'0') if nonzero_lead => false,
        Some(c) if c.is_ascii_digit() => all_bytes(&s[1..], is_digit_or_underscore),
        _ => false,
    }
}

/// `LEAD(:[0-5]?[0-9])+`, the sexagesimal form shared by int and float.
fn is_sexagesimal(s: &str, nonzero_lead: bool) -> bool {
    let mut parts = s.split(':');
    let lead_ok = parts.next().is_some_and(|p| is_digit_run(p, nonzero_lead));
    let mut rest = parts.peekable();
    lead_ok
        && rest.peek().is_some()
        && rest.all(|p| match p.as_bytes() {
            [d] => d.is_ascii_digit(),
            [a, d] => (b'0'..=b'5').contains(a) && d.is_ascii_digit(),
            _ => false,
        })
}

fn is_yaml_int(s: &str) -> bool {
    let body = strip_sign(s);
    if let Some(r) = body.strip_prefix("0b") {
        return !r.is_empty() && all_bytes(r, |c| matches!(c, b'0' | b'1' | b'_'));
    }
    if let Some(r) = body.strip_prefix("0x") {
        return !r.is_empty() && all_bytes(r, |c| c.is_ascii_hexdigit() || c == b'_');
    }
    if let Some(r) = body.strip_prefix('0') {
        return r.is_empty() || all_bytes(r, |c| matches!(c, b'0'..=b'7' | b'_'));
    }
    is_digit_run(body, true) || is_sexagesimal(body, true)
}

/// `[eE][-+][0-9]+` (or nothing).
fn is_optional_exponent(s: &str) -> bool {
    match s.as_bytes() {
        [] => true,
        [b'e' | b'E', b'-' | b'+', digits @ ..] => {
            !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
        }
        _ => false,
    }
}

fn is_yaml_float(s: &str) -> bool {
    if matches!(s, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    if let Some(r) = s.strip_prefix('.') {
        // `\.[0-9][0-9_]*([eE][-+][0-9]+)?` (unsigned only).
        let end = r.find(['e', 'E']).unwrap_or(r.len());
        if is_digit_run(&r[..end], false) && is_optional_exponent(&r[end..]) {
            return true;
        }
    }
    let body = strip_sign(s);
    if matches!(body, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    let Some((int_part, frac)) = body.split_once('.') else {
        return false;
    };
    // `[0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)?`
    let end = frac.find(['e', 'E']).unwrap_or(frac.len());
    if is_digit_run(int_part, false)
        && all_bytes(&frac[..end], is_digit_or_underscore)
        && is_optional_exponent(&frac[end..])
    {
        return true;
    }
    // `[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*`
    is_sexagesimal(int_part, false) && all_bytes(frac, is_digit_or_underscore)
}

/// PyYAML's timestamp resolver: `YYYY-MM-DD`, or a date-time like
/// `2001-12-14t21:59:43.10-05:00` / `2001-12-14 21:59:43.10 Z`.
fn is_yaml_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    // Consumes between `min` and `max` ASCII digits.
    let digits = |i: &mut usize, min: usize, max: usize| {
        let start = *i;
        while *i < b.len() && *i - start < max && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start >= min
    };
    let byte = |i: &mut usize, want: &[u8]| {
        let ok = *i < b.len() && want.contains(&b[*i]);
        if ok {
            *i += 1;
        }
        ok
    };
    if b.len() == 10 {
        let short_date = digits(&mut i, 4, 4)
            && byte(&mut i, b"-")
            && digits(&mut i, 2, 2)
            && byte(&mut i, b"-")
            && digits(&mut i, 2, 2);
        if short_date {
            return true;
        }
        i = 0;
    }
    let date = digits(&mut i, 4, 4)
        && byte(&mut i, b"-")
        && digits(&mut i, 1, 2)
        && byte(&mut i, b"-")
        && digits(&mut i, 1, 2);
    if !date {
        return false;
    }
    if !byte(&mut i, b"Tt") {
        let mut spaces = 0;
        while byte(&mut i, b" \t") {
            spaces += 1;
        }
        if spaces == 0 {
            return false;
        }
    }
    let time = digits(&mut i, 1, 2)
        && byte(&mut i, b":")
        && digits(&mut i, 2, 2)
        && byte(&mut i, b":")
        && digits(&mut i, 2, 2);
    if !time {
        return false;
    }
    if byte(&mut i, b".") {
        digits(&mut i, 0, usize::MAX);
    }
    if i == b.len() {
        return true;
    }
    // Optional zone: `[ \t]*(Z|[-+][0-9][0-9]?(:[0-9][0-9])?)`.
    while byte(&mut i, b" \t") {}
    if byte(&mut i, b"Z") {
        return i == b.len();
    }
    byte(&mut i, b"-+")
        && digits(&mut i, 1, 2)
        && (i == b.len() || (byte(&mut i, b":") && digits(&mut i, 2, 2)))
        && i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reference_config_snapshot() {
        let v = json!({
            "run_id": "20261121-141848-c68a71a9",
            "runs_dir": "/home/researcher/tb/runs",
            "mode": "stub",
            "seeds": [123],
            "max_workers": 1,
            "fail_fast": false,
            "resume": "auto",
            "job_timeout": null,
            "tasks": [{"id": "internal:numeric_param", "eval_kwargs": {}}],
            "llm": {},
            "tags": [],
            "trainers": [{
                "id": "PrioritySearch",
                "params_variants": [{"ps_steps": 1, "ps_batches": 1}],
                "optimizer": null
            }]
        });
        let want = "\
run_id: 20261121-141848-c68a71a9
runs_dir: /home/researcher/tb/runs
mode: stub
seeds:
- 123
max_workers: 1
fail_fast: false
resume: auto
job_timeout: null
tasks:
- id: internal:numeric_param
  eval_kwargs: {}
llm: {}
tags: []
trainers:
- id: PrioritySearch
  params_variants:
  - ps_steps: 1
    ps_batches: 1
  optimizer: null
";
        assert_eq!(to_yaml(&v), want);
    }

    #[test]
    fn nested_maps_and_lists() {
        let v = json!({
            "outer": {"inner": {"leaf": 1}, "list": [1, [2, 3], {"a": [], "b": {}}]},
            "matrix": [[1, 2], [{"x": 1, "y": 2}]]
        });
        let want = r#"outer:
  inner:
    leaf: 1
  list:
  - 1
  - - 2
    - 3
  - a: []
    b: {}
matrix:
- - 1
  - 2
- - x: 1
    "y": 2
"#;
        assert_eq!(to_yaml(&v), want);
    }

    #[test]
    fn floats_like_pyyaml() {
        let v = json!({
            "a": 1.0, "b": 0.1, "c": 1e-05, "d": 1.5e-05, "e": 1e16, "f": -0.0,
            "g": 1234567890123456.0, "h": 5e-324, "i": -2.5, "j": 1.7976931348623157e308
        });
        let want = "\
a: 1.0
b: 0.1
c: 1.0e-05
d: 1.5e-05
e: 1.0e+16
f: -0.0
g: 1234567890123456.0
h: 5.0e-324
i: -2.5
j: 1.7976931348623157e+308
";
        assert_eq!(to_yaml(&v), want);
        assert_eq!(yaml_float(f64::INFINITY), ".inf");
        assert_eq!(yaml_float(f64::NEG_INFINITY), "-.inf");
        assert_eq!(yaml_float(f64::NAN), ".nan");
    }

    #[test]
    fn scalars_ints_bools_null() {
        let v = json!({"i": -7, "u": u64::MAX, "t": true, "f": false, "n": null});
        assert_eq!(
            to_yaml(&v),
            "i: -7\nu: 18446744073709551615\nt: true\nf: false\n\"n\": null\n"
        );
    }

    #[test]
    fn strings_that_would_resolve_are_quoted() {
        let quoted = [
            "",
            "yes",
            "No",
            "ON",
            "off",
            "y",
            "N",
            "true",
            "False",
            "null",
            "Null",
            "~",
            "123",
            "-5",
            "+1",
            "010",
            "0x1F",
            "0b101",
            "1_000",
            "1:30",
            "190:20:30",
            "0_7",
            ".5",
            "1.",
            "1.5",
            "-1.5e+3",
            "1.e-2",
            ".inf",
            "-.Inf",
            ".NaN",
            "1:30.5",
            "2026-01-01",
            "2026-13-45",
            "2026-1-1 10:00:00",
            "2001-12-14t21:59:43.10-05:00",
            "2001-12-14 21:59:43.10 Z",
            "2001-12-14T21:59:43+5",
            "<<",
            "=",
        ];
        for s in quoted {
            let (text, plain) = string_scalar(s);
            assert!(!plain, "{s:?} must be quoted, got {text}");
            assert_eq!(text, format!("\"{s}\""));
        }
        // Plain in PyYAML too: these do not match any YAML 1.1 resolver.
        let plain = [
            "abc",
            "yes please",
            "0o7",
            "09",
            "1e5",
            "1.5e5",
            "1e+5.",
            "-.5",
            "1:60",
            "0:30",
            "0x",
            "0b",
            "2026-01-01x",
            "2026-01-01T10:00",
            "20261121-141848-c68a71a9",
            "internal:numeric_param",
            "v1.2.3",
            "1.2.3",
            "nan",
            "inf",
            "-foo",
            "--lr",
            ":foo",
            "a:b",
            "a#b",
            "http://x.y/z?q=1#f",
            "x, y",
            "what?",
        ];
        for s in plain {
            let (text, is_plain) = string_scalar(s);
            assert!(is_plain, "{s:?} should stay plain, got {text}");
            assert_eq!(text, s);
        }
    }

    #[test]
    fn strings_with_indicators_and_escapes() {
        let v = json!({
            "lead": "- item", "colon": "a: b", "end": "ends:", "hash": "a #b",
            "bang": "!tag", "quote": "'q'", "space": " x", "trail": "x ",
            "doc": "--- x", "dots": "...", "multi": "line1\nline2\n",
            "ctrl": "\t\u{0}\u{1b}\u{7f}\"\\", "uni": "é😀\u{2028}\u{a0}\u{85}"
        });
        let want = r#"lead: "- item"
colon: "a: b"
end: "ends:"
hash: "a #b"
bang: "!tag"
quote: "'q'"
space: " x"
trail: "x "
doc: "--- x"
dots: "..."
multi: "line1\nline2\n"
ctrl: "\t\0\e\x7F\"\\"
uni: "\xE9\U0001F600\L\_\N"
"#;
        assert_eq!(to_yaml(&v), want);
    }

    #[test]
    fn keys_are_quoted_by_the_same_rules() {
        let v = json!({"yes": 1, "": 2, "1.5": 3, "a: b": 4, "plain key": 5});
        assert_eq!(
            to_yaml(&v),
            "\"yes\": 1\n\"\": 2\n\"1.5\": 3\n\"a: b\": 4\nplain key: 5\n"
        );
    }

    #[test]
    fn long_and_multiline_keys_use_explicit_form() {
        let short = "s".repeat(122);
        assert_eq!(
            to_yaml(&json!({ short.clone(): 1 })),
            format!("{short}: 1\n")
        );
        let long = "k".repeat(123);
        let mut map = Map::new();
        map.insert(long.clone(), json!({"a": 1, "b": [1]}));
        map.insert("two\nlines".to_owned(), json!("v"));
        let want = format!("? {long}\n: a: 1\n  b:\n  - 1\n? \"two\\nlines\"\n: v\n");
        assert_eq!(to_yaml(&Value::Object(map)), want);
    }

    #[test]
    fn top_level_non_mappings() {
        assert_eq!(to_yaml(&json!({})), "{}\n");
        assert_eq!(to_yaml(&json!([])), "[]\n");
        assert_eq!(to_yaml(&json!([1, "a"])), "- 1\n- a\n");
        assert_eq!(to_yaml(&json!("abc")), "abc\n...\n");
        assert_eq!(to_yaml(&json!(null)), "null\n...\n");
        assert_eq!(to_yaml(&json!("yes")), "\"yes\"\n");
    }
}
