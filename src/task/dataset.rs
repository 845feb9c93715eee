//! Dataset tasks: examples read from JSONL files, answered by the job's agent with the
//! trained prompt, and scored by a metric (`exact_match`, `contains`, `numeric`, `regex`).
//!
//! The whole data set is checked when the task loads (every line parses, every regex
//! compiles, every numeric answer is a number), so a bad file is an error naming the file
//! and line before any job runs, not a failure in the middle of a benchmark.

use std::collections::HashMap;
use std::path::Path;

use regex::Regex;
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::agent::{AgentHandle, Reply, StubAgent};
pub use super::text::{expected, input_text, words};
use super::{EvalLimits, Example, ExampleResult, Param, Splits, TaskManifest};
use crate::vocab::Kwargs;
use crate::vocab::ParamKind;

/// Default absolute tolerance of the `numeric` metric.
pub const DEFAULT_TOLERANCE: f64 = 1e-6;

/// How an agent's answer is compared with the expected one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// Equal after trimming, collapsing whitespace, ignoring case and a final `.`.
    ExactMatch,
    /// The normalised answer contains the normalised expected answer.
    Contains,
    /// The last number in the answer is within `tolerance` of the expected number.
    Numeric {
        /// Absolute tolerance.
        tolerance: f64,
    },
    /// The expected answer is a regular expression that must match somewhere in the answer.
    Regex,
    /// An `hf:` task: the reference's scorer of the task type (`task::hf::score`).
    Hf(super::hf::catalog::TaskType),
    /// The final number of a GSM8K solution (after `####`, else the last number) equals
    /// the expected one's; metrics `error` (0/1) and the call's `tokens_in`/`tokens_out`
    /// (`internal:multiobjective_gsm8k`).
    Gsm8kFinal,
}

impl Metric {
    /// The manifest spelling.
    pub fn name(self) -> &'static str {
        match self {
            Metric::ExactMatch => "exact_match",
            Metric::Contains => "contains",
            Metric::Numeric { .. } => "numeric",
            Metric::Regex => "regex",
            Metric::Hf(kind) => kind.name(),
            Metric::Gsm8kFinal => "gsm8k_final",
        }
    }

    fn parse(name: &str, tolerance: Option<f64>) -> Result<Self, String> {
        let tolerance = tolerance.unwrap_or(DEFAULT_TOLERANCE);
        if !(tolerance.is_finite() && tolerance >= 0.0) {
            return Err(format!(
                "evaluator.tolerance must be a non-negative number, found {tolerance}"
            ));
        }
        match name {
            "exact_match" => Ok(Metric::ExactMatch),
            "contains" => Ok(Metric::Contains),
            "numeric" => Ok(Metric::Numeric { tolerance }),
            "regex" => Ok(Metric::Regex),
            "gsm8k_final" => Ok(Metric::Gsm8kFinal),
            other => Err(format!(
                "evaluator.metric `{other}` is unknown (exact_match, contains, numeric, regex, gsm8k_final)"
            )),
        }
    }
}

/// The JSONL files of a dataset task, relative to its folder (`evaluator.data`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataFiles {
    /// Examples the optimizer learns from (required).
    pub train: String,
    /// Examples for the reported score.
    #[serde(default)]
    pub validation: Option<String>,
    /// Held-out examples, scored once with the best prompt.
    #[serde(default)]
    pub test: Option<String>,
}

/// One line of a data file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    input: Json,
    answer: Json,
    #[serde(default)]
    hint: Option<String>,
}

/// Read one JSONL file into examples `{input, info: {answer, hint}}`; blank lines are
/// skipped. Errors name the file and the 1-based line.
pub fn load_jsonl(path: &Path, metric: Metric) -> Result<Vec<Example>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read data file `{}`: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let at = || format!("`{}` line {}", path.display(), i + 1);
        let line: Line = serde_json::from_str(raw).map_err(|e| format!("{}: {e}", at()))?;
        check_answer(&line.answer, metric).map_err(|e| format!("{}: {e}", at()))?;
        if line.hint.as_deref().is_some_and(|h| words(h).is_empty()) {
            return Err(format!("{}: `hint` has no letters or digits", at()));
        }
        out.push(Example {
            input: line.input,
            info: json!({"answer": line.answer, "hint": line.hint}),
        });
    }
    if out.is_empty() {
        return Err(format!("data file `{}` has no examples", path.display()));
    }
    Ok(out)
}

/// Whether `answer` can be scored by `metric`.
fn check_answer(answer: &Json, metric: Metric) -> Result<(), String> {
    match (metric, answer) {
        (Metric::Numeric { .. }, a) if expected_number(a).is_some() => Ok(()),
        (Metric::Numeric { .. }, a) => Err(format!("`answer` must be a number, found {a}")),
        (Metric::Regex, Json::String(re)) => Regex::new(re)
            .map(|_| ())
            .map_err(|e| format!("`answer` is not a valid regex: {e}")),
        (_, Json::String(_) | Json::Number(_)) => Ok(()),
        (_, a) => Err(format!("`answer` must be a string or a number, found {a}")),
    }
}

fn expected_number(answer: &Json) -> Option<f64> {
    match answer {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|x| x.is_finite())
}

fn normalise(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed
        .trim_end_matches('.')
        .trim()
        .to_lowercase()
        .to_string()
}

/// The last number in `text` (`1,200` reads as 1200).
pub fn last_number(text: &str) -> Option<f64> {
    let re = number_regex();
    re.find_iter(text)
        .filter_map(|m| m.as_str().replace(',', "").parse::<f64>().ok())
        .filter(|x| x.is_finite())
        .last()
}

/// The final answer of a GSM8K-style solution, normalised as the reference's
/// multi-objective task does: the first number after a `####` marker, else the last
/// number of the text (`-`, comma groups, decimals and a `/denominator` allowed); commas
/// dropped, integers canonical (`007` → `7`, `-0` → `0`), whole decimals as integers
/// (`18.0` → `18`), other decimals as written. `None` when there is no number (or a
/// marker with none after it).
pub fn gsm8k_final_answer(text: &str) -> Option<String> {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?")
            .unwrap_or_else(|e| unreachable!("constant regex: {e}"))
    });
    let found = match text.find("####") {
        Some(at) => re.find(&text[at + 4..])?,
        None => re.find_iter(text).last()?,
    };
    let plain = found.as_str().replace(',', "");
    if let Ok(n) = plain.parse::<i128>() {
        return Some(n.to_string());
    }
    if let Some((whole, frac)) = plain.split_once('.')
        && !frac.contains('/')
        && frac.bytes().all(|b| b == b'0')
        && let Ok(n) = whole.parse::<i128>()
    {
        return Some(n.to_string());
    }
    Some(plain)
}

fn gsm8k_score(reply: &str, example: &Example) -> ExampleResult {
    let (gold_text, hint) = expected(example);
    let gold = gsm8k_final_answer(&gold_text);
    let pred = gsm8k_final_answer(reply);
    let ok = gold.is_some() && gold == pred;
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "None".into());
    let hint = hint
        .filter(|_| !ok)
        .map(|h| format!(" hint='{h}'"))
        .unwrap_or_default();
    ExampleResult {
        output: reply.trim().chars().take(200).collect(),
        score: if ok { 1.0 } else { 0.0 },
        feedback: format!("expected={} predicted={}{hint}", show(&gold), show(&pred)),
        metrics: [("error".to_string(), if ok { 0.0 } else { 1.0 })].into(),
        correct: Some(ok),
    }
}

fn number_regex() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
            .unwrap_or_else(|e| unreachable!("constant regex: {e}"))
    })
}

/// The scorer of a dataset task.
#[derive(Debug, Clone)]
pub struct DatasetEvaluator {
    metric: Metric,
    /// The parameter sent as the agent's system message.
    prompt_param: String,
    /// Compiled expected-answer regexes (`regex` metric), by pattern.
    regexes: HashMap<String, Regex>,
}

impl DatasetEvaluator {
    /// Build the scorer and read the data files into `manifest.splits`.
    pub fn load(manifest: &mut TaskManifest, dir: Option<&Path>) -> Result<Self, String> {
        let spec = &manifest.evaluator;
        let metric = Metric::parse(
            spec.metric
                .as_deref()
                .ok_or("evaluator kind `dataset` needs `metric`")?,
            spec.tolerance,
        )?;
        let prompt_param = manifest
            .parameters
            .iter()
            .find(|p: &&Param| p.kind == ParamKind::Text)
            .map(|p| p.name.clone())
            .ok_or("evaluator kind `dataset` needs a parameter of kind `text` (the prompt)")?;
        // A task that is skipped anyway (e.g. its files could not be unpacked) needs no data.
        if manifest.skip_reason.is_none() {
            let files = spec
                .data
                .clone()
                .ok_or("evaluator kind `dataset` needs `data` (at least `train`)")?;
            if manifest.splits != Splits::default() {
                return Err(
                    "a dataset task reads its examples from `evaluator.data`; remove `splits`"
                        .into(),
                );
            }
            let dir = dir.ok_or("a dataset task needs a task folder for its data files")?;
            let read = |name: &Option<String>| -> Result<Vec<Example>, String> {
                name.as_ref()
                    .map_or(Ok(Vec::new()), |n| load_jsonl(&dir.join(n), metric))
            };
            manifest.splits = Splits {
                train: read(&Some(files.train.clone()))?,
                validation: read(&files.validation)?,
                test: read(&files.test)?,
            };
        }
        let mut regexes = HashMap::new();
        if metric == Metric::Regex {
            let s = &manifest.splits;
            for ex in s.train.iter().chain(&s.validation).chain(&s.test) {
                let (pattern, _) = expected(ex);
                let re = Regex::new(&pattern).map_err(|e| format!("invalid regex: {e}"))?;
                regexes.insert(pattern, re);
            }
        }
        Ok(Self {
            metric,
            prompt_param,
            regexes,
        })
    }

    /// The scorer of an `hf:` task: `kind`'s rule, the prompt in `prompt_param`.
    pub fn hf(kind: super::hf::catalog::TaskType, prompt_param: &str) -> Self {
        Self {
            metric: Metric::Hf(kind),
            prompt_param: prompt_param.into(),
            regexes: HashMap::new(),
        }
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Ask the agent for every example of every evaluation, each with the prompt in its
    /// `values` — all together, up to `limits.threads` requests at once, numbered in order
    /// — and score the answers; one list of results per evaluation. Without a job's agent
    /// (tests, tools) the stub rule answers, uncounted. `limits` also bound the programs a
    /// scorer runs (`hf:` code execution).
    pub fn evaluate_batch(
        &self,
        batch: &[(&Kwargs, &[&Example])],
        agent: Option<&AgentHandle>,
        limits: &EvalLimits,
    ) -> Vec<Vec<ExampleResult>> {
        let prompts: Vec<String> = batch
            .iter()
            .map(|(values, _)| match values.get(&self.prompt_param) {
                Some(Json::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            })
            .collect();
        let asks: Vec<(&str, &Example)> = batch
            .iter()
            .zip(&prompts)
            .flat_map(|((_, examples), prompt)| examples.iter().map(|ex| (prompt.as_str(), *ex)))
            .collect();
        let mut replies = match agent {
            Some(agent) => {
                let user_only = matches!(self.metric, Metric::Hf(kind) if kind.qa_agent());
                agent.answer_all(&asks, user_only, limits.threads)
            }
            None => asks
                .iter()
                .map(|(prompt, ex)| Ok(StubAgent::reply(prompt, ex)))
                .collect(),
        }
        .into_iter();
        batch
            .iter()
            .map(|(_, examples)| {
                examples
                    .iter()
                    .zip(replies.by_ref())
                    .map(|(example, reply)| self.score_reply(reply, example, limits))
                    .collect()
            })
            .collect()
    }

    fn score_reply(
        &self,
        reply: Result<Reply, crate::llm::LlmError>,
        example: &Example,
        limits: &EvalLimits,
    ) -> ExampleResult {
        match reply {
            Ok(reply) => match self.metric {
                Metric::Hf(kind) => {
                    super::hf::score::score_within(kind, &reply.text, example, limits)
                }
                Metric::Gsm8kFinal => {
                    let mut result = gsm8k_score(&reply.text, example);
                    let (tin, tout) = (reply.prompt_tokens, reply.completion_tokens);
                    result
                        .feedback
                        .push_str(&format!(" tokens_in={tin} tokens_out={tout}"));
                    result.metrics.insert("tokens_in".into(), tin as f64);
                    result.metrics.insert("tokens_out".into(), tout as f64);
                    result
                }
                _ => self.score(&reply.text, example),
            },
            Err(e) => ExampleResult {
                output: String::new(),
                score: 0.0,
                feedback: format!("the agent failed: {e}"),
                metrics: Default::default(),
                correct: Some(false),
            },
        }
    }

    /// Score a reply produced elsewhere (an external trainer's library ran the task
    /// program): the same rule as for the agent's replies, within the job's limits.
    pub fn score_answer(
        &self,
        answer: &str,
        example: &Example,
        limits: &EvalLimits,
    ) -> ExampleResult {
        match self.metric {
            Metric::Hf(kind) => super::hf::score::score_within(kind, answer, example, limits),
            _ => self.score(answer, example),
        }
    }

    /// The parameter sent as the agent's system message.
    pub fn prompt_param(&self) -> &str {
        &self.prompt_param
    }

    /// Score one answer: 1 when the metric accepts it, else 0 with feedback naming the
    /// expected answer and the example's hint.
    pub fn score(&self, answer: &str, example: &Example) -> ExampleResult {
        match self.metric {
            Metric::Hf(kind) => return super::hf::score::score(kind, answer, example),
            Metric::Gsm8kFinal => return gsm8k_score(answer, example),
            _ => {}
        }
        let (want, hint) = expected(example);
        let ok = match self.metric {
            Metric::ExactMatch => normalise(answer) == normalise(&want),
            Metric::Contains => normalise(answer).contains(&normalise(&want)),
            Metric::Numeric { tolerance } => {
                match (
                    last_number(answer),
                    expected_number(&example.info["answer"]),
                ) {
                    (Some(got), Some(want)) => (got - want).abs() <= tolerance,
                    _ => false,
                }
            }
            Metric::Hf(_) | Metric::Gsm8kFinal => false,
            Metric::Regex => self
                .regexes
                .get(&want)
                .is_some_and(|re| re.is_match(answer.trim())),
        };
        let shown: String = answer.trim().chars().take(200).collect();
        let feedback = if ok {
            format!("correct: {shown}")
        } else {
            let wanted = match self.metric {
                Metric::Regex => format!("an answer matching /{want}/"),
                _ => want,
            };
            let hint = hint.map(|h| format!("; hint: '{h}'")).unwrap_or_default();
            format!("wrong: expected {wanted}, got {shown}{hint}")
        };
        ExampleResult {
            output: shown,
            score: if ok { 1.0 } else { 0.0 },
            feedback,
            metrics: Default::default(),
            correct: Some(ok),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(answer: Json, hint: Option<&str>) -> Example {
        Example {
            input: json!("q"),
            info: json!({"answer": answer, "hint": hint}),
        }
    }

    fn evaluator(metric: Metric, examples: &[&Example]) -> DatasetEvaluator {
        let regexes = examples
            .iter()
            .map(|e| expected(e).0)
            .filter_map(|p| Regex::new(&p).ok().map(|r| (p, r)))
            .collect();
        DatasetEvaluator {
            metric,
            prompt_param: "prompt".into(),
            regexes,
        }
    }

    #[test]
    fn exact_match_ignores_case_spacing_and_a_final_period() {
        let ex = example(json!("Paris"), Some("capital"));
        let e = evaluator(Metric::ExactMatch, &[&ex]);
        assert_eq!(e.score("  paris. ", &ex).score, 1.0);
        assert_eq!(e.score("Paris, France", &ex).score, 0.0);
        let wrong = e.score("Lyon", &ex);
        assert_eq!(
            wrong.feedback,
            "wrong: expected Paris, got Lyon; hint: 'capital'"
        );
        assert_eq!(e.score("PARIS", &ex).feedback, "correct: PARIS");
    }

    #[test]
    fn contains_finds_the_answer_inside_a_sentence() {
        let ex = example(json!("Mount Everest"), None);
        let e = evaluator(Metric::Contains, &[&ex]);
        assert_eq!(e.score("It is   mount everest.", &ex).score, 1.0);
        let wrong = e.score("K2", &ex);
        assert_eq!(wrong.score, 0.0);
        assert_eq!(wrong.feedback, "wrong: expected Mount Everest, got K2");
    }

    #[test]
    fn numeric_reads_the_last_number_within_the_tolerance() {
        let ex = example(json!(1200), None);
        let e = evaluator(Metric::Numeric { tolerance: 1e-6 }, &[&ex]);
        assert_eq!(e.score("3 + 4 = 7, so the total is 1,200.", &ex).score, 1.0);
        assert_eq!(e.score("1200.0000001", &ex).score, 1.0);
        assert_eq!(e.score("1201", &ex).score, 0.0);
        assert_eq!(e.score("no idea", &ex).score, 0.0);
        let loose = evaluator(Metric::Numeric { tolerance: 0.5 }, &[&ex]);
        assert_eq!(loose.score("1200.4", &ex).score, 1.0);
        let neg = example(json!("-2.5"), None);
        assert_eq!(e.score("it is -2.5", &neg).score, 1.0);
        assert_eq!(last_number("1e3 apples"), Some(1000.0));
    }

    #[test]
    fn regex_answers_are_patterns_the_answer_must_match() {
        let ex = example(json!("^(?i)h2o$"), None);
        let e = evaluator(Metric::Regex, &[&ex]);
        assert_eq!(e.score(" H2O ", &ex).score, 1.0);
        assert_eq!(e.score("water, H2O", &ex).score, 0.0);
        assert!(
            e.score("CO2", &ex)
                .feedback
                .contains("matching /^(?i)h2o$/")
        );
    }

    #[test]
    fn metrics_and_tolerances_are_checked() {
        assert!(
            Metric::parse("fuzzy", None)
                .unwrap_err()
                .contains("`fuzzy`")
        );
        assert!(Metric::parse("numeric", Some(-1.0)).is_err());
        assert_eq!(
            Metric::parse("numeric", None).unwrap(),
            Metric::Numeric {
                tolerance: DEFAULT_TOLERANCE
            }
        );
    }

    #[test]
    fn bad_data_files_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.jsonl");
        let write = |text: &str| std::fs::write(&path, text).unwrap();
        let err = |metric| load_jsonl(&path, metric).unwrap_err();
        write("{\"input\": \"a\", \"answer\": 1}\n\n{\"input\": \"b\"\n");
        let e = err(Metric::ExactMatch);
        assert!(e.contains("train.jsonl` line 3"), "{e}");
        write("{\"input\": \"a\", \"answer\": \"x\", \"hnit\": \"y\"}\n");
        let e = err(Metric::ExactMatch);
        assert!(e.contains("line 1") && e.contains("hnit"), "{e}");
        write("{\"input\": \"a\", \"answer\": 1}\n{\"input\": \"a\", \"answer\": \"many\"}\n");
        let e = err(Metric::Numeric { tolerance: 0.0 });
        assert!(
            e.contains("line 2") && e.contains("must be a number"),
            "{e}"
        );
        write("{\"input\": \"a\", \"answer\": \"(unclosed\"}\n");
        let e = err(Metric::Regex);
        assert!(e.contains("line 1") && e.contains("regex"), "{e}");
        write("{\"input\": \"a\", \"answer\": [1]}\n");
        assert!(err(Metric::Contains).contains("string or a number"));
        write("\n");
        assert!(err(Metric::Contains).contains("no examples"));
        let missing = dir.path().join("nope.jsonl");
        assert!(
            load_jsonl(&missing, Metric::Contains)
                .unwrap_err()
                .contains("nope.jsonl")
        );
        write("{\"input\": \"What is 2+2?\", \"answer\": 4, \"hint\": \"add\"}\n");
        let ok = load_jsonl(&path, Metric::Numeric { tolerance: 0.0 }).unwrap();
        assert_eq!(ok[0].info, json!({"answer": 4, "hint": "add"}));
    }
}
