//! TextGrad's optimizer protocol (OpenTrace's port `opto/optimizers/textgrad.py` of
//! `textgrad`'s TGD; see `docs/trainers.md`, TextGradTrainer): three kinds of call.
//!
//! 1. **Backward**, one per edge parameter → example: the gradient engine reads how the
//!    parameter was used (`<ROLE>`, `<VARIABLE>`, `<LM_INPUT>`/`<LM_OUTPUT>`) and the
//!    evaluator's feedback as the `<OBJECTIVE_FUNCTION>`, and writes criticism (any text is a
//!    gradient).
//! 2. **Reduce**, one per parameter with more than one gradient: the `<FEEDBACK>` blocks
//!    summarised into one.
//! 3. **Update**, one per parameter: the variable, its role and the gradient as context;
//!    the reply's text after `<IMPROVED_VARIABLE>` (up to `</IMPROVED_VARIABLE>`, which may be
//!    missing) replaces the value, cast to the parameter's kind.
//!
//! The tags, the order of the sections and the reading rule are TextGrad's; the system
//! prompts open with TextGrad's first sentences (quoted in the project's research notes),
//! the rest is our wording. As a [`Protocol`] (`optimizer: TextGrad` for any trainer) one
//! call is the update of the first variable with the batch's feedback as its gradient —
//! TextGrad's cheapest route, without backward calls — like `GEPAReflection`.

use serde_json::Value as Json;

use super::common::{coerce, display, variable_hints};
use super::{ExampleTrace, ParsedUpdate, ProblemInstance, Protocol};
use crate::llm::{ChatRequest, Message};
use crate::task::Param;
use crate::vocab::Kwargs;

/// The opening tag of the improved value.
pub const START_TAG: &str = "<IMPROVED_VARIABLE>";
/// The closing tag (optional when reading).
pub const END_TAG: &str = "</IMPROVED_VARIABLE>";

/// The gradient engine's system prompt.
pub const BACKWARD_SYSTEM: &str = "You are part of an optimization system that improves a given text (i.e. the variable). You are the gradient (feedback) engine. \
Your task is to criticise the variable constructively, given the objective in <OBJECTIVE_FUNCTION> </OBJECTIVE_FUNCTION> tags. \
The variable may be a prompt to a language model, a solution, code, a number or any other value; mind its role description and how it is used, and assume it will be used the same way again. \
Give strategies, explanations and concrete changes, but do not write a new version of the variable: that is the optimizer's job. \
If the variable already works well for the objective, say that no change is needed.";

/// The optimizer's system prompt.
pub const OPTIMIZER_SYSTEM: &str = "You are part of an optimization system that improves text (i.e., variable). \
You improve prompts, solutions, code or any other value from the feedback you receive; the feedback may be noisy, so keep what is important and correct. \
Mind the role description of the variable and the context in which it is used. \
You MUST send the improved variable between <IMPROVED_VARIABLE> and </IMPROVED_VARIABLE> tags: the text between them replaces the variable.";

/// The reduce step's system prompt.
pub const REDUCE_SYSTEM: &str = "You are part of an optimization system that improves a given text (i.e. the variable). \
You receive several pieces of feedback on the same variable, each in <FEEDBACK> </FEEDBACK> tags, from different examples. \
Combine them into one feedback that keeps every distinct, useful point and drops repetitions. Reply with the combined feedback only.";

fn role(param: &Param) -> String {
    if param.description.trim().is_empty() {
        format!("the parameter `{}`", param.name)
    } else {
        format!(
            "the parameter `{}`: {}",
            param.name,
            param.description.trim()
        )
    }
}

fn request(
    system: &str,
    user: String,
    variables: &[(&Param, Json)],
    feedback: &str,
) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::new("system", system), Message::new("user", user)],
        temperature: None,
        max_tokens: None,
        variables: variable_hints(variables),
        feedback: feedback.to_string(),
        extra: Default::default(),
    }
}

/// The backward call of the edge `param` → one example: its gradient is the reply.
pub fn backward_request(
    objective: &str,
    param: &Param,
    value: &Json,
    example: &ExampleTrace,
) -> ChatRequest {
    let role = role(param);
    let user = format!(
        "You will give feedback to a variable with the following role: <ROLE> {role} </ROLE>. \
         Here is how a system using it handled one input:\n\n\
         <LM_INPUT> {input} </LM_INPUT>\n\n<LM_OUTPUT> {output} </LM_OUTPUT>\n\n\
         This is part of a larger system whose task is: {objective}\n\n\
         <OBJECTIVE_FUNCTION>Your goal is to give feedback to the variable to address the following \
         evaluation of the output: {feedback} </OBJECTIVE_FUNCTION>\n\n\
         We are interested in giving feedback to {role}. Specifically, give feedback to the \
         following span of text:\n\n<VARIABLE> {value} </VARIABLE>\n\n\
         Describe how it could be improved to improve the <OBJECTIVE_FUNCTION>.",
        input = example.input,
        output = example.output,
        objective = objective.trim(),
        feedback = example.feedback,
        value = display(value),
    );
    request(BACKWARD_SYSTEM, user, &[], &example.feedback)
}

/// The reduce call over a parameter's gradients (used when there are several).
pub fn reduce_request(param: &Param, gradients: &[String]) -> ChatRequest {
    let blocks: String = gradients
        .iter()
        .map(|g| format!("<FEEDBACK>{g}</FEEDBACK>\n\n"))
        .collect();
    let user = format!(
        "Here is the feedback on {}, one block per example:\n\n{blocks}Combine it into one feedback.",
        role(param)
    );
    request(REDUCE_SYSTEM, user, &[], &gradients.join("\n"))
}

/// The update call of one parameter from its gradient.
pub fn update_request(param: &Param, value: &Json, gradient: &str) -> ChatRequest {
    let role = role(param);
    let form = match param.kind {
        crate::vocab::ParamKind::Number => " The variable is a number: send a single number.",
        crate::vocab::ParamKind::Code => {
            " The variable is program source: send the complete new source."
        }
        crate::vocab::ParamKind::Text => "",
    };
    let user = format!(
        "Here is the role of the variable you will improve: <ROLE>{role}</ROLE>.\n\n\
         The variable is the text within the following span: <VARIABLE> {value} </VARIABLE>\n\n\
         Here is the context and feedback we got for the variable:\n\n\
         <CONTEXT><FEEDBACK>{gradient}</FEEDBACK></CONTEXT>\n\n\
         Improve the variable ({role}) using the feedback provided in <FEEDBACK> tags.{form}\n\
         Send the improved variable in the following format:\n\n\
         {START_TAG}{{the improved variable}}{END_TAG}\n\n\
         Send ONLY the improved variable between the {START_TAG} tags, and nothing else.",
        value = display(value),
    );
    request(OPTIMIZER_SYSTEM, user, &[(param, value.clone())], gradient)
}

/// The improved value of `param` in `reply`: the text after the first opening tag, up to
/// the closing tag when there is one, trimmed, cast to the parameter's kind.
pub fn parse_update(reply: &str, param: &Param) -> Result<Json, String> {
    let Some((_, rest)) = reply.split_once(START_TAG) else {
        return Err(format!("no {START_TAG} tag in the reply"));
    };
    let text = rest.split(END_TAG).next().unwrap_or_default().trim();
    if text.is_empty() {
        return Err(format!("empty {START_TAG}"));
    }
    coerce(param, Json::String(text.to_string()))
}

/// TextGrad as a one-call protocol: the first variable updated from the batch's feedback.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextGrad;

impl Protocol for TextGrad {
    fn name(&self) -> &'static str {
        "TextGrad"
    }

    fn request(&self, instance: &ProblemInstance<'_>) -> ChatRequest {
        match instance.variables.first() {
            Some((param, value)) => {
                let mut r = update_request(param, value, &instance.batched_feedback());
                r.messages[1].content = format!(
                    "The system's task: {}\n\n{}",
                    instance.objective.trim(),
                    r.messages[1].content
                );
                r
            }
            None => request(OPTIMIZER_SYSTEM, String::new(), &[], ""),
        }
    }

    fn parse(&self, reply: &str, params: &[Param]) -> ParsedUpdate {
        let mut out = ParsedUpdate::default();
        let Some(param) = params.iter().find(|p| p.trainable) else {
            out.problems.push("no trainable parameter".into());
            return out;
        };
        match parse_update(reply, param) {
            Ok(v) => {
                out.update.insert(param.name.clone(), v);
            }
            Err(problem) => out.problems.push(problem),
        }
        out
    }

    /// The first updated value between the tags.
    fn render(&self, _reasoning: &str, update: &Kwargs) -> String {
        let value = update.values().next().map(display).unwrap_or_default();
        format!("{START_TAG}{value}{END_TAG}")
    }

    fn junk_replies(&self, _first: &str) -> Vec<String> {
        vec![
            "The variable looks fine to me.".to_string(),
            String::new(),
            format!("{START_TAG}   {END_TAG}"),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::ParamKind;

    fn param(kind: ParamKind) -> Param {
        Param {
            name: "x".into(),
            kind,
            initial: Json::Null,
            trainable: true,
            description: "the answer".into(),
        }
    }

    #[test]
    fn the_update_is_read_as_textgrad_reads_it() {
        let text = param(ParamKind::Text);
        assert_eq!(
            parse_update(
                "ok <IMPROVED_VARIABLE> Be brief. </IMPROVED_VARIABLE> bye",
                &text
            ),
            Ok(Json::String("Be brief.".into()))
        );
        // The closing tag is optional; the first opening tag counts.
        assert_eq!(
            parse_update("<IMPROVED_VARIABLE>a\nb", &text),
            Ok(Json::String("a\nb".into()))
        );
        assert!(parse_update("no tags", &text).is_err());
        assert!(parse_update("<IMPROVED_VARIABLE>  </IMPROVED_VARIABLE>", &text).is_err());
        let number = param(ParamKind::Number);
        assert_eq!(
            parse_update("<IMPROVED_VARIABLE>2.5</IMPROVED_VARIABLE>", &number),
            Ok(serde_json::json!(2.5))
        );
        assert!(parse_update("<IMPROVED_VARIABLE>two</IMPROVED_VARIABLE>", &number).is_err());
    }

    #[test]
    fn requests_carry_the_tags_and_render_parses_back() {
        let p = param(ParamKind::Text);
        let value = Json::String("Be kind.".into());
        let example = ExampleTrace {
            input: "2+2".into(),
            output: "5".into(),
            feedback: "wrong, expected 4".into(),
        };
        let b = backward_request("Answer sums.", &p, &value, &example);
        assert!(b.messages[0].content.starts_with("You are part of an optimization system that improves a given text (i.e. the variable). You are the gradient (feedback) engine."));
        for tag in [
            "<ROLE>",
            "<LM_INPUT> 2+2",
            "<LM_OUTPUT> 5",
            "<OBJECTIVE_FUNCTION>",
            "<VARIABLE> Be kind.",
        ] {
            assert!(b.messages[1].content.contains(tag), "{tag}");
        }
        assert!(b.variables.is_empty(), "no value is asked for");
        let r = reduce_request(&p, &["a".into(), "b".into()]);
        assert!(r.messages[1].content.contains("<FEEDBACK>a</FEEDBACK>"));
        let u = update_request(&p, &value, "be correct");
        assert!(u.messages[1].content.ends_with("Send ONLY the improved variable between the <IMPROVED_VARIABLE> tags, and nothing else."));
        assert_eq!(u.variables.len(), 1);
        let mut update = Kwargs::new();
        update.insert("x".into(), Json::String("New.".into()));
        let reply = TextGrad.render("", &update);
        assert_eq!(TextGrad.parse(&reply, &[p]).update, update);
    }
}
