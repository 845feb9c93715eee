//! What a job's LLM clients spent, counted where every answer passes: calls, calls the
//! response cache answered, tokens the endpoint billed (answers it sent, not cache hits,
//! not the stub), retries and failed calls. Read by the runner however the job ended.

use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value as Json;

use super::{ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, Llm, LlmError, LlmInfo};

/// The counts of one client (the optimizer's or the agent's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spend {
    /// Calls answered, from the endpoint or the cache.
    pub answered: u64,
    /// Of those, answered by the response cache.
    pub cached: u64,
    /// Prompt tokens of the answers the endpoint sent (what it bills).
    pub billed_prompt_tokens: u64,
    /// Completion tokens of the answers the endpoint sent.
    pub billed_completion_tokens: u64,
    /// Failed attempts that were retried (429, 5xx, timeouts, connection errors).
    pub retries: u64,
    /// Calls that failed for good.
    pub failed: u64,
    /// Of the answered calls, embeddings requests (also counted in `cached`, `retries`,
    /// `failed`; their tokens are not in the billed chat tokens).
    pub embedding_calls: u64,
    /// Input tokens of the embeddings the endpoint sent.
    pub billed_embedding_tokens: u64,
}

impl Spend {
    /// The sum of two clients' counts.
    pub fn plus(self, other: Spend) -> Spend {
        Spend {
            answered: self.answered + other.answered,
            cached: self.cached + other.cached,
            billed_prompt_tokens: self.billed_prompt_tokens + other.billed_prompt_tokens,
            billed_completion_tokens: self.billed_completion_tokens
                + other.billed_completion_tokens,
            retries: self.retries + other.retries,
            failed: self.failed + other.failed,
            embedding_calls: self.embedding_calls + other.embedding_calls,
            billed_embedding_tokens: self.billed_embedding_tokens + other.billed_embedding_tokens,
        }
    }
}

/// A shared counter a job reads after its client is gone.
#[derive(Debug, Clone, Default)]
pub struct Tally(Arc<Mutex<Spend>>);

impl Tally {
    /// What was counted so far.
    pub fn spend(&self) -> Spend {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, result: &Result<ChatResponse, LlmError>) {
        let mut s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(r) => {
                s.answered += 1;
                s.retries += u64::from(r.retries);
                s.cached += u64::from(r.cached);
                if let Some(billed) = r.billed {
                    s.billed_prompt_tokens += billed.prompt_tokens;
                    s.billed_completion_tokens += billed.completion_tokens;
                }
            }
            Err(e) => {
                s.failed += 1;
                s.retries += u64::from(e.retries());
            }
        }
    }
}

impl Tally {
    fn record_embedding(&self, result: &Result<EmbedResponse, LlmError>) {
        let mut s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(r) => {
                s.answered += 1;
                s.embedding_calls += 1;
                s.retries += u64::from(r.retries);
                s.cached += u64::from(r.cached);
                s.billed_embedding_tokens += r.billed.unwrap_or(0);
            }
            Err(e) => {
                s.failed += 1;
                s.retries += u64::from(e.retries());
            }
        }
    }
}

/// `inner`, with every answer counted in a [`Tally`].
pub struct Tallied<L: Llm> {
    inner: L,
    tally: Tally,
}

impl<L: Llm> Tallied<L> {
    /// Count `inner`'s answers in `tally`.
    pub fn new(inner: L, tally: Tally) -> Self {
        Self { inner, tally }
    }
}

impl<L: Llm> Llm for Tallied<L> {
    fn info(&self) -> LlmInfo {
        self.inner.info()
    }

    fn complete(&mut self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let result = self.inner.complete(request);
        self.tally.record(&result);
        result
    }

    fn complete_batch(
        &mut self,
        requests: &[ChatRequest],
        threads: usize,
    ) -> Vec<Result<ChatResponse, LlmError>> {
        let results = self.inner.complete_batch(requests, threads);
        for r in &results {
            self.tally.record(r);
        }
        results
    }

    fn request_fingerprint(&self, request: &ChatRequest) -> Json {
        self.inner.request_fingerprint(request)
    }

    fn sent(&self, request: &ChatRequest) -> super::Sent {
        self.inner.sent(request)
    }

    fn redact(&self, text: &str) -> String {
        self.inner.redact(text)
    }

    fn take_warnings(&mut self) -> Vec<String> {
        self.inner.take_warnings()
    }

    fn set_deadline(&mut self, deadline: Option<std::time::Instant>) {
        self.inner.set_deadline(deadline)
    }

    fn embed(&mut self, request: &EmbedRequest) -> Result<EmbedResponse, LlmError> {
        let result = self.inner.embed(request);
        self.tally.record_embedding(&result);
        result
    }

    fn embed_fingerprint(&self, request: &EmbedRequest) -> Json {
        self.inner.embed_fingerprint(request)
    }
}
