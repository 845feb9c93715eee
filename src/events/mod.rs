//! Typed run events: the only way the runner and trainers report what happens.
//!
//! The runner emits [`Event`]s into an [`EventSink`]; sinks (the `events.jsonl` writer,
//! the job files writer, the progress bar, ...) turn them into files or terminal output.
//! The runner itself knows nothing about files or terminals. Each event serialises to one
//! line of `events.jsonl` in a versioned envelope (schema in `docs/events.md`).

mod emitter;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::config::model::Kwargs;
use crate::matrix::Job;

pub use emitter::Emitter;

/// Version of the `events.jsonl` envelope.
pub const SCHEMA_VERSION: u32 = 1;

/// One event of one job, in its envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Envelope version ([`SCHEMA_VERSION`]).
    pub v: u32,
    /// Position in the job's event sequence, from 0.
    pub seq: u64,
    /// Wall-clock time, RFC 3339 UTC with microseconds.
    pub ts: String,
    /// Seconds since the job started.
    pub elapsed_s: f64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Final state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Ran to the end.
    Ok,
    /// An error stopped it (or it could not start).
    Failed,
    /// Stopped at its time limit.
    Timeout,
    /// Could not run here, by design (reason given).
    Skipped,
    /// Stopped by the user.
    Cancelled,
}

impl JobStatus {
    /// The spelling used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Ok => "ok",
            JobStatus::Failed => "failed",
            JobStatus::Timeout => "timeout",
            JobStatus::Skipped => "skipped",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

/// The per-step record: one point of the learning curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// 0 = the initial parameters; 1.. = trainer iterations.
    pub step: u64,
    /// Mean score of this step's best candidate on the training examples it was judged on.
    pub score_train: Option<f64>,
    /// Score of the best-so-far parameters on the validation split (when the task has one).
    pub score_val: Option<f64>,
    /// Best training score so far.
    pub best_score: Option<f64>,
    /// Seconds spent in this step.
    pub step_seconds: f64,
    /// Seconds since the job started.
    pub elapsed_seconds: f64,
    /// Evaluator calls (one per example scored) in this step.
    pub evaluator_calls: u64,
    /// LLM calls in this step.
    pub llm_calls: u64,
    /// LLM tokens (prompt + completion) in this step.
    pub tokens: u64,
    /// Candidates evaluated in this step.
    pub candidates: u64,
    /// Parameter values of the best candidate after this step.
    pub best_params: Kwargs,
}

/// Everything known when a job ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobOutcome {
    /// Final state.
    pub status: JobStatus,
    /// Machine-readable cause for a non-ok status (`no_trainable_parameters`, `panic`, ...).
    pub error_kind: Option<String>,
    /// Human-readable cause.
    pub error: Option<String>,
    /// Evaluation-split score of the initial parameters.
    pub score_val_initial: Option<f64>,
    /// Evaluation-split score of the final parameters.
    pub score_val_final: Option<f64>,
    /// Best of initial and final (the reference's rule).
    pub score_val: Option<f64>,
    /// Test-split score of the best parameters, when the task has a test split.
    pub score_test: Option<f64>,
    /// Evaluation summary of the final parameters (or the reason of a non-ok status).
    pub feedback: String,
    /// Wall-clock seconds of the job.
    pub time_seconds: f64,
    /// Trainer iterations run.
    pub steps: u64,
    /// Step at which the best candidate was found.
    pub best_step: Option<u64>,
    /// Evaluator calls in total.
    pub evaluator_calls: u64,
    /// LLM calls in total.
    pub llm_calls: u64,
    /// Prompt tokens in total.
    pub prompt_tokens: u64,
    /// Completion tokens in total.
    pub completion_tokens: u64,
    /// The prompt protocol that ran.
    pub resolved_optimizer: Option<String>,
    /// Initial parameter values.
    pub initial_params: Option<Kwargs>,
    /// Best parameter values.
    pub best_params: Option<Kwargs>,
    /// Final parameter values.
    pub final_params: Option<Kwargs>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A job began.
    JobStarted {
        /// Matrix position.
        job_index: usize,
        /// Task id.
        task_id: String,
        /// Trainer id.
        trainer_id: String,
        /// Job seed.
        seed: i64,
        /// `stub` or `real`.
        mode: String,
        /// Provider / model.
        llm: crate::llm::LlmInfo,
    },
    /// A learning-curve point.
    Step(StepRecord),
    /// A candidate was evaluated.
    Candidate {
        /// Step it was proposed in.
        step: u64,
        /// Stable id within the job (0 = initial).
        candidate_id: u64,
        /// The candidate it was derived from.
        parent_id: Option<u64>,
        /// Mean training score.
        score: Option<f64>,
        /// Whether it became the new best.
        best: bool,
    },
    /// The evaluator scored some examples.
    Eval {
        /// Step.
        step: u64,
        /// Which candidate.
        candidate_id: u64,
        /// `train`, `validation` or `test`.
        split: crate::task::SplitName,
        /// Examples scored.
        examples: u64,
        /// Mean score.
        score: Option<f64>,
        /// Seconds spent.
        seconds: f64,
    },
    /// The optimizer called the LLM.
    LlmCall {
        /// Step.
        step: u64,
        /// Model name.
        model: String,
        /// True for the stub proposer.
        stub: bool,
        /// Prompt tokens.
        prompt_tokens: u64,
        /// Completion tokens.
        completion_tokens: u64,
        /// Seconds.
        latency_s: f64,
        /// Answered from cache.
        cached: bool,
        /// Retries before the answer.
        retries: u32,
        /// Variables the parsed reply updates (empty: no usable proposal).
        updated: Vec<String>,
    },
    /// Something worth a look that did not stop the job.
    Warning {
        /// Step, when it belongs to one.
        step: Option<u64>,
        /// What happened.
        message: String,
    },
    /// The job ended.
    JobFinished(Box<JobOutcome>),
}

/// Something that consumes events. Sinks are shared by all worker threads.
pub trait EventSink: Send + Sync {
    /// Handle one event of `job`. An error stops the run (a sink that cannot write its
    /// files must not let results be lost silently).
    fn on_event(&self, job: &Job, event: &Event) -> Result<(), SinkError>;
}

/// A sink could not do its work.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct SinkError {
    /// What was being done (names the file).
    pub context: String,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

impl SinkError {
    /// Wrap an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self {
            context: context.into(),
            source,
        }
    }
}

/// Sends each event to several sinks in order.
pub struct Fanout {
    sinks: Vec<Box<dyn EventSink>>,
}

impl Fanout {
    /// A fan-out over `sinks`.
    pub fn new(sinks: Vec<Box<dyn EventSink>>) -> Self {
        Self { sinks }
    }
}

impl EventSink for Fanout {
    fn on_event(&self, job: &Job, event: &Event) -> Result<(), SinkError> {
        let mut first_error = None;
        for sink in &self.sinks {
            if let Err(e) = sink.on_event(job, event) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Helper for sinks that look at a field of a serialised event.
pub fn event_json(event: &Event) -> Json {
    serde_json::to_value(event).unwrap_or(Json::Null)
}
