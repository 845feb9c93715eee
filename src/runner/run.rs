//! A run as a library value: open (or plan) a run directory, launch a selection of its
//! jobs through an [`Executor`], and finish it. The CLI only parses arguments and renders
//! what comes back; an integration test drives a whole run with no CLI.
//!
//! Two ways to hold a run directory:
//!
//! - [`Access::Exclusive`] (a plain `run`): the run lock for the whole invocation; the
//!   manifest and the run-level files are rewritten at the end.
//! - [`Access::Shared`] (a shard, a Slurm array task): many processes work in one run
//!   directory at once. No run lock; each job is claimed with its own lock
//!   (`meta/locks/<job_id>.lock`) so it runs in one process only, and nobody rewrites the
//!   manifest or the run-level files — `report` rebuilds them from the job directories.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use super::lock::RunLock;
use super::{
    Causes, Disposition, JobContext, JobEnd, Plan, RunError, RunReport, clear_job_dir, drift,
    finalize, recorded, resume_decision, run_job,
};
use crate::backend::LlmFactory;
use crate::events::{EventSink, RunEvent};
use crate::matrix::Job;
use crate::registry::Registry;
use crate::stop::Cancel;
use crate::vocab::{JobId, JobState, JobStatus};

/// How this invocation holds the run directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// One process: the run lock; manifest and run-level files written at the end.
    Exclusive,
    /// One of several processes: per-job locks; run-level files left to `report`.
    Shared,
}

/// An opened run directory: planned (meta files written) or resumed after a drift check.
#[derive(Debug)]
pub struct OpenRun {
    /// The plan.
    pub plan: Plan,
    /// Whether this invocation planned the directory (no earlier snapshot, or `force`).
    pub fresh: bool,
    /// Set when the run lock of a process that is gone was taken over: who it was.
    pub took_over: Option<String>,
    access: Access,
    /// An exclusive run whose `jobs/` held nothing when it was opened: no job has a
    /// record to resume or a directory to clear (two file-system calls per job saved).
    no_jobs_yet: bool,
    /// The folders this invocation created for the run directory (the run directory
    /// first, then the runs directory if it was new), which [`OpenRun::abandon`] removes.
    created: Created,
    lock: Option<RunLock>,
}

/// The folders an invocation created on the way to its run directory, outermost last.
#[derive(Debug, Default)]
struct Created(Vec<std::path::PathBuf>);

impl Created {
    /// Before creating `root`: the folders on the way to it that do not exist yet.
    fn missing(root: &Path) -> Self {
        Self(
            root.ancestors()
                .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
                .map(Path::to_path_buf)
                .collect(),
        )
    }

    /// Remove them: the run directory with what is in it, then each new parent folder
    /// only if it is empty (another run may have appeared in it meanwhile).
    fn remove(&self) {
        let mut dirs = self.0.iter();
        if let Some(root) = dirs.next() {
            let _ = std::fs::remove_dir_all(root);
        }
        for dir in dirs {
            if std::fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }
}

impl OpenRun {
    /// Open `plan`'s run directory: take the run lock (exclusive access), refuse a run
    /// planned with another config (unless `force`), and write the meta files — all of
    /// them for a new run, the pending manifest for a resumed exclusive one, nothing for
    /// a shared run that is already planned.
    ///
    /// A run refused here leaves no new folder behind, and an existing run directory as it
    /// was (a lock left by a process that is gone aside).
    pub fn open(plan: Plan, access: Access, force: bool, cwd: &Path) -> Result<Self, RunError> {
        let root = plan.run_dir.root();
        // Only a run holding the run lock removes what it created: shards of one new run
        // may create its directory together.
        let created = match access {
            Access::Exclusive => Created::missing(root),
            Access::Shared => Created::default(),
        };
        if let Err(e) = std::fs::create_dir_all(root) {
            let e = RunError::creating(Path::new(&plan.spec.config.runs_dir), root, e);
            created.remove();
            return Err(e);
        }
        let (lock, took_over) = match access {
            Access::Exclusive => match RunLock::acquire(&plan.run_dir.lock_file()) {
                Ok(acquired) => (Some(acquired.lock), acquired.took_over),
                // Locked: the directory is another run's, never ours to remove (it may
                // have appeared since we looked).
                Err(e @ RunError::Locked { .. }) => return Err(e),
                Err(e) => {
                    created.remove();
                    return Err(e);
                }
            },
            Access::Shared => (None, None),
        };
        let mut run = Self {
            plan,
            fresh: true,
            took_over,
            access,
            no_jobs_yet: true,
            created,
            lock,
        };
        match run.prepare(force, cwd) {
            Ok(()) => Ok(run),
            Err(e) => {
                run.abandon();
                Err(e)
            }
        }
    }

    /// Decide whether the run is new or resumed (refusing a drift) and write its meta files.
    fn prepare(&mut self, force: bool, cwd: &Path) -> Result<(), RunError> {
        let plan = &self.plan;
        let access = self.access;
        let no_jobs_yet = access == Access::Exclusive
            && std::fs::read_dir(plan.run_dir.jobs_dir())
                .map_or(true, |mut entries| entries.next().is_none());
        let fresh = match plan.earlier_snapshot()? {
            None => true,
            Some(_) if force => true,
            Some(earlier) => {
                let changes = drift::changes(&earlier, &plan.written_snapshot());
                if !changes.is_empty() {
                    return Err(RunError::Drift {
                        run_id: plan.run_id.to_string(),
                        snapshot: plan.run_dir.config_snapshot(),
                        changes: changes.iter().map(ToString::to_string).collect(),
                    });
                }
                false
            }
        };
        if access == Access::Exclusive || fresh {
            plan.write_meta(cwd, fresh)?;
        }
        self.fresh = fresh;
        self.no_jobs_yet = no_jobs_yet;
        Ok(())
    }

    /// Give the run up before its first job: the folders this invocation created (a new
    /// run directory, a new runs directory) are removed; an existing run directory is left.
    /// The run lock is released after the removal.
    pub fn abandon(self) {
        self.created.remove();
        drop(self.lock);
    }

    /// How the directory is held.
    pub fn access(&self) -> Access {
        self.access
    }
}

/// `--shard` is not `I/N` with 1 ≤ I ≤ N.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a shard: write I/N with 1 <= I <= N, e.g. 2/3")]
pub struct ShardError(pub String);

/// Which jobs of the plan an invocation runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every job.
    All,
    /// Jobs whose matrix index is `index − 1` modulo `count` (`--shard I/N`, 1-based:
    /// round robin, so every shard gets a share of every task).
    Shard {
        /// 1-based shard number.
        index: usize,
        /// Number of shards.
        count: usize,
    },
    /// These jobs (a Slurm array task's chunk). A job that finished after `since` (RFC
    /// 3339) ran in this submission already — a requeued task skips it.
    Jobs {
        /// The job ids.
        ids: Vec<JobId>,
        /// When the submission was made.
        since: Option<String>,
    },
}

impl Selection {
    /// Parse `I/N` (1 ≤ I ≤ N).
    pub fn parse_shard(text: &str) -> Result<Self, ShardError> {
        let bad = || ShardError(text.to_string());
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Selection::Shard { index, count })
    }

    /// Whether `job` is selected.
    pub fn contains(&self, job: &Job) -> bool {
        match self {
            Selection::All => true,
            Selection::Shard { index, count } => job.index % count == index - 1,
            Selection::Jobs { ids, .. } => ids.contains(&job.job_id),
        }
    }

    /// How the executor is named in run events.
    pub fn label(&self) -> String {
        match self {
            Selection::All => "local".into(),
            Selection::Shard { index, count } => format!("local, shard {index}/{count}"),
            Selection::Jobs { ids, .. } => format!("local, {} job(s) of a submission", ids.len()),
        }
    }
}

/// What a launch needs besides the run: tasks, sinks, the LLM factory, the stop flag.
pub struct ExecEnv<'a> {
    /// Tasks and trainers.
    pub registry: &'a Registry,
    /// Where events go (job and run events).
    pub sink: &'a dyn EventSink,
    /// Builds each job's LLM.
    pub llm: &'a LlmFactory,
    /// Ctrl-C.
    pub cancel: &'a Cancel,
}

/// What a launch did.
#[derive(Debug)]
pub enum Launched {
    /// The jobs ran here.
    Finished(RunReport),
    /// The jobs were handed to a cluster scheduler; they run later.
    Submitted(super::submission::Submission),
}

/// Where a run's jobs execute.
pub trait Executor {
    /// Run (or submit) the run's selected jobs.
    fn launch(&self, run: &OpenRun, env: &ExecEnv<'_>) -> Result<Launched, RunError>;
}

/// This machine: a pool of `max_workers` threads (or `workers` when set).
#[derive(Debug, Clone)]
pub struct LocalExecutor {
    /// Which jobs.
    pub selection: Selection,
    /// Threads, instead of the config's `max_workers`.
    pub workers: Option<usize>,
}

impl LocalExecutor {
    /// Every job, `max_workers` threads.
    pub fn all() -> Self {
        Self {
            selection: Selection::All,
            workers: None,
        }
    }
}

impl Executor for LocalExecutor {
    fn launch(&self, run: &OpenRun, env: &ExecEnv<'_>) -> Result<Launched, RunError> {
        execute_local(run, env, &self.selection, self.workers).map(Launched::Finished)
    }
}

/// Why a selected job does not run now, before any work (resume, a claim elsewhere, a
/// requeued task's earlier attempt), or `None`: run it.
fn before_start(
    run: &OpenRun,
    selection: &Selection,
    job: &Job,
    claim: &mut Option<RunLock>,
) -> Option<Disposition> {
    let plan = &run.plan;
    if run.access == Access::Shared {
        match RunLock::acquire(&plan.run_dir.job_lock(&job.job_id)) {
            Ok(acquired) => *claim = Some(acquired.lock),
            Err(RunError::Locked { holder, .. }) => {
                return Some(Disposition::NotExecuted(format!(
                    "running in another process ({holder})"
                )));
            }
            Err(e) => return Some(Disposition::NotExecuted(e.to_string())),
        }
    }
    if run.no_jobs_yet {
        return None;
    }
    let record = recorded(&plan.run_dir, job);
    if let Selection::Jobs {
        since: Some(since), ..
    } = selection
        && let Some((state @ JobState::Finished(_), Some(finished))) = &record
        && finished.as_str() >= since.as_str()
    {
        return Some(Disposition::Reused(*state));
    }
    resume_decision(plan.spec.config.resume, record.map(|(state, _)| state))
}

/// Run the selected jobs of `run` in a thread pool (each isolated: an error or panic is a
/// failed job, the batch goes on); an exclusive run then writes its manifest and
/// run-level files.
fn execute_local(
    run: &OpenRun,
    env: &ExecEnv<'_>,
    selection: &Selection,
    workers: Option<usize>,
) -> Result<RunReport, RunError> {
    let plan = &run.plan;
    let selected: Vec<&Job> = plan.jobs.iter().filter(|j| selection.contains(j)).collect();
    let workers = workers.unwrap_or(plan.spec.config.max_workers).max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .thread_name(|i| format!("trace-bench-worker-{i}"))
        .build()
        .map_err(|source| RunError::Threads { workers, source })?;
    let ctx = JobContext {
        mode: plan.spec.config.mode,
        registry: env.registry,
        sink: env.sink,
        llm: env.llm,
        job_timeout: plan.spec.config.effective_job_timeout(),
        cancel: env.cancel.clone(),
        run_dir: &plan.run_dir,
        external_python: plan.spec.sources.external_python.as_deref(),
    };
    let sink = env.sink;
    // Run events are informational: a sink that cannot take them does not stop the run.
    let announce = |event: RunEvent| {
        let _ = sink.on_run_event(&event);
    };
    announce(RunEvent::RunStarted {
        run_id: plan.run_id.to_string(),
        jobs: plan.jobs.len(),
        selected: selected.len(),
        executor: selection.label(),
    });
    let stop_after_failure = AtomicBool::new(false);
    let run_stopped: Mutex<Option<String>> = Mutex::new(None);
    let sink_error: Mutex<Option<RunError>> = Mutex::new(None);
    let run_one = |job: &Job| -> Disposition {
        let mut claim = None;
        if let Some(d) = before_start(run, selection, job, &mut claim) {
            return d;
        }
        if sink_error.lock().map(|e| e.is_some()).unwrap_or(true) {
            return Disposition::NotExecuted("run aborted: job files could not be written".into());
        }
        if let Some(reason) = run_stopped.lock().ok().and_then(|r| r.clone()) {
            return Disposition::NotExecuted(format!("run stopped: {reason}"));
        }
        if stop_after_failure.load(Ordering::SeqCst) {
            return Disposition::NotExecuted("fail_fast_stopped".into());
        }
        if env.cancel.is_cancelled() {
            return Disposition::Cancelled;
        }
        // A rerun starts from an empty directory: nothing of an interrupted or earlier
        // attempt (events, TensorBoard files) may mix with the new one.
        if !run.no_jobs_yet
            && let Err(e) = clear_job_dir(plan, job)
        {
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
                    announce(RunEvent::RunStopping {
                        reason: reason.clone(),
                    });
                    *slot = Some(reason);
                }
                if plan.spec.config.fail_fast
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
    };
    let dispositions: Vec<Disposition> = pool.install(|| {
        selected
            .par_iter()
            .with_max_len(1)
            .map(|job| {
                let d = run_one(job);
                match &d {
                    Disposition::Reused(state) => announce(RunEvent::JobReused {
                        job_id: job.job_id.to_string(),
                        status: state.to_string(),
                    }),
                    Disposition::NotExecuted(reason) => announce(RunEvent::JobSkipped {
                        job_id: job.job_id.to_string(),
                        reason: reason.clone(),
                    }),
                    Disposition::Executed(_) | Disposition::Cancelled => {}
                }
                d
            })
            .collect()
    });
    let exclusive = run.access == Access::Exclusive;
    // The manifest and the run-level files are built while the last jobs' commits settle
    // (they read no file a commit writes); the run-level files go in place only after.
    let (finished, ended) = std::thread::scope(|scope| {
        let end = exclusive.then(|| scope.spawn(|| finalize(plan, &dispositions)));
        let finished = sink.finish();
        let ended = end.map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        (finished, ended)
    });
    let ended = ended.transpose()?;
    if let Some(e) = sink_error.into_inner().ok().flatten() {
        return Err(e);
    }
    finished?;
    let (files, causes) = match ended {
        Some((files, causes)) => (Some(files), causes),
        None => (None, Causes::default()),
    };
    let summary = files.map(|files| files.commit()).transpose()?;
    if exclusive {
        // At `file`, the manifest and run-level files durable too.
        let root = plan.run_dir.root();
        plan.spec
            .config
            .effective_durability()
            .settle(root)
            .map_err(crate::artifacts::FileError::on("sync", root))?;
    }
    let report = RunReport {
        dispositions,
        cancelled: env.cancel.is_cancelled(),
        summary,
        causes,
    };
    announce(RunEvent::RunFinished {
        executed: report.executed(),
        reused: report.reused(),
        failed: report.failed(),
        incomplete: report.incomplete(),
    });
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_one_based_and_split_round_robin() {
        assert_eq!(
            Selection::parse_shard("2/3"),
            Ok(Selection::Shard { index: 2, count: 3 })
        );
        for bad in ["0/3", "4/3", "3", "a/b", "1/0"] {
            assert!(Selection::parse_shard(bad).is_err(), "{bad}");
        }
    }
}
