//! The shared search loop: a simplified but honest priority search.
//!
//! Step 0 evaluates the initial parameters. Each later step draws a training minibatch,
//! takes the `candidates` best candidates of the pool (mean score over all their
//! evaluations; ties go to the older candidate), evaluates each on the batch to get fresh
//! feedback, asks the LLM for `proposals` updates of each, evaluates every new candidate
//! on the same batch, and keeps the best. All randomness comes from the job seed.

use std::time::Instant;

use serde_json::Value as Json;

use super::LoopSettings;
use crate::config::model::Kwargs;
use crate::events::{Emitter, EventKind, StepRecord};
use crate::llm::Llm;
use crate::optimizer::{ExampleTrace, ProblemInstance, Protocol};
use crate::rng::Rng;
use crate::task::{Evaluation, Example, SplitName, Task};

/// What a finished search hands back to the job runner.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainResult {
    /// The best parameters found (the job's final parameters).
    pub best_params: Kwargs,
    /// Step at which they were found.
    pub best_step: u64,
    /// Iterations run (excluding step 0).
    pub steps: u64,
    /// Evaluator calls made by the loop.
    pub evaluator_calls: u64,
    /// LLM calls made.
    pub llm_calls: u64,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
}

struct Candidate {
    id: u64,
    params: Kwargs,
    score_sum: f64,
    score_n: u64,
    found_at: u64,
}

impl Candidate {
    fn mean(&self) -> Option<f64> {
        (self.score_n > 0).then(|| self.score_sum / self.score_n as f64)
    }
}

#[derive(Debug, Clone, Default)]
struct Counters {
    evaluator_calls: u64,
    llm_calls: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
}

impl Counters {
    fn tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }

    /// What was spent since `before`.
    fn since(&self, before: &Counters) -> Counters {
        Counters {
            evaluator_calls: self.evaluator_calls - before.evaluator_calls,
            llm_calls: self.llm_calls - before.llm_calls,
            prompt_tokens: self.prompt_tokens - before.prompt_tokens,
            completion_tokens: self.completion_tokens - before.completion_tokens,
        }
    }
}

/// One run of the loop for one job.
pub struct SearchLoop<'a, 'e> {
    /// The task being optimised.
    pub task: &'a Task,
    /// Loop shape.
    pub settings: LoopSettings,
    /// Who answers prompts.
    pub llm: &'a mut dyn Llm,
    /// How prompts are built and replies read.
    pub protocol: &'a dyn Protocol,
    /// The job seed.
    pub seed: i64,
    /// Where progress goes.
    pub emitter: &'a mut Emitter<'e>,
}

impl SearchLoop<'_, '_> {
    /// Run the loop to the end.
    pub fn run(mut self) -> TrainResult {
        let mut data_rng = Rng::stream(self.seed, "trainer-data");
        let mut counters = Counters::default();
        let mut pool = vec![Candidate {
            id: 0,
            params: self.task.initial_values(),
            score_sum: 0.0,
            score_n: 0,
            found_at: 0,
        }];
        let step_started = Instant::now();
        let batch = self.minibatch(&mut data_rng);
        let eval = self.evaluate(&pool[0].params, &batch, 0, 0, &mut counters);
        record(&mut pool[0], &eval);
        self.emitter.emit(EventKind::Candidate {
            step: 0,
            candidate_id: 0,
            parent_id: None,
            score: pool[0].mean(),
            best: true,
        });
        let mut best = 0usize;
        let score_val = self.validate(&pool[best].params, &mut counters);
        self.emit_step(
            0,
            &pool[best],
            eval.score,
            score_val,
            step_started,
            &counters,
            1,
        );
        let mut next_id = 1;
        for step in 1..=self.settings.steps {
            let step_started = Instant::now();
            let before = counters.clone();
            let batch = self.minibatch(&mut data_rng);
            let mut step_best: Option<f64> = None;
            let mut evaluated = 0;
            for parent in ranked(&pool).into_iter().take(self.settings.candidates) {
                let parent_eval = self.evaluate(
                    &pool[parent].params.clone(),
                    &batch,
                    step,
                    pool[parent].id,
                    &mut counters,
                );
                record(&mut pool[parent], &parent_eval);
                evaluated += 1;
                for _ in 0..self.settings.proposals {
                    let Some(child_params) = self.propose(
                        &pool[parent].params,
                        &parent_eval,
                        &batch,
                        step,
                        &mut counters,
                    ) else {
                        continue;
                    };
                    if pool.iter().any(|c| c.params == child_params) {
                        continue;
                    }
                    let eval = self.evaluate(&child_params, &batch, step, next_id, &mut counters);
                    let mut child = Candidate {
                        id: next_id,
                        params: child_params,
                        score_sum: 0.0,
                        score_n: 0,
                        found_at: step,
                    };
                    record(&mut child, &eval);
                    next_id += 1;
                    evaluated += 1;
                    step_best = max_opt(step_best, eval.score);
                    let parent_id = pool[parent].id;
                    pool.push(child);
                    let is_best = ranked(&pool)[0] == pool.len() - 1;
                    self.emitter.emit(EventKind::Candidate {
                        step,
                        candidate_id: next_id - 1,
                        parent_id: Some(parent_id),
                        score: eval.score,
                        best: is_best,
                    });
                }
                step_best = max_opt(step_best, parent_eval.score);
            }
            best = ranked(&pool)[0];
            let score_val = self.validate(&pool[best].params, &mut counters);
            self.emit_step(
                step,
                &pool[best],
                step_best,
                score_val,
                step_started,
                &counters.since(&before),
                evaluated,
            );
        }
        TrainResult {
            best_params: pool[best].params.clone(),
            best_step: pool[best].found_at,
            steps: self.settings.steps,
            evaluator_calls: counters.evaluator_calls,
            llm_calls: counters.llm_calls,
            prompt_tokens: counters.prompt_tokens,
            completion_tokens: counters.completion_tokens,
        }
    }

    /// The step's training examples: all of them, or a seeded sample without replacement.
    fn minibatch(&self, rng: &mut Rng) -> Vec<Example> {
        let train = &self.task.manifest.splits.train;
        let n = self.settings.batch_size;
        if n == 0 || n >= train.len() {
            return train.clone();
        }
        let mut idx: Vec<usize> = (0..train.len()).collect();
        for i in 0..n {
            let j = i + rng.below(idx.len() - i);
            idx.swap(i, j);
        }
        idx[..n].iter().map(|&i| train[i].clone()).collect()
    }

    fn evaluate(
        &mut self,
        params: &Kwargs,
        batch: &[Example],
        step: u64,
        candidate_id: u64,
        counters: &mut Counters,
    ) -> Evaluation {
        let started = Instant::now();
        let refs: Vec<&Example> = batch.iter().collect();
        let eval = self.task.evaluate(params, SplitName::Train, &refs);
        counters.evaluator_calls += batch.len() as u64;
        self.emitter.emit(EventKind::Eval {
            step,
            candidate_id,
            split: SplitName::Train,
            examples: batch.len() as u64,
            score: eval.score,
            seconds: started.elapsed().as_secs_f64(),
        });
        eval
    }

    /// Ask for one update of `parent`; `None` when the reply proposes nothing usable.
    fn propose(
        &mut self,
        parent: &Kwargs,
        eval: &Evaluation,
        batch: &[Example],
        step: u64,
        counters: &mut Counters,
    ) -> Option<Kwargs> {
        let params = self.task.params();
        let instance = ProblemInstance {
            objective: &self.task.manifest.objective,
            variables: params
                .iter()
                .filter(|p| p.trainable)
                .map(|p| (p, parent.get(&p.name).cloned().unwrap_or(Json::Null)))
                .collect(),
            examples: batch
                .iter()
                .zip(&eval.examples)
                .map(|(ex, r)| ExampleTrace {
                    input: match &ex.input {
                        Json::String(s) => s.clone(),
                        Json::Null => "None".into(),
                        other => other.to_string(),
                    },
                    output: r.output.clone(),
                    feedback: r.feedback.clone(),
                })
                .collect(),
            history: vec![],
        };
        let request = self.protocol.request(&instance);
        counters.llm_calls += 1;
        let info = self.llm.info();
        let reply = match self.llm.complete(&request) {
            Ok(r) => r,
            Err(e) => {
                self.emitter.emit(EventKind::Warning {
                    step: Some(step),
                    message: e.to_string(),
                });
                return None;
            }
        };
        counters.prompt_tokens += reply.usage.prompt_tokens;
        counters.completion_tokens += reply.usage.completion_tokens;
        let parsed = self.protocol.parse(&reply.content, params);
        self.emitter.emit(EventKind::LlmCall {
            step,
            model: info.model,
            stub: info.stub,
            prompt_tokens: reply.usage.prompt_tokens,
            completion_tokens: reply.usage.completion_tokens,
            latency_s: reply.latency_s,
            cached: false,
            retries: 0,
            updated: parsed.update.keys().cloned().collect(),
        });
        for problem in &parsed.problems {
            self.emitter.emit(EventKind::Warning {
                step: Some(step),
                message: format!("{} reply: {problem}", self.protocol.name()),
            });
        }
        if parsed.update.is_empty() {
            return None;
        }
        let mut child = parent.clone();
        child.extend(parsed.update);
        Some(child)
    }

    /// Score the best-so-far parameters on the validation split, when the task has one.
    fn validate(&self, params: &Kwargs, counters: &mut Counters) -> Option<f64> {
        let validation = &self.task.manifest.splits.validation;
        if validation.is_empty() {
            return None;
        }
        let refs: Vec<&Example> = validation.iter().collect();
        counters.evaluator_calls += refs.len() as u64;
        self.task
            .evaluate(params, SplitName::Validation, &refs)
            .score
    }

    /// Emit one learning-curve point; `spent` holds the step's counters.
    #[expect(clippy::too_many_arguments, reason = "the fields of one step record")]
    fn emit_step(
        &mut self,
        step: u64,
        best: &Candidate,
        score_train: Option<f64>,
        score_val: Option<f64>,
        started: Instant,
        spent: &Counters,
        evaluated: u64,
    ) {
        self.emitter.emit(EventKind::Step(StepRecord {
            step,
            score_train,
            score_val,
            best_score: best.mean(),
            step_seconds: started.elapsed().as_secs_f64(),
            elapsed_seconds: self.emitter.elapsed(),
            evaluator_calls: spent.evaluator_calls,
            llm_calls: spent.llm_calls,
            tokens: spent.tokens(),
            candidates: evaluated,
            best_params: best.params.clone(),
        }));
    }
}

fn record(c: &mut Candidate, eval: &Evaluation) {
    for r in &eval.examples {
        c.score_sum += r.score;
        c.score_n += 1;
    }
}

/// Pool indices from best to worst mean score; ties keep the older candidate first.
fn ranked(pool: &[Candidate]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..pool.len()).collect();
    idx.sort_by(|&a, &b| {
        let (sa, sb) = (
            pool[a].mean().unwrap_or(f64::NEG_INFINITY),
            pool[b].mean().unwrap_or(f64::NEG_INFINITY),
        );
        sb.total_cmp(&sa).then(pool[a].id.cmp(&pool[b].id))
    });
    idx
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}
