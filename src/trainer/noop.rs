//! The NoOp baseline: evaluates the initial parameters on the training split and
//! changes nothing, so every table has a floor to compare trainers against.

use super::core::{Ctx, Finish, PoolEntry};
use crate::stop::Stopped;
use crate::task::SplitName;

/// Run the baseline.
pub fn run(ctx: &mut Ctx<'_, '_>) -> Result<Finish, Stopped> {
    let id = ctx.new_id();
    let initial = ctx.task.initial_values();
    let all: Vec<usize> = (0..ctx.split(SplitName::Train).len()).collect();
    let eval = ctx.evaluate(id, &initial, SplitName::Train, &all)?;
    ctx.candidate(id, None, None, eval.score, true);
    ctx.end_step(&initial, eval.score, eval.score)?;
    Ok(Finish {
        best: initial,
        best_step: 0,
        pool: vec![PoolEntry {
            id,
            score: eval.score,
        }],
        ..Default::default()
    })
}

/// Rescore: hand back the starting parameters unchanged, with one step so the run has a
/// learning-curve point (its validation score is the job's own, scored once).
pub fn keep(ctx: &mut Ctx<'_, '_>) -> Result<Finish, Stopped> {
    let initial = ctx.task.initial_values();
    ctx.end_step(&initial, None, None)?;
    Ok(Finish {
        best: initial,
        ..Default::default()
    })
}
