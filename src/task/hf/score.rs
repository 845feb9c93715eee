//! The reference's `hf:` scorers (`benchmarks/hf_qa/common.py` and the task modules):
//! SQuAD normalisation, token F1, last number, last choice, alias scoring, and one scoring
//! rule per task type, with feedback naming the expected answer.
//!
//! The reply is untrusted text: it is only ever compared with the gold answer kept in the
//! example's `info`, never read for a score.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value as Json;

use super::catalog::TaskType;
use crate::task::{EvalLimits, Example, ExampleResult};

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).unwrap_or_else(|e| unreachable!("constant regex: {e}")))
}

/// Lowercase, drop the words `a`/`an`/`the`, delete ASCII punctuation, collapse whitespace.
pub fn normalise(text: &str) -> String {
    static ARTICLES: OnceLock<Regex> = OnceLock::new();
    let lower = text.to_lowercase();
    let no_articles = re(&ARTICLES, r"\b(a|an|the)\b").replace_all(&lower, " ");
    let no_punct: String = no_articles
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    py_split(&no_punct).join(" ")
}

/// Python's `str.split()`: Unicode whitespace plus the separators U+001C–U+001F.
fn py_split(text: &str) -> Vec<&str> {
    text.split(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
        .filter(|w| !w.is_empty())
        .collect()
}

/// SQuAD token F1 over normalised tokens (multiset overlap).
pub fn token_f1(prediction: &str, gold: &str) -> f64 {
    let p = normalise(prediction);
    let g = normalise(gold);
    let p: Vec<&str> = p.split(' ').filter(|w| !w.is_empty()).collect();
    let g: Vec<&str> = g.split(' ').filter(|w| !w.is_empty()).collect();
    if p.is_empty() && g.is_empty() {
        return 1.0;
    }
    if p.is_empty() || g.is_empty() {
        return 0.0;
    }
    let mut left = g.clone();
    let mut common = 0usize;
    for w in &p {
        if let Some(i) = left.iter().position(|x| x == w) {
            left.swap_remove(i);
            common += 1;
        }
    }
    if common == 0 {
        return 0.0;
    }
    let precision = common as f64 / p.len() as f64;
    let recall = common as f64 / g.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// The last number-like run (sign, digits and commas, a dot, digits), commas deleted; ""
/// when there is none. `"is 72."` gives `"72."`, as the reference's regex does.
pub fn last_number(text: &str) -> String {
    static NUM: OnceLock<Regex> = OnceLock::new();
    re(&NUM, r"[-+]?\d[\d,]*\.?\d*")
        .find_iter(text)
        .last()
        .map(|m| m.as_str().replace(',', ""))
        .unwrap_or_default()
}

/// The last parenthesised ASCII-alphanumeric run, else the last standalone uppercase
/// letter, else "".
pub fn last_choice(text: &str) -> String {
    static PAREN: OnceLock<Regex> = OnceLock::new();
    static LETTER: OnceLock<Regex> = OnceLock::new();
    if let Some(c) = re(&PAREN, r"\(([A-Za-z0-9]+)\)").captures_iter(text).last() {
        return c[1].to_string();
    }
    re(&LETTER, r"\b([A-Z])\b")
        .captures_iter(text)
        .last()
        .map(|c| c[1].to_string())
        .unwrap_or_default()
}

/// Remove aliases that normalise alike (first display form kept, stripped) or to "".
pub fn dedupe_aliases(aliases: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for a in aliases {
        let n = normalise(&a);
        if n.is_empty() || seen.contains(&n) {
            continue;
        }
        seen.push(n);
        out.push(a.trim().to_string());
    }
    out
}

/// 0 without aliases; 1 when the normalised reply equals or contains a normalised alias
/// (a character substring); else the best token F1.
pub fn best_alias_score(reply: &str, aliases: &[String]) -> f64 {
    if aliases.is_empty() {
        return 0.0;
    }
    let r = normalise(reply);
    if aliases.iter().any(|a| {
        let a = normalise(a);
        r == a || r.contains(&a)
    }) {
        return 1.0;
    }
    aliases
        .iter()
        .map(|a| token_f1(reply, a))
        .fold(0.0, f64::max)
}

/// The question-only agent's initial `extract_answer`: the text after the last `Answer:`,
/// stripped (the whole reply when there is none).
pub fn extract_answer(reply: &str) -> String {
    match reply.rfind("Answer:") {
        Some(i) => reply[i + "Answer:".len()..].trim().to_string(),
        None => reply.trim().to_string(),
    }
}

fn text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

/// Python's `repr` of a list of strings (`['a', "b's"]`).
fn py_list(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| {
            let q = if s.contains('\'') && !s.contains('"') {
                '"'
            } else {
                '\''
            };
            let body = s.replace('\\', "\\\\").replace('\n', "\\n");
            let body = if q == '\'' {
                body.replace('\'', "\\'")
            } else {
                body
            };
            format!("{q}{body}{q}")
        })
        .collect();
    format!("[{}]", quoted.join(", "))
}

fn shown(reply: &str) -> String {
    reply.trim().chars().take(200).collect()
}

fn collapse(text: &str, max: usize) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(max)
        .collect()
}

/// Score `reply` for `example` by the rule of `kind`.
pub fn score(kind: TaskType, reply: &str, example: &Example) -> ExampleResult {
    score_within(kind, reply, example, &EvalLimits::default())
}

/// [`score`], with a code candidate's run bounded by `limits` (`eval_kwargs.timeout_seconds`
/// instead of the catalog's 10 s, and never past the job's deadline).
pub fn score_within(
    kind: TaskType,
    reply: &str,
    example: &Example,
    limits: &EvalLimits,
) -> ExampleResult {
    let info = &example.info;
    let hf = &info["hf"];
    let gold = text(&info["answer"]);
    let (score, feedback) = match kind {
        TaskType::Hfqa => {
            if normalise(reply).contains(&normalise(&gold)) {
                (1.0, "Correct.".to_string())
            } else {
                (
                    0.0,
                    format!(
                        "Incorrect. Expected: '{gold}', Got: '{reply}'.\nQuestion: {}\nContext: {}\nImprove the agent's multi-hop reasoning over multiple context passages.",
                        text(&hf["question"]),
                        text(&hf["context"])
                    ),
                )
            }
        }
        TaskType::Bbeh => {
            let pred = extract_answer(reply);
            static GOLD_MCQ: OnceLock<Regex> = OnceLock::new();
            let mcq = re(&GOLD_MCQ, r"\([A-Z]\)");
            let ok = if mcq.is_match(&gold) {
                mcq.find_iter(&pred)
                    .last()
                    .is_some_and(|m| m.as_str() == gold)
            } else {
                pred.trim() == gold.trim()
            };
            if ok {
                (1.0, "The answer is correct.".to_string())
            } else {
                (
                    0.0,
                    format!(
                        "The answer is wrong for task: \"{}\". Expected: \"{gold}\", Got: \"{pred}\". Improve the agent to produce the correct answer in the expected format: (A)/(B) for multiple-choice, or an exact string/number for free-form questions.",
                        collapse(&text(&hf["question"]), 240),
                    ),
                )
            }
        }
        TaskType::Gsm8k => {
            let reply = extract_answer(reply);
            let pred = last_number(&reply);
            let want = last_number(&gold);
            if !pred.is_empty() && pred == want {
                (1.0, "The numeric answer is correct.".to_string())
            } else {
                let got = if pred.is_empty() { reply } else { pred };
                (
                    0.0,
                    format!(
                        "The numeric answer is wrong. Expected final number: '{want}', got '{got}'. Improve arithmetic reasoning and answer extraction so the final number is correct."
                    ),
                )
            }
        }
        TaskType::Mcqa => {
            let pred = extract_answer(reply);
            let label = text(&hf["gold_label"]);
            let gold_text = text(&hf["gold_text"]);
            if last_choice(&pred).trim().to_lowercase() == label.trim().to_lowercase() {
                (1.0, "The selected option is correct.".to_string())
            } else if !gold_text.is_empty() && normalise(&pred).contains(&normalise(&gold_text)) {
                (1.0, "The selected option text is correct.".to_string())
            } else {
                (
                    0.0,
                    format!(
                        "Incorrect. Expected option \"{label}\" ({gold_text}), got \"{pred}\". Improve option-sensitive reasoning and produce the final answer in the expected MCQ format."
                    ),
                )
            }
        }
        TaskType::Musique | TaskType::Drop | TaskType::Qasper => {
            let aliases: Vec<String> = hf["aliases"]
                .as_array()
                .map(|a| a.iter().map(text).collect())
                .unwrap_or_default();
            let s = best_alias_score(reply, &aliases);
            if s >= 0.999 {
                (1.0, "Correct.".to_string())
            } else {
                let list = py_list(&aliases);
                let feedback = match kind {
                    TaskType::Musique => format!(
                        "Incorrect. Gold aliases: {list}. Got: '{reply}'. Improve compositional multi-hop reasoning across the provided paragraphs."
                    ),
                    TaskType::Drop => format!(
                        "Incorrect. Expected one of {list}, got '{reply}'. Improve passage-based arithmetic/discrete reasoning and answer normalization."
                    ),
                    _ => format!(
                        "Incorrect. Expected one of {list}, got '{reply}'. Improve long-document scholarly QA and answer grounding."
                    ),
                };
                (s, feedback)
            }
        }
        TaskType::StrategyQa => {
            let pred = extract_answer(reply);
            let norm = normalise(&pred);
            let token = norm.split(' ').find(|t| *t == "yes" || *t == "no");
            match token {
                Some(t) if t == gold => (1.0, "The yes/no answer is correct.".to_string()),
                _ => {
                    let found = token
                        .map(str::to_string)
                        .unwrap_or_else(|| norm.chars().take(40).collect());
                    (
                        0.0,
                        format!(
                            "The yes/no answer is wrong. Expected '{gold}', got '{found}'. Decompose the implicit reasoning steps and state the final Yes/No explicitly."
                        ),
                    )
                }
            }
        }
        TaskType::CodeExec => super::code::score(
            reply,
            &text(&hf["test"]),
            &text(&hf["entry_point"]),
            &text(&hf["setup"]),
            limits,
        ),
    };
    ExampleResult {
        output: shown(reply),
        score,
        feedback,
        metrics: Default::default(),
        correct: Some(score >= 1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ex(answer: &str, hf: Json) -> Example {
        Example {
            input: json!("q"),
            info: json!({"answer": answer, "hint": null, "hf": hf}),
        }
    }

    #[test]
    fn helpers_match_the_reference_vectors() {
        assert_eq!(normalise("The Eiffel Tower!"), "eiffel tower");
        assert_eq!(normalise("an  apple's"), "apples");
        assert_eq!(normalise("A"), "");
        assert_eq!(normalise("Ünïcode—dash"), "ünïcode—dash");
        assert!((token_f1("the cat sat", "cat sat down") - 0.8).abs() < 1e-12);
        for (t, n) in [
            ("The answer is 72.", "72."),
            ("1,234.5 apples", "1234.5"),
            ("+4", "+4"),
            ("1/2", "2"),
            ("3.", "3."),
            ("$18.00", "18.00"),
            ("no", ""),
        ] {
            assert_eq!(last_number(t), n, "{t}");
        }
        for (t, c) in [
            ("(B)", "B"),
            ("I think (1) then A", "1"),
            ("Answer: C", "C"),
            ("so the answer is d", ""),
            ("I guess", "I"),
            ("(see) the answer", "see"),
            ("A or B", "B"),
        ] {
            assert_eq!(last_choice(t), c, "{t}");
        }
        assert_eq!(
            best_alias_score("It is Paris, France", &["Paris".into()]),
            1.0
        );
        assert_eq!(
            best_alias_score("London city", &["london bridge".into()]),
            0.5
        );
        assert_eq!(
            dedupe_aliases(["The Beatles", "Beatles", "the beatles!"].map(String::from)),
            ["The Beatles"]
        );
    }

    #[test]
    fn each_task_type_scores_as_the_reference() {
        let bb = ex("(A)", json!({"question": "pick"}));
        assert_eq!(score(TaskType::Bbeh, "so (B) no wait (A)", &bb).score, 1.0);
        assert_eq!(score(TaskType::Bbeh, "(a)", &bb).score, 0.0);
        assert_eq!(score(TaskType::Bbeh, "A", &bb).score, 0.0);
        let f = ex("False", json!({"question": "x"}));
        assert_eq!(score(TaskType::Bbeh, " False ", &f).score, 1.0);
        assert_eq!(score(TaskType::Bbeh, "false", &f).score, 0.0);
        let wrong = score(TaskType::Bbeh, "Answer: true", &f);
        assert_eq!(
            wrong.feedback,
            "The answer is wrong for task: \"x\". Expected: \"False\", Got: \"true\". Improve the agent to produce the correct answer in the expected format: (A)/(B) for multiple-choice, or an exact string/number for free-form questions."
        );
        let eight = ex("8", json!({}));
        assert_eq!(score(TaskType::Bbeh, "8.", &eight).score, 0.0);

        let g = ex("72", json!({}));
        assert_eq!(score(TaskType::Gsm8k, "so 70 + 2 = 72", &g).score, 1.0);
        assert_eq!(score(TaskType::Gsm8k, "The answer is 72.", &g).score, 0.0);
        assert_eq!(score(TaskType::Gsm8k, "72.0", &g).score, 0.0);

        let m = ex("D", json!({"gold_label": "D", "gold_text": "an apple"}));
        for (reply, s) in [
            ("(D)", 1.0),
            ("The answer is D.", 1.0),
            ("It's an apple", 1.0),
            ("(A) but maybe an apple", 1.0),
            ("d", 0.0),
            ("I pick A", 0.0),
        ] {
            assert_eq!(score(TaskType::Mcqa, reply, &m).score, s, "{reply}");
        }

        let d = ex("12", json!({"aliases": ["12", "twelve"]}));
        assert_eq!(score(TaskType::Drop, "twelve points", &d).score, 1.0);
        let d = ex("12 points", json!({"aliases": ["12 points"]}));
        assert_eq!(score(TaskType::Drop, "eleven points", &d).score, 0.5);
        let q = ex("x", json!({"aliases": ["RoBERTa large model"]}));
        let s = score(TaskType::Qasper, "we used BERT model", &q).score;
        assert!((s - 0.2857).abs() < 1e-4, "{s}");

        let y = ex("yes", json!({}));
        assert_eq!(score(TaskType::StrategyQa, "Yes.", &y).score, 1.0);
        assert_eq!(score(TaskType::StrategyQa, "YES!", &y).score, 1.0);
        assert_eq!(
            score(TaskType::StrategyQa, "No, because yes", &y).score,
            0.0
        );

        let h = ex("no", json!({"question": "q", "context": "c"}));
        // Containment is a character test: "no" is inside "not".
        assert_eq!(score(TaskType::Hfqa, "I do not know", &h).score, 1.0);
        let h = ex("Paris", json!({"question": "Where?", "context": "ctx"}));
        let wrong = score(TaskType::Hfqa, "Rome", &h);
        assert_eq!(wrong.score, 0.0);
        assert_eq!(
            wrong.feedback,
            "Incorrect. Expected: 'Paris', Got: 'Rome'.\nQuestion: Where?\nContext: ctx\nImprove the agent's multi-hop reasoning over multiple context passages."
        );
        let d = ex("x", json!({"aliases": ["it's", "b"]}));
        assert!(
            score(TaskType::Drop, "zzz", &d)
                .feedback
                .starts_with("Incorrect. Expected one of [\"it's\", 'b'], got 'zzz'.")
        );
    }
}
