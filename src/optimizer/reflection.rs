//! GEPA's reflective mutation, one component at a time: a single user message quotes the
//! component's current text and markdown-rendered examples (inputs, generated outputs,
//! feedback), and asks for a new self-contained version inside a fenced block.
//!
//! Reading follows upstream GEPA: the new text is everything between the first and the
//! last ``` fence (so fences inside the text survive), with a bare language tag on the
//! opening line dropped; a lone fence is stripped; without fences the whole trimmed reply
//! is the text. Unlike upstream, `TERMINATE` anywhere stops the update (as in every
//! protocol here) and an empty text is a problem rather than a candidate.

use std::fmt::Write as _;

use serde_json::Value as Json;

use super::common::{coerce, display, drop_language_tag, outer_fenced_block, variable_hints};
use super::{ParsedUpdate, ProblemInstance, Protocol};
use crate::llm::{ChatRequest, Message};
use crate::task::Param;
use crate::vocab::Kwargs;
use crate::vocab::ParamKind;

/// GEPA's reflection protocol for the single component the trainer is mutating.
#[derive(Debug, Clone, Copy, Default)]
pub struct GepaReflection;

impl Protocol for GepaReflection {
    fn name(&self) -> &'static str {
        "GEPAReflection"
    }

    /// Only the first variable is shown and hinted: the trainer passes exactly one.
    fn request(&self, instance: &ProblemInstance<'_>) -> ChatRequest {
        let component = instance.variables.get(..1).unwrap_or_default();
        ChatRequest {
            messages: vec![Message::new("user", user_prompt(instance))],
            temperature: None,
            // Upstream sets no limit on the reflection call.
            max_tokens: None,
            variables: variable_hints(component),
            feedback: instance.batched_feedback(),
            extra: Default::default(),
        }
    }

    fn parse(&self, reply: &str, params: &[Param]) -> ParsedUpdate {
        let mut out = ParsedUpdate::default();
        let trainable: Vec<&Param> = params.iter().filter(|p| p.trainable).collect();
        let [param] = trainable[..] else {
            out.problems.push(format!(
                "reflection updates exactly one component, but {} trainable parameters were given",
                trainable.len()
            ));
            return out;
        };
        if reply.contains("TERMINATE") {
            out.terminated = true;
            return out;
        }
        let text = new_text(reply);
        if text.is_empty() {
            out.problems.push("empty reply".into());
            return out;
        }
        match coerce(param, Json::String(text.to_string())) {
            Ok(v) => {
                out.update.insert(param.name.clone(), v);
            }
            Err(problem) => out.problems.push(problem),
        }
        out
    }

    /// A prose line, then the first updated value in a fenced block. The value comes back
    /// trimmed; one containing `TERMINATE`, or an empty one, cannot be carried and is left
    /// out (the reply then reads as "empty reply"). Fences inside the value are fine.
    fn render(&self, reasoning: &str, update: &Kwargs) -> String {
        let value = update
            .values()
            .next()
            .map(display)
            .filter(|v| !v.contains("TERMINATE"))
            .unwrap_or_default();
        let prose = reasoning
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace("```", "'''")
            .replace("TERMINATE", "terminate");
        format!("{prose}\n\n```\n{value}\n```\n")
    }

    fn junk_replies(&self, _first: &str) -> Vec<String> {
        vec![
            "TERMINATE".to_string(),
            String::new(),
            "```\n```".to_string(),
            "  \n\t \n".to_string(),
        ]
    }
}

fn user_prompt(instance: &ProblemInstance<'_>) -> String {
    let (name, kind, current) = match instance.variables.first() {
        Some((p, v)) => (p.name.as_str(), p.kind, display(v)),
        None => ("(none)", ParamKind::Text, String::new()),
    };
    let mut examples = String::new();
    for (k, e) in instance.examples.iter().enumerate() {
        let _ = write!(
            examples,
            "# Example {}\n## Inputs\n{}\n\n## Generated Outputs\n{}\n\n## Feedback\n{}\n\n",
            k + 1,
            e.input,
            e.output,
            e.feedback
        );
    }
    let form = match kind {
        ParamKind::Number => {
            "The component is a number: the new version must be a single number.\n"
        }
        ParamKind::Code => {
            "The component is program source: give the complete new source, keeping its signature.\n"
        }
        ParamKind::Text => "",
    };
    format!(
        "An assistant works on this task: {objective}\n\nIt relies on the component `{name}`, \
         which currently reads:\n```\n{current}\n```\n\nBelow are inputs the assistant was \
         given, what it produced for each, and feedback on how its answers could be better:\n\
         ```\n{examples}```\n\nWrite a new version of `{name}`. Study the inputs to work out \
         their format and what the task really asks for. Study the outputs and the feedback, \
         and put every domain-specific fact they reveal into the new version, since the \
         assistant will not see these examples again. If a general strategy solves the task, \
         describe it as well. The new version must stand on its own, without referring to \
         these examples or to the current version.\n{form}\nReturn the new version inside a \
         ``` fenced block.",
        objective = instance.objective.trim(),
        examples = examples.trim_end_matches('\n').to_string() + "\n",
    )
}

/// The proposed text: between the first and the last fence; around a lone fence, the
/// text after it (a reply cut off inside its block), else the text before it; with no
/// fence, the whole reply. Always trimmed.
fn new_text(reply: &str) -> &str {
    if let Some(block) = outer_fenced_block(reply) {
        return block.trim();
    }
    match reply.find("```") {
        None => reply.trim(),
        Some(i) => {
            let after = drop_language_tag(&reply[i + 3..]).trim();
            if after.is_empty() {
                reply[..i].trim()
            } else {
                after
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::optimizer::common::fixtures::{instance, kwargs, param, params};

    fn one(kind: ParamKind, initial: Json) -> Vec<Param> {
        vec![param("prompt:0", kind, initial, "")]
    }

    fn parse_text(reply: &str) -> ParsedUpdate {
        GepaReflection.parse(reply, &one(ParamKind::Text, json!("Hello")))
    }

    #[test]
    fn reads_fenced_replies_with_chatter() {
        let reply = "Here is an improved instruction for the assistant:\n\n```markdown\n\
                     # Greeting task\nGreet the user in the language given by its ISO code \
                     (`es` → \"Hola\", `fr` → \"Bonjour\").\n- Use the name exactly as given.\n\
                     ```\n\nThis version spells out the language mapping that was missing.";
        let p = parse_text(reply);
        assert_eq!(
            p.update["prompt:0"],
            json!(
                "# Greeting task\nGreet the user in the language given by its ISO code (`es` → \"Hola\", `fr` → \"Bonjour\").\n- Use the name exactly as given."
            )
        );
        assert!(p.problems.is_empty() && !p.terminated);
    }

    #[test]
    fn reads_code_numbers_and_unfenced_text() {
        let code = GepaReflection.parse(
            "```python\ndef f(x):\n    if x < 0 or x > 9:\n        return {\"err\": x}\n    return x\n```",
            &one(ParamKind::Code, json!("def f(x): return x")),
        );
        assert_eq!(
            code.update["prompt:0"],
            json!("def f(x):\n    if x < 0 or x > 9:\n        return {\"err\": x}\n    return x")
        );
        let numbers = one(ParamKind::Number, json!(0.0));
        let n = GepaReflection.parse("The target is higher.\n\n```\n  2.75\n```", &numbers);
        assert_eq!(n.update["prompt:0"], json!(2.75));
        let bad = GepaReflection.parse("```\nabout three\n```", &numbers);
        assert!(bad.update.is_empty());
        assert_eq!(
            bad.problems,
            vec!["value for `prompt:0` is not a number: \"about three\""]
        );
        let plain = parse_text("  Greet the user warmly, in their own language.\n");
        assert_eq!(
            plain.update["prompt:0"],
            json!("Greet the user warmly, in their own language.")
        );
    }

    #[test]
    fn lone_fences_are_stripped() {
        // Cut off inside the block by the length limit.
        let cut = parse_text("New instruction:\n```text\nAlways greet in the user's language");
        assert_eq!(
            cut.update["prompt:0"],
            json!("Always greet in the user's language")
        );
        let trailing = parse_text("Always greet in the user's language.```");
        assert_eq!(
            trailing.update["prompt:0"],
            json!("Always greet in the user's language.")
        );
    }

    #[test]
    fn several_blocks_read_from_the_first_to_the_last_fence() {
        let p = parse_text("```\nA\n```\nor, shorter:\n```\nB\n```");
        assert_eq!(p.update["prompt:0"], json!("A\n```\nor, shorter:\n```\nB"));
    }

    #[test]
    fn junk_gives_an_empty_update_with_a_reason() {
        for reply in GepaReflection.junk_replies("prompt:0").iter().chain(&[
            "```".to_string(),
            "Done. TERMINATE\n```\nnew text\n```".to_string(),
        ]) {
            let p = parse_text(reply);
            assert!(p.update.is_empty(), "{reply:?}");
            assert!(p.terminated || p.problems == ["empty reply"], "{reply:?}");
        }
    }

    #[test]
    fn needs_exactly_one_trainable_parameter() {
        for ps in [params(), vec![]] {
            let p = GepaReflection.parse("```\nx\n```", &ps);
            assert!(p.update.is_empty());
            assert!(p.problems[0].starts_with("reflection updates exactly one component"));
        }
        // A fixed parameter next to the component does not count.
        let mut ps = one(ParamKind::Text, json!("Hello"));
        ps.push(params().pop().unwrap());
        assert_eq!(
            GepaReflection.parse("```\nHi\n```", &ps).update,
            kwargs(json!({"prompt:0": "Hi"}))
        );
    }

    #[test]
    fn render_round_trips_through_parse() {
        for (kind, value) in [
            (ParamKind::Number, json!(-3.5)),
            (
                ParamKind::Text,
                json!("Greet in Spanish: <b>Hola</b> & {name}."),
            ),
            // Fences inside the value survive: the reply's first and last fences are ours.
            (
                ParamKind::Code,
                json!(
                    "def f(x):\n    s = \"```py\\nx\\n```\"\n    return {x: s} if x > 0 else x < 1"
                ),
            ),
            (ParamKind::Code, json!("```\nfenced at both ends\n```")),
        ] {
            let ps = one(kind, value.clone());
            let update = kwargs(json!({"prompt:0": value}));
            let reply = GepaReflection.render("Because ``` and\nTERMINATE.", &update);
            let p = GepaReflection.parse(&reply, &ps);
            assert_eq!(p.update, update, "{reply}");
            assert!(p.problems.is_empty(), "{reply}");
        }
        let stop = kwargs(json!({"prompt:0": "Say TERMINATE"}));
        let p = parse_text(&GepaReflection.render("r", &stop));
        assert!(p.update.is_empty() && p.problems == ["empty reply"]);
    }

    #[test]
    fn prompt_quotes_only_the_first_component() {
        let ps = params();
        let req = GepaReflection.request(&instance(&ps, vec![]));
        assert_eq!(req.messages.len(), 1);
        assert_eq!(req.messages[0].role, "user");
        let user = &req.messages[0].content;
        for needle in [
            "Match the target.",
            "`value`, which currently reads:\n```\n0.0\n```",
            "```\n# Example 1\n## Inputs\nxxxx",
            "\n\n## Generated Outputs\n0.0\n\n## Feedback\noutput=0.0, target=3.0\n```",
            "The component is a number",
            "domain-specific fact",
            "general strategy",
            "inside a ``` fenced block",
        ] {
            assert!(user.contains(needle), "missing {needle:?} in\n{user}");
        }
        assert!(!user.contains("count") && !user.contains("prompt:0"));
        assert_eq!(req.variables.len(), 1);
        assert_eq!(req.variables[0].name, "value");
        let none = GepaReflection.request(&instance(&[], vec![]));
        assert!(none.variables.is_empty());
    }
}
