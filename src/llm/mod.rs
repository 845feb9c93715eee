//! The LLM seam: one chat-completion request type and one trait, implemented by the
//! seeded stub (offline, deterministic) and, in real mode, by an OpenAI-compatible client.
//!
//! Real mode is assembled from small pieces so each can be tested alone:
//! [`openai::OpenAiClient`] talks HTTP (typed errors; retries as [`retry`] decides),
//! [`ratelimit::RateLimiter`] is shared by all workers to stay under the provider's
//! per-minute budgets, and [`cache::CachedLlm`] wraps any [`Llm`] with an on-disk,
//! content-addressed response cache (record once, replay offline).

pub mod cache;
/// Also compiled into `tests/real_mode.rs` by path, so runs are tested against it.
#[cfg(test)]
pub mod mock_server;
pub mod openai;
pub mod ratelimit;
pub mod retry;
pub mod settings;
pub mod tally;

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::vocab::ParamKind;

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// Text.
    pub content: String,
}

impl Message {
    /// A message with the given role.
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.to_string(),
            content: content.into(),
        }
    }
}

/// A variable the prompt asks about, in structured form.
///
/// Real clients ignore it; the stub proposer reads it instead of re-parsing the prompt
/// text, so its mutations are well-defined for multi-line code values.
#[derive(Debug, Clone, PartialEq)]
pub struct VariableHint {
    /// Parameter name as used in the reply.
    pub name: String,
    /// Number, text or code.
    pub kind: ParamKind,
    /// Current value.
    pub value: Json,
}

/// A chat-completion request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<Message>,
    /// Sampling temperature, if set.
    pub temperature: Option<f64>,
    /// Reply length limit, if set.
    pub max_tokens: Option<u32>,
    /// Trainable variables of the prompt (structured twin of the prompt text).
    pub variables: Vec<VariableHint>,
    /// The feedback text of the prompt.
    pub feedback: String,
    /// Body fields an outside caller set that the provider must see (`response_format`,
    /// `stop`, `top_p`, …: requests relayed for external trainers); empty for trace-bench's
    /// own requests. They are part of the request's cache fingerprint.
    pub extra: serde_json::Map<String, Json>,
}

/// Token counts of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
}

impl Usage {
    /// Prompt plus completion.
    pub fn total(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

/// A chat-completion answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// The assistant's text.
    pub content: String,
    /// Token counts (estimated for the stub, reported by the endpoint otherwise).
    pub usage: Usage,
    /// Seconds from request to answer (the successful HTTP attempt for real clients;
    /// about zero for a cache hit).
    pub latency_s: f64,
    /// True when the answer came from the response cache, not from the endpoint.
    pub cached: bool,
    /// Failed attempts (429, 5xx, timeouts, connection errors) before this answer.
    pub retries: u32,
    /// False when the endpoint sent no `usage` and the counts were estimated with
    /// [`estimate_tokens`] (always false for the stub), so token totals can be flagged.
    pub usage_reported: bool,
    /// Why the model stopped (`stop`, `length`, …), when the endpoint says.
    pub finish_reason: Option<String>,
    /// What the endpoint billed for this call: its usage when it sent this answer or, for
    /// a call whose own answer lost to one cached first, that own answer's usage; `None`
    /// for cache hits and the stub.
    pub billed: Option<Usage>,
}

impl ChatResponse {
    /// An answer made here, not by an endpoint (the stubs, stub mode's task program): its
    /// tokens estimated from the request's and the answer's text, nothing billed.
    pub fn estimated(request: &ChatRequest, content: String, latency_s: f64) -> Self {
        let prompt: String = request
            .messages
            .iter()
            .map(|m| m.content.as_str())
            .collect();
        Self {
            usage: Usage {
                prompt_tokens: estimate_tokens(&prompt),
                completion_tokens: estimate_tokens(&content),
            },
            content,
            latency_s,
            cached: false,
            retries: 0,
            usage_reported: false,
            finish_reason: Some("stop".into()),
            billed: None,
        }
    }
}

/// What a client really sends for a request: configured overrides applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// The model.
    pub model: String,
    /// The sampling temperature, if any.
    pub temperature: Option<f64>,
    /// The reply length limit, if any.
    pub max_tokens: Option<u32>,
}

/// An embeddings request (`/v1/embeddings`): one text, embedded by `model`, or by the
/// client's embedding model (`llm.embedding_model`, else its chat model) when `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedRequest {
    /// The text to embed.
    pub input: String,
    /// The model to ask, when the caller names one.
    pub model: Option<String>,
}

/// An embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedResponse {
    /// The vector.
    pub vector: Vec<f64>,
    /// The model asked (real endpoints, cache hits); `None` for the stubs.
    pub model: Option<String>,
    /// Input tokens (reported by the endpoint, else estimated; estimated for the stub).
    pub tokens: u64,
    /// Seconds from request to answer.
    pub latency_s: f64,
    /// True when the answer came from the response cache.
    pub cached: bool,
    /// Failed attempts before this answer.
    pub retries: u32,
    /// Tokens the endpoint billed for this call (`None`: cache hits and the stub).
    pub billed: Option<u64>,
}

impl EmbedResponse {
    /// The stubs' answer: [`hash_embedding`] of the input, its tokens estimated.
    pub fn stub(request: &EmbedRequest) -> Self {
        Self {
            vector: hash_embedding(&request.input),
            model: None,
            tokens: estimate_tokens(&request.input),
            latency_s: 0.0,
            cached: false,
            retries: 0,
            billed: None,
        }
    }
}

/// A deterministic unit vector derived from `text` (the stubs' embedding): identical
/// texts get the same vector (distance 0), distinct texts nearly orthogonal ones (about
/// `sqrt(2)` apart), so an epsilon-net over them filters exact duplicates only.
pub fn hash_embedding(text: &str) -> Vec<f64> {
    const DIM: usize = 64;
    // The same vectors as the external trainers' stub `/v1/embeddings`.
    let mut rng = crate::rng::Rng::stream(0, &format!("embedding/{text}"));
    let v: Vec<f64> = (0..DIM).map(|_| rng.gaussian()).collect();
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    v.into_iter().map(|x| x / norm).collect()
}

/// Who answers and how it is recorded in results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LlmInfo {
    /// `stub`, `openai`, `openrouter`, ...
    pub provider: String,
    /// Model name.
    pub model: String,
    /// Endpoint base URL (empty for the stub).
    pub base_url: String,
    /// True for the seeded stub: its calls and tokens are not real model usage.
    pub stub: bool,
}

/// A failed call, typed so the runner can decide what to do (stop the run on bad
/// credentials, record a warning otherwise) and the user gets an actionable message.
///
/// Messages never contain the API key: clients redact it from every server-supplied text
/// before building an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// 401/403: the key is missing, wrong, or lacks access. Stops the whole run.
    #[error("authentication failed (HTTP {status}) at {url}: {message}")]
    Auth {
        /// HTTP status.
        status: u16,
        /// The chat-completions URL.
        url: String,
        /// The endpoint's error message (redacted, shortened).
        message: String,
    },
    /// 400/404/422 and other non-retryable 4xx: the request or the model name is wrong.
    #[error("request rejected (HTTP {status}) at {url}: {message}")]
    BadRequest {
        /// HTTP status.
        status: u16,
        /// The chat-completions URL.
        url: String,
        /// The endpoint's error message (redacted, shortened).
        message: String,
    },
    /// 429 on every attempt.
    #[error("rate limited (HTTP 429) at {url} after {retries} retries: {message}")]
    RateLimited {
        /// The chat-completions URL.
        url: String,
        /// Retries made before giving up.
        retries: u32,
        /// The endpoint's error message (redacted, shortened).
        message: String,
    },
    /// 5xx on every attempt.
    #[error("server error (HTTP {status}) at {url} after {retries} retries: {message}")]
    Server {
        /// HTTP status of the last attempt.
        status: u16,
        /// The chat-completions URL.
        url: String,
        /// Retries made before giving up.
        retries: u32,
        /// The endpoint's error message (redacted, shortened).
        message: String,
    },
    /// No complete answer within the client timeout, on every attempt — or the job's
    /// deadline cut the request short.
    #[error("{}", timeout_text(url, *timeout_ms, *retries, *cut_by_deadline))]
    Timeout {
        /// The chat-completions URL.
        url: String,
        /// The per-attempt timeout.
        timeout_ms: u64,
        /// Retries made before giving up.
        retries: u32,
        /// The job's deadline (job_timeout), not the client timeout, ended the wait.
        cut_by_deadline: bool,
    },
    /// Connection refused, DNS failure, reset, TLS failure ... on every attempt.
    #[error("cannot reach {url} after {retries} retries: {message}")]
    Connection {
        /// The chat-completions URL.
        url: String,
        /// Retries made before giving up.
        retries: u32,
        /// What the network layer said.
        message: String,
    },
    /// A 2xx answer that is not a chat completion (not JSON, no choices, no content).
    #[error("malformed reply from {url}: {message}")]
    Malformed {
        /// The chat-completions URL.
        url: String,
        /// What is wrong, with a short excerpt of the body.
        message: String,
    },
    /// Replay mode and the response cache has no entry for this call.
    #[error(
        "replay mode: no cached response for occurrence {occurrence} of this request in the job with seed {seed} (key {key})"
    )]
    Replay {
        /// The cache key (SHA-256 hex).
        key: String,
        /// Job seed.
        seed: i64,
        /// Which identical request of the job this was (0-based).
        occurrence: u64,
    },
    /// Anything else (invalid configuration, unexpected client error).
    #[error("llm call failed: {0}")]
    Failed(String),
}

impl LlmError {
    /// A short stable name (`auth`, `rate_limited`, ...) for events and result tables.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Auth { .. } => "auth",
            Self::BadRequest { .. } => "bad_request",
            Self::RateLimited { .. } => "rate_limited",
            Self::Server { .. } => "server",
            Self::Timeout { .. } => "timeout",
            Self::Connection { .. } => "connection",
            Self::Malformed { .. } => "malformed",
            Self::Replay { .. } => "replay",
            Self::Failed(_) => "failed",
        }
    }

    /// True when no later call can succeed either, so the whole run must stop early
    /// instead of burning through every job (bad or missing credentials).
    pub fn stops_run(&self) -> bool {
        matches!(self, Self::Auth { .. })
    }

    /// Retries made before the error was returned (0 for errors that are never retried).
    pub fn retries(&self) -> u32 {
        match self {
            Self::RateLimited { retries, .. }
            | Self::Server { retries, .. }
            | Self::Timeout { retries, .. }
            | Self::Connection { retries, .. } => *retries,
            _ => 0,
        }
    }

    /// What the user can do about it, when there is something useful to say.
    pub fn hint(&self) -> Option<String> {
        let text = match self {
            Self::Auth { .. } => {
                "check that the variable named by llm.api_key_env holds a valid key with access to llm.model".to_string()
            }
            Self::BadRequest { status: 404, .. } => "check llm.base_url (the API root, e.g. https://api.openai.com/v1) and llm.model".to_string(),
            Self::BadRequest { .. } => {
                "check llm.model and the request parameters (temperature, max_tokens) against what the endpoint accepts".to_string()
            }
            Self::RateLimited { .. } => {
                "lower llm.requests_per_minute / llm.tokens_per_minute or the number of workers, or raise llm.max_retries".to_string()
            }
            Self::Server { .. } => "the endpoint is failing; retry later or raise llm.max_retries".to_string(),
            Self::Timeout {
                cut_by_deadline: true,
                ..
            } => "raise job_timeout (or --job-timeout) if jobs need longer".to_string(),
            Self::Timeout { .. } => "raise llm.timeout_s, or check whether the server is overloaded".to_string(),
            Self::Connection { url, .. } => format!("is the server at {url} running and reachable?"),
            Self::Malformed { .. } => {
                "is llm.base_url the root of an OpenAI-compatible API (most servers: ending in /v1)?".to_string()
            }
            Self::Replay { .. } => {
                "record the responses first with llm.cache: read_write, or check that model, prompts and seeds match the recorded run".to_string()
            }
            Self::Failed(_) => return None,
        };
        Some(text)
    }
}

/// Anything that answers chat requests.
pub trait Llm: Send {
    /// Provider, model and whether it is the stub.
    fn info(&self) -> LlmInfo;
    /// Answer one request.
    fn complete(&mut self, request: &ChatRequest) -> Result<ChatResponse, LlmError>;

    /// What identifies the answer to `request` for the response cache: everything that
    /// is sent to the endpoint and changes the reply (model, messages, sampling
    /// parameters, endpoint), and nothing that does not (API key, trailing slashes).
    ///
    /// The default covers clients that send the request as is; clients that add
    /// defaults (e.g. a configured temperature) override it with what they really send.
    fn request_fingerprint(&self, request: &ChatRequest) -> Json {
        let info = self.info();
        let mut fingerprint = json!({
            "provider": info.provider,
            "base_url": info.base_url.trim().trim_end_matches('/'),
            "model": info.model,
            "messages": request.messages,
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        });
        if !request.extra.is_empty() {
            fingerprint["extra"] = Json::Object(request.extra.clone());
        }
        fingerprint
    }

    /// What is really sent for `request` (transcripts record this). Clients that apply
    /// configured values (temperature, max_tokens) override it.
    fn sent(&self, request: &ChatRequest) -> Sent {
        Sent {
            model: self.info().model,
            temperature: request.temperature,
            max_tokens: request.max_tokens,
        }
    }

    /// `text` with every secret this client holds replaced by `***REDACTED***`, for
    /// anything that is written to disk (transcripts, warnings). The stub holds none.
    fn redact(&self, text: &str) -> String {
        text.to_string()
    }

    /// Problems that did not fail a call (e.g. a cache file that could not be written),
    /// drained, so the trainer can report them as warnings.
    fn take_warnings(&mut self) -> Vec<String> {
        Vec::new()
    }

    /// The job's hard deadline: no request may wait beyond it (clients that wait bound
    /// their timeouts and backoff sleeps by it).
    fn set_deadline(&mut self, _deadline: Option<std::time::Instant>) {}

    /// Answer several independent requests, up to `threads` at once, the answers in the
    /// requests' order. Each request is the same call — same call index, same cache key —
    /// as if they were sent one after another in that order, so the results do not
    /// depend on `threads`. The default sends them one after another (the stub, whose
    /// seeded stream must be drawn in order); network clients overlap them.
    fn complete_batch(
        &mut self,
        requests: &[ChatRequest],
        _threads: usize,
    ) -> Vec<Result<ChatResponse, LlmError>> {
        requests.iter().map(|r| self.complete(r)).collect()
    }

    /// Embed one text (`/v1/embeddings`). Clients without embeddings say so.
    fn embed(&mut self, _request: &EmbedRequest) -> Result<EmbedResponse, LlmError> {
        Err(LlmError::Failed(format!(
            "{} does not serve embeddings",
            self.info().provider
        )))
    }

    /// What identifies the answer to an embeddings request for the response cache (as
    /// [`Llm::request_fingerprint`] for chat calls).
    fn embed_fingerprint(&self, request: &EmbedRequest) -> Json {
        let info = self.info();
        json!({
            "kind": "embeddings",
            "provider": info.provider,
            "base_url": info.base_url.trim().trim_end_matches('/'),
            "model": request.model.clone().unwrap_or(info.model),
            "input": request.input,
        })
    }
}

/// Lets wrappers such as [`cache::CachedLlm`] hold a `Box<dyn Llm>` chosen at run time.
impl<L: Llm + ?Sized> Llm for Box<L> {
    fn info(&self) -> LlmInfo {
        (**self).info()
    }

    fn complete(&mut self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        (**self).complete(request)
    }

    fn request_fingerprint(&self, request: &ChatRequest) -> Json {
        (**self).request_fingerprint(request)
    }

    fn sent(&self, request: &ChatRequest) -> Sent {
        (**self).sent(request)
    }

    fn redact(&self, text: &str) -> String {
        (**self).redact(text)
    }

    fn take_warnings(&mut self) -> Vec<String> {
        (**self).take_warnings()
    }

    fn set_deadline(&mut self, deadline: Option<std::time::Instant>) {
        (**self).set_deadline(deadline)
    }

    fn complete_batch(
        &mut self,
        requests: &[ChatRequest],
        threads: usize,
    ) -> Vec<Result<ChatResponse, LlmError>> {
        (**self).complete_batch(requests, threads)
    }

    fn embed(&mut self, request: &EmbedRequest) -> Result<EmbedResponse, LlmError> {
        (**self).embed(request)
    }

    fn embed_fingerprint(&self, request: &EmbedRequest) -> Json {
        (**self).embed_fingerprint(request)
    }
}

/// The message of a timeout: the client's limit, or the job's deadline.
fn timeout_text(url: &str, timeout_ms: u64, retries: u32, cut_by_deadline: bool) -> String {
    if cut_by_deadline {
        format!(
            "the request to {url} was cut short by the job's deadline (job_timeout) after {retries} retries"
        )
    } else {
        format!("no answer from {url} within {timeout_ms} ms after {retries} retries")
    }
}

/// A rough token count (4 characters per token), used where no tokenizer is available.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// [`estimate_tokens`] of all message contents of a request.
pub fn estimate_prompt_tokens(messages: &[Message]) -> u64 {
    messages.iter().map(|m| estimate_tokens(&m.content)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_errors() -> Vec<LlmError> {
        let url = "http://localhost:8000/v1/chat/completions".to_string();
        vec![
            LlmError::Auth {
                status: 401,
                url: url.clone(),
                message: "bad key".into(),
            },
            LlmError::BadRequest {
                status: 400,
                url: url.clone(),
                message: "bad".into(),
            },
            LlmError::RateLimited {
                url: url.clone(),
                retries: 3,
                message: "slow down".into(),
            },
            LlmError::Server {
                status: 503,
                url: url.clone(),
                retries: 3,
                message: "down".into(),
            },
            LlmError::Timeout {
                url: url.clone(),
                timeout_ms: 1000,
                retries: 3,
                cut_by_deadline: false,
            },
            LlmError::Connection {
                url: url.clone(),
                retries: 3,
                message: "refused".into(),
            },
            LlmError::Malformed {
                url,
                message: "not JSON".into(),
            },
            LlmError::Replay {
                key: "ab".repeat(32),
                seed: 1,
                occurrence: 0,
            },
            LlmError::Failed("x".into()),
        ]
    }

    #[test]
    fn hash_embeddings_are_unit_vectors_equal_for_equal_texts_only() {
        let d = |a: &[f64], b: &[f64]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        let (a, b) = (hash_embedding("{'x': 1}"), hash_embedding("{'x': 2}"));
        assert!((a.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(d(&a, &hash_embedding("{'x': 1}")), 0.0);
        assert!(
            d(&a, &b) > 0.5,
            "distinct texts are far apart: {}",
            d(&a, &b)
        );
    }

    #[test]
    fn errors_are_one_line_with_kind_and_only_auth_stops_the_run() {
        let errors = all_errors();
        let mut kinds: Vec<&str> = errors.iter().map(LlmError::kind).collect();
        kinds.dedup();
        assert_eq!(kinds.len(), errors.len());
        for e in &errors {
            let text = e.to_string();
            assert!(!text.contains('\n'), "{text}");
            assert_eq!(e.stops_run(), e.kind() == "auth");
            if let Some(h) = e.hint() {
                assert!(!h.contains('\n'));
            }
        }
        assert_eq!(errors[2].retries(), 3);
        assert_eq!(errors[0].retries(), 0);
        assert_eq!(
            errors[5].hint().as_deref(),
            Some(
                "is the server at http://localhost:8000/v1/chat/completions running and reachable?"
            )
        );
    }
}
