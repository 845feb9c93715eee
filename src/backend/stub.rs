//! The stub LLM: a seeded mutation proposer for offline runs.
//!
//! It is not a model and never pretends to be one (provider `stub`, reasoning text says
//! so). Each call mutates some trainable variables of the request (numbers get noise,
//! text gets a word from the feedback or a small vocabulary, code gets an alternative
//! body) and renders the change as a well-formed reply in the trainer's protocol, which
//! the real parser then reads. A seeded share of replies is junk (`TERMINATE`, empty,
//! prose, truncated JSON, an unknown variable) so every fallback path runs in stub mode.
//! Nothing here knows a task's target: improvement comes from the trainer's selection.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value as Json, json};

use crate::llm::{ChatRequest, ChatResponse, Llm, LlmError, LlmInfo, VariableHint};
use crate::optimizer::Protocol;
use crate::rng::Rng;
use crate::vocab::Kwargs;
use crate::vocab::ParamKind;

/// Share of replies that are deliberately malformed.
pub const JUNK_SHARE: f64 = 0.1;

/// Model name recorded for stub calls.
pub const STUB_MODEL: &str = "stub-seeded-mutation";

const WORDS: &[&str] = &[
    "Hello",
    "Hi",
    "Hey",
    "Greetings",
    "Welcome",
    "Good day",
    "Howdy",
];
const SENTENCES: &[&str] = &[
    "Think step by step.",
    "Answer concisely.",
    "Check the result before answering.",
    "Use the examples as a guide.",
];

/// The seeded stub proposer.
pub struct StubLlm {
    rng: Rng,
    protocol: Arc<dyn Protocol>,
}

impl StubLlm {
    /// A stub for one job: `seed` is the job seed, `protocol` renders the replies.
    pub fn new(seed: i64, protocol: Arc<dyn Protocol>) -> Self {
        Self {
            rng: Rng::stream(seed, "stub-llm"),
            protocol,
        }
    }

    fn junk(&mut self, variables: &[VariableHint]) -> String {
        let first = variables.first().map_or("x", |v| v.name.as_str());
        let catalogue = self.protocol.junk_replies(first);
        self.rng.pick(&catalogue).clone()
    }

    /// AggregatedUpdate's aggregator: each component taken from one seeded suggestion
    /// (the hints list the current values first, then each suggestion's, in order).
    fn aggregate(&mut self, hints: &[VariableHint]) -> String {
        let mut names: Vec<&str> = Vec::new();
        for h in hints {
            if !names.contains(&h.name.as_str()) {
                names.push(&h.name);
            }
        }
        let suggestions = (hints.len() / names.len().max(1)).saturating_sub(1);
        let mut reply = serde_json::Map::new();
        let mut merged = serde_json::Map::new();
        for (k, name) in names.iter().enumerate() {
            let pick = if suggestions == 0 {
                0
            } else {
                1 + self.rng.below(suggestions)
            };
            if let Some(h) = hints.get(pick * names.len() + k) {
                reply.insert(
                    format!("reasoning_{name}"),
                    Json::String(format!(
                        "Stub aggregation (not a language model): suggestion {pick}."
                    )),
                );
                merged.insert(name.to_string(), h.value.clone());
            }
        }
        reply.insert("suggestion".into(), Json::Object(merged));
        Json::Object(reply).to_string()
    }

    fn mutate(&mut self, var: &VariableHint, feedback: &str) -> Json {
        match var.kind {
            ParamKind::Number => self.mutate_number(&var.value),
            ParamKind::Text => {
                Json::String(self.mutate_text(var.value.as_str().unwrap_or_default(), feedback))
            }
            ParamKind::Code => {
                Json::String(self.mutate_code(var.value.as_str().unwrap_or_default()))
            }
        }
    }

    fn mutate_number(&mut self, value: &Json) -> Json {
        let x = value.as_f64().unwrap_or(0.0);
        if value.is_i64() || value.is_u64() {
            let mut step = (self.rng.gaussian() * 2.0).round() as i64;
            if step == 0 {
                step = if self.rng.chance(0.5) { 1 } else { -1 };
            }
            json!(x as i64 + step)
        } else {
            let scale = 1.0 + 0.25 * x.abs();
            let y = x + self.rng.gaussian() * scale;
            json!((y * 1e4).round() / 1e4)
        }
    }

    fn mutate_text(&mut self, value: &str, feedback: &str) -> String {
        let quoted = quoted_words(feedback);
        let short = value.split_whitespace().count() <= 3;
        match self.rng.below(3) {
            0 if !quoted.is_empty() && short => self.rng.pick(&quoted).clone(),
            0 | 1 if short => (*self.rng.pick(WORDS)).to_string(),
            _ => {
                let sentence = *self.rng.pick(SENTENCES);
                if value.contains(sentence) {
                    value.replace(sentence, "").trim().to_string()
                } else {
                    format!("{} {sentence}", value.trim()).trim().to_string()
                }
            }
        }
    }

    fn mutate_code(&mut self, value: &str) -> String {
        match self.rng.below(3) {
            0 => format!("{value}\n# revised"),
            1 => value.replacen("return x", "return x + 0", 1),
            _ => value.replacen("(x)", "(x, *args)", 1),
        }
    }
}

/// Words quoted in feedback text ('...', "..." or `...`): what a reader would pick up.
pub(super) fn quoted_words(feedback: &str) -> Vec<String> {
    let mut out = Vec::new();
    for quote in ['\'', '"', '`'] {
        let parts: Vec<&str> = feedback.split(quote).collect();
        for inner in parts
            .iter()
            .skip(1)
            .step_by(2)
            .take(parts.len().saturating_sub(1) / 2)
        {
            let w = inner.trim();
            if !w.is_empty() && w.len() <= 40 && !w.contains(',') {
                out.push(w.to_string());
            }
        }
    }
    out
}

impl StubLlm {
    /// How stub calls are recorded (the same for every job).
    pub fn info_static() -> LlmInfo {
        LlmInfo {
            provider: "stub".into(),
            model: STUB_MODEL.into(),
            base_url: String::new(),
            stub: true,
        }
    }
}

impl Llm for StubLlm {
    fn info(&self) -> LlmInfo {
        Self::info_static()
    }

    fn complete(&mut self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let started = Instant::now();
        let asks_summary = request
            .messages
            .last()
            .is_some_and(|m| m.content.contains("<summary></summary>"));
        let system = request.messages.first().map_or("", |m| m.content.as_str());
        let content = if system == crate::optimizer::textgrad::BACKWARD_SYSTEM {
            // TextGrad's gradient engine: the evaluator's feedback as criticism, no draw.
            format!(
                "Stub gradient (not a language model): change the variable so that this is addressed: {}",
                request.feedback
            )
        } else if system == crate::optimizer::textgrad::REDUCE_SYSTEM {
            format!(
                "Stub combined feedback (not a language model): {}",
                request.feedback
            )
        } else if system == crate::optimizer::aggregator::SYSTEM {
            self.aggregate(&request.variables)
        } else if asks_summary && request.variables.is_empty() {
            // POLCA's summarizer: its format, without a draw (proposals stay as they were).
            let trajectories = request
                .messages
                .iter()
                .map(|m| m.content.matches("## Task Trajectory").count())
                .sum::<usize>();
            format!(
                "<summary>Stub summary (not a language model) of {trajectories} trajectories: keep what scored best, change what scored worst.</summary>"
            )
        } else if request.variables.is_empty() || self.rng.chance(JUNK_SHARE) {
            self.junk(&request.variables)
        } else {
            let mut update = Kwargs::new();
            let n = request.variables.len();
            let forced = self.rng.below(n);
            for (i, var) in request.variables.iter().enumerate() {
                if i == forced || self.rng.chance(0.5) {
                    update.insert(var.name.clone(), self.mutate(var, &request.feedback));
                }
            }
            let names: Vec<&str> = update.keys().map(String::as_str).collect();
            let reasoning = format!(
                "Stub proposal (seeded mutation, not a language model): changing {}.",
                names.join(", ")
            );
            self.protocol.render(&reasoning, &update)
        };
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
    use crate::optimizer::{GepaReflection, OPROv2, OptoPrime, OptoPrimeV2};
    use crate::task::Param;

    fn request(vars: Vec<VariableHint>) -> ChatRequest {
        ChatRequest {
            messages: vec![],
            temperature: None,
            max_tokens: None,
            variables: vars,
            feedback: "Expected a greeting in language `es` (such as 'Hola'), got 'Hello, Juan!'"
                .into(),
            extra: Default::default(),
        }
    }

    fn number_param() -> Param {
        Param {
            name: "value".into(),
            kind: ParamKind::Number,
            initial: json!(0.0),
            trainable: true,
            description: String::new(),
        }
    }

    fn number_var() -> VariableHint {
        VariableHint {
            name: "value".into(),
            kind: ParamKind::Number,
            value: json!(0.0),
        }
    }

    #[test]
    fn same_seed_same_replies_and_different_seeds_differ() {
        let replies = |seed| {
            let mut s = StubLlm::new(seed, Arc::new(OptoPrime));
            (0..20)
                .map(|_| s.complete(&request(vec![number_var()])).unwrap().content)
                .collect::<Vec<_>>()
        };
        assert_eq!(replies(1), replies(1));
        assert_ne!(replies(1), replies(2));
    }

    #[test]
    fn replies_parse_and_junk_share_is_about_ten_percent() {
        let mut s = StubLlm::new(7, Arc::new(OptoPrime));
        let params = vec![number_param()];
        let mut empty = 0;
        for _ in 0..1000 {
            let reply = s.complete(&request(vec![number_var()])).unwrap();
            let parsed = OptoPrime.parse(&reply.content, &params);
            if parsed.update.is_empty() {
                empty += 1;
                assert!(parsed.terminated || !parsed.problems.is_empty());
            }
            assert!(reply.usage.completion_tokens > 0 || reply.content.is_empty());
        }
        assert!(
            (60..=140).contains(&empty),
            "{empty} empty updates out of 1000"
        );
    }

    #[test]
    fn every_protocol_reads_about_ninety_percent_of_stub_replies() {
        let params = vec![number_param()];
        let protocols: [Arc<dyn Protocol>; 4] = [
            Arc::new(OptoPrime),
            Arc::new(OptoPrimeV2),
            Arc::new(OPROv2),
            Arc::new(GepaReflection),
        ];
        for protocol in protocols {
            let mut s = StubLlm::new(11, protocol.clone());
            let mut empty = 0;
            for _ in 0..500 {
                let reply = s.complete(&request(vec![number_var()])).unwrap().content;
                let parsed = protocol.parse(&reply, &params);
                if parsed.update.is_empty() {
                    empty += 1;
                    assert!(
                        parsed.terminated || !parsed.problems.is_empty(),
                        "{}: {reply:?}",
                        protocol.name()
                    );
                } else {
                    assert!(parsed.update["value"].is_number(), "{reply:?}");
                }
            }
            assert!(
                (25..=75).contains(&empty),
                "{}: {empty} empty updates out of 500",
                protocol.name()
            );
        }
    }

    #[test]
    fn text_mutations_can_pick_up_words_from_feedback() {
        let mut s = StubLlm::new(3, Arc::new(OptoPrime));
        let var = VariableHint {
            name: "spanish_greeting".into(),
            kind: ParamKind::Text,
            value: json!("Hello"),
        };
        let seen_hola = (0..200).any(|_| {
            s.complete(&request(vec![var.clone()]))
                .unwrap()
                .content
                .contains("\"Hola\"")
        });
        assert!(seen_hola);
        assert_eq!(
            quoted_words("say 'Hola' or `Hi`"),
            vec!["Hola".to_string(), "Hi".to_string()]
        );
    }

    #[test]
    fn boxed_llms_delegate() {
        let mut b: Box<dyn Llm> = Box::new(StubLlm::new(
            1,
            std::sync::Arc::new(crate::optimizer::OptoPrime),
        ));
        assert!(b.info().stub);
        let req = ChatRequest {
            messages: vec![crate::llm::Message::new("user", "hi")],
            temperature: None,
            max_tokens: None,
            variables: vec![],
            feedback: String::new(),
            extra: Default::default(),
        };
        assert!(b.complete(&req).is_ok());
        assert_eq!(b.request_fingerprint(&req)["model"], json!(STUB_MODEL));
    }
}
