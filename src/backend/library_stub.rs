//! The stub LLM of external trainers: seeded replies in the formats the optimisation
//! libraries parse (research: `external-optimizers.md` §3), so DSPy, GEPA and a user's own
//! optimizer run end to end offline.
//!
//! Like the native stub it is not a model: it reads what format the request asks for and
//! fills it with seeded text. Each answer is drawn from a stream named by the job seed, the
//! request's text and the occurrence of that request in the job, so a library that resends
//! a prompt expecting another sample gets one, and the same seed gives the same answers
//! whatever order a library's threads send them in. Rules, first match wins:
//!
//! 1. DSPy's chat adapter (``Respond with the corresponding output fields, starting with the
//!    field `[[ ## f ## ]]` ...``): a `[[ ## f ## ]]` section per output field, then
//!    `[[ ## completed ## ]]`; values typed by the request's `(must be formatted as a valid
//!    Python T)` notes.
//! 2. JSON (`response_format`, or DSPy's JSON adapter sentence): an object with a typed
//!    value for every field (`json_schema`: every required property).
//! 3. TextGrad's `<IMPROVED_VARIABLE>` tags around the changed variable.
//! 4. GEPA's reflection (``Provide the new instructions within ``` blocks``): the changed
//!    instruction inside a fence.
//! 5. OpenEvolve (a fenced program under `# Current Program`): one SEARCH/REPLACE block
//!    that copies a line of that program and changes it (a number moved by one, `min`/`max`
//!    or `<`/`>` swapped, a unary minus dropped, or a comment added), or, when the prompt
//!    asks for a full rewrite instead, the whole program so changed in a fence. Either
//!    applies to the current program and changes it (OpenEvolve wastes an iteration on a
//!    diff that does not).
//! 6. Anything else: a short fixed text.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Instant;

use regex::Regex;
use serde_json::{Map, Value as Json, json};

use crate::llm::{ChatRequest, ChatResponse, Llm, LlmError, LlmInfo};
use crate::rng::Rng;
use crate::vocab::canonical::sha256_hex;

/// Model name recorded for calls of the library stub.
pub const LIBRARY_STUB_MODEL: &str = "stub-library-formats";

/// Sentences the stub adds to or removes from an instruction (seeded).
const ADVICE: &[&str] = &[
    "Think step by step.",
    "Answer concisely.",
    "Check the result before answering.",
    "Use the examples as a guide.",
    "Give only the final answer.",
];

/// The seeded stub that answers in the optimisation libraries' formats.
pub struct LibraryStub {
    seed: i64,
    /// Occurrences of each request text so far.
    seen: HashMap<String, u64>,
}

impl LibraryStub {
    /// The stub of the job with `seed`.
    pub fn new(seed: i64) -> Self {
        Self {
            seed,
            seen: HashMap::new(),
        }
    }

    /// How calls of this stub are recorded.
    pub fn info_static() -> LlmInfo {
        LlmInfo {
            provider: "stub".into(),
            model: LIBRARY_STUB_MODEL.into(),
            base_url: String::new(),
            stub: true,
        }
    }

    /// The stream for this occurrence of `request`.
    fn stream(&mut self, request: &ChatRequest) -> Rng {
        let text = serde_json::to_string(&json!({
            "messages": request.messages,
            "extra": request.extra,
        }))
        .unwrap_or_default();
        let digest = sha256_hex(&text);
        let seen = self.seen.entry(digest.clone()).or_insert(0);
        let label = format!("library-stub/{digest}/{seen}");
        *seen += 1;
        Rng::stream(self.seed, &label)
    }

    /// The reply text for `request` (see the module doc for the rules).
    pub fn reply(&mut self, request: &ChatRequest) -> String {
        let mut rng = self.stream(request);
        let all: String = request
            .messages
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let last_user = last_user(request);
        let base = current_instruction(&all);
        // Words the request quotes (feedback's hints) are what a reader would pick up.
        let quoted = super::stub::quoted_words(&all);
        let mut rng = Picker {
            rng: &mut rng,
            quoted: &quoted,
        };
        if request.extra.get("response_format").is_none()
            && let Some(fields) = dspy_chat_fields(last_user)
        {
            let mut out = String::new();
            for (name, ty) in fields {
                let value = match typed_value(&ty) {
                    Some(v) => v.to_string(),
                    None => text_value(&name, &base, &mut rng),
                };
                out.push_str(&format!("[[ ## {name} ## ]]\n{value}\n\n"));
            }
            out.push_str("[[ ## completed ## ]]");
            return out;
        }
        if let Some(object) = json_reply(request, last_user, &base, &mut rng) {
            return object.to_string();
        }
        if let Some(prompt) = OpenEvolvePrompt::read(last_user) {
            return prompt.reply(rng.rng);
        }
        if all.contains("<IMPROVED_VARIABLE>") && all.to_lowercase().contains("improved variable") {
            return format!(
                "<IMPROVED_VARIABLE>{}</IMPROVED_VARIABLE>",
                changed(&base, &mut rng)
            );
        }
        if all.contains("Provide the new instructions within ``` blocks") {
            return format!("```\n{}\n```", changed(&base, &mut rng));
        }
        "COMPLETE (stub reply, not a language model)".to_string()
    }
}

/// What an OpenEvolve prompt asks for: a change of its current program, as SEARCH/REPLACE
/// blocks (`diff_user.txt`) or a full rewrite in a fence (`full_rewrite_user.txt`).
#[derive(Debug, Clone, PartialEq)]
struct OpenEvolvePrompt {
    /// The fence's language tag (`python`, or what the config names).
    language: String,
    /// The current program, exactly as the prompt shows it.
    program: String,
    /// SEARCH/REPLACE blocks (else a full rewrite).
    diff: bool,
}

/// The delimiter lines of OpenEvolve's diff format (a program line like these would
/// break the reply's block structure).
const DIFF_MARKERS: &[&str] = &["<<<<<<< SEARCH", "=======", ">>>>>>> REPLACE"];

impl OpenEvolvePrompt {
    /// The prompt's program and format, if the request is OpenEvolve's.
    fn read(last_user: &str) -> Option<Self> {
        const HEADING: &str = "# Current Program\n```";
        let start = last_user.find(HEADING)? + HEADING.len();
        let rest = &last_user[start..];
        let (language, body) = rest.split_once('\n')?;
        // The fence closes right before `# Task`; a program may hold fences of its own.
        let end = body
            .find("\n```\n\n# Task")
            .or_else(|| body.find("\n```"))?;
        let program = body[..end].to_string();
        if program.trim().is_empty() {
            return None;
        }
        Some(Self {
            language: language.trim().to_string(),
            program,
            diff: last_user.contains("<<<<<<< SEARCH") && last_user.contains(">>>>>>> REPLACE"),
        })
    }

    /// The reply: the changed line as a SEARCH/REPLACE block, or the changed program.
    fn reply(&self, rng: &mut Rng) -> String {
        let lines: Vec<&str> = self.program.split('\n').collect();
        let usable = |i: &usize| {
            let t = lines[*i].trim();
            !t.is_empty()
                && !t.starts_with("# EVOLVE-BLOCK")
                && !DIFF_MARKERS.iter().any(|m| t.starts_with(&m[..7]))
                && !lines[*i].trim_end().ends_with('\\')
        };
        // Code lines first: a changed comment changes nothing the task scores.
        let mut editable: Vec<usize> = (0..lines.len())
            .filter(usable)
            .filter(|&i| !lines[i].trim().starts_with('#'))
            .collect();
        if editable.is_empty() {
            editable = (0..lines.len()).filter(usable).collect();
        }
        let Some(&at) = editable.get(rng.below(editable.len().max(1))) else {
            return "The program is empty: nothing to change (stub reply).".into();
        };
        let old = lines[at];
        let new = edit_line(old, rng);
        if self.diff {
            format!(
                "A small change (stub reply, not a language model).\n\n<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n"
            )
        } else {
            let mut changed: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            changed[at] = new;
            format!("```{}\n{}\n```", self.language, changed.join("\n"))
        }
    }
}

/// A whole number in a program line.
static NUMBER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\b\d+\b").expect("valid pattern"));
/// A unary minus after `[`, `(`, `=` or `,`.
static UNARY_MINUS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"([\[(=,]\s*)-(\w)").expect("valid pattern"));
/// A simple quoted string literal.
static STRING_LITERAL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"'[^'\\]+'|"[^"\\]+""#).expect("valid pattern"));

/// `line` changed: one of the edits that apply to it (seeded), a comment otherwise.
fn edit_line(line: &str, rng: &mut Rng) -> String {
    let mut options: Vec<String> = Vec::new();
    if let Some(m) = NUMBER.find_iter(line).find(|m| {
        !line[..m.start()].ends_with(['.', '_'])
            && !line[..m.start()].ends_with(|c: char| c.is_alphanumeric())
    }) && let Ok(n) = m.as_str().parse::<u64>()
    {
        let moved = if n > 0 && rng.chance(0.5) {
            n - 1
        } else {
            n + 1
        };
        options.push(format!("{}{moved}{}", &line[..m.start()], &line[m.end()..]));
    }
    for (a, b) in [
        ("max(", "min("),
        ("min(", "max("),
        (" < ", " > "),
        (" > ", " < "),
    ] {
        if line.contains(a) {
            options.push(line.replacen(a, b, 1));
        }
    }
    if UNARY_MINUS.is_match(line) {
        options.push(UNARY_MINUS.replace(line, "$1$2").into_owned());
    }
    // A string literal (a text parameter of a literal program, not a key) gets an advice
    // sentence.
    if let Some(m) = STRING_LITERAL
        .find_iter(line)
        .filter(|m| !line[m.end()..].trim_start().starts_with(':'))
        .last()
        && !line[..m.start()].trim_start().is_empty()
    {
        let (text, quote) = (
            &line[m.start() + 1..m.end() - 1],
            &line[m.end() - 1..m.end()],
        );
        let sentence = ADVICE[rng.below(ADVICE.len())];
        let text = if text.contains(sentence) {
            text.replace(sentence, "")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            format!("{} {sentence}", text.trim_end())
        };
        if !text.is_empty() {
            options.push(format!(
                "{}{quote}{text}{quote}{}",
                &line[..m.start()],
                &line[m.end()..]
            ));
        }
    }
    options.push(format!("{line}  # stub edit {}", rng.below(1000)));
    options.swap_remove(rng.below(options.len()))
}

/// `answer` in the format the request asks for: DSPy's chat sections (the answer in the
/// first text field, typed placeholders in the others), a JSON object, or the bare text.
/// Stub mode's task program uses it, so a library's parser reads the stub agent's answer.
pub fn format_answer(request: &ChatRequest, answer: &str) -> String {
    let last_user = last_user(request);
    let mut placed = false;
    let mut value_for = |ty: &str| match typed_value(ty) {
        Some(v) => v,
        None if !placed => {
            placed = true;
            json!(answer)
        }
        None => json!(""),
    };
    if request.extra.get("response_format").is_none()
        && let Some(fields) = dspy_chat_fields(last_user)
    {
        let mut out = String::new();
        for (name, ty) in fields {
            let value = match value_for(&ty) {
                Json::String(s) => s,
                other => other.to_string(),
            };
            out.push_str(&format!("[[ ## {name} ## ]]\n{value}\n\n"));
        }
        out.push_str("[[ ## completed ## ]]");
        return out;
    }
    if let Some(i) = last_user.find("Respond with a JSON object in the following order of fields:")
    {
        let mut object = Map::new();
        for (name, ty) in json_fields(&last_user[i..]) {
            object.insert(name, value_for(&ty));
        }
        return Json::Object(object).to_string();
    }
    answer.to_string()
}

/// The text of the request's last user message (where libraries put their output
/// instructions).
fn last_user(request: &ChatRequest) -> &str {
    request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map_or("", |m| m.content.as_str())
}

/// The fields (name, type note) of DSPy's JSON adapter sentence.
fn json_fields(sentence: &str) -> Vec<(String, String)> {
    let field =
        Regex::new(r"`(\w+)`( \(must be formatted as a valid Python ([^)]*(?:\)[^,.]*)?)\))?")
            .expect("valid pattern");
    field
        .captures_iter(sentence)
        .map(|c| {
            (
                c[1].to_string(),
                c.get(3).map_or(String::new(), |m| m.as_str().to_string()),
            )
        })
        .collect()
}

/// The output fields (name, type note) DSPy's chat adapter asks for, if it does.
fn dspy_chat_fields(last_user: &str) -> Option<Vec<(String, String)>> {
    let start = last_user.find("Respond with the corresponding output fields")?;
    let sentence = &last_user[start..];
    let end = sentence
        .find("[[ ## completed ## ]]")
        .unwrap_or(sentence.len());
    let sentence = &sentence[..end];
    let marker = Regex::new(
        r"`\[\[ ## (\w+) ## \]\]`( \(must be formatted as a valid Python ([^)]*(?:\)[^,.]*)?)\))?",
    )
    .expect("valid pattern");
    let fields: Vec<(String, String)> = marker
        .captures_iter(sentence)
        .map(|c| {
            (
                c[1].to_string(),
                c.get(3).map_or(String::new(), |m| m.as_str().to_string()),
            )
        })
        .filter(|(name, _)| name != "completed")
        .collect();
    (!fields.is_empty()).then_some(fields)
}

/// A JSON object when the request asks for one.
fn json_reply(
    request: &ChatRequest,
    last_user: &str,
    base: &str,
    rng: &mut Picker<'_>,
) -> Option<Json> {
    if let Some(format) = request.extra.get("response_format") {
        let schema = format
            .pointer("/json_schema/schema")
            .filter(|s| s.get("properties").is_some());
        if let Some(schema) = schema {
            return Some(from_schema(schema, base, rng));
        }
    }
    let start = last_user.find("Respond with a JSON object in the following order of fields:");
    let fields: Vec<(String, String)> = match start {
        Some(i) => json_fields(&last_user[i..]),
        None if request.extra.contains_key("response_format") => Vec::new(),
        None => return None,
    };
    let mut object = Map::new();
    for (name, ty) in fields {
        let value = typed_value(&ty).unwrap_or_else(|| json!(text_value(&name, base, rng)));
        object.insert(name, value);
    }
    Some(Json::Object(object))
}

/// A value for every required property of a JSON schema.
fn from_schema(schema: &Json, base: &str, rng: &mut Picker<'_>) -> Json {
    let mut object = Map::new();
    let Some(properties) = schema.get("properties").and_then(Json::as_object) else {
        return Json::Object(object);
    };
    for (name, property) in properties {
        let value = match property.get("type").and_then(Json::as_str) {
            Some("integer") => json!(0),
            Some("number") => json!(0.5),
            Some("boolean") => json!(true),
            Some("array") => json!([]),
            Some("object") => from_schema(property, base, rng),
            _ => match property.get("enum").and_then(Json::as_array) {
                Some(members) if !members.is_empty() => members[0].clone(),
                _ => json!(text_value(name, base, rng)),
            },
        };
        object.insert(name.clone(), value);
    }
    Json::Object(object)
}

/// A value of a non-text DSPy type note (`int`, `float`, `bool`, `list[...]`, `dict[...]`,
/// `Literal[...]`); `None` for text.
fn typed_value(ty: &str) -> Option<Json> {
    let ty = ty.trim();
    if ty.is_empty() || ty == "str" {
        return None;
    }
    Some(if ty == "int" {
        json!(0)
    } else if ty == "float" {
        json!(0.5)
    } else if ty == "bool" {
        json!(true)
    } else if ty.starts_with("list") {
        json!([])
    } else if ty.starts_with("dict") {
        json!({})
    } else if let Some(members) = ty.strip_prefix("Literal[") {
        let first = members.split(',').next().unwrap_or("").trim();
        json!(first.trim_matches(['\'', '"', ']']))
    } else {
        return None;
    })
}

/// Seeded text for an output field: a changed instruction where the field is one, else a
/// short marked answer.
fn text_value(field: &str, base: &str, rng: &mut Picker<'_>) -> String {
    let lower = field.to_lowercase();
    if lower.contains("instruction") || lower.contains("prompt") || lower.contains("rule") {
        changed(base, rng)
    } else if lower.contains("reasoning") || lower.contains("observation") {
        "COMPLETE (stub, not a language model)".into()
    } else {
        format!(
            "stub {}",
            ADVICE[rng.rng.below(ADVICE.len())].to_lowercase()
        )
    }
}

/// The job's stream and the words the request quotes.
struct Picker<'a> {
    rng: &'a mut Rng,
    quoted: &'a [String],
}

/// `base` with one advice sentence added or removed, or (half the time, when the request
/// quotes words) a sentence naming a quoted word (seeded).
fn changed(base: &str, rng: &mut Picker<'_>) -> String {
    let base = base.trim();
    if !rng.quoted.is_empty() && rng.rng.chance(0.5) {
        let word = rng.rng.pick(rng.quoted).clone();
        return if base.is_empty() {
            format!("Consider: {word}.")
        } else {
            format!("{base} Consider: {word}.")
        };
    }
    let sentence = ADVICE[rng.rng.below(ADVICE.len())];
    if base.contains(sentence) {
        let shorter = base.replace(sentence, "");
        let shorter = shorter.split_whitespace().collect::<Vec<_>>().join(" ");
        if !shorter.is_empty() {
            return shorter;
        }
    }
    if base.is_empty() {
        sentence.to_string()
    } else {
        format!("{base} {sentence}")
    }
}

/// The instruction a request is about: the first fenced block (GEPA, TextGrad's
/// `<VARIABLE>`), DSPy's `objective is:` text, or a default.
fn current_instruction(all: &str) -> String {
    if let Some(i) = all.find("<VARIABLE>") {
        let rest = &all[i + "<VARIABLE>".len()..];
        if let Some(end) = rest.find("</VARIABLE>") {
            return rest[..end].trim().to_string();
        }
    }
    if let Some(i) = all.find("```") {
        let rest = &all[i + 3..];
        let rest = rest.split_once('\n').map_or(rest, |(_, r)| r);
        if let Some(end) = rest.find("```") {
            let text = rest[..end].trim();
            if !text.is_empty() {
                return text.to_string();
            }
        }
    }
    if let Some(i) = all.find("your objective is:") {
        let mut lines = Vec::new();
        for line in all[i + "your objective is:".len()..].lines().map(str::trim) {
            if line.starts_with("[[") || (line.is_empty() && !lines.is_empty()) {
                break;
            }
            if !line.is_empty() {
                lines.push(line);
            }
        }
        if !lines.is_empty() {
            return lines.join(" ");
        }
    }
    "Answer the question.".into()
}

impl Llm for LibraryStub {
    fn info(&self) -> LlmInfo {
        Self::info_static()
    }

    fn complete(&mut self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let started = Instant::now();
        let content = self.reply(request);
        Ok(ChatResponse::estimated(
            request,
            content,
            started.elapsed().as_secs_f64(),
        ))
    }

    /// A unit vector derived from the text alone (no draw from the reply stream).
    fn embed(
        &mut self,
        request: &crate::llm::EmbedRequest,
    ) -> Result<crate::llm::EmbedResponse, LlmError> {
        Ok(crate::llm::EmbedResponse::stub(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Message;

    fn request(system: &str, user: &str, extra: Json) -> ChatRequest {
        ChatRequest {
            messages: vec![Message::new("system", system), Message::new("user", user)],
            temperature: None,
            max_tokens: None,
            variables: vec![],
            feedback: String::new(),
            extra: extra.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn dspy_chat_adapter_fields_are_answered_with_typed_values() {
        let user = "[[ ## question ## ]]\n2+2?\n\nRespond with the corresponding output fields, starting with the field `[[ ## reasoning ## ]]`, then `[[ ## n ## ]]` (must be formatted as a valid Python int), then `[[ ## proposed_instruction ## ]]`, and then ending with the marker for `[[ ## completed ## ]]`.";
        let system =
            "In adhering to this structure, your objective is: \n        Answer the question.";
        let reply = LibraryStub::new(1).reply(&request(system, user, json!({})));
        assert!(reply.contains("[[ ## reasoning ## ]]\n"), "{reply}");
        assert!(reply.contains("[[ ## n ## ]]\n0\n"), "{reply}");
        assert!(
            reply.contains("[[ ## proposed_instruction ## ]]\nAnswer the question"),
            "{reply}"
        );
        assert!(reply.ends_with("[[ ## completed ## ]]"));
    }

    #[test]
    fn a_given_answer_fills_the_first_text_field() {
        let user = "[[ ## question ## ]]\n2+2?\n\nRespond with the corresponding output fields, starting with the field `[[ ## answer ## ]]`, and then ending with the marker for `[[ ## completed ## ]]`.";
        assert_eq!(
            format_answer(&request("s", user, json!({})), "4"),
            "[[ ## answer ## ]]\n4\n\n[[ ## completed ## ]]"
        );
        assert_eq!(format_answer(&request("s", "plain", json!({})), "4"), "4");
    }

    #[test]
    fn json_schema_and_json_adapter_get_objects() {
        let schema = json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {
            "type": "object", "required": ["new_instruction", "k"],
            "properties": {"new_instruction": {"type": "string"}, "k": {"type": "integer"}}}}}});
        let reply = LibraryStub::new(1).reply(&request("s", "u", schema));
        let v: Json = serde_json::from_str(&reply).unwrap();
        assert!(v["new_instruction"].is_string());
        assert_eq!(v["k"], json!(0));
        let user = "Respond with a JSON object in the following order of fields: `new_instruction`, then `score` (must be formatted as a valid Python float).";
        let v: Json =
            serde_json::from_str(&LibraryStub::new(1).reply(&request("s", user, json!({}))))
                .unwrap();
        assert!(v["new_instruction"].is_string());
        assert_eq!(v["score"], json!(0.5));
    }

    #[test]
    fn gepa_and_textgrad_get_their_markers() {
        let gepa = "I provided an assistant with the following instructions:\n```\nBe brief.\n```\nProvide the new instructions within ``` blocks.";
        let reply = LibraryStub::new(3).reply(&request("", gepa, json!({})));
        assert!(reply.starts_with("```\nBe brief."), "{reply}");
        assert!(reply.ends_with("\n```"));
        let tg = "<VARIABLE>Be brief.</VARIABLE> Send the improved variable in the following format: <IMPROVED_VARIABLE>{the improved variable}</IMPROVED_VARIABLE>";
        let reply = LibraryStub::new(3).reply(&request("", tg, json!({})));
        assert!(reply.starts_with("<IMPROVED_VARIABLE>Be brief."), "{reply}");
    }

    /// OpenEvolve's `diff_user.txt` (or `full_rewrite_user.txt`) around a program.
    fn openevolve_prompt(program: &str, diff: bool) -> String {
        let task = if diff {
            "Suggest improvements to the program that will improve its FITNESS SCORE.\n\nYou MUST use the exact SEARCH/REPLACE diff format shown below to indicate changes:\n\n<<<<<<< SEARCH\n# Original code to find and replace (must match exactly)\n=======\n# New replacement code\n>>>>>>> REPLACE\n"
        } else {
            "Rewrite the program to improve its FITNESS SCORE.\nProvide the complete new program code.\n\n```python\n# Your rewritten program here\n```"
        };
        format!(
            "# Current Program Information\n- Fitness: -3.0000\n\n## Last Execution Output\n\n### feedback\n```\nexample 0: score -3\n```\n\n# Program Evolution History\n## Previous Attempts\n\n```python\nold = 1\n```\n\n# Current Program\n```python\n{program}\n```\n\n# Task\n{task}"
        )
    }

    const PROGRAM: &str = "# EVOLVE-BLOCK-START\ndef priority(item, bins):\n    \"\"\"First fit.\"\"\"\n    return [-i for i in range(len(bins))]\n# EVOLVE-BLOCK-END";

    /// Apply SEARCH/REPLACE blocks as OpenEvolve does (the SEARCH lines must be consecutive
    /// lines of the program); `None` when a block does not match.
    fn apply_blocks(program: &str, reply: &str) -> Option<String> {
        let block = Regex::new(r"(?s)<<<<<<< SEARCH\n(.*?)=======\n(.*?)>>>>>>> REPLACE").unwrap();
        let mut lines: Vec<String> = program.split('\n').map(str::to_string).collect();
        let mut applied = 0;
        for c in block.captures_iter(reply) {
            let search: Vec<&str> = c[1].trim_end().split('\n').collect();
            let replace: Vec<String> = c[2].trim_end().split('\n').map(str::to_string).collect();
            let at = (0..lines.len()).find(|&i| {
                i + search.len() <= lines.len()
                    && search.iter().zip(&lines[i..]).all(|(s, l)| s == l)
            })?;
            lines.splice(at..at + search.len(), replace);
            applied += 1;
        }
        (applied > 0).then(|| lines.join("\n"))
    }

    #[test]
    fn openevolve_prompts_are_recognised_with_their_program_and_format() {
        let diff = OpenEvolvePrompt::read(&openevolve_prompt(PROGRAM, true)).unwrap();
        assert_eq!(diff.program, PROGRAM);
        assert_eq!(diff.language, "python");
        assert!(diff.diff);
        let rewrite = OpenEvolvePrompt::read(&openevolve_prompt(PROGRAM, false)).unwrap();
        assert_eq!(rewrite.program, PROGRAM);
        assert!(!rewrite.diff);
        // Other libraries' prompts, and the information heading alone, are not OpenEvolve's.
        assert_eq!(
            OpenEvolvePrompt::read("# Current Program Information\n- Fitness: 1"),
            None
        );
        assert_eq!(
            OpenEvolvePrompt::read(
                "```\nBe brief.\n```\nProvide the new instructions within ``` blocks."
            ),
            None
        );
    }

    #[test]
    fn openevolve_diffs_apply_to_the_current_program_and_change_it() {
        let user = openevolve_prompt(PROGRAM, true);
        let r = request(
            "You are an expert software developer.",
            &user,
            json!({"seed": 7}),
        );
        let mut stub = LibraryStub::new(11);
        let mut children = std::collections::BTreeSet::new();
        for _ in 0..40 {
            let reply = stub.reply(&r);
            assert_eq!(reply.matches("<<<<<<< SEARCH").count(), 1, "{reply}");
            let child = apply_blocks(PROGRAM, &reply).unwrap_or_else(|| panic!("{reply}"));
            assert_ne!(child, PROGRAM, "{reply}");
            assert!(
                child.starts_with("# EVOLVE-BLOCK-START\n")
                    && child.ends_with("\n# EVOLVE-BLOCK-END")
            );
            children.insert(child);
        }
        // Several different edits, among them one that changes what the program computes.
        assert!(children.len() >= 4, "{children:?}");
        assert!(
            children
                .iter()
                .any(|c| c.contains("return [i for i in range(len(bins))]")),
            "{children:?}"
        );
        // Same seed, same replies; another seed, other replies.
        let again: Vec<String> = (0..5).map(|_| LibraryStub::new(11).reply(&r)).collect();
        assert!(again.iter().all(|x| x == &again[0]));
        let first: Vec<String> = {
            let mut a = LibraryStub::new(11);
            (0..8).map(|_| a.reply(&r)).collect()
        };
        let other: Vec<String> = {
            let mut b = LibraryStub::new(12);
            (0..8).map(|_| b.reply(&r)).collect()
        };
        assert_ne!(first, other);
    }

    #[test]
    fn openevolve_full_rewrites_are_the_changed_program_in_a_fence() {
        let user = openevolve_prompt(PROGRAM, false);
        let reply = LibraryStub::new(3).reply(&request("s", &user, json!({})));
        let code = reply
            .strip_prefix("```python\n")
            .and_then(|r| r.strip_suffix("\n```"))
            .unwrap_or_else(|| panic!("{reply}"));
        assert_ne!(code, PROGRAM);
        assert_eq!(code.lines().count(), PROGRAM.lines().count(), "{code}");
        assert!(!reply.contains("<<<<<<<"));
    }

    #[test]
    fn line_edits_move_numbers_swap_comparisons_and_fall_back_to_a_comment() {
        let mut seen = std::collections::BTreeSet::new();
        let mut rng = Rng::stream(1, "edits");
        for _ in 0..60 {
            seen.insert(edit_line(
                "    return max(x, 10) if a < b else x2",
                &mut rng,
            ));
        }
        for want in [
            "    return max(x, 9) if a < b else x2",
            "    return max(x, 11) if a < b else x2",
            "    return min(x, 10) if a < b else x2",
            "    return max(x, 10) if a > b else x2",
        ] {
            assert!(seen.contains(want), "{want} not in {seen:?}");
        }
        assert!(
            seen.iter().any(|l| l.contains("  # stub edit ")),
            "{seen:?}"
        );
        let mut texts = std::collections::BTreeSet::new();
        for _ in 0..40 {
            texts.insert(edit_line("candidate = {'prompt': 'Be brief.'}", &mut rng));
        }
        assert!(
            texts.contains("candidate = {'prompt': 'Be brief. Answer concisely.'}"),
            "{texts:?}"
        );
        // Keys are names, not values: never changed.
        assert!(
            texts
                .iter()
                .all(|t| t.starts_with("candidate = {'prompt': ")),
            "{texts:?}"
        );
        // No edit but the comment applies: always a comment, never the same line.
        assert!(edit_line("pass", &mut rng).starts_with("pass  # stub edit "));
    }

    #[test]
    fn repeated_requests_are_new_samples_and_seeds_repeat() {
        let gepa = "```\nBe brief.\n```\nProvide the new instructions within ``` blocks.";
        let r = request("", gepa, json!({}));
        let mut a = LibraryStub::new(5);
        let first: Vec<String> = (0..6).map(|_| a.reply(&r)).collect();
        let mut b = LibraryStub::new(5);
        let again: Vec<String> = (0..6).map(|_| b.reply(&r)).collect();
        assert_eq!(first, again);
        assert!(first.iter().any(|x| x != &first[0]), "{first:?}");
    }
}
