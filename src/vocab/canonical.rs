//! Canonical JSON text and hashing, byte-compatible with the Python reference.
//!
//! trace-bench job ids are SHA-256 digests of a job description serialized
//! the way Python's `json.dumps(obj, sort_keys=True)` does it (default
//! separators `", "` / `": "`, `ensure_ascii=True`, floats spelled by
//! `repr`). The ids must equal the ones the Python reference produces, so
//! this module reproduces that text byte for byte rather than relying on
//! `serde_json`'s own (different) formatting.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// Serializes `v` exactly like Python's `json.dumps(v, sort_keys=True)`.
///
/// Object keys are sorted by Unicode code point at every level (Rust's
/// byte-wise `str` ordering on UTF-8 is the same order).
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    out
}

/// Spells `x` like Python's `repr(float)`, with `json.dumps` spellings for
/// the non-finite values (`Infinity`, `-Infinity`, `NaN`).
///
/// Uses the shortest round-trip digits; scientific notation when the decimal
/// exponent is `< -4` or `>= 16` (e.g. `1e-05`, `1.5e+16`), fixed notation
/// with a mandatory `.` otherwise (e.g. `0.0001`, `1234567890123456.0`).
pub fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "NaN".to_owned();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    // Ryu's shortest round-trip digits, which break a tie between two shortest candidates
    // by rounding half to even, as Python does (Rust's `{:e}` rounds it up).
    let (sign, digits, exp) = shortest_digits(x);
    let n = digits.len() as i32;

    let mut out = String::with_capacity(24);
    out.push_str(sign);
    if !(-4..16).contains(&exp) {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let exp_sign = if exp < 0 { '-' } else { '+' };
        let _ = write!(out, "e{exp_sign}{:02}", exp.unsigned_abs());
    } else if exp < 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
        out.push_str(&digits);
    } else if exp >= n - 1 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (exp - (n - 1)) as usize));
        out.push_str(".0");
    } else {
        let point = (exp + 1) as usize;
        out.push_str(&digits[..point]);
        out.push('.');
        out.push_str(&digits[point..]);
    }
    out
}

/// The sign, the significant digits (no leading or trailing zeros; "0" for zero) and the
/// decimal exponent of the first digit of finite `x`'s shortest round-trip form.
fn shortest_digits(x: f64) -> (&'static str, String, i32) {
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(x);
    let (sign, text) = match text.strip_prefix('-') {
        Some(t) => ("-", t),
        None => ("", text),
    };
    let (mantissa, exp) = match text.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().expect("ryu writes an integer exponent")),
        None => (text, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all = || int_part.bytes().chain(frac_part.bytes());
    let leading = all().take_while(|b| *b == b'0').count();
    let mut digits: String = all().skip(leading).map(char::from).collect();
    while digits.ends_with('0') {
        digits.pop();
    }
    if digits.is_empty() {
        return (sign, "0".to_owned(), 0);
    }
    (
        sign,
        digits,
        int_part.len() as i32 - leading as i32 - 1 + exp,
    )
}

/// `str({name: value})` in Python of the `names` entries of `params`, in that order (the
/// text OpenTrace's POLCA embeds and its AggregatedUpdate shows the aggregator); a missing
/// entry is `None`.
pub fn python_dict_repr(params: &crate::vocab::Kwargs, names: &[String]) -> String {
    let items: Vec<String> = names
        .iter()
        .map(|name| {
            let value = params.get(name).unwrap_or(&Value::Null);
            format!("{}: {}", python_str(name), python_repr(value))
        })
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// Python's `repr` of a JSON value (str, int, float, bool, None, list, dict).
pub fn python_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.to_string(),
            (_, Some(u)) => u.to_string(),
            _ => python_float_repr(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => python_str(s),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(python_repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", python_str(k), python_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Python's `repr` of a str: single quotes unless the text has one and no double quote.
fn python_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Full lowercase hex SHA-256 of the UTF-8 bytes of `text`.
pub fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The first `n` hex characters of [`sha256_hex`] (all 64 if `n >= 64`).
pub fn short_hash(text: &str, n: usize) -> String {
    let mut hex = sha256_hex(text);
    hex.truncate(n.min(hex.len()));
    hex
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(num) => {
            if let Some(i) = num.as_i64() {
                let _ = write!(out, "{i}");
            } else if let Some(u) = num.as_u64() {
                let _ = write!(out, "{u}");
            } else if let Some(f) = num.as_f64() {
                out.push_str(&python_float_repr(f));
            } else {
                // Only reachable with serde_json's arbitrary_precision feature.
                out.push_str(&num.to_string());
            }
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, val)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_string(out, k);
                out.push_str(": ");
                write_value(out, val);
            }
            out.push('}');
        }
    }
}

/// Python's `ensure_ascii` string encoder: only `' '..='~'` stays raw.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smoke_job() -> Value {
        // Insertion order deliberately differs from sorted order.
        json!({
            "task_id": "internal:numeric_param",
            "trainer_id": "PrioritySearch",
            "seed": 123,
            "resolved_kwargs": {
                "trainer_kwargs": {
                    "num_epochs": 1,
                    "num_steps": 1,
                    "num_batches": 1,
                    "num_candidates": 2,
                    "num_proposals": 2
                },
                "optimizer": null,
                "optimizer_kwargs": {},
                "guide": null,
                "guide_kwargs": {},
                "logger": null,
                "logger_kwargs": {},
                "eval_kwargs": {}
            }
        })
    }

    #[test]
    fn smoke_job_matches_python_reference() {
        let v = smoke_job();
        assert_eq!(
            v.as_object().unwrap().keys().next().map(String::as_str),
            Some("task_id"),
            "insertion order must be preserved so sorting is actually exercised"
        );
        let text = canonical_json(&v);
        assert_eq!(
            text,
            r#"{"resolved_kwargs": {"eval_kwargs": {}, "guide": null, "guide_kwargs": {}, "logger": null, "logger_kwargs": {}, "optimizer": null, "optimizer_kwargs": {}, "trainer_kwargs": {"num_batches": 1, "num_candidates": 2, "num_epochs": 1, "num_proposals": 2, "num_steps": 1}}, "seed": 123, "task_id": "internal:numeric_param", "trainer_id": "PrioritySearch"}"#
        );
        assert_eq!(short_hash(&text, 12), "806f391306ae");
        assert!(sha256_hex(&text).starts_with("806f391306ae"));
    }

    #[test]
    fn sha256_known_vectors() {
        assert_eq!(
            sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(short_hash("abc", 0), "");
        assert_eq!(short_hash("abc", 8), "ba7816bf");
        assert_eq!(short_hash("abc", 100).len(), 64);
    }

    #[test]
    fn float_repr_matches_python() {
        // Expected strings produced by CPython 3.11 `json.dumps`.
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (0.001, "0.001"),
            (0.0001, "0.0001"),
            (0.00012345, "0.00012345"),
            (1e-05, "1e-05"),
            (1.5e-05, "1.5e-05"),
            (1e15, "1000000000000000.0"),
            (1234567890123456.0, "1234567890123456.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e22, "1e+22"),
            (1e100, "1e+100"),
            (123456789.123, "123456789.123"),
            (5e-324, "5e-324"),
            (2.2250738585072014e-308, "2.2250738585072014e-308"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (-1.7976931348623157e308, "-1.7976931348623157e+308"),
            (0.30000000000000004, "0.30000000000000004"),
            (1.0 / 3.0, "0.3333333333333333"),
            (100.0, "100.0"),
            (12345.678, "12345.678"),
            // Exactly -660307971669414.25: a tie between ...414.2 and ...414.3
            // at the shortest length; Python rounds half to even.
            (f64::from_bits(0xc302_c45f_70bf_ed32), "-660307971669414.2"),
            (0.5, "0.5"),
            (2.5e-5, "2.5e-05"),
            (9.5, "9.5"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (f64::NAN, "NaN"),
        ];
        for (x, want) in cases {
            assert_eq!(python_float_repr(*x), *want, "repr of {x:?}");
        }
    }

    /// The digits of `x` correctly rounded (ties to even) at the length of Rust's shortest
    /// form: what Python's repr prints, computed the slow way.
    fn exact_oracle(x: f64) -> String {
        fn split(sci: &str) -> (&'static str, String, i32) {
            let (m, e) = sci.split_once('e').unwrap();
            let e = e.parse().unwrap();
            let (sign, m) = match m.strip_prefix('-') {
                Some(m) => ("-", m),
                None => ("", m),
            };
            (sign, m.chars().filter(|c| *c != '.').collect(), e)
        }
        let (sign, digits, _) = split(&format!("{x:e}"));
        let (_, mut digits, exp) = split(&format!("{x:.*e}", digits.len() - 1));
        while digits.len() > 1 && digits.ends_with('0') {
            digits.pop();
        }
        format!("{sign}{digits}e{exp}")
    }

    #[test]
    fn shortest_digits_are_the_correctly_rounded_ones() {
        let mut state: u64 = 0x9E3779B97F4A7C15;
        for i in 0..200_000u64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let x = match i % 4 {
                0 => f64::from_bits(state),
                1 => {
                    (state >> 11) as f64 / (1u64 << 53) as f64
                        * 10f64.powi((state % 45) as i32 - 22)
                }
                2 => (state >> 11) as f64 / (1u64 << (state % 8)) as f64,
                _ => ((state % 2_000_000) as f64 - 1e6) / 1e3,
            };
            if !x.is_finite() {
                continue;
            }
            let (sign, digits, exp) = shortest_digits(x);
            assert_eq!(
                format!("{sign}{digits}e{exp}"),
                exact_oracle(x),
                "{x:?} bits {:#x}",
                x.to_bits()
            );
        }
    }

    #[test]
    fn floats_inside_values() {
        let v = json!({"b": [0.5, 1e-7, 3], "a": -0.0});
        assert_eq!(canonical_json(&v), r#"{"a": -0.0, "b": [0.5, 1e-07, 3]}"#);
    }

    #[test]
    fn integers_plain() {
        let v = json!([0, -1, i64::MIN, i64::MAX, u64::MAX]);
        assert_eq!(
            canonical_json(&v),
            "[0, -1, -9223372036854775808, 9223372036854775807, 18446744073709551615]"
        );
    }

    #[test]
    fn string_escapes_match_python() {
        // Expected text produced by CPython 3.11 `json.dumps(..., sort_keys=True)`.
        let v = json!([
            "quote\" back\\ slash/",
            "\n\r\t\u{08}\u{0c}",
            "\u{00}\u{01}\u{1f}\u{7f}",
            "é",
            "😀",
            "\u{2028}\u{ffff}",
            "plain ascii ~"
        ]);
        assert_eq!(
            canonical_json(&v),
            r#"["quote\" back\\ slash/", "\n\r\t\b\f", "\u0000\u0001\u001f\u007f", "\u00e9", "\ud83d\ude00", "\u2028\uffff", "plain ascii ~"]"#
        );
    }

    #[test]
    fn keys_sorted_by_code_point_and_escaped() {
        let v = json!({"é": 1, "z": 2, "Z": 3, "a": 4, "😀": 5, "\u{ffff}": 6, "": 7});
        assert_eq!(
            canonical_json(&v),
            r#"{"": 7, "Z": 3, "a": 4, "z": 2, "\u00e9": 1, "\uffff": 6, "\ud83d\ude00": 5}"#
        );
    }

    #[test]
    fn nested_lists_of_maps_and_empties() {
        let v = json!({
            "list": [{"y": [], "x": {}}, [{"b": null, "a": true}], false],
            "empty_map": {},
            "empty_list": []
        });
        assert_eq!(
            canonical_json(&v),
            r#"{"empty_list": [], "empty_map": {}, "list": [{"x": {}, "y": []}, [{"a": true, "b": null}], false]}"#
        );
        assert_eq!(canonical_json(&json!({})), "{}");
        assert_eq!(canonical_json(&json!([])), "[]");
        assert_eq!(canonical_json(&json!("s")), r#""s""#);
        assert_eq!(canonical_json(&Value::Null), "null");
    }

    #[test]
    fn float_repr_round_trips_quick_fuzz() {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut checked = 0;
        for i in 0..2000 {
            let bits = next();
            // Alternate raw bit patterns (all magnitudes, subnormals) with
            // "everyday" values around the fixed/scientific boundaries.
            let x = match i % 3 {
                0 => f64::from_bits(bits),
                1 => {
                    let exp = (bits % 45) as i32 - 22;
                    (bits >> 11) as f64 / (1u64 << 53) as f64 * 10f64.powi(exp)
                }
                // Few fractional bits: provokes round-half-even ties.
                _ => (bits >> 11) as f64 / (1u64 << (bits % 8)) as f64,
            };
            if !x.is_finite() {
                continue;
            }
            let s = python_float_repr(x);
            let back: f64 = s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"));
            assert_eq!(back.to_bits(), x.to_bits(), "{x:?} -> {s}");
            // Same number of significant digits as Rust's shortest form.
            let significant = |t: &str| {
                let digits: String = t
                    .chars()
                    .take_while(|c| *c != 'e')
                    .filter(char::is_ascii_digit)
                    .collect();
                digits.trim_matches('0').len()
            };
            assert_eq!(
                significant(&s),
                significant(&format!("{x:e}")),
                "{x:?} -> {s}"
            );
            checked += 1;
        }
        assert!(checked > 1900);
    }
}
