//! OptoPrimeV2: the problem is shown in `# Section` blocks with XML-like nodes, and the LLM
//! answers `<reasoning>…</reasoning>` followed by `<variable><name>…</name><value>…</value>
//! </variable>` blocks, or `TERMINATE`. The reference's default protocol for modules.
//!
//! The reply reader and writer here are shared with OPROv2, which asks for the same reply.
//! Reading follows OpenTrace: `TERMINATE` anywhere means "no change"; a `<reasoning>` block
//! opened but never closed means no variables are read; after it, the top-level
//! `<variable>` blocks are matched nesting-aware, and the first `<name>` and `<value>` of
//! each are taken, trimmed. There is no JSON fallback.
//!
//! Values are written raw, without escaping, because that is how models answer and how
//! the reference reads them: `<`, `>`, `&` and braces pass through untouched, and so do
//! tag strings that are balanced inside a value (the matcher counts nesting). What the
//! format cannot carry is `TERMINATE` anywhere, unbalanced `<variable>`/`<name>`/`<value>`
//! tag strings, and leading or trailing whitespace (values are trimmed). [`render_xml_reply`]
//! checks each block by reading it back and leaves out a variable whose value would not
//! survive, saying so in the reasoning, so the reply never carries a corrupted value.

use std::fmt::Write as _;

use serde_json::Value as Json;

use super::common::{
    apply_suggestion, call_graph, display, note_if_no_change, recent_history, score_text, truncate,
    type_label, variable_hints,
};
use super::{ParsedUpdate, ProblemInstance, Protocol};
use crate::llm::{ChatRequest, Message};
use crate::task::Param;
use crate::vocab::Kwargs;

/// The OptoPrimeV2 XML protocol.
#[derive(Debug, Clone, Copy, Default)]
pub struct OptoPrimeV2;

/// Inputs, outputs and memory feedback longer than this many characters are cut.
pub(super) const NODE_CHAR_LIMIT: usize = 2000;
/// How many earlier rounds the prompt shows.
pub(super) const MEMORY_ROUNDS: usize = 5;
/// Reply length limit of the V2 family.
const MAX_TOKENS: u32 = 8192;

/// How to answer, shared by every protocol that reads replies with [`parse_xml_reply`].
const REPLY_FORMAT: &str = "Answer in exactly this form:
<reasoning>
How the feedback relates to the variables, and what should change.
</reasoning>
<variable>
<name>name of a variable to change</name>
<value>
its complete new value
</value>
</variable>

Write one <variable> block per variable you change and leave out those that should stay
as they are. Put values inside <value> as they are, without quotes or escaping; a code
variable needs its full source with the same signature. If nothing should change, answer
with the single word TERMINATE.";

const INTRO: &str =
    "You improve the trainable variables of a program from feedback on what it produced.

A problem is laid out in these sections:
# Instruction: the goal to reach.
# Code: how the program computes its outputs from the variables and the inputs.
# Documentation: what the functions called in # Code do.
# Variables: the values you may change, each written as
  <variable name=\"...\" type=\"...\"><value>...</value><constraint>...</constraint></variable>;
  the constraint, when present, says what the variable means and which values are valid.
# Inputs: what the program received; you cannot change it.
# Outputs: what the program produced.
# Feedback: what the evaluator said about the outputs.
Long inputs and outputs are cut short, with a note saying how much was skipped. Earlier
rounds, when shown, are <round k> blocks with the values tried then and how they fared.";

impl Protocol for OptoPrimeV2 {
    fn name(&self) -> &'static str {
        "OptoPrimeV2"
    }

    fn request(&self, instance: &ProblemInstance<'_>) -> ChatRequest {
        xml_request(instance, INTRO, user_prompt)
    }

    fn parse(&self, reply: &str, params: &[Param]) -> ParsedUpdate {
        parse_xml_reply(reply, params)
    }

    fn render(&self, reasoning: &str, update: &Kwargs) -> String {
        render_xml_reply(reasoning, update)
    }

    fn junk_replies(&self, first: &str) -> Vec<String> {
        xml_junk_replies(first)
    }
}

/// A V2-family request: system = `intro` + the reply format, user = `user_prompt` of the
/// instance and its batched feedback.
pub(super) fn xml_request(
    instance: &ProblemInstance<'_>,
    intro: &str,
    user_prompt: fn(&ProblemInstance<'_>, &str) -> String,
) -> ChatRequest {
    let feedback = instance.batched_feedback();
    ChatRequest {
        messages: vec![
            Message::new("system", format!("{intro}\n\n{REPLY_FORMAT}")),
            Message::new("user", user_prompt(instance, &feedback)),
        ],
        temperature: None,
        max_tokens: Some(MAX_TOKENS),
        variables: variable_hints(&instance.variables),
        feedback,
        extra: Default::default(),
    }
}

fn user_prompt(instance: &ProblemInstance<'_>, feedback: &str) -> String {
    let mut s =
        String::from("Here is the problem to work on:\n\n================================\n");
    let _ = writeln!(s, "# Instruction\n{}\n", instance.objective);
    let _ = writeln!(s, "# Code\n{}", call_graph(instance));
    s.push_str(
        "# Documentation\n[agent] Runs the program being trained on one input with the \
         variables below and returns its output.\n\n# Variables\n",
    );
    for (p, v) in &instance.variables {
        let constraint = (!p.description.is_empty()).then_some(p.description.as_str());
        s.push_str(&node(
            "variable",
            &p.name,
            p.kind.label(v),
            &display(v),
            constraint,
        ));
    }
    s.push_str("\n# Inputs\n");
    s.push_str(&example_nodes(instance, "input", |e| &e.input));
    s.push_str("\n# Outputs\n");
    s.push_str(&example_nodes(instance, "output", |e| &e.output));
    let _ = writeln!(
        s,
        "\n# Feedback\n{feedback}\n================================\n"
    );
    if !instance.history.is_empty() {
        s.push_str("Earlier rounds, oldest first:\n");
        for (k, entry) in recent_history(instance, MEMORY_ROUNDS) {
            let _ = writeln!(s, "<round {k}>");
            for (name, v) in &entry.values {
                s.push_str(&node(
                    "variable",
                    name,
                    type_label(instance, name, v),
                    &display(v),
                    None,
                ));
            }
            let _ = writeln!(
                s,
                "<score>{}</score>\n<feedback>\n{}\n</feedback>\n</round>",
                score_text(entry.score),
                truncate(&entry.feedback, NODE_CHAR_LIMIT)
            );
        }
        s.push('\n');
    }
    s.push_str(&closing_ask(instance));
    s
}

/// `<tag name="n" type="t"><value>…</value>[<constraint>…</constraint>]</tag>`, one part
/// per line so multi-line values stay readable.
pub(super) fn node(
    tag: &str,
    name: &str,
    type_label: &str,
    value: &str,
    constraint: Option<&str>,
) -> String {
    let mut s =
        format!("<{tag} name=\"{name}\" type=\"{type_label}\">\n<value>\n{value}\n</value>\n");
    if let Some(c) = constraint {
        let _ = writeln!(s, "<constraint>\n{c}\n</constraint>");
    }
    let _ = writeln!(s, "</{tag}>");
    s
}

/// `input_i`/`output_i` nodes of the examples, each value cut to [`NODE_CHAR_LIMIT`].
pub(super) fn example_nodes(
    instance: &ProblemInstance<'_>,
    prefix: &str,
    field: impl Fn(&super::ExampleTrace) -> &String,
) -> String {
    instance
        .examples
        .iter()
        .enumerate()
        .map(|(i, e)| {
            node(
                "node",
                &format!("{prefix}_{i}"),
                "str",
                &truncate(field(e), NODE_CHAR_LIMIT),
                None,
            )
        })
        .collect()
}

/// The closing lines: which variables the reply should address, then the reply cue.
pub(super) fn closing_ask(instance: &ProblemInstance<'_>) -> String {
    let names: Vec<&str> = instance
        .variables
        .iter()
        .map(|(p, _)| p.name.as_str())
        .collect();
    format!(
        "What are your suggestions on variables {}?\n\nYour response:\n",
        names.join(", ")
    )
}

/// The `(name, value)` pairs of a reply before they meet the parameters.
#[derive(Debug, Default, PartialEq)]
struct RawReply {
    pairs: Vec<(String, String)>,
    problems: Vec<String>,
    terminated: bool,
}

fn read_blocks(reply: &str) -> RawReply {
    let mut raw = RawReply::default();
    if reply.contains("TERMINATE") {
        raw.terminated = true;
        return raw;
    }
    if reply.trim().is_empty() {
        raw.problems.push("empty reply".into());
        return raw;
    }
    const OPEN: &str = "<reasoning>";
    const CLOSE: &str = "</reasoning>";
    let body = match reply.find(OPEN) {
        None => reply,
        Some(i) => {
            let after = &reply[i + OPEN.len()..];
            match after.find(CLOSE) {
                Some(j) => &after[j + CLOSE.len()..],
                None => {
                    raw.problems
                        .push("unclosed <reasoning>; no variables read".into());
                    return raw;
                }
            }
        }
    };
    for block in top_level_blocks(body, "variable") {
        let name = top_level_blocks(block, "name")
            .first()
            .map(|n| n.trim().to_string());
        let value = top_level_blocks(block, "value")
            .first()
            .map(|v| v.trim().to_string());
        match (name, value) {
            (Some(name), Some(value)) if !name.is_empty() => raw.pairs.push((name, value)),
            (Some(name), None) if !name.is_empty() => raw
                .problems
                .push(format!("variable `{name}` has no <value>; ignored")),
            _ => raw
                .problems
                .push("a <variable> block has no <name>; ignored".into()),
        }
    }
    raw
}

/// The contents of the top-level `<tag>…</tag>` blocks of `text`, nesting-aware: an inner
/// `<tag>` must be closed before the outer block ends; a stray closing tag is skipped.
fn top_level_blocks<'a>(text: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut blocks = Vec::new();
    let (mut depth, mut start, mut i) = (0usize, 0usize, 0usize);
    while let Some(off) = text[i..].find('<') {
        let at = i + off;
        let rest = &text[at..];
        if rest.starts_with(&open) {
            if depth == 0 {
                start = at + open.len();
            }
            depth += 1;
            i = at + open.len();
        } else if rest.starts_with(&close) {
            if depth > 0 {
                depth -= 1;
                if depth == 0 {
                    blocks.push(&text[start..at]);
                }
            }
            i = at + close.len();
        } else {
            i = at + 1;
        }
    }
    blocks
}

/// Read an XML-style reply (OptoPrimeV2, OPROv2) into an update of `params`.
pub(super) fn parse_xml_reply(reply: &str, params: &[Param]) -> ParsedUpdate {
    let raw = read_blocks(reply);
    let mut out = ParsedUpdate {
        problems: raw.problems,
        terminated: raw.terminated,
        ..ParsedUpdate::default()
    };
    for (name, value) in raw.pairs {
        apply_suggestion(&mut out, params, &name, Json::String(value));
    }
    note_if_no_change(&mut out);
    out
}

/// Write `update` as a well-formed XML-style reply. Each variable block is read back
/// before it is kept; a value the format cannot carry (see the module notes) is left out
/// and named in the reasoning. String values come back trimmed.
pub(super) fn render_xml_reply(reasoning: &str, update: &Kwargs) -> String {
    let bare_head = "<reasoning>\n</reasoning>\n";
    let mut body = String::new();
    let mut expected: Vec<(String, String)> = Vec::new();
    let mut left_out = Vec::new();
    for (name, value) in update {
        let text = display(value);
        let block =
            format!("<variable>\n<name>{name}</name>\n<value>\n{text}\n</value>\n</variable>\n");
        expected.push((name.clone(), text.trim().to_string()));
        let trial = format!("{bare_head}{body}{block}");
        if !block.contains("TERMINATE") && read_blocks(&trial).pairs == expected {
            body.push_str(&block);
        } else {
            expected.pop();
            left_out.push(name.as_str());
        }
    }
    let mut said = reasoning.to_string();
    if !left_out.is_empty() {
        let _ = write!(
            said,
            " Not proposed: {} (the value cannot be written in this reply format).",
            left_out.join(", ")
        );
    }
    // The reasoning must not end the block early, open a variable, or stop the update.
    let said = said
        .replace("TERMINATE", "terminate")
        .replace('<', "‹")
        .replace('>', "›");
    format!("<reasoning>\n{}\n</reasoning>\n{body}", said.trim())
}

/// Malformed XML-style replies: each reads as an empty update with a reason.
pub(super) fn xml_junk_replies(first: &str) -> Vec<String> {
    vec![
        "TERMINATE".to_string(),
        String::new(),
        format!("I would nudge `{first}` a little, but I cannot tell in which direction."),
        format!(
            "<reasoning>\nThe output is off; I will change {first}.\n<variable>\n<name>{first}</name>\n<value>\n1\n</value>\n</variable>\n"
        ),
        "<reasoning>stub junk reply</reasoning>\n<variable>\n<name>not_a_variable</name>\n<value>1</value>\n</variable>".to_string(),
        "<reasoning>stub junk reply</reasoning>\n<variable>\n<value>1</value>\n</variable>".to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::optimizer::common::fixtures::{history, instance, kwargs, params};

    fn parse(reply: &str) -> ParsedUpdate {
        OptoPrimeV2.parse(reply, &params())
    }

    #[test]
    fn reads_a_well_formed_reply() {
        let reply = "<reasoning>\nThe output 0.0 is below the target 3.0, so value must grow; \
                     count should follow.\n</reasoning>\n<variable>\n<name>value</name>\n\
                     <value>\n2.5\n</value>\n</variable>\n<variable>\n<name>count</name>\n\
                     <value>3</value>\n</variable>";
        let p = parse(reply);
        assert_eq!(p.update, kwargs(json!({"value": 2.5, "count": 3})));
        assert!(p.problems.is_empty() && !p.terminated);
    }

    #[test]
    fn reads_chatty_fenced_replies_and_colon_spellings() {
        let reply = "Sure! Looking at the feedback, the greeting is in the wrong language.\n\n\
            ```xml\n<reasoning>\n  The evaluator expected 'Hola' for `es`. I will switch the \
            greeting.  \n</reasoning>\n\n<variable>\n    <name> prompt0 </name>\n    <value>\n      \
            Hola\n    </value>\n</variable>\n```\n\nLet me know if you need anything else!";
        let p = parse(reply);
        assert_eq!(p.update, kwargs(json!({"prompt:0": "Hola"})));
        assert!(p.problems.is_empty());
        let no_reasoning = "<variable><name>prompt:0</name><value>Hi there</value></variable>";
        assert_eq!(parse(no_reasoning).update["prompt:0"], json!("Hi there"));
    }

    #[test]
    fn reads_code_with_braces_and_angle_brackets() {
        let code = "def f(x):\n    if x < 3 and x > -1:\n        return {\"a\": [x]}\n    \
                    return f\"<{x}>\" if x >= 0 else x << 1";
        let reply = format!(
            "<reasoning>Handle the range with an explicit check.</reasoning>\n\
             <variable>\n<name>code</name>\n<value>\n{code}\n</value>\n</variable>"
        );
        let p = parse(&reply);
        assert_eq!(p.update["code"], json!(code));
        assert!(p.problems.is_empty());
    }

    #[test]
    fn variables_before_the_reasoning_block_are_not_read() {
        let reply = "<variable><name>value</name><value>9</value></variable>\n\
                     <reasoning>r</reasoning>\n<variable><name>count</name><value>2</value></variable>";
        assert_eq!(parse(reply).update, kwargs(json!({"count": 2})));
    }

    #[test]
    fn partial_replies_keep_what_is_usable() {
        // A reply cut off by the length limit: the first block is complete, the second not.
        let reply = "<reasoning>Two changes.</reasoning>\n<variable><name>value</name>\
                     <value>1.5</value></variable>\n<variable><name>count</name><value>4";
        let p = parse(reply);
        assert_eq!(p.update, kwargs(json!({"value": 1.5})));
        assert!(p.problems.is_empty());
        let mixed = "<reasoning>r</reasoning><variable><name>value</name><value>lots</value>\
                     </variable><variable><name>count</name><value>7</value></variable>\
                     <variable><name>temperature</name><value>0.1</value></variable>";
        let p = parse(mixed);
        assert_eq!(p.update, kwargs(json!({"count": 7})));
        assert_eq!(
            p.problems,
            vec![
                "value for `value` is not a number: \"lots\"".to_string(),
                "variable `temperature` is not trainable; ignored".to_string(),
            ]
        );
    }

    #[test]
    fn junk_gives_an_empty_update_with_a_reason() {
        for (reply, problem) in [
            ("", "empty reply"),
            ("  \n ", "empty reply"),
            (
                "I think the value should be larger, maybe 2.5.",
                "reply suggests no change",
            ),
            (
                "<reasoning>\nIncrease it.\n<variable><name>value</name><value>2</value></variable>",
                "unclosed <reasoning>; no variables read",
            ),
            (
                "<reasoning>r</reasoning><variable><name>gain</name><value>2</value></variable>",
                "unknown variable `gain` ignored",
            ),
            (
                "<reasoning>r</reasoning><variable><value>2</value></variable>",
                "a <variable> block has no <name>; ignored",
            ),
            (
                "<reasoning>r</reasoning><variable><name>  </name><value>2</value></variable>",
                "a <variable> block has no <name>; ignored",
            ),
            (
                "<reasoning>r</reasoning><variable><name>value</name></variable>",
                "variable `value` has no <value>; ignored",
            ),
            (
                "<reasoning>r</reasoning><variable><name>code</name><value>\n</value></variable>",
                "code for `code` is empty or not a string; ignored",
            ),
            (
                // The prompt's node format echoed back is not the reply format.
                "<variable name=\"value\" type=\"float\"><value>2</value></variable>",
                "reply suggests no change",
            ),
        ] {
            let p = parse(reply);
            assert!(p.update.is_empty(), "{reply}");
            assert_eq!(p.problems, vec![problem.to_string()], "{reply}");
        }
    }

    #[test]
    fn empty_text_values_are_allowed() {
        let p = parse(
            "<reasoning>r</reasoning><variable><name>prompt:0</name><value></value></variable>",
        );
        assert_eq!(p.update, kwargs(json!({"prompt:0": ""})));
    }

    #[test]
    fn terminate_anywhere_stops_the_update() {
        for reply in [
            "TERMINATE",
            "<reasoning>The outputs match; otherwise I would not say TERMINATE.</reasoning>\n\
             <variable><name>value</name><value>2</value></variable>",
        ] {
            let p = parse(reply);
            assert!(p.terminated && p.update.is_empty() && p.problems.is_empty());
        }
    }

    #[test]
    fn nested_tags_are_matched_by_depth() {
        let reply = "<reasoning>r</reasoning><variable><name>code</name><value>\
                     s = '<variable><value>x</value></variable>'</value></variable>";
        assert_eq!(
            parse(reply).update["code"],
            json!("s = '<variable><value>x</value></variable>'")
        );
        assert_eq!(
            top_level_blocks("</a><a>1<a>2</a></a><a>3", "a"),
            vec!["1<a>2</a>"]
        );
    }

    #[test]
    fn render_round_trips_through_parse() {
        let update = kwargs(json!({
            "value": 1.25,
            "count": -4,
            "code": "def f(x):\n    if x < 2 and x > 0:\n        return {'k': x}\n    return \"<value>\" + str(x) + '</value>'",
            "prompt:0": "Say <b>Hola</b> & wave {warmly}",
        }));
        let reply = OptoPrimeV2.render("Because <reasons> & TERMINATE.", &update);
        let p = parse(&reply);
        assert_eq!(p.update, update, "{reply}");
        assert!(p.problems.is_empty() && !p.terminated, "{reply}");
    }

    #[test]
    fn render_leaves_out_values_it_cannot_carry() {
        let update = kwargs(json!({
            "value": 2.0,
            "code": "def f(x):\n    return '</value>'",
            "prompt:0": "Reply TERMINATE when done",
        }));
        let reply = OptoPrimeV2.render("r", &update);
        assert!(reply.contains("Not proposed: code, prompt:0"), "{reply}");
        let p = parse(&reply);
        assert_eq!(p.update, kwargs(json!({"value": 2.0})));
        assert!(p.problems.is_empty());
        // Surrounding whitespace is not carried: values come back trimmed.
        let padded = kwargs(json!({"prompt:0": "  Hola \n"}));
        assert_eq!(
            parse(&OptoPrimeV2.render("r", &padded)).update,
            kwargs(json!({"prompt:0": "Hola"}))
        );
    }

    #[test]
    fn every_junk_reply_parses_empty() {
        for reply in OptoPrimeV2.junk_replies("value") {
            let p = parse(&reply);
            assert!(p.update.is_empty(), "{reply}");
            assert!(p.terminated || !p.problems.is_empty(), "{reply}");
        }
    }

    #[test]
    fn prompt_shows_every_section() {
        let ps = params();
        let req = OptoPrimeV2.request(&instance(&ps, vec![]));
        let system = &req.messages[0].content;
        assert!(system.contains("<reasoning>") && system.contains("TERMINATE"));
        let user = &req.messages[1].content;
        for needle in [
            "# Instruction\nMatch the target.",
            "# Code\noutput_0 = agent(input=input_0, value=value, count=count, code=code, prompt:0=prompt:0)",
            "# Documentation\n",
            "# Variables\n<variable name=\"value\" type=\"float\">\n<value>\n0.0\n</value>\n<constraint>\nThe number.\n</constraint>\n</variable>",
            "<variable name=\"count\" type=\"int\">\n<value>\n0\n</value>\n</variable>",
            "<variable name=\"code\" type=\"code\">\n<value>\ndef f(x): return x\n</value>\n</variable>",
            "<value>\nHello\n</value>\n<constraint>\nA greeting.",
            "# Inputs\n<node name=\"input_0\" type=\"str\">\n<value>\n",
            "...(skipped 500 chars)\n</value>",
            "# Outputs\n<node name=\"output_0\" type=\"str\">\n<value>\n0.0\n</value>\n</node>",
            "# Feedback\nID [0]: output=0.0, target=3.0",
            "What are your suggestions on variables value, count, code, prompt:0?\n\nYour response:\n",
        ] {
            assert!(user.contains(needle), "missing {needle:?} in\n{user}");
        }
        assert!(!user.contains("temperature") && !user.contains("<round"));
        assert!(user.ends_with("Your response:\n"));
        assert_eq!(req.max_tokens, Some(8192));
        assert_eq!(req.variables.len(), 4);
        assert_eq!(req.feedback, "ID [0]: output=0.0, target=3.0");
    }

    #[test]
    fn prompt_shows_the_last_five_rounds_as_memory() {
        let ps = params();
        let req = OptoPrimeV2.request(&instance(&ps, history(7)));
        let user = &req.messages[1].content;
        assert!(!user.contains("<round 2>"));
        for k in 3..=7 {
            assert!(user.contains(&format!("<round {k}>")), "{user}");
        }
        assert!(user.contains(
            "<round 7>\n<variable name=\"value\" type=\"float\">\n<value>\n6.5\n</value>\n</variable>\n<score>-6</score>"
        ));
        assert!(user.contains(
            "<score>not evaluated</score>\n<feedback>\nfeedback of round 6\n</feedback>"
        ));
        assert!(user.find("<round 7>") < user.find("What are your suggestions"));
    }
}
