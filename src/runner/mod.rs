//! Executing a planned run: a pool of `max_workers` threads runs the jobs (each isolated:
//! an error or panic is a failed job, the batch goes on), resume decides which jobs run,
//! and the run-level files are rebuilt from the job directories at the end.

pub mod drift;
mod job;
pub mod lock;
pub mod plan;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use rayon::prelude::*;

use crate::artifacts::FileError;
use crate::artifacts::atomic::{read_json, write_json};
use crate::backend::LlmFactory;
use crate::config::model::ResumeMode;
use crate::events::EventSink;
use crate::matrix::Job;
use crate::registry::Registry;
use crate::results::{self, Summary};
use crate::stop::Cancel;
use crate::vocab::{JobState, JobStatus, ManifestStatus};

pub use job::{JobContext, JobEnd, run_job};
pub use plan::{CliOverrides, Plan, Prepared, prepare};

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
    #[error("`{}` is not writable ({source}); nothing was run", dir.display())]
    NotWritable {
        /// The nearest existing folder on the way to the run directory.
        dir: std::path::PathBuf,
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
    /// One disposition per job, in matrix order.
    pub dispositions: Vec<Disposition>,
    /// Rebuilt run summary.
    pub summary: Summary,
}

/// The state a job directory records, if the job ran before (a status this build does
/// not know counts as never run).
pub fn recorded_status(plan: &Plan, job: &Job) -> Option<JobState> {
    let meta: serde_json::Value = read_json(&plan.run_dir.job(&job.job_id).job_meta()).ok()?;
    JobState::parse(meta.get("status")?.as_str()?)
}

/// Whether resume keeps a job's earlier result instead of running it.
fn resume_decision(mode: ResumeMode, recorded: Option<JobState>) -> Option<Disposition> {
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

/// Run every job of a plan whose meta files exist, then rebuild the run-level files.
/// Once `cancel` is set no job starts (the rest are `cancelled`) and running jobs stop at
/// their next step end.
pub fn execute(
    plan: &Plan,
    registry: &Registry,
    sink: &dyn EventSink,
    llm: &LlmFactory,
    cancel: &Cancel,
) -> Result<RunReport, RunError> {
    let workers = plan.config.max_workers.max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .thread_name(|i| format!("trace-bench-worker-{i}"))
        .build()
        .map_err(|source| RunError::Threads { workers, source })?;
    let ctx = JobContext {
        mode: plan.config.mode,
        registry,
        sink,
        llm,
        job_timeout: plan.config.effective_job_timeout(),
        cancel: cancel.clone(),
    };
    let stop_after_failure = AtomicBool::new(false);
    let run_stopped: Mutex<Option<String>> = Mutex::new(None);
    let sink_error: Mutex<Option<RunError>> = Mutex::new(None);
    let dispositions: Vec<Disposition> = pool.install(|| {
        plan.jobs
            .par_iter()
            .with_max_len(1)
            .map(|job| {
                if let Some(d) = resume_decision(plan.config.resume, recorded_status(plan, job)) {
                    return d;
                }
                if sink_error.lock().map(|e| e.is_some()).unwrap_or(true) {
                    return Disposition::NotExecuted(
                        "run aborted: job files could not be written".into(),
                    );
                }
                if let Some(reason) = run_stopped.lock().ok().and_then(|r| r.clone()) {
                    return Disposition::NotExecuted(format!("run stopped: {reason}"));
                }
                if stop_after_failure.load(Ordering::SeqCst) {
                    return Disposition::NotExecuted("fail_fast_stopped".into());
                }
                if cancel.is_cancelled() {
                    return Disposition::Cancelled;
                }
                // A rerun starts from an empty directory: nothing of an interrupted or
                // earlier attempt (events, TensorBoard files) may mix with the new one.
                if let Err(e) = clear_job_dir(plan, job) {
                    let reason = e.to_string();
                    if let Ok(mut slot) = sink_error.lock() {
                        slot.get_or_insert(e.into());
                    }
                    return Disposition::NotExecuted(reason);
                }
                match run_job(job, &ctx) {
                    Ok(JobEnd { status, stop_run }) => {
                        if let Some(reason) = stop_run
                            && let Ok(mut slot) = run_stopped.lock()
                            && slot.is_none()
                        {
                            eprintln!("trace-bench: stopping the run: {reason}");
                            *slot = Some(reason);
                        }
                        if plan.config.fail_fast
                            && matches!(status, JobStatus::Failed | JobStatus::Timeout)
                        {
                            stop_after_failure.store(true, Ordering::SeqCst);
                        }
                        Disposition::Executed(status)
                    }
                    Err(e) => {
                        let reason = format!("job files could not be written: {e}");
                        if let Ok(mut slot) = sink_error.lock() {
                            slot.get_or_insert(e.into());
                        }
                        Disposition::NotExecuted(reason)
                    }
                }
            })
            .collect()
    });
    finalize(plan, &dispositions)?;
    if let Some(e) = sink_error.into_inner().ok().flatten() {
        return Err(e);
    }
    let summary = results::write_run_files(&plan.run_dir)?;
    Ok(RunReport {
        dispositions,
        summary,
    })
}

/// Remove what an earlier attempt of `job` left in its directory.
fn clear_job_dir(plan: &Plan, job: &Job) -> Result<(), FileError> {
    let dir = plan.run_dir.job(&job.job_id);
    match std::fs::remove_dir_all(dir.root()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FileError::on("clear", dir.root())(e)),
    }
}

/// Write the final manifest: each job's status and why.
fn finalize(plan: &Plan, dispositions: &[Disposition]) -> Result<(), FileError> {
    let finished = humantime::format_rfc3339_micros(SystemTime::now()).to_string();
    // What each job that ran (now or in the invocation whose result is kept) recorded.
    let metas: Vec<Option<serde_json::Value>> = plan
        .jobs
        .iter()
        .map(|job| match &dispositions[job.index] {
            Disposition::Executed(_) | Disposition::Reused(_) => {
                read_json(&plan.run_dir.job(&job.job_id).job_meta()).ok()
            }
            Disposition::NotExecuted(_) | Disposition::Cancelled => None,
        })
        .collect();
    let mut manifest = plan.manifest(
        |job| match &dispositions[job.index] {
            Disposition::Executed(s) => {
                let reason = (*s != JobStatus::Ok).then(|| {
                    metas[job.index]
                        .as_ref()
                        .and_then(|m| m.get("feedback").and_then(|f| f.as_str()))
                        .unwrap_or_default()
                        .to_string()
                });
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
        },
        Some(finished),
    );
    // The resolved fields as the jobs ran them (the task's guide, the protocol used).
    for (entry, meta) in manifest.jobs.iter_mut().zip(metas) {
        if let Some(resolved) = meta.and_then(|m| serde_json::from_value(m).ok()) {
            entry.resolved = resolved;
        }
    }
    write_json(&plan.run_dir.manifest(), &manifest)
        .map_err(FileError::on("write", &plan.run_dir.manifest()))
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
