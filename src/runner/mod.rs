//! Executing a planned run: a pool of `max_workers` threads runs the jobs (each isolated:
//! an error or panic is a failed job, the batch goes on), resume decides which jobs run,
//! and the run-level files are rebuilt from the job directories at the end.

pub mod drift;
mod job;
pub mod lock;
pub mod plan;
pub mod run;
pub mod slurm;
pub mod status;
pub mod submission;

use std::path::Path;
use std::time::SystemTime;

use crate::artifacts::FileError;
use crate::artifacts::atomic::read_json;
use crate::config::model::ResumeMode;
use crate::matrix::Job;
use crate::results::row::Resolved;
use crate::results::{
    JobResults, ResultsError, RunFiles, Staged, Summary, manifest, read_job_results,
};
use crate::vocab::{JobState, JobStatus, ManifestStatus};

pub use job::{JobContext, JobEnd, run_job};
pub use plan::{CliOverrides, Plan, Prepared, prepare};
pub use run::{Access, ExecEnv, Executor, Launched, LocalExecutor, OpenRun, Selection, ShardError};

/// Why a run cannot be planned, executed or recorded.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A file of the run directory cannot be read or written.
    #[error(transparent)]
    File(#[from] FileError),
    /// Another invocation holds the run directory's lock.
    #[error("the run directory `{}` is in use by another trace-bench run ({holder})", dir.display())]
    Locked {
        /// The run directory.
        dir: std::path::PathBuf,
        /// Who holds it ("pid 123 on host, started …").
        holder: String,
    },
    /// The run directory cannot be created or written.
    #[error("{what} ({source}); nothing was run")]
    NotWritable {
        /// Which folder the user chose refused, and how ("the runs directory `runs` is
        /// not writable").
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// The earlier invocation's config snapshot does not parse.
    #[error("`{}` is not a readable snapshot: {message}", path.display())]
    Snapshot {
        /// `meta/config.snapshot.yaml`.
        path: std::path::PathBuf,
        /// The parser's message.
        message: String,
    },
    /// The worker pool cannot start.
    #[error("cannot start {workers} worker threads: {source}")]
    Threads {
        /// `max_workers`.
        workers: usize,
        /// Why.
        source: rayon::ThreadPoolBuildError,
    },
    /// A sink cannot write a job's files.
    #[error(transparent)]
    Sink(#[from] crate::events::SinkError),
    /// The run-level files cannot be rebuilt.
    #[error(transparent)]
    Results(#[from] crate::results::ResultsError),
    /// The run was planned with another config (resuming would mix two experiments).
    #[error("run `{run_id}` was planned with a different config; refusing to resume it")]
    Drift {
        /// The run id.
        run_id: String,
        /// The earlier snapshot.
        snapshot: std::path::PathBuf,
        /// What changed, one line each (`key: old -> new`).
        changes: Vec<String>,
    },
    /// Submitting to the cluster failed.
    #[error(transparent)]
    Slurm(#[from] submission::SlurmError),
}

impl RunError {
    /// Creating `root`, the run directory in `runs_dir`, failed with `e`: a refusal of the
    /// file system names the folder the user chose (the runs directory, or the run
    /// directory when it exists), never a file inside it.
    pub(crate) fn creating(runs_dir: &Path, root: &Path, e: std::io::Error) -> Self {
        use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem};
        if !matches!(e.kind(), PermissionDenied | ReadOnlyFilesystem) {
            return FileError::on("create", root)(e).into();
        }
        let what = if root.exists() {
            format!("the run directory `{}` is not writable", root.display())
        } else if runs_dir.exists() {
            format!(
                "the runs directory `{}` is not writable",
                runs_dir.display()
            )
        } else {
            let parent = runs_dir
                .ancestors()
                .skip(1)
                .find(|d| !d.as_os_str().is_empty() && d.exists());
            format!(
                "the runs directory `{}` cannot be created: {} is not writable",
                runs_dir.display(),
                parent.map_or_else(
                    || "the current directory".to_string(),
                    |p| format!("`{}`", p.display())
                )
            )
        };
        RunError::NotWritable { what, source: e }
    }

    /// Whether a launch failed before any job started (the worker pool could not start):
    /// the run may be abandoned ([`OpenRun::abandon`]).
    pub fn before_first_job(&self) -> bool {
        matches!(self, RunError::Threads { .. })
    }
}

/// What happened to a job in this invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// It ran and ended with this status.
    Executed(JobStatus),
    /// Resume kept its earlier result (as its job directory records it).
    Reused(JobState),
    /// It did not start.
    NotExecuted(String),
    /// The user cancelled the run before it started.
    Cancelled,
}

impl Disposition {
    /// Whether the job is left without a finished result (never ran, was interrupted or
    /// cancelled, now or in the invocation whose result was kept).
    pub fn is_incomplete(&self) -> bool {
        match self {
            Disposition::Executed(s) => *s == JobStatus::Cancelled,
            Disposition::Reused(s) => {
                matches!(
                    s,
                    JobState::Running | JobState::Finished(JobStatus::Cancelled)
                )
            }
            Disposition::NotExecuted(_) | Disposition::Cancelled => true,
        }
    }
}

/// The end of a run.
#[derive(Debug)]
pub struct RunReport {
    /// One disposition per selected job, in matrix order.
    pub dispositions: Vec<Disposition>,
    /// Whether the run was cancelled (Ctrl-C) before it ended.
    pub cancelled: bool,
    /// Rebuilt run summary; `None` when this invocation ran part of a shared run (a
    /// shard, an array task), whose run-level files `report` rebuilds.
    pub summary: Option<Summary>,
    /// Why jobs failed, timed out or were skipped, as the final manifest records it
    /// (empty when this invocation wrote no manifest).
    pub causes: Causes,
}

/// Distinct causes of the jobs that did not succeed: (status, first line of the reason, at
/// most 200 characters), how many jobs, in matrix order of first appearance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Causes(pub Vec<(String, String, usize)>);

impl Causes {
    /// Count a job's final manifest status and reason.
    fn add(&mut self, status: &str, reason: Option<&str>) {
        if !matches!(status, "failed" | "timeout" | "skipped") {
            return;
        }
        let line: String = reason
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        match self
            .0
            .iter_mut()
            .find(|(s, r, _)| s == status && *r == line)
        {
            Some(group) => group.2 += 1,
            None => self.0.push((status.to_string(), line, 1)),
        }
    }
}

/// What the selected jobs of one invocation came to — a plain run, a shard or an array
/// task alike: the one input of [`RunStats::summarize_final`], so every way of running
/// jobs ends with the same verdict (and the CLI with the same exit code) for the same
/// jobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Jobs this invocation was given.
    pub selected: usize,
    /// Jobs that ran now.
    pub executed: usize,
    /// Jobs whose earlier result was kept.
    pub reused: usize,
    /// Jobs whose (new or kept) result is `ok`.
    pub ok: usize,
    /// Jobs whose (new or kept) result is `failed` or `timeout`.
    pub failed: usize,
    /// Jobs whose (new or kept) result is `skipped`.
    pub skipped: usize,
    /// Jobs left without a finished result (never ran, interrupted, cancelled).
    pub incomplete: usize,
    /// Whether the user cancelled the run.
    pub cancelled: bool,
}

/// The verdict on an invocation's jobs (nextest's `FinalRunStats` is the model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalOutcome {
    /// Every selected job has a result and none failed; at least one job ran (or none
    /// was selected).
    Passed,
    /// Some job failed or timed out, or has no finished result.
    Failed,
    /// Every selected job was skipped: nothing was measured, which must not pass a CI gate.
    NothingRan,
    /// The user cancelled the run.
    Cancelled,
}

impl RunStats {
    /// Count `dispositions` (one per selected job).
    pub fn from_dispositions(dispositions: &[Disposition], cancelled: bool) -> Self {
        let mut stats = Self {
            selected: dispositions.len(),
            cancelled,
            ..Self::default()
        };
        for d in dispositions {
            let result = match d {
                Disposition::Executed(s) => {
                    stats.executed += 1;
                    Some(*s)
                }
                Disposition::Reused(state) => {
                    stats.reused += 1;
                    match state {
                        JobState::Finished(s) => Some(*s),
                        JobState::Running => None,
                    }
                }
                Disposition::NotExecuted(_) | Disposition::Cancelled => None,
            };
            match result {
                Some(JobStatus::Ok) => stats.ok += 1,
                Some(JobStatus::Failed | JobStatus::Timeout) => stats.failed += 1,
                Some(JobStatus::Skipped) => stats.skipped += 1,
                Some(JobStatus::Cancelled) | None => {}
            }
            if d.is_incomplete() {
                stats.incomplete += 1;
            }
        }
        stats
    }

    /// The verdict: cancelled, else failed (a failure or a job without a result), else
    /// nothing ran (every selected job skipped), else passed.
    pub fn summarize_final(&self) -> FinalOutcome {
        if self.cancelled {
            FinalOutcome::Cancelled
        } else if self.failed > 0 || self.incomplete > 0 {
            FinalOutcome::Failed
        } else if self.selected > 0 && self.skipped == self.selected {
            FinalOutcome::NothingRan
        } else {
            FinalOutcome::Passed
        }
    }
}

impl RunReport {
    /// The counts of the selected jobs.
    pub fn stats(&self) -> RunStats {
        RunStats::from_dispositions(&self.dispositions, self.cancelled)
    }

    /// Jobs that ran now.
    pub fn executed(&self) -> usize {
        self.count(|d| matches!(d, Disposition::Executed(_)))
    }

    /// Jobs whose earlier result was kept.
    pub fn reused(&self) -> usize {
        self.count(|d| matches!(d, Disposition::Reused(_)))
    }

    /// Jobs that ran and failed or timed out.
    pub fn failed(&self) -> usize {
        self.count(|d| {
            matches!(
                d,
                Disposition::Executed(JobStatus::Failed | JobStatus::Timeout)
            )
        })
    }

    /// Jobs left without a finished result.
    pub fn incomplete(&self) -> usize {
        self.count(Disposition::is_incomplete)
    }

    fn count(&self, pred: impl Fn(&Disposition) -> bool) -> usize {
        self.dispositions.iter().filter(|d| pred(d)).count()
    }
}

/// The state a job directory records, if the job ran before (a status this build does
/// not know counts as never run).
pub fn recorded_status(plan: &Plan, job: &Job) -> Option<JobState> {
    recorded(&plan.run_dir, job).map(|(state, _)| state)
}

/// The recorded state of a job and when it finished (`finished_at`, RFC 3339): its
/// `job_meta.json`, written when it finished; a job directory without a readable one is a
/// job that started and did not finish (`running`, or interrupted).
pub fn recorded(
    run_dir: &crate::artifacts::layout::RunDir,
    job: &Job,
) -> Option<(JobState, Option<String>)> {
    let dir = run_dir.job(&job.job_id);
    let Ok(meta) = read_json::<serde_json::Value>(&dir.job_meta()) else {
        return dir.root().is_dir().then_some((JobState::Running, None));
    };
    let state = JobState::parse(meta.get("status")?.as_str()?)?;
    let finished = meta
        .get("finished_at")
        .and_then(|f| f.as_str())
        .map(str::to_string);
    Some((state, finished))
}

/// Whether resume keeps a job's earlier result instead of running it.
pub(crate) fn resume_decision(mode: ResumeMode, recorded: Option<JobState>) -> Option<Disposition> {
    use JobState::{Finished, Running};
    use JobStatus::{Failed, Ok, Skipped, Timeout};
    match (mode, recorded) {
        (ResumeMode::None, _) => None,
        (ResumeMode::Auto, Some(s @ Finished(Ok | Skipped))) => Some(Disposition::Reused(s)),
        (ResumeMode::Auto, _) => None,
        (ResumeMode::Failed, Some(Finished(Failed | Timeout))) => None,
        (ResumeMode::Failed, Some(Running)) => Some(Disposition::NotExecuted(
            "resume `failed`: the job was interrupted; `--resume auto` reruns it".into(),
        )),
        (ResumeMode::Failed, Some(s)) => Some(Disposition::Reused(s)),
        (ResumeMode::Failed, None) => Some(Disposition::NotExecuted(
            "resume `failed`: the job never ran; `--resume auto` runs it".into(),
        )),
    }
}

/// Remove what an earlier attempt of `job` left in its directory.
pub(crate) fn clear_job_dir(plan: &Plan, job: &Job) -> Result<(), FileError> {
    let dir = plan.run_dir.job(&job.job_id);
    match std::fs::remove_dir_all(dir.root()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FileError::on("clear", dir.root())(e)),
    }
}

/// The end of an exclusive run, in one pass over the jobs: the final manifest (each job's
/// status and why, and the resolved fields as the job ran them) is written, and the
/// run-level files are streamed, from one read of each job's `results.json` — the file a
/// finished job writes before its `job_meta.json`, so this pass does not wait for the
/// jobs' commits. A second thread reads and parses the next jobs' results while this one
/// writes (a bounded queue: memory stays flat). The run-level files come back written but
/// not in place, with the causes of the jobs that did not succeed.
pub(crate) fn finalize(
    plan: &Plan,
    dispositions: &[Disposition],
) -> Result<(Staged, Causes), RunError> {
    let finished = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
    let manifest = plan.manifest_head(Some(finished));
    let head = manifest.head();
    let mut files = RunFiles::create(&plan.run_dir)?;
    let mut unwritten: Option<ResultsError> = None;
    let mut causes = Causes::default();
    let path = plan.run_dir.manifest();
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(64);
        scope.spawn(move || {
            for job in &plan.jobs {
                // Whatever the directory holds, as `report` reads it: the same files.
                let results = read_job_results(&plan.run_dir.job(&job.job_id).results_json());
                if tx.send(results).is_err() {
                    break;
                }
            }
        });
        // (A reader that panicked ends the list early; the scope then re-raises its panic.)
        let jobs = plan.jobs.iter().zip(rx).map(|(job, results)| {
            let entry = manifest_entry(job, &dispositions[job.index], results.as_ref());
            causes.add(entry.status.as_str(), entry.reason.as_deref());
            if unwritten.is_none()
                && let Err(e) = files.add(&head, results.as_ref())
            {
                unwritten = Some(e);
            }
            entry
        });
        manifest::write_streamed(
            &path,
            plan.spec.config.effective_durability(),
            &manifest,
            jobs,
        )
    })
    .map_err(FileError::on("write", &path))?;
    if let Some(e) = unwritten {
        return Err(e.into());
    }
    Ok((files.stage(&head, plan.jobs.len())?, causes))
}

/// A job's final manifest entry, from its disposition and (when it ran, now or in the
/// invocation whose result is kept) its recorded results.
fn manifest_entry(
    job: &Job,
    disposition: &Disposition,
    results: Option<&JobResults>,
) -> manifest::ManifestJob {
    let (status, reason) = match disposition {
        Disposition::Executed(s) => {
            let reason = (*s != JobStatus::Ok)
                .then(|| results.map(|r| r.row.feedback.clone()).unwrap_or_default());
            (ManifestStatus::Finished(*s), reason)
        }
        Disposition::Reused(previous) => (
            ManifestStatus::Reused,
            Some(format!("resume: kept the earlier `{previous}` result")),
        ),
        Disposition::NotExecuted(reason) => (ManifestStatus::NotExecuted, Some(reason.clone())),
        Disposition::Cancelled => (
            ManifestStatus::Finished(JobStatus::Cancelled),
            Some("the run was cancelled before this job started; resume runs it".into()),
        ),
    };
    let mut entry = plan::manifest_job(job, status, reason);
    // The resolved fields as the job ran them (the task's guide, the protocol used).
    if let (Disposition::Executed(_) | Disposition::Reused(_), Some(r)) = (disposition, results) {
        entry.resolved = Resolved::recorded(&r.row);
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_modes_follow_the_reference_table() {
        use Disposition::*;
        let st = |s: &str| JobState::parse(s).unwrap();
        assert_eq!(
            resume_decision(ResumeMode::Auto, Some(st("ok"))),
            Some(Reused(st("ok")))
        );
        assert_eq!(
            resume_decision(ResumeMode::Auto, Some(st("skipped"))),
            Some(Reused(st("skipped")))
        );
        assert_eq!(resume_decision(ResumeMode::Auto, Some(st("failed"))), None);
        assert_eq!(resume_decision(ResumeMode::Auto, None), None);
        assert_eq!(resume_decision(ResumeMode::None, Some(st("ok"))), None);
        assert_eq!(
            resume_decision(ResumeMode::Failed, Some(st("failed"))),
            None
        );
        assert_eq!(
            resume_decision(ResumeMode::Failed, Some(st("ok"))),
            Some(Reused(st("ok")))
        );
        assert!(matches!(
            resume_decision(ResumeMode::Failed, None),
            Some(NotExecuted(_))
        ));
    }
}
