//! The config's `llm` block, typed: endpoint, model, key variable, sampling overrides,
//! limits, cache and prices, with the reference's environment fallbacks. What a job gets
//! from it is built by `backend::LlmFactory`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value as Json;

use super::cache::{CacheMode, CacheScope};
use super::openai::Secret;
use super::ratelimit::RateLimits;
use crate::vocab::Kwargs;

/// Where an API root comes from when the config gives none.
const BASE_URL_VARS: &[&str] = &["OPENAI_BASE_URL", "OPENAI_API_BASE"];
/// The reference's model variables, read when the config names no model.
const MODEL_VARS: &[&str] = &["TRACE_LITELLM_MODEL", "TRACE_CUSTOMLLM_MODEL"];
/// Defaults matching the OpenAI API.
const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
const DEFAULT_MODEL: &str = "gpt-4o-mini";
const DEFAULT_KEY_VAR: &str = "OPENAI_API_KEY";
/// OpenRouter's API root and key variable (`provider: openrouter`).
const OPENROUTER_BASE_URL: &str = "https://openrouter.ai/api/v1";
const OPENROUTER_KEY_VAR: &str = "OPENROUTER_API_KEY";

/// The provider an endpoint belongs to, from its host (`openai` for anything unknown:
/// the protocol is OpenAI's).
fn provider_of(base_url: &str) -> &'static str {
    let host = base_url
        .split("://")
        .nth(1)
        .unwrap_or(base_url)
        .split(['/', ':', '?'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let is = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
    if is("openrouter.ai") {
        "openrouter"
    } else {
        "openai"
    }
}

/// Why the `llm` block cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    /// A value of the wrong type or range.
    #[error("llm.{key} must be {wanted}, found {found}")]
    Wrong {
        /// The key under `llm`.
        key: &'static str,
        /// What it must be.
        wanted: &'static str,
        /// What it is (as JSON).
        found: String,
    },
    /// `llm.cache` is not a cache mode.
    #[error("llm.cache must be one of off, read_write, replay; found {found}")]
    Cache {
        /// What it is.
        found: String,
    },
    /// `llm.prices` is not a table of `model: {prompt_per_million, completion_per_million}`.
    #[error("llm.prices.{model}: {problem}")]
    Prices {
        /// The model entry (`*` for the table itself).
        model: String,
        /// What is wrong.
        problem: String,
    },
    /// Real mode without a key in the environment.
    #[error(
        "mode `real` needs an API key: set the environment variable `{var}` (named by llm.api_key_env)"
    )]
    MissingKey {
        /// The variable `llm.api_key_env` names.
        var: String,
    },
    /// `llm.base_url` is not an http(s) URL with a host.
    #[error("llm.base_url: {0}")]
    BaseUrl(crate::llm::openai::BaseUrlError),
    /// The response cache needs a directory and none is known.
    #[error(
        "no user cache directory: set llm.cache_dir, TRACE_BENCH_CACHE_DIR or HOME (or llm.cache: off)"
    )]
    NoCacheDir,
}

impl SettingsError {
    fn wrong(key: &'static str, wanted: &'static str, found: &Json) -> Self {
        Self::Wrong {
            key,
            wanted,
            found: found.to_string(),
        }
    }
}

/// The `llm` block with defaults and environment fallbacks applied.
#[derive(Debug, Clone)]
pub struct LlmSettings {
    /// `openai`, `openrouter`, `vllm`, `ollama`, ... (recorded in results).
    pub provider: String,
    /// API root, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Model name sent to the endpoint.
    pub model: String,
    /// Name of the environment variable holding the key; empty: the server needs none.
    pub api_key_env: String,
    inline_key: Option<Secret>,
    /// Sampling temperature for every call, if set.
    pub temperature: Option<f64>,
    /// Reply length limit for every call, if set.
    pub max_tokens: Option<u32>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Retries on 429, 5xx, timeouts and connection errors.
    pub max_retries: u32,
    /// Shared request and token budgets.
    pub limits: RateLimits,
    /// Response cache mode.
    pub cache: CacheMode,
    /// Cache directory (user-level by default).
    pub cache_dir: Option<PathBuf>,
    /// Which jobs may share a cached answer (`llm.cache_scope`; default: none).
    pub cache_scope: CacheScope,
    /// USD per million prompt tokens.
    pub price_prompt: Option<f64>,
    /// USD per million completion tokens.
    pub price_completion: Option<f64>,
    /// The model of embeddings requests (`llm.embedding_model`); `None`: the chat model.
    pub embedding_model: Option<String>,
}

impl LlmSettings {
    /// Read the block; `env` looks up environment variables (injected for tests).
    pub fn from_config(
        llm: &Kwargs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let text = |key: &str| llm.get(key).and_then(Json::as_str).map(str::to_string);
        let from_env = |vars: &[&str]| vars.iter().find_map(|v| env(v).filter(|s| !s.is_empty()));
        let number = |key: &'static str| -> Result<Option<f64>, SettingsError> {
            match llm.get(key) {
                None | Some(Json::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .map(Some)
                    .ok_or_else(|| SettingsError::wrong(key, "a non-negative number", v)),
            }
        };
        let count = |key: &'static str| -> Result<Option<u64>, SettingsError> {
            Ok(number(key)?.map(|x| x as u64))
        };
        for key in [
            "provider",
            "base_url",
            "api_base",
            "model",
            "api_key_env",
            "api_key",
            "cache_dir",
            "embedding_model",
        ] {
            if let Some(v) = llm.get(key).filter(|v| !v.is_string() && !v.is_null()) {
                return Err(SettingsError::wrong(key, "a string", v));
            }
        }
        // YAML 1.1 (PyYAML, and our loader) reads a bare `off` as `false`: take it as meant.
        let cache = match llm.get("cache") {
            None | Some(Json::Null) => CacheMode::default(),
            Some(Json::Bool(false)) => CacheMode::Off,
            Some(Json::String(s)) => s.parse().map_err(|_| SettingsError::Cache {
                found: format!("`{s}`"),
            })?,
            Some(v) => {
                return Err(SettingsError::Cache {
                    found: v.to_string(),
                });
            }
        };
        // `provider: openrouter` alone means OpenRouter's endpoint and key variable; without
        // a provider, the endpoint's host names it (recorded in every artifact).
        let openrouter = text("provider").is_some_and(|p| p.eq_ignore_ascii_case("openrouter"));
        let base_url = text("base_url")
            .or_else(|| text("api_base"))
            .unwrap_or_else(|| {
                if openrouter {
                    OPENROUTER_BASE_URL.into()
                } else {
                    from_env(BASE_URL_VARS).unwrap_or_else(|| DEFAULT_BASE_URL.into())
                }
            });
        let provider = text("provider").unwrap_or_else(|| provider_of(&base_url).into());
        Ok(Self {
            api_key_env: match llm.get("api_key_env") {
                None if openrouter => OPENROUTER_KEY_VAR.into(),
                None => DEFAULT_KEY_VAR.into(),
                Some(v) => v.as_str().unwrap_or_default().to_string(),
            },
            provider,
            base_url,
            model: text("model")
                .or_else(|| from_env(MODEL_VARS))
                .unwrap_or_else(|| DEFAULT_MODEL.into()),
            // (An explicit `api_key_env: null` or "" above means a server without auth.)
            inline_key: text("api_key").map(Secret::new),
            temperature: number("temperature")?,
            max_tokens: count("max_tokens")?.map(|n| n as u32),
            timeout: Duration::from_secs_f64(number("timeout_s")?.unwrap_or(60.0).max(0.001)),
            max_retries: count("max_retries")?.unwrap_or(3) as u32,
            limits: RateLimits {
                requests_per_minute: count("requests_per_minute")?.map(|n| n as u32),
                tokens_per_minute: count("tokens_per_minute")?,
                max_concurrency: count("max_concurrency")?.map(|n| n.max(1) as u32),
            },
            cache,
            cache_dir: text("cache_dir").map(PathBuf::from),
            cache_scope: match llm.get("cache_scope") {
                None | Some(Json::Null) => CacheScope::default(),
                Some(Json::String(s)) if s == "job" => CacheScope::Job,
                Some(Json::String(s)) if s == "seed" => CacheScope::Seed,
                Some(v) => return Err(SettingsError::wrong("cache_scope", "`job` or `seed`", v)),
            },
            price_prompt: number("price_prompt_per_million")?,
            price_completion: number("price_completion_per_million")?,
            embedding_model: text("embedding_model").filter(|m| !m.trim().is_empty()),
        })
        .and_then(|s| s.with_price_table(llm.get("prices")))
    }

    /// Prices from `llm.prices` (USD per million tokens, by model name) for this model,
    /// unless `price_*_per_million` are set: a table kept in a shared config covers
    /// every model a sweep uses.
    fn with_price_table(mut self, table: Option<&Json>) -> Result<Self, SettingsError> {
        let entries = match table {
            None | Some(Json::Null) => return Ok(self),
            Some(Json::Object(m)) => m,
            Some(other) => {
                return Err(SettingsError::Prices {
                    model: "*".into(),
                    problem: format!("must be a mapping of model names, found {other}"),
                });
            }
        };
        for (model, entry) in entries {
            let bad = |problem: String| SettingsError::Prices {
                model: model.clone(),
                problem,
            };
            let Json::Object(fields) = entry else {
                return Err(bad(format!(
                    "must be {{prompt_per_million, completion_per_million}}, found {entry}"
                )));
            };
            let mut price = [None, None];
            for (key, value) in fields {
                let slot = match key.as_str() {
                    "prompt_per_million" => 0,
                    "completion_per_million" => 1,
                    other => {
                        return Err(bad(format!(
                            "unknown key `{other}` (prompt_per_million, completion_per_million)"
                        )));
                    }
                };
                price[slot] = Some(
                    value
                        .as_f64()
                        .filter(|p| p.is_finite() && *p >= 0.0)
                        .ok_or_else(|| {
                            bad(format!("{key} must be a number >= 0, found {value}"))
                        })?,
                );
            }
            let unset = self.price_prompt.is_none() && self.price_completion.is_none();
            if *model == self.model && unset {
                self.price_prompt = price[0];
                self.price_completion = price[1];
            }
        }
        Ok(self)
    }

    /// The key: the variable named by `api_key_env`, else an inline key; `None` for a
    /// server without auth (`api_key_env: null` and no inline key). The error says which
    /// variable to set.
    pub fn api_key(
        &self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Secret>, SettingsError> {
        if self.api_key_env.is_empty() {
            return Ok(self.inline_key.clone());
        }
        match env(&self.api_key_env).filter(|k| !k.is_empty()) {
            Some(key) => Ok(Some(Secret::new(key))),
            None => self
                .inline_key
                .clone()
                .map(Some)
                .ok_or_else(|| SettingsError::MissingKey {
                    var: self.api_key_env.clone(),
                }),
        }
    }

    /// Cost in USD of some tokens, when prices are configured.
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> Option<f64> {
        if self.price_prompt.is_none() && self.price_completion.is_none() {
            return None;
        }
        Some(
            prompt_tokens as f64 / 1e6 * self.price_prompt.unwrap_or(0.0)
                + completion_tokens as f64 / 1e6 * self.price_completion.unwrap_or(0.0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kwargs(v: Json) -> Kwargs {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn defaults_and_environment_fallbacks() {
        let env = |name: &str| match name {
            "OPENAI_API_BASE" => Some("http://localhost:8000/v1".to_string()),
            "TRACE_LITELLM_MODEL" => Some("qwen".to_string()),
            "MY_KEY" => Some("sk-test".to_string()),
            _ => None,
        };
        let s = LlmSettings::from_config(&kwargs(json!({"api_key_env": "MY_KEY"})), &env).unwrap();
        assert_eq!(s.base_url, "http://localhost:8000/v1");
        assert_eq!(s.model, "qwen");
        assert_eq!(s.max_retries, 3);
        assert_eq!(s.cache, CacheMode::ReadWrite);
        assert_eq!(s.api_key(&env).unwrap().unwrap().expose(), "sk-test");
        // A local server without auth: no key, no error.
        let s = LlmSettings::from_config(&kwargs(json!({"api_key_env": null})), &env).unwrap();
        assert!(s.api_key(&env).unwrap().is_none());
        let s = LlmSettings::from_config(
            &kwargs(json!({"base_url": "https://openrouter.ai/api/v1", "model": "m"})),
            &env,
        )
        .unwrap();
        assert_eq!(
            (s.base_url.as_str(), s.model.as_str()),
            ("https://openrouter.ai/api/v1", "m")
        );
        let err = s.api_key(&env).unwrap_err().to_string();
        assert!(err.contains("`OPENAI_API_KEY`"), "{err}");
    }

    #[test]
    fn the_provider_follows_the_endpoint_and_openrouter_alone_means_its_endpoint() {
        let none = |_: &str| None;
        let s = LlmSettings::from_config(
            &kwargs(json!({"base_url": "https://openrouter.ai/api/v1", "model": "m"})),
            &none,
        )
        .unwrap();
        assert_eq!(s.provider, "openrouter", "inferred from the host");
        assert_eq!(
            s.api_key_env, "OPENAI_API_KEY",
            "the key variable stays as configured"
        );
        let s =
            LlmSettings::from_config(&kwargs(json!({"provider": "openrouter"})), &none).unwrap();
        assert_eq!(
            (s.base_url.as_str(), s.api_key_env.as_str()),
            ("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY")
        );
        let s = LlmSettings::from_config(
            &kwargs(json!({"base_url": "http://localhost:8000/v1"})),
            &none,
        )
        .unwrap();
        assert_eq!(s.provider, "openai", "an OpenAI-compatible server");
        let s = LlmSettings::from_config(
            &kwargs(json!({"base_url": "https://notopenrouter.ai.example.com/v1"})),
            &none,
        )
        .unwrap();
        assert_eq!(s.provider, "openai", "only the real host counts");
    }

    #[test]
    fn bad_values_name_the_key_and_prices_give_a_cost() {
        let none = |_: &str| None;
        let err = LlmSettings::from_config(&kwargs(json!({"cache": "sometimes"})), &none)
            .unwrap_err()
            .to_string();
        assert!(err.contains("llm.cache"), "{err}");
        let err = LlmSettings::from_config(&kwargs(json!({"timeout_s": "slow"})), &none)
            .unwrap_err()
            .to_string();
        assert!(err.contains("llm.timeout_s"), "{err}");
        let err = LlmSettings::from_config(&kwargs(json!({"model": 4})), &none)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "llm.model must be a string, found 4");
        let err = LlmSettings::from_config(&kwargs(json!({"cache": 1})), &none)
            .unwrap_err()
            .to_string();
        assert!(err.contains("llm.cache"), "{err}");
        // A bare YAML `off` arrives as `false` and means off.
        let s = LlmSettings::from_config(&kwargs(json!({"cache": false})), &none).unwrap();
        assert_eq!(s.cache, CacheMode::Off);
        let s = LlmSettings::from_config(
            &kwargs(json!({"price_prompt_per_million": 2.0, "price_completion_per_million": 8.0})),
            &none,
        )
        .unwrap();
        assert_eq!(s.cost(1_000_000, 500_000), Some(6.0));
        assert_eq!(
            LlmSettings::from_config(&Kwargs::new(), &none)
                .unwrap()
                .cost(5, 5),
            None
        );
    }

    #[test]
    fn a_price_table_prices_the_run_model_unless_prices_are_given() {
        let none = |_: &str| None;
        let table = json!({"m1": {"prompt_per_million": 1.0, "completion_per_million": 4.0}, "m2": {"prompt_per_million": 9.0}});
        let s = LlmSettings::from_config(&kwargs(json!({"model": "m1", "prices": table})), &none)
            .unwrap();
        assert_eq!(s.cost(1_000_000, 1_000_000), Some(5.0));
        let s = LlmSettings::from_config(&kwargs(json!({"model": "m3", "prices": table})), &none)
            .unwrap();
        assert_eq!(s.cost(1, 1), None, "no entry for the model: no cost");
        let s = LlmSettings::from_config(
            &kwargs(json!({"model": "m1", "prices": table, "price_prompt_per_million": 2.0})),
            &none,
        )
        .unwrap();
        assert_eq!(s.cost(1_000_000, 1_000_000), Some(2.0), "the flat keys win");
        for (bad, says) in [
            (json!({"m1": 3}), "llm.prices.m1: must be"),
            (json!({"m1": {"prompt": 1}}), "unknown key `prompt`"),
            (
                json!({"m1": {"prompt_per_million": -1}}),
                "must be a number >= 0",
            ),
            (json!([1]), "llm.prices.*"),
        ] {
            let e = LlmSettings::from_config(&kwargs(json!({"model": "m1", "prices": bad})), &none)
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{e}");
        }
    }
}
