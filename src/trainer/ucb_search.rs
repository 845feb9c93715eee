//! UCBSearchAlgorithm (OpenTrace `examples/trainers/UCBsearch.py`; see `docs/trainers.md`):
//! a buffer of candidates, each with a running score sum and count. Each iteration expands
//! the candidate with the highest `mean + c·sqrt(ln T / n)` (T counts every counted
//! evaluation so far, 1 when 0; n = 0 gives +inf; the first maximum in buffer order): it is
//! run on a random training batch, whose scores join its statistics, and asked for one
//! update; the child is scored on a fresh random validation batch and joins the buffer,
//! evicting the lowest-UCB entry when the buffer is full. The candidate with the highest
//! mean is returned.

use super::core::{Ctx, Finish, PoolEntry};
use super::knobs::{KnobError, Knobs};
use crate::stop::Stopped;
use crate::task::SplitName;
use crate::vocab::Kwargs;

/// UCBSearchAlgorithm's knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    max_buffer_size: usize,
    ucb_exploration_factor: f64,
    num_search_iterations: u64,
    train_batch_size: usize,
    evaluation_batch_size: usize,
}

impl Settings {
    /// Read the knobs.
    pub fn read(k: &Knobs<'_>) -> Result<Self, KnobError> {
        Ok(Self {
            max_buffer_size: k.positive("max_buffer_size")? as usize,
            ucb_exploration_factor: k.number("ucb_exploration_factor")?,
            num_search_iterations: k.count("num_search_iterations")?,
            train_batch_size: k.positive("train_batch_size")? as usize,
            evaluation_batch_size: k.positive("evaluation_batch_size")? as usize,
        })
    }
}

struct Entry {
    id: u64,
    params: Kwargs,
    sum: f64,
    n: u64,
    step: u64,
}

impl Entry {
    fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }
}

/// `mean + c·sqrt(ln T / n)`; `+inf` for an entry never evaluated; T = 0 counts as 1.
pub(super) fn ucb(sum: f64, n: u64, total: u64, c: f64) -> f64 {
    if n == 0 {
        return f64::INFINITY;
    }
    let t = total.max(1) as f64;
    sum / n as f64 + c * (t.ln() / n as f64).sqrt()
}

/// Run UCBSearchAlgorithm.
pub fn run(s: &Settings, ctx: &mut Ctx<'_, '_>) -> Result<Finish, Stopped> {
    let mut train_rng = ctx.rng("ucb-search/train");
    let mut val_rng = ctx.rng("ucb-search/validate");
    let n_train = ctx.split(SplitName::Train).len();
    // `validation_dataset` defaults to the training set.
    let val_split = if ctx.split(SplitName::Validation).is_empty() {
        SplitName::Train
    } else {
        SplitName::Validation
    };
    let n_val = ctx.split(val_split).len();
    let c = s.ucb_exploration_factor;
    let id = ctx.new_id();
    ctx.candidate(id, None, None, None, true);
    let initial = ctx.task.initial_values();
    let ids = val_rng.sample_indices(n_val, s.evaluation_batch_size.min(n_val));
    let e = ctx.evaluate(id, &initial, val_split, &ids)?;
    let mut total = ids.len() as u64;
    let mut buffer = vec![Entry {
        id,
        params: initial,
        sum: e.examples.iter().map(|r| r.score).sum(),
        n: e.examples.len() as u64,
        step: 0,
    }];
    ctx.end_step(&buffer[0].params, e.score, None)?;
    for _ in 0..s.num_search_iterations {
        let ucbs: Vec<f64> = buffer.iter().map(|x| ucb(x.sum, x.n, total, c)).collect();
        let a = first_max(&ucbs);
        ctx.selected(buffer[a].id);
        let batch = train_rng.sample_indices(n_train, s.train_batch_size.min(n_train));
        let parent = buffer[a].params.clone();
        let rollouts = ctx.evaluate(buffer[a].id, &parent, SplitName::Train, &batch)?;
        let child = ctx.propose(&parent, &batch, &rollouts, None, &[])?;
        // The parent's training rollouts count for it and for T.
        buffer[a].sum += rollouts.examples.iter().map(|r| r.score).sum::<f64>();
        buffer[a].n += rollouts.examples.len() as u64;
        total += rollouts.examples.len() as u64;
        let score_train = rollouts.score;
        if let Some(params) = child {
            let id = ctx.new_id();
            let ids = val_rng.sample_indices(n_val, s.evaluation_batch_size.min(n_val));
            let e = ctx.evaluate(id, &params, val_split, &ids)?;
            ctx.candidate(id, Some(buffer[a].id), None, e.score, false);
            total += e.examples.len() as u64;
            if buffer.len() >= s.max_buffer_size {
                let ucbs: Vec<f64> = buffer.iter().map(|x| ucb(x.sum, x.n, total, c)).collect();
                buffer.remove(first_min(&ucbs));
            }
            buffer.push(Entry {
                id,
                params,
                sum: e.examples.iter().map(|r| r.score).sum(),
                n: e.examples.len() as u64,
                step: ctx.step(),
            });
        }
        let best = best_by_mean(&buffer);
        let params = buffer[best].params.clone();
        ctx.end_step(&params, buffer[best].mean(), score_train)?;
    }
    let best = best_by_mean(&buffer);
    let mut pool: Vec<PoolEntry> = buffer
        .iter()
        .map(|x| PoolEntry {
            id: x.id,
            score: x.mean(),
        })
        .collect();
    pool.sort_by(|a, b| {
        b.score
            .unwrap_or(f64::NEG_INFINITY)
            .total_cmp(&a.score.unwrap_or(f64::NEG_INFINITY))
            .then(a.id.cmp(&b.id))
    });
    Ok(Finish {
        best: buffer[best].params.clone(),
        best_step: buffer[best].step,
        pool,
        ..Default::default()
    })
}

/// The first index of the largest value.
fn first_max(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// The first index of the smallest value.
fn first_min(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x < v[best] {
            best = i;
        }
    }
    best
}

/// The entry with the highest mean (the first on ties).
fn best_by_mean(buffer: &[Entry]) -> usize {
    let means: Vec<f64> = buffer
        .iter()
        .map(|x| x.mean().unwrap_or(f64::NEG_INFINITY))
        .collect();
    first_max(&means)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ucb_is_worked_by_hand() {
        // mean 0.5, n 4, T 16, c 1: 0.5 + sqrt(ln 16 / 4) = 0.5 + 0.8326 = 1.3326.
        assert!((ucb(2.0, 4, 16, 1.0) - 1.332_554_6).abs() < 1e-6);
        assert_eq!(ucb(0.0, 0, 5, 1.0), f64::INFINITY);
        // T = 0 counts as 1: no bonus.
        assert_eq!(ucb(3.0, 3, 0, 2.0), 1.0);
        assert_eq!(first_max(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(first_min(&[2.0, 1.0, 1.0]), 1);
    }
}
