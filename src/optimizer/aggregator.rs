//! The aggregator call of OpenTrace's AggregatedUpdate (`opto/trainer/algorithms/
//! aggregator.py`; see `docs/trainers.md`, AggregatedUpdate): one request shows the
//! current parameters and one suggestion per example of the minibatch, each a Python dict
//! with its confidence (`1 - stepsize` for the current values, `stepsize` for each
//! suggestion), and asks for a JSON object whose `suggestion` holds the merged values.
//!
//! The user message and the reading rules are upstream's: the reply is parsed as JSON,
//! else the outermost `{...}` of it; without a usable `suggestion` object the
//! `"key": "value"` pairs inside `"suggestion": {...}` are read one by one; an empty code
//! value is dropped; each value is cast to its parameter's kind, and a value that does not
//! cast is a problem (upstream warns) and leaves that parameter unchanged. The system
//! prompt keeps upstream's instructions and output format in our wording.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Value as Json, json};

use super::common::{coerce, variable_hints};
use crate::llm::{ChatRequest, Message};
use crate::task::Param;
use crate::vocab::Kwargs;
use crate::vocab::ParamKind;
use crate::vocab::canonical::{python_dict_repr, python_float_repr};

/// The aggregator's system prompt (the stub recognises the call by it).
pub const SYSTEM: &str = "You are an expert in aggregating suggestions. You will see a list of suggested values of parameters from different people (denoted as #SuggestedValue_i). A parameter set is shown as a dict whose keys are the names of the parameter components and whose values are their values.

Aggregate the suggestions into a new value for the parameters:
1. Keep the new values in the same format as the values of the suggested parameters.
2. Weigh the suggestions by their confidence scores; a suggestion can be wrong, especially one with low confidence.
3. Look for the common ground between the suggestions.

Output format: reply with a JSON object, with valid JSON syntax:

{
\"reasoning_<component_1>\": <your reasoning>,
\"reasoning_<component_2>\": <your reasoning>,
\"suggestion\": {
    <component_1>: <suggested_value_1>,
    <component_2>: <suggested_value_2>
}
}

In each \"reasoning_...\" entry, explain how you arrive at the new value. In \"suggestion\", write the new value of every key of #SuggestedValue_0, as Python code without syntax errors for code; to leave a component unchanged, write its current value.

If no change is needed, reply TERMINATE.";

/// The aggregator's request: `current` with confidence `1 - stepsize`, then each of
/// `suggestions` (complete parameter maps) with confidence `stepsize`.
///
/// The structured twin lists the trainable values of `current` first, then those of each
/// suggestion in order (the stub aggregator picks among them).
pub fn aggregate_request(
    params: &[Param],
    current: &Kwargs,
    suggestions: &[Kwargs],
    stepsize: f64,
    max_tokens: u32,
) -> ChatRequest {
    let names: Vec<String> = params.iter().map(|p| p.name.clone()).collect();
    let mut user = format!(
        "#SuggestedValue_0 (confidence {}):\n{}\n\n",
        python_float_repr(1.0 - stepsize),
        python_dict_repr(current, &names)
    );
    for (i, s) in suggestions.iter().enumerate() {
        user.push_str(&format!(
            "#SuggestedValue_{} (confidence {}):\n{}\n\n\n",
            i + 1,
            python_float_repr(stepsize),
            python_dict_repr(s, &names)
        ));
    }
    let twin: Vec<(&Param, Json)> = std::iter::once(current)
        .chain(suggestions)
        .flat_map(|values| {
            params
                .iter()
                .map(|p| (p, values.get(&p.name).cloned().unwrap_or(Json::Null)))
        })
        .collect();
    let mut extra = Map::new();
    extra.insert("response_format".into(), json!({"type": "json_object"}));
    ChatRequest {
        messages: vec![Message::new("system", SYSTEM), Message::new("user", user)],
        temperature: None,
        max_tokens: Some(max_tokens),
        variables: variable_hints(&twin),
        feedback: String::new(),
        extra,
    }
}

static OUTERMOST_BRACES: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)\{.*\}").expect("valid regex"));
static SUGGESTION_BLOCK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?s)"suggestion"\s*:\s*\{(.*?)\}"#).expect("valid regex"));
static QUOTED_PAIR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?s)"([a-zA-Z0-9_]+)"\s*:\s*"(.*)""#).expect("valid regex"));

/// The `suggestion` object of a reply, read as upstream's `extract_llm_suggestion` does.
pub fn extract_suggestion(reply: &str) -> Map<String, Json> {
    let from_json = |text: &str| -> Option<Result<Map<String, Json>, ()>> {
        match serde_json::from_str::<Json>(text) {
            Ok(v) => Some(match v.get("suggestion") {
                Some(Json::Object(m)) => Ok(m.clone()),
                _ => Err(()),
            }),
            Err(_) => None,
        }
    };
    // Two attempts: the whole reply, then its outermost braces.
    let mut suggestion = match from_json(reply) {
        Some(r) => r.unwrap_or_default(),
        None => OUTERMOST_BRACES
            .find(reply)
            .and_then(|m| from_json(m.as_str()))
            .and_then(Result::ok)
            .unwrap_or_default(),
    };
    if suggestion.is_empty()
        && let Some(block) = SUGGESTION_BLOCK.captures(reply)
    {
        // Upstream's last resort: quoted pairs, robust to missing commas. Its pattern is
        // greedy, so it reads one pair per match over the block's text.
        for pair in QUOTED_PAIR.captures_iter(&block[1]) {
            suggestion.insert(pair[1].to_string(), Json::String(pair[2].to_string()));
        }
    }
    suggestion.retain(|key, value| !(key.contains("__code") && value.as_str() == Some("")));
    suggestion
}

/// The update a reply makes: each trainable parameter the suggestion names, cast to its
/// kind. Values that do not cast are returned as problems and leave the parameter as it is.
pub fn parse_aggregate(reply: &str, params: &[Param]) -> (Kwargs, Vec<String>) {
    let suggestion = extract_suggestion(reply);
    let mut update = Kwargs::new();
    let mut problems = Vec::new();
    for param in params.iter().filter(|p| p.trainable) {
        let Some(value) = suggestion.get(&param.name) else {
            continue;
        };
        // Python's `str(x)` of a non-string suggestion for a text parameter.
        let value = match (param.kind, value) {
            (ParamKind::Text | ParamKind::Code, Json::String(_)) | (ParamKind::Number, _) => {
                value.clone()
            }
            (_, other) => Json::String(crate::vocab::canonical::python_repr(other)),
        };
        match coerce(param, value) {
            Ok(v) => {
                update.insert(param.name.clone(), v);
            }
            Err(problem) => problems.push(problem),
        }
    }
    (update, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(name: &str, kind: ParamKind, initial: Json) -> Param {
        Param {
            name: name.into(),
            kind,
            initial,
            trainable: true,
            description: String::new(),
        }
    }

    fn kw(v: Json) -> Kwargs {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_user_message_is_upstreams() {
        let params = [
            param("a", ParamKind::Number, json!(1)),
            param("prompt", ParamKind::Text, json!("x")),
        ];
        let r = aggregate_request(
            &params,
            &kw(json!({"a": 1, "prompt": "hi"})),
            &[
                kw(json!({"a": 2, "prompt": "hi"})),
                kw(json!({"a": 1, "prompt": "it's"})),
            ],
            0.25,
            4096,
        );
        assert_eq!(
            r.messages[1].content,
            "#SuggestedValue_0 (confidence 0.75):\n{'a': 1, 'prompt': 'hi'}\n\n\
             #SuggestedValue_1 (confidence 0.25):\n{'a': 2, 'prompt': 'hi'}\n\n\n\
             #SuggestedValue_2 (confidence 0.25):\n{'a': 1, 'prompt': \"it's\"}\n\n\n"
        );
        assert_eq!(r.extra["response_format"], json!({"type": "json_object"}));
        assert_eq!(r.max_tokens, Some(4096));
        let twin: Vec<(&str, Json)> = r
            .variables
            .iter()
            .map(|v| (v.name.as_str(), v.value.clone()))
            .collect();
        assert_eq!(twin.len(), 6);
        assert_eq!(twin[2], ("a", json!(2)));
        assert_eq!(twin[5], ("prompt", json!("it's")));
    }

    #[test]
    fn replies_are_read_as_upstream_reads_them() {
        let params = [
            param("a", ParamKind::Number, json!(1)),
            param("prompt", ParamKind::Text, json!("x")),
            param("__code0", ParamKind::Code, json!("def f(): pass")),
        ];
        // Plain JSON; a number given as text is cast; a list for a text becomes its str().
        let (u, p) = parse_aggregate(
            r#"{"reasoning_a": "…", "suggestion": {"a": "3", "prompt": ["x", 1]}}"#,
            &params,
        );
        assert_eq!(u, kw(json!({"a": 3, "prompt": "['x', 1]"})));
        assert!(p.is_empty());
        // Prose around the object: its outermost braces.
        let (u, _) = parse_aggregate(
            "Here it is:\n{\"suggestion\": {\"prompt\": \"Be brief.\"}}\nDone.",
            &params,
        );
        assert_eq!(u, kw(json!({"prompt": "Be brief."})));
        // Broken JSON: the quoted pairs of the suggestion block; empty code is dropped.
        let (u, _) = parse_aggregate(
            "{\"suggestion\": {\n\"prompt\": \"Be brief.\"\n\"__code0\": \"\"\n}, oops",
            &params,
        );
        assert_eq!(u, kw(json!({"prompt": "Be brief.\"\n\"__code0\": \""})));
        // A value that does not cast is a problem; TERMINATE is no update.
        let (u, p) = parse_aggregate(r#"{"suggestion": {"a": "many"}}"#, &params);
        assert!(u.is_empty() && p.len() == 1, "{p:?}");
        assert!(parse_aggregate("TERMINATE", &params).0.is_empty());
        // No `suggestion` key: nothing.
        assert!(parse_aggregate(r#"{"a": 2}"#, &params).0.is_empty());
    }

    /// Upstream's `extract_llm_suggestion` (OpenTrace `aggregator.py`, run on these
    /// replies) returned exactly these objects.
    #[test]
    fn extraction_equals_upstreams_on_the_same_replies() {
        let cases = [
            (
                r#"{"reasoning_a": "…", "suggestion": {"a": "3", "prompt": ["x", 1]}}"#,
                json!({"a": "3", "prompt": ["x", 1]}),
            ),
            (
                "Here it is:\n{\"suggestion\": {\"prompt\": \"Be brief.\"}}\nDone.",
                json!({"prompt": "Be brief."}),
            ),
            (
                "{\"suggestion\": {\n\"prompt\": \"Be brief.\"\n\"__code0\": \"\"\n}, oops",
                json!({"prompt": "Be brief.\"\n\"__code0\": \""}),
            ),
            (r#"{"suggestion": {"a": "many"}}"#, json!({"a": "many"})),
            ("TERMINATE", json!({})),
            (r#"{"a": 2}"#, json!({})),
        ];
        for (reply, want) in cases {
            assert_eq!(Json::Object(extract_suggestion(reply)), want, "{reply}");
        }
    }
}
