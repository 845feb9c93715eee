//! The decoded config: the Python reference's keys with their aliases and defaults
//! applied, tasks deduplicated and trainer variants merged. It is what the run directory's
//! `meta/config.snapshot.yaml` records and what the matrix is expanded from.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Value, json};

use crate::vocab::{Kwargs, Mode};

use super::yaml::Span;

/// Which jobs of an existing run directory are executed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeMode {
    /// Skip jobs already `ok` or `skipped` (default).
    Auto,
    /// Rerun only `failed` (and timed-out) jobs.
    Failed,
    /// Rerun everything.
    None,
}

impl ResumeMode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ResumeMode::Auto => "auto",
            ResumeMode::Failed => "failed",
            ResumeMode::None => "none",
        }
    }

    /// Parse the config / CLI spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(Self::Auto),
            "failed" => Some(Self::Failed),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

impl fmt::Display for ResumeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `tasks:`.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskEntry {
    /// Normalised id (`suite:name`).
    pub id: String,
    /// Global `eval_kwargs` shallow-merged under the entry's own.
    pub eval_kwargs: Kwargs,
    /// The entry's own seeds, instead of the run's (`seeds:` in the entry).
    pub seeds: Option<Vec<i64>>,
    /// Where the entry is written.
    pub span: Span,
}

/// One params variant of a trainer entry, with the location of each key.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Merged knobs: global defaults, then entry-level knobs, then the variant itself.
    pub params: Kwargs,
    /// Location of each key, for knob diagnostics.
    pub key_spans: BTreeMap<String, Span>,
}

/// One entry of `trainers:`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainerEntry {
    /// Trainer id as written (e.g. `PrioritySearch`, `GEPA-Base`).
    pub id: String,
    /// One job per variant (and per seed).
    pub params_variants: Vec<Variant>,
    /// Optimizer (prompt protocol) name.
    pub optimizer: Option<String>,
    /// Optimizer keyword arguments.
    pub optimizer_kwargs: Kwargs,
    /// Guide override name.
    pub guide: Option<String>,
    /// Guide keyword arguments.
    pub guide_kwargs: Kwargs,
    /// Logger name.
    pub logger: Option<String>,
    /// Logger keyword arguments.
    pub logger_kwargs: Kwargs,
    /// The entry's `budget:` (its limits replace the run's).
    pub budget: crate::vocab::Budget,
    /// Where the entry is written.
    pub span: Span,
}

/// The `mlflow` block: the tracking server jobs are mirrored to as they finish.
#[derive(Debug, Clone, PartialEq)]
pub struct MlflowConfig {
    /// `http(s)://host:port`; unset, `MLFLOW_TRACKING_URI` is used.
    pub tracking_uri: Option<String>,
    /// Experiment name; unset, `trace-bench`.
    pub experiment: Option<String>,
}

/// Why a tracking URI cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TrackingUriError {
    /// Not `http://` or `https://`.
    #[error("only http(s) tracking servers are supported (`http://host:port`)")]
    Scheme,
    /// `http://` alone.
    #[error("the URI names no host")]
    NoHost,
    /// `user:password@` in the URI.
    #[error("credentials in the URI would be written to files; set MLFLOW_TRACKING_TOKEN instead")]
    Credentials,
    /// `?…` or `#…`.
    #[error("the URI must not have a query or fragment")]
    QueryOrFragment,
}

/// Check a tracking URI: `http(s)://host[:port][/prefix]`, without credentials (they
/// would be written wherever the URI is; the token comes from `MLFLOW_TRACKING_TOKEN`).
pub fn check_tracking_uri(uri: &str) -> Result<String, TrackingUriError> {
    let rest = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"))
        .ok_or(TrackingUriError::Scheme)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        return Err(TrackingUriError::NoHost);
    }
    if authority.contains('@') {
        return Err(TrackingUriError::Credentials);
    }
    if rest.contains(['?', '#']) {
        return Err(TrackingUriError::QueryOrFragment);
    }
    Ok(uri.trim_end_matches('/').to_string())
}

/// The whole decoded config.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Fixed run directory name.
    pub run_id: Option<String>,
    /// Parent directory of run directories. Defaults to `runs`.
    pub runs_dir: String,
    /// Stub or real LLM. Defaults to stub.
    pub mode: Mode,
    /// One job per seed. Defaults to `[123]`.
    pub seeds: Vec<i64>,
    /// Jobs in flight. Defaults to 1.
    pub max_workers: usize,
    /// Stop starting jobs after the first failure. Defaults to false.
    pub fail_fast: bool,
    /// Resume policy for an existing run directory. Defaults to auto.
    pub resume: ResumeMode,
    /// Hard per-job wall-clock limit in seconds, as configured (see
    /// [`Config::effective_job_timeout`]).
    pub job_timeout: Option<f64>,
    /// Tasks, deduplicated on (id, eval_kwargs).
    pub tasks: Vec<TaskEntry>,
    /// The `llm` block as written (secrets redacted only when written out).
    pub llm: Kwargs,
    /// The `executor` block as written (checked by the loader; docs/cluster.md).
    pub executor: Kwargs,
    /// Free-form tags, copied to the manifest and summary.
    pub tags: Vec<String>,
    /// Trainers with their merged variants.
    pub trainers: Vec<TrainerEntry>,
    /// Global task arguments.
    pub eval_kwargs: Kwargs,
    /// Global trainer defaults, including the reference's top-level knobs.
    pub trainer_kwargs: Kwargs,
    /// Where finished jobs are mirrored. An output destination, not part of the
    /// experiment: it is left out of the snapshot, so it may change between invocations.
    pub mlflow: Option<MlflowConfig>,
    /// What the run syncs to survive an OS crash (`durability`; default `job`). How a run
    /// writes, not what it measures: recorded only when given, never a drift.
    pub durability: Option<crate::artifacts::durability::Durability>,
    /// Folders of external trainers (`trainers_dir`: a path or a list; docs/external-trainers.md).
    pub trainers_dir: Vec<String>,
    /// The Python external trainers run with (`external_python`; `--external-python` wins).
    pub external_python: Option<String>,
    /// What each job may spend (`budget:`; trainer entries override it per limit).
    pub budget: crate::vocab::Budget,
    /// Folders of user tasks (`tasks_dir`: a path or a list), as written: relative to the
    /// config file. Where tasks come from, not what runs: not in the snapshot.
    pub tasks_dir: Vec<String>,
    /// The reference's LLM4AD `benchmark_tasks` folder (`llm4ad_root`), as written
    /// (relative to the config file; `--root` wins). Not in the snapshot.
    pub llm4ad_root: Option<String>,
    /// The Python LLM4AD discovery and evaluation run with (`llm4ad_python`;
    /// `--llm4ad-python` wins). Not in the snapshot.
    pub llm4ad_python: Option<String>,
    /// Where each run-level key's value is written, for problems found after decoding.
    pub spans: BTreeMap<String, Span>,
}

/// The reference's default `job_timeout` outside stub mode.
pub const REAL_MODE_JOB_TIMEOUT_S: f64 = 600.0;

impl Config {
    /// The durability level: as configured, else `job`.
    pub fn effective_durability(&self) -> crate::artifacts::durability::Durability {
        self.durability.unwrap_or_default()
    }

    /// The limit jobs really get, by the reference's rule: a configured (or `--job-timeout`)
    /// value wins and `0` means none; unset, real mode gets 600 s and stub mode none.
    pub fn effective_job_timeout(&self) -> Option<std::time::Duration> {
        let seconds = match (self.job_timeout, self.mode) {
            (Some(t), _) => t,
            (None, Mode::Real) => REAL_MODE_JOB_TIMEOUT_S,
            (None, Mode::Stub) => 0.0,
        };
        (seconds > 0.0 && seconds.is_finite()).then(|| std::time::Duration::from_secs_f64(seconds))
    }

    /// The snapshot in the reference's key order; secrets are not yet redacted.
    pub fn snapshot(&self) -> Value {
        let tasks: Vec<Value> = self
            .tasks
            .iter()
            .map(|t| {
                let mut entry = json!({"id": t.id, "eval_kwargs": t.eval_kwargs});
                if let Some(seeds) = &t.seeds {
                    entry["seeds"] = json!(seeds);
                }
                entry
            })
            .collect();
        let trainers: Vec<Value> = self
            .trainers
            .iter()
            .map(|t| {
                let mut entry = json!({
                    "id": t.id,
                    "params_variants": t.params_variants.iter().map(|v| Value::Object(v.params.clone())).collect::<Vec<_>>(),
                    "optimizer": t.optimizer,
                    "optimizer_kwargs": t.optimizer_kwargs,
                    "guide": t.guide,
                    "guide_kwargs": t.guide_kwargs,
                    "logger": t.logger,
                    "logger_kwargs": t.logger_kwargs,
                });
                // Only when given: configs without budgets keep the reference's snapshot.
                if !t.budget.is_empty() {
                    entry["budget"] = json!(t.budget);
                }
                entry
            })
            .collect();
        let mut snapshot = json!({
            "run_id": self.run_id,
            "runs_dir": self.runs_dir,
            "mode": self.mode.as_str(),
            "seeds": self.seeds,
            "max_workers": self.max_workers,
            "fail_fast": self.fail_fast,
            "resume": self.resume.as_str(),
            "job_timeout": self.job_timeout,
            "tasks": tasks,
            "llm": self.llm,
            "tags": self.tags,
            "trainers": trainers,
            "eval_kwargs": self.eval_kwargs,
            "trainer_kwargs": self.trainer_kwargs,
        });
        // Only when given: the block is ours, and how a run executes is not what it measures.
        if !self.executor.is_empty() {
            snapshot["executor"] = Value::Object(self.executor.clone());
        }
        if let Some(d) = self.durability {
            snapshot["durability"] = Value::from(d.as_str());
        }
        // Only when given: which programs and which Python ran external trainers.
        if !self.trainers_dir.is_empty() {
            snapshot["trainers_dir"] = Value::from(self.trainers_dir.clone());
        }
        if let Some(p) = &self.external_python {
            snapshot["external_python"] = Value::from(p.clone());
        }
        if !self.budget.is_empty() {
            snapshot["budget"] = json!(self.budget);
        }
        snapshot
    }
}

/// Whether a config key holds a secret that must never be written out.
///
/// `api_key_env` names a variable (not a secret) and `max_tokens`-like keys are counts,
/// although both contain a secret-looking word.
pub fn is_secret_config_key(key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    if lower.ends_with("_env") || lower.contains("tokens") {
        return false;
    }
    crate::provenance::env::is_secret_name(key)
}

/// A copy of `v` with every secret-keyed value replaced by the redaction marker.
pub fn redact_secret_keys(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_config_key(k) && !v.is_null() {
                        Value::String(crate::provenance::env::REDACTED.to_string())
                    } else {
                        redact_secret_keys(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact_secret_keys).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_with_credentials_or_other_schemes_are_refused() {
        assert_eq!(
            check_tracking_uri("http://127.0.0.1:5000/").unwrap(),
            "http://127.0.0.1:5000"
        );
        assert!(check_tracking_uri("https://mlflow.lab/prefix").is_ok());
        assert!(check_tracking_uri("file:///tmp/mlruns").is_err());
        assert!(check_tracking_uri("databricks").is_err());
        assert!(
            check_tracking_uri("http://user:pw@host:5000")
                .unwrap_err()
                .to_string()
                .contains("MLFLOW_TRACKING_TOKEN")
        );
        assert!(check_tracking_uri("http://").is_err());
    }

    #[test]
    fn secret_keys_exclude_env_names_and_token_counts() {
        assert!(is_secret_config_key("api_key"));
        assert!(is_secret_config_key("OPENAI_API_KEY"));
        assert!(!is_secret_config_key("api_key_env"));
        assert!(!is_secret_config_key("max_tokens"));
        assert!(!is_secret_config_key("tokens_per_minute"));
        let v =
            json!({"llm": {"api_key": "sk-123", "api_key_env": "OPENAI_API_KEY", "max_tokens": 5}});
        assert_eq!(
            redact_secret_keys(&v),
            json!({"llm": {"api_key": "***REDACTED***", "api_key_env": "OPENAI_API_KEY", "max_tokens": 5}})
        );
    }
}
