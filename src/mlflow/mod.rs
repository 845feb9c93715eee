//! Runs where teams already track experiments: a run directory mirrored to an MLflow
//! tracking server over its REST API (no Python at run time).
//!
//! One parent MLflow run per trace-bench run (tag `trace_bench.run_id`) and one child run
//! per finished job (`mlflow.parentRunId`, `trace_bench.job_id`). Everything is read back
//! from the run directory's files, so `export` after the fact and the live [`MlflowSink`]
//! send the same thing, and both are idempotent: runs are found by tag, metrics already on
//! the server are not sent again (see `docs/mlflow.md`).
//!
//! - `client.rs`: the REST calls and the artifact proxy.
//! - `export.rs`: a job directory (and the run's own files) as MLflow params, tags,
//!   metrics and artifacts; what is already there is not sent twice.
//! - `sink.rs`: the live mirror, best-effort on a background thread.
//! - `record.rs`: what the run directory remembers (`meta/mlflow.json`, the destination;
//!   `meta/mlflow_pending.json`, what could not be sent).

pub mod client;
pub mod export;
pub mod record;
pub mod sink;

use std::path::PathBuf;

pub use client::Client;
pub use export::{ExportReport, Exporter};
pub use sink::{Mirror, MirrorSummary, MlflowSink};

use crate::artifacts::FileError;
use crate::llm::openai::Secret;

/// The experiment used when neither `--experiment` nor the config names one.
pub const DEFAULT_EXPERIMENT: &str = "trace-bench";
/// The tracking server, when neither `--mlflow` nor the config names one.
pub const URI_ENV: &str = "MLFLOW_TRACKING_URI";
/// The bearer token sent to the server; read from the environment only, never written.
pub const TOKEN_ENV: &str = "MLFLOW_TRACKING_TOKEN";

/// The token from `env`, if set and not empty.
pub fn token_from(env: &dyn Fn(&str) -> Option<String>) -> Option<Secret> {
    env(TOKEN_ENV).filter(|t| !t.is_empty()).map(Secret::new)
}

/// Why an export (or one job of it) did not reach the server.
#[derive(Debug, thiserror::Error)]
pub enum MlflowError {
    /// The tracking URI is not one this client can use.
    #[error("tracking URI `{uri}`: {reason}")]
    BadUri {
        /// As given.
        uri: String,
        /// What is wrong with it.
        reason: crate::config::model::TrackingUriError,
    },
    /// The config's `mlflow` block asks for the live mirror but names no server.
    #[error(
        "the config's `mlflow` block names no tracking server: it sets no `tracking_uri` and {URI_ENV} is not set; nothing was run"
    )]
    NoServer,
    /// No answer (connection refused, DNS, timeout).
    #[error("the MLflow tracking server at {uri} is unreachable: {message}")]
    Unreachable {
        /// The server.
        uri: String,
        /// The transport error.
        message: String,
    },
    /// The server refused the credentials.
    #[error("the MLflow tracking server at {uri} refused the request (HTTP {status})")]
    Auth {
        /// The server.
        uri: String,
        /// 401 or 403.
        status: u16,
    },
    /// The server answered with an error.
    #[error("MLflow `{endpoint}` answered HTTP {status} {code}: {message}")]
    Server {
        /// The REST endpoint.
        endpoint: String,
        /// HTTP status.
        status: u16,
        /// MLflow's `error_code`.
        code: String,
        /// MLflow's message.
        message: String,
    },
    /// Not a run directory.
    #[error("`{}` is not a run directory (no meta/manifest.json)", .0.display())]
    NotARunDir(PathBuf),
    /// A file of the run directory cannot be read or written.
    #[error(transparent)]
    File(#[from] FileError),
}

impl MlflowError {
    /// Whether the server itself is out of reach (further requests would fail the same way).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::Auth { .. })
    }
}
