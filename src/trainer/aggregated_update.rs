//! AggregatedUpdate (OpenTrace `opto/trainer/algorithms/aggregator.py`, a `Minibatch`
//! subclass; see `docs/trainers.md`): per minibatch of training examples, each example is
//! run on its own and gets its own optimizer update (proposed, not applied); one aggregator
//! call (`optimizer::aggregator`) then merges the current parameters (confidence
//! `1 - stepsize`) and the per-example suggestions (confidence `stepsize` each) into the new
//! parameters. With `ensure_improvement` a changed result is scored on the same minibatch
//! and reverted unless it beats the old minibatch score by more than
//! `-improvement_threshold`, as Minibatch's `has_improvement` does.

use super::core::{Ctx, EvalSpec, Finish, PoolEntry, ProposalSpec, mean};
use super::data::Loader;
use super::knobs::{KnobError, Knobs};
use super::minibatch::{Current, apply_update};
use crate::optimizer::aggregator::{aggregate_request, parse_aggregate};
use crate::stop::Stopped;
use crate::task::{Param, SplitName};
use crate::vocab::Kwargs;

/// AggregatedUpdate's knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    num_epochs: u64,
    batch_size: usize,
    stepsize: f64,
    max_tokens: u32,
    ensure_improvement: bool,
    improvement_threshold: f64,
}

impl Settings {
    /// Read the knobs (`stepsize` must lie in [0, 1], as upstream asserts).
    pub fn read(k: &Knobs<'_>) -> Result<Self, KnobError> {
        let stepsize = k.number("stepsize")?;
        if !(0.0..=1.0).contains(&stepsize) {
            return Err(KnobError::Wrong {
                trainer: k.trainer().to_string(),
                knob: "stepsize".into(),
                wanted: "a number from 0 to 1".into(),
                found: stepsize.to_string(),
            });
        }
        Ok(Self {
            num_epochs: k.count("num_epochs")?,
            batch_size: k.positive("batch_size")? as usize,
            stepsize,
            max_tokens: u32::try_from(k.positive("max_tokens")?).unwrap_or(u32::MAX),
            ensure_improvement: k.flag("ensure_improvement")?,
            improvement_threshold: k.number("improvement_threshold")?,
        })
    }
}

/// Run AggregatedUpdate.
pub fn run(s: &Settings, ctx: &mut Ctx<'_, '_>) -> Result<Finish, Stopped> {
    let mut loader = Loader::new(
        ctx.split(SplitName::Train).len(),
        ctx.rng("aggregated-update/train"),
    );
    let params: Vec<Param> = ctx
        .task
        .params()
        .iter()
        .filter(|p| p.trainable)
        .cloned()
        .collect();
    let mut current = Current {
        id: ctx.new_id(),
        params: ctx.task.initial_values(),
        step: 0,
        score: None,
    };
    ctx.candidate(current.id, None, None, None, true);
    ctx.end_step(&current.params, None, None)?;
    for _ in 0..s.num_epochs {
        for ids in loader.epoch(s.batch_size) {
            ctx.selected(current.id);
            // Forward: each example on its own, so each gets its own feedback.
            let singles: Vec<[usize; 1]> = ids.iter().map(|&i| [i]).collect();
            let asks: Vec<EvalSpec<'_>> = singles
                .iter()
                .map(|one| EvalSpec {
                    candidate_id: current.id,
                    params: &current.params,
                    split: SplitName::Train,
                    ids: one,
                })
                .collect();
            let evals = ctx.evaluate_batch(&asks)?;
            // The minibatch score: the mean, or none when an example has none (upstream).
            let per_example: Option<Vec<f64>> = evals.iter().map(|e| e.score).collect();
            let old = per_example.and_then(mean);
            // One update per example from its own feedback, none applied yet.
            let specs: Vec<ProposalSpec<'_>> = singles
                .iter()
                .zip(&evals)
                .map(|(one, eval)| ProposalSpec {
                    parent: &current.params,
                    ids: one,
                    eval,
                    only: None,
                    history: &[],
                })
                .collect();
            // A failed proposal is an empty update: upstream fills it with the current
            // values, so it still counts as a suggestion.
            let suggestions: Vec<Kwargs> = ctx
                .propose_batch(&specs)?
                .into_iter()
                .map(|child| child.unwrap_or_else(|| current.params.clone()))
                .collect();
            let request = aggregate_request(
                &params,
                &current.params,
                &suggestions,
                s.stepsize,
                s.max_tokens,
            );
            let mut child = current.params.clone();
            if let Ok(reply) = ctx.relay("aggregator", &request, None)? {
                let (update, problems) = parse_aggregate(&reply.content, &params);
                for problem in problems {
                    ctx.warn(format!(
                        "aggregator reply: {problem}; the parameter is kept"
                    ));
                }
                child.extend(update);
            }
            let mut best_score = old;
            if child != current.params {
                let id = ctx.new_id();
                let check = s.ensure_improvement.then_some(s.improvement_threshold);
                best_score = apply_update(ctx, &mut current, (id, child), &ids, old, check)?;
            } else if current.score.is_none() {
                current.score = old;
            }
            ctx.end_step(&current.params, best_score, old)?;
        }
    }
    Ok(Finish {
        best: current.params,
        best_step: current.step,
        pool: vec![PoolEntry {
            id: current.id,
            score: current.score,
        }],
        ..Default::default()
    })
}
