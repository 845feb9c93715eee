//! The text forms of an example that a dataset task's scorer and the job's agent both read:
//! its input as the agent's user message, its expected answer and hint, and the words
//! "contains the hint" compares.

use serde_json::Value as Json;

use super::Example;

/// Lowercase words of letters and digits: what "contains the hint" compares.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The text form of an example's input (what the agent's user message holds).
pub fn input_text(input: &Json) -> String {
    match input {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The expected answer and hint of an example.
pub fn expected(example: &Example) -> (String, Option<String>) {
    let answer = match &example.info["answer"] {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    let hint = example.info["hint"].as_str().map(str::to_string);
    (answer, hint)
}
