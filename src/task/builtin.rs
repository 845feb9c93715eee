//! Evaluators implemented in Rust for the built-in tasks (reference §10.3): each maps a
//! parameter set and one example to an output, a score and feedback text.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::{Example, ExampleResult, Param, TaskManifest};
use crate::vocab::Kwargs;
use crate::vocab::ParamKind;
use crate::vocab::canonical::python_float_repr;

/// The built-in scoring rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evaluator {
    /// Output = sum of the numeric parameters; score = -|output - target|.
    NumericDistance,
    /// Output = the first text/code parameter; score 1 on an exact match.
    ExactMatch,
    /// Output = `<greeting>, <last word of the input>!`; score 1 on an exact match.
    GreetingTemplate,
    /// Output = the greeting of the input's language plus the name; score 1 when the
    /// expected greeting word for that language appears.
    LanguageGreeting,
    /// Metrics `base_loss` = six-hump camel(x1, x2) and `reg_loss` = x1² + x2² (both
    /// minimised); score −(base + reg). Outside [−2, 2]² the action is invalid: score −1,
    /// both metrics 1e6 (the reference's convention).
    SixHumpCamel,
}

impl Evaluator {
    /// Look up the evaluator a manifest names (the caller adds the task id to errors).
    pub(super) fn from_manifest(m: &TaskManifest) -> Result<Self, String> {
        match m.evaluator.name.as_str() {
            "numeric_distance" => Ok(Self::NumericDistance),
            "exact_match" => Ok(Self::ExactMatch),
            "greeting_template" => Ok(Self::GreetingTemplate),
            "language_greeting" => Ok(Self::LanguageGreeting),
            "six_hump_camel" => Ok(Self::SixHumpCamel),
            other => Err(format!("unknown builtin evaluator `{other}`")),
        }
    }

    /// Score one example.
    pub fn evaluate(self, params: &[Param], values: &Kwargs, ex: &Example) -> ExampleResult {
        match self {
            Self::NumericDistance => numeric_distance(params, values, ex),
            Self::ExactMatch => exact_match(params, values, ex),
            Self::GreetingTemplate => greeting_template(values, ex),
            Self::LanguageGreeting => language_greeting(values, ex),
            Self::SixHumpCamel => six_hump_camel(values),
        }
    }
}

fn text_of(v: Option<&Json>) -> String {
    match v {
        Some(Json::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// A target given as a number, or as text ending in a number (`Correct answer is: 3`).
fn numeric_target(info: &Json) -> Option<f64> {
    match info {
        Json::Number(n) => n.as_f64(),
        Json::String(s) => s.rsplit(':').next()?.trim().parse().ok(),
        _ => None,
    }
}

fn numeric_distance(params: &[Param], values: &Kwargs, ex: &Example) -> ExampleResult {
    let target = numeric_target(&ex.info);
    let mut sum = 0.0;
    for p in params.iter().filter(|p| p.kind == ParamKind::Number) {
        match values.get(&p.name).and_then(Json::as_f64) {
            Some(x) if x.is_finite() => sum += x,
            other => {
                return ExampleResult {
                    output: text_of(values.get(&p.name)),
                    score: -1.0,
                    metrics: BTreeMap::new(),
                    feedback: format!(
                        "parameter `{}` is not a number ({})",
                        p.name,
                        other.map_or_else(|| text_of(values.get(&p.name)), |x| x.to_string())
                    ),
                    correct: None,
                };
            }
        }
    }
    let output = python_float_repr(sum);
    match target {
        Some(t) => ExampleResult {
            score: -(sum - t).abs(),
            metrics: BTreeMap::new(),
            feedback: format!("output={output}, target={}", python_float_repr(t)),
            output,
            correct: None,
        },
        None => ExampleResult {
            output,
            score: -1.0,
            metrics: BTreeMap::new(),
            feedback: "the example has no numeric target".into(),
            correct: None,
        },
    }
}

fn six_hump_camel(values: &Kwargs) -> ExampleResult {
    let coord = |name: &str| {
        values
            .get(name)
            .and_then(Json::as_f64)
            .filter(|v| v.is_finite() && (-2.0..=2.0).contains(v))
    };
    let (Some(x1), Some(x2)) = (coord("x1"), coord("x2")) else {
        return ExampleResult {
            output: format!(
                "x = [{}, {}]",
                text_of(values.get("x1")),
                text_of(values.get("x2"))
            ),
            score: -1.0,
            feedback: "invalid action: x1 and x2 must be numbers in [-2, 2]".into(),
            metrics: [("base_loss".into(), 1e6), ("reg_loss".into(), 1e6)].into(),
            correct: None,
        };
    };
    let base = (4.0 - 2.1 * x1 * x1 + x1.powi(4) / 3.0) * x1 * x1
        + x1 * x2
        + (-4.0 + 4.0 * x2 * x2) * x2 * x2;
    let reg = x1 * x1 + x2 * x2;
    ExampleResult {
        output: format!("x = [{}, {}]", python_float_repr(x1), python_float_repr(x2)),
        score: -(base + reg),
        feedback: format!(
            "base_loss (six-hump camel) = {base:.4}, reg_loss (x1^2 + x2^2) = {reg:.4}; both should be lower"
        ),
        metrics: [("base_loss".into(), base), ("reg_loss".into(), reg)].into(),
        correct: None,
    }
}

fn exact_match(params: &[Param], values: &Kwargs, ex: &Example) -> ExampleResult {
    let output = params
        .iter()
        .find(|p| p.kind != ParamKind::Number)
        .map(|p| text_of(values.get(&p.name)))
        .unwrap_or_default();
    let ok = output == text_of(Some(&ex.info));
    ExampleResult {
        output,
        score: if ok { 1.0 } else { 0.0 },
        metrics: BTreeMap::new(),
        feedback: if ok { "Correct" } else { "Mismatch" }.into(),
        correct: None,
    }
}

fn last_word(input: &Json) -> String {
    text_of(Some(input))
        .split_whitespace()
        .last()
        .unwrap_or("")
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_string()
}

fn greeting_template(values: &Kwargs, ex: &Example) -> ExampleResult {
    let output = format!(
        "{}, {}!",
        text_of(values.get("greeting")),
        last_word(&ex.input)
    );
    let expected = text_of(Some(&ex.info));
    let ok = output == expected;
    ExampleResult {
        score: if ok { 1.0 } else { 0.0 },
        metrics: BTreeMap::new(),
        feedback: if ok {
            "Correct".into()
        } else {
            format!("Expected: {expected}")
        },
        output,
        correct: None,
    }
}

fn language_greeting(values: &Kwargs, ex: &Example) -> ExampleResult {
    let input = text_of(Some(&ex.input)).to_lowercase();
    let is_spanish = ["soy", "hola", "me llamo"]
        .iter()
        .any(|w| input.contains(w));
    let param = if is_spanish {
        "spanish_greeting"
    } else {
        "english_greeting"
    };
    let output = format!("{}, {}!", text_of(values.get(param)), last_word(&ex.input));
    let (lang, word) = match text_of(Some(&ex.info)).as_str() {
        "es" => ("es", "Hola"),
        _ => ("en", "Hello"),
    };
    let ok = output.contains(word);
    ExampleResult {
        score: if ok { 1.0 } else { 0.0 },
        metrics: BTreeMap::new(),
        feedback: if ok {
            "Correct".into()
        } else {
            format!("Expected a greeting in language `{lang}` (such as '{word}'), got '{output}'")
        },
        output,
        correct: None,
    }
}
