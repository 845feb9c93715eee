//! OptoPrime (v1): the problem is shown in `#Section` blocks and the LLM answers with a
//! JSON object `{"reasoning", "suggestion": {variable: value}}`, or `TERMINATE`.
//!
//! The reading side follows OpenTrace's tolerant parser: `TERMINATE` anywhere means "no
//! change"; a fenced block is preferred; a JSON parse failure is retried on the widest
//! `{...}` span; unknown variables are ignored; values are coerced to the parameter kind.

use std::fmt::Write as _;

use serde_json::{Map, Value as Json, json};

use super::common::{
    apply_suggestion, call_graph, display, fenced_block, note_if_no_change, variable_hints,
};
use super::{ParsedUpdate, ProblemInstance, Protocol};
use crate::llm::{ChatRequest, Message};
use crate::task::Param;
use crate::vocab::Kwargs;
use crate::vocab::ParamKind;

/// The OptoPrime JSON protocol.
#[derive(Debug, Clone, Copy, Default)]
pub struct OptoPrime;

const SYSTEM_PROMPT: &str =
    "You improve the trainable variables of a program from feedback on its results.

A problem is shown in these sections:
- #Instruction: what the program should achieve.
- #Code: how the outputs are computed from the variables and inputs.
- #Variables: the values you may change, one per line as `(type) name=value`.
- #Constraints: what each variable means and which values are allowed.
- #Inputs: values you cannot change.
- #Outputs: what the program produced.
- #Feedback: what the evaluator said about the outputs.

Answer with a single JSON object and nothing else:
{
  \"reasoning\": \"<how the feedback leads to your change>\",
  \"suggestion\": {\"<variable name>\": <new value>, ...}
}
Include only variables you want to change. For code variables give the full source with the
same signature. If nothing should change, answer TERMINATE.";

impl Protocol for OptoPrime {
    fn name(&self) -> &'static str {
        "OptoPrime"
    }

    fn request(&self, instance: &ProblemInstance<'_>) -> ChatRequest {
        let feedback = instance.batched_feedback();
        ChatRequest {
            messages: vec![
                Message::new("system", SYSTEM_PROMPT),
                Message::new("user", user_prompt(instance, &feedback)),
            ],
            temperature: None,
            max_tokens: Some(4096),
            variables: variable_hints(&instance.variables),
            feedback,
            extra: Default::default(),
        }
    }

    fn parse(&self, reply: &str, params: &[Param]) -> ParsedUpdate {
        let mut out = ParsedUpdate::default();
        if reply.contains("TERMINATE") {
            out.terminated = true;
            return out;
        }
        let Some(object) = extract_object(reply) else {
            out.problems.push(if reply.trim().is_empty() {
                "empty reply".to_string()
            } else {
                "reply holds no JSON object".to_string()
            });
            return out;
        };
        let suggestion = match object.iter().find(|(k, _)| k.trim() == "suggestion") {
            Some((_, Json::Object(s))) => s.clone(),
            Some((_, other)) => {
                out.problems
                    .push(format!("`suggestion` is not an object: {other}"));
                return out;
            }
            None => object
                .into_iter()
                .filter(|(k, _)| !matches!(k.trim(), "reasoning" | "answer"))
                .collect(),
        };
        for (key, value) in suggestion {
            apply_suggestion(&mut out, params, key.trim(), value);
        }
        note_if_no_change(&mut out);
        out
    }

    fn render(&self, reasoning: &str, update: &Kwargs) -> String {
        let reply = json!({"reasoning": reasoning, "suggestion": update});
        serde_json::to_string_pretty(&reply).unwrap_or_default()
    }

    fn junk_replies(&self, first: &str) -> Vec<String> {
        vec![
            "TERMINATE".to_string(),
            String::new(),
            format!("I would adjust `{first}` a little, but I am not sure in which direction."),
            format!("{{\"reasoning\": \"stub junk reply\", \"suggestion\": {{\"{first}\": "),
            "{\"reasoning\": \"stub junk reply\", \"suggestion\": {\"not_a_variable\": 1}}"
                .to_string(),
        ]
    }
}

fn user_prompt(instance: &ProblemInstance<'_>, feedback: &str) -> String {
    let mut s = String::from("Now you see problem instance:\n\n================================\n");
    let _ = writeln!(s, "#Instruction\n{}\n", instance.objective);
    let _ = write!(s, "#Code\n{}", call_graph(instance));
    s.push_str("\n#Variables\n");
    for (p, v) in &instance.variables {
        let sep = if p.kind == ParamKind::Code { ":" } else { "=" };
        let _ = writeln!(s, "({}) {}{sep}{}", p.kind.label(v), p.name, display(v));
    }
    s.push_str("\n#Constraints\n");
    for (p, _) in instance
        .variables
        .iter()
        .filter(|(p, _)| !p.description.is_empty())
    {
        let _ = writeln!(s, "({}) {}", p.name, p.description);
    }
    s.push_str("\n#Inputs\n");
    for (i, e) in instance.examples.iter().enumerate() {
        let _ = writeln!(s, "(str) input_{i}={}", e.input);
    }
    s.push_str("\n#Outputs\n");
    for (i, e) in instance.examples.iter().enumerate() {
        let _ = writeln!(s, "(str) output_{i}={}", e.output);
    }
    let _ = write!(
        s,
        "\n#Feedback\n{feedback}\n================================\n\nYour response:\n"
    );
    s
}

/// The JSON object of a reply: first fenced block if any, else the whole text, else the
/// widest `{...}` span.
fn extract_object(reply: &str) -> Option<Map<String, Json>> {
    let body = fenced_block(reply).unwrap_or(reply);
    let parse = |text: &str| match serde_json::from_str::<Json>(text.trim()) {
        Ok(Json::Object(m)) => Some(m),
        _ => None,
    };
    parse(body).or_else(|| {
        let start = body.find('{')?;
        let end = body.rfind('}')?;
        (end > start).then(|| parse(&body[start..=end])).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Vec<Param> {
        vec![
            Param {
                name: "value".into(),
                kind: ParamKind::Number,
                initial: json!(0.0),
                trainable: true,
                description: "The number.".into(),
            },
            Param {
                name: "count".into(),
                kind: ParamKind::Number,
                initial: json!(0),
                trainable: true,
                description: String::new(),
            },
            Param {
                name: "code".into(),
                kind: ParamKind::Code,
                initial: json!("def f(x): return x"),
                trainable: true,
                description: String::new(),
            },
        ]
    }

    fn parse(reply: &str) -> ParsedUpdate {
        OptoPrime.parse(reply, &params())
    }

    #[test]
    fn reads_a_well_formed_reply() {
        let p = parse(r#"{"reasoning": "too low", "suggestion": {"value": 2.5, "count": "3"}}"#);
        assert_eq!(Json::Object(p.update), json!({"value": 2.5, "count": 3}));
        assert!(p.problems.is_empty());
    }

    #[test]
    fn reads_fenced_and_chatty_replies() {
        let fenced = "Sure! Here it is:\n```json\n{\"reasoning\": \"x\", \"suggestion\": {\"value\": 1}}\n```\nGood luck.";
        assert_eq!(parse(fenced).update["value"], json!(1.0));
        let chatty =
            "I think {\"suggestion\": {\"code\": \"def f(x):\\n    return x + 1\"}} is best";
        assert_eq!(
            parse(chatty).update["code"],
            json!("def f(x):\n    return x + 1")
        );
        let no_key = r#"{"reasoning": "r", "value": 4}"#;
        assert_eq!(parse(no_key).update["value"], json!(4.0));
    }

    #[test]
    fn junk_gives_an_empty_update_with_a_reason() {
        for (reply, problem) in [
            ("", "empty reply"),
            ("I would increase it a bit.", "reply holds no JSON object"),
            (
                r#"{"reasoning": "x", "suggestion": {"value": "#,
                "reply holds no JSON object",
            ),
            (
                r#"{"suggestion": {"unknown_var": 1}}"#,
                "unknown variable `unknown_var` ignored",
            ),
            (
                r#"{"suggestion": {"value": "lots"}}"#,
                "value for `value` is not a number: \"lots\"",
            ),
            (
                r#"{"suggestion": {"code": ""}}"#,
                "code for `code` is empty or not a string; ignored",
            ),
            (r#"{"suggestion": []}"#, "`suggestion` is not an object: []"),
        ] {
            let p = parse(reply);
            assert!(p.update.is_empty(), "{reply}");
            assert_eq!(p.problems, vec![problem.to_string()], "{reply}");
        }
        let t = parse("The values are fine. TERMINATE");
        assert!(t.terminated && t.update.is_empty());
    }

    #[test]
    fn render_round_trips_through_parse() {
        let update: Kwargs =
            serde_json::from_value(json!({"value": 1.25, "code": "def f(x):\n  return 2"}))
                .unwrap();
        let reply = OptoPrime.render("because", &update);
        assert_eq!(parse(&reply).update, update);
    }

    #[test]
    fn prompt_shows_every_section() {
        let ps = params();
        let instance = ProblemInstance {
            objective: "Match the target.",
            variables: ps.iter().map(|p| (p, p.initial.clone())).collect(),
            examples: vec![super::super::ExampleTrace {
                input: "None".into(),
                output: "0.0".into(),
                feedback: "output=0.0, target=3.0".into(),
            }],
            history: vec![],
        };
        let req = OptoPrime.request(&instance);
        let user = &req.messages[1].content;
        for needle in [
            "#Instruction\nMatch the target.",
            "(float) value=0.0",
            "(int) count=0",
            "(code) code:def f(x): return x",
            "(value) The number.",
            "#Feedback\nID [0]: output=0.0, target=3.0",
        ] {
            assert!(user.contains(needle), "missing {needle:?} in\n{user}");
        }
        assert_eq!(req.variables.len(), 3);
    }
}
