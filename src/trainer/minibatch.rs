//! The two OpenTrace baselines built on minibatches (`basic_algorithms.py`; see
//! `docs/trainers.md`, MinibatchAlgorithm and BasicSearch), one step per minibatch over
//! `num_epochs` epochs:
//!
//! - `MinibatchAlgorithm`: one proposal per minibatch, applied; with
//!   `ensure_improvement` it is re-scored on the same minibatch and reverted unless it
//!   beats the old score by more than `-improvement_threshold` (ties are rejected).
//! - `BasicSearch`: `num_proposals` proposals on the same feedback, each scored on the
//!   whole validation split; the best of the proposals and the current parameters wins
//!   (a proposal wins a tie). The current score is measured once and cached.

use super::core::{Ctx, EvalSpec, Finish, PoolEntry, ProposalSpec};
use super::data::Loader;
use super::knobs::{KnobError, Knobs};
use crate::optimizer::HistoryEntry;
use crate::stop::Stopped;
use crate::task::SplitName;
use crate::vocab::Kwargs;

/// Knobs of both baselines.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    search: bool,
    num_epochs: u64,
    batch_size: usize,
    num_proposals: usize,
    ensure_improvement: bool,
    improvement_threshold: f64,
}

impl Settings {
    /// Read the knobs; `search` selects BasicSearch.
    pub fn read(search: bool, k: &Knobs<'_>) -> Result<Self, KnobError> {
        Ok(Self {
            search,
            num_epochs: k.count("num_epochs")?,
            batch_size: k.positive("batch_size")? as usize,
            num_proposals: if search {
                k.positive("num_proposals")? as usize
            } else {
                1
            },
            ensure_improvement: if search {
                false
            } else {
                k.flag("ensure_improvement")?
            },
            improvement_threshold: if search {
                0.0
            } else {
                k.number("improvement_threshold")?
            },
        })
    }
}

/// Run MinibatchAlgorithm or BasicSearch.
pub fn run(s: &Settings, ctx: &mut Ctx<'_, '_>) -> Result<Finish, Stopped> {
    let label = if s.search {
        "basic-search"
    } else {
        "minibatch"
    };
    let mut loader = Loader::new(
        ctx.split(SplitName::Train).len(),
        ctx.rng(&format!("{label}/train")),
    );
    let val_split = if ctx.split(SplitName::Validation).is_empty() {
        SplitName::Train
    } else {
        SplitName::Validation
    };
    let all_val: Vec<usize> = (0..ctx.split(val_split).len()).collect();
    let mut current_id = ctx.new_id();
    let mut current = ctx.task.initial_values();
    let mut current_step = 0;
    let mut current_score: Option<f64> = None;
    let mut history: Vec<HistoryEntry> = Vec::new();
    ctx.candidate(current_id, None, None, None, true);
    ctx.end_step(&current, None, None)?;
    for _ in 0..s.num_epochs {
        for ids in loader.epoch(s.batch_size) {
            ctx.selected(current_id);
            let rollouts = ctx.evaluate(current_id, &current, SplitName::Train, &ids)?;
            let old = rollouts.score;
            // The proposals share the feedback: asked together.
            let spec = || ProposalSpec {
                parent: &current,
                ids: &ids,
                eval: &rollouts,
                only: None,
                history: &history,
            };
            let specs: Vec<ProposalSpec<'_>> = (0..s.num_proposals).map(|_| spec()).collect();
            let mut proposals: Vec<(u64, Kwargs)> = Vec::new();
            for child in ctx.propose_batch(&specs)?.into_iter().flatten() {
                let id = ctx.new_id();
                proposals.push((id, child));
            }
            let mut best_score = old;
            if s.search {
                let specs: Vec<EvalSpec<'_>> = proposals
                    .iter()
                    .map(|(id, child)| EvalSpec {
                        candidate_id: *id,
                        params: child,
                        split: val_split,
                        ids: &all_val,
                    })
                    .collect();
                let evals = ctx.evaluate_batch(&specs)?;
                let mut scored = Vec::new();
                for ((id, child), e) in proposals.into_iter().zip(evals) {
                    ctx.candidate(id, Some(current_id), None, e.score, false);
                    scored.push((id, child, e.score.unwrap_or(f64::NEG_INFINITY)));
                }
                let cur = match current_score {
                    Some(c) => c,
                    None => {
                        let e = ctx.evaluate(current_id, &current, val_split, &all_val)?;
                        e.score.unwrap_or(f64::NEG_INFINITY)
                    }
                };
                // The first maximum over [proposals..., current]: a proposal wins a tie.
                let mut winner: Option<(u64, Kwargs, f64)> = None;
                for (id, child, score) in scored {
                    if score >= cur && winner.as_ref().is_none_or(|w| score > w.2) {
                        winner = Some((id, child, score));
                    }
                }
                match winner {
                    Some((id, child, score)) => {
                        ctx.candidate(id, Some(current_id), None, Some(score), true);
                        (current_id, current, current_step) = (id, child, ctx.step());
                        current_score = Some(score);
                    }
                    None => current_score = Some(cur),
                }
                best_score = current_score;
            } else if let Some((id, child)) = proposals.pop() {
                let check = s.ensure_improvement.then_some(s.improvement_threshold);
                let mut now = Current {
                    id: current_id,
                    params: current,
                    step: current_step,
                    score: current_score,
                };
                best_score = apply_update(ctx, &mut now, (id, child), &ids, old, check)?;
                (current_id, current, current_step, current_score) =
                    (now.id, now.params, now.step, now.score);
            }
            history.push(HistoryEntry {
                values: current.clone(),
                score: best_score,
                feedback: rollouts.summary.clone(),
            });
            if history.len() > 5 {
                history.remove(0);
            }
            ctx.end_step(&current, best_score, old)?;
        }
    }
    Ok(Finish {
        best: current,
        best_step: current_step,
        pool: vec![PoolEntry {
            id: current_id,
            score: current_score,
        }],
        ..Default::default()
    })
}

/// The parameters a Minibatch-style loop holds, and their score as the loop knows it.
pub(super) struct Current {
    pub id: u64,
    pub params: Kwargs,
    pub step: u64,
    pub score: Option<f64>,
}

/// One update of `current` the way OpenTrace's `Minibatch` applies it: with `check` (the
/// `improvement_threshold` of `ensure_improvement`), `child` is scored on the minibatch
/// `ids` and kept only when `new > old - threshold` (`has_improvement`; a missing new score
/// never wins, a missing old score always loses); without, it is kept unscored. Reports
/// the candidate and returns the step's best score (the new one when checked and kept,
/// else `old`).
pub(super) fn apply_update(
    ctx: &mut Ctx<'_, '_>,
    current: &mut Current,
    (id, child): (u64, Kwargs),
    ids: &[usize],
    old: Option<f64>,
    check: Option<f64>,
) -> Result<Option<f64>, Stopped> {
    let (keep, scored) = match check {
        Some(threshold) => {
            let e = ctx.evaluate(id, &child, SplitName::Train, ids)?;
            let new = e.score.unwrap_or(f64::NEG_INFINITY);
            let keep = new > old.unwrap_or(f64::NEG_INFINITY) - threshold;
            ctx.candidate(id, Some(current.id), None, e.score, keep);
            (keep, e.score)
        }
        None => {
            ctx.candidate(id, Some(current.id), None, None, true);
            (true, old)
        }
    };
    let best_score = if keep { scored } else { old };
    if keep {
        *current = Current {
            id,
            params: child,
            step: ctx.step(),
            score: best_score,
        };
    } else if current.score.is_none() {
        current.score = old;
    }
    Ok(best_score)
}
