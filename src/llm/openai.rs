//! A blocking client for any OpenAI-compatible `/chat/completions` endpoint (OpenAI,
//! OpenRouter, vLLM, Ollama, LiteLLM, llama.cpp ...).
//!
//! Benchmarks run for hours against endpoints that rate-limit, fail and stall, so this
//! client retries what is transient (429, 5xx, timeouts, connection errors) with seeded
//! exponential backoff honouring `Retry-After`, fails fast on what is not (400, 401, 403,
//! 404), and turns every outcome into a typed [`LlmError`] with a short, key-free message.
//!
//! **URL rule.** `base_url` is the API root, e.g. `https://api.openai.com/v1`,
//! `https://openrouter.ai/api/v1`, `http://localhost:8000/v1`; the client appends
//! `/chat/completions`. Trailing slashes are ignored; a bare host (`http://localhost:11434`,
//! no path) gets `/v1` first, since every common compatible server lives there; a URL
//! that already ends in `/chat/completions` is used as is; a query string
//! (`?api-version=...`) is kept at the end. See [`chat_completions_url`].

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Map, Value as Json, json};

use super::ratelimit::{Clock, RateLimiter, SystemClock};
use super::retry::{honours_retry_after, retryable_status};
use super::{
    ChatRequest, ChatResponse, EmbedRequest, EmbedResponse, Llm, LlmError, LlmInfo, Usage,
    estimate_prompt_tokens, estimate_tokens,
};
use crate::provenance::env::REDACTED;
use crate::rng::Rng;

// The retry policy lives in `retry.rs`; still public here, where `ClientConfig` uses it.
pub use super::retry::{Backoff, parse_retry_after};

/// Longest server text quoted in an error message.
const EXCERPT_CHARS: usize = 200;

/// A secret string (an API key): usable, but never printed. `Debug` shows
/// `***REDACTED***`; there is no `Display` and no `Serialize`, so it cannot reach a log
/// line or a file by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Everything needed to talk to one endpoint with one model.
#[derive(Clone)]
pub struct ClientConfig {
    /// `openai`, `openrouter`, `vllm`, `ollama`, ... (recorded, not interpreted).
    pub provider: String,
    /// The API root, see the module docs.
    pub base_url: String,
    /// Model name as the endpoint knows it.
    pub model: String,
    /// Sent as `Authorization: Bearer ...` when present (local servers need none).
    pub api_key: Option<Secret>,
    /// Sampling temperature; when set it overrides the request's.
    pub temperature: Option<f64>,
    /// Reply length limit; when set it overrides the request's.
    pub max_tokens: Option<u32>,
    /// Per-attempt timeout, end to end (connect, send, wait, read).
    pub timeout: Duration,
    /// Retries after the first attempt for 429, 5xx, timeouts and connection errors.
    pub max_retries: u32,
    /// Delays between retries.
    pub backoff: Backoff,
    /// Extra request headers (e.g. OpenRouter's `HTTP-Referer`); values are not printed
    /// by `Debug` since some providers put keys there.
    pub headers: Vec<(String, String)>,
    /// Seed of the jitter stream (the job seed), so runs do not depend on global
    /// randomness.
    pub seed: i64,
    /// The model of embeddings requests that name none (`llm.embedding_model`); `None`:
    /// the chat model.
    pub embedding_model: Option<String>,
}

impl ClientConfig {
    /// A config with defaults: no key, no sampling overrides, 60 s timeout, 3 retries.
    pub fn new(provider: &str, base_url: &str, model: &str) -> Self {
        Self {
            provider: provider.to_string(),
            base_url: base_url.to_string(),
            model: model.to_string(),
            api_key: None,
            temperature: None,
            max_tokens: None,
            timeout: Duration::from_secs(60),
            max_retries: 3,
            backoff: Backoff::default(),
            headers: Vec::new(),
            seed: 0,
            embedding_model: None,
        }
    }
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(n, _)| format!("{n}: {REDACTED}"))
            .collect();
        f.debug_struct("ClientConfig")
            .field("provider", &self.provider)
            .field("base_url", &redact(&self.base_url, self.api_key.as_ref()))
            .field("model", &self.model)
            .field("api_key", &self.api_key)
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("backoff", &self.backoff)
            .field("headers", &headers)
            .field("seed", &self.seed)
            .field("embedding_model", &self.embedding_model)
            .finish()
    }
}

/// Why a `base_url` is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaseUrlError {
    /// Not `http://` or `https://`.
    #[error("base_url `{0}` must start with http:// or https:// (e.g. https://api.openai.com/v1)")]
    Scheme(String),
    /// No host after the scheme.
    #[error("base_url `{0}` has no host")]
    NoHost(String),
}

/// The chat-completions URL for an API root (rule in the module docs), or why
/// `base_url` is unusable.
pub fn chat_completions_url(base_url: &str) -> Result<String, BaseUrlError> {
    let trimmed = base_url.trim();
    let lower = trimmed.to_ascii_lowercase();
    let scheme_len = if lower.starts_with("https://") {
        8
    } else if lower.starts_with("http://") {
        7
    } else {
        return Err(BaseUrlError::Scheme(trimmed.to_string()));
    };
    let (main, query) = match trimmed.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (trimmed, None),
    };
    let main = main.trim_end_matches('/');
    let after_scheme = &main[scheme_len.min(main.len())..];
    let (host, path) = match after_scheme.find('/') {
        Some(i) => (&after_scheme[..i], &after_scheme[i..]),
        None => (after_scheme, ""),
    };
    if host.is_empty() {
        return Err(BaseUrlError::NoHost(trimmed.to_string()));
    }
    let mut url = main.to_string();
    if path.is_empty() {
        url.push_str("/v1/chat/completions");
    } else if !path.ends_with("/chat/completions") {
        url.push_str("/chat/completions");
    }
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        url.push('?');
        url.push_str(q);
    }
    Ok(url)
}

/// Replace the key (if any) in `text`.
fn redact(text: &str, key: Option<&Secret>) -> String {
    match key {
        Some(k) if !k.expose().is_empty() => text.replace(k.expose(), REDACTED),
        _ => text.to_string(),
    }
}

/// At most [`EXCERPT_CHARS`] characters of `text`, whitespace collapsed.
fn excerpt(text: &str) -> String {
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.is_empty() {
        return "(empty body)".to_string();
    }
    let mut out: String = collapsed.chars().take(EXCERPT_CHARS).collect();
    if collapsed.chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    out
}

/// The human message of an error body in the usual shapes (`{"error": {"message"}}`,
/// `{"error": "..."}`, `{"message"}`, `{"detail"}`), else an excerpt of the body.
fn error_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Json>(body) {
        let candidates = [
            v.pointer("/error/message"),
            v.get("error"),
            v.get("message"),
            v.get("detail"),
        ];
        for c in candidates.into_iter().flatten() {
            match c {
                Json::String(s) if !s.trim().is_empty() => return excerpt(s),
                Json::Null | Json::Object(_) | Json::String(_) => {}
                other => return excerpt(&other.to_string()),
            }
        }
    }
    excerpt(body)
}

/// Content and reported usage of a chat-completion body, or what is wrong with it.
/// The text, usage (when reported) and finish reason of a chat-completions reply.
type Completion = (String, Option<Usage>, Option<String>);

fn parse_completion(body: &str) -> Result<Completion, String> {
    let v: Json = serde_json::from_str(body)
        .map_err(|_| format!("the body is not JSON: {}", excerpt(body)))?;
    let first = v
        .get("choices")
        .and_then(Json::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| format!("no `choices` in the reply: {}", excerpt(body)))?;
    let content = match first.pointer("/message/content") {
        Some(Json::String(s)) => s.clone(),
        // Some servers send content as a list of typed parts.
        Some(Json::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Json::as_str))
            .collect(),
        _ => {
            return Err(format!(
                "`choices[0].message.content` is missing or not text: {}",
                excerpt(&first.to_string())
            ));
        }
    };
    let usage = v.get("usage").and_then(|u| {
        Some(Usage {
            prompt_tokens: u.get("prompt_tokens")?.as_u64()?,
            completion_tokens: u.get("completion_tokens")?.as_u64()?,
        })
    });
    let finish_reason = first
        .get("finish_reason")
        .and_then(Json::as_str)
        .map(str::to_string);
    Ok((content, usage, finish_reason))
}

/// The embeddings URL next to a chat-completions URL (`…/chat/completions` →
/// `…/embeddings`, a query kept).
pub fn embeddings_url(chat_url: &str) -> String {
    let (main, query) = match chat_url.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (chat_url, None),
    };
    let base = main.strip_suffix("/chat/completions").unwrap_or(main);
    match query {
        Some(q) => format!("{base}/embeddings?{q}"),
        None => format!("{base}/embeddings"),
    }
}

/// The first vector and the reported input tokens of an embeddings reply.
fn parse_embedding(body: &str) -> Result<(Vec<f64>, Option<u64>), String> {
    let v: Json = serde_json::from_str(body)
        .map_err(|_| format!("the body is not JSON: {}", excerpt(body)))?;
    let vector: Option<Vec<f64>> = v
        .pointer("/data/0/embedding")
        .and_then(Json::as_array)
        .and_then(|a| a.iter().map(Json::as_f64).collect());
    let vector = vector.filter(|v| !v.is_empty()).ok_or_else(|| {
        format!(
            "no `data[0].embedding` numbers in the reply: {}",
            excerpt(body)
        )
    })?;
    let tokens = v
        .pointer("/usage/prompt_tokens")
        .or_else(|| v.pointer("/usage/total_tokens"))
        .and_then(Json::as_u64);
    Ok((vector, tokens))
}

/// Why one HTTP attempt failed.
#[derive(Debug)]
enum Failure {
    Status {
        status: u16,
        retry_after: Option<Duration>,
        message: String,
    },
    Timeout,
    Connection(String),
    Malformed(String),
    Other(String),
}

impl Failure {
    fn retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => retryable_status(*status),
            Self::Timeout | Self::Connection(_) => true,
            Self::Malformed(_) | Self::Other(_) => false,
        }
    }

    fn from_ureq(e: ureq::Error) -> Self {
        use std::io::ErrorKind;
        match e {
            ureq::Error::Timeout(_) => Self::Timeout,
            ureq::Error::Io(io)
                if matches!(io.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) =>
            {
                Self::Timeout
            }
            ureq::Error::Io(io) => Self::Connection(io.to_string()),
            ureq::Error::HostNotFound => Self::Connection("host not found".into()),
            ureq::Error::ConnectionFailed => Self::Connection("connection failed".into()),
            ureq::Error::Tls(m) => Self::Connection(format!("TLS error: {m}")),
            ureq::Error::Protocol(p) => Self::Connection(format!("HTTP protocol error: {p}")),
            other => Self::Other(other.to_string()),
        }
    }
}

/// An [`Llm`] backed by an OpenAI-compatible HTTP endpoint.
#[derive(Clone)]
pub struct OpenAiClient {
    config: ClientConfig,
    url: String,
    agent: ureq::Agent,
    limiter: Option<Arc<RateLimiter>>,
    clock: Arc<dyn Clock>,
    rng: Rng,
    /// The job's hard deadline: attempts are cut short at it and not retried past it.
    deadline: Option<Instant>,
}

impl std::fmt::Debug for OpenAiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiClient")
            .field("config", &self.config)
            .field("url", &self.redact(&self.url))
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl OpenAiClient {
    /// A client for one job. `limiter` is the run-wide rate limiter, if any. Fails only
    /// on an unusable `base_url`.
    pub fn new(config: ClientConfig, limiter: Option<Arc<RateLimiter>>) -> Result<Self, LlmError> {
        let url = chat_completions_url(&config.base_url)
            .map_err(|e| LlmError::Failed(redact(&e.to_string(), config.api_key.as_ref())))?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .user_agent(concat!("trace-bench/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(Self {
            rng: Rng::stream(config.seed, "llm-backoff"),
            config,
            url,
            agent,
            limiter,
            clock: SystemClock::shared(),
            deadline: None,
        })
    }

    /// Use another clock for backoff sleeps (tests: a
    /// [`ManualClock`](super::ratelimit::ManualClock) makes retries instant).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The URL requests go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Time until the job's deadline, if it has one.
    fn time_left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// The JSON body sent for `request` (config overrides applied).
    pub fn body(&self, request: &ChatRequest) -> Json {
        let mut body = Map::new();
        body.insert("model".into(), json!(self.config.model));
        body.insert("messages".into(), json!(request.messages));
        if let Some(t) = self.config.temperature.or(request.temperature) {
            body.insert("temperature".into(), json!(t));
        }
        if let Some(m) = self.config.max_tokens.or(request.max_tokens) {
            body.insert(length_limit_field(&self.config.model).into(), json!(m));
        }
        for (key, value) in &request.extra {
            body.entry(key.clone()).or_insert_with(|| value.clone());
        }
        Json::Object(body)
    }

    /// One HTTP exchange: the parsed answer, or why it failed.
    fn attempt<T>(
        &self,
        url: &str,
        body: &[u8],
        parse: fn(&str) -> Result<T, String>,
    ) -> Result<T, Failure> {
        let mut req = self
            .agent
            .post(url)
            .header("Content-Type", "application/json");
        if let Some(left) = self.time_left() {
            if left.is_zero() {
                return Err(Failure::Timeout);
            }
            let timeout = left.min(self.config.timeout);
            req = req.config().timeout_global(Some(timeout)).build();
        }
        if let Some(key) = &self.config.api_key {
            req = req.header("Authorization", format!("Bearer {}", key.expose()));
        }
        for (name, value) in &self.config.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        let mut resp = req.send(body).map_err(Failure::from_ureq)?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let bytes = resp.body_mut().read_to_vec().map_err(Failure::from_ureq)?;
        let text = String::from_utf8_lossy(&bytes);
        match status {
            200..=299 => parse(&text).map_err(Failure::Malformed),
            _ => Err(Failure::Status {
                status,
                retry_after: retry_after.filter(|_| honours_retry_after(status)),
                message: error_message(&text),
            }),
        }
    }

    /// The JSON body of an embeddings request: the request's model, else
    /// `llm.embedding_model`, else the chat model.
    pub fn embed_body(&self, request: &EmbedRequest) -> Json {
        let model = request
            .model
            .clone()
            .or_else(|| self.config.embedding_model.clone())
            .unwrap_or_else(|| self.config.model.clone());
        json!({"model": model, "input": request.input})
    }

    /// One call with the limiter, retries and backoff: the parsed answer, its latency
    /// and the retries before it. `used` is what an answer spent, for the limiter.
    fn exchange<T>(
        &mut self,
        url: &str,
        bytes: &[u8],
        limiter_estimate: u64,
        parse: fn(&str) -> Result<T, String>,
        used: impl Fn(&T) -> u64,
    ) -> Result<(T, f64, u32), LlmError> {
        let mut retries = 0;
        loop {
            let permit = self.limiter.as_ref().map(|l| l.acquire(limiter_estimate));
            let started = Instant::now();
            let outcome = self.attempt(url, bytes, parse);
            let latency_s = started.elapsed().as_secs_f64();
            match outcome {
                Ok(answer) => {
                    if let (Some(l), Some(p)) = (&self.limiter, permit) {
                        l.record(p, used(&answer));
                    }
                    return Ok((answer, latency_s, retries));
                }
                Err(failure) => {
                    if let (Some(l), Some(p)) = (&self.limiter, permit) {
                        // A rejected request used no tokens; a timed-out one may have.
                        let spent = if matches!(failure, Failure::Timeout) {
                            limiter_estimate
                        } else {
                            0
                        };
                        l.record(p, spent);
                    }
                    if !failure.retryable() || retries >= self.config.max_retries {
                        return Err(self.error(failure, retries));
                    }
                    let retry_after = match failure {
                        Failure::Status { retry_after, .. } => retry_after,
                        _ => None,
                    };
                    let delay = self
                        .config
                        .backoff
                        .wait(retries, retry_after, &mut self.rng);
                    // Waiting past the job's deadline is pointless: the job stops there.
                    if self.time_left().is_some_and(|left| left <= delay) {
                        return Err(self.error(failure, retries));
                    }
                    self.clock.sleep(delay);
                    retries += 1;
                }
            }
        }
    }

    /// The final error for `failure` after `retries` retries; every text is redacted.
    fn error(&self, failure: Failure, retries: u32) -> LlmError {
        let url = self.redact(&self.url);
        match failure {
            Failure::Status {
                status, message, ..
            } => {
                let message = self.redact(&message);
                match status {
                    401 | 403 => LlmError::Auth {
                        status,
                        url,
                        message,
                    },
                    429 => LlmError::RateLimited {
                        url,
                        retries,
                        message,
                    },
                    408 => LlmError::Timeout {
                        url,
                        timeout_ms: self.config.timeout.as_millis() as u64,
                        retries,
                        cut_by_deadline: false,
                    },
                    s if s >= 500 => LlmError::Server {
                        status,
                        url,
                        retries,
                        message,
                    },
                    400..=499 => LlmError::BadRequest {
                        status,
                        url,
                        message,
                    },
                    _ => LlmError::Malformed {
                        url,
                        message: format!("unexpected HTTP status {status}: {message}"),
                    },
                }
            }
            Failure::Timeout => LlmError::Timeout {
                url,
                timeout_ms: self.config.timeout.as_millis() as u64,
                retries,
                // Within a few ms of the deadline: the deadline, not the client, ended it.
                cut_by_deadline: self
                    .time_left()
                    .is_some_and(|left| left < Duration::from_millis(50)),
            },
            Failure::Connection(m) => LlmError::Connection {
                url,
                retries,
                message: self.redact(&m),
            },
            Failure::Malformed(m) => LlmError::Malformed {
                url,
                message: self.redact(&m),
            },
            Failure::Other(m) => LlmError::Failed(self.redact(&format!("{url}: {m}"))),
        }
    }
}

impl Llm for OpenAiClient {
    fn info(&self) -> LlmInfo {
        LlmInfo {
            provider: self.config.provider.clone(),
            model: self.config.model.clone(),
            base_url: self.redact(self.config.base_url.trim()),
            stub: false,
        }
    }

    fn complete(&mut self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let body = self.body(request);
        let bytes = serde_json::to_vec(&body)
            .map_err(|e| LlmError::Failed(format!("cannot encode the request: {e}")))?;
        let prompt_estimate = estimate_prompt_tokens(&request.messages);
        let limiter_estimate = prompt_estimate
            + body
                .get(length_limit_field(&self.config.model))
                .and_then(Json::as_u64)
                .unwrap_or(0);
        let url = self.url.clone();
        let (answer, latency_s, retries) = self.exchange(
            &url,
            &bytes,
            limiter_estimate,
            parse_completion,
            |(content, usage, _)| {
                usage.map_or(prompt_estimate + estimate_tokens(content), |u| u.total())
            },
        )?;
        let (content, usage, finish_reason) = answer;
        // A model that echoes the key must not carry it into caches or transcripts.
        let content = self.redact(&content);
        let usage_reported = usage.is_some();
        let usage = usage.unwrap_or(Usage {
            prompt_tokens: prompt_estimate,
            completion_tokens: estimate_tokens(&content),
        });
        Ok(ChatResponse {
            content,
            usage,
            latency_s,
            cached: false,
            retries,
            usage_reported,
            finish_reason,
            billed: Some(usage),
        })
    }

    /// `POST /v1/embeddings` through the same limiter, retries and deadline as chat calls.
    fn embed(&mut self, request: &EmbedRequest) -> Result<EmbedResponse, LlmError> {
        let body = self.embed_body(request);
        let bytes = serde_json::to_vec(&body)
            .map_err(|e| LlmError::Failed(format!("cannot encode the request: {e}")))?;
        let estimate = estimate_tokens(&request.input);
        let url = embeddings_url(&self.url);
        let ((vector, tokens), latency_s, retries) =
            self.exchange(&url, &bytes, estimate, parse_embedding, |(_, t)| {
                t.unwrap_or(estimate)
            })?;
        let tokens = tokens.unwrap_or(estimate);
        Ok(EmbedResponse {
            vector,
            model: body.get("model").and_then(Json::as_str).map(str::to_string),
            tokens,
            latency_s,
            cached: false,
            retries,
            billed: Some(tokens),
        })
    }

    fn embed_fingerprint(&self, request: &EmbedRequest) -> Json {
        json!({
            "endpoint": self.redact(&embeddings_url(&self.url)),
            "body": self.embed_body(request),
        })
    }

    fn request_fingerprint(&self, request: &ChatRequest) -> Json {
        json!({
            "endpoint": self.redact(&self.url),
            "body": self.body(request),
        })
    }

    /// The configured temperature and max_tokens win over the request's (as in `body`).
    fn sent(&self, request: &ChatRequest) -> super::Sent {
        super::Sent {
            model: self.config.model.clone(),
            temperature: self.config.temperature.or(request.temperature),
            max_tokens: self.config.max_tokens.or(request.max_tokens),
        }
    }

    fn redact(&self, text: &str) -> String {
        redact(text, self.config.api_key.as_ref())
    }

    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }

    /// Up to `threads` requests in flight, each on a copy of this client (one HTTP agent
    /// pool, the shared rate limiter, the same deadline); the answers in request order.
    fn complete_batch(
        &mut self,
        requests: &[ChatRequest],
        threads: usize,
    ) -> Vec<Result<ChatResponse, LlmError>> {
        if threads.min(requests.len()) <= 1 {
            return requests.iter().map(|r| self.complete(r)).collect();
        }
        let client = &*self;
        crate::par::map_ordered(
            requests,
            threads,
            |worker| {
                let mut copy = client.clone();
                // Only the retry jitter draws from it: timing, never an answer.
                copy.rng = Rng::stream(client.config.seed, &format!("batch-worker-{worker}"));
                copy
            },
            |copy, request| copy.complete(request),
        )
    }
}

/// The body field that limits the reply length. OpenAI's reasoning models (o1, o3, o4,
/// gpt-5 families) reject `max_tokens` and want `max_completion_tokens`; everything else,
/// including most OpenAI-compatible servers, takes `max_tokens`.
fn length_limit_field(model: &str) -> &'static str {
    let name = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    let reasoning = ["o1", "o3", "o4"]
        .iter()
        .any(|p| name == *p || name.starts_with(&format!("{p}-")))
        || name.starts_with("gpt-5");
    if reasoning {
        "max_completion_tokens"
    } else {
        "max_tokens"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Message;
    use crate::llm::mock_server::{MockServer, ScriptedResponse as R};
    use crate::llm::ratelimit::{ManualClock, RateLimits};

    const KEY: &str = "sk-test-SECRET-123";

    fn request() -> ChatRequest {
        ChatRequest {
            messages: vec![
                Message::new("system", "You optimize parameters."),
                Message::new("user", "Improve x."),
            ],
            temperature: Some(0.2),
            max_tokens: Some(64),
            variables: vec![],
            feedback: String::new(),
            extra: Default::default(),
        }
    }

    fn client(server: &MockServer) -> (OpenAiClient, Arc<ManualClock>) {
        let mut config = ClientConfig::new("openai", &server.base_url(), "gpt-test");
        config.api_key = Some(Secret::new(KEY));
        config.max_retries = 2;
        config.timeout = Duration::from_secs(5);
        config.seed = 7;
        client_with(config)
    }

    fn client_with(config: ClientConfig) -> (OpenAiClient, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        let c = OpenAiClient::new(config, None)
            .unwrap()
            .with_clock(clock.clone());
        (c, clock)
    }

    #[test]
    fn embeddings_go_to_the_embeddings_url_with_the_embedding_model_and_retry() {
        let server = MockServer::start(vec![
            R::error(503, "busy"),
            R::embedding(&[0.6, 0.8], 3),
            R::raw(200, "{}"),
        ])
        .unwrap();
        let mut config = ClientConfig::new("openai", &server.base_url(), "chat-model");
        config.embedding_model = Some("embed-model".into());
        let (mut c, clock) = client_with(config);
        let request = EmbedRequest {
            input: "hello".into(),
            model: None,
        };
        let r = c.embed(&request).unwrap();
        assert_eq!(r.vector, vec![0.6, 0.8]);
        assert_eq!((r.tokens, r.retries, r.billed), (3, 1, Some(3)));
        assert_eq!(clock.sleeps().len(), 1, "backed off once");
        let seen = server.requests();
        assert_eq!(seen[1].path, "/v1/embeddings");
        assert_eq!(
            seen[1].json().unwrap(),
            json!({"model": "embed-model", "input": "hello"})
        );
        // A named model wins; a reply without vectors is malformed.
        let named = EmbedRequest {
            model: Some("other".into()),
            ..request
        };
        assert_eq!(c.embed_body(&named)["model"], "other");
        assert_eq!(c.embed(&named).unwrap_err().kind(), "malformed");
        assert_eq!(
            embeddings_url("http://h/v1/chat/completions?x=1"),
            "http://h/v1/embeddings?x=1"
        );
    }

    #[test]
    fn success_parses_content_and_usage_and_sends_bearer_and_body() {
        let server = MockServer::start(vec![R::chat("x = 3", Some((12, 5)))]).unwrap();
        let (mut c, clock) = client(&server);
        let r = c.complete(&request()).unwrap();
        assert_eq!(r.content, "x = 3");
        assert_eq!(
            r.usage,
            Usage {
                prompt_tokens: 12,
                completion_tokens: 5
            }
        );
        assert!(r.usage_reported && !r.cached);
        assert_eq!(r.retries, 0);
        assert!(r.latency_s > 0.0);
        assert!(clock.sleeps().is_empty());
        let seen = server.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].method, "POST");
        assert_eq!(seen[0].path, "/v1/chat/completions");
        assert_eq!(
            seen[0].header("authorization"),
            Some("Bearer sk-test-SECRET-123")
        );
        assert_eq!(
            seen[0].json().unwrap(),
            json!({
                "model": "gpt-test",
                "messages": [
                    {"role": "system", "content": "You optimize parameters."},
                    {"role": "user", "content": "Improve x."}
                ],
                "temperature": 0.2,
                "max_tokens": 64
            })
        );
        let info = c.info();
        assert_eq!(
            (info.provider.as_str(), info.model.as_str(), info.stub),
            ("openai", "gpt-test", false)
        );
    }

    #[test]
    fn no_key_sends_no_auth_header_and_config_overrides_sampling() {
        let server = MockServer::start(vec![R::chat("ok", Some((1, 1)))]).unwrap();
        let mut config = ClientConfig::new("ollama", &server.base_url(), "llama");
        config.temperature = Some(0.0);
        config.max_tokens = Some(10);
        config.headers = vec![("X-Title".into(), "trace-bench".into())];
        let (mut c, _) = client_with(config);
        let mut req = request();
        req.temperature = None;
        c.complete(&req).unwrap();
        let seen = &server.requests()[0];
        assert_eq!(seen.header("authorization"), None);
        assert_eq!(seen.header("x-title"), Some("trace-bench"));
        let body = seen.json().unwrap();
        assert_eq!(body["temperature"], json!(0.0));
        assert_eq!(body["max_tokens"], json!(10));
    }

    #[test]
    fn the_mock_answers_its_default_once_the_script_is_exhausted() {
        let server = MockServer::start(vec![R::chat("first", Some((1, 1)))]).unwrap();
        server.set_default(R::chat("again", Some((2, 2))));
        let (mut c, _) = client(&server);
        let replies: Vec<String> = (0..3)
            .map(|_| c.complete(&request()).unwrap().content)
            .collect();
        assert_eq!(replies, ["first", "again", "again"]);
    }

    #[test]
    fn the_job_deadline_cuts_a_slow_answer_short_and_stops_retries() {
        let slow = R::chat("late", Some((1, 1))).with_delay(Duration::from_secs(5));
        let server = MockServer::start(vec![slow.clone(), slow]).unwrap();
        let (mut c, _) = client(&server);
        c.set_deadline(Some(Instant::now() + Duration::from_millis(300)));
        let started = Instant::now();
        let e = c.complete(&request()).unwrap_err();
        assert_eq!(e.kind(), "timeout");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        // It says what cut it, and what to raise.
        assert!(
            e.to_string()
                .contains("cut short by the job's deadline (job_timeout)"),
            "{e}"
        );
        assert!(e.hint().unwrap().contains("job_timeout"), "{e:?}");
        // Past the deadline nothing is sent at all.
        let before = server.requests().len();
        assert_eq!(c.complete(&request()).unwrap_err().kind(), "timeout");
        assert_eq!(server.requests().len(), before);
    }

    #[test]
    fn reasoning_models_get_max_completion_tokens() {
        for model in [
            "o1",
            "o3-mini",
            "o4-mini-2025-04-16",
            "openai/gpt-5",
            "GPT-5-nano",
        ] {
            assert_eq!(
                length_limit_field(model),
                "max_completion_tokens",
                "{model}"
            );
        }
        for model in [
            "gpt-4o-mini",
            "llama3.1",
            "Qwen/Qwen2.5-7B",
            "omni-1",
            "o1x",
        ] {
            assert_eq!(length_limit_field(model), "max_tokens", "{model}");
        }
        let server = MockServer::start(vec![R::chat("ok", Some((1, 1)))]).unwrap();
        let mut config = ClientConfig::new("openai", &server.base_url(), "o3-mini");
        config.max_tokens = Some(99);
        let (mut c, _) = client_with(config);
        c.complete(&request()).unwrap();
        let body = server.requests()[0].json().unwrap();
        assert_eq!(body["max_completion_tokens"], json!(99));
        assert!(body.get("max_tokens").is_none());
    }

    #[test]
    fn rate_limited_then_success_waits_retry_after() {
        let server = MockServer::start(vec![
            R::error(429, "slow down").with_header("Retry-After", "1"),
            R::chat("done", Some((3, 1))),
        ])
        .unwrap();
        let (mut c, clock) = client(&server);
        let r = c.complete(&request()).unwrap();
        assert_eq!(r.content, "done");
        assert_eq!(r.retries, 1);
        assert_eq!(clock.sleeps().len(), 1);
        assert!(
            clock.slept() >= Duration::from_secs(1),
            "{:?}",
            clock.sleeps()
        );
        assert_eq!(server.requests().len(), 2);
    }

    #[test]
    fn server_error_then_success_backs_off_with_jitter() {
        let server =
            MockServer::start(vec![R::error(500, "boom"), R::chat("ok", Some((1, 1)))]).unwrap();
        let (mut c, clock) = client(&server);
        let r = c.complete(&request()).unwrap();
        assert_eq!((r.content.as_str(), r.retries), ("ok", 1));
        let slept = clock.slept();
        assert!(
            slept >= Duration::from_millis(500) && slept <= Duration::from_millis(625),
            "{slept:?}"
        );
    }

    #[test]
    fn retries_exhausted_give_typed_errors() {
        let server = MockServer::start(vec![
            R::error(503, "overloaded"),
            R::error(502, "bad gateway"),
            R::error(500, "still down"),
        ])
        .unwrap();
        let (mut c, clock) = client(&server);
        let e = c.complete(&request()).unwrap_err();
        assert!(
            matches!(&e, LlmError::Server { status: 500, retries: 2, message, .. } if message == "still down"),
            "{e:?}"
        );
        assert_eq!(e.retries(), 2);
        assert_eq!(clock.sleeps().len(), 2);
        assert_eq!(server.requests().len(), 3);

        // 429 forever: RateLimited, and a huge Retry-After is capped.
        let server = MockServer::start(vec![
            R::error(429, "quota").with_header("Retry-After", "100000"),
            R::error(429, "quota"),
            R::error(429, "quota"),
        ])
        .unwrap();
        let (mut c, clock) = client(&server);
        let e = c.complete(&request()).unwrap_err();
        assert!(
            matches!(e, LlmError::RateLimited { retries: 2, .. }),
            "{e:?}"
        );
        assert_eq!(clock.sleeps()[0], Backoff::default().retry_after_cap);
        assert!(e.hint().unwrap().contains("requests_per_minute"));
        assert!(!e.stops_run());
    }

    #[test]
    fn slow_server_times_out_after_retries() {
        let slow = Duration::from_millis(400);
        let server = MockServer::start(vec![
            R::chat("late", None).with_delay(slow),
            R::chat("late", None).with_delay(slow),
        ])
        .unwrap();
        let mut config = ClientConfig::new("vllm", &server.base_url(), "m");
        config.timeout = Duration::from_millis(100);
        config.max_retries = 1;
        let (mut c, clock) = client_with(config);
        let e = c.complete(&request()).unwrap_err();
        assert!(
            matches!(
                e,
                LlmError::Timeout {
                    timeout_ms: 100,
                    retries: 1,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(clock.sleeps().len(), 1);
        assert_eq!(server.requests().len(), 2);
    }

    #[test]
    fn malformed_bodies_are_malformed_errors_without_retry() {
        for body in [
            R::json(200, &json!({"foo": 1})),
            R::raw(200, "<html>not json</html>"),
            R::json(200, &json!({"choices": []})),
            R::json(
                200,
                &json!({"choices": [{"message": {"role": "assistant", "content": null}}]}),
            ),
        ] {
            let server = MockServer::start(vec![body.clone()]).unwrap();
            let (mut c, _) = client(&server);
            let e = c.complete(&request()).unwrap_err();
            assert!(matches!(e, LlmError::Malformed { .. }), "{body:?} -> {e:?}");
            assert_eq!(server.requests().len(), 1);
            assert!(e.hint().is_some());
        }
    }

    #[test]
    fn missing_usage_is_estimated_and_flagged() {
        let server = MockServer::start(vec![R::chat("abcdefgh", None)]).unwrap();
        let (mut c, _) = client(&server);
        let r = c.complete(&request()).unwrap();
        assert!(!r.usage_reported);
        assert_eq!(r.usage.completion_tokens, 2);
        assert_eq!(
            r.usage.prompt_tokens,
            estimate_prompt_tokens(&request().messages)
        );
        // Content given as typed parts is joined.
        let parts = json!({"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}}]});
        let server = MockServer::start(vec![R::json(200, &parts)]).unwrap();
        let (mut c, _) = client(&server);
        assert_eq!(c.complete(&request()).unwrap().content, "ab");
    }

    #[test]
    fn connection_refused_is_a_connection_error_after_retries() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let mut config = ClientConfig::new("vllm", &format!("http://{addr}/v1/"), "m");
        config.max_retries = 2;
        let (mut c, clock) = client_with(config);
        let e = c.complete(&request()).unwrap_err();
        assert!(
            matches!(e, LlmError::Connection { retries: 2, .. }),
            "{e:?}"
        );
        assert_eq!(clock.sleeps().len(), 2);
        let hint = e.hint().unwrap();
        assert!(
            hint.contains(&format!("http://{addr}/v1/chat/completions")),
            "{hint}"
        );
    }

    #[test]
    fn unauthorized_stops_the_run_without_retry() {
        let server = MockServer::start(vec![
            R::error(401, "Incorrect API key provided"),
            R::chat("never", None),
        ])
        .unwrap();
        let (mut c, clock) = client(&server);
        let e = c.complete(&request()).unwrap_err();
        assert!(matches!(e, LlmError::Auth { status: 401, .. }), "{e:?}");
        assert!(e.stops_run());
        assert!(e.hint().unwrap().contains("llm.api_key_env"));
        assert_eq!(server.requests().len(), 1);
        assert!(clock.sleeps().is_empty());
    }

    #[test]
    fn bad_request_carries_the_server_message() {
        let server = MockServer::start(vec![
            R::error(400, "max_tokens is too large: 99999999"),
            R::json(404, &json!({"detail": "Not Found"})),
            R::json(422, &json!({"error": "model 'nope' not found"})),
        ])
        .unwrap();
        let (mut c, _) = client(&server);
        let e = c.complete(&request()).unwrap_err();
        match &e {
            LlmError::BadRequest {
                status, message, ..
            } => {
                assert_eq!(*status, 400);
                assert_eq!(message, "max_tokens is too large: 99999999");
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("max_tokens is too large"));
        let e = c.complete(&request()).unwrap_err();
        assert!(
            matches!(&e, LlmError::BadRequest { status: 404, message, .. } if message == "Not Found")
        );
        assert!(e.hint().unwrap().contains("base_url"));
        let e = c.complete(&request()).unwrap_err();
        assert!(
            matches!(&e, LlmError::BadRequest { status: 422, message, .. } if message == "model 'nope' not found")
        );
        assert_eq!(server.requests().len(), 3);
    }

    #[test]
    fn the_key_never_appears_in_errors_or_debug_output() {
        let echo = format!("Incorrect API key provided: {KEY}");
        let server = MockServer::start(vec![
            R::error(401, &echo),
            R::error(400, &echo),
            R::error(500, &echo),
            R::error(500, &echo),
            R::error(500, &echo),
            R::raw(200, &echo),
            R::chat(&format!("x = 1 # my key is {KEY}"), Some((1, 1))),
        ])
        .unwrap();
        let (mut c, _) = client(&server);
        let mut texts = vec![
            format!("{c:?}"),
            format!("{:?}", c.config),
            format!("{:?}", c.info()),
        ];
        for _ in 0..4 {
            let e = c.complete(&request()).unwrap_err();
            texts.push(e.to_string());
            texts.push(format!("{e:?}"));
            texts.extend(e.hint());
        }
        let echoed = c.complete(&request()).unwrap();
        assert_eq!(echoed.content, format!("x = 1 # my key is {REDACTED}"));
        assert_eq!(c.redact(&format!("k={KEY}")), format!("k={REDACTED}"));
        for t in &texts {
            assert!(!t.contains(KEY), "key leaked in: {t}");
            assert!(!t.contains("SECRET-123"), "key leaked in: {t}");
        }
        assert!(texts.iter().any(|t| t.contains(REDACTED)));
        assert_eq!(format!("{:?}", Secret::new(KEY)), REDACTED);
        // A key inside the URL (some providers use ?key=) is redacted too.
        let mut config = ClientConfig::new(
            "gemini",
            "https://example.invalid/v1?key=sk-test-SECRET-123",
            "m",
        );
        config.api_key = Some(Secret::new(KEY));
        let c = OpenAiClient::new(config, None).unwrap();
        assert!(!format!("{c:?}").contains(KEY));
        assert!(!c.info().base_url.contains(KEY));
    }

    #[test]
    fn shared_rate_limiter_is_consulted_per_call() {
        let server =
            MockServer::start(vec![R::chat("a", Some((1, 1))), R::chat("b", Some((1, 1)))])
                .unwrap();
        let limiter_clock = Arc::new(ManualClock::new());
        let limiter = Arc::new(RateLimiter::with_clock(
            RateLimits {
                requests_per_minute: Some(1),
                tokens_per_minute: None,
                max_concurrency: None,
            },
            limiter_clock.clone(),
        ));
        let c1 = OpenAiClient::new(
            ClientConfig::new("x", &server.base_url(), "m"),
            Some(limiter.clone()),
        )
        .unwrap();
        let c2 = OpenAiClient::new(
            ClientConfig::new("x", &server.base_url(), "m"),
            Some(limiter),
        )
        .unwrap();
        for mut c in [c1, c2] {
            c.complete(&request()).unwrap();
        }
        assert_eq!(limiter_clock.slept(), crate::llm::ratelimit::WINDOW);
    }

    #[test]
    fn url_join_rule() {
        let ok = |b: &str| chat_completions_url(b).unwrap();
        let want = "https://api.openai.com/v1/chat/completions";
        assert_eq!(ok("https://api.openai.com/v1"), want);
        assert_eq!(ok("https://api.openai.com/v1/"), want);
        assert_eq!(ok(" https://api.openai.com/v1// "), want);
        assert_eq!(ok("https://api.openai.com"), want);
        assert_eq!(ok("https://api.openai.com/"), want);
        assert_eq!(ok("https://api.openai.com/v1/chat/completions"), want);
        assert_eq!(
            ok("https://openrouter.ai/api/v1"),
            "https://openrouter.ai/api/v1/chat/completions"
        );
        assert_eq!(
            ok("http://localhost:11434"),
            "http://localhost:11434/v1/chat/completions"
        );
        assert_eq!(
            ok("https://x.example/openai/deployments/d?api-version=2024-06-01"),
            "https://x.example/openai/deployments/d/chat/completions?api-version=2024-06-01"
        );
        assert!(chat_completions_url("api.openai.com/v1").is_err());
        assert!(chat_completions_url("http:///v1").is_err());
        assert!(chat_completions_url("").is_err());
    }
}
