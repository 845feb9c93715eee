//! Where a run stands, read from its job directories (the source of truth wherever the
//! jobs ran), and the manifest brought up to date with them once workers that do not
//! write it (shards, array tasks) are done.

use std::collections::BTreeMap;

use super::recorded;
use super::slurm::array_states;
use super::submission::Submission;
use crate::artifacts::FileError;
use crate::artifacts::atomic::{read_json, write_json};
use crate::artifacts::layout::RunDir;
use crate::results::manifest::Manifest;
use crate::vocab::{JobId, JobState, ManifestStatus};

/// Counts of a run directory's planned jobs by what their directories record.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStatus {
    /// Jobs in the plan.
    pub planned: usize,
    /// `ok`, `failed`, `skipped`, `timeout`, `cancelled`, `running` (started, not
    /// finished: running now or interrupted) and `not started`.
    pub counts: BTreeMap<String, usize>,
    /// Jobs without a final status, in matrix order.
    pub left: Vec<JobId>,
    /// The newest Slurm submission and its array tasks' states, when there is one.
    pub slurm: Option<(Submission, Option<BTreeMap<String, usize>>)>,
}

impl RunStatus {
    /// Whether every planned job has a final status (`cancelled` is not final: resume
    /// runs it).
    pub fn complete(&self) -> bool {
        self.left.is_empty()
    }
}

fn manifest(run_dir: &RunDir) -> Result<Manifest, FileError> {
    let path = run_dir.manifest();
    read_json(&path).map_err(|e| FileError::on("read", &path)(std::io::Error::other(e.to_string())))
}

/// The status of every planned job of `run_dir`.
pub fn status(run_dir: &RunDir) -> Result<RunStatus, FileError> {
    let manifest = manifest(run_dir)?;
    let mut counts = BTreeMap::new();
    let mut left = Vec::new();
    for entry in &manifest.jobs {
        let job = &entry.job;
        let label = match recorded(run_dir, job).map(|(s, _)| s) {
            Some(JobState::Finished(s)) => {
                if s == crate::vocab::JobStatus::Cancelled {
                    left.push(job.job_id.clone());
                }
                s.as_str().to_string()
            }
            Some(JobState::Running) => {
                left.push(job.job_id.clone());
                "running".to_string()
            }
            None => {
                left.push(job.job_id.clone());
                "not started".to_string()
            }
        };
        *counts.entry(label).or_insert(0) += 1;
    }
    let slurm = Submission::latest(run_dir).map(|s| {
        let states = array_states(&s);
        (s, states)
    });
    Ok(RunStatus {
        planned: manifest.jobs.len(),
        counts,
        left,
        slurm,
    })
}

/// Bring the manifest's `pending` entries up to date with the job directories (what
/// shards and array tasks leave behind): finished jobs get their status, the rest say
/// why they have none. Entries a local run finalised are kept as they are.
pub fn settle_manifest(run_dir: &RunDir) -> Result<bool, FileError> {
    let mut manifest = manifest(run_dir)?;
    let mut changed = false;
    for entry in manifest.jobs.iter_mut() {
        if entry.status != ManifestStatus::Pending {
            continue;
        }
        let (status, reason) = match recorded(run_dir, &entry.job).map(|(s, _)| s) {
            Some(JobState::Finished(s)) => {
                let meta: Option<serde_json::Value> =
                    read_json(&run_dir.job(&entry.job.job_id).job_meta()).ok();
                let reason = (s != crate::vocab::JobStatus::Ok).then(|| {
                    meta.as_ref()
                        .and_then(|m| m.get("feedback")?.as_str().map(str::to_string))
                        .unwrap_or_default()
                });
                (ManifestStatus::Finished(s), reason)
            }
            Some(JobState::Running) => (
                ManifestStatus::NotExecuted,
                Some("started but never finished (its process was stopped); `--resume auto` reruns it".into()),
            ),
            None => continue,
        };
        entry.status = status;
        entry.reason = reason;
        changed = true;
    }
    if changed {
        manifest.generated_at =
            humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
        write_json(&run_dir.manifest(), &manifest)
            .map_err(FileError::on("write", &run_dir.manifest()))?;
    }
    Ok(changed)
}
