//! Every path of the canonical run directory, named here and only here.
//!
//! ```text
//! <runs_dir>/<run_id>/
//!   meta/{config.snapshot.yaml, manifest.json, env.json, git.json, system.json}
//!   results.csv  iterations.csv  summary.json  leaderboard.csv  [report.html  gate.json]
//!   jobs/<job_id>/{job_meta.json, results.json, events.jsonl, job.log, artifacts/, tb/}
//! ```

use std::path::{Path, PathBuf};

use crate::vocab::JobId;

/// A run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run directory `<runs_dir>/<run_id>`.
    pub fn new(runs_dir: impl AsRef<Path>, run_id: &str) -> Self {
        Self {
            root: runs_dir.as_ref().join(run_id),
        }
    }

    /// An existing run directory given by its path.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `meta/`
    pub fn meta_dir(&self) -> PathBuf {
        self.root.join("meta")
    }

    /// `meta/config.snapshot.yaml`
    pub fn config_snapshot(&self) -> PathBuf {
        self.meta_dir().join("config.snapshot.yaml")
    }

    /// `meta/manifest.json`
    pub fn manifest(&self) -> PathBuf {
        self.meta_dir().join("manifest.json")
    }

    /// `meta/locks/<job_id>.lock`: held by the process running that job of a shared run.
    pub fn job_lock(&self, job_id: &JobId) -> PathBuf {
        self.meta_dir()
            .join("locks")
            .join(format!("{}.lock", job_id.as_str()))
    }

    /// `meta/slurm/`: batch scripts and submissions of the Slurm executor.
    pub fn slurm_dir(&self) -> PathBuf {
        self.meta_dir().join("slurm")
    }

    /// `meta/run.lock`: held by the process running this directory.
    pub fn lock_file(&self) -> PathBuf {
        self.meta_dir().join("run.lock")
    }

    /// `meta/mlflow.json`: the MLflow server and experiment the run is mirrored to.
    pub fn mlflow_json(&self) -> PathBuf {
        self.meta_dir().join("mlflow.json")
    }

    /// `meta/mlflow_pending.json`: jobs the live mirror could not send (absent when none).
    pub fn mlflow_pending(&self) -> PathBuf {
        self.meta_dir().join("mlflow_pending.json")
    }

    /// `meta/env.json`
    pub fn env_json(&self) -> PathBuf {
        self.meta_dir().join("env.json")
    }

    /// `meta/git.json`
    pub fn git_json(&self) -> PathBuf {
        self.meta_dir().join("git.json")
    }

    /// `meta/system.json`
    pub fn system_json(&self) -> PathBuf {
        self.meta_dir().join("system.json")
    }

    /// `results.csv`
    pub fn results_csv(&self) -> PathBuf {
        self.root.join("results.csv")
    }

    /// `iterations.csv`
    pub fn iterations_csv(&self) -> PathBuf {
        self.root.join("iterations.csv")
    }

    /// `summary.json`
    pub fn summary_json(&self) -> PathBuf {
        self.root.join("summary.json")
    }

    /// `leaderboard.csv`
    pub fn leaderboard_csv(&self) -> PathBuf {
        self.root.join("leaderboard.csv")
    }

    /// `stats.json`: which methods are significantly better (`analysis::fair`).
    pub fn stats_json(&self) -> PathBuf {
        self.root.join("stats.json")
    }

    /// `anytime.csv`: anytime aggregates per task and method (`analysis::fair`).
    pub fn anytime_csv(&self) -> PathBuf {
        self.root.join("anytime.csv")
    }

    /// `report.html` (written by `report --html`)
    pub fn report_html(&self) -> PathBuf {
        self.root.join("report.html")
    }

    /// `gate.json` (written by `compare` into the new run)
    pub fn gate_json(&self) -> PathBuf {
        self.root.join("gate.json")
    }

    /// `jobs/`
    pub fn jobs_dir(&self) -> PathBuf {
        self.root.join("jobs")
    }

    /// `jobs/<job_id>/`
    pub fn job(&self, job_id: &JobId) -> JobDir {
        JobDir {
            root: self.jobs_dir().join(job_id.as_str()),
            rel: format!("jobs/{job_id}"),
        }
    }
}

/// Which parameter snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    /// Before training.
    Initial,
    /// Best found.
    Best,
    /// After training.
    Final,
}

impl StateKind {
    /// File stem and JSON label.
    pub fn as_str(self) -> &'static str {
        match self {
            StateKind::Initial => "initial",
            StateKind::Best => "best",
            StateKind::Final => "final",
        }
    }
}

/// One job's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDir {
    root: PathBuf,
    rel: String,
}

impl JobDir {
    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `job_meta.json`
    pub fn job_meta(&self) -> PathBuf {
        self.root.join("job_meta.json")
    }

    /// `results.json`
    pub fn results_json(&self) -> PathBuf {
        self.root.join("results.json")
    }

    /// `events.jsonl`
    pub fn events_jsonl(&self) -> PathBuf {
        self.root.join("events.jsonl")
    }

    /// `job.log`
    pub fn job_log(&self) -> PathBuf {
        self.root.join("job.log")
    }

    /// `artifacts/`
    pub fn artifacts_dir(&self) -> PathBuf {
        self.root.join("artifacts")
    }

    /// `artifacts/<kind>_state.json`
    pub fn state_json(&self, kind: StateKind) -> PathBuf {
        self.artifacts_dir()
            .join(format!("{}_state.json", kind.as_str()))
    }

    /// `artifacts/<kind>_state.yaml`
    pub fn state_yaml(&self, kind: StateKind) -> PathBuf {
        self.artifacts_dir()
            .join(format!("{}_state.yaml", kind.as_str()))
    }

    /// `artifacts/state_history.jsonl`
    pub fn state_history(&self) -> PathBuf {
        self.artifacts_dir().join("state_history.jsonl")
    }

    /// `artifacts/llm_calls.jsonl`: one `llm_transcript` event per LLM call.
    pub fn llm_calls(&self) -> PathBuf {
        self.artifacts_dir().join("llm_calls.jsonl")
    }

    /// `artifacts/examples.jsonl`: the final parameters on each example of the evaluation
    /// and test splits.
    pub fn examples(&self) -> PathBuf {
        self.artifacts_dir().join("examples.jsonl")
    }

    /// `tb/`
    pub fn tb_dir(&self) -> PathBuf {
        self.root.join("tb")
    }

    /// Paths relative to the run directory, POSIX style (as results.csv records them).
    pub fn rel_state_yaml(&self, kind: StateKind) -> String {
        format!("{}/artifacts/{}_state.yaml", self.rel, kind.as_str())
    }

    /// `jobs/<id>/artifacts/state_history.jsonl`
    pub fn rel_state_history(&self) -> String {
        format!("{}/artifacts/state_history.jsonl", self.rel)
    }

    /// `jobs/<id>/tb`
    pub fn rel_tb(&self) -> String {
        format!("{}/tb", self.rel)
    }

    /// `jobs/<id>`
    pub fn rel(&self) -> &str {
        &self.rel
    }
}
