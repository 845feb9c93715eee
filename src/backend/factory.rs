//! The LLM each job gets: the seeded stub in stub mode; in real mode the OpenAI-compatible
//! client behind the response cache, sharing one rate limiter with every other job of the
//! run. It sits above `llm`, `optimizer` and `task` because it joins them: the stub answers
//! in the job's prompt protocol, and a dataset task's agent is built here too.

use std::sync::Arc;

use super::library_stub::LibraryStub;
use super::stub::StubLlm;
use crate::llm::cache::{
    CacheMode, CacheScope, CachedLlm, KeyOwner, ResponseCache, default_cache_dir,
};
use crate::llm::openai::{ClientConfig, OpenAiClient, Secret};
use crate::llm::ratelimit::RateLimiter;
use crate::llm::settings::{LlmSettings, SettingsError};
use crate::llm::{Llm, LlmError, LlmInfo};
use crate::optimizer::Protocol;
use crate::task::agent::AgentBackend;

/// What the stub answers in, in stub mode.
pub enum StubFlavor {
    /// The prompt protocol of a native trainer's optimizer.
    Protocol(Arc<dyn Protocol>),
    /// The formats DSPy, GEPA and other libraries of external trainers parse.
    Libraries,
}

/// Builds each job's LLM; one per run, shared by the workers.
pub struct LlmFactory {
    /// `None` in stub mode.
    settings: Option<LlmSettings>,
    key: Option<Secret>,
    limiter: Option<Arc<RateLimiter>>,
    cache: Option<Arc<ResponseCache>>,
}

impl LlmFactory {
    /// The stub factory (stub mode).
    pub fn stub() -> Self {
        Self {
            settings: None,
            key: None,
            limiter: None,
            cache: None,
        }
    }

    /// A factory for the spec's LLM settings: `None` (stub mode) is the stub; in real mode
    /// the key must be available and the cache directory known.
    pub fn new(
        settings: Option<&LlmSettings>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let Some(settings) = settings else {
            return Ok(Self::stub());
        };
        let settings = settings.clone();
        let key = settings.api_key(env)?;
        crate::llm::openai::chat_completions_url(&settings.base_url)
            .map_err(SettingsError::BaseUrl)?;
        let cache = match settings.cache {
            CacheMode::Off => None,
            mode => {
                let dir = settings
                    .cache_dir
                    .clone()
                    .or_else(default_cache_dir)
                    .ok_or(SettingsError::NoCacheDir)?;
                Some(Arc::new(ResponseCache::new(dir, mode)))
            }
        };
        let limiter = (settings.limits.requests_per_minute.is_some()
            || settings.limits.tokens_per_minute.is_some()
            || settings.limits.max_concurrency.is_some())
        .then(|| Arc::new(RateLimiter::new(settings.limits)));
        Ok(Self {
            settings: Some(settings),
            key,
            limiter,
            cache,
        })
    }

    /// The settings of real mode.
    pub fn settings(&self) -> Option<&LlmSettings> {
        self.settings.as_ref()
    }

    /// Who answers, as recorded before a job runs.
    pub fn info(&self) -> LlmInfo {
        match &self.settings {
            None => StubLlm::info_static(),
            Some(s) => LlmInfo {
                provider: s.provider.clone(),
                model: s.model.clone(),
                base_url: s.base_url.clone(),
                stub: false,
            },
        }
    }

    /// The LLM of one job: seeded by the job seed (stub draws, retry jitter), its cached
    /// answers private to `job_id` unless `llm.cache_scope: seed`. The stub answers in
    /// the job's prompt protocol, or in the formats of the libraries an external trainer
    /// runs.
    pub fn for_job(
        &self,
        job_id: &str,
        seed: i64,
        stub: StubFlavor,
    ) -> Result<Box<dyn Llm>, LlmError> {
        let Some(s) = &self.settings else {
            return Ok(match stub {
                StubFlavor::Protocol(protocol) => Box::new(StubLlm::new(seed, protocol)),
                StubFlavor::Libraries => Box::new(LibraryStub::new(seed)),
            });
        };
        self.client(s, self.owner(job_id, seed, None))
    }

    /// The agent of a dataset-task job: the stub rule in stub mode; in real mode the same
    /// endpoint and model as the optimizer, with its calls numbered and cached in their own
    /// namespace (`agent`) so they never shift or collide with the optimizer's.
    pub fn agent_for_job(&self, job_id: &str, seed: i64) -> Result<AgentBackend, LlmError> {
        match &self.settings {
            None => Ok(AgentBackend::Stub),
            Some(s) => Ok(AgentBackend::Llm(
                self.client(s, self.owner(job_id, seed, Some("agent")))?,
            )),
        }
    }

    fn owner(&self, job_id: &str, seed: i64, namespace: Option<&str>) -> KeyOwner {
        let shared = self
            .settings
            .as_ref()
            .is_some_and(|s| s.cache_scope == CacheScope::Seed);
        KeyOwner {
            job: (!shared).then(|| job_id.to_string()),
            seed,
            namespace: namespace.map(str::to_string),
        }
    }

    fn client(&self, s: &LlmSettings, owner: KeyOwner) -> Result<Box<dyn Llm>, LlmError> {
        let seed = owner.seed;
        let mut config = ClientConfig::new(&s.provider, &s.base_url, &s.model);
        config.api_key = self.key.clone();
        config.temperature = s.temperature;
        config.max_tokens = s.max_tokens;
        config.timeout = s.timeout;
        config.max_retries = s.max_retries;
        config.seed = seed;
        config.embedding_model = s.embedding_model.clone();
        let client = OpenAiClient::new(config, self.limiter.clone())?;
        Ok(match &self.cache {
            Some(cache) => Box::new(CachedLlm::new(client, cache.clone(), owner)),
            None => Box::new(client),
        })
    }
}
