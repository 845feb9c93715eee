//! BeamsearchAlgorithm and BeamsearchHistoryAlgorithm (OpenTrace
//! `examples/trainers/beamsearch_algorithm.py`; see `docs/trainers.md`): a beam of
//! parameter sets, `max_depth` rounds; each round every beam member is run on a random
//! training batch and asked for `num_proposals` updates from its feedback, every proposal
//! and the member itself are scored on one shared random validation batch, and the best
//! `beam_width` form the next beam. The final beams are re-scored on the whole validation
//! split and the best is returned. The History variant shows the optimizer the last
//! `max_history_size` selected beams with their scores, appended to the batch's feedback.

use super::core::{Ctx, EvalSpec, Finish, PoolEntry, ProposalSpec};
use super::knobs::{KnobError, Knobs};
use crate::optimizer::HistoryEntry;
use crate::stop::Stopped;
use crate::task::{Evaluation, SplitName};
use crate::vocab::Kwargs;
use crate::vocab::canonical::{canonical_json, python_float_repr};

/// Knobs of both beam searches.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    beam_width: usize,
    num_proposals: usize,
    max_depth: u64,
    /// `None`: min(10, |V|).
    validation_dataset_size: Option<usize>,
    batch_size: usize,
    /// History variant: selected beams shown to the optimizer (`None`: plain).
    max_history_size: Option<usize>,
}

impl Settings {
    /// Read the knobs; `history` selects BeamsearchHistoryAlgorithm.
    pub fn read(history: bool, k: &Knobs<'_>) -> Result<Self, KnobError> {
        Ok(Self {
            beam_width: k.positive("beam_width")? as usize,
            num_proposals: k.positive("num_proposals")? as usize,
            max_depth: k.count("max_depth")?,
            validation_dataset_size: k
                .optional_count("validation_dataset_size")?
                .map(|n| n.max(1) as usize),
            batch_size: k.positive("batch_size")? as usize,
            max_history_size: if history {
                Some(k.count("max_history_size")? as usize)
            } else {
                None
            },
        })
    }
}

/// A round's candidate: id, parent (`None`: a beam member itself), parameters, step.
type Cand = (u64, Option<u64>, Kwargs, u64);

struct Beam {
    id: u64,
    params: Kwargs,
    step: u64,
}

/// Run a beam search.
pub fn run(s: &Settings, ctx: &mut Ctx<'_, '_>) -> Result<Finish, Stopped> {
    let label = if s.max_history_size.is_some() {
        "beam-history"
    } else {
        "beam"
    };
    let mut train_rng = ctx.rng(&format!("{label}/train"));
    let mut val_rng = ctx.rng(&format!("{label}/validate"));
    let n_train = ctx.split(SplitName::Train).len();
    // validate_dataset defaults to the training set.
    let val_split = if ctx.split(SplitName::Validation).is_empty() {
        SplitName::Train
    } else {
        SplitName::Validation
    };
    let n_val = ctx.split(val_split).len();
    let vsize = s.validation_dataset_size.unwrap_or(10).min(n_val);
    let id = ctx.new_id();
    ctx.candidate(id, None, None, None, true);
    let mut beams = vec![Beam {
        id,
        params: ctx.task.initial_values(),
        step: 0,
    }];
    if s.max_depth == 0 {
        return finish(ctx, beams, val_split, n_val, None);
    }
    ctx.end_step(&beams[0].params, None, None)?;
    // (params, validation score) of the selected beams, oldest first.
    let mut history: Vec<(Kwargs, f64)> = Vec::new();
    for depth in 0..s.max_depth {
        let vbatch = val_rng.sample_indices(n_val, vsize);
        // Every beam member's training batch, drawn in beam order, evaluated together.
        let batches: Vec<Vec<usize>> = beams
            .iter()
            .map(|_| train_rng.sample_indices(n_train, s.batch_size.min(n_train)))
            .collect();
        let specs: Vec<EvalSpec<'_>> = beams
            .iter()
            .zip(&batches)
            .map(|(b, ids)| EvalSpec {
                candidate_id: b.id,
                params: &b.params,
                split: SplitName::Train,
                ids,
            })
            .collect();
        let mut rollouts = ctx.evaluate_batch(&specs)?;
        let mut score_train = None;
        for e in &rollouts {
            score_train = super::core::max_opt(score_train, e.score);
        }
        if s.max_history_size.is_some() && !history.is_empty() {
            let block = history_block(&history);
            for e in &mut rollouts {
                append_feedback(e, &block);
            }
        }
        let shown: Vec<HistoryEntry> = Vec::new();
        let mut specs = Vec::new();
        for ((b, ids), e) in beams.iter().zip(&batches).zip(&rollouts) {
            ctx.selected(b.id);
            for _ in 0..s.num_proposals {
                specs.push(ProposalSpec {
                    parent: &b.params,
                    ids,
                    eval: e,
                    only: None,
                    history: &shown,
                });
            }
        }
        let children = ctx.propose_batch(&specs)?;
        // Candidates: each member's usable proposals, then the member itself.
        let mut cands: Vec<Cand> = Vec::new();
        let mut children = children.into_iter();
        for b in &beams {
            for child in children.by_ref().take(s.num_proposals).flatten() {
                let id = ctx.new_id();
                cands.push((id, Some(b.id), child, ctx.step()));
            }
            cands.push((b.id, None, b.params.clone(), b.step));
        }
        let specs: Vec<EvalSpec<'_>> = cands
            .iter()
            .map(|(id, _, params, _)| EvalSpec {
                candidate_id: *id,
                params,
                split: val_split,
                ids: &vbatch,
            })
            .collect();
        let evals = ctx.evaluate_batch(&specs)?;
        let mut scored: Vec<(usize, f64)> = Vec::new();
        for (k, ((id, parent, _, _), e)) in cands.iter().zip(&evals).enumerate() {
            if parent.is_some() {
                ctx.candidate(*id, *parent, None, e.score, false);
            }
            scored.push((k, score_of(e)));
        }
        // Stable sort, best first (ties keep candidate order); all when they fit.
        if scored.len() > s.beam_width {
            scored.sort_by(|a, b| b.1.total_cmp(&a.1));
            scored.truncate(s.beam_width);
        }
        let best_score = scored
            .iter()
            .map(|&(_, x)| x)
            .fold(f64::NEG_INFINITY, f64::max);
        let mut cands: Vec<Option<Cand>> = cands.into_iter().map(Some).collect();
        beams = scored
            .iter()
            .filter_map(|&(k, score)| {
                let (id, _, params, step) = cands[k].take()?;
                if let Some(max) = s.max_history_size {
                    history.push((params.clone(), score));
                    if history.len() > max {
                        history.remove(0);
                    }
                }
                Some(Beam { id, params, step })
            })
            .collect();
        if depth + 1 == s.max_depth {
            // The last round ends with the final scoring, so its step reports the result.
            return finish(ctx, beams, val_split, n_val, score_train);
        }
        // The round's best (the first maximum) is the step's choice.
        let top = scored
            .iter()
            .position(|&(_, x)| x == best_score)
            .unwrap_or(0);
        let params = beams[top].params.clone();
        ctx.end_step(&params, Some(best_score), score_train)?;
    }
    unreachable!("the last round returns")
}

/// Every beam on the whole validation split; the first maximum is returned, and closes the
/// last step (`score_train`: the round's best training score; `None` at step 0).
fn finish(
    ctx: &mut Ctx<'_, '_>,
    beams: Vec<Beam>,
    val_split: SplitName,
    n_val: usize,
    score_train: Option<f64>,
) -> Result<Finish, Stopped> {
    let all: Vec<usize> = (0..n_val).collect();
    let specs: Vec<EvalSpec<'_>> = beams
        .iter()
        .map(|b| EvalSpec {
            candidate_id: b.id,
            params: &b.params,
            split: val_split,
            ids: &all,
        })
        .collect();
    let evals = ctx.evaluate_batch(&specs)?;
    let scores: Vec<f64> = evals.iter().map(score_of).collect();
    let mut best = 0;
    for (k, sc) in scores.iter().enumerate() {
        if *sc > scores[best] {
            best = k;
        }
    }
    ctx.end_step(&beams[best].params, Some(scores[best]), score_train)?;
    let mut pool: Vec<PoolEntry> = beams
        .iter()
        .zip(&evals)
        .map(|(b, e)| PoolEntry {
            id: b.id,
            score: e.score,
        })
        .collect();
    pool.sort_by(|a, b| {
        b.score
            .unwrap_or(f64::NEG_INFINITY)
            .total_cmp(&a.score.unwrap_or(f64::NEG_INFINITY))
            .then(a.id.cmp(&b.id))
    });
    let beam = &beams[best];
    Ok(Finish {
        best: beam.params.clone(),
        best_step: beam.step,
        pool,
        ..Default::default()
    })
}

/// A mean score, `-inf` when missing (upstream: any `None` score).
fn score_of(e: &Evaluation) -> f64 {
    e.score.unwrap_or(f64::NEG_INFINITY)
}

/// The History variant's text block: the selected beams with their validation scores.
fn history_block(history: &[(Kwargs, f64)]) -> String {
    let mut text = String::from(
        "Previously selected parameter sets and their validation scores (oldest first):\n",
    );
    for (k, (params, score)) in history.iter().enumerate() {
        text += &format!(
            "{}. score {}: {}\n",
            k + 1,
            python_float_repr(*score),
            canonical_json(&serde_json::Value::Object(params.clone()))
        );
    }
    text
}

/// Append `block` to the feedback the optimizer sees for this batch (its last example's).
fn append_feedback(e: &mut Evaluation, block: &str) {
    if let Some(last) = e.examples.last_mut() {
        if !last.feedback.is_empty() {
            last.feedback.push_str("\n\n");
        }
        last.feedback.push_str(block);
    }
}
