//! The job files sink: turns one job's events into its directory — `events.jsonl` (line by
//! line, flushed), `job.log`, `artifacts/state_history.jsonl`, `artifacts/llm_calls.jsonl`
//! (the LLM transcripts, which stay out of `events.jsonl`), and at the end the state
//! snapshots, `results.json` and the final `job_meta.json` (each written atomically).
//!
//! `job_meta.json` is written last, when the job has finished (as the reference does: a
//! job directory without one is a job that started and did not finish), so a job whose
//! meta says `ok` has all its files; it is committed through the run's [`Commits`] (one
//! barrier per group of finishing jobs at the default durability level,
//! `artifacts::durability`). Appended files are flushed at step
//! ends and when the job ends (transcripts of a real LLM at once: they cost money), so a
//! killed job keeps every completed step.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::{Arc, Mutex};

use serde_json::{Value as Json, json};

use crate::artifacts::atomic::pretty_json;
use crate::artifacts::durability::{Commits, Durability, Pending};
use crate::artifacts::layout::{JobDir, RunDir, StateKind};
use crate::artifacts::yaml_out::to_yaml;
use crate::events::{Event, EventKind, EventSink, JobOutcome, SinkError, StepRecord};
use crate::llm::LlmInfo;
use crate::matrix::Job;
use crate::registry::Registry;
use crate::results::row::{ResultRow, RowContext};
use crate::task::EvaluatorKind;
use crate::vocab::{JobId, JobState, Kwargs};

/// Per-job state while the job runs.
struct Open {
    events: BufWriter<File>,
    log: BufWriter<File>,
    history_file: BufWriter<File>,
    llm_calls: BufWriter<File>,
    examples: BufWriter<File>,
    history: Vec<StepRecord>,
    llm: LlmInfo,
    started_at: String,
}

/// Writes every job's directory from its events.
pub struct JobFilesSink {
    run_dir: RunDir,
    run_id: String,
    mode: String,
    registry: Registry,
    /// Running jobs; each has its own lock so workers never wait on each other's I/O.
    open: Mutex<HashMap<JobId, Arc<Mutex<Open>>>>,
    durability: Durability,
    /// Where final `job_meta.json` files are committed.
    commits: Commits,
}

impl JobFilesSink {
    /// A sink writing under `run_dir` at the run's durability level.
    pub fn new(
        run_dir: RunDir,
        run_id: &str,
        mode: &str,
        registry: Registry,
        durability: Durability,
    ) -> Self {
        let commits = Commits::new(run_dir.root(), durability);
        Self {
            run_dir,
            run_id: run_id.to_string(),
            mode: mode.to_string(),
            registry,
            open: Mutex::new(HashMap::new()),
            durability,
            commits,
        }
    }

    fn start(&self, job: &Job, event: &Event, llm: &LlmInfo) -> Result<Open, SinkError> {
        let dir = self.run_dir.job(&job.job_id);
        let io = |what: &str, path: &std::path::Path| {
            let what = what.to_string();
            let path = path.display().to_string();
            move |e| SinkError::io(format!("{what} `{path}`"), e)
        };
        std::fs::create_dir_all(dir.artifacts_dir())
            .map_err(io("cannot create", &dir.artifacts_dir()))?;
        let create = |p: std::path::PathBuf| {
            File::create(&p)
                .map(BufWriter::new)
                .map_err(io("cannot create", &p))
        };
        Ok(Open {
            events: create(dir.events_jsonl())?,
            log: create(dir.job_log())?,
            history_file: create(dir.state_history())?,
            llm_calls: create(dir.llm_calls())?,
            examples: create(dir.examples())?,
            history: Vec::new(),
            llm: llm.clone(),
            started_at: event.ts.clone(),
        })
    }

    fn finish(
        &self,
        job: &Job,
        event: &Event,
        outcome: &JobOutcome,
        open: Open,
    ) -> Result<(), SinkError> {
        let dir = self.run_dir.job(&job.job_id);
        let io = |path: &std::path::Path| {
            let path = path.display().to_string();
            move |e| SinkError::io(format!("cannot write `{path}`"), e)
        };
        for mut w in [
            open.events,
            open.log,
            open.history_file,
            open.llm_calls,
            open.examples,
        ] {
            w.flush().map_err(io(dir.root()))?;
            if self.durability == Durability::File {
                w.get_ref().sync_all().map_err(io(dir.root()))?;
            }
        }
        let d = self.durability;
        let states = [
            (StateKind::Initial, &outcome.initial_params),
            (StateKind::Best, &outcome.best_params),
            (StateKind::Final, &outcome.final_params),
        ];
        for (kind, params) in states {
            if let Some(params) = params {
                let state = state_json(params);
                pretty_json(&state)
                    .and_then(|json| d.write_gated(&dir.state_json(kind), &json))
                    .map_err(io(&dir.state_json(kind)))?;
                d.write_gated(&dir.state_yaml(kind), to_yaml(&state).as_bytes())
                    .map_err(io(&dir.state_yaml(kind)))?;
            }
        }
        let ctx = self.row_context(job, &open.llm, &dir);
        let row = ResultRow::new(job, outcome, &ctx);
        let results = ResultsFile {
            row: &row,
            history: &open.history,
            pareto_front: &outcome.pareto_front,
        };
        pretty_json(&results)
            .and_then(|json| d.write_gated(&dir.results_json(), &json))
            .map_err(io(&dir.results_json()))?;
        let meta = job_meta(job, outcome, &row, &open.llm, &open.started_at, &event.ts);
        // Last, and only once what it names is durable (the commit's barrier).
        let pending = pretty_json(&meta)
            .and_then(|bytes| Pending::write(&dir.job_meta(), &bytes, d))
            .map_err(io(&dir.job_meta()))?;
        self.commits
            .commit(pending)
            .map_err(|e| SinkError::io(format!("cannot commit `{}`", e.path.display()), e.source))
    }

    fn row_context<'a>(&'a self, job: &Job, llm: &'a LlmInfo, dir: &'a JobDir) -> RowContext<'a> {
        let task = self.registry.task(&job.task_id);
        let mut optimizer_kwargs = Kwargs::new();
        if let Some(t) = &task {
            optimizer_kwargs.insert("objective".into(), json!(t.manifest.objective));
            optimizer_kwargs.insert("memory_size".into(), json!(t.manifest.memory_size));
        }
        optimizer_kwargs.extend(job.resolved.optimizer_kwargs.clone());
        optimizer_kwargs.insert(
            "llm".into(),
            json!({"provider": llm.provider, "model": llm.model}),
        );
        RowContext {
            run_id: &self.run_id,
            mode: &self.mode,
            llm,
            job_dir: dir,
            optimizer_kwargs,
            guide: task.map_or_else(String::new, |t| {
                let e = &t.manifest.evaluator;
                let detail = match e.kind {
                    EvaluatorKind::Command => e.command.join(" "),
                    EvaluatorKind::Dataset | EvaluatorKind::Hf => {
                        e.metric.clone().unwrap_or_default()
                    }
                    EvaluatorKind::Builtin => e.name.clone(),
                };
                format!("{}:{detail}", e.kind.as_str())
            }),
        }
    }
}

impl EventSink for JobFilesSink {
    fn on_event(&self, job: &Job, event: &Event) -> Result<(), SinkError> {
        let running = || self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let EventKind::JobStarted { llm, .. } = &event.kind {
            let state = self.start(job, event, llm)?;
            running().insert(job.job_id.clone(), Arc::new(Mutex::new(state)));
        }
        let Some(slot) = running().get(&job.job_id).cloned() else {
            return Ok(());
        };
        let mut state = slot.lock().unwrap_or_else(|e| e.into_inner());
        let io = |e| {
            let dir = self.run_dir.job(&job.job_id);
            let path = dir.root().display().to_string();
            SinkError::io(format!("cannot append to job files in `{path}`"), e)
        };
        let line = serde_json::to_string(event).unwrap_or_default();
        match &event.kind {
            EventKind::LlmTranscript(_) => {
                writeln!(state.llm_calls, "{line}").map_err(io)?;
                // A real model's answers cost money: on disk at once. The stub's at steps.
                return if state.llm.stub {
                    Ok(())
                } else {
                    state.llm_calls.flush().map_err(io)
                };
            }
            EventKind::ExampleRecord(_) => {
                // Flushed with the others when the job finishes (it comes right before).
                return writeln!(state.examples, "{line}").map_err(io);
            }
            _ => {}
        }
        writeln!(state.events, "{line}").map_err(io)?;
        if let Some(text) = log_line(event) {
            writeln!(state.log, "[{:>9.3}s] {text}", event.elapsed_s).map_err(io)?;
        }
        // Appended lines reach the files at step ends, warnings and the job's start: one
        // write per file per step, and a killed job keeps every completed step.
        if matches!(
            event.kind,
            EventKind::JobStarted { .. } | EventKind::Step(_) | EventKind::Warning { .. }
        ) {
            state.events.flush().map_err(io)?;
            state.log.flush().map_err(io)?;
            state.llm_calls.flush().map_err(io)?;
        }
        match &event.kind {
            EventKind::Step(step) => {
                let line = json!({"step": step.step, "score": step.best_score, "score_train": step.score_train, "params": step.best_params});
                writeln!(state.history_file, "{line}").map_err(io)?;
                state.history_file.flush().map_err(io)?;
                state.history.push(step.clone());
            }
            EventKind::JobFinished(outcome) => {
                drop(state);
                running().remove(&job.job_id);
                let state = Arc::try_unwrap(slot)
                    .ok()
                    .expect("a finished job's state has no other owner")
                    .into_inner()
                    .unwrap_or_else(|e| e.into_inner());
                self.finish(job, event, outcome, state)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Wait for the last commits and make them durable.
    fn finish(&self) -> Result<(), SinkError> {
        self.commits
            .finish()
            .map_err(|e| SinkError::io(format!("cannot commit `{}`", e.path.display()), e.source))
    }
}

/// `results.json`: the row's fields, then the learning curve, then (multi-objective tasks)
/// the Pareto front — serialized straight from the job's values.
#[derive(serde::Serialize)]
struct ResultsFile<'a> {
    #[serde(flatten)]
    row: &'a ResultRow,
    history: &'a [StepRecord],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pareto_front: &'a [crate::events::ParetoPoint],
}

/// A state snapshot file: the parameter values in declaration order.
fn state_json(params: &Kwargs) -> Json {
    let parameters: Vec<Json> = params
        .iter()
        .enumerate()
        .map(|(i, (name, value))| json!({"index": i, "name": name, "value": value}))
        .collect();
    json!({"kind": "Parameters", "parameters": parameters})
}

/// `job_meta.json`: identity, resolved kwargs, status, error, LLM info. The keys in their
/// file order: ours, then the reference's top-level `resolved_*` that ours do not already
/// name (the raw values stay too).
#[derive(serde::Serialize)]
struct JobMeta<'a> {
    job_id: &'a JobId,
    job_index: usize,
    task_id: &'a str,
    suite: &'a str,
    trainer_id: &'a str,
    seed: i64,
    status: JobState,
    error_kind: &'a Option<crate::events::ErrorKind>,
    error: &'a Option<String>,
    raw_params: &'a Kwargs,
    variant_index: usize,
    resolved_optimizer: &'a Option<String>,
    resolved_trainer_kwargs: &'a Kwargs,
    optimizer: &'a Option<String>,
    optimizer_kwargs: &'a Kwargs,
    guide: &'a Option<String>,
    guide_kwargs: &'a Kwargs,
    logger: &'a Option<String>,
    logger_kwargs: &'a Kwargs,
    eval_kwargs: &'a Kwargs,
    feedback: &'a str,
    examples_source: &'a Option<String>,
    llm: LlmMeta<'a>,
    started_at: &'a str,
    finished_at: &'a str,
    resolved_guide: &'a Option<String>,
    resolved_logger: &'a Option<String>,
    resolved_optimizer_kwargs: &'a Kwargs,
    resolved_guide_kwargs: &'a Kwargs,
    resolved_logger_kwargs: &'a Kwargs,
}

/// The `llm` object of `job_meta.json`.
#[derive(serde::Serialize)]
struct LlmMeta<'a> {
    llm_provider: &'a str,
    llm_model: &'a str,
    llm_base_url: &'a str,
    stub: bool,
}

/// The finished job's `job_meta.json` (its resolved fields as its row has them).
fn job_meta<'a>(
    job: &'a Job,
    outcome: &'a JobOutcome,
    row: &'a ResultRow,
    llm: &'a LlmInfo,
    started_at: &'a str,
    finished_at: &'a str,
) -> JobMeta<'a> {
    let r = &job.resolved;
    JobMeta {
        job_id: &job.job_id,
        job_index: job.index,
        task_id: &job.task_id,
        suite: &job.suite,
        trainer_id: &job.trainer_id,
        seed: job.seed,
        status: JobState::Finished(outcome.status),
        error_kind: &outcome.error_kind,
        error: &outcome.error,
        raw_params: &job.raw_params,
        variant_index: job.variant_index,
        resolved_optimizer: &row.resolved_optimizer,
        resolved_trainer_kwargs: &row.resolved_trainer_kwargs,
        optimizer: &r.optimizer,
        optimizer_kwargs: &r.optimizer_kwargs,
        guide: &r.guide,
        guide_kwargs: &r.guide_kwargs,
        logger: &r.logger,
        logger_kwargs: &r.logger_kwargs,
        eval_kwargs: &row.eval_kwargs,
        feedback: &outcome.feedback,
        examples_source: &outcome.examples_source,
        llm: LlmMeta {
            llm_provider: &llm.provider,
            llm_model: &llm.model,
            llm_base_url: &llm.base_url,
            stub: llm.stub,
        },
        started_at,
        finished_at,
        resolved_guide: &row.resolved_guide,
        resolved_logger: &row.resolved_logger,
        resolved_optimizer_kwargs: &row.resolved_optimizer_kwargs,
        resolved_guide_kwargs: &row.resolved_guide_kwargs,
        resolved_logger_kwargs: &row.resolved_logger_kwargs,
    }
}

/// The human line of an event in `job.log`.
fn log_line(event: &Event) -> Option<String> {
    let f = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |v| format!("{v:.6}"));
    Some(match &event.kind {
        EventKind::JobStarted {
            task_id,
            trainer_id,
            seed,
            mode,
            llm,
            ..
        } => {
            format!(
                "job started: {task_id} x {trainer_id} (seed {seed}, mode {mode}, llm {}/{})",
                llm.provider, llm.model
            )
        }
        EventKind::Step(s) => format!(
            "step {}: train {} val {} best {} ({} candidates, {} evals, {} llm calls, {:.3}s)",
            s.step,
            f(s.score_train),
            f(s.score_val),
            f(s.best_score),
            s.candidates,
            s.evaluator_calls,
            s.llm_calls,
            s.step_seconds
        ),
        EventKind::Warning { step, message } => match step {
            Some(s) => format!("warning (step {s}): {message}"),
            None => format!("warning: {message}"),
        },
        EventKind::JobFinished(o) => format!(
            "job finished: {} score_val {} (initial {}, final {}){}",
            o.status.as_str(),
            f(o.score_val),
            f(o.score_val_initial),
            f(o.score_val_final),
            o.error
                .as_ref()
                .map(|e| format!("; {e}"))
                .unwrap_or_default()
        ),
        EventKind::Candidate { .. }
        | EventKind::Eval { .. }
        | EventKind::LlmCall { .. }
        | EventKind::EmbeddingCall { .. }
        | EventKind::LlmTranscript(_)
        | EventKind::ExampleRecord(_) => {
            return None;
        }
    })
}
