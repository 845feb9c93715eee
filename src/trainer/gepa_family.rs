//! OpenTrace's GEPA re-implementations (`examples/trainers/gepa_algorithms.py`; see
//! `docs/trainers.md`, GEPA-Base, GEPA-UCB and GEPA-Beam) as one loop with three
//! parent-selection rules:
//!
//! - `GEPA-Base`: a parent sampled with probability ∝ max(1, Pareto wins);
//! - `GEPA-UCB`: the parent with the highest upper confidence bound on its subset mean
//!   (the reference stores the exploration factor but never uses it);
//! - `GEPA-Beam`: every member of a beam of the `beam_width` best candidates by
//!   (wins, mean) is expanded each iteration (the reference's beam is dead code).
//!
//! Every child is scored on a fixed Pareto subset of the validation split; every
//! `merge_every` iterations a uniform crossover of two unrelated candidates is tried and
//! kept when it beats both. Children are complete parameter maps with monotonic ids;
//! an empty proposal produces no child (the reference adds and scores a parent clone).

use std::collections::HashSet;

use super::core::{Ctx, EvalSpec, Finish, PoolEntry, ProposalSpec, max_opt};
use super::knobs::{KnobError, Knobs};
use crate::optimizer::HistoryEntry;
use crate::rng::Rng;
use crate::stop::Stopped;
use crate::task::SplitName;
use crate::vocab::Kwargs;

/// Which member of the family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Wins-weighted sampling.
    Base,
    /// Upper-confidence-bound selection.
    Ucb,
    /// Beam of the top candidates.
    Beam,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::Base => "gepa-base",
            Variant::Ucb => "gepa-ucb",
            Variant::Beam => "gepa-beam",
        }
    }
}

/// Knobs of the family.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    variant: Variant,
    iterations: u64,
    train_batch_size: usize,
    merge_every: u64,
    pareto_subset_size: usize,
    buffer_size: usize,
    ucb_exploration_factor: f64,
    beam_width: usize,
}

/// Merge tries per merge round (OpenTrace's `max_tries`).
const MERGE_TRIES: usize = 8;

impl Settings {
    /// Read and check the knobs of `variant`.
    pub fn read(variant: Variant, k: &Knobs<'_>) -> Result<Self, KnobError> {
        let steps = if variant == Variant::Base {
            "num_iters"
        } else {
            "num_search_iterations"
        };
        Ok(Self {
            variant,
            iterations: k.count(steps)?,
            train_batch_size: k.positive("train_batch_size")? as usize,
            merge_every: k.count("merge_every")?,
            pareto_subset_size: k.positive("pareto_subset_size")? as usize,
            buffer_size: if variant == Variant::Ucb {
                k.positive("max_buffer_size")? as usize
            } else {
                16
            },
            ucb_exploration_factor: if variant == Variant::Ucb {
                k.number("ucb_exploration_factor")?
            } else {
                0.0
            },
            beam_width: if variant == Variant::Beam {
                k.positive("beam_width")? as usize
            } else {
                1
            },
        })
    }
}

struct Cand {
    id: u64,
    params: Kwargs,
    vector: Vec<f64>,
    mean: f64,
    ancestors: HashSet<u64>,
    wins: u64,
    selected: u64,
    step: u64,
}

/// Run one member of the family.
pub fn run(s: &Settings, ctx: &mut Ctx<'_, '_>) -> Result<Finish, Stopped> {
    let label = s.variant.label();
    let mut data_rng = ctx.rng(&format!("{label}/train"));
    let mut select_rng = ctx.rng(&format!("{label}/select"));
    let mut merge_rng = ctx.rng(&format!("{label}/merge"));
    let val_split = if ctx.split(SplitName::Validation).is_empty() {
        SplitName::Train
    } else {
        SplitName::Validation
    };
    let subset = ctx
        .rng(&format!("{label}/subset"))
        .sample_indices(ctx.split(val_split).len(), s.pareto_subset_size);
    let n_train = ctx.split(SplitName::Train).len();

    let score_on_subset =
        |ctx: &mut Ctx<'_, '_>, id: u64, params: &Kwargs| -> Result<Vec<f64>, Stopped> {
            let eval = ctx.evaluate(id, params, val_split, &subset)?;
            Ok(eval.examples.iter().map(|r| r.score).collect())
        };
    let seed_id = ctx.new_id();
    let initial = ctx.task.initial_values();
    let vector = score_on_subset(ctx, seed_id, &initial)?;
    let mut buffer = vec![new_cand(seed_id, initial, vector, HashSet::new(), 0)];
    ctx.candidate(seed_id, None, None, Some(buffer[0].mean), true);
    ctx.end_step(
        &buffer[0].params,
        Some(buffer[0].mean),
        Some(buffer[0].mean),
    )?;
    let mut tried_pairs: HashSet<(u64, u64)> = HashSet::new();

    for it in 1..=s.iterations {
        compute_wins(&mut buffer);
        let parents: Vec<u64> = match s.variant {
            Variant::Base => vec![buffer[pareto_sample(&buffer, &mut select_rng)].id],
            Variant::Ucb => vec![buffer[ucb_select(&buffer, s.ucb_exploration_factor)].id],
            Variant::Beam => ranked(&buffer)
                .into_iter()
                .take(s.beam_width)
                .map(|i| buffer[i].id)
                .collect(),
        };
        // The parents (the whole beam) are expanded together: their minibatches drawn in
        // order, evaluated together, their children asked together (on the buffer as the
        // iteration found it), then kept in order and scored together.
        let mut picked: Vec<(usize, Kwargs, Vec<usize>)> = Vec::new();
        for parent_id in parents {
            let Some(p) = buffer.iter().position(|c| c.id == parent_id) else {
                continue;
            };
            ctx.selected(parent_id);
            buffer[p].selected += 1;
            let ids = data_rng.sample_indices(n_train, s.train_batch_size);
            picked.push((p, buffer[p].params.clone(), ids));
        }
        let specs: Vec<EvalSpec<'_>> = picked
            .iter()
            .map(|(p, params, ids)| EvalSpec {
                candidate_id: buffer[*p].id,
                params,
                split: SplitName::Train,
                ids,
            })
            .collect();
        let evals = ctx.evaluate_batch(&specs)?;
        let score_train = evals.iter().fold(None, |m, e| max_opt(m, e.score));
        let history = history(&buffer);
        let asks: Vec<ProposalSpec<'_>> = picked
            .iter()
            .zip(&evals)
            .map(|((_, params, ids), eval)| ProposalSpec {
                parent: params,
                ids,
                eval,
                only: None,
                history: &history,
            })
            .collect();
        let proposals = ctx.propose_batch(&asks)?;
        let mut children: Vec<(usize, u64, Kwargs)> = Vec::new();
        for ((p, ..), child) in picked.iter().zip(proposals) {
            let Some(child) = child else {
                continue;
            };
            let known = buffer.iter().any(|c| c.params == child)
                || children.iter().any(|(_, _, c)| *c == child);
            if !known {
                children.push((*p, ctx.new_id(), child));
            }
        }
        let specs: Vec<EvalSpec<'_>> = children
            .iter()
            .map(|(_, id, child)| EvalSpec {
                candidate_id: *id,
                params: child,
                split: val_split,
                ids: &subset,
            })
            .collect();
        let scored = ctx.evaluate_batch(&specs)?;
        for ((p, id, child), eval) in children.into_iter().zip(scored) {
            let vector = eval.examples.iter().map(|r| r.score).collect();
            let parent_id = buffer[p].id;
            let mut ancestors = buffer[p].ancestors.clone();
            ancestors.insert(parent_id);
            let cand = new_cand(id, child, vector, ancestors, ctx.step());
            let is_best = buffer.iter().all(|c| cand.mean > c.mean);
            ctx.candidate(id, Some(parent_id), None, Some(cand.mean), is_best);
            buffer.push(cand);
        }
        if s.merge_every > 0 && it.is_multiple_of(s.merge_every) && buffer.len() >= 2 {
            compute_wins(&mut buffer);
            let order = ranked(&buffer);
            for _ in 0..MERGE_TRIES {
                let a = order[merge_rng.below(order.len())];
                let b = order[merge_rng.below(order.len())];
                let (ia, ib) = (buffer[a].id, buffer[b].id);
                let pair = (ia.min(ib), ia.max(ib));
                if ia == ib
                    || buffer[a].ancestors.contains(&ib)
                    || buffer[b].ancestors.contains(&ia)
                    || !tried_pairs.insert(pair)
                {
                    continue;
                }
                let mut child = buffer[a].params.clone();
                for p in ctx.task.params().iter().filter(|p| p.trainable) {
                    if merge_rng.chance(0.5)
                        && let Some(v) = buffer[b].params.get(&p.name)
                    {
                        child.insert(p.name.clone(), v.clone());
                    }
                }
                if buffer.iter().any(|c| c.params == child) {
                    continue;
                }
                let id = ctx.new_id();
                let vector = score_on_subset(ctx, id, &child)?;
                let mut ancestors: HashSet<u64> = buffer[a]
                    .ancestors
                    .union(&buffer[b].ancestors)
                    .copied()
                    .collect();
                ancestors.extend([ia, ib]);
                let cand = new_cand(id, child, vector, ancestors, ctx.step());
                let accepted = cand.mean > buffer[a].mean && cand.mean > buffer[b].mean;
                let is_best = accepted && buffer.iter().all(|c| cand.mean > c.mean);
                ctx.candidate(id, Some(ia), Some(ib), Some(cand.mean), is_best);
                if accepted {
                    buffer.push(cand);
                    break;
                }
            }
        }
        if buffer.len() > s.buffer_size {
            compute_wins(&mut buffer);
            // Keep the best by mean whatever its wins, so the best never gets worse.
            let best = best_index(&buffer);
            let mut order = ranked(&buffer);
            order.retain(|&i| i != best);
            order.insert(0, best);
            if s.variant == Variant::Ucb {
                // Drop the weakest by (wins, mean) until the buffer fits, in place.
                let mut drop: Vec<usize> = order.split_off(s.buffer_size);
                drop.sort_unstable_by(|a, b| b.cmp(a));
                for i in drop {
                    buffer.remove(i);
                }
            } else {
                // Keep the top by (wins, mean), in that order (as OpenTrace sorts it).
                let mut slots: Vec<Option<Cand>> = buffer.into_iter().map(Some).collect();
                buffer = order
                    .into_iter()
                    .take(s.buffer_size)
                    .filter_map(|i| slots[i].take())
                    .collect();
            }
        }
        let best = best_index(&buffer);
        let (params, mean) = (buffer[best].params.clone(), buffer[best].mean);
        ctx.end_step(&params, Some(mean), score_train)?;
    }
    let best = best_index(&buffer);
    Ok(Finish {
        best: buffer[best].params.clone(),
        best_step: buffer[best].step,
        pool: buffer
            .iter()
            .map(|c| PoolEntry {
                id: c.id,
                score: Some(c.mean),
            })
            .collect(),
        ..Default::default()
    })
}

fn new_cand(id: u64, params: Kwargs, vector: Vec<f64>, ancestors: HashSet<u64>, step: u64) -> Cand {
    let mean = if vector.is_empty() {
        f64::NEG_INFINITY
    } else {
        vector.iter().sum::<f64>() / vector.len() as f64
    };
    Cand {
        id,
        params,
        vector,
        mean,
        ancestors,
        wins: 0,
        selected: 0,
        step,
    }
}

/// One win per subset position: the first candidate (buffer order) with the strictly
/// highest value there.
fn compute_wins(buffer: &mut [Cand]) {
    for c in buffer.iter_mut() {
        c.wins = 0;
    }
    let positions = buffer.first().map_or(0, |c| c.vector.len());
    for m in 0..positions {
        let mut winner = 0;
        for (i, c) in buffer.iter().enumerate() {
            if c.vector[m] > buffer[winner].vector[m] {
                winner = i;
            }
        }
        buffer[winner].wins += 1;
    }
}

/// Buffer indices by (wins, mean) descending; ties keep buffer order.
fn ranked(buffer: &[Cand]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..buffer.len()).collect();
    idx.sort_by(|&a, &b| {
        buffer[b]
            .wins
            .cmp(&buffer[a].wins)
            .then(buffer[b].mean.total_cmp(&buffer[a].mean))
    });
    idx
}

/// The first candidate with the highest subset mean.
fn best_index(buffer: &[Cand]) -> usize {
    let mut best = 0;
    for (i, c) in buffer.iter().enumerate() {
        if c.mean > buffer[best].mean {
            best = i;
        }
    }
    best
}

/// GEPA-Base's parent: probability ∝ max(1, wins) (temperature 1).
fn pareto_sample(buffer: &[Cand], rng: &mut Rng) -> usize {
    let weights: Vec<f64> = buffer.iter().map(|c| c.wins.max(1) as f64).collect();
    let total: f64 = weights.iter().sum();
    let mut x = rng.next_f64() * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    buffer.len() - 1
}

/// GEPA-UCB's parent: argmax of mean + c·sqrt(ln T / n), where n counts the candidate's
/// selections plus one and T all selections plus one; ties go to the first.
fn ucb_select(buffer: &[Cand], c: f64) -> usize {
    let total = 1 + buffer.iter().map(|x| x.selected).sum::<u64>();
    let ln_t = (total as f64).max(1.0).ln();
    let ucb = |x: &Cand| x.mean + c * (ln_t / (x.selected + 1) as f64).sqrt();
    let mut best = 0;
    for (i, x) in buffer.iter().enumerate() {
        if ucb(x) > ucb(&buffer[best]) {
            best = i;
        }
    }
    best
}

/// The last few candidates by id with their subset means (OPRO-style history).
fn history(buffer: &[Cand]) -> Vec<HistoryEntry> {
    let mut order: Vec<&Cand> = buffer.iter().collect();
    order.sort_by_key(|c| c.id);
    let skip = order.len().saturating_sub(5);
    order
        .into_iter()
        .skip(skip)
        .map(|c| HistoryEntry {
            values: c.params.clone(),
            score: Some(c.mean),
            feedback: String::new(),
        })
        .collect()
}
