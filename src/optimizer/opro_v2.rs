//! OPROv2: the problem is shown as `# Problem Context`, earlier solutions with their
//! scores, the current `# Solution` and its `# Feedback`; the LLM is asked for a new
//! solution that uses the feedback and beats the earlier scores. The value/score history
//! is what makes it OPRO. The reply is OptoPrimeV2's XML, read and written by the same
//! functions.

use std::fmt::Write as _;

use super::common::{display, recent_history, score_text, truncate, type_label};
use super::optoprime_v2::{
    MEMORY_ROUNDS, NODE_CHAR_LIMIT, closing_ask, example_nodes, node, parse_xml_reply,
    render_xml_reply, xml_junk_replies, xml_request,
};
use super::{ParsedUpdate, ProblemInstance, Protocol};
use crate::llm::ChatRequest;
use crate::task::Param;
use crate::vocab::Kwargs;

/// The OPROv2 protocol (OptoPrimeV2's reply format, OPRO's score history).
#[derive(Debug, Clone, Copy, Default)]
pub struct OPROv2;

const INTRO: &str = "You are an optimizer: you propose better solutions to a problem, learning from feedback and from the scores of earlier solutions.

A problem is laid out in these sections:
# Problem Context: the goal, what each part of the solution means, and the examples the
  current solution was run on (inputs and what it produced).
# Earlier Solutions: solutions tried before, oldest first, each with its score (higher is
  better) and the feedback it received.
# Solution: the current solution, one <solution name=\"...\" type=\"...\"> node per part;
  each part is a variable you may change.
# Feedback: what the evaluator said about the current solution.";

impl Protocol for OPROv2 {
    fn uses_history(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "OPROv2"
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

fn user_prompt(instance: &ProblemInstance<'_>, feedback: &str) -> String {
    let mut s = format!("# Problem Context\n{}\n\n", instance.objective);
    s.push_str("Parts of the solution:\n");
    for (p, v) in &instance.variables {
        let _ = write!(s, "- {} ({})", p.name, p.kind.label(v));
        if !p.description.is_empty() {
            let _ = write!(s, ": {}", p.description);
        }
        s.push('\n');
    }
    s.push_str("\nExamples the current solution was run on:\n");
    s.push_str(&example_nodes(instance, "input", |e| &e.input));
    s.push_str(&example_nodes(instance, "output", |e| &e.output));

    s.push_str("\n# Earlier Solutions\n");
    if instance.history.is_empty() {
        s.push_str("(none yet)\n");
    }
    for (i, (k, entry)) in recent_history(instance, MEMORY_ROUNDS).enumerate() {
        if i > 0 {
            s.push('\n');
        }
        let _ = writeln!(s, "Solution {k} (score: {}):", score_text(entry.score));
        for (name, v) in &entry.values {
            s.push_str(&node(
                "solution",
                name,
                type_label(instance, name, v),
                &display(v),
                None,
            ));
        }
        if !entry.feedback.is_empty() {
            let _ = writeln!(
                s,
                "Feedback:\n{}",
                truncate(&entry.feedback, NODE_CHAR_LIMIT)
            );
        }
    }

    s.push_str("\n# Solution\n");
    for (p, v) in &instance.variables {
        s.push_str(&node(
            "solution",
            &p.name,
            p.kind.label(v),
            &display(v),
            None,
        ));
    }
    let _ = write!(
        s,
        "\n# Feedback\n{feedback}\n\nPropose a new solution that incorporates the feedback and \
         improves on the scores of the earlier solutions.\n"
    );
    s.push_str(&closing_ask(instance));
    s
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::optimizer::common::fixtures::{history, instance, kwargs, params};

    #[test]
    fn reads_the_v2_reply_format() {
        let reply = "Based on the scores, larger values did better.\n\n<reasoning>\nScores rose \
                     as value grew from 0.5 to 4.5; try 5.5.\n</reasoning>\n<variable>\n\
                     <name>value</name>\n<value>5.5</value>\n</variable>\n\nHope this helps.";
        let p = OPROv2.parse(reply, &params());
        assert_eq!(p.update, kwargs(json!({"value": 5.5})));
        assert!(p.problems.is_empty());
        let junk = OPROv2.parse(
            "<reasoning>r</reasoning><variable><name>gain</name><value>1</value></variable>",
            &params(),
        );
        assert!(junk.update.is_empty());
        assert_eq!(junk.problems, vec!["unknown variable `gain` ignored"]);
        let stop = OPROv2.parse(
            "<reasoning>Scores plateaued. TERMINATE</reasoning>",
            &params(),
        );
        assert!(stop.terminated && stop.update.is_empty());
    }

    #[test]
    fn render_round_trips_and_junk_parses_empty() {
        let update = kwargs(json!({
            "value": -0.125,
            "code": "def f(x):\n    return {k: v for k, v in x.items() if v > 0 and k < 'm'}",
        }));
        let reply = OPROv2.render("From the history.", &update);
        let p = OPROv2.parse(&reply, &params());
        assert_eq!(p.update, update, "{reply}");
        assert!(p.problems.is_empty());
        for reply in OPROv2.junk_replies("value") {
            let p = OPROv2.parse(&reply, &params());
            assert!(p.update.is_empty(), "{reply}");
            assert!(p.terminated || !p.problems.is_empty(), "{reply}");
        }
    }

    #[test]
    fn prompt_shows_every_section_and_the_score_history() {
        let ps = params();
        let req = OPROv2.request(&instance(&ps, history(7)));
        let user = &req.messages[1].content;
        for needle in [
            "# Problem Context\nMatch the target.",
            "- value (float): The number.\n- count (int)\n- code (code)\n- prompt:0 (str): A greeting.",
            "<node name=\"input_0\" type=\"str\">",
            "...(skipped 500 chars)",
            "<node name=\"output_0\" type=\"str\">\n<value>\n0.0\n</value>\n</node>",
            "# Earlier Solutions\nSolution 3 (score: -2):\n<solution name=\"value\" type=\"float\">\n<value>\n2.5\n</value>\n</solution>\nFeedback:\nfeedback of round 3",
            "Solution 6 (score: not evaluated):",
            "Solution 7 (score: -6):",
            "# Solution\n<solution name=\"value\" type=\"float\">\n<value>\n0.0\n</value>\n</solution>",
            "<solution name=\"code\" type=\"code\">\n<value>\ndef f(x): return x\n</value>",
            "<solution name=\"prompt:0\" type=\"str\">\n<value>\nHello\n</value>",
            "# Feedback\nID [0]: output=0.0, target=3.0",
            "Propose a new solution that incorporates the feedback and improves on the scores",
            "What are your suggestions on variables value, count, code, prompt:0?\n\nYour response:\n",
        ] {
            assert!(user.contains(needle), "missing {needle:?} in\n{user}");
        }
        assert!(!user.contains("Solution 2 ("));
        assert!(user.find("Solution 3 (") < user.find("Solution 7 ("));
        let system = &req.messages[0].content;
        assert!(system.contains("<variable>\n<name>") && system.contains("TERMINATE"));
        assert_eq!(req.variables.len(), 4);
        assert_eq!(req.max_tokens, Some(8192));
        let fresh = OPROv2.request(&instance(&ps, vec![]));
        assert!(
            fresh.messages[1]
                .content
                .contains("# Earlier Solutions\n(none yet)")
        );
    }
}
