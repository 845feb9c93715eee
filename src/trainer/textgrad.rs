//! TextGradTrainer (the Python reference's `trace_bench/trainers/textgrad_trainer.py` over
//! OpenTrace's TextGrad port; see `docs/trainers.md`): for each epoch, for each consecutive
//! batch of `batch_size` training examples, the current parameters are run on the batch;
//! every trainable parameter gets one backward call per example (its textual gradient),
//! one reduce call when it has several, and one update call; with `ensure_improvement` the
//! update is kept only when its score on the evaluation set (the validation split, else the
//! batch) is at least the current parameters' score there plus `improvement_threshold`.

use serde_json::Value as Json;

use super::core::{Ctx, Finish, PoolEntry};
use super::knobs::{KnobError, Knobs};
use crate::optimizer::ExampleTrace;
use crate::optimizer::textgrad::{backward_request, parse_update, reduce_request, update_request};
use crate::stop::Stopped;
use crate::task::SplitName;

/// TextGradTrainer's knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    num_epochs: u64,
    batch_size: usize,
    ensure_improvement: bool,
    improvement_threshold: f64,
}

impl Settings {
    /// Read the knobs (`min_score` is checked to be a number; see the docs).
    pub fn read(k: &Knobs<'_>) -> Result<Self, KnobError> {
        k.number("min_score")?;
        Ok(Self {
            num_epochs: k.count("num_epochs")?,
            batch_size: k.positive("batch_size")? as usize,
            ensure_improvement: k.flag("ensure_improvement")?,
            improvement_threshold: k.number("improvement_threshold")?,
        })
    }
}

/// An example input as prompt text (as the other protocols show it).
fn input_text(input: &Json) -> String {
    match input {
        Json::String(s) => s.clone(),
        Json::Null => "None".into(),
        other => other.to_string(),
    }
}

/// Run TextGradTrainer.
pub fn run(s: &Settings, ctx: &mut Ctx<'_, '_>) -> Result<Finish, Stopped> {
    let n_train = ctx.split(SplitName::Train).len();
    let has_val = !ctx.split(SplitName::Validation).is_empty();
    let all_val: Vec<usize> = (0..ctx.split(SplitName::Validation).len()).collect();
    let params: Vec<crate::task::Param> = ctx
        .task
        .params()
        .iter()
        .filter(|p| p.trainable)
        .cloned()
        .collect();
    let objective = ctx.task.manifest.objective.clone();
    let mut current_id = ctx.new_id();
    let mut current = ctx.task.initial_values();
    let mut current_step = 0;
    let mut current_score: Option<f64> = None;
    ctx.candidate(current_id, None, None, None, true);
    ctx.end_step(&current, None, None)?;
    // Consecutive batches in split order, as the reference's loop takes them.
    let batches: Vec<Vec<usize>> = (0..n_train)
        .collect::<Vec<_>>()
        .chunks(s.batch_size)
        .map(<[usize]>::to_vec)
        .collect();
    for _ in 0..s.num_epochs {
        for ids in &batches {
            ctx.selected(current_id);
            let rollouts = ctx.evaluate(current_id, &current, SplitName::Train, ids)?;
            let train = ctx.split(SplitName::Train);
            let traces: Vec<ExampleTrace> = ids
                .iter()
                .zip(&rollouts.examples)
                .map(|(&i, r)| ExampleTrace {
                    input: input_text(&train[i].input),
                    output: r.output.clone(),
                    feedback: r.feedback.clone(),
                })
                .collect();
            let mut child = current.clone();
            for param in &params {
                let value = current.get(&param.name).cloned().unwrap_or(Json::Null);
                // Backward: one gradient per edge parameter -> example.
                let mut gradients = Vec::new();
                for trace in &traces {
                    let request = backward_request(&objective, param, &value, trace);
                    if let Ok(reply) = ctx.relay("backward", &request, None)? {
                        gradients.push(reply.content);
                    }
                }
                let gradient = match gradients.len() {
                    0 => continue,
                    1 => gradients.remove(0),
                    _ => match ctx.relay("reduce", &reduce_request(param, &gradients), None)? {
                        Ok(reply) => reply.content,
                        // Without a reduced gradient, all of them (TextGrad's fallback).
                        Err(_) => gradients.join("\n\n"),
                    },
                };
                let request = update_request(param, &value, &gradient);
                let Ok(reply) = ctx.relay("optimizer", &request, None)? else {
                    continue;
                };
                match parse_update(&reply.content, param) {
                    Ok(v) => {
                        child.insert(param.name.clone(), v);
                    }
                    Err(problem) => ctx.warn(format!(
                        "TextGrad reply for `{}`: {problem}; the parameter is kept",
                        param.name
                    )),
                }
            }
            let score_train = rollouts.score;
            let mut best_score = current_score;
            if child != current {
                let id = ctx.new_id();
                let keep = if s.ensure_improvement {
                    let (split, eval_ids) = if has_val {
                        (SplitName::Validation, all_val.clone())
                    } else {
                        (SplitName::Train, ids.clone())
                    };
                    let before = ctx.evaluate(current_id, &current, split, &eval_ids)?;
                    let after = ctx.evaluate(id, &child, split, &eval_ids)?;
                    let (b, a) = (
                        before.score.unwrap_or(f64::NEG_INFINITY),
                        after.score.unwrap_or(f64::NEG_INFINITY),
                    );
                    let keep = a >= b + s.improvement_threshold;
                    ctx.candidate(id, Some(current_id), None, after.score, keep);
                    best_score = if keep { after.score } else { before.score };
                    keep
                } else {
                    ctx.candidate(id, Some(current_id), None, None, true);
                    true
                };
                if keep {
                    (current_id, current, current_step) = (id, child, ctx.step());
                }
                current_score = best_score;
            }
            ctx.end_step(&current, best_score, score_train)?;
        }
    }
    Ok(Finish {
        best: current,
        best_step: current_step,
        pool: vec![PoolEntry {
            id: current_id,
            score: current_score,
        }],
        resolved_optimizer: Some("TextGrad".into()),
        ..Default::default()
    })
}
