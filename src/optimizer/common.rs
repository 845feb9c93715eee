//! Helpers shared by the prompt protocols: value display, the structured variable hints,
//! the one-line-per-rollout `#Code` listing, fenced-block extraction, and the tolerant
//! name matching and type coercion every parser applies to a suggested value.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::{Value as Json, json};

use super::{HistoryEntry, ParsedUpdate, ProblemInstance};
use crate::llm::VariableHint;
use crate::task::Param;
use crate::vocab::ParamKind;

/// Prompt text of a value: strings verbatim, everything else as JSON.
pub(super) fn display(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The structured twin of the prompt's variables (what the stub proposer mutates).
pub(super) fn variable_hints(variables: &[(&Param, Json)]) -> Vec<VariableHint> {
    variables
        .iter()
        .map(|(p, v)| VariableHint {
            name: p.name.clone(),
            kind: p.kind,
            value: v.clone(),
        })
        .collect()
}

/// One `output_i = agent(input=input_i, a=a, ...)` line per example: the call graph a
/// Trace-less port shows in its code section.
pub(super) fn call_graph(instance: &ProblemInstance<'_>) -> String {
    let names: Vec<String> = instance
        .variables
        .iter()
        .map(|(p, _)| format!("{0}={0}", p.name))
        .collect();
    let mut s = String::new();
    for i in 0..instance.examples.len() {
        let _ = writeln!(
            s,
            "output_{i} = agent(input=input_{i}, {})",
            names.join(", ")
        );
    }
    s
}

/// The type label of a value in prompts: the parameter's kind when it is one of the
/// instance's variables, else guessed from the JSON value.
pub(super) fn type_label(instance: &ProblemInstance<'_>, name: &str, value: &Json) -> &'static str {
    match instance.variables.iter().find(|(p, _)| p.name == name) {
        Some((p, _)) => p.kind.label(value),
        None if value.is_i64() || value.is_u64() => "int",
        None if value.is_number() => "float",
        None => "str",
    }
}

/// The last `n` history entries, oldest first, each with its 1-based round number in the
/// full history (so a round keeps its number as the window slides).
pub(super) fn recent_history<'a>(
    instance: &'a ProblemInstance<'_>,
    n: usize,
) -> impl Iterator<Item = (usize, &'a HistoryEntry)> {
    let skip = instance.history.len().saturating_sub(n);
    instance
        .history
        .iter()
        .enumerate()
        .skip(skip)
        .map(|(i, e)| (i + 1, e))
}

/// A history score as shown to the optimizer.
pub(super) fn score_text(score: Option<f64>) -> String {
    // `+ 0.0` turns a negative zero into 0.
    score.map_or_else(|| "not evaluated".to_string(), |s| (s + 0.0).to_string())
}

/// At most `limit` characters of `text`, with a marker saying how many were skipped.
pub(super) fn truncate(text: &str, limit: usize) -> Cow<'_, str> {
    match text.char_indices().nth(limit) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => {
            let skipped = text[cut..].chars().count();
            Cow::Owned(format!("{}...(skipped {skipped} chars)", &text[..cut]))
        }
    }
}

/// The first fenced block of a reply (language tag dropped), if it has a closed one.
pub(super) fn fenced_block(reply: &str) -> Option<&str> {
    let start = reply.find("```")? + 3;
    let rest = &reply[start..];
    let end = rest.find("```")?;
    Some(drop_language_tag(&rest[..end]))
}

/// Everything between the first and the last fence (language tag dropped), if the reply
/// has at least two fences: GEPA's reading, which keeps fences nested inside the block.
pub(super) fn outer_fenced_block(reply: &str) -> Option<&str> {
    let start = reply.find("```")? + 3;
    let end = reply.rfind("```")?;
    (end >= start).then(|| drop_language_tag(&reply[start..end]))
}

/// Drop the opening line of a fenced block when it is a bare language tag (`json`,
/// `python`, or nothing at all), but never a line that already starts a JSON value.
pub(super) fn drop_language_tag(block: &str) -> &str {
    match block.split_once('\n') {
        Some((first, body))
            if !first.trim().contains(char::is_whitespace)
                && !first.trim_start().starts_with(['{', '[']) =>
        {
            body
        }
        _ => block,
    }
}

/// The parameter a reply key names; OpenTrace strips `:` from node names (`value:0` →
/// `value0`), so both spellings are accepted.
pub(super) fn find_param<'a>(params: &'a [Param], key: &str) -> Option<&'a Param> {
    params.iter().find(|p| p.name == key).or_else(|| {
        let stripped = key.replace(':', "");
        params.iter().find(|p| p.name.replace(':', "") == stripped)
    })
}

/// Coerce a suggested value to the parameter's kind.
pub(super) fn coerce(param: &Param, value: Json) -> Result<Json, String> {
    let name = &param.name;
    match param.kind {
        ParamKind::Number => {
            let x = match &value {
                Json::Number(n) => n.as_f64(),
                Json::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            }
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("value for `{name}` is not a number: {value}"))?;
            let wants_int = param.initial.is_i64() || param.initial.is_u64();
            Ok(if wants_int && x.fract() == 0.0 && x.abs() < 9.0e15 {
                json!(x as i64)
            } else {
                json!(x)
            })
        }
        ParamKind::Text => Ok(match value {
            Json::String(s) => Json::String(s),
            other => Json::String(other.to_string()),
        }),
        ParamKind::Code => match value {
            Json::String(s) if !s.trim().is_empty() => Ok(Json::String(s)),
            _ => Err(format!(
                "code for `{name}` is empty or not a string; ignored"
            )),
        },
    }
}

/// Add one suggested `key: value` to `out`: unknown and non-trainable variables and values
/// that do not coerce become problems instead.
pub(super) fn apply_suggestion(out: &mut ParsedUpdate, params: &[Param], key: &str, value: Json) {
    let Some(param) = find_param(params, key) else {
        out.problems
            .push(format!("unknown variable `{key}` ignored"));
        return;
    };
    if !param.trainable {
        out.problems
            .push(format!("variable `{key}` is not trainable; ignored"));
        return;
    }
    match coerce(param, value) {
        Ok(v) => {
            out.update.insert(param.name.clone(), v);
        }
        Err(problem) => out.problems.push(problem),
    }
}

/// Every empty update must say why: a reply that names no variable "suggests no change".
pub(super) fn note_if_no_change(out: &mut ParsedUpdate) {
    if out.update.is_empty() && out.problems.is_empty() && !out.terminated {
        out.problems.push("reply suggests no change".into());
    }
}

/// Parameters, instances and histories the protocol tests share.
#[cfg(test)]
pub(super) mod fixtures {
    use serde_json::{Value as Json, json};

    use crate::optimizer::{ExampleTrace, HistoryEntry, ProblemInstance};
    use crate::task::Param;
    use crate::vocab::Kwargs;
    use crate::vocab::ParamKind;

    /// A trainable parameter.
    pub(in crate::optimizer) fn param(
        name: &str,
        kind: ParamKind,
        initial: Json,
        description: &str,
    ) -> Param {
        Param {
            name: name.into(),
            kind,
            initial,
            trainable: true,
            description: description.into(),
        }
    }

    /// A float, an int, a code and a text parameter (spelled `prompt:0`), and a fixed one.
    pub(in crate::optimizer) fn params() -> Vec<Param> {
        let mut fixed = param("temperature", ParamKind::Number, json!(0.5), "");
        fixed.trainable = false;
        vec![
            param("value", ParamKind::Number, json!(0.0), "The number."),
            param("count", ParamKind::Number, json!(0), ""),
            param("code", ParamKind::Code, json!("def f(x): return x"), ""),
            param("prompt:0", ParamKind::Text, json!("Hello"), "A greeting."),
            fixed,
        ]
    }

    /// JSON object → kwargs.
    pub(in crate::optimizer) fn kwargs(v: Json) -> Kwargs {
        serde_json::from_value(v).unwrap()
    }

    /// The trainable `ps` at their initial values, one example with a 2500-char input.
    pub(in crate::optimizer) fn instance(
        ps: &[Param],
        history: Vec<HistoryEntry>,
    ) -> ProblemInstance<'_> {
        ProblemInstance {
            objective: "Match the target.",
            variables: ps
                .iter()
                .filter(|p| p.trainable)
                .map(|p| (p, p.initial.clone()))
                .collect(),
            examples: vec![ExampleTrace {
                input: "x".repeat(2500),
                output: "0.0".into(),
                feedback: "output=0.0, target=3.0".into(),
            }],
            history,
        }
    }

    /// `n` rounds of `value = i + 0.5`; odd rounds are not evaluated.
    pub(in crate::optimizer) fn history(n: usize) -> Vec<HistoryEntry> {
        (0..n)
            .map(|i| HistoryEntry {
                values: kwargs(json!({"value": i as f64 + 0.5})),
                score: (i % 2 == 0).then_some(-(i as f64)),
                feedback: format!("feedback of round {}", i + 1),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_show_plainly() {
        assert_eq!(score_text(Some(-0.0)), "0");
        assert_eq!(score_text(Some(-2.5)), "-2.5");
        assert_eq!(score_text(None), "not evaluated");
    }

    #[test]
    fn truncate_marks_what_it_skipped() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcdé", 3), "abc...(skipped 2 chars)");
    }

    #[test]
    fn fences_drop_only_bare_language_tags() {
        assert_eq!(fenced_block("x ```json\n{}\n``` y"), Some("{}\n"));
        assert_eq!(fenced_block("```{\"a\": 1}```"), Some("{\"a\": 1}"));
        assert_eq!(fenced_block("``` no close"), None);
        assert_eq!(
            outer_fenced_block("```md\nA\n```\nB\n```"),
            Some("A\n```\nB\n")
        );
        assert_eq!(outer_fenced_block("just ``` one"), None);
        assert_eq!(drop_language_tag("two words\nrest"), "two words\nrest");
    }

    #[test]
    fn names_match_with_or_without_colons() {
        let p = Param {
            name: "prompt:0".into(),
            kind: ParamKind::Text,
            initial: json!(""),
            trainable: true,
            description: String::new(),
        };
        let params = [p];
        assert!(find_param(&params, "prompt0").is_some());
        assert!(find_param(&params, "prompt:0").is_some());
        assert!(find_param(&params, "prompt").is_none());
    }
}
