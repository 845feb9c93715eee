//! Telling a running job to stop: its hard deadline (`job_timeout`) and the run's
//! cancellation (Ctrl-C).
//!
//! The trainer's context checks the job's [`JobStop`] at every evaluation, LLM call and
//! step end; when the job must stop, the check returns `Err(`[`Stopped`]`)`, which the
//! trainer passes up with `?` and the runner records as `timeout`, `cancelled` or
//! `failed`. Stops are plain values: nothing unwinds, so the runner's `catch_unwind` is
//! only for real panics. The LLM client bounds each request by the remaining time, and
//! child processes are killed at the deadline, so a job never outlives its limit by more
//! than one check.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Why a job stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Its `job_timeout` passed.
    Timeout,
    /// The user cancelled the run.
    Cancelled,
    /// Something the job cannot do without failed for good (a dataset task's agent LLM):
    /// going on would only spend optimizer calls on examples that all score 0.
    Failed,
    /// Its budget is spent: the next evaluation or call would pass this limit. Not a
    /// failure: the job keeps the best parameters it had and ends `ok`.
    Budget(crate::vocab::budget::BudgetLimit),
}

/// A stopped job: why, and what it had done by then.
#[derive(Debug, Clone, PartialEq)]
pub struct Stopped {
    /// Why.
    pub reason: StopReason,
    /// Trainer steps completed.
    pub steps: u64,
    /// Evaluator calls made.
    pub metric_calls: u64,
    /// LLM calls made.
    pub llm_calls: u64,
    /// Prompt tokens used.
    pub prompt_tokens: u64,
    /// Completion tokens used.
    pub completion_tokens: u64,
    /// What the trainer had spent on the budget's axes.
    pub spent: crate::vocab::budget::Spend,
    /// Its answered LLM calls and tokens by caller.
    pub by_role: std::collections::BTreeMap<String, crate::vocab::budget::RoleSpend>,
}

/// The run-wide cancellation flag, set by the first Ctrl-C.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag that is not set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask every job to stop at its next step end, and the scheduler to start no more.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the run was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// When one job must stop.
#[derive(Debug, Clone, Default)]
pub struct JobStop {
    deadline: Option<Instant>,
    limit: Option<Duration>,
    cancel: Cancel,
}

impl JobStop {
    /// No deadline, never cancelled (tests, direct library use).
    pub fn never() -> Self {
        Self::default()
    }

    /// A job starting now with an optional time limit, under the run's cancellation flag.
    pub fn new(limit: Option<Duration>, cancel: Cancel) -> Self {
        Self {
            deadline: limit.map(|l| Instant::now() + l),
            limit,
            cancel,
        }
    }

    /// The job's time limit, if it has one.
    pub fn limit(&self) -> Option<Duration> {
        self.limit
    }

    /// The instant the job must have stopped by.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time left before the deadline (zero once it passed); `None` without a deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Must the job stop now, whatever it is doing? (Its deadline passed.)
    pub fn hard(&self) -> Option<StopReason> {
        self.remaining()
            .is_some_and(|r| r.is_zero())
            .then_some(StopReason::Timeout)
    }

    /// Must the job stop at the end of this step? (Deadline passed, or the run was
    /// cancelled: running jobs finish their current step first.)
    pub fn at_step_end(&self) -> Option<StopReason> {
        self.hard()
            .or(self.cancel.is_cancelled().then_some(StopReason::Cancelled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_and_cancellation() {
        let never = JobStop::never();
        assert_eq!(never.hard(), None);
        assert_eq!(never.at_step_end(), None);
        assert_eq!(never.remaining(), None);

        let cancel = Cancel::new();
        let job = JobStop::new(Some(Duration::from_secs(3600)), cancel.clone());
        assert!(job.remaining().unwrap() > Duration::from_secs(3590));
        assert_eq!(job.at_step_end(), None);
        cancel.cancel();
        assert_eq!(job.hard(), None, "cancellation waits for the step end");
        assert_eq!(job.at_step_end(), Some(StopReason::Cancelled));

        let late = JobStop::new(Some(Duration::ZERO), Cancel::new());
        assert_eq!(late.hard(), Some(StopReason::Timeout));
        assert_eq!(late.at_step_end(), Some(StopReason::Timeout));
        assert_eq!(late.remaining(), Some(Duration::ZERO));
    }
}
