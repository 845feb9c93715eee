//! YAML config loading that matches PyYAML's `yaml.safe_load` and keeps source locations.
//!
//! Why this exists: trace-bench reads the Python reference's YAML configs and hashes config
//! values into job ids. So a value must come out exactly as PyYAML 6 `SafeLoader` builds it.
//! PyYAML uses YAML 1.1 implicit typing (`yes` is a bool, `010` is 8, `1:30` is 90, `1e-5` is
//! a *string*), which no Rust YAML 1.2 library reproduces. So we take only events from
//! `yaml-rust2` and resolve types ourselves. We also keep a [`Span`] on every key and value,
//! so config errors can name `file:line:col`.
//!
//! Where we knowingly differ from PyYAML:
//! - An integer that overflows `i64` is kept as `Str` with the original text. PyYAML gives a
//!   big int.
//! - Timestamps (`2026-01-01`) stay strings. PyYAML gives `datetime`, which JSON can't hold.
//!   Only the core tags `!!str !!int !!float !!bool !!null !!map !!seq` and the non-specific
//!   `!` are accepted. Anything else (`!!timestamp`, `!!binary`, `!!set`, `!foo`) is an
//!   "unsupported tag" error.
//! - Mapping keys are always strings: the key scalar's text as written (`1`, `true`, `~`).
//!   Complex keys are errors. Duplicate keys are all kept; [`Node::get`] and
//!   [`Node::to_json`] use the last one, like a Python dict.
//! - Merge keys `<<`: entries come out in the order of the dict PyYAML builds. Merged keys
//!   come first; with a list of maps, the last map's keys come first and the first map wins.
//!   An explicit key replaces a merged one in its place. Other explicit keys follow.
//! - Spans: an empty value (`a:`) gets its key's span; yaml-rust2 would put it at the next
//!   token. An anchored block node points at its first key or item, not at `&anchor`. A
//!   block scalar (`|`, `>`) points at its first content line. An alias copies the anchored
//!   node, span included.

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, Parser, Tag};
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};

/// 1-based source position. `Span::default()` (0:0) means "no location", e.g. `--set`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub line: usize,
    pub col: usize,
}

/// A value and where it starts in the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

/// What PyYAML's safe loader can produce from a supported config.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// In source order. Duplicate keys are kept so the config layer can warn about them.
    Map(Vec<Entry>),
}

/// One `key: value` pair of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_span: Span,
    pub value: Node,
}

/// A parse or conversion error. Display prints `line:col: message` when there is a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub message: String,
    pub span: Span,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.span == Span::default() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}:{}: {}", self.span.line, self.span.col, self.message)
        }
    }
}

impl std::error::Error for YamlError {}

fn fail<T>(span: Span, message: impl Into<String>) -> Result<T, YamlError> {
    Err(YamlError {
        message: message.into(),
        span,
    })
}

/// Parses a single YAML document. `Ok(None)` means no document, or a document with no content.
pub fn parse(text: &str) -> Result<Option<Node>, YamlError> {
    let mut b = Builder {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        depth: 0,
    };
    b.next()?; // StreamStart
    let (ev, mark) = b.next()?;
    if ev == Event::StreamEnd {
        return Ok(None);
    }
    let (ev, mark) = if ev == Event::DocumentStart {
        b.next()?
    } else {
        (ev, mark)
    };
    let empty = matches!(&ev, Event::Scalar(s, TScalarStyle::Plain, _, None) if s.is_empty());
    let (root, _) = b.node(ev, mark)?;
    b.next()?; // DocumentEnd
    match b.next()? {
        (Event::StreamEnd, _) => Ok(if empty { None } else { Some(root) }),
        (_, mark) => fail(span(&mark), "expected a single YAML document"),
    }
}

/// Types an unquoted scalar like PyYAML's implicit resolver (for `--set key=value`).
/// Text PyYAML resolves but then cannot construct (`0b_`, `=`) stays a string.
pub fn resolve_plain_scalar(text: &str) -> Value {
    resolve_plain(text).unwrap_or_else(|_| Value::Str(text.to_string()))
}

impl Node {
    pub fn new(value: Value, span: Span) -> Self {
        Node { value, span }
    }

    /// Looks up `key` in a mapping. The last duplicate wins, as in a Python dict.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .rev()
                .find(|e| e.key == key)
                .map(|e| &e.value),
            _ => None,
        }
    }

    /// Type name for error messages.
    pub fn type_name(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Seq(_) => "list",
            Value::Map(_) => "mapping",
        }
    }

    /// Converts to JSON, keeping key order. Duplicates collapse like a Python dict (first
    /// position, last value). NaN and infinities are errors because JSON cannot hold them.
    pub fn to_json(&self) -> Result<serde_json::Value, YamlError> {
        use serde_json::Value as J;
        Ok(match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => match serde_json::Number::from_f64(*f) {
                Some(n) => J::Number(n),
                None => return fail(self.span, "non-finite number is not supported here"),
            },
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => {
                J::Array(items.iter().map(Node::to_json).collect::<Result<_, _>>()?)
            }
            Value::Map(entries) => {
                let mut map = serde_json::Map::new();
                for e in entries {
                    map.insert(e.key.clone(), e.value.to_json()?);
                }
                J::Object(map)
            }
        })
    }

    /// Builds a tree from JSON, giving every node and key `span`. Integers above `i64::MAX`
    /// become strings, like overflowing YAML integers.
    pub fn from_json(v: &serde_json::Value, span: Span) -> Node {
        use serde_json::Value as J;
        let value = match v {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) if n.is_u64() && n.as_i64().is_none() => Value::Str(n.to_string()),
            J::Number(n) => n
                .as_i64()
                .map_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN)), Value::Int),
            J::String(s) => Value::Str(s.clone()),
            J::Array(a) => Value::Seq(a.iter().map(|x| Node::from_json(x, span)).collect()),
            J::Object(o) => Value::Map(
                o.iter()
                    .map(|(k, x)| Entry {
                        key: k.clone(),
                        key_span: span,
                        value: Node::from_json(x, span),
                    })
                    .collect(),
            ),
        };
        Node { value, span }
    }
}

/// yaml-rust2 markers have 1-based lines but 0-based columns.
fn span(m: &Marker) -> Span {
    Span {
        line: m.line(),
        col: m.col() + 1,
    }
}

fn earlier(a: Span, b: Span) -> Span {
    if (b.line, b.col) < (a.line, a.col) {
        b
    } else {
        a
    }
}

/// Scanner messages with a lowercase first letter and no trailing period, like ours.
fn scan_error(e: ScanError) -> YamlError {
    let mut chars = e.info().trim_end_matches('.').chars();
    let first = chars
        .next()
        .map(|c| c.to_lowercase().collect::<String>())
        .unwrap_or_default();
    YamlError {
        message: first + chars.as_str(),
        span: span(e.marker()),
    }
}

const CORE: &str = "tag:yaml.org,2002:";
/// yaml-rust2 limits flow nesting but not block nesting, and we recurse.
const MAX_DEPTH: usize = 256;

/// The resolved tag (`!!int` arrives as `tag:yaml.org,2002:int`); `!` is the non-specific tag.
fn tag_name(tag: &Tag) -> String {
    format!("{}{}", tag.handle, tag.suffix)
}

/// A tag as the user would write it, for messages.
fn tag_display(name: &str) -> String {
    name.strip_prefix(CORE)
        .map_or_else(|| name.to_string(), |s| format!("!!{s}"))
}

/// Error for a core tag on the wrong kind of node, or for a tag we don't support.
fn tag_mismatch<T>(name: &str, found: &str, at: Span) -> Result<T, YamlError> {
    let shown = tag_display(name);
    match name.strip_prefix(CORE) {
        Some("str" | "int" | "float" | "bool" | "null" | "map" | "seq") => {
            fail(at, format!("tag {shown} cannot be used on a {found}"))
        }
        _ => fail(at, format!("unsupported tag {shown}")),
    }
}

/// Builds nodes from parser events. Anchors keep a scalar's raw text for aliases used as keys.
struct Builder<'a> {
    parser: Parser<std::str::Chars<'a>>,
    anchors: HashMap<usize, (Node, Option<String>)>,
    depth: usize,
}

impl Builder<'_> {
    fn next(&mut self) -> Result<(Event, Marker), YamlError> {
        self.parser.next_token().map_err(scan_error)
    }

    /// Builds the node that starts with `ev`, plus its raw text if it is a scalar.
    fn node(&mut self, ev: Event, mark: Marker) -> Result<(Node, Option<String>), YamlError> {
        let at = span(&mark);
        let (anchor, tag) = match &ev {
            Event::Scalar(_, _, a, t) | Event::SequenceStart(a, t) | Event::MappingStart(a, t) => {
                (*a, t.as_ref().map(tag_name))
            }
            Event::Alias(id) => {
                // The parser rejects unknown anchors, so a miss is an alias inside its own anchor.
                let found = self.anchors.get(id).cloned();
                return found.map_or_else(|| fail(at, "recursive alias is not supported"), Ok);
            }
            other => return fail(at, format!("unexpected YAML event {other:?}")),
        };
        let (node, raw) = if let Event::Scalar(text, style, ..) = ev {
            let value = scalar_value(&text, style, tag.as_deref()).map_err(|m| YamlError {
                message: m,
                span: at,
            })?;
            (Node::new(value, at), Some(text))
        } else {
            let is_map = matches!(ev, Event::MappingStart(..));
            match tag.as_deref() {
                Some(name)
                    if name != "!"
                        && name != format!("{CORE}{}", if is_map { "map" } else { "seq" }) =>
                {
                    return tag_mismatch(name, if is_map { "mapping" } else { "sequence" }, at);
                }
                _ => {}
            }
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return fail(at, "nesting is too deep");
            }
            let node = if is_map {
                self.mapping(at)?
            } else {
                self.sequence(at)?
            };
            self.depth -= 1;
            (node, None)
        };
        if anchor > 0 {
            self.anchors.insert(anchor, (node.clone(), raw.clone()));
        }
        Ok((node, raw))
    }

    /// A block sequence's start marker is its first `-`; a flow one's is `[`.
    fn sequence(&mut self, at: Span) -> Result<Node, YamlError> {
        let mut items = Vec::new();
        loop {
            let (ev, mark) = self.next()?;
            if ev == Event::SequenceEnd {
                let first = items.first().map_or(at, |n: &Node| earlier(at, n.span));
                return Ok(Node::new(Value::Seq(items), first));
            }
            items.push(self.node(ev, mark)?.0);
        }
    }

    /// A block mapping's start marker is at the first `:`, so its span is the first key's.
    fn mapping(&mut self, at: Span) -> Result<Node, YamlError> {
        let (mut explicit, mut merged, mut first) = (Vec::new(), Vec::new(), None);
        loop {
            let (ev, mark) = self.next()?;
            if ev == Event::MappingEnd {
                let value = Value::Map(apply_merge(explicit, merged));
                return Ok(Node::new(value, earlier(at, first.unwrap_or(at))));
            }
            let key_span = span(&mark);
            first.get_or_insert(key_span);
            let is_merge =
                matches!(&ev, Event::Scalar(s, TScalarStyle::Plain, _, None) if s == "<<");
            let ev = match ev {
                // As keys, PyYAML takes `=` as a string and `<<` as the merge key.
                Event::Scalar(s, TScalarStyle::Plain, a, None) if s == "=" || s == "<<" => {
                    Event::Scalar(s, TScalarStyle::SingleQuoted, a, None)
                }
                other => other,
            };
            let Some(key) = self.node(ev, mark)?.1 else {
                return fail(key_span, "complex mapping keys are not supported");
            };
            let (ev, mark) = self.next()?;
            let empty =
                matches!(&ev, Event::Scalar(s, TScalarStyle::Plain, 0, None) if s.is_empty());
            let mut value = self.node(ev, mark)?.0;
            if empty {
                value.span = key_span;
            }
            if is_merge {
                merged.extend(merge_source(value)?);
            } else {
                explicit.push(Entry {
                    key,
                    key_span,
                    value,
                });
            }
        }
    }
}

/// Entries a `<<` value contributes, in PyYAML's order (a list is merged last map first).
fn merge_source(value: Node) -> Result<Vec<Entry>, YamlError> {
    let items = match value.value {
        Value::Map(entries) => return Ok(entries),
        Value::Seq(items) => items,
        _ => {
            let found = value.type_name();
            return fail(
                value.span,
                format!("expected a mapping or list of mappings for merging, found {found}"),
            );
        }
    };
    let mut out = Vec::new();
    for item in items.into_iter().rev() {
        match item.value {
            Value::Map(entries) => out.extend(entries),
            _ => {
                return fail(
                    item.span,
                    format!("expected a mapping for merging, found {}", item.type_name()),
                );
            }
        }
    }
    Ok(out)
}

/// Orders entries like the dict PyYAML builds from `merged + explicit` (see module doc).
fn apply_merge(mut explicit: Vec<Entry>, merged: Vec<Entry>) -> Vec<Entry> {
    let mut unique: Vec<Entry> = Vec::new();
    for e in merged {
        match unique.iter_mut().find(|u| u.key == e.key) {
            Some(u) => *u = e,
            None => unique.push(e),
        }
    }
    let mut out = Vec::new();
    for m in unique {
        if explicit.iter().any(|e| e.key == m.key) {
            let (same, rest): (Vec<_>, Vec<_>) = explicit.into_iter().partition(|e| e.key == m.key);
            out.extend(same);
            explicit = rest;
        } else {
            out.push(m);
        }
    }
    out.extend(explicit);
    out
}

/// A scalar's value: an explicit tag's constructor, else implicit typing for plain scalars.
fn scalar_value(text: &str, style: TScalarStyle, tag: Option<&str>) -> Result<Value, String> {
    let Some(name) = tag else {
        return if style == TScalarStyle::Plain {
            resolve_plain(text)
        } else {
            Ok(Value::Str(text.into()))
        };
    };
    let bad = |what: &str| format!("invalid {what} {text:?} for tag {}", tag_display(name));
    match name.strip_prefix(CORE) {
        _ if name == "!" => resolve_plain(text), // PyYAML resolves `!` scalars even when quoted
        Some("str") => Ok(Value::Str(text.into())),
        Some("null") => Ok(Value::Null),
        Some("bool") => match text.to_lowercase().as_str() {
            "yes" | "true" | "on" => Ok(Value::Bool(true)),
            "no" | "false" | "off" => Ok(Value::Bool(false)),
            _ => Err(bad("boolean")),
        },
        Some("int") => match construct_int(text) {
            Ok(i) => Ok(Value::Int(i)),
            Err(IntError::Overflow) => Err(format!("integer {text:?} is out of range")),
            Err(IntError::Invalid) => Err(bad("integer")),
        },
        Some("float") => construct_float(text)
            .map(Value::Float)
            .ok_or_else(|| bad("float")),
        _ => tag_mismatch(name, "scalar", Span::default()).map_err(|e| e.message),
    }
}

/// PyYAML 6 implicit resolution. `Err` where PyYAML resolves a tag it then can't construct.
fn resolve_plain(text: &str) -> Result<Value, String> {
    Ok(match text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Value::Bool(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Value::Bool(false)
        }
        "=" => {
            return Err(
                "could not determine a constructor for the tag 'tag:yaml.org,2002:value'".into(),
            );
        }
        "<<" => return Err("a merge key `<<` is only allowed as a mapping key".into()),
        _ if is_float(text) => Value::Float(construct_float(text).ok_or("invalid float")?),
        _ if is_int(text) => match construct_int(text) {
            Ok(i) => Value::Int(i),
            Err(IntError::Overflow) => Value::Str(text.into()),
            Err(IntError::Invalid) => return Err(format!("invalid integer {text:?}")),
        },
        _ => Value::Str(text.into()),
    })
}

fn digit_(c: u8) -> bool {
    c.is_ascii_digit() || c == b'_'
}

/// Non-empty and every byte passes `f`.
fn all(s: &str, f: fn(u8) -> bool) -> bool {
    !s.is_empty() && s.bytes().all(f)
}

/// `[0-9][0-9_]*`
fn lead(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_digit()) && all(s, digit_)
}

/// One `:[0-5]?[0-9]` group of a sexagesimal number, without the colon.
fn sexa_part(p: &str) -> bool {
    matches!(p.as_bytes(), [b'0'..=b'9'] | [b'0'..=b'5', b'0'..=b'9'])
}

/// PyYAML's int regex: `[-+]?` then `0b[0-1_]+`, `0x[0-9a-fA-F_]+`, `0[0-7_]+`, `0`,
/// `[1-9][0-9_]*`, or `[1-9][0-9_]*(:[0-5]?[0-9])+`.
fn is_int(text: &str) -> bool {
    let r = text.strip_prefix(['-', '+']).unwrap_or(text);
    if let Some(b) = r.strip_prefix("0b") {
        return all(b, |c| matches!(c, b'0' | b'1' | b'_'));
    }
    if let Some(h) = r.strip_prefix("0x") {
        return all(h, |c| c.is_ascii_hexdigit() || c == b'_');
    }
    if let Some(o) = r.strip_prefix('0') {
        return o.is_empty() || all(o, |c| matches!(c, b'0'..=b'7' | b'_'));
    }
    let mut parts = r.split(':');
    parts.next().is_some_and(lead) && parts.all(sexa_part)
}

/// PyYAML's float regex: `[-+]?[0-9][0-9_]*\.[0-9_]*(e[-+][0-9]+)?`, unsigned
/// `\.[0-9][0-9_]*(e[-+][0-9]+)?`, `[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*`,
/// `[-+]?\.inf` and unsigned `\.nan` (inf/nan in three casings).
fn is_float(text: &str) -> bool {
    let r = text.strip_prefix(['-', '+']).unwrap_or(text);
    if matches!(r, ".inf" | ".Inf" | ".INF") || matches!(text, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let (mantissa, exp) = r.split_once(['e', 'E']).unwrap_or((r, "+0"));
    let exp_ok = exp.len() > 1
        && exp.starts_with(['-', '+'])
        && exp[1..].bytes().all(|c| c.is_ascii_digit());
    let Some((int, frac)) = mantissa.split_once('.') else {
        return false;
    };
    if !frac.bytes().all(digit_) {
        return false;
    }
    let mut parts = int.split(':');
    let head = parts.next().unwrap_or_default();
    if int.contains(':') {
        lead(head) && parts.all(sexa_part) && mantissa.len() == r.len()
    } else if head.is_empty() {
        r.len() == text.len() && frac.starts_with(|c: char| c.is_ascii_digit()) && exp_ok
    } else {
        lead(head) && exp_ok
    }
}

enum IntError {
    Invalid,
    Overflow,
}

/// PyYAML's `construct_yaml_int`: drop `_`, sign, then 0b / 0x / leading-0 octal / a:b / decimal.
fn construct_int(text: &str) -> Result<i64, IntError> {
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    let (neg, body) = split_sign(&clean);
    let digits = |s: &str, radix: u32| -> Result<i128, IntError> {
        if s.is_empty() {
            return Err(IntError::Invalid);
        }
        s.chars().try_fold(0i128, |acc, c| {
            let d = c.to_digit(radix).ok_or(IntError::Invalid)?;
            acc.checked_mul(radix.into())
                .and_then(|a| a.checked_add(d.into()))
                .ok_or(IntError::Overflow)
        })
    };
    let magnitude = match body.as_bytes() {
        [b'0', b'b', ..] => digits(&body[2..], 2)?,
        [b'0', b'x', ..] => digits(&body[2..], 16)?,
        [b'0', ..] => digits(body, 8)?,
        _ if body.contains(':') => body.split(':').try_fold(0i128, |acc, part| {
            let d = digits(part, 10)?;
            acc.checked_mul(60)
                .and_then(|a| a.checked_add(d))
                .ok_or(IntError::Overflow)
        })?,
        _ => digits(body, 10)?,
    };
    i64::try_from(if neg { -magnitude } else { magnitude }).map_err(|_| IntError::Overflow)
}

/// PyYAML's `construct_yaml_float`: drop `_`, lowercase, sign, .inf / .nan / a:b.c / float().
fn construct_float(text: &str) -> Option<f64> {
    let clean = text.replace('_', "").to_lowercase();
    let (neg, body) = split_sign(&clean);
    let sign = if neg { -1.0 } else { 1.0 };
    match body {
        ".inf" => Some(sign * f64::INFINITY),
        ".nan" => Some(f64::NAN),
        _ if body.contains(':') => {
            // Same summation order as PyYAML (least significant part first), for identical bits.
            let (mut value, mut base) = (0.0, 1.0);
            for part in body.rsplit(':') {
                value += part.parse::<f64>().ok()? * base;
                base *= 60.0;
            }
            Some(sign * value)
        }
        _ => body.parse::<f64>().ok().map(|v| sign * v),
    }
}

fn split_sign(s: &str) -> (bool, &str) {
    match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        parse(text).unwrap().unwrap()
    }
    fn val(text: &str) -> Value {
        root(&format!("v: {text}\n"))
            .get("v")
            .unwrap()
            .value
            .clone()
    }
    fn s(x: &str) -> Value {
        Value::Str(x.into())
    }
    fn sp(line: usize, col: usize) -> Span {
        Span { line, col }
    }
    fn keys(n: &Node) -> Vec<&str> {
        let Value::Map(e) = &n.value else { panic!() };
        e.iter().map(|e| e.key.as_str()).collect()
    }
    /// Whitespace-separated `text=expected` cases, checked through `parse` and `--set`.
    fn table(want: fn(&str) -> Value, cases: &str) {
        for case in cases.split_whitespace() {
            let (text, expected) = case.rsplit_once('=').unwrap();
            assert_eq!(val(text), want(expected), "{text}");
            assert_eq!(resolve_plain_scalar(text), want(expected), "{text}");
        }
    }
    fn int(w: &str) -> Value {
        Value::Int(w.parse().unwrap())
    }
    fn float(w: &str) -> Value {
        Value::Float(w.parse().unwrap())
    }

    #[test]
    fn implicit_types() {
        table(|_| Value::Null, "~=_ null=_ Null=_ NULL=_");
        table(
            |_| Value::Bool(true),
            "yes=_ Yes=_ YES=_ true=_ True=_ TRUE=_ on=_ On=_ ON=_",
        );
        table(
            |_| Value::Bool(false),
            "no=_ No=_ NO=_ false=_ False=_ FALSE=_ off=_ Off=_ OFF=_",
        );
        table(
            int,
            "0=0 -0=0 +5=5 42=42 -17=-17 1_000=1000 1__=1 010=8 -010=-8 00=0 0_=0
            0b101=5 -0b1_0=-2 0x1F=31 0xff_ff=65535 1:30=90 -1:30=-90 1:5=65 1:05:7=3907
            9223372036854775807=9223372036854775807 -9223372036854775808=-9223372036854775808",
        );
        table(
            float,
            "1.5=1.5 -2.25=-2.25 1.=1 .5=0.5 1.0e-5=0.00001 1.e+5=100000 .5e+3=500
            1_000.5=1000.5 6.8523015e+5=685230.15 1:30.5=90.5 190:20:30.15=685230.15
            .inf=inf -.Inf=-inf +.INF=inf",
        );
        // Strings for PyYAML: y/n, timestamps, `08`, an exponent without a dot or sign,
        // a signed `.5`/`.nan`. An i64 overflow keeps its text.
        table(
            s,
            "y=y n=n Y=Y yEs=yEs nULL=nULL 2026-01-01=2026-01-01 v1.0=v1.0 08=08 0o17=0o17
            1:60=1:60 0:30=0:30 1:3_0=1:3_0 _1=_1 9223372036854775808=9223372036854775808
            1e-5=1e-5 1.0e5=1.0e5 1e5=1e5 .5e3=.5e3 -.5=-.5 +.nan=+.nan ._5=._5 inf=inf",
        );
        for t in [".nan", ".NaN", ".NAN"] {
            assert!(matches!(val(t), Value::Float(f) if f.is_nan()), "{t}");
        }
        assert_eq!(resolve_plain_scalar("0x_"), s("0x_"));
        assert_eq!(resolve_plain_scalar("="), s("="));
    }

    #[test]
    fn quoting_and_explicit_tags() {
        let cases = [
            ("", Value::Null),
            ("'1'", s("1")),
            ("\"yes\"", s("yes")),
            ("''", s("")),
            ("|\n  10\n", s("10\n")),
            (">-\n  true\n", s("true")),
            ("!!str 1", s("1")),
            ("!!str", s("")),
            ("!!int '0x1F'", Value::Int(31)),
            ("!!float 1", Value::Float(1.0)),
            ("!!float \"1e5\"", Value::Float(1e5)),
            ("!!bool YeS", Value::Bool(true)),
            ("!!null foo", Value::Null),
            ("!<tag:yaml.org,2002:str> 5", s("5")),
            ("! '12'", Value::Int(12)), // PyYAML resolves `!` even when quoted
            (
                "!!seq [1]",
                Value::Seq(vec![Node::new(Value::Int(1), sp(1, 11))]),
            ),
            ("!!map {}", Value::Map(vec![])),
        ];
        for (text, want) in cases {
            assert_eq!(val(text), want, "{text}");
        }
        assert_eq!(root("=: 1\n").get("=").unwrap().value, Value::Int(1));
    }

    #[test]
    fn errors_with_spans() {
        // line:col | input (`\n` escaped) | message
        let cases = r#"
            2:4 | a: 1\n  b: 2\n | mapping values are not allowed in this context
            2:1 | a: [1,\n | while parsing a node, did not find expected node content
            2:1 | a: 1\n---\nb: 2\n | expected a single YAML document
            3:1 | a: 1\n...\nb\n | expected a single YAML document
            2:1 | a: 1\n---\n | expected a single YAML document
            2:9 | a: 1\nb: !foo x\n | unsupported tag !foo
            1:13 | v: !!binary aGk=\n | unsupported tag !!binary
            1:10 | v: !!set {a}\n | unsupported tag !!set
            1:10 | v: !!int abc\n | invalid integer "abc" for tag !!int
            1:10 | v: !!int 9223372036854775808\n | integer "9223372036854775808" is out of range
            1:11 | v: !!bool maybe\n | invalid boolean "maybe" for tag !!bool
            1:10 | v: !!str [1]\n | tag !!str cannot be used on a sequence
            1:10 | v: !!map [1]\n | tag !!map cannot be used on a sequence
            1:10 | v: !!seq x\n | tag !!seq cannot be used on a scalar
            1:4 | v: 0b_\n | invalid integer "0b_"
            1:4 | v: =\n | could not determine a constructor for the tag 'tag:yaml.org,2002:value'
            1:4 | v: <<\n | a merge key `<<` is only allowed as a mapping key
            2:3 | x: 1\n? [a]\n: 1\n | complex mapping keys are not supported
            1:2 | {{a: 1}: 2} | complex mapping keys are not supported
            2:7 | a:\n  <<: 1\n | expected a mapping or list of mappings for merging, found integer
            2:16 | a:\n  <<: [{x: 1}, 2]\n | expected a mapping for merging, found integer
            1:8 | a: &x [*x]\n | recursive alias is not supported
            1:4 | a: *nope\n | while parsing node, found unknown anchor
        "#;
        for case in cases.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let [pos, text, message] = case.splitn(3, " | ").collect::<Vec<_>>()[..] else {
                panic!()
            };
            let (line, col) = pos.split_once(':').unwrap();
            let span = sp(line.parse().unwrap(), col.parse().unwrap());
            let got = parse(&text.replace("\\n", "\n"));
            assert_eq!(
                got,
                Err(YamlError {
                    message: message.into(),
                    span
                }),
                "{text}"
            );
        }
        let e = parse("a: 1\n  b: 2\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "2:4: mapping values are not allowed in this context"
        );
        assert_eq!(
            YamlError {
                message: "m".into(),
                span: Span::default()
            }
            .to_string(),
            "m"
        );
        assert_eq!(
            parse(&"- ".repeat(300)).unwrap_err().message,
            "nesting is too deep"
        );
        let flow = format!("{}{}", "[".repeat(300), "]".repeat(300));
        assert_eq!(
            parse(&flow).unwrap_err().message,
            "recursion limit exceeded"
        );
    }

    #[test]
    fn empty_documents() {
        for t in ["", "# only a comment\n", "---\n", "--- \n...\n", "\n\n"] {
            assert_eq!(parse(t), Ok(None), "{t:?}");
        }
        assert_eq!(root("~").value, Value::Null);
        assert_eq!(root("--- 5\n").value, Value::Int(5));
    }

    #[test]
    fn spans() {
        let n = root("a:\n  b: 1\n  c: [x, {d: y}]\n");
        let a = n.get("a").unwrap();
        let (Value::Map(top), Value::Map(inner)) = (&n.value, &a.value) else {
            panic!()
        };
        assert_eq!(
            [n.span, top[0].key_span, a.span],
            [sp(1, 1), sp(1, 1), sp(2, 3)]
        );
        assert_eq!(inner[0].key, "b");
        assert_eq!(
            [inner[0].key_span, inner[0].value.span],
            [sp(2, 3), sp(2, 6)]
        );
        let c = a.get("c").unwrap();
        let Value::Seq(items) = &c.value else {
            panic!()
        };
        assert_eq!(
            [c.span, items[0].span, items[1].span],
            [sp(3, 6), sp(3, 7), sp(3, 10)]
        );
        assert_eq!(items[1].get("d").unwrap().span, sp(3, 14));
        let n = root("- a\n- k: 1\n  j:\n");
        let Value::Seq(items) = &n.value else {
            panic!()
        };
        assert_eq!([n.span, items[1].span], [sp(1, 1), sp(2, 3)]);
        assert_eq!(items[1].get("j").unwrap().span, sp(3, 3)); // empty value: the key's span
    }

    #[test]
    fn anchors_and_merge() {
        let n = root("base: &b\n  x: 1\n  y: [1, 2]\nuse: *b\nk: &s 7\nl: *s\n");
        assert_eq!(n.get("use"), n.get("base"));
        assert_eq!(n.get("use").unwrap().span, sp(2, 3));
        assert_eq!(n.get("l").unwrap().value, Value::Int(7));
        // One map: explicit keys win and take the merged key's place, as in PyYAML's dict.
        let n = root("base: &b {x: 1, y: 2}\nd:\n  y: 9\n  <<: *b\n  z: 3\n  x: 7\n");
        let d = n.get("d").unwrap();
        assert_eq!(keys(d), ["x", "y", "z"]);
        assert_eq!(
            d.to_json().unwrap(),
            serde_json::json!({"x": 7, "y": 9, "z": 3})
        );
        // A list: earlier maps win, and PyYAML puts the last map's keys first.
        let n = root("b:\n  <<: [{p: 1, q: 1}, {q: 2, r: 2}]\n  s: 0\n");
        let b = n.get("b").unwrap();
        assert_eq!(keys(b), ["q", "r", "p", "s"]);
        assert_eq!(b.get("q").unwrap().value, Value::Int(1));
        // Nested merges; a quoted "<<" is an ordinary key.
        let n = root("a: &a {k: 1}\nb: &b {<<: *a, m: 2}\nc: {<<: *b, '<<': 3}\n");
        assert_eq!(keys(n.get("c").unwrap()), ["k", "m", "<<"]);
    }

    #[test]
    fn keys_and_duplicates() {
        let n = root("1: x\ntrue: y\n~: z\n1.5: w\n\"q\": v\n");
        assert_eq!(keys(&n), ["1", "true", "~", "1.5", "q"]);
        let n = root("a: 1\nb: 2\na: 3\n");
        assert_eq!(keys(&n), ["a", "b", "a"]);
        assert_eq!(n.get("a").unwrap().value, Value::Int(3));
        assert_eq!(n.to_json().unwrap().to_string(), r#"{"a":3,"b":2}"#);
        assert_eq!(keys(&root("&k a: 1\n*k : 2\n")), ["a", "a"]);
        assert_eq!(root("[1]").get("a"), None);
    }

    #[test]
    fn json_text_and_round_trip() {
        let n = root(r#"{"a": [1, 2.5, "x", true, null], "b": {"c": -3}, "z":1}"#);
        assert_eq!(keys(&n), ["a", "b", "z"]);
        assert_eq!(n.get("b").unwrap().span, sp(1, 39));
        let want = serde_json::json!({"a": [1, 2.5, "x", true, null], "b": {"c": -3}, "z": 1});
        assert_eq!(n.to_json().unwrap(), want);

        let j = root("zeta: 1\nalpha: [1.5, 'two', ~, no]\nmid: {y: 1, x: {q: 2}}\n");
        let j = j.to_json().unwrap();
        let text = r#"{"zeta":1,"alpha":[1.5,"two",null,false],"mid":{"y":1,"x":{"q":2}}}"#;
        assert_eq!(j.to_string(), text);
        let back = Node::from_json(&j, sp(9, 9));
        assert_eq!(back.to_json().unwrap(), j);
        assert_eq!(keys(&back), ["zeta", "alpha", "mid"]);
        let Value::Map(e) = &back.value else { panic!() };
        assert!(
            e.iter()
                .all(|e| e.key_span == sp(9, 9) && e.value.span == sp(9, 9))
        );
        assert_eq!(
            back.get("mid")
                .unwrap()
                .get("x")
                .unwrap()
                .get("q")
                .unwrap()
                .span,
            sp(9, 9)
        );
        let big = Node::from_json(&serde_json::json!(u64::MAX), sp(1, 1));
        assert_eq!(big.value, s("18446744073709551615"));
    }

    #[test]
    fn type_names_and_non_finite_json() {
        let names = ["~", "on", "1", "1.0", "x", "[]", "{}"].map(|t| root(t).type_name());
        assert_eq!(
            names,
            [
                "null", "boolean", "integer", "float", "string", "list", "mapping"
            ]
        );
        for t in [".inf", "-.inf", ".nan"] {
            let e = root(&format!("a:\n  - 1\n  - {t}\n"))
                .to_json()
                .unwrap_err();
            assert_eq!(e.message, "non-finite number is not supported here");
            assert_eq!(e.span, sp(3, 5));
        }
    }
}
