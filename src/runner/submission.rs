//! A Slurm submission's record (`meta/slurm/submit-<n>/submission.json`): how the run was
//! invoked, the chunks of job ids each array task runs, the job ids Slurm gave back. The
//! executor (`slurm.rs`) writes it; `run-job`, `status` and a launch's result read it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::artifacts::FileError;
use crate::artifacts::atomic::read_json;
use crate::artifacts::layout::RunDir;
use crate::vocab::JobId;

/// Why a submission failed.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    /// `sbatch` is not on PATH.
    #[error("`sbatch` was not found on PATH: this machine is not a Slurm submit host")]
    NotInstalled,
    /// `sbatch` refused the script.
    #[error("`{command}` failed: {stderr}")]
    Sbatch {
        /// What was run.
        command: String,
        /// What it said.
        stderr: String,
    },
    /// The binary the tasks should run is not a file.
    #[error("the trace-bench binary for the array tasks `{}` is not a file", path.display())]
    NoBinary {
        /// The path.
        path: PathBuf,
    },
    /// A submission record is missing or unreadable.
    #[error("no submission {number} in `{}`", dir.display())]
    NoSubmission {
        /// The submission number.
        number: u32,
        /// `meta/slurm/`.
        dir: PathBuf,
    },
    /// The task index is past the submission's chunks.
    #[error("task index {index} is out of range: submission {number} has {tasks} task(s)")]
    NoTask {
        /// The index asked for.
        index: usize,
        /// The submission.
        number: u32,
        /// Its task count.
        tasks: usize,
    },
    /// A file of the submission cannot be written.
    #[error(transparent)]
    File(#[from] FileError),
}

/// How the submitting command was invoked, so an array task plans the very same run
/// (relative paths resolve from the submission's working directory; the task's plan is
/// checked against the run's snapshot, so an edited config is refused, not mixed in).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    /// The config file (absolute), or none for the embedded smoke matrix.
    pub config: Option<PathBuf>,
    /// `--set` overrides, in order.
    pub sets: Vec<String>,
    /// `--tasks-dir` folders (absolute).
    pub tasks_dirs: Vec<PathBuf>,
    /// `--trainers-dir` folders (absolute).
    #[serde(default)]
    pub trainers_dirs: Vec<PathBuf>,
    /// `--root`.
    pub llm4ad_root: Option<PathBuf>,
    /// `--llm4ad-python`.
    pub llm4ad_python: Option<String>,
    /// `--runs-dir` as given, if given.
    pub runs_dir: Option<String>,
    /// The run id.
    pub run_id: String,
    /// `--job-timeout`, if given.
    pub job_timeout: Option<f64>,
    /// `--logger`, if given.
    pub logger: Option<String>,
}

/// One submission: what went to the cluster (`meta/slurm/submit-<n>/submission.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    /// How to plan the run again in a task.
    pub invocation: Invocation,
    /// 1, 2, … in the run directory.
    pub number: u32,
    /// When it was made (RFC 3339): a job finished after it ran in this submission.
    pub created_at: String,
    /// The array's Slurm job id.
    pub array_job_id: String,
    /// The dependent report job's id.
    pub report_job_id: String,
    /// Array tasks.
    pub tasks: usize,
    /// Jobs per task.
    pub jobs_per_task: usize,
    /// Worker threads per task (`cpus_per_task`).
    pub workers_per_task: usize,
    /// The job ids of each task.
    pub chunks: Vec<Vec<JobId>>,
    /// The batch scripts.
    pub array_script: PathBuf,
    /// The report job's script.
    pub report_script: PathBuf,
    /// Environment variables the tasks need (API keys, by name).
    pub env_names: Vec<String>,
}

impl Submission {
    /// The folder of submission `number`.
    pub fn dir(run_dir: &RunDir, number: u32) -> PathBuf {
        run_dir.slurm_dir().join(format!("submit-{number}"))
    }

    /// Read submission `number` of a run directory.
    pub fn load(run_dir: &RunDir, number: u32) -> Result<Self, SlurmError> {
        read_json(&Self::dir(run_dir, number).join("submission.json")).map_err(|_| {
            SlurmError::NoSubmission {
                number,
                dir: run_dir.slurm_dir(),
            }
        })
    }

    /// The newest submission of a run directory, if any.
    pub fn latest(run_dir: &RunDir) -> Option<Self> {
        Self::load(run_dir, last_number(run_dir)?).ok()
    }

    /// Task `index`'s job ids.
    pub fn chunk(&self, index: usize) -> Result<&[JobId], SlurmError> {
        self.chunks
            .get(index)
            .map(Vec::as_slice)
            .ok_or(SlurmError::NoTask {
                index,
                number: self.number,
                tasks: self.tasks,
            })
    }
}

pub(super) fn last_number(run_dir: &RunDir) -> Option<u32> {
    std::fs::read_dir(run_dir.slurm_dir())
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("submit-")?
                .parse::<u32>()
                .ok()
        })
        .max()
}
