//! What every trainer shares: evaluation with metric-call counting, one LLM proposal
//! through the job's protocol, candidate and step events, and the monitor that scores
//! each step's chosen parameters on the task's evaluation split for the learning curve.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde_json::Value as Json;

use crate::events::{Emitter, EventKind, LlmTranscript, ParetoPoint, StepRecord};
use crate::llm::{ChatRequest, ChatResponse, Llm, LlmError, Message};
use crate::optimizer::{ExampleTrace, HistoryEntry, ProblemInstance, Protocol};
use crate::rng::Rng;
use crate::stop::{JobStop, StopReason, Stopped};
use crate::task::{EvalRequest, Evaluation, Example, ExampleResult, SplitName, Task};
use crate::vocab::budget::{RoleSpend, Spend};
use crate::vocab::{Budget, Kwargs, Mode};

/// What a trainer has spent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Evaluator calls made by the algorithm (one per example scored): its budget unit.
    pub metric_calls: u64,
    /// LLM calls.
    pub llm_calls: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
}

impl Counters {
    fn since(&self, before: &Counters) -> Counters {
        Counters {
            metric_calls: self.metric_calls - before.metric_calls,
            llm_calls: self.llm_calls - before.llm_calls,
            prompt_tokens: self.prompt_tokens - before.prompt_tokens,
            completion_tokens: self.completion_tokens - before.completion_tokens,
        }
    }
}

/// The agent's exchanges since the last drain (real mode), as transcripts of `step` for
/// `artifacts/llm_calls.jsonl`.
pub fn agent_transcripts(task: &Task, step: u64) -> Vec<EventKind> {
    task.take_agent_exchanges()
        .into_iter()
        .map(|x| {
            EventKind::LlmTranscript(Box::new(LlmTranscript::of(
                "agent",
                (step, x.call),
                x.sent,
                x.messages,
                x.answer.as_ref().map_err(Clone::clone),
            )))
        })
        .collect()
}

/// Scores parameter sets on the task's evaluation split (validation, else train), once
/// per distinct set: the learning curve's `score_val` and the job's initial/final scores.
/// Its evaluator calls are reported but never charged to a trainer's budget.
#[derive(Debug, Default)]
pub struct Monitor {
    cache: HashMap<String, Scored>,
    /// Every scored parameter set in scoring order, with when its scoring ended.
    order: Vec<(Kwargs, Instant)>,
    /// Evaluator calls made by the monitor.
    pub calls: u64,
}

impl Monitor {
    /// Score and summary of `params` on the evaluation split.
    pub fn score(&mut self, task: &Task, params: &Kwargs) -> (Option<f64>, String) {
        let key = serde_json::to_string(params).unwrap_or_default();
        if let Some((score, summary, _, _)) = self.cache.get(&key) {
            return (*score, summary.clone());
        }
        let (split, examples) = task.eval_split();
        let refs: Vec<&Example> = examples.iter().collect();
        self.calls += refs.len() as u64;
        let e = task.evaluate(params, split, &refs);
        self.cache
            .insert(key, (e.score, e.summary.clone(), e.metrics, e.examples));
        self.order.push((params.clone(), Instant::now()));
        (e.score, e.summary)
    }

    /// The best-scored parameter set whose scoring ended by `by` (an evaluation cut by
    /// the deadline may hold failure scores, not results), and its score; ties go to the
    /// earlier one. What a stopped job keeps.
    pub fn best_by(&self, by: Option<Instant>) -> Option<(Kwargs, f64)> {
        let mut best: Option<(&Kwargs, f64)> = None;
        for (params, finished) in &self.order {
            if by.is_some_and(|d| *finished > d) {
                continue;
            }
            let key = serde_json::to_string(params).unwrap_or_default();
            let Some(score) = self.cache.get(&key).and_then(|(s, ..)| *s) else {
                continue;
            };
            if best.is_none_or(|(_, b)| score > b) {
                best = Some((params, score));
            }
        }
        best.map(|(p, s)| (p.clone(), s))
    }

    /// The per-example results of `params` from their last [`score`](Self::score) (empty
    /// if never scored).
    pub fn examples(&self, params: &Kwargs) -> &[ExampleResult] {
        let key = serde_json::to_string(params).unwrap_or_default();
        self.cache.get(&key).map_or(&[], |(_, _, _, e)| e)
    }

    /// The metrics of `params` from their last [`score`](Self::score) (empty if never
    /// scored, or for scalar tasks).
    pub fn metrics(&self, params: &Kwargs) -> BTreeMap<String, f64> {
        let key = serde_json::to_string(params).unwrap_or_default();
        self.cache
            .get(&key)
            .map(|(_, _, m, _)| m.clone())
            .unwrap_or_default()
    }
}

/// A cached monitor evaluation: score, summary, metrics, per-example results.
type Scored = (
    Option<f64>,
    String,
    BTreeMap<String, f64>,
    Vec<ExampleResult>,
);

/// One entry of a trainer's final pool (memory, buffer or program list).
#[derive(Debug, Clone, PartialEq)]
pub struct PoolEntry {
    /// Candidate id.
    pub id: u64,
    /// The score the trainer ranks it by.
    pub score: Option<f64>,
}

/// How a trainer ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Finish {
    /// The parameters the trainer hands back.
    pub best: Kwargs,
    /// Step at which they were created.
    pub best_step: u64,
    /// The final pool, in the trainer's order.
    pub pool: Vec<PoolEntry>,
    /// Why the trainer could not finish its work (an external trainer's process failed);
    /// the job then fails with it.
    pub failure: Option<String>,
    /// What optimised, when it is not the job's prompt protocol (an external trainer's
    /// library: `dspy.MIPROv2`, `gepa.optimize`, …), for `resolved_optimizer`.
    pub resolved_optimizer: Option<String>,
}

/// What a finished trainer hands back to the job runner.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainResult {
    /// The chosen parameters.
    pub best_params: Kwargs,
    /// Step at which they were created.
    pub best_step: u64,
    /// Iterations run after step 0.
    pub steps: u64,
    /// Everything spent by the algorithm.
    pub counters: Counters,
    /// Parent ids in the order they were selected for expansion.
    pub selections: Vec<u64>,
    /// The final pool.
    pub pool: Vec<PoolEntry>,
    /// The LLM error that ended the job's LLM use (an auth error, or repeated failures).
    pub llm_failure: Option<LlmError>,
    /// Multi-objective tasks: the non-dominated candidates among those scored on a whole
    /// split (empty for scalar tasks).
    pub pareto_front: Vec<ParetoPoint>,
    /// Why the trainer could not finish its work (see [`Finish::failure`]).
    pub failure: Option<String>,
    /// What optimised (see [`Finish::resolved_optimizer`]).
    pub resolved_optimizer: Option<String>,
    /// What the trainer spent on the budget's axes.
    pub spent: Spend,
    /// Its answered LLM calls and tokens by caller, the agent's for its evaluations as
    /// `agent`.
    pub by_role: BTreeMap<String, RoleSpend>,
}

/// What a trainer may know of its job beyond the task and the seed: external trainers
/// need a working directory and how to start their program.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobInfo {
    /// The job id.
    pub job_id: String,
    /// The trainer id as configured.
    pub trainer_id: String,
    /// The job's directory, when it has one (tests may run without).
    pub dir: Option<std::path::PathBuf>,
    /// Stub or real LLM.
    pub mode: Mode,
    /// The Python that runs external trainers (`--external-python`), if set.
    pub external_python: Option<String>,
}

/// LLM failures in a row after which a job stops calling (the endpoint is not usable).
const MAX_FAILURES_IN_A_ROW: u32 = 3;

/// A trainer's view of its job.
pub struct Ctx<'a, 'e> {
    /// The task being optimised.
    pub task: &'a Task,
    llm: &'a mut dyn Llm,
    protocol: &'a dyn Protocol,
    emitter: &'a mut Emitter<'e>,
    monitor: &'a mut Monitor,
    seed: i64,
    /// Spent so far.
    pub counters: Counters,
    selections: Vec<u64>,
    next_id: u64,
    step: u64,
    step_started: Instant,
    step_before: Counters,
    step_evaluations: u64,
    failures_in_a_row: u32,
    llm_failure: Option<LlmError>,
    stop: JobStop,
    /// Whole-split evaluations of a multi-objective task, for the Pareto front.
    archive: Vec<ParetoPoint>,
    /// LLM requests of one batch in flight at once (`num_threads`).
    threads: usize,
    job: JobInfo,
    /// What the job may spend, and since when.
    budget: Budget,
    started: Instant,
    /// USD per million prompt and completion tokens, for `max_cost_usd`.
    prices: (f64, f64),
    /// The agent's calls and tokens for the trainer's own evaluations (not the monitor's).
    agent_spent: crate::task::agent::AgentUsage,
    /// Problem context shown to the optimizer with the objective (POLCA's summary).
    context: Option<String>,
    /// Answered calls and tokens by caller (optimizer, task, reflection, …).
    by_role: BTreeMap<String, RoleSpend>,
}

/// One evaluation a trainer asks for: candidate `candidate_id` with `params` on the
/// examples `ids` of `split`.
#[derive(Debug, Clone, Copy)]
pub struct EvalSpec<'s> {
    /// The candidate's id (for events and the Pareto archive).
    pub candidate_id: u64,
    /// Its parameters.
    pub params: &'s Kwargs,
    /// The split.
    pub split: SplitName,
    /// Examples of the split.
    pub ids: &'s [usize],
}

/// One proposal a trainer asks for: `parent` updated from its results `eval` on the
/// train examples `ids`; `only` restricts it to one parameter; `history` feeds protocols
/// that show earlier rounds.
pub struct ProposalSpec<'s> {
    /// The parameters to improve.
    pub parent: &'s Kwargs,
    /// Train examples the results are for.
    pub ids: &'s [usize],
    /// The results.
    pub eval: &'s Evaluation,
    /// One parameter only (GEPA's component).
    pub only: Option<&'s str>,
    /// Earlier rounds.
    pub history: &'s [HistoryEntry],
}

impl<'a, 'e> Ctx<'a, 'e> {
    /// A context for one job; `seed` drives every random draw of the trainer.
    pub fn new(
        task: &'a Task,
        llm: &'a mut dyn Llm,
        protocol: &'a dyn Protocol,
        emitter: &'a mut Emitter<'e>,
        monitor: &'a mut Monitor,
        seed: i64,
    ) -> Self {
        Self {
            task,
            llm,
            protocol,
            emitter,
            monitor,
            seed,
            counters: Counters::default(),
            selections: Vec::new(),
            next_id: 0,
            step: 0,
            step_started: Instant::now(),
            step_before: Counters::default(),
            step_evaluations: 0,
            failures_in_a_row: 0,
            llm_failure: None,
            stop: JobStop::never(),
            archive: Vec::new(),
            threads: 1,
            job: JobInfo::default(),
            budget: Budget::default(),
            started: Instant::now(),
            prices: (0.0, 0.0),
            agent_spent: Default::default(),
            context: None,
            by_role: BTreeMap::new(),
        }
    }

    /// Show `context` to the optimizer from now on, in a `# Context` section after the
    /// objective of every proposal request (OpenTrace's `optimizer.set_context`).
    pub fn set_context(&mut self, context: Option<String>) {
        self.context = context;
    }

    /// Hold the trainer to `budget` (prices in USD per million prompt / completion tokens,
    /// for `max_cost_usd`), counted from now.
    pub fn with_budget(mut self, budget: Budget, prices: (f64, f64)) -> Self {
        self.budget = budget;
        self.prices = prices;
        self.started = Instant::now();
        self
    }

    /// What the trainer has spent on the budget's axes: its evaluator calls, its LLM calls
    /// and tokens plus its agent's for its own evaluations, their cost, its time.
    pub fn spend(&self) -> Spend {
        let tokens = self.counters.prompt_tokens
            + self.counters.completion_tokens
            + self.agent_spent.prompt_tokens
            + self.agent_spent.completion_tokens;
        let prompt = (self.counters.prompt_tokens + self.agent_spent.prompt_tokens) as f64;
        let completion =
            (self.counters.completion_tokens + self.agent_spent.completion_tokens) as f64;
        Spend {
            metric_calls: self.counters.metric_calls,
            llm_calls: self.counters.llm_calls + self.agent_spent.calls,
            tokens,
            cost_usd: (prompt * self.prices.0 + completion * self.prices.1) / 1e6,
            seconds: self.started.elapsed().as_secs_f64(),
        }
    }

    /// Answered calls and tokens by caller so far, the agent's for the trainer's own
    /// evaluations as `agent`.
    pub fn spend_by_role(&self) -> BTreeMap<String, RoleSpend> {
        let mut out = self.by_role.clone();
        if self.agent_spent.calls > 0 {
            out.insert(
                "agent".into(),
                RoleSpend {
                    calls: self.agent_spent.calls,
                    prompt_tokens: self.agent_spent.prompt_tokens,
                    completion_tokens: self.agent_spent.completion_tokens,
                },
            );
        }
        out
    }

    /// `Err` (a budget stop) when `metric` more evaluator calls and `llm` more LLM calls
    /// would pass a limit, or a token, cost or time limit is reached: what cannot fit does
    /// not start.
    fn within_budget(&self, metric: u64, llm: u64) -> Result<(), Stopped> {
        match self.budget.exceeded(&self.spend(), metric, llm) {
            None => Ok(()),
            Some(limit) => Err(self.stopped(StopReason::Budget(limit))),
        }
    }

    fn stopped(&self, reason: StopReason) -> Stopped {
        Stopped {
            reason,
            steps: self.step.saturating_sub(1),
            metric_calls: self.counters.metric_calls + self.monitor.calls,
            llm_calls: self.counters.llm_calls,
            prompt_tokens: self.counters.prompt_tokens,
            completion_tokens: self.counters.completion_tokens,
            spent: self.spend(),
            by_role: self.spend_by_role(),
        }
    }

    /// Tell the trainer about its job (directory, mode, external Python).
    pub fn with_job(mut self, job: JobInfo) -> Self {
        self.job = job;
        self
    }

    /// The job, as far as a trainer may know it.
    pub fn job(&self) -> &JobInfo {
        &self.job
    }

    /// The job seed.
    pub fn seed(&self) -> i64 {
        self.seed
    }

    /// `Err` if the job must stop now (its deadline, a failed agent; with `at_step_end`
    /// also the run's cancellation). For trainers that wait on something outside.
    pub fn poll_stop(&self, at_step_end: bool) -> Result<(), Stopped> {
        self.check_stop(at_step_end)
    }

    /// Send one request on behalf of `role` (an external trainer's caller: `task`,
    /// `prompt`, `reflection`, …) through the job's LLM — or answer it with `canned`
    /// (stub mode's task program, [`crate::task::agent::StubAgent`]) — counting the call
    /// and its tokens and recording its transcript like the trainer's own calls. `Err`
    /// when the job must stop; the inner `Err` is the LLM's failure for the caller.
    pub fn relay(
        &mut self,
        role: &str,
        request: &ChatRequest,
        canned: Option<String>,
    ) -> Result<Result<ChatResponse, LlmError>, Stopped> {
        self.check_stop(false)?;
        self.within_budget(0, 1)?;
        if let Some(e) = &self.llm_failure {
            return Ok(Err(e.clone()));
        }
        let call = self.counters.llm_calls;
        self.counters.llm_calls += 1;
        let info = self.llm.info();
        let result = match canned {
            Some(content) => Ok(ChatResponse::estimated(request, content, 0.0)),
            None => self.llm.complete(request),
        };
        for warning in self.llm.take_warnings() {
            self.warn(warning);
        }
        let messages = request
            .messages
            .iter()
            .map(|m| Message::new(&m.role, self.llm.redact(&m.content)))
            .collect();
        let answer = match &result {
            Ok(r) => Ok(r),
            Err(e) => Err(format!("{}: {e}", e.kind())),
        };
        let event = EventKind::LlmTranscript(Box::new(LlmTranscript::of(
            role,
            (self.step, call),
            self.llm.sent(request),
            messages,
            answer,
        )));
        self.emitter.emit_attached(event);
        match &result {
            Ok(reply) => {
                self.failures_in_a_row = 0;
                self.count_call(role, &info, reply, Vec::new());
            }
            Err(e) => {
                self.warn(format!("{role} call: {e}"));
                self.failures_in_a_row += 1;
                if e.stops_run() || self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW {
                    self.llm_failure = Some(e.clone());
                }
            }
        }
        self.check_stop(false)?;
        Ok(result)
    }

    /// Score a reply to example `id` of `split` (an external library ran the task program),
    /// charging one metric call; `None` when the task scores parameters, not replies.
    pub fn score_reply(
        &mut self,
        split: SplitName,
        id: usize,
        reply: &str,
    ) -> Result<Option<ExampleResult>, Stopped> {
        self.check_stop(false)?;
        self.within_budget(1, 0)?;
        let Some(example) = self.split(split).get(id) else {
            return Ok(None);
        };
        let result = self.task.score_reply(reply, example);
        if result.is_some() {
            self.counters.metric_calls += 1;
            self.step_evaluations += 1;
        }
        self.check_stop(false)?;
        Ok(result)
    }

    /// Send up to `threads` LLM requests of a batch at once (`num_threads`; results do
    /// not depend on it).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Stop the job at its deadline or on cancellation (see [`crate::stop`]); the LLM
    /// bounds its requests by the same deadline.
    pub fn with_stop(mut self, stop: JobStop) -> Self {
        self.llm.set_deadline(stop.deadline());
        self.stop = stop;
        self
    }

    /// `Err` if the job must stop now: its deadline passed, its agent failed for good, or
    /// (at a step end) the run was cancelled. Trainers pass it up with `?`.
    fn check_stop(&self, at_step_end: bool) -> Result<(), Stopped> {
        // The deadline first: an agent cut off by it has not failed.
        let reason = self.stop.hard().or_else(|| {
            if self.task.agent_failure().is_some() {
                Some(StopReason::Failed)
            } else if at_step_end {
                self.stop.at_step_end()
            } else {
                None
            }
        });
        match reason {
            Some(reason) => Err(self.stopped(reason)),
            None => self.within_budget(0, 0),
        }
    }

    /// A random stream of this job, named by its use (data, selection, merge, ...).
    pub fn rng(&self, label: &str) -> Rng {
        Rng::stream(self.seed, label)
    }

    /// The current step (0 = initial).
    pub fn step(&self) -> u64 {
        self.step
    }

    /// A fresh candidate id (0, 1, 2, ... in creation order).
    pub fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }

    /// The examples of a split.
    pub fn split(&self, split: SplitName) -> &'a [Example] {
        let s = &self.task.manifest.splits;
        match split {
            SplitName::Train => &s.train,
            SplitName::Validation => &s.validation,
            SplitName::Test => &s.test,
        }
    }

    /// Score `params` on the examples `ids` of `split`, charging one metric call each.
    pub fn evaluate(
        &mut self,
        candidate_id: u64,
        params: &Kwargs,
        split: SplitName,
        ids: &[usize],
    ) -> Result<Evaluation, Stopped> {
        let ask = EvalSpec {
            candidate_id,
            params,
            split,
            ids,
        };
        let mut evals = self.evaluate_batch(&[ask])?;
        Ok(evals
            .pop()
            .unwrap_or_else(|| unreachable!("one spec, one evaluation")))
    }

    /// [`Ctx::evaluate`] for independent evaluations at once (up to `num_threads`
    /// examples in flight across them): the same calls and results as one after another;
    /// the `Eval` events come in batch order, each with the batch's wall time.
    pub fn evaluate_batch(&mut self, specs: &[EvalSpec<'_>]) -> Result<Vec<Evaluation>, Stopped> {
        self.check_stop(false)?;
        let examples_asked: u64 = specs.iter().map(|s| s.ids.len() as u64).sum();
        let agent_calls = if self.task.uses_agent() {
            examples_asked
        } else {
            0
        };
        self.within_budget(examples_asked, agent_calls)?;
        let agent_before = self.task.agent_usage();
        let started = Instant::now();
        let examples: Vec<Vec<&Example>> = specs
            .iter()
            .map(|s| {
                let split = self.split(s.split);
                s.ids.iter().map(|&i| &split[i]).collect()
            })
            .collect();
        let requests: Vec<EvalRequest<'_>> = specs
            .iter()
            .zip(&examples)
            .map(|(s, refs)| EvalRequest {
                values: s.params,
                split: s.split,
                examples: refs,
            })
            .collect();
        let evals = self.task.evaluate_batch(&requests);
        self.counters.metric_calls += examples.iter().map(|e| e.len() as u64).sum::<u64>();
        let agent_after = self.task.agent_usage();
        self.agent_spent.calls += agent_after.calls - agent_before.calls;
        self.agent_spent.prompt_tokens += agent_after.prompt_tokens - agent_before.prompt_tokens;
        self.agent_spent.completion_tokens +=
            agent_after.completion_tokens - agent_before.completion_tokens;
        for event in agent_transcripts(self.task, self.step) {
            self.emitter.emit_attached(event);
        }
        self.check_stop(false)?;
        let seconds = started.elapsed().as_secs_f64();
        for (spec, eval) in specs.iter().zip(&evals) {
            if self.task.manifest.objective_config.is_some()
                && spec.ids.len() == self.split(spec.split).len()
                && !eval.metrics.is_empty()
                && !self
                    .archive
                    .iter()
                    .any(|p| p.candidate_id == spec.candidate_id)
            {
                self.archive.push(ParetoPoint {
                    candidate_id: spec.candidate_id,
                    metrics: eval.metrics.clone(),
                    params: spec.params.clone(),
                });
            }
            self.step_evaluations += 1;
            self.emitter.emit(EventKind::Eval {
                step: self.step,
                candidate_id: spec.candidate_id,
                split: spec.split,
                examples: spec.ids.len() as u64,
                score: eval.score,
                seconds,
            });
        }
        Ok(evals)
    }

    /// Record that `parent` was selected for expansion (golden tests pin this order).
    pub fn selected(&mut self, parent: u64) {
        self.selections.push(parent);
    }

    /// Ask the LLM for an update of `parent` from its results on `ids` (train split).
    /// `only` restricts the request to one parameter (GEPA's component). Returns the
    /// complete child (parent values plus the update), or `None` when the reply proposes
    /// nothing usable; problems with the reply become warnings. `Err` when the job must
    /// stop.
    pub fn propose(
        &mut self,
        parent: &Kwargs,
        ids: &[usize],
        eval: &Evaluation,
        only: Option<&str>,
        history: &[HistoryEntry],
    ) -> Result<Option<Kwargs>, Stopped> {
        let spec = ProposalSpec {
            parent,
            ids,
            eval,
            only,
            history,
        };
        Ok(self.propose_batch(&[spec])?.pop().flatten())
    }

    /// [`Ctx::propose`] for independent proposals at once: the requests are built and
    /// numbered in order, sent up to `num_threads` at a time, and their replies taken in
    /// order — the same calls, events and children as one after another.
    pub fn propose_batch(
        &mut self,
        specs: &[ProposalSpec<'_>],
    ) -> Result<Vec<Option<Kwargs>>, Stopped> {
        if self.llm_failure.is_some() {
            return Ok(specs.iter().map(|_| None).collect());
        }
        let built: Vec<(Vec<crate::task::Param>, ChatRequest)> =
            specs.iter().map(|s| self.proposal_request(s)).collect();
        self.check_stop(false)?;
        self.within_budget(0, specs.len() as u64)?;
        let requests: Vec<ChatRequest> = built.iter().map(|(_, r)| r.clone()).collect();
        let first_call = self.counters.llm_calls;
        self.counters.llm_calls += requests.len() as u64;
        let results = self.llm.complete_batch(&requests, self.threads);
        let mut children = Vec::with_capacity(specs.len());
        for (k, ((spec, (params, request)), result)) in
            specs.iter().zip(built).zip(results).enumerate()
        {
            let call = first_call + k as u64;
            children.push(self.take_reply(spec.parent, &params, &request, call, result)?);
        }
        Ok(children)
    }

    fn proposal_request(&self, spec: &ProposalSpec<'_>) -> (Vec<crate::task::Param>, ChatRequest) {
        let params: Vec<_> = self
            .task
            .params()
            .iter()
            .filter(|p| p.trainable && spec.only.is_none_or(|name| p.name == name))
            .cloned()
            .collect();
        let train = self.split(SplitName::Train);
        let objective = match &self.context {
            Some(context) => format!("{}\n\n# Context\n{context}", self.task.manifest.objective),
            None => self.task.manifest.objective.clone(),
        };
        let instance = ProblemInstance {
            objective: &objective,
            variables: params
                .iter()
                .map(|p| (p, spec.parent.get(&p.name).cloned().unwrap_or(Json::Null)))
                .collect(),
            examples: spec
                .ids
                .iter()
                .zip(&spec.eval.examples)
                .map(|(&i, r)| ExampleTrace {
                    input: input_text(&train[i].input),
                    output: r.output.clone(),
                    feedback: r.feedback.clone(),
                })
                .collect(),
            history: if self.protocol.uses_history() {
                spec.history.to_vec()
            } else {
                Vec::new()
            },
        };
        let request = self.protocol.request(&instance);
        (params, request)
    }

    /// Record one reply (transcript, tokens, warnings) and turn it into a child.
    fn take_reply(
        &mut self,
        parent: &Kwargs,
        params: &[crate::task::Param],
        request: &ChatRequest,
        call: u64,
        result: Result<crate::llm::ChatResponse, LlmError>,
    ) -> Result<Option<Kwargs>, Stopped> {
        let info = self.llm.info();
        // The deadline is checked once the call is recorded: its tokens were paid for.
        for warning in self.llm.take_warnings() {
            self.warn(warning);
        }
        let transcript = |answer: Result<&crate::llm::ChatResponse, String>| {
            let messages = request
                .messages
                .iter()
                .map(|m| Message::new(&m.role, self.llm.redact(&m.content)))
                .collect();
            EventKind::LlmTranscript(Box::new(LlmTranscript::of(
                "optimizer",
                (self.step, call),
                self.llm.sent(request),
                messages,
                answer,
            )))
        };
        let reply = match result {
            Ok(r) => {
                self.failures_in_a_row = 0;
                let event = transcript(Ok(&r));
                self.emitter.emit_attached(event);
                r
            }
            Err(e) => {
                let event = transcript(Err(format!("{}: {e}", e.kind())));
                self.emitter.emit_attached(event);
                self.warn(e.to_string());
                self.check_stop(false)?;
                self.failures_in_a_row += 1;
                if e.stops_run() || self.failures_in_a_row >= MAX_FAILURES_IN_A_ROW {
                    self.llm_failure = Some(e);
                }
                return Ok(None);
            }
        };
        let parsed = self.protocol.parse(&reply.content, params);
        self.count_call(
            "optimizer",
            &info,
            &reply,
            parsed.update.keys().cloned().collect(),
        );
        self.check_stop(false)?;
        for problem in &parsed.problems {
            let message = format!("{} reply: {problem}", self.protocol.name());
            self.warn(message);
        }
        if parsed.update.is_empty() {
            return Ok(None);
        }
        let mut child = parent.clone();
        child.extend(parsed.update);
        Ok(Some(child))
    }

    /// Count an answered call's tokens and emit its `llm_call` event.
    fn count_call(
        &mut self,
        role: &str,
        info: &crate::llm::LlmInfo,
        reply: &ChatResponse,
        updated: Vec<String>,
    ) {
        self.counters.prompt_tokens += reply.usage.prompt_tokens;
        self.counters.completion_tokens += reply.usage.completion_tokens;
        let by_role = self.by_role.entry(role.to_string()).or_default();
        by_role.calls += 1;
        by_role.prompt_tokens += reply.usage.prompt_tokens;
        by_role.completion_tokens += reply.usage.completion_tokens;
        self.emitter.emit(EventKind::LlmCall {
            step: self.step,
            model: info.model.clone(),
            stub: info.stub,
            prompt_tokens: reply.usage.prompt_tokens,
            completion_tokens: reply.usage.completion_tokens,
            latency_s: reply.latency_s,
            cached: reply.cached,
            retries: reply.retries,
            updated,
        });
    }

    /// Embed `texts` (one `/v1/embeddings` request each, in order) with `model`, else the
    /// client's embedding model: the job's LLM — its cache, replay, tally and rate limit,
    /// the stub's hash-derived unit vectors in stub mode. Each answer is an
    /// `embedding_call` event; a failed request is a warning and `None`. Embeddings are not
    /// `llm_calls` and not held to `max_llm_calls` (their own results columns count them).
    /// `Err` when the job must stop.
    pub fn embed(
        &mut self,
        texts: &[String],
        model: Option<&str>,
    ) -> Result<Vec<Option<Vec<f64>>>, Stopped> {
        let mut out = Vec::with_capacity(texts.len());
        for text in texts {
            self.check_stop(false)?;
            if self.llm_failure.is_some() {
                out.push(None);
                continue;
            }
            let request = crate::llm::EmbedRequest {
                input: text.clone(),
                model: model.map(str::to_string),
            };
            let result = self.llm.embed(&request);
            for warning in self.llm.take_warnings() {
                self.warn(warning);
            }
            match result {
                Ok(answer) => {
                    let info = self.llm.info();
                    self.emitter.emit(EventKind::EmbeddingCall {
                        step: self.step,
                        model: answer.model.or(request.model).unwrap_or(info.model),
                        stub: info.stub,
                        tokens: answer.tokens,
                        latency_s: answer.latency_s,
                        cached: answer.cached,
                        retries: answer.retries,
                    });
                    out.push(Some(answer.vector));
                }
                Err(e) => {
                    self.warn(format!("embedding failed: {e}"));
                    if e.stops_run() {
                        self.llm_failure = Some(e);
                    }
                    out.push(None);
                }
            }
        }
        Ok(out)
    }

    /// Emit a warning for the current step.
    pub fn warn(&mut self, message: String) {
        self.emitter.emit(EventKind::Warning {
            step: Some(self.step),
            message,
        });
    }

    /// Report a candidate: created from `parent` (and `merged_with` for a merge).
    pub fn candidate(
        &mut self,
        id: u64,
        parent: Option<u64>,
        merged_with: Option<u64>,
        score: Option<f64>,
        best: bool,
    ) {
        self.emitter.emit(EventKind::Candidate {
            step: self.step,
            candidate_id: id,
            parent_id: parent,
            merged_with,
            score,
            best,
        });
    }

    /// Close the current step: one learning-curve point for the chosen parameters
    /// (`best_score` is the trainer's own estimate of them, `score_train` the step's
    /// best training score), then start the next step. `Err` when the job must stop.
    pub fn end_step(
        &mut self,
        best: &Kwargs,
        best_score: Option<f64>,
        score_train: Option<f64>,
    ) -> Result<(), Stopped> {
        let (score_val, _) = self.monitor.score(self.task, best);
        for event in agent_transcripts(self.task, self.step) {
            self.emitter.emit_attached(event);
        }
        let metrics = self.monitor.metrics(best);
        let spent = self.counters.since(&self.step_before);
        self.emitter.emit(EventKind::Step(StepRecord {
            metrics,
            step: self.step,
            score_train,
            score_val,
            best_score,
            step_seconds: self.step_started.elapsed().as_secs_f64(),
            elapsed_seconds: self.emitter.elapsed(),
            evaluator_calls: spent.metric_calls,
            llm_calls: spent.llm_calls,
            tokens: spent.prompt_tokens + spent.completion_tokens,
            candidates: self.step_evaluations,
            spent: self.spend().into(),
            best_params: best.clone(),
        }));
        self.step += 1;
        self.step_started = Instant::now();
        self.step_before = self.counters.clone();
        self.step_evaluations = 0;
        self.check_stop(true)
    }

    /// Wrap up: the trainer's finish plus what was spent.
    pub fn finish(self, finish: Finish) -> TrainResult {
        let spent = self.spend();
        let by_role = self.spend_by_role();
        TrainResult {
            best_params: finish.best,
            best_step: finish.best_step,
            steps: self.step.saturating_sub(1),
            counters: self.counters,
            selections: self.selections,
            pool: finish.pool,
            failure: finish.failure,
            resolved_optimizer: finish.resolved_optimizer,
            spent,
            by_role,
            llm_failure: self.llm_failure,
            pareto_front: match &self.task.manifest.objective_config {
                Some(config) => {
                    let points: Vec<(u64, BTreeMap<String, f64>)> = self
                        .archive
                        .iter()
                        .map(|p| (p.candidate_id, p.metrics.clone()))
                        .collect();
                    let front: Vec<u64> = crate::task::objective::pareto_front(config, &points)
                        .iter()
                        .map(|(id, _)| *id)
                        .collect();
                    self.archive
                        .into_iter()
                        .filter(|p| front.contains(&p.candidate_id))
                        .collect()
                }
                None => Vec::new(),
            },
        }
    }
}

/// An example input as prompt text (`None` for inputs the agent ignores, as in Python).
fn input_text(input: &Json) -> String {
    match input {
        Json::String(s) => s.clone(),
        Json::Null => "None".into(),
        other => other.to_string(),
    }
}

/// Mean of some scores; `None` when empty.
pub fn mean(scores: impl IntoIterator<Item = f64>) -> Option<f64> {
    let (sum, n) = scores
        .into_iter()
        .fold((0.0, 0u64), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// The larger of two optional scores.
pub fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}
