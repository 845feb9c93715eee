//! Typed run events: the only way the runner and trainers report what happens.
//!
//! The runner emits [`Event`]s into an [`EventSink`]; sinks (the `events.jsonl` writer,
//! the job files writer, the progress bar, ...) turn them into files or terminal output.
//! The runner itself knows nothing about files or terminals. Each event serialises to one
//! line of `events.jsonl` in a versioned envelope (schema in `docs/events.md`).

mod emitter;

use serde::{Deserialize, Serialize};

use crate::matrix::Job;
use crate::vocab::{JobStatus, Kwargs};

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
    /// What the trainer had spent by the end of this step, on every budget axis (its
    /// evaluator calls; its LLM calls and tokens with its agent's; their cost at the
    /// configured prices; its seconds): the x-axes of anytime curves.
    #[serde(default)]
    pub spent: Spent,
    /// Parameter values of the best candidate after this step.
    pub best_params: Kwargs,
    /// Multi-objective tasks: every metric of those parameters on the validation split
    /// (absent for scalar tasks).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metrics: std::collections::BTreeMap<String, f64>,
}

/// Cumulative spend at a step end (see [`StepRecord::spent`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Spent {
    /// Evaluator calls of the trainer (the monitor's excluded).
    pub metric_calls: u64,
    /// LLM calls, the agent's for the trainer's evaluations included.
    pub llm_calls: u64,
    /// Their prompt plus completion tokens.
    pub tokens: u64,
    /// Their cost in USD at the configured prices (0 without prices).
    pub cost_usd: f64,
    /// Seconds since the trainer started.
    pub seconds: f64,
}

impl From<crate::vocab::budget::Spend> for Spent {
    fn from(s: crate::vocab::budget::Spend) -> Self {
        Self {
            metric_calls: s.metric_calls,
            llm_calls: s.llm_calls,
            tokens: s.tokens,
            cost_usd: s.cost_usd,
            seconds: s.seconds,
        }
    }
}

/// Everything known when a job ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobOutcome {
    /// Final state.
    pub status: JobStatus,
    /// Machine-readable cause for a non-ok status (`no_trainable_parameters`, `panic`, ...).
    pub error_kind: Option<ErrorKind>,
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
    /// USD spent on LLM calls, when prices are configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Multi-objective tasks: every metric of the best parameters on the validation split.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// Multi-objective tasks: the job's non-dominated candidates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pareto_front: Vec<ParetoPoint>,
    /// Calls of the dataset agent (apart from the optimizer's `llm_calls`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub agent_calls: u64,
    /// Prompt tokens of the dataset agent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub agent_prompt_tokens: u64,
    /// Completion tokens of the dataset agent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub agent_completion_tokens: u64,
    /// Dataset tasks: examples of the evaluation split the final parameters got right
    /// (score 1), and how many there were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub examples_correct: Option<u64>,
    /// See `examples_correct`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub examples_total: Option<u64>,
    /// Where the examples were read from, when that depends on the machine (`hf:` tasks,
    /// the multi-objective tasks' pools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub examples_source: Option<String>,
    /// Calls (optimizer and agent) answered by the response cache, not the endpoint.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cached_calls: u64,
    /// Prompt tokens the endpoint billed (its answers; no cache hits, no stub).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub billed_prompt_tokens: u64,
    /// Completion tokens the endpoint billed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub billed_completion_tokens: u64,
    /// Failed attempts that were retried.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub llm_retries: u64,
    /// Calls that failed for good.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_llm_calls: u64,
    /// Why an `ok` job stopped: `completed` (its trainer finished) or `budget:<limit>`
    /// (its budget was spent); empty for other statuses (see `error_kind`).
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// What the trainer spent on the budget's axes (jobs whose trainer ran to an end).
    #[serde(default)]
    pub spent: Option<Spent>,
    /// Its answered LLM calls and tokens by caller (`optimizer`, `task`, `reflection`, …,
    /// `agent` for its evaluations).
    #[serde(default)]
    pub spend_by_role: std::collections::BTreeMap<String, crate::vocab::budget::RoleSpend>,
    /// Embeddings requests of the trainer (POLCA's epsilon-net, an external trainer's
    /// `/v1/embeddings` in real mode), apart from `llm_calls`; counted by the job's
    /// emitter from its `embedding_call` events, so every ending carries them.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub embedding_calls: u64,
    /// Input tokens of those embeddings (estimated for the stub and cache hits as
    /// recorded).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub embedding_tokens: u64,
}

/// Why a job did not end `ok`, as `error_kind` names it in `results.csv`, `results.json`
/// and `job_meta.json` (the same snake_case strings as before it was a type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The task's files could not be loaded.
    TaskLoadError,
    /// The task's `eval_kwargs` do not fit it.
    InvalidEvalKwargs,
    /// The task has nothing to optimize.
    NoTrainableParameters,
    /// The trainer id is unknown to this build.
    UnknownTrainer,
    /// A trainer knob has a value the trainer cannot use.
    InvalidKnob,
    /// The job panicked.
    Panic,
    /// Stopped at its `job_timeout`.
    Timeout,
    /// Stopped by the user.
    Cancelled,
    /// Stopped because a resource it needs failed.
    Failed,
    /// An external trainer's program failed before handing back a result.
    ExternalTrainerFailed,
    /// An LLM call failed for good: `llm_<kind>`, the client's kind (`auth`, `server`, …).
    Llm(String),
}

impl ErrorKind {
    /// An LLM error's kind (`llm_auth`, …).
    pub fn llm(e: &crate::llm::LlmError) -> Self {
        Self::Llm(e.kind().to_string())
    }

    /// The file spelling.
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        let s = match self {
            Self::TaskLoadError => "task_load_error",
            Self::InvalidEvalKwargs => "invalid_eval_kwargs",
            Self::NoTrainableParameters => "no_trainable_parameters",
            Self::UnknownTrainer => "unknown_trainer",
            Self::InvalidKnob => "invalid_knob",
            Self::Panic => "panic",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
            Self::ExternalTrainerFailed => "external_trainer_failed",
            Self::Llm(kind) => return format!("llm_{kind}").into(),
        };
        s.into()
    }

    /// Read the file spelling back.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "task_load_error" => Self::TaskLoadError,
            "invalid_eval_kwargs" => Self::InvalidEvalKwargs,
            "no_trainable_parameters" => Self::NoTrainableParameters,
            "unknown_trainer" => Self::UnknownTrainer,
            "invalid_knob" => Self::InvalidKnob,
            "panic" => Self::Panic,
            "timeout" => Self::Timeout,
            "cancelled" => Self::Cancelled,
            "failed" => Self::Failed,
            "external_trainer_failed" => Self::ExternalTrainerFailed,
            other => Self::Llm(other.strip_prefix("llm_")?.to_string()),
        })
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_str())
    }
}

impl Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown error kind `{text}`")))
    }
}

impl JobOutcome {
    /// A job that ended with `status` and `feedback` before spending or scoring anything;
    /// `error_kind` set makes `feedback` its error message too.
    pub fn ended(status: JobStatus, error_kind: Option<ErrorKind>, feedback: String) -> Self {
        Self {
            status,
            error: error_kind.as_ref().map(|_| feedback.clone()),
            error_kind,
            score_val_initial: None,
            score_val_final: None,
            score_val: None,
            score_test: None,
            feedback,
            time_seconds: 0.0,
            steps: 0,
            best_step: None,
            evaluator_calls: 0,
            llm_calls: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            resolved_optimizer: None,
            initial_params: None,
            best_params: None,
            final_params: None,
            cost_usd: None,
            metrics: Default::default(),
            pareto_front: Vec::new(),
            agent_calls: 0,
            agent_prompt_tokens: 0,
            agent_completion_tokens: 0,
            examples_correct: None,
            examples_total: None,
            examples_source: None,
            cached_calls: 0,
            billed_prompt_tokens: 0,
            billed_completion_tokens: 0,
            llm_retries: 0,
            failed_llm_calls: 0,
            stop_reason: None,
            spent: None,
            spend_by_role: Default::default(),
            embedding_calls: 0,
            embedding_tokens: 0,
        }
    }
}

/// Agent counters are left out of the events of tasks without an agent.
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A candidate on a job's Pareto front.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParetoPoint {
    /// Candidate id.
    pub candidate_id: u64,
    /// Its metrics (mean over the split it was scored on).
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// Its parameter values.
    pub params: Kwargs,
}

/// How the job's final parameters did on one example of the evaluation or test split, so a
/// researcher sees what failed. Written to `artifacts/examples.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExampleRecord {
    /// `validation`, `train` (when the task has no validation split) or `test`.
    pub split: crate::task::SplitName,
    /// Position of the example in its split (0-based).
    pub index: usize,
    /// The question (the example's input).
    pub input: serde_json::Value,
    /// What the scorer expects (the example's `info`: the answer, hints, tests).
    pub expected: serde_json::Value,
    /// What the candidate or agent answered.
    pub reply: String,
    /// Its score.
    pub score: f64,
    /// Whether it was answered right, when the scorer says right or wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct: Option<bool>,
    /// The scorer's feedback.
    pub feedback: String,
}

/// One LLM request and its answer (or error), secrets redacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmTranscript {
    /// Step.
    pub step: u64,
    /// Index of the call within the job, from 0 (the response cache's call index).
    pub call: u64,
    /// Who called: `optimizer`, or `agent` (a dataset task's per-example calls, numbered
    /// apart).
    #[serde(default = "optimizer_caller")]
    pub caller: String,
    /// Model name, as sent.
    pub model: String,
    /// The conversation sent.
    pub messages: Vec<crate::llm::Message>,
    /// Sampling temperature as sent (the llm block's value wins over the optimizer's).
    pub temperature: Option<f64>,
    /// Reply length limit as sent (the llm block's value wins over the optimizer's).
    pub max_tokens: Option<u32>,
    /// Why the model stopped (`stop`, `length`, …), when the endpoint said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// The assistant's text; `None` when the call failed.
    pub response: Option<String>,
    /// Token counts of a successful call.
    pub usage: Option<crate::llm::Usage>,
    /// Seconds.
    pub latency_s: f64,
    /// Answered from the response cache.
    pub cached: bool,
    /// The error of a failed call (`kind: message`).
    pub error: Option<String>,
}

fn optimizer_caller() -> String {
    "optimizer".into()
}

impl LlmTranscript {
    /// The record of one call: what `sent` says went out with the (already redacted)
    /// `messages`, and the answer or the error that came back.
    pub fn of(
        caller: &str,
        (step, call): (u64, u64),
        sent: crate::llm::Sent,
        messages: Vec<crate::llm::Message>,
        answer: Result<&crate::llm::ChatResponse, String>,
    ) -> Self {
        let response = answer.as_ref().ok();
        Self {
            step,
            call,
            caller: caller.to_string(),
            model: sent.model,
            messages,
            temperature: sent.temperature,
            max_tokens: sent.max_tokens,
            finish_reason: response.and_then(|r| r.finish_reason.clone()),
            response: response.map(|r| r.content.clone()),
            usage: response.map(|r| r.usage),
            latency_s: response.map_or(0.0, |r| r.latency_s),
            cached: response.is_some_and(|r| r.cached),
            error: answer.err(),
        }
    }
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
        /// The second parent of a merge (crossover), if it is one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        merged_with: Option<u64>,
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
    /// The trainer embedded a text (`/v1/embeddings`).
    EmbeddingCall {
        /// Step.
        step: u64,
        /// Model name (the embedding model asked for, else the client's).
        model: String,
        /// True for the stub's hash-derived vectors.
        stub: bool,
        /// Input tokens.
        tokens: u64,
        /// Seconds.
        latency_s: f64,
        /// Answered from cache.
        cached: bool,
        /// Retries before the answer.
        retries: u32,
    },
    /// The full text of one LLM exchange. Written to `artifacts/llm_calls.jsonl`, not to
    /// `events.jsonl` (prompts are large); it carries the `seq` of the event that reports
    /// the call (`llm_call`, or the `warning` of a failed call) so the two files join.
    LlmTranscript(Box<LlmTranscript>),
    /// One example of the final evaluation, attached like a transcript (to
    /// `artifacts/examples.jsonl`, carrying the `seq` of `job_finished`).
    ExampleRecord(Box<ExampleRecord>),
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

/// What happens to the run as a whole (not to one job): sinks may print or record it.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// The invocation starts: `selected` of the plan's `jobs` are its to run, by `executor`.
    RunStarted {
        /// The run id.
        run_id: String,
        /// Jobs in the plan.
        jobs: usize,
        /// Jobs this invocation considers (a shard, a chunk, or all).
        selected: usize,
        /// `local`, `local shard I/N`, `slurm array task …`.
        executor: String,
    },
    /// Resume kept a job's earlier result.
    JobReused {
        /// The job.
        job_id: String,
        /// Its recorded status.
        status: String,
    },
    /// A job was not run, and why (fail-fast, a stop, another process running it, …).
    JobSkipped {
        /// The job.
        job_id: String,
        /// Why.
        reason: String,
    },
    /// No further job starts, and why (an authentication error, …).
    RunStopping {
        /// Why.
        reason: String,
    },
    /// The invocation ended.
    RunFinished {
        /// Jobs that ran.
        executed: usize,
        /// Jobs whose earlier result was kept.
        reused: usize,
        /// Jobs that ran and failed or timed out.
        failed: usize,
        /// Jobs left without a result.
        incomplete: usize,
    },
}

/// What a sink's error does to the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkPolicy {
    /// The run directory's own files: an error stops the run (results must not be lost
    /// silently).
    Fatal,
    /// An optional exporter: the error is reported once and the run goes on.
    Warn,
}

/// Something that consumes events. Sinks are shared by all worker threads.
pub trait EventSink: Send + Sync {
    /// Handle one event of `job`. Under [`SinkPolicy::Fatal`] an error stops the run.
    fn on_event(&self, job: &Job, event: &Event) -> Result<(), SinkError>;

    /// Handle a run-level event (most sinks ignore them).
    fn on_run_event(&self, _event: &RunEvent) -> Result<(), SinkError> {
        Ok(())
    }

    /// The run is over: flush and close (called once, after the last event).
    fn finish(&self) -> Result<(), SinkError> {
        Ok(())
    }

    /// Whether this sink's errors stop the run.
    fn policy(&self) -> SinkPolicy {
        SinkPolicy::Fatal
    }

    /// The sink's name in warnings.
    fn name(&self) -> &str {
        "sink"
    }
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

/// Sends each event to several sinks in order, applying each sink's [`SinkPolicy`]: the
/// first error of a `Fatal` sink is returned; a `Warn` sink's errors are kept as warnings
/// (its first one per sink) and the run goes on.
pub struct Fanout {
    sinks: Vec<Box<dyn EventSink>>,
    warnings: std::sync::Mutex<Vec<String>>,
}

impl Fanout {
    /// A fan-out over `sinks`.
    pub fn new(sinks: Vec<Box<dyn EventSink>>) -> Self {
        Self {
            sinks,
            warnings: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The optional sinks' errors so far, one per sink.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn each(
        &self,
        mut call: impl FnMut(&dyn EventSink) -> Result<(), SinkError>,
    ) -> Result<(), SinkError> {
        let mut first_error = None;
        for sink in &self.sinks {
            let Err(e) = call(sink.as_ref()) else {
                continue;
            };
            match sink.policy() {
                SinkPolicy::Fatal => {
                    first_error.get_or_insert(e);
                }
                SinkPolicy::Warn => {
                    let mut warnings = self
                        .warnings
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    let prefix = format!("{}: ", sink.name());
                    if !warnings.iter().any(|w| w.starts_with(&prefix)) {
                        warnings.push(format!("{prefix}{e}"));
                    }
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl EventSink for Fanout {
    fn on_event(&self, job: &Job, event: &Event) -> Result<(), SinkError> {
        self.each(|s| s.on_event(job, event))
    }

    fn on_run_event(&self, event: &RunEvent) -> Result<(), SinkError> {
        self.each(|s| s.on_run_event(event))
    }

    fn finish(&self) -> Result<(), SinkError> {
        self.each(|s| s.finish())
    }

    fn name(&self) -> &str {
        "fanout"
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_kinds_keep_their_file_spelling() {
        use super::ErrorKind;
        for text in [
            "task_load_error",
            "invalid_eval_kwargs",
            "no_trainable_parameters",
            "unknown_trainer",
            "invalid_knob",
            "panic",
            "timeout",
            "cancelled",
            "failed",
            "external_trainer_failed",
            "llm_auth",
            "llm_server",
        ] {
            let kind = ErrorKind::parse(text).unwrap();
            assert_eq!(kind.to_string(), text);
            assert_eq!(serde_json::to_value(&kind).unwrap(), text);
        }
        assert_eq!(ErrorKind::parse("nonsense"), None);
    }

    use super::*;
    use serde_json::{Value as Json, json};

    fn envelope(seq: u64, kind: EventKind) -> Event {
        Event {
            v: SCHEMA_VERSION,
            seq,
            ts: "2026-11-21T15:02:11.120301Z".into(),
            elapsed_s: 0.5,
            kind,
        }
    }

    fn one_of_each() -> Vec<EventKind> {
        let params: Kwargs = serde_json::from_value(json!({"value": 1.5})).unwrap();
        vec![
            EventKind::JobStarted {
                job_index: 0,
                task_id: "internal:numeric_param".into(),
                trainer_id: "PrioritySearch".into(),
                seed: 1,
                mode: "stub".into(),
                llm: crate::llm::LlmInfo {
                    provider: "stub".into(),
                    model: "m".into(),
                    base_url: String::new(),
                    stub: true,
                },
            },
            EventKind::Eval {
                step: 0,
                candidate_id: 0,
                split: crate::task::SplitName::Train,
                examples: 1,
                score: Some(-3.0),
                seconds: 0.001,
            },
            EventKind::Candidate {
                step: 1,
                candidate_id: 1,
                parent_id: Some(0),
                merged_with: None,
                score: Some(-1.5),
                best: true,
            },
            EventKind::LlmCall {
                step: 1,
                model: "m".into(),
                stub: true,
                prompt_tokens: 10,
                completion_tokens: 5,
                latency_s: 0.01,
                cached: false,
                retries: 0,
                updated: vec!["value".into()],
            },
            EventKind::Warning {
                step: Some(1),
                message: "junk".into(),
            },
            EventKind::Step(StepRecord {
                step: 1,
                score_train: Some(-1.5),
                score_val: None,
                best_score: Some(-1.5),
                step_seconds: 0.1,
                elapsed_seconds: 0.2,
                evaluator_calls: 2,
                llm_calls: 1,
                tokens: 15,
                candidates: 2,
                spent: Spent {
                    metric_calls: 2,
                    llm_calls: 1,
                    tokens: 15,
                    cost_usd: 0.0,
                    seconds: 0.1,
                },
                best_params: params.clone(),
                metrics: Default::default(),
            }),
            EventKind::JobFinished(Box::new(JobOutcome {
                score_val_initial: Some(-3.0),
                score_val_final: Some(-1.5),
                score_val: Some(-1.5),
                time_seconds: 0.3,
                steps: 1,
                best_step: Some(1),
                evaluator_calls: 4,
                llm_calls: 1,
                prompt_tokens: 10,
                completion_tokens: 5,
                resolved_optimizer: Some("OptoPrime".into()),
                initial_params: Some(params.clone()),
                best_params: Some(params.clone()),
                final_params: Some(params),
                ..JobOutcome::ended(JobStatus::Ok, None, "ok".into())
            })),
            EventKind::LlmTranscript(Box::new(LlmTranscript {
                step: 1,
                call: 0,
                caller: "optimizer".into(),
                model: "m".into(),
                messages: vec![crate::llm::Message::new("user", "improve x")],
                temperature: Some(0.0),
                max_tokens: None,
                finish_reason: Some("stop".into()),
                response: Some("x = 2".into()),
                usage: Some(crate::llm::Usage {
                    prompt_tokens: 10,
                    completion_tokens: 5,
                }),
                latency_s: 0.01,
                cached: false,
                error: None,
            })),
        ]
    }

    #[test]
    fn every_event_type_has_the_envelope_and_round_trips() {
        let types = [
            "job_started",
            "eval",
            "candidate",
            "llm_call",
            "warning",
            "step",
            "job_finished",
            "llm_transcript",
        ];
        for (i, (kind, ty)) in one_of_each().into_iter().zip(types).enumerate() {
            let event = envelope(i as u64, kind);
            let line = serde_json::to_string(&event).unwrap();
            assert!(!line.contains('\n'), "one line per event");
            let value: Json = serde_json::from_str(&line).unwrap();
            assert_eq!(value["type"], ty);
            assert_eq!(value["v"], 1);
            assert_eq!(value["seq"], i);
            assert_eq!(value["ts"], "2026-11-21T15:02:11.120301Z");
            assert_eq!(value["elapsed_s"], 0.5);
            let back: Event = serde_json::from_str(&line).unwrap();
            assert_eq!(back, event, "{ty} round-trips");
        }
    }

    #[test]
    fn step_and_outcome_fields_are_named_as_documented() {
        let step = serde_json::to_value(envelope(0, one_of_each().swap_remove(5))).unwrap();
        for key in [
            "step",
            "score_train",
            "score_val",
            "best_score",
            "step_seconds",
            "elapsed_seconds",
            "evaluator_calls",
            "llm_calls",
            "tokens",
            "best_params",
        ] {
            assert!(step.get(key).is_some(), "step event lacks `{key}`");
        }
        let done = serde_json::to_value(envelope(0, one_of_each().swap_remove(6))).unwrap();
        assert_eq!(done["status"], "ok");
        assert_eq!(done["score_val"], -1.5);
    }
}
