//! The agent of dataset tasks: what answers each example with the trained prompt.
//!
//! A job binds its agent to its task (like its evaluation limits), so trainers and the
//! monitor call `Task::evaluate` unchanged. The agent counts its own calls and tokens,
//! apart from the optimizer's, and stops calling after its first error so a dead endpoint
//! does not burn through a whole benchmark.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use super::Example;
use super::text::{expected, input_text, words};
use crate::llm::{ChatRequest, Llm, LlmError, Message, estimate_tokens};

/// The stub agent: a deterministic rule, not a model, so stub runs of dataset tasks can
/// show learning offline.
///
/// It answers an example with its expected answer when the prompt contains the example's
/// `hint` (as whole words, ignoring case) and otherwise with the last word of the input
/// (letters and digits only; `unknown` when there is none), which is almost always wrong.
/// Examples without a hint are never answered right.
#[derive(Debug, Clone, Copy, Default)]
pub struct StubAgent;

impl StubAgent {
    /// The stub's answer to `example` under `prompt`.
    pub fn answer(prompt: &str, example: &Example) -> String {
        let (answer, hint) = expected(example);
        if let Some(hint) = hint {
            let needle = format!(" {} ", words(&hint).join(" "));
            let haystack = format!(" {} ", words(prompt).join(" "));
            if haystack.contains(&needle) {
                return answer;
            }
        }
        words(&input_text(&example.input))
            .pop()
            .unwrap_or_else(|| "unknown".into())
    }

    /// [`StubAgent::answer`] with the token estimates a stub-mode agent counts.
    pub fn reply(prompt: &str, example: &Example) -> Reply {
        let text = Self::answer(prompt, example);
        Reply {
            prompt_tokens: estimate_tokens(prompt) + estimate_tokens(&input_text(&example.input)),
            completion_tokens: estimate_tokens(&text),
            text,
        }
    }
}

/// One answer of the agent and what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The answer.
    pub text: String,
    /// Prompt tokens of the call (the endpoint's usage; estimated for the stub).
    pub prompt_tokens: u64,
    /// Completion tokens of the call.
    pub completion_tokens: u64,
}

/// Who answers: the stub rule, or an LLM (real mode).
pub enum AgentBackend {
    /// [`StubAgent`].
    Stub,
    /// The real client of the job (own response-cache namespace).
    Llm(Box<dyn Llm>),
}

/// What the agent spent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentUsage {
    /// Calls (stub answers included).
    pub calls: u64,
    /// Prompt tokens (estimated for the stub).
    pub prompt_tokens: u64,
    /// Completion tokens (estimated for the stub).
    pub completion_tokens: u64,
}

/// One call of the agent's LLM as it went out and came back (real mode), kept until the
/// job writes it as a transcript.
#[derive(Debug, Clone)]
pub struct AgentExchange {
    /// The agent's call index (its own numbering, apart from the optimizer's).
    pub call: u64,
    /// What was sent.
    pub sent: crate::llm::Sent,
    /// The messages, redacted.
    pub messages: Vec<Message>,
    /// The answer, or the error (`kind: message`).
    pub answer: Result<crate::llm::ChatResponse, String>,
}

struct AgentState {
    backend: AgentBackend,
    usage: AgentUsage,
    /// Exchanges not yet written.
    exchanges: Vec<AgentExchange>,
    failure: Option<LlmError>,
    /// The job's deadline: an error past it is the job timing out, not the agent failing.
    deadline: Option<Instant>,
}

/// A job's agent, shared by the clones of its task.
#[derive(Clone)]
pub struct AgentHandle(Arc<Mutex<AgentState>>);

impl std::fmt::Debug for AgentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentHandle")
            .field("usage", &self.usage())
            .finish_non_exhaustive()
    }
}

impl AgentHandle {
    /// An agent answering with `backend`; `deadline` bounds every request of an LLM.
    pub fn new(mut backend: AgentBackend, deadline: Option<Instant>) -> Self {
        if let AgentBackend::Llm(llm) = &mut backend {
            llm.set_deadline(deadline);
        }
        Self(Arc::new(Mutex::new(AgentState {
            backend,
            usage: AgentUsage::default(),
            exchanges: Vec::new(),
            failure: None,
            deadline,
        })))
    }

    /// The stub agent, counted (a stub-mode job's agent).
    pub fn stub() -> Self {
        Self::new(AgentBackend::Stub, None)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AgentState> {
        // A panic while holding the lock leaves counters that are still meaningful.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the agent has spent so far.
    pub fn usage(&self) -> AgentUsage {
        self.lock().usage
    }

    /// The exchanges since the last call, in call order (real mode; the stub has none).
    pub fn take_exchanges(&self) -> Vec<AgentExchange> {
        std::mem::take(&mut self.lock().exchanges)
    }

    /// The first error of the agent's LLM, if any.
    pub fn failure(&self) -> Option<LlmError> {
        self.lock().failure.clone()
    }

    /// Answer `example` with `prompt` as the system message: messages
    /// `[system: prompt, user: input]`.
    pub fn answer(&self, prompt: &str, example: &Example) -> Result<String, LlmError> {
        self.answer_with(prompt, example, false).map(|r| r.text)
    }

    /// [`AgentHandle::answer`], or with `user_only` one user message
    /// `<prompt>` + blank line + `<input>` (the reference's QA agent of `hf:` tasks).
    pub fn answer_with(
        &self,
        prompt: &str,
        example: &Example,
        user_only: bool,
    ) -> Result<Reply, LlmError> {
        self.answer_all(&[(prompt, example)], user_only, 1)
            .pop()
            .unwrap_or_else(|| unreachable!("one example, one reply"))
    }

    /// Answer every example with its prompt, up to `threads` LLM requests at once, the
    /// replies in order and exactly as one after another would give them: the calls are
    /// numbered in order, and after the first error the later examples get that error (a
    /// dead endpoint is not asked again), whatever came back for them.
    pub fn answer_all(
        &self,
        asks: &[(&str, &Example)],
        user_only: bool,
        threads: usize,
    ) -> Vec<Result<Reply, LlmError>> {
        let mut state = self.lock();
        if let Some(e) = &state.failure {
            return asks.iter().map(|_| Err(e.clone())).collect();
        }
        let first_call = state.usage.calls;
        let mut exchanges = Vec::new();
        let answers: Vec<Result<Reply, LlmError>> = match &mut state.backend {
            AgentBackend::Stub => asks
                .iter()
                .map(|(prompt, ex)| Ok(StubAgent::reply(prompt, ex)))
                .collect(),
            AgentBackend::Llm(llm) => {
                let requests: Vec<ChatRequest> = asks
                    .iter()
                    .map(|(prompt, ex)| {
                        let input = input_text(&ex.input);
                        let messages = if user_only {
                            vec![Message::new("user", format!("{prompt}\n\n{input}"))]
                        } else {
                            vec![Message::new("system", *prompt), Message::new("user", input)]
                        };
                        ChatRequest {
                            messages,
                            temperature: None,
                            max_tokens: None,
                            variables: Vec::new(),
                            feedback: String::new(),
                            extra: Default::default(),
                        }
                    })
                    .collect();
                let results = llm.complete_batch(&requests, threads.max(1));
                for (k, (request, result)) in requests.iter().zip(&results).enumerate() {
                    exchanges.push(AgentExchange {
                        call: first_call + k as u64,
                        sent: llm.sent(request),
                        messages: request
                            .messages
                            .iter()
                            .map(|m| Message::new(&m.role, llm.redact(&m.content)))
                            .collect(),
                        answer: result.clone().map_err(|e| format!("{}: {e}", e.kind())),
                    });
                }
                results
                    .into_iter()
                    .map(|r| {
                        r.map(|r| Reply {
                            text: r.content,
                            prompt_tokens: r.usage.prompt_tokens,
                            completion_tokens: r.usage.completion_tokens,
                        })
                    })
                    .collect()
            }
        };
        // Only the calls that count (up to the first error) are recorded.
        let mut out = Vec::with_capacity(answers.len());
        for (answer, exchange) in answers.into_iter().zip(
            exchanges
                .into_iter()
                .map(Some)
                .chain(std::iter::repeat_with(|| None)),
        ) {
            if state.failure.is_none()
                && let Some(x) = exchange
            {
                state.exchanges.push(x);
            }
            if let Some(e) = &state.failure {
                out.push(Err(e.clone()));
                continue;
            }
            state.usage.calls += 1;
            match answer {
                Ok(reply) => {
                    state.usage.prompt_tokens += reply.prompt_tokens;
                    state.usage.completion_tokens += reply.completion_tokens;
                    out.push(Ok(reply));
                }
                Err(e) => {
                    if state.deadline.is_none_or(|d| Instant::now() < d) {
                        state.failure = Some(e.clone());
                    }
                    out.push(Err(e));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ex(input: &str, answer: serde_json::Value, hint: Option<&str>) -> Example {
        Example {
            input: json!(input),
            info: json!({"answer": answer, "hint": hint}),
        }
    }

    #[test]
    fn the_stub_answers_right_only_when_the_prompt_holds_the_hint() {
        let e = ex(
            "Ann has 3 pens and buys 4. How many pens?",
            json!(7),
            Some("add"),
        );
        assert_eq!(StubAgent::answer("Answer briefly.", &e), "pens");
        assert_eq!(StubAgent::answer("You ADD numbers.", &e), "7");
        // Whole words only: `address` does not contain the hint `add`.
        assert_eq!(StubAgent::answer("address", &e), "pens");
        let multi = ex("Who?", json!("Ada"), Some("Computing History"));
        assert_eq!(StubAgent::answer("computing history", &multi), "Ada");
        assert_eq!(StubAgent::answer("history computing", &multi), "who");
        assert_eq!(
            StubAgent::answer("computing history", &ex("?!", json!("x"), None)),
            "unknown"
        );
    }

    #[test]
    fn the_stub_is_deterministic_and_counted() {
        let e = ex("What is 6 times 7?", json!(42), Some("multiply"));
        let a = AgentHandle::stub();
        let b = AgentHandle::stub();
        for prompt in ["multiply", "guess", "Multiply carefully"] {
            assert_eq!(a.answer(prompt, &e).unwrap(), b.answer(prompt, &e).unwrap());
        }
        let usage = a.usage();
        assert_eq!(usage.calls, 3);
        assert!(usage.prompt_tokens > 0 && usage.completion_tokens > 0);
        assert_eq!(usage, b.usage());
        // Clones share one agent (a job's task clones count together).
        a.clone().answer("x", &e).unwrap();
        assert_eq!(a.usage().calls, 4);
    }
}
