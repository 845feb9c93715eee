//! `meta/manifest.json`: the plan of a run (every job with its identity) and, once the
//! run ends, each job's status. Single jobs of a planned run directory can be executed
//! from it alone.

use serde::{Deserialize, Serialize};

use crate::matrix::Job;
use crate::results::row::Resolved;
use crate::vocab::{ManifestStatus, RunId};

/// One job entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestJob {
    /// Identity and kwargs.
    #[serde(flatten)]
    pub job: Job,
    /// `pending`, a job status (`ok`, `failed`, ...), `reused` or `not_executed`.
    pub status: ManifestStatus,
    /// Why, for anything but `ok`/`pending`.
    pub reason: Option<String>,
    /// The reference's top-level `resolved_*` and `eval_kwargs` (also nested in the job's
    /// `resolved_kwargs`): as configured until the job ran, then as it ran.
    #[serde(flatten)]
    pub resolved: Resolved,
}

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Run id (the directory name).
    pub run_id: RunId,
    /// `trace-bench`.
    pub tool: String,
    /// Version of the tool that planned the run.
    pub tool_version: String,
    /// SHA-256 of the canonical config snapshot (resume compares it).
    pub config_hash: String,
    /// `stub` or `real`.
    pub mode: String,
    /// Config tags.
    pub tags: Vec<String>,
    /// When the run was planned.
    pub created_at: String,
    /// When this file was written.
    pub generated_at: String,
    /// When the last invocation finished executing (absent while running).
    pub finished_at: Option<String>,
    /// Every planned job in matrix order.
    pub jobs: Vec<ManifestJob>,
}
