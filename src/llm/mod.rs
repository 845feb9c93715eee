//! The LLM seam: one chat-completion request type and one trait, implemented by the
//! seeded stub (offline, deterministic) and, in real mode, by an OpenAI-compatible client.

pub mod stub;

use serde::Serialize;
use serde_json::Value as Json;

use crate::task::ParamKind;

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize)]
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
}

/// Token counts of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
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
    /// Seconds from request to answer.
    pub latency_s: f64,
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

/// A failed call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    /// The endpoint could not be used (network, auth, malformed reply, ...).
    #[error("llm call failed: {0}")]
    Failed(String),
}

/// Anything that answers chat requests.
pub trait Llm: Send {
    /// Provider, model and whether it is the stub.
    fn info(&self) -> LlmInfo;
    /// Answer one request.
    fn complete(&mut self, request: &ChatRequest) -> Result<ChatResponse, LlmError>;
}

/// A rough token count (4 characters per token), used where no tokenizer is available.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}
