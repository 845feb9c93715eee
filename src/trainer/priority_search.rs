//! PrioritySearch (OpenTrace `opto/trainer/algorithms/priority_search.py`; see
//! `docs/trainers.md`, PrioritySearch): candidates live in a priority memory; each iteration
//! explores the best candidate plus the highest-priority ones, asks K·P proposals of each
//! explored candidate (one per sub-batch and proposal), validates the proposals and
//! pushes everything back with recomputed priorities.
//!
//! Deviations (see `docs/trainers.md`): memory entries are unique by candidate id (the
//! reference can hold stale duplicates); ties pop the newer candidate by id, not by wall
//! time; a size limit keeps exactly the top entries; UCB without `score_range` uses an
//! unscaled, unclipped bonus instead of asserting.

use super::core::{Ctx, EvalSpec, Finish, PoolEntry, ProposalSpec, max_opt, mean};
use super::data::Loader;
use super::knobs::{KnobError, Knobs};
use crate::optimizer::HistoryEntry;
use crate::stop::Stopped;
use crate::task::{Evaluation, SplitName};
use crate::vocab::Kwargs;

/// PrioritySearch knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    num_epochs: u64,
    num_steps: u64,
    num_batches: usize,
    batch_size: usize,
    num_candidates: usize,
    num_proposals: usize,
    ucb: Option<f64>,
    score_range: Option<(f64, f64)>,
    long_term_size: Option<usize>,
    short_term_size: Option<usize>,
    memory_update_frequency: Option<u64>,
    use_best_candidate_to_explore: bool,
    validate_exploration_candidates: bool,
}

impl Settings {
    /// Read and check the knobs.
    pub fn read(k: &Knobs<'_>) -> Result<Self, KnobError> {
        let ucb = match k.choice("score_function", &["mean", "ucb"])?.as_str() {
            "ucb" => Some(k.number("ucb_exploration_constant")?),
            _ => None,
        };
        Ok(Self {
            num_epochs: k.count("num_epochs")?,
            num_steps: k.count("num_steps")?,
            num_batches: k.positive("num_batches")? as usize,
            batch_size: k.positive("train_batch_size")? as usize,
            num_candidates: k.positive("num_candidates")? as usize,
            num_proposals: k.positive("num_proposals")? as usize,
            ucb,
            score_range: k.optional_range("score_range")?,
            long_term_size: k
                .optional_count("long_term_memory_size")?
                .map(|n| n as usize),
            short_term_size: k
                .optional_count("short_term_memory_size")?
                .map(|n| n as usize),
            memory_update_frequency: k.optional_count("memory_update_frequency")?,
            use_best_candidate_to_explore: k.flag("use_best_candidate_to_explore")?,
            validate_exploration_candidates: k.flag("validate_exploration_candidates")?,
        })
    }
}

struct Cand {
    id: u64,
    params: Kwargs,
    sum: f64,
    n: u64,
    step: u64,
}

impl Cand {
    fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }

    fn add(&mut self, eval: &Evaluation) {
        for r in &eval.examples {
            self.sum += r.score;
            self.n += 1;
        }
    }
}

struct Search<'s> {
    s: &'s Settings,
    cands: Vec<Cand>,
    /// Long-term memory (candidate indices).
    long: Vec<usize>,
    /// Short-term memory (used when `memory_update_frequency` is not 0).
    short: Vec<usize>,
    n_iters: u64,
}

impl Search<'_> {
    fn priority(&self, i: usize) -> f64 {
        let c = &self.cands[i];
        let (lo, hi) = self
            .s
            .score_range
            .unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
        let Some(m) = c.mean() else { return hi };
        let Some(constant) = self.s.ucb else { return m };
        let scale = self.s.score_range.map_or(1.0, |(lo, hi)| hi - lo);
        let bonus = constant * ((self.n_iters as f64 + 2.0).ln() / c.n as f64).sqrt() * scale;
        (m + bonus).clamp(lo, hi)
    }

    /// Higher priority first; ties: the newer candidate first.
    fn by_priority(&self, list: &mut [usize]) {
        list.sort_by(|&a, &b| {
            self.priority(b)
                .total_cmp(&self.priority(a))
                .then(self.cands[b].id.cmp(&self.cands[a].id))
        });
    }

    fn push(&mut self, i: usize) {
        if self.long.contains(&i) || self.short.contains(&i) {
            return;
        }
        if self.s.memory_update_frequency == Some(0) {
            self.long.push(i);
            let limit = self.s.long_term_size;
            trim(self, true, limit);
        } else {
            self.short.push(i);
            let limit = self.s.short_term_size;
            trim(self, false, limit);
        }
    }

    /// Move short-term memory into long-term memory when it is due.
    fn merge_memories(&mut self) {
        if let Some(k) = self.s.memory_update_frequency.filter(|k| *k > 0)
            && self.n_iters.is_multiple_of(k)
        {
            let moved = std::mem::take(&mut self.short);
            for i in moved {
                if !self.long.contains(&i) {
                    self.long.push(i);
                }
            }
            let limit = self.s.long_term_size;
            trim(self, true, limit);
        }
    }

    /// The best candidate by mean score over both memories (ties: the older).
    fn best(&self) -> Option<usize> {
        self.long
            .iter()
            .chain(&self.short)
            .copied()
            .max_by(|&a, &b| {
                let (ma, mb) = (
                    self.cands[a].mean().unwrap_or(0.0),
                    self.cands[b].mean().unwrap_or(0.0),
                );
                ma.total_cmp(&mb)
                    .then(self.cands[b].id.cmp(&self.cands[a].id))
            })
    }

    /// Remove and return the highest-priority entry of either memory.
    fn pop(&mut self) -> Option<usize> {
        let mut all: Vec<usize> = self.long.iter().chain(&self.short).copied().collect();
        self.by_priority(&mut all);
        let top = *all.first()?;
        self.long.retain(|&i| i != top);
        self.short.retain(|&i| i != top);
        Some(top)
    }

    fn history(&self) -> Vec<HistoryEntry> {
        let mut ids: Vec<usize> = self.long.iter().chain(&self.short).copied().collect();
        ids.sort();
        ids.iter()
            .rev()
            .take(5)
            .rev()
            .map(|&i| HistoryEntry {
                values: self.cands[i].params.clone(),
                score: self.cands[i].mean(),
                feedback: String::new(),
            })
            .collect()
    }
}

/// Keep only the `limit` highest-priority entries of one memory.
fn trim(search: &mut Search<'_>, long: bool, limit: Option<usize>) {
    let Some(limit) = limit else { return };
    let mut list = if long {
        std::mem::take(&mut search.long)
    } else {
        std::mem::take(&mut search.short)
    };
    search.by_priority(&mut list);
    list.truncate(limit.max(1));
    if long {
        search.long = list;
    } else {
        search.short = list;
    }
}

/// Run PrioritySearch.
pub fn run(s: &Settings, ctx: &mut Ctx<'_, '_>) -> Result<Finish, Stopped> {
    let batch_size = s.batch_size * s.num_batches;
    let n_train = ctx.split(SplitName::Train).len();
    let n_val = ctx.split(SplitName::Validation).len();
    let mut loader = Loader::new(n_train, ctx.rng("ps/train"));
    let mut val_loader = Loader::new(n_val, ctx.rng("ps/validate"));
    let initial = ctx.task.initial_values();
    let id = ctx.new_id();
    ctx.candidate(id, None, None, None, true);
    let mut search = Search {
        s,
        cands: vec![Cand {
            id,
            params: initial,
            sum: 0.0,
            n: 0,
            step: 0,
        }],
        long: Vec::new(),
        short: Vec::new(),
        n_iters: 0,
    };
    // Iteration 0 explores num_candidates copies of the initial parameters.
    let mut exploration: Vec<usize> = vec![0; s.num_candidates];
    let mut best = 0usize;
    let mut samples: Vec<(usize, Evaluation)> = Vec::new();
    let mut batch: Vec<usize> = Vec::new();
    loop {
        if search.n_iters > 0 {
            let history = search.history();
            for (slot, eval) in &samples {
                search.cands[*slot].add(eval);
            }
            // Every proposal of the step is independent: asked for together (up to
            // num_threads at once), taken in order.
            let mut asks = Vec::new();
            for (slot, eval) in &samples {
                for k in 0..s.num_batches {
                    let range = k * s.batch_size..(k + 1) * s.batch_size;
                    let sub = Evaluation {
                        score: None,
                        summary: String::new(),
                        examples: eval.examples[range.clone()].to_vec(),
                        metrics: Default::default(),
                    };
                    for _ in 0..s.num_proposals {
                        let parent = &search.cands[*slot];
                        ctx.selected(parent.id);
                        asks.push((parent.id, parent.params.clone(), range.clone(), sub.clone()));
                    }
                }
            }
            let specs: Vec<ProposalSpec<'_>> = asks
                .iter()
                .map(|(_, parent, range, sub)| ProposalSpec {
                    parent,
                    ids: &batch[range.clone()],
                    eval: sub,
                    only: None,
                    history: &history,
                })
                .collect();
            let children = ctx.propose_batch(&specs)?;
            let mut proposals = Vec::new();
            for ((parent_id, ..), child) in asks.iter().zip(children) {
                let Some(params) = child else {
                    continue;
                };
                let id = ctx.new_id();
                search.cands.push(Cand {
                    id,
                    params,
                    sum: 0.0,
                    n: 0,
                    step: ctx.step(),
                });
                proposals.push((search.cands.len() - 1, *parent_id));
            }
            // Validation: the same batch without a validation split, else fresh batches.
            let (split, ids) = if n_val == 0 {
                (SplitName::Train, batch.clone())
            } else {
                (SplitName::Validation, val_loader.sample(batch_size))
            };
            let slots: Vec<usize> = proposals.iter().map(|&(i, _)| i).collect();
            let evals = evaluate_all(ctx, &search.cands, &slots, split, &ids)?;
            for (&(i, parent_id), eval) in proposals.iter().zip(&evals) {
                search.cands[i].add(eval);
                ctx.candidate(search.cands[i].id, Some(parent_id), None, eval.score, false);
            }
            let mut explored: Vec<usize> = exploration.clone();
            explored.sort();
            explored.dedup();
            if n_val > 0 && s.validate_exploration_candidates {
                let ids = val_loader.sample(batch_size);
                let evals =
                    evaluate_all(ctx, &search.cands, &explored, SplitName::Validation, &ids)?;
                for (&i, eval) in explored.iter().zip(&evals) {
                    search.cands[i].add(eval);
                }
            }
            for (i, _) in proposals {
                search.push(i);
            }
            for i in explored {
                search.push(i);
            }
            search.merge_memories();
            if let Some(b) = search.best() {
                best = b;
            }
            // Explore: the best candidate, then the highest priorities.
            exploration.clear();
            if s.use_best_candidate_to_explore {
                exploration.push(best);
            }
            while exploration.len() < s.num_candidates {
                match search.pop() {
                    Some(i) if i == best && s.use_best_candidate_to_explore => {}
                    Some(i) => exploration.push(i),
                    None => break,
                }
            }
        }
        batch = loader.sample(batch_size);
        samples.clear();
        let mut score_train = None;
        let evals = evaluate_all(ctx, &search.cands, &exploration, SplitName::Train, &batch)?;
        for (&slot, eval) in exploration.iter().zip(evals) {
            score_train = max_opt(score_train, eval.score);
            samples.push((slot, eval));
        }
        let best_score = search.cands[best].mean().or_else(|| {
            mean(
                samples
                    .iter()
                    .filter(|(i, _)| *i == best)
                    .filter_map(|(_, e)| e.score),
            )
        });
        ctx.end_step(&search.cands[best].params, best_score, score_train)?;
        search.n_iters += 1;
        if loader.epochs >= s.num_epochs && search.n_iters >= s.num_steps {
            break;
        }
    }
    // The last explored candidates left memory to be explored; they belong to the pool.
    let mut pool: Vec<usize> = search.long.iter().chain(&search.short).copied().collect();
    pool.extend(exploration);
    pool.sort();
    pool.dedup();
    pool.sort_by(|&a, &b| {
        let (ma, mb) = (
            search.cands[a].mean().unwrap_or(f64::NEG_INFINITY),
            search.cands[b].mean().unwrap_or(f64::NEG_INFINITY),
        );
        mb.total_cmp(&ma)
            .then(search.cands[a].id.cmp(&search.cands[b].id))
    });
    Ok(Finish {
        best: search.cands[best].params.clone(),
        best_step: search.cands[best].step,
        pool: pool
            .into_iter()
            .map(|i| PoolEntry {
                id: search.cands[i].id,
                score: search.cands[i].mean(),
            })
            .collect(),
        ..Default::default()
    })
}

/// The candidates at `slots` evaluated together on `ids` of `split`, results in order.
fn evaluate_all(
    ctx: &mut Ctx<'_, '_>,
    cands: &[Cand],
    slots: &[usize],
    split: SplitName,
    ids: &[usize],
) -> Result<Vec<Evaluation>, Stopped> {
    let specs: Vec<EvalSpec<'_>> = slots
        .iter()
        .map(|&i| EvalSpec {
            candidate_id: cands[i].id,
            params: &cands[i].params,
            split,
            ids,
        })
        .collect();
    ctx.evaluate_batch(&specs)
}
