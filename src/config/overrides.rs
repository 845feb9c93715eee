//! `--set key.path=value` overrides, applied to the YAML tree before it is decoded, so an
//! override is checked exactly like the same value written in the file.
//!
//! Path segments are mapping keys separated by dots; a numeric segment indexes a list
//! (`trainers.0.params_variants.0.ps_steps=3`). The value is read as YAML, so
//! `--set seeds=[1,2,3]` gives a list and `--set mode=stub` a string.

use super::diag::Diagnostic;
use super::yaml::{self, Entry, Node, Span};

/// Apply one `key.path=value` expression to `root` (a mapping).
pub fn apply(root: &mut Node, expr: &str) -> Result<(), Diagnostic> {
    let Some((path, raw)) = expr.split_once('=') else {
        return Err(Diagnostic::error(
            format!("--set {expr}"),
            Span::default(),
            format!("`--set {expr}` has no `=`"),
        )
        .with_hint("write `--set key.path=value`, e.g. `--set max_workers=4`"));
    };
    let path = path.trim();
    if path.is_empty() || path.split('.').any(str::is_empty) {
        return Err(Diagnostic::error(
            format!("--set {expr}"),
            Span::default(),
            format!("`--set {expr}` has an empty key segment"),
        )
        .with_hint(
            "write `--set key.path=value`, e.g. `--set trainers.0.params_variants.0.ps_steps=3`",
        ));
    }
    let value = parse_value(raw);
    let segments: Vec<&str> = path.split('.').collect();
    set_path(root, &segments, value, path)
}

/// Read an override value as YAML; text that is not valid YAML stays a string.
fn parse_value(raw: &str) -> Node {
    match yaml::parse(raw) {
        Ok(Some(node)) => strip_spans(node),
        Ok(None) => Node::new(yaml::Value::Null, Span::default()),
        Err(_) => Node::new(yaml::Value::Str(raw.to_string()), Span::default()),
    }
}

/// Values from the command line have no file location.
fn strip_spans(mut node: Node) -> Node {
    node.span = Span::default();
    node.value = match node.value {
        yaml::Value::Seq(items) => yaml::Value::Seq(items.into_iter().map(strip_spans).collect()),
        yaml::Value::Map(entries) => yaml::Value::Map(
            entries
                .into_iter()
                .map(|e| Entry {
                    key: e.key,
                    key_span: Span::default(),
                    value: strip_spans(e.value),
                })
                .collect(),
        ),
        other => other,
    };
    node
}

fn set_path(node: &mut Node, segments: &[&str], value: Node, full: &str) -> Result<(), Diagnostic> {
    let (head, rest) = segments.split_first().expect("non-empty path");
    if matches!(node.value, yaml::Value::Null) {
        node.value = yaml::Value::Map(Vec::new());
    }
    let type_name = node.type_name();
    match &mut node.value {
        yaml::Value::Map(entries) => {
            let pos = entries.iter().rposition(|e| e.key == *head);
            let slot = match pos {
                Some(i) => &mut entries[i].value,
                None => {
                    entries.push(Entry {
                        key: head.to_string(),
                        key_span: Span::default(),
                        value: Node::new(yaml::Value::Null, Span::default()),
                    });
                    &mut entries.last_mut().expect("just pushed").value
                }
            };
            if rest.is_empty() {
                *slot = value;
                Ok(())
            } else {
                set_path(slot, rest, value, full)
            }
        }
        yaml::Value::Seq(items) => {
            let len = items.len();
            let index = head.parse::<usize>().ok().filter(|i| *i < len);
            let Some(i) = index else {
                return Err(Diagnostic::error(
                    full,
                    Span::default(),
                    format!(
                        "`--set {full}`: `{head}` is not an index of a list with {len} item(s)"
                    ),
                )
                .with_hint(format!("use an index from 0 to {}", len.saturating_sub(1))));
            };
            if rest.is_empty() {
                items[i] = value;
                Ok(())
            } else {
                set_path(&mut items[i], rest, value, full)
            }
        }
        _ => Err(Diagnostic::error(
            full,
            node.span,
            format!("`--set {full}`: cannot go into `{head}` of a {type_name}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        yaml::parse(text).unwrap().unwrap()
    }

    #[test]
    fn sets_nested_keys_and_list_items() {
        let mut r =
            root("trainers:\n  - id: PrioritySearch\n    params_variants:\n      - ps_steps: 1\n");
        apply(&mut r, "trainers.0.params_variants.0.ps_steps=3").unwrap();
        apply(&mut r, "max_workers=4").unwrap();
        apply(&mut r, "seeds=[1, 2]").unwrap();
        let json = r.to_json().unwrap();
        assert_eq!(json["trainers"][0]["params_variants"][0]["ps_steps"], 3);
        assert_eq!(json["max_workers"], 4);
        assert_eq!(json["seeds"], serde_json::json!([1, 2]));
    }

    #[test]
    fn values_are_typed_as_yaml() {
        let mut r = root("a: 1\n");
        apply(&mut r, "b=yes").unwrap();
        apply(&mut r, "c=1.5").unwrap();
        apply(&mut r, "d=hello world").unwrap();
        let json = r.to_json().unwrap();
        assert_eq!(json["b"], true);
        assert_eq!(json["c"], 1.5);
        assert_eq!(json["d"], "hello world");
    }

    #[test]
    fn bad_expressions_are_errors() {
        let mut r = root("trainers: [a]\nmode: stub\n");
        assert!(
            apply(&mut r, "novalue")
                .unwrap_err()
                .message
                .contains("no `=`")
        );
        assert!(
            apply(&mut r, "trainers.5=x")
                .unwrap_err()
                .message
                .contains("not an index")
        );
        assert!(
            apply(&mut r, "mode.x=1")
                .unwrap_err()
                .message
                .contains("cannot go into")
        );
        assert!(apply(&mut r, "a..b=1").is_err());
    }
}
