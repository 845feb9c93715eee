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
//!
//! The same loop runs OpenTrace's PS variants ([`Variant`]): POLCA (a summarizer context and
//! a greedy epsilon-net over embeddings of the proposals, `priority_search/polca.rs`),
//! StreamingPrioritySearch (no validation; a softmax draw of the (candidate, sub-batch)
//! pairs to improve, `polca.rs`) and ParetobasedPS (exploration from the per-input Pareto
//! front of the memory), and the classical presets (SequentialUpdate, SequentialSearch,
//! BeamSearch) as knob settings.

mod polca;
mod regressor;

use super::core::{Ctx, EvalSpec, Finish, PoolEntry, ProposalSpec, max_opt, mean};
use super::data::Loader;
use super::knobs::{KnobError, Knobs};
use crate::optimizer::HistoryEntry;
use crate::stop::Stopped;
use crate::task::{Evaluation, SplitName};
use crate::vocab::Kwargs;
use polca::{Polca, Streaming};
use regressor::{Regressor, RegressorKnobs};

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
    variant: Variant,
}

/// What a PS variant changes in the loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Variant {
    /// PrioritySearch itself (and its classical presets).
    Plain,
    /// POLCA: summarizer context and epsilon-net filtering of the proposals.
    Polca(Polca),
    /// StreamingPrioritySearch: no validation, a softmax draw of the pairs to improve.
    Streaming(Streaming),
    /// ParetobasedPS: explore the per-input Pareto front of the memory.
    Pareto,
    /// PrioritySearch_with_Regressor: no validation; priorities and the best candidate
    /// from a logistic regression over embeddings of the candidates.
    Regressor(RegressorKnobs),
}

impl Settings {
    /// Candidates explored per iteration (C).
    pub fn num_candidates(&self) -> usize {
        self.num_candidates
    }

    /// Read and check the knobs of a variant: PS's, then the variant's own.
    pub fn read_variant(algorithm: &str, k: &Knobs<'_>) -> Result<Self, KnobError> {
        let mut s = Self::read(k)?;
        match algorithm {
            "polca" => s.variant = Variant::Polca(Polca::read(k)?),
            "streaming_priority_search" => s.variant = Variant::Streaming(Streaming::read(k)?),
            "pareto_priority_search" => s.variant = Variant::Pareto,
            "ps_regressor" => s.variant = Variant::Regressor(RegressorKnobs::read(k)?),
            // BeamSearch: the memory holds the beam, num_candidates wide.
            "ps_beam" => {
                s.long_term_size = s.long_term_size.or(Some(s.num_candidates));
            }
            _ => {}
        }
        Ok(s)
    }

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
            variant: Variant::Plain,
        })
    }
}

/// One scored example of a candidate (ParetobasedPS groups them by input; POLCA's
/// summarizer shows them).
pub(super) struct Rollout {
    pub split: SplitName,
    pub id: usize,
    pub score: f64,
    pub output: String,
    pub feedback: String,
}

pub(super) struct Cand {
    pub id: u64,
    pub params: Kwargs,
    pub sum: f64,
    pub n: u64,
    pub step: u64,
    pub rollouts: Vec<Rollout>,
    /// POLCA, the regressor: the embedding of the candidate, once asked for.
    pub embedding: Option<Vec<f64>>,
    /// The regressor: the candidate's predicted score (its priority).
    pub predicted: Option<f64>,
    /// POLCA: shown to the summarizer already.
    pub summarized: bool,
}

impl Cand {
    fn new(id: u64, params: Kwargs, step: u64) -> Self {
        Self {
            id,
            params,
            sum: 0.0,
            n: 0,
            step,
            rollouts: Vec::new(),
            embedding: None,
            predicted: None,
            summarized: false,
        }
    }

    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }

    fn add(&mut self, split: SplitName, ids: &[usize], eval: &Evaluation) {
        for (i, r) in eval.examples.iter().enumerate() {
            self.sum += r.score;
            self.n += 1;
            self.rollouts.push(Rollout {
                split,
                id: ids.get(i).copied().unwrap_or(usize::MAX),
                score: r.score,
                output: r.output.clone(),
                feedback: r.feedback.clone(),
            });
        }
    }
}

pub(super) struct Search<'s> {
    s: &'s Settings,
    pub cands: Vec<Cand>,
    /// Long-term memory (candidate indices).
    pub long: Vec<usize>,
    /// Short-term memory (used when `memory_update_frequency` is not 0).
    pub short: Vec<usize>,
    n_iters: u64,
}

impl Search<'_> {
    /// The knobs.
    pub fn settings(&self) -> &Settings {
        self.s
    }

    pub fn priority(&self, i: usize) -> f64 {
        let c = &self.cands[i];
        let (lo, hi) = self
            .s
            .score_range
            .unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
        if matches!(self.s.variant, Variant::Regressor(_)) {
            return c.predicted.unwrap_or(hi);
        }
        let Some(m) = c.mean() else { return hi };
        let Some(constant) = self.s.ucb else { return m };
        let scale = self.s.score_range.map_or(1.0, |(lo, hi)| hi - lo);
        let bonus = constant * ((self.n_iters as f64 + 2.0).ln() / c.n as f64).sqrt() * scale;
        (m + bonus).clamp(lo, hi)
    }

    /// Higher priority first; ties: the newer candidate first.
    pub fn by_priority(&self, list: &mut [usize]) {
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

    /// The best candidate by mean score over both memories (ties: the older); candidates
    /// not scored yet (StreamingPrioritySearch's fresh proposals) are not the best.
    fn best(&self) -> Option<usize> {
        if matches!(self.s.variant, Variant::Regressor(_)) {
            // The regressor's exploitation criterion: the highest prediction (ties: the
            // older).
            return self.memory().into_iter().max_by(|&a, &b| {
                let (pa, pb) = (self.cands[a].predicted, self.cands[b].predicted);
                pa.unwrap_or(f64::NEG_INFINITY)
                    .total_cmp(&pb.unwrap_or(f64::NEG_INFINITY))
                    .then(self.cands[b].id.cmp(&self.cands[a].id))
            });
        }
        let unscored_allowed = !matches!(self.s.variant, Variant::Streaming(_));
        self.long
            .iter()
            .chain(&self.short)
            .copied()
            .filter(|&i| unscored_allowed || self.cands[i].n > 0)
            .max_by(|&a, &b| {
                let (ma, mb) = (
                    self.cands[a].mean().unwrap_or(0.0),
                    self.cands[b].mean().unwrap_or(0.0),
                );
                ma.total_cmp(&mb)
                    .then(self.cands[b].id.cmp(&self.cands[a].id))
            })
    }

    /// Every memory entry, long-term first.
    pub fn memory(&self) -> Vec<usize> {
        self.long.iter().chain(&self.short).copied().collect()
    }

    /// Remove an entry from either memory.
    pub fn remove(&mut self, i: usize) {
        self.long.retain(|&x| x != i);
        self.short.retain(|&x| x != i);
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

/// Run PrioritySearch (or one of its variants).
pub fn run(s: &Settings, ctx: &mut Ctx<'_, '_>) -> Result<Finish, Stopped> {
    let batch_size = s.batch_size * s.num_batches;
    let n_train = ctx.split(SplitName::Train).len();
    let n_val = ctx.split(SplitName::Validation).len();
    let mut loader = Loader::new(n_train, ctx.rng("ps/train"));
    let mut val_loader = Loader::new(n_val, ctx.rng("ps/validate"));
    let mut variant = polca::State::new(&s.variant, ctx);
    let initial = ctx.task.initial_values();
    let id = ctx.new_id();
    ctx.candidate(id, None, None, None, true);
    let mut search = Search {
        s,
        cands: vec![Cand::new(id, initial, 0)],
        long: Vec::new(),
        short: Vec::new(),
        n_iters: 0,
    };
    // Iteration 0 explores num_candidates copies of the initial parameters.
    let mut exploration: Vec<usize> = vec![0; s.num_candidates];
    let mut best = 0usize;
    let mut samples: Vec<(usize, Evaluation)> = Vec::new();
    let mut batch: Vec<usize> = Vec::new();
    // StreamingPrioritySearch and the regressor variant validate nothing.
    let streaming = matches!(s.variant, Variant::Streaming(_) | Variant::Regressor(_));
    let mut regressor = match &s.variant {
        Variant::Regressor(knobs) => Some(Regressor::new(knobs, ctx)),
        _ => None,
    };
    loop {
        if search.n_iters > 0 {
            let history = search.history();
            for (slot, eval) in &samples {
                search.cands[*slot].add(SplitName::Train, &batch, eval);
            }
            let mut explored: Vec<usize> = exploration.clone();
            explored.sort();
            explored.dedup();
            variant.before_proposals(ctx, &mut search, &explored)?;
            // The (sample, sub-batch) pairs to improve: all of them, or StreamingPS's draw.
            let mut pairs: Vec<(usize, usize)> = Vec::new();
            for (n, _) in samples.iter().enumerate() {
                for k in 0..s.num_batches {
                    pairs.push((n, k));
                }
            }
            let (pairs, num_proposals) =
                variant.pairs(&search, &samples, pairs, &explored, s.num_proposals);
            // Every proposal of the step is independent: asked for together (up to
            // num_threads at once), taken in order.
            let mut asks = Vec::new();
            for (n, k) in pairs {
                let (slot, eval) = &samples[n];
                let range = k * s.batch_size..(k + 1) * s.batch_size;
                let sub = Evaluation {
                    score: None,
                    summary: String::new(),
                    examples: eval.examples[range.clone()].to_vec(),
                    metrics: Default::default(),
                };
                for _ in 0..num_proposals {
                    let parent = &search.cands[*slot];
                    ctx.selected(parent.id);
                    asks.push((parent.id, parent.params.clone(), range.clone(), sub.clone()));
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
            let mut fresh: Vec<(Kwargs, u64)> = Vec::new();
            for ((parent_id, ..), child) in asks.iter().zip(children) {
                if let Some(params) = child {
                    fresh.push((params, *parent_id));
                }
            }
            // POLCA's epsilon-net drops proposals too close to memory (never validated).
            let fresh = variant.filter(ctx, &mut search, &explored, fresh)?;
            let mut proposals = Vec::new();
            for (params, parent_id, embedding) in fresh {
                let id = ctx.new_id();
                let mut cand = Cand::new(id, params, ctx.step());
                cand.embedding = embedding;
                search.cands.push(cand);
                proposals.push((search.cands.len() - 1, parent_id));
            }
            if streaming {
                // No validation: proposals enter memory unscored (top priority), and the
                // next iteration's sampling scores them.
                for &(i, parent_id) in &proposals {
                    ctx.candidate(search.cands[i].id, Some(parent_id), None, None, false);
                }
            } else {
                // Validation: the same batch without a validation split, else fresh batches.
                let (split, ids) = if n_val == 0 {
                    (SplitName::Train, batch.clone())
                } else {
                    (SplitName::Validation, val_loader.sample(batch_size))
                };
                let slots: Vec<usize> = proposals.iter().map(|&(i, _)| i).collect();
                let evals = evaluate_all(ctx, &search.cands, &slots, split, &ids)?;
                for (&(i, parent_id), eval) in proposals.iter().zip(&evals) {
                    search.cands[i].add(split, &ids, eval);
                    ctx.candidate(search.cands[i].id, Some(parent_id), None, eval.score, false);
                }
                if n_val > 0 && s.validate_exploration_candidates {
                    let ids = val_loader.sample(batch_size);
                    let evals =
                        evaluate_all(ctx, &search.cands, &explored, SplitName::Validation, &ids)?;
                    for (&i, eval) in explored.iter().zip(&evals) {
                        search.cands[i].add(SplitName::Validation, &ids, eval);
                    }
                }
            }
            for (i, _) in proposals {
                search.push(i);
            }
            for i in explored {
                search.push(i);
            }
            search.merge_memories();
            if let Some(r) = &mut regressor {
                // Upstream trains only while the long-term memory is the current one.
                let train = match s.memory_update_frequency {
                    Some(0) => true,
                    Some(k) => search.n_iters.is_multiple_of(k),
                    None => false,
                };
                r.reprioritize(ctx, &mut search, train)?;
            }
            if let Some(b) = search.best() {
                best = b;
            }
            exploration.clear();
            if matches!(s.variant, Variant::Pareto) {
                // ParetobasedPS: the per-input Pareto front of the memory, best mean first.
                exploration = pareto_exploration(ctx, &mut search);
            } else {
                // Explore: the best candidate, then the highest priorities.
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

/// ParetobasedPS's exploration: for every distinct training input, the memory candidates
/// with the highest mean score on it (0 when unscored there; float equality keeps ties);
/// of their union, those whose winning inputs are not a strict subset of another's; sorted
/// by overall mean (unscored: 0; stable over the memory in priority order), the first
/// `num_candidates`, removed from memory. `use_best_candidate_to_explore` is ignored, as
/// upstream.
fn pareto_exploration(ctx: &Ctx<'_, '_>, search: &mut Search<'_>) -> Vec<usize> {
    let mut all = search.memory();
    search.by_priority(&mut all);
    if all.is_empty() {
        return Vec::new();
    }
    // Distinct training inputs in split order (equal inputs are one input, as upstream).
    let train = ctx.split(SplitName::Train);
    let mut inputs: Vec<String> = Vec::new();
    let mut input_of: Vec<usize> = Vec::with_capacity(train.len());
    for example in train {
        let key = example.input.to_string();
        let at = match inputs.iter().position(|k| *k == key) {
            Some(at) => at,
            None => {
                inputs.push(key);
                inputs.len() - 1
            }
        };
        input_of.push(at);
    }
    let scores: Vec<Vec<f64>> = all
        .iter()
        .map(|&i| {
            let mut sum = vec![0.0; inputs.len()];
            let mut n = vec![0u64; inputs.len()];
            for r in &search.cands[i].rollouts {
                if r.split == SplitName::Train
                    && let Some(&x) = input_of.get(r.id)
                {
                    sum[x] += r.score;
                    n[x] += 1;
                }
            }
            sum.iter()
                .zip(&n)
                .map(|(s, &n)| if n > 0 { s / n as f64 } else { 0.0 })
                .collect()
        })
        .collect();
    let means: Vec<f64> = all
        .iter()
        .map(|&i| search.cands[i].mean().unwrap_or(0.0))
        .collect();
    let chosen = pareto_select(&scores, &means, search.s.num_candidates);
    let picked: Vec<usize> = chosen.into_iter().map(|c| all[c]).collect();
    for &i in &picked {
        search.remove(i);
    }
    picked
}

/// The selection rule of ParetobasedPS on a table: `scores[c][x]` is candidate `c`'s mean
/// on input `x`, `means[c]` its overall mean. Returns up to `take` candidate indices.
pub(super) fn pareto_select(scores: &[Vec<f64>], means: &[f64], take: usize) -> Vec<usize> {
    let n_inputs = scores.first().map_or(0, Vec::len);
    let mut wins: Vec<Vec<usize>> = vec![Vec::new(); scores.len()];
    for x in 0..n_inputs {
        let top = scores
            .iter()
            .map(|s| s[x])
            .fold(f64::NEG_INFINITY, f64::max);
        for (c, s) in scores.iter().enumerate() {
            if s[x] == top {
                wins[c].push(x);
            }
        }
    }
    let strict_subset =
        |b: &[usize], a: &[usize]| b.len() < a.len() && b.iter().all(|x| a.contains(x));
    let mut survivors: Vec<usize> = (0..scores.len())
        .filter(|&b| !wins[b].is_empty())
        .filter(|&b| !(0..scores.len()).any(|a| a != b && strict_subset(&wins[b], &wins[a])))
        .collect();
    survivors.sort_by(|&a, &b| means[b].total_cmp(&means[a]));
    survivors.truncate(take);
    survivors
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

#[cfg(test)]
mod tests {
    use super::pareto_select;

    #[test]
    fn the_pareto_selection_is_worked_by_hand() {
        // Three inputs. a wins x0 and x1, b wins x1 (tie with a) only, c wins x2, d wins
        // nothing. b's wins {1} are a strict subset of a's {0, 1}: dropped. Survivors a and
        // c sorted by overall mean: c (0.9) before a (0.5); take 1 -> c.
        let scores = vec![
            vec![1.0, 0.8, 0.0], // a
            vec![0.2, 0.8, 0.0], // b
            vec![0.0, 0.1, 0.9], // c
            vec![0.1, 0.1, 0.1], // d
        ];
        let means = [0.5, 0.3, 0.9, 0.1];
        assert_eq!(pareto_select(&scores, &means, 1), vec![2]);
        assert_eq!(pareto_select(&scores, &means, 5), vec![2, 0]);
        // Unscored everywhere (all 0): every candidate ties on every input, none is a
        // strict subset of another: all survive, stable by mean.
        let zeros = vec![vec![0.0, 0.0]; 3];
        assert_eq!(pareto_select(&zeros, &[0.0, 0.2, 0.0], 3), vec![1, 0, 2]);
    }
}
