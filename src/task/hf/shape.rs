//! A dataset row as a task: the agent's input text and the `info` the scorer compares
//! against, per task type, as the reference's converters build them.

use serde_json::{Value as Json, json};

use super::HfError;
use super::catalog::{ContextFormat, Entry, TaskType};
use super::score::{dedupe_aliases, normalise};
use crate::task::Example;

/// Python's `str()` of a JSON value.
pub fn py_str(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Bool(true) => "True".into(),
        Json::Bool(false) => "False".into(),
        Json::Null => "None".into(),
        Json::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

fn field<'a>(row: &'a Json, name: &str) -> &'a Json {
    row.get(name).unwrap_or(&Json::Null)
}

/// Python's `str(row.get(name, ""))`: a null value reads `None`, a missing one "".
fn text_field(row: &Json, name: &str) -> String {
    row.get(name).map(py_str).unwrap_or_default()
}

/// HotpotQA's `context` `{title: [...], sentences: [[...]]}` as numbered paragraphs:
/// `Paragraph <n> (<title>):`, a newline, the sentences joined with one space; blank lines
/// between paragraphs.
pub fn hotpot_context(raw: &Json) -> String {
    let titles = raw["title"].as_array().cloned().unwrap_or_default();
    let sentences = raw["sentences"].as_array().cloned().unwrap_or_default();
    titles
        .iter()
        .zip(&sentences)
        .enumerate()
        .map(|(i, (t, s))| {
            let joined = s
                .as_array()
                .map(|s| s.iter().map(py_str).collect::<Vec<_>>().join(" "))
                .unwrap_or_default();
            format!("Paragraph {} ({}):\n{joined}", i + 1, py_str(t))
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// MuSiQue's `paragraphs` as numbered blocks (title defaults to `Paragraph <n>`).
pub fn musique_context(raw: &Json) -> String {
    raw.as_array()
        .map(|ps| {
            ps.iter()
                .enumerate()
                .map(|(i, p)| {
                    let n = i + 1;
                    let title = p
                        .get("title")
                        .map(py_str)
                        .unwrap_or_else(|| format!("Paragraph {n}"));
                    let body = p
                        .get("paragraph_text")
                        .or_else(|| p.get("paragraph"))
                        .map(py_str)
                        .unwrap_or_default();
                    format!("Paragraph {n} ({title}):\n{body}")
                })
                .collect::<Vec<_>>()
                .join("\n\n")
        })
        .unwrap_or_default()
}

const LETTERS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

fn letter(i: usize) -> String {
    LETTERS
        .chars()
        .nth(i)
        .map(String::from)
        .unwrap_or_else(|| i.to_string())
}

/// MCQ options as (label, text) pairs.
pub fn option_pairs(raw: &Json) -> Vec<(String, String)> {
    match raw {
        Json::Object(m) => {
            // Python's `a or b or c`: the first non-empty list.
            let first = |keys: &[&str]| -> Vec<String> {
                keys.iter()
                    .filter_map(|k| m.get(*k).and_then(Json::as_array))
                    .find(|a| !a.is_empty())
                    .map(|a| a.iter().map(py_str).collect())
                    .unwrap_or_default()
            };
            let texts = first(&["text", "texts", "options"]);
            let mut labels = first(&["label", "labels"]);
            if labels.is_empty() {
                labels = (0..texts.len()).map(letter).collect();
            }
            // `zip`: as many pairs as the shorter list.
            labels.into_iter().zip(texts).collect()
        }
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Json::Object(o) => {
                    let label = o.get("label").map(py_str).unwrap_or_else(|| letter(i));
                    let text = o
                        .get("text")
                        .or_else(|| o.get("choice"))
                        .map(py_str)
                        .unwrap_or_default();
                    (label, text)
                }
                other => (letter(i), py_str(other)),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The gold label of an MCQ answer: an integer is an index (minus `base`); a string is a
/// label, or an option text.
pub fn answer_label(answer: &Json, pairs: &[(String, String)], base: i64) -> String {
    if let Json::Number(n) = answer
        && let Some(i) = n.as_i64()
    {
        let idx = i - base;
        return usize::try_from(idx)
            .ok()
            .and_then(|idx| pairs.get(idx))
            .map(|(l, _)| l.clone())
            .unwrap_or_else(|| i.to_string());
    }
    let s = py_str(answer).trim().to_string();
    pairs
        .iter()
        .find(|(l, t)| *l == s || normalise(t) == normalise(&s))
        .map(|(l, _)| l.clone())
        .unwrap_or(s)
}

/// The MCQ prompt: optional context block, the question, the options, `Answer:`.
pub fn mcq_prompt(context: &str, question: &str, pairs: &[(String, String)]) -> String {
    let mut lines = Vec::new();
    if !context.is_empty() {
        lines.push(format!("Context:\n{context}\n"));
    }
    lines.push(format!("Question: {question}"));
    lines.push("Options:".into());
    for (l, t) in pairs {
        lines.push(format!("({l}) {t}"));
    }
    lines.push("Answer:".into());
    lines.join("\n")
}

fn qa_input(context: &str, question: &str) -> String {
    format!("Context:\n{context}\n\nQuestion: {question}\n\nAnswer:")
}

fn example(input: String, answer: String, hf: Json) -> Example {
    Example {
        input: Json::String(input),
        info: json!({"answer": answer, "hint": null, "hf": hf}),
    }
}

/// Turn row number `index` of a split into a task (one row, one task).
pub fn row_to_example(entry: &Entry, row: &Json, index: usize) -> Result<Example, HfError> {
    let ty = entry.task_type;
    // The default converter (hfqa, bbeh), gsm8k and mcqa need both fields; every converter
    // the question.
    let mut required = vec![entry.question_field];
    if matches!(
        ty,
        TaskType::Hfqa | TaskType::Bbeh | TaskType::Gsm8k | TaskType::Mcqa | TaskType::Qasper
    ) {
        required.push(entry.answer_field);
    }
    if let Some(missing) = required.iter().find(|f| row.get(**f).is_none()) {
        return Err(HfError::Row {
            index,
            message: format!("no field `{missing}`"),
        });
    }
    let question = text_field(row, entry.question_field);
    Ok(match ty {
        TaskType::Hfqa | TaskType::Bbeh => {
            let raw_answer = field(row, entry.answer_field);
            let answer = match raw_answer {
                Json::Object(m) => m
                    .get("text")
                    .and_then(Json::as_array)
                    .and_then(|a| a.first())
                    .map(py_str)
                    .unwrap_or_default(),
                v => py_str(v),
            };
            let raw = entry
                .context_field
                .map(|f| field(row, f))
                .filter(|v| !v.is_null())
                .or_else(|| row.get("context"))
                .or_else(|| row.get("passage"));
            let context = match (entry.context_format, raw) {
                (ContextFormat::None, _) | (_, None) => String::new(),
                (ContextFormat::Plain, Some(v)) => py_str(v),
                (ContextFormat::Module, Some(v)) => hotpot_context(v),
            };
            if ty == TaskType::Bbeh {
                example(question.clone(), answer, json!({"question": question}))
            } else {
                example(
                    qa_input(&context, &question),
                    answer,
                    json!({"question": question, "context": context}),
                )
            }
        }
        TaskType::Gsm8k => {
            let raw = text_field(row, entry.answer_field);
            let gold = raw.rsplit("####").next().unwrap_or("").trim().to_string();
            example(question, gold, json!({}))
        }
        TaskType::Mcqa => {
            let options = entry
                .options_field
                .and_then(|f| row.get(f))
                .or_else(|| row.get("choices"))
                .unwrap_or(&Json::Null);
            let pairs = option_pairs(options);
            if pairs.is_empty() {
                return Err(HfError::Row {
                    index,
                    message: "no answer options".into(),
                });
            }
            let context = entry
                .context_field
                .map(|f| text_field(row, f))
                .unwrap_or_default();
            let label = answer_label(
                field(row, entry.answer_field),
                &pairs,
                entry.answer_index_base,
            );
            let gold_text = pairs
                .iter()
                .find(|(l, _)| *l == label)
                .map(|(_, t)| t.clone())
                .unwrap_or_default();
            example(
                mcq_prompt(&context, &question, &pairs),
                label.clone(),
                json!({"gold_label": label, "gold_text": gold_text}),
            )
        }
        TaskType::Musique => {
            let context = musique_context(field(row, entry.context_field.unwrap_or("paragraphs")));
            let mut all = vec![text_field(row, "answer")];
            if let Some(a) = row.get("answer_aliases").and_then(Json::as_array) {
                all.extend(a.iter().map(py_str));
            }
            qa_with_aliases(&context, &question, dedupe_aliases(all))
        }
        TaskType::Drop => {
            let context = text_field(row, entry.context_field.unwrap_or("passage"));
            let mut all = Vec::new();
            match field(row, entry.answer_field) {
                Json::Object(spans) => {
                    for key in ["spans", "number", "numbers", "date", "dates"] {
                        match spans.get(key) {
                            Some(Json::Array(items)) => all.extend(items.iter().map(py_str)),
                            Some(Json::Null) | None => {}
                            Some(v) => all.push(py_str(v)),
                        }
                    }
                }
                Json::Array(items) => all.extend(items.iter().map(py_str)),
                Json::Null => {}
                v => all.push(py_str(v)),
            }
            all.retain(|a| !a.trim().is_empty());
            qa_with_aliases(&context, &question, dedupe_aliases(all))
        }
        TaskType::Qasper => {
            let (q, context) = match question
                .strip_prefix("Q:")
                .and_then(|rest| rest.split_once("\nText:"))
            {
                Some((q, c)) => (q.trim().to_string(), c.trim().to_string()),
                None => (question.clone(), String::new()),
            };
            let aliases = dedupe_aliases([text_field(row, entry.answer_field)]);
            qa_with_aliases(&context, &q, aliases)
        }
        TaskType::StrategyQa => {
            let gold = match field(row, entry.answer_field) {
                Json::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
                v => match normalise(&py_str(v)).as_str() {
                    "yes" | "true" | "1" => "yes".into(),
                    "no" | "false" | "0" => "no".into(),
                    other => other.to_string(),
                },
            };
            let input =
                format!("Question: {question}\nAnswer with exactly 'Yes' or 'No'.\nAnswer:");
            example(input, gold, json!({}))
        }
        TaskType::CodeExec => {
            let test_field = entry.test_field.unwrap_or("test");
            let test = match row.get(test_field) {
                Some(Json::Array(items)) => items.iter().map(py_str).collect::<Vec<_>>().join("\n"),
                Some(v) => py_str(v),
                None => {
                    return Err(HfError::Row {
                        index,
                        message: format!("no test field `{test_field}`"),
                    });
                }
            };
            let entry_point = row
                .get(entry.entry_field.unwrap_or("entry_point"))
                .map(py_str)
                .unwrap_or_default();
            let setup = entry
                .setup_field
                .and_then(|f| row.get(f))
                .map(py_str)
                .unwrap_or_default();
            example(
                question,
                entry_point.clone(),
                json!({"test": test, "entry_point": entry_point, "setup": setup}),
            )
        }
    })
}

fn qa_with_aliases(context: &str, question: &str, aliases: Vec<String>) -> Example {
    let answer = aliases.first().cloned().unwrap_or_default();
    example(
        qa_input(context, question),
        answer,
        json!({"question": question, "context": context, "aliases": aliases}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::hf::catalog::entry;

    #[test]
    fn rows_are_shaped_per_task_type() {
        let hotpot = json!({
            "question": "Which is older?",
            "answer": "Arthur's Magazine",
            "context": {"title": ["A", "B"], "sentences": [["One.", " Two."], ["Three."]]}
        });
        let e = row_to_example(entry("hotpot_qa").unwrap(), &hotpot, 0).unwrap();
        assert_eq!(
            e.input,
            json!(
                "Context:\nParagraph 1 (A):\nOne.  Two.\n\nParagraph 2 (B):\nThree.\n\nQuestion: Which is older?\n\nAnswer:"
            )
        );
        assert_eq!(e.info["answer"], "Arthur's Magazine");

        let gsm = json!({"question": "2+2?", "answer": "2+2=4\n#### 4"});
        let e = row_to_example(entry("gsm8k").unwrap(), &gsm, 0).unwrap();
        assert_eq!(
            (
                e.input.as_str().unwrap(),
                e.info["answer"].as_str().unwrap()
            ),
            ("2+2?", "4")
        );

        let arc = json!({"question": "Q?", "answerKey": "B",
            "choices": {"text": ["x", "y"], "label": ["A", "B"]}});
        let e = row_to_example(entry("arc_challenge").unwrap(), &arc, 0).unwrap();
        assert_eq!(
            e.input,
            json!("Question: Q?\nOptions:\n(A) x\n(B) y\nAnswer:")
        );
        assert_eq!(e.info["hf"], json!({"gold_label": "B", "gold_text": "y"}));

        let quality =
            json!({"question": "Q?", "answer": 1, "article": "Once.", "options": ["p", "q"]});
        let e = row_to_example(entry("quality").unwrap(), &quality, 0).unwrap();
        assert_eq!(e.info["answer"], "A", "base 1");
        assert!(
            e.input
                .as_str()
                .unwrap()
                .starts_with("Context:\nOnce.\n\nQuestion: Q?")
        );
        let bad = json!({"question": "Q?", "answer": 0, "options": []});
        assert!(row_to_example(entry("quality").unwrap(), &bad, 3).is_err());
        let e = row_to_example(entry("gsm8k").unwrap(), &json!({"answer": "#### 1"}), 7);
        assert_eq!(e.unwrap_err().to_string(), "row 7: no field `question`");
        let e = row_to_example(entry("bbeh").unwrap(), &json!({"input": "x"}), 0);
        assert!(e.unwrap_err().to_string().contains("`target`"));

        let sq = json!({"question": "Is it?", "answer": true});
        let e = row_to_example(entry("strategy_qa").unwrap(), &sq, 0).unwrap();
        assert_eq!(e.info["answer"], "yes");

        let drop = json!({"question": "How many?", "passage": "P",
            "answers_spans": {"spans": ["12", " ", "twelve"], "types": ["number"]}});
        let e = row_to_example(entry("drop").unwrap(), &drop, 0).unwrap();
        assert_eq!(e.info["hf"]["aliases"], json!(["12", "twelve"]));

        let qasper = json!({"input": "Q: What model?\nText: We use BERT.", "output": "BERT"});
        let e = row_to_example(entry("qasper").unwrap(), &qasper, 0).unwrap();
        assert_eq!(e.info["hf"]["question"], "What model?");
        assert_eq!(e.info["hf"]["context"], "We use BERT.");
    }
}
