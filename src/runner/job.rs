//! Execute one job: fresh task, seeded stub LLM, the trainer loop, the reference's
//! initial/final/test evaluations, and a `job_finished` event whatever happens (an error
//! or a panic becomes a failed job with its message; the batch goes on).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::{LlmFactory, StubFlavor};
use crate::events::{
    Emitter, ErrorKind, EventKind, EventSink, ExampleRecord, JobOutcome, SinkError,
};
use crate::llm::tally::{Spend, Tallied, Tally};
use crate::llm::{Llm, LlmError};
use crate::matrix::Job;
use crate::optimizer::{Protocol, protocol_for};
use crate::registry::Registry;
use crate::stop::{Cancel, JobStop, StopReason, Stopped};
use crate::task::agent::{AgentBackend, AgentHandle};
use crate::task::{EvalLimits, Example, ExampleResult, SplitName, Task};
use crate::trainer::external::Settings as ExternalSettings;
use crate::trainer::{Algorithm, Counters, Ctx, JobInfo, Monitor, TrainResult, agent_transcripts};
use crate::vocab::JobStatus;
use crate::vocab::Kwargs;
use crate::vocab::Mode;

/// What a job needs from its run.
pub struct JobContext<'a> {
    /// Stub or real.
    pub mode: Mode,
    /// Tasks and trainers.
    pub registry: &'a Registry,
    /// Where events go.
    pub sink: &'a dyn EventSink,
    /// Builds each job's LLM (stub, or the real client sharing the run's limiter/cache).
    pub llm: &'a LlmFactory,
    /// Hard per-job time limit (`job_timeout`), if any.
    pub job_timeout: Option<Duration>,
    /// The run's cancellation flag.
    pub cancel: Cancel,
    /// The run directory (external trainers work in their job's directory).
    pub run_dir: &'a crate::artifacts::layout::RunDir,
    /// The Python external trainers run with, if configured.
    pub external_python: Option<&'a str>,
}

/// How a job ended, for the scheduler.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEnd {
    /// Final status.
    pub status: JobStatus,
    /// Set when the whole run must stop (an LLM auth error): why, with a hint.
    pub stop_run: Option<String>,
}

/// Run one job to its end; only a sink failure (files cannot be written) is an error.
pub fn run_job(job: &Job, ctx: &JobContext<'_>) -> Result<JobEnd, SinkError> {
    let mut emitter = Emitter::new(job, ctx.sink);
    let (protocol, fallback_note) = job_protocol(job, ctx.registry);
    // Every answer of the job's clients is counted here, however the job ends.
    let (tally, agent_tally) = (Tally::default(), Tally::default());
    // External trainers' libraries parse their own formats: the stub answers in those.
    let external = ctx
        .registry
        .trainer(&job.trainer_id)
        .is_some_and(|p| p.external.is_some());
    let stub = if external {
        StubFlavor::Libraries
    } else {
        StubFlavor::Protocol(protocol.clone())
    };
    let llm = ctx
        .llm
        .for_job(job.job_id.as_str(), job.seed, stub)
        .map(|l| Box::new(Tallied::new(l, tally.clone())) as Box<dyn Llm>);
    emitter.emit(EventKind::JobStarted {
        job_index: job.index,
        task_id: job.task_id.to_string(),
        trainer_id: job.trainer_id.to_string(),
        seed: job.seed,
        mode: ctx.mode.as_str().to_string(),
        llm: llm.as_ref().map_or_else(|_| ctx.llm.info(), |l| l.info()),
    });
    if let Some(note) = fallback_note {
        emitter.emit(EventKind::Warning {
            step: None,
            message: note,
        });
    }
    let started = Instant::now();
    let mut attempt = Attempt {
        job,
        registry: ctx.registry,
        protocol: protocol.as_ref(),
        emitter: &mut emitter,
        stop: JobStop::new(ctx.job_timeout, ctx.cancel.clone()),
        agent: None,
        llm_failure: None,
        partial: None,
        agent_tally: agent_tally.clone(),
        info: JobInfo {
            job_id: job.job_id.to_string(),
            trainer_id: job.trainer_id.to_string(),
            dir: Some(ctx.run_dir.job(&job.job_id).root().to_path_buf()),
            mode: ctx.mode,
            external_python: ctx.external_python.map(str::to_string),
        },
        prices: ctx.llm.settings().map_or((0.0, 0.0), |s| {
            (
                s.price_prompt.unwrap_or(0.0),
                s.price_completion.unwrap_or(0.0),
            )
        }),
    };
    let mut outcome = match attempt.run(llm, ctx.llm) {
        Ok(outcome) => outcome,
        Err(stopped) => attempt.stopped_outcome(&stopped, ctx.job_timeout, started.elapsed()),
    };
    let (agent, llm_failure) = (attempt.agent, attempt.llm_failure);
    let spend = tally.spend().plus(agent_tally.spend());
    account(
        &mut outcome,
        agent.as_ref(),
        spend,
        ctx.llm,
        started.elapsed(),
    );
    let stop_run = llm_failure.filter(LlmError::stops_run).map(|e| {
        let hint = e
            .hint()
            .map(|h| format!(" (hint: {h})"))
            .unwrap_or_default();
        format!("{e}{hint}")
    });
    let status = outcome.status;
    emitter.emit(EventKind::JobFinished(Box::new(outcome)));
    match emitter.take_error() {
        Some(e) => Err(e),
        None => Ok(JobEnd { status, stop_run }),
    }
}

/// The job's prompt protocol (its own optimizer, else the trainer's default) and, when the
/// name is unknown, the note saying which one is used instead.
fn job_protocol(job: &Job, registry: &Registry) -> (Arc<dyn Protocol>, Option<String>) {
    let preset_optimizer = registry
        .trainer(&job.trainer_id)
        .and_then(|p| p.default_optimizer.as_deref());
    let (protocol, note) = protocol_for(job.resolved.optimizer.as_deref().or(preset_optimizer));
    (Arc::from(protocol), note)
}

/// Time, the agent's counters, what was billed and its cost, once the job has ended
/// however it ended.
fn account(
    outcome: &mut JobOutcome,
    agent: Option<&AgentHandle>,
    spend: Spend,
    factory: &LlmFactory,
    elapsed: Duration,
) {
    outcome.cached_calls = spend.cached;
    outcome.billed_prompt_tokens = spend.billed_prompt_tokens;
    outcome.billed_completion_tokens = spend.billed_completion_tokens;
    outcome.llm_retries = spend.retries;
    outcome.failed_llm_calls = spend.failed;
    outcome.time_seconds = elapsed.as_secs_f64();
    if let Some(agent) = agent {
        let usage = agent.usage();
        outcome.agent_calls = usage.calls;
        outcome.agent_prompt_tokens = usage.prompt_tokens;
        outcome.agent_completion_tokens = usage.completion_tokens;
    }
    // What the endpoint billed costs money (the agent talks to the same model); cache
    // hits cost nothing.
    let calls = outcome.llm_calls + outcome.agent_calls;
    if let (Some(settings), false) = (factory.settings(), calls == 0) {
        outcome.cost_usd =
            settings.cost(spend.billed_prompt_tokens, spend.billed_completion_tokens);
    }
}

/// One job being executed: what it runs with, and the LLM failure that ended it, if any.
struct Attempt<'j, 'e> {
    job: &'j Job,
    registry: &'j Registry,
    protocol: &'j dyn Protocol,
    emitter: &'j mut Emitter<'e>,
    stop: JobStop,
    /// Dataset tasks: the agent answering the examples, built like the job's LLM.
    agent: Option<AgentHandle>,
    /// The LLM error that ended the job (an auth error also stops the run).
    llm_failure: Option<LlmError>,
    /// What a job stopped early keeps: the initial parameters and score, and the best
    /// set the monitor scored completely before the stop.
    partial: Option<Partial>,
    /// Counts the agent's answers.
    agent_tally: Tally,
    /// What the trainer may know of the job (directory, mode, external Python).
    info: JobInfo,
    /// USD per million prompt and completion tokens (0 without prices), for budgets.
    prices: (f64, f64),
}

/// The results a stopped job had reached.
struct Partial {
    initial: Kwargs,
    initial_score: Option<f64>,
    best: Option<(Kwargs, f64)>,
    metrics: std::collections::BTreeMap<String, f64>,
}

impl Partial {
    fn of(
        monitor: &Monitor,
        initial: &Kwargs,
        initial_score: Option<f64>,
        deadline: Option<Instant>,
    ) -> Self {
        let best = monitor.best_by(deadline);
        let metrics = best
            .as_ref()
            .map(|(p, _)| monitor.metrics(p))
            .unwrap_or_default();
        Self {
            initial: initial.clone(),
            initial_score,
            best,
            metrics,
        }
    }

    /// `outcome` with the scores and parameters reached (its status and reason kept).
    fn apply(self, outcome: &mut JobOutcome) {
        outcome.score_val_initial = self.initial_score;
        outcome.initial_params = Some(self.initial.clone());
        if let Some((best, score)) = self.best {
            outcome.score_val_final = Some(score);
            outcome.score_val = Some(self.initial_score.map_or(score, |i| i.max(score)));
            outcome.best_params = Some(best.clone());
            outcome.final_params = Some(best);
            outcome.metrics = self.metrics;
        }
    }
}

impl Attempt<'_, '_> {
    /// Build the agent, execute, and turn a real panic into a failed job; `Err` is a stop.
    fn run(
        &mut self,
        llm: Result<Box<dyn Llm>, LlmError>,
        factory: &LlmFactory,
    ) -> Result<JobOutcome, Stopped> {
        let agent = self
            .registry
            .task(&self.job.task_id)
            .filter(|t| t.uses_agent())
            .map(|_| {
                factory
                    .agent_for_job(self.job.job_id.as_str(), self.job.seed)
                    .map(|backend| match backend {
                        AgentBackend::Llm(l) => {
                            AgentBackend::Llm(Box::new(Tallied::new(l, self.agent_tally.clone())))
                        }
                        stub => stub,
                    })
                    .map(|backend| AgentHandle::new(backend, self.stop.deadline()))
            })
            .transpose();
        let mut llm = match llm.and_then(|llm| agent.map(|agent| (llm, agent))) {
            Ok((llm, agent)) => {
                self.agent = agent;
                llm
            }
            Err(e) => {
                let outcome = failed(ErrorKind::llm(&e), e.to_string(), Spent::default());
                self.llm_failure = Some(e);
                return Ok(outcome);
            }
        };
        // Only a real panic unwinds: stops come back as values.
        match catch_unwind(AssertUnwindSafe(|| self.execute(llm.as_mut()))) {
            Ok(result) => result,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                Ok(failed(
                    ErrorKind::Panic,
                    format!("the job panicked: {message}"),
                    Spent::default(),
                ))
            }
        }
    }

    /// The job's steps: bind the task, read the trainer, score the initial parameters,
    /// run the trainer, score its result. An outcome that ends the job early is `Ok` too;
    /// `Err` is a stop (deadline, cancellation, the agent failing for good).
    fn execute(&mut self, llm: &mut dyn Llm) -> Result<JobOutcome, Stopped> {
        let (task, algorithm) = match self.bind_task().and_then(|t| Ok((t, self.algorithm()?))) {
            Ok(bound) => bound,
            Err(end) => return Ok(end.outcome()),
        };
        let initial = task.initial_values();
        let mut monitor = Monitor::default();
        let (initial_score, _) = monitor.score(&task, &initial);
        self.emit_agent_exchanges(&task, 0);
        // An initial score cut short by the deadline is no result.
        let deadline = self.stop.deadline();
        let initial_score = if deadline.is_some_and(|d| Instant::now() > d) {
            None
        } else {
            initial_score
        };
        // An agent cut off by the deadline is a timeout, not an agent failure.
        self.check_deadline(0, &Counters::default(), monitor.calls)?;
        let spent = Spent {
            evaluator_calls: monitor.calls,
            ..Spent::default()
        };
        if let Some(outcome) = self.agent_failed(spent) {
            return Ok(outcome);
        }
        let ctx = Ctx::new(
            &task,
            llm,
            self.protocol,
            self.emitter,
            &mut monitor,
            self.job.seed,
        )
        .with_stop(self.stop.clone())
        .with_threads(job_threads(self.job))
        .with_job(self.info.clone())
        .with_budget(self.job.resolved.budget, self.prices);
        let mut stop_reason = "completed".to_string();
        let result = match algorithm.run(ctx) {
            Ok(result) => result,
            // A spent budget is an end, not a failure: the job keeps the best parameters
            // its trainer had reported and is scored like any finished job.
            Err(stopped) if matches!(stopped.reason, StopReason::Budget(_)) => {
                if let StopReason::Budget(limit) = stopped.reason {
                    stop_reason = format!("budget:{}", limit.as_str());
                }
                budget_result(&stopped, &monitor, &initial)
            }
            Err(stopped) => {
                self.emit_agent_exchanges(&task, stopped.steps);
                self.partial = Some(Partial::of(&monitor, &initial, initial_score, deadline));
                return Err(stopped);
            }
        };
        if let Some(message) = &result.failure {
            let spent = Spent {
                steps: result.steps,
                ..Spent::of(&result.counters, monitor.calls)
            };
            let mut outcome = failed(ErrorKind::ExternalTrainerFailed, message.clone(), spent);
            Partial::of(&monitor, &initial, initial_score, deadline).apply(&mut outcome);
            return Ok(outcome);
        }
        if let Some(e) = &result.llm_failure {
            self.llm_failure = Some(e.clone());
            let spent = Spent {
                steps: result.steps,
                ..Spent::of(&result.counters, monitor.calls)
            };
            let mut outcome = failed(ErrorKind::llm(e), e.to_string(), spent);
            Partial::of(&monitor, &initial, initial_score, deadline).apply(&mut outcome);
            return Ok(outcome);
        }
        let finals = final_scores(&task, &mut monitor, &result.best_params);
        self.emit_agent_exchanges(&task, result.steps);
        // Final evaluations cut short by the deadline would report failure scores as
        // results: the job keeps what was scored before.
        if let Err(stopped) = self.check_deadline(result.steps, &result.counters, monitor.calls) {
            self.partial = Some(Partial::of(&monitor, &initial, initial_score, deadline));
            return Err(stopped);
        }
        // (Its steps stay 0, as they always have in this ending.)
        if let Some(mut outcome) = self.agent_failed(Spent::of(&result.counters, monitor.calls)) {
            outcome.score_val_initial = initial_score;
            return Ok(outcome);
        }
        let mut finals = finals;
        // Accuracy counts where the scorer says right or wrong for every example.
        let (eval_split, _) = task.eval_split();
        let verdicts: Option<Vec<bool>> = finals
            .records
            .iter()
            .filter(|r| r.split == eval_split)
            .map(|r| r.correct)
            .collect();
        let accuracy = verdicts.filter(|v| !v.is_empty()).map(|v| {
            let correct = v.iter().filter(|&&c| c).count() as u64;
            (correct, v.len() as u64)
        });
        for record in std::mem::take(&mut finals.records) {
            self.emitter
                .emit_attached(EventKind::ExampleRecord(Box::new(record)));
        }
        let scores = Scores {
            initial: initial_score,
            evaluator_calls: result.counters.metric_calls + monitor.calls + finals.test_calls,
            metrics: monitor.metrics(&result.best_params),
            finals,
        };
        let mut outcome = finished(self.protocol, initial, scores, result);
        outcome.stop_reason = Some(stop_reason);
        outcome.examples_source = task.examples_source().map(str::to_string);
        if let Some((correct, total)) = accuracy {
            outcome.examples_correct = Some(correct);
            outcome.examples_total = Some(total);
        }
        Ok(outcome)
    }

    /// The job's own copy of its task: limits, objective mode and agent bound; `Err` when
    /// the job cannot run it.
    fn bind_task(&self) -> Result<Task, EarlyEnd> {
        let job = self.job;
        let Some(task) = self.registry.task(&job.task_id) else {
            return Err(EarlyEnd::Skipped(
                self.registry.missing_reason(&job.task_id),
            ));
        };
        // Evaluator processes respect the deadline and `eval_kwargs.timeout_seconds`.
        let timeout = job
            .resolved
            .eval_kwargs
            .get("timeout_seconds")
            .and_then(serde_json::Value::as_f64)
            .filter(|t| *t > 0.0 && t.is_finite())
            .map(Duration::from_secs_f64);
        if let Some(reason) = task.unavailable_reason() {
            return Err(EarlyEnd::Skipped(reason));
        }
        let task = task
            .for_eval_kwargs(&job.resolved.eval_kwargs)
            .map_err(|e| {
                if e.is_missing_data() {
                    EarlyEnd::Skipped(e.to_string())
                } else {
                    EarlyEnd::Failed(ErrorKind::TaskLoadError, e.to_string())
                }
            })?;
        let mut task = task.with_limits(EvalLimits {
            timeout,
            deadline: self.stop.deadline(),
            eval_kwargs: job.resolved.eval_kwargs.clone(),
            threads: job_threads(job),
        });
        // Multi-objective tasks: `eval_kwargs.objective_mode` picks how metrics combine.
        if let Some(value) = job.resolved.eval_kwargs.get("objective_mode")
            && let Some(objective) = &task.manifest.objective_config
        {
            let mode = objective
                .mode_for(value)
                .map_err(|e| EarlyEnd::Failed(ErrorKind::InvalidEvalKwargs, e.to_string()))?;
            task = task.with_objective_mode(mode);
        }
        if let Some(agent) = &self.agent {
            task = task.with_agent(agent.clone());
        }
        if let Some(reason) = task.unavailable_reason() {
            return Err(EarlyEnd::Skipped(reason));
        }
        if !task.has_trainable_params() {
            return Err(EarlyEnd::Failed(
                ErrorKind::NoTrainableParameters,
                "no_trainable_parameters".into(),
            ));
        }
        Ok(task)
    }

    /// The trainer with the job's knobs; `Err` names the problem.
    fn algorithm(&self) -> Result<Algorithm, EarlyEnd> {
        let Some(preset) = self.registry.trainer(&self.job.trainer_id) else {
            if let Some(reason) = crate::spec::reference_only_trainer(&self.job.trainer_id) {
                return Err(EarlyEnd::Skipped(reason));
            }
            return Err(EarlyEnd::Failed(
                ErrorKind::UnknownTrainer,
                format!("trainer `{}` is not available", self.job.trainer_id),
            ));
        };
        let algorithm = Algorithm::from_preset(preset, &self.job.resolved.trainer_kwargs)
            .map_err(|e| EarlyEnd::Failed(ErrorKind::InvalidKnob, e.to_string()))?;
        // An external trainer whose Python lacks its modules cannot run here.
        if let Algorithm::External(settings) = &algorithm {
            let python = ExternalSettings::python(self.info.external_python.as_deref());
            if let Some(reason) = settings.missing_requirement(&python) {
                return Err(EarlyEnd::Skipped(reason));
            }
        }
        Ok(algorithm)
    }

    /// The agent's transcripts of the evaluations made outside the trainer.
    fn emit_agent_exchanges(&mut self, task: &Task, step: u64) {
        for event in agent_transcripts(task, step) {
            self.emitter.emit_attached(event);
        }
    }

    /// `Err` once the deadline passed, with what was spent.
    fn check_deadline(
        &self,
        steps: u64,
        spent: &Counters,
        monitor_calls: u64,
    ) -> Result<(), Stopped> {
        match self.stop.hard() {
            Some(reason) => Err(Stopped {
                reason,
                steps,
                metric_calls: spent.metric_calls + monitor_calls,
                llm_calls: spent.llm_calls,
                prompt_tokens: spent.prompt_tokens,
                completion_tokens: spent.completion_tokens,
                // The trainer's own spend is not known here (final scoring ran out).
                spent: Default::default(),
                by_role: Default::default(),
            }),
            None => Ok(()),
        }
    }

    /// An agent that failed (after its client's retries) would score every example 0: the
    /// job fails with the agent's error instead of reporting that as a result.
    fn agent_failed(&mut self, spent: Spent) -> Option<JobOutcome> {
        let e = self.agent.as_ref()?.failure()?;
        let outcome = failed(ErrorKind::llm(&e), format!("agent: {e}"), spent);
        self.llm_failure = Some(e);
        Some(outcome)
    }

    /// The outcome of a stopped job; a job stopped by its agent failing carries the
    /// agent's error.
    fn stopped_outcome(
        &mut self,
        stopped: &Stopped,
        limit: Option<Duration>,
        elapsed: Duration,
    ) -> JobOutcome {
        let mut outcome = stopped_outcome(stopped, limit, elapsed);
        if let Some(partial) = self.partial.take() {
            partial.apply(&mut outcome);
        }
        if stopped.reason == StopReason::Failed
            && let Some(e) = self.agent.as_ref().and_then(AgentHandle::failure)
        {
            outcome.error_kind = Some(ErrorKind::llm(&e));
            outcome.error = Some(format!("agent: {e}"));
            outcome.feedback = format!("agent: {e}");
            self.llm_failure = Some(e);
        }
        outcome
    }
}

/// Why a job ends before its trainer runs.
enum EarlyEnd {
    /// It cannot run here, by design (the reason).
    Skipped(String),
    /// Its task or trainer cannot be used: error kind and message.
    Failed(ErrorKind, String),
}

impl EarlyEnd {
    fn outcome(self) -> JobOutcome {
        match self {
            EarlyEnd::Skipped(reason) => ending(JobStatus::Skipped, None, reason, Spent::default()),
            EarlyEnd::Failed(kind, message) => failed(kind, message, Spent::default()),
        }
    }
}

/// The final evaluations of the trainer's parameters.
struct Finals {
    score: Option<f64>,
    feedback: String,
    score_test: Option<f64>,
    /// Evaluator calls of the test split.
    test_calls: u64,
    /// Each example of the evaluation and test splits (`artifacts/examples.jsonl`).
    records: Vec<ExampleRecord>,
}

/// Score the trainer's parameters on the evaluation split (through the monitor) and on
/// the test split.
fn final_scores(task: &Task, monitor: &mut Monitor, best: &Kwargs) -> Finals {
    let (score, feedback) = monitor.score(task, best);
    let (eval_split, eval_examples) = task.eval_split();
    let mut records = records_of(eval_split, eval_examples, monitor.examples(best));
    let test = &task.manifest.splits.test;
    let score_test = (!test.is_empty())
        .then(|| {
            let refs: Vec<&Example> = test.iter().collect();
            let e = task.evaluate(best, SplitName::Test, &refs);
            records.extend(records_of(SplitName::Test, test, &e.examples));
            e.score
        })
        .flatten();
    Finals {
        score,
        feedback,
        score_test,
        test_calls: test.len() as u64,
        records,
    }
}

/// Example records of one split: the examples zipped with their results.
fn records_of(
    split: SplitName,
    examples: &[Example],
    results: &[ExampleResult],
) -> Vec<ExampleRecord> {
    examples
        .iter()
        .zip(results)
        .enumerate()
        .map(|(index, (ex, r))| ExampleRecord {
            split,
            index,
            input: ex.input.clone(),
            expected: ex.info.clone(),
            reply: r.output.clone(),
            score: r.score,
            correct: r.correct,
            feedback: r.feedback.clone(),
        })
        .collect()
}

/// The job's `num_threads` (LLM requests of one batch in flight at once), else the CPU
/// count, as in the reference. Results do not depend on it.
pub(crate) fn job_threads(job: &Job) -> usize {
    job.resolved
        .trainer_kwargs
        .get("num_threads")
        .and_then(serde_json::Value::as_u64)
        .filter(|&n| n > 0)
        .map(|n| n as usize)
        .unwrap_or_else(cpu_count)
}

/// The CPUs this process may use, read once (it reads cgroup files each time).
fn cpu_count() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// What a finished job scored, besides the trainer's result.
struct Scores {
    initial: Option<f64>,
    finals: Finals,
    evaluator_calls: u64,
    metrics: std::collections::BTreeMap<String, f64>,
}

/// The outcome of a job that ran to its end.
fn finished(
    protocol: &dyn Protocol,
    initial: Kwargs,
    scores: Scores,
    result: TrainResult,
) -> JobOutcome {
    let Scores {
        initial: initial_score,
        finals,
        evaluator_calls,
        metrics,
    } = scores;
    let score_val = match (initial_score, finals.score) {
        (Some(i), Some(f)) => Some(i.max(f)),
        (i, f) => f.or(i),
    };
    // The final parameters are the best ones; the reference's best state is the better
    // of initial and final, which with selection is always the final one.
    let best = if finals.score >= initial_score {
        result.best_params.clone()
    } else {
        initial.clone()
    };
    JobOutcome {
        score_val_initial: initial_score,
        score_val_final: finals.score,
        score_val,
        score_test: finals.score_test,
        steps: result.steps,
        best_step: Some(result.best_step),
        evaluator_calls,
        llm_calls: result.counters.llm_calls,
        prompt_tokens: result.counters.prompt_tokens,
        completion_tokens: result.counters.completion_tokens,
        resolved_optimizer: Some(
            result
                .resolved_optimizer
                .clone()
                .unwrap_or_else(|| protocol.name().to_string()),
        ),
        initial_params: Some(initial),
        best_params: Some(best),
        metrics,
        pareto_front: result.pareto_front,
        spent: Some(result.spent.into()),
        spend_by_role: result.by_role.clone(),
        final_params: Some(result.best_params),
        ..ending(JobStatus::Ok, None, finals.feedback, Spent::default())
    }
}

/// What a trainer stopped by its budget hands back: the best parameters the monitor scored
/// (its steps' choices; the initial ones at worst) and what it had spent.
fn budget_result(stopped: &Stopped, monitor: &Monitor, initial: &Kwargs) -> TrainResult {
    TrainResult {
        best_params: monitor
            .best_by(None)
            .map_or_else(|| initial.clone(), |(p, _)| p),
        best_step: stopped.steps,
        steps: stopped.steps,
        counters: Counters {
            metric_calls: stopped.metric_calls.saturating_sub(monitor.calls),
            llm_calls: stopped.llm_calls,
            prompt_tokens: stopped.prompt_tokens,
            completion_tokens: stopped.completion_tokens,
        },
        selections: Vec::new(),
        pool: Vec::new(),
        llm_failure: None,
        pareto_front: Vec::new(),
        failure: None,
        resolved_optimizer: None,
        spent: stopped.spent,
        by_role: stopped.by_role.clone(),
    }
}

/// What a job had spent when it ended early.
#[derive(Debug, Clone, Copy, Default)]
struct Spent {
    steps: u64,
    evaluator_calls: u64,
    llm_calls: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
}

impl Spent {
    /// The trainer's counters and the monitor's evaluator calls (no steps).
    fn of(counters: &Counters, monitor_calls: u64) -> Self {
        Self {
            steps: 0,
            evaluator_calls: counters.metric_calls + monitor_calls,
            llm_calls: counters.llm_calls,
            prompt_tokens: counters.prompt_tokens,
            completion_tokens: counters.completion_tokens,
        }
    }
}

/// Every ending of a job that is not a full result goes through here: its status, why
/// (`error_kind`; the message is then its `error` too) and what it had spent.
fn ending(status: JobStatus, kind: Option<ErrorKind>, message: String, spent: Spent) -> JobOutcome {
    JobOutcome {
        steps: spent.steps,
        evaluator_calls: spent.evaluator_calls,
        llm_calls: spent.llm_calls,
        prompt_tokens: spent.prompt_tokens,
        completion_tokens: spent.completion_tokens,
        ..JobOutcome::ended(status, kind, message)
    }
}

/// A failed job's ending.
fn failed(kind: ErrorKind, message: String, spent: Spent) -> JobOutcome {
    ending(JobStatus::Failed, Some(kind), message, spent)
}

/// The outcome of a job stopped at its deadline or by the user, with what it had spent.
fn stopped_outcome(stopped: &Stopped, limit: Option<Duration>, elapsed: Duration) -> JobOutcome {
    let (status, kind, message) = match stopped.reason {
        StopReason::Timeout => (
            JobStatus::Timeout,
            ErrorKind::Timeout,
            format!(
                "stopped at its job_timeout of {}s after {:.3}s ({} step(s) done)",
                limit.map_or(0.0, |l| l.as_secs_f64()),
                elapsed.as_secs_f64(),
                stopped.steps
            ),
        ),
        StopReason::Cancelled => (
            JobStatus::Cancelled,
            ErrorKind::Cancelled,
            format!(
                "cancelled by the user after {} step(s); `--resume auto` reruns it",
                stopped.steps
            ),
        ),
        StopReason::Failed => (
            JobStatus::Failed,
            ErrorKind::Failed,
            format!(
                "stopped after {} step(s): a resource it needs failed",
                stopped.steps
            ),
        ),
        // A trainer's budget stop is a finished job (`Attempt::execute`); one reaching
        // here came from outside the trainer, which nothing does today.
        StopReason::Budget(limit) => (
            JobStatus::Failed,
            ErrorKind::Failed,
            format!(
                "stopped after {} step(s): its budget ({}) ran out outside the trainer",
                stopped.steps,
                limit.as_str()
            ),
        ),
    };
    let spent = Spent {
        steps: stopped.steps,
        evaluator_calls: stopped.metric_calls,
        llm_calls: stopped.llm_calls,
        prompt_tokens: stopped.prompt_tokens,
        completion_tokens: stopped.completion_tokens,
    };
    ending(status, Some(kind), message, spent)
}
