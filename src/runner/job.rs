//! Execute one job: fresh task, seeded stub LLM, the trainer loop, the reference's
//! initial/final/test evaluations, and a `job_finished` event whatever happens (an error
//! or a panic becomes a failed job with its message; the batch goes on).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backend::LlmFactory;
use crate::events::{Emitter, EventKind, EventSink, JobOutcome, SinkError};
use crate::llm::{Llm, LlmError};
use crate::matrix::Job;
use crate::optimizer::{Protocol, protocol_for};
use crate::registry::Registry;
use crate::stop::{Cancel, JobStop, StopReason, Stopped};
use crate::task::agent::AgentHandle;
use crate::task::{EvalLimits, Example, ObjectiveMode};
use crate::trainer::{Algorithm, Ctx, Monitor};
use crate::vocab::JobStatus;
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
    let preset_optimizer = ctx
        .registry
        .trainer(&job.trainer_id)
        .and_then(|p| p.default_optimizer.as_deref());
    let (protocol, fallback_note) =
        protocol_for(job.resolved.optimizer.as_deref().or(preset_optimizer));
    let protocol: Arc<dyn Protocol> = Arc::from(protocol);
    let llm = ctx.llm.for_job(job.seed, protocol.clone());
    emitter.emit(EventKind::JobStarted {
        job_index: job.index,
        task_id: job.task_id.clone(),
        trainer_id: job.trainer_id.clone(),
        seed: job.seed,
        mode: ctx.mode.as_str().to_string(),
        llm: ctx.llm.info(),
    });
    if let Some(note) = fallback_note {
        emitter.emit(EventKind::Warning {
            step: None,
            message: note,
        });
    }
    let started = Instant::now();
    let stop = JobStop::new(ctx.job_timeout, ctx.cancel.clone());
    let mut failure: Option<LlmError> = None;
    // Dataset tasks: the agent answering the examples, built like the job's LLM.
    let agent = ctx
        .registry
        .task(&job.task_id)
        .filter(|t| t.uses_agent())
        .map(|_| {
            ctx.llm
                .agent_for_job(job.seed)
                .map(|backend| AgentHandle::new(backend, stop.deadline()))
        })
        .transpose();
    let llm = llm.and_then(|llm| agent.map(|agent| (llm, agent)));
    let mut agent_handle = None;
    let result = match llm {
        Ok((mut llm, agent)) => catch_unwind(AssertUnwindSafe(|| {
            agent_handle = agent.clone();
            let llm = llm.as_mut();
            execute(
                job,
                ctx.registry,
                llm,
                agent,
                protocol.as_ref(),
                &mut emitter,
                &mut failure,
                stop,
            )
        })),
        Err(e) => {
            failure = Some(e.clone());
            Ok(failed(&format!("llm_{}", e.kind()), e.to_string()))
        }
    };
    let mut outcome = match result {
        Ok(outcome) => outcome,
        Err(payload) => match payload.downcast::<Stopped>() {
            Ok(stopped) if stopped.reason == StopReason::Failed => {
                let e = agent_handle.as_ref().and_then(AgentHandle::failure);
                let mut outcome = stopped_outcome(&stopped, ctx.job_timeout, started.elapsed());
                if let Some(e) = e {
                    outcome.error_kind = Some(format!("llm_{}", e.kind()));
                    outcome.error = Some(format!("agent: {e}"));
                    outcome.feedback = format!("agent: {e}");
                    failure = Some(e);
                }
                outcome
            }
            Ok(stopped) => stopped_outcome(&stopped, ctx.job_timeout, started.elapsed()),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                failed("panic", format!("the job panicked: {message}"))
            }
        },
    };
    let stop_run = failure.filter(LlmError::stops_run).map(|e| {
        let hint = e
            .hint()
            .map(|h| format!(" (hint: {h})"))
            .unwrap_or_default();
        format!("{e}{hint}")
    });
    outcome.time_seconds = started.elapsed().as_secs_f64();
    if let Some(agent) = &agent_handle {
        let usage = agent.usage();
        outcome.agent_calls = usage.calls;
        outcome.agent_prompt_tokens = usage.prompt_tokens;
        outcome.agent_completion_tokens = usage.completion_tokens;
    }
    // The agent talks to the same model, so its tokens cost the same.
    let calls = outcome.llm_calls + outcome.agent_calls;
    if let (Some(settings), false) = (ctx.llm.settings(), calls == 0) {
        outcome.cost_usd = settings.cost(
            outcome.prompt_tokens + outcome.agent_prompt_tokens,
            outcome.completion_tokens + outcome.agent_completion_tokens,
        );
    }
    let status = outcome.status;
    emitter.emit(EventKind::JobFinished(Box::new(outcome)));
    match emitter.take_error() {
        Some(e) => Err(e),
        None => Ok(JobEnd { status, stop_run }),
    }
}

#[allow(clippy::too_many_arguments)]
fn execute(
    job: &Job,
    registry: &Registry,
    llm: &mut dyn Llm,
    agent: Option<AgentHandle>,
    protocol: &dyn Protocol,
    emitter: &mut Emitter<'_>,
    llm_failure: &mut Option<LlmError>,
    stop: JobStop,
) -> JobOutcome {
    let Some(task) = registry.task(&job.task_id) else {
        return skipped(format!(
            "task `{}` is not available in this build",
            job.task_id
        ));
    };
    // Evaluator processes of this job respect its deadline and `eval_kwargs.timeout_seconds`.
    let timeout = job
        .resolved
        .eval_kwargs
        .get("timeout_seconds")
        .and_then(serde_json::Value::as_f64)
        .filter(|t| *t > 0.0 && t.is_finite())
        .map(Duration::from_secs_f64);
    let mut task = task.with_limits(EvalLimits {
        timeout,
        deadline: stop.deadline(),
    });
    // Multi-objective tasks: `eval_kwargs.objective_mode` picks how metrics are combined.
    if let Some(mode) = job.resolved.eval_kwargs.get("objective_mode")
        && task.manifest.objective_config.is_some()
    {
        let supported = |m: ObjectiveMode| {
            task.manifest
                .objective_config
                .as_ref()
                .map_or(Ok(()), |c| c.supports(m))
        };
        match mode.as_str().map(ObjectiveMode::parse) {
            Some(Ok(mode)) => match supported(mode) {
                Ok(()) => task = task.with_objective_mode(mode),
                Err(e) => return failed("invalid_eval_kwargs", e),
            },
            Some(Err(e)) => return failed("invalid_eval_kwargs", e),
            None => {
                return failed(
                    "invalid_eval_kwargs",
                    format!("objective_mode must be a string, found {mode}"),
                );
            }
        }
    }
    if let Some(agent) = &agent {
        task = task.with_agent(agent.clone());
    }
    // An agent that failed (after its client's retries) would score every example 0:
    // the job fails with the agent's error instead of reporting that as a result.
    let agent_failed = |llm_failure: &mut Option<LlmError>| {
        let e = agent.as_ref()?.failure()?;
        let outcome = failed(&format!("llm_{}", e.kind()), format!("agent: {e}"));
        *llm_failure = Some(e);
        Some(outcome)
    };
    if let Some(reason) = task.unavailable_reason() {
        return skipped(reason);
    }
    if !task.has_trainable_params() {
        return failed("no_trainable_parameters", "no_trainable_parameters".into());
    }
    let Some(preset) = registry.trainer(&job.trainer_id) else {
        return failed(
            "unknown_trainer",
            format!("trainer `{}` is not available", job.trainer_id),
        );
    };
    let algorithm = match Algorithm::from_preset(preset, &job.resolved.trainer_kwargs) {
        Ok(a) => a,
        Err(e) => return failed("invalid_knob", e),
    };
    let initial = task.initial_values();
    let mut monitor = Monitor::default();
    let (initial_score, _) = monitor.score(&task, &initial);
    // An agent cut off by the deadline is a timeout, not an agent failure.
    if let Some(reason) = stop.hard() {
        Stopped {
            reason,
            steps: 0,
            metric_calls: monitor.calls,
            llm_calls: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
        }
        .unwind();
    }
    if let Some(mut outcome) = agent_failed(llm_failure) {
        outcome.evaluator_calls = monitor.calls;
        return outcome;
    }
    let ctx =
        Ctx::new(&task, llm, protocol, emitter, &mut monitor, job.seed).with_stop(stop.clone());
    let result = algorithm.run(ctx);
    if let Some(e) = &result.llm_failure {
        *llm_failure = Some(e.clone());
        let mut outcome = failed(&format!("llm_{}", e.kind()), e.to_string());
        outcome.llm_calls = result.counters.llm_calls;
        outcome.evaluator_calls = result.counters.metric_calls + monitor.calls;
        outcome.score_val_initial = initial_score;
        return outcome;
    }
    let (final_score, feedback) = monitor.score(&task, &result.best_params);
    let test = &task.manifest.splits.test;
    let score_test = (!test.is_empty()).then(|| {
        let refs: Vec<&Example> = test.iter().collect();
        task.evaluate(&result.best_params, crate::task::SplitName::Test, &refs)
            .score
    });
    // Final evaluations cut short by the deadline would report failure scores as results.
    if let Some(reason) = stop.hard() {
        Stopped {
            reason,
            steps: result.steps,
            metric_calls: result.counters.metric_calls + monitor.calls,
            llm_calls: result.counters.llm_calls,
            prompt_tokens: result.counters.prompt_tokens,
            completion_tokens: result.counters.completion_tokens,
        }
        .unwind();
    }
    if let Some(mut outcome) = agent_failed(llm_failure) {
        outcome.llm_calls = result.counters.llm_calls;
        outcome.prompt_tokens = result.counters.prompt_tokens;
        outcome.completion_tokens = result.counters.completion_tokens;
        outcome.evaluator_calls = result.counters.metric_calls + monitor.calls;
        outcome.score_val_initial = initial_score;
        return outcome;
    }
    let score_val = match (initial_score, final_score) {
        (Some(i), Some(f)) => Some(i.max(f)),
        (i, f) => f.or(i),
    };
    // The final parameters are the best ones; the reference's best state is the better
    // of initial and final, which with selection is always the final one.
    let best = if final_score >= initial_score {
        result.best_params.clone()
    } else {
        initial.clone()
    };
    JobOutcome {
        status: JobStatus::Ok,
        error_kind: None,
        error: None,
        score_val_initial: initial_score,
        score_val_final: final_score,
        score_val,
        score_test: score_test.flatten(),
        feedback,
        time_seconds: 0.0,
        steps: result.steps,
        best_step: Some(result.best_step),
        evaluator_calls: result.counters.metric_calls + monitor.calls + test.len() as u64,
        llm_calls: result.counters.llm_calls,
        prompt_tokens: result.counters.prompt_tokens,
        completion_tokens: result.counters.completion_tokens,
        resolved_optimizer: Some(protocol.name().to_string()),
        initial_params: Some(initial),
        best_params: Some(best),
        metrics: monitor.metrics(&result.best_params),
        pareto_front: result.pareto_front,
        final_params: Some(result.best_params),
        cost_usd: None,
        agent_calls: 0,
        agent_prompt_tokens: 0,
        agent_completion_tokens: 0,
    }
}

fn ended(status: JobStatus, kind: Option<&str>, message: String) -> JobOutcome {
    JobOutcome {
        status,
        error_kind: kind.map(str::to_string),
        error: kind.map(|_| message.clone()),
        score_val_initial: None,
        score_val_final: None,
        score_val: None,
        score_test: None,
        feedback: message,
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
    }
}

/// The outcome of a job stopped at its deadline or by the user, with what it had spent.
fn stopped_outcome(stopped: &Stopped, limit: Option<Duration>, elapsed: Duration) -> JobOutcome {
    let (status, kind, message) = match stopped.reason {
        StopReason::Timeout => (
            JobStatus::Timeout,
            "timeout",
            format!(
                "stopped at its job_timeout of {}s after {:.3}s ({} step(s) done)",
                limit.map_or(0.0, |l| l.as_secs_f64()),
                elapsed.as_secs_f64(),
                stopped.steps
            ),
        ),
        StopReason::Cancelled => (
            JobStatus::Cancelled,
            "cancelled",
            format!(
                "cancelled by the user after {} step(s); `--resume auto` reruns it",
                stopped.steps
            ),
        ),
        StopReason::Failed => (
            JobStatus::Failed,
            "failed",
            format!(
                "stopped after {} step(s): a resource it needs failed",
                stopped.steps
            ),
        ),
    };
    let mut outcome = ended(status, Some(kind), message);
    outcome.steps = stopped.steps;
    outcome.evaluator_calls = stopped.metric_calls;
    outcome.llm_calls = stopped.llm_calls;
    outcome.prompt_tokens = stopped.prompt_tokens;
    outcome.completion_tokens = stopped.completion_tokens;
    outcome
}

fn failed(kind: &str, message: String) -> JobOutcome {
    ended(JobStatus::Failed, Some(kind), message)
}

fn skipped(reason: String) -> JobOutcome {
    ended(JobStatus::Skipped, None, reason)
}
