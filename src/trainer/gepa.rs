//! GEPA as upstream gepa-ai/gepa runs it (`GEPAEngine`; see `docs/trainers.md`, GEPA):
//! a pool of programs with a Pareto front per validation example; each
//! iteration selects a parent from the fronts, reflects on one component (round robin)
//! from a minibatch, keeps the child when it strictly improves on that minibatch, then
//! scores it on the whole validation split. Optional merges recombine two front
//! programs that changed different components of a common ancestor.
//!
//! The budget is `max_metric_calls`. Upstream checks it before an iteration and can
//! overshoot by one; here an iteration starts only when its worst case still fits, so
//! the budget is never exceeded.

use std::collections::HashSet;

use super::core::{Ctx, Finish, PoolEntry, ProposalSpec, max_opt};
use super::data::EpochShuffled;
use super::knobs::{KnobError, Knobs};
use crate::rng::Rng;
use crate::stop::Stopped;
use crate::task::SplitName;
use crate::vocab::Kwargs;

/// Upstream GEPA knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    max_metric_calls: u64,
    minibatch_size: usize,
    selection: Selection,
    skip_perfect_score: bool,
    perfect_score: f64,
    use_merge: bool,
    max_merge_invocations: u64,
    merge_val_overlap_floor: usize,
    all_components: bool,
    accept_equal: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Selection {
    Pareto,
    CurrentBest,
    EpsilonGreedy,
}

impl Settings {
    /// Read and check the knobs.
    pub fn read(k: &Knobs<'_>) -> Result<Self, KnobError> {
        let selection = match k
            .choice(
                "candidate_selection_strategy",
                &["pareto", "current_best", "epsilon_greedy"],
            )?
            .as_str()
        {
            "current_best" => Selection::CurrentBest,
            "epsilon_greedy" => Selection::EpsilonGreedy,
            _ => Selection::Pareto,
        };
        Ok(Self {
            max_metric_calls: k.positive("max_metric_calls")?,
            minibatch_size: k.positive("reflection_minibatch_size")? as usize,
            selection,
            skip_perfect_score: k.flag("skip_perfect_score")?,
            perfect_score: k.number("perfect_score")?,
            use_merge: k.flag("use_merge")?,
            max_merge_invocations: k.count("max_merge_invocations")?,
            merge_val_overlap_floor: k.count("merge_val_overlap_floor")? as usize,
            all_components: k.choice("module_selector", &["round_robin", "all"])? == "all",
            accept_equal: k.choice(
                "acceptance_criterion",
                &["strict_improvement", "improvement_or_equal"],
            )? == "improvement_or_equal",
        })
    }
}

struct Program {
    id: u64,
    params: Kwargs,
    /// Score per validation example.
    scores: Vec<f64>,
    avg: f64,
    parents: Vec<usize>,
    /// Next component for round-robin reflection.
    next_component: usize,
    step: u64,
}

struct State {
    programs: Vec<Program>,
    /// Best score seen per validation example.
    best: Vec<f64>,
    /// Programs achieving it.
    fronts: Vec<Vec<usize>>,
}

impl State {
    fn add(&mut self, p: Program) -> usize {
        let idx = self.programs.len();
        for (v, &s) in p.scores.iter().enumerate() {
            if s > self.best[v] {
                self.best[v] = s;
                self.fronts[v] = vec![idx];
            } else if s == self.best[v] {
                self.fronts[v].push(idx);
            }
        }
        self.programs.push(p);
        idx
    }

    fn ancestors(&self, i: usize) -> HashSet<usize> {
        let mut out = HashSet::new();
        let mut stack = self.programs[i].parents.clone();
        while let Some(p) = stack.pop() {
            if out.insert(p) {
                stack.extend(self.programs[p].parents.iter().copied());
            }
        }
        out
    }

    /// Front programs after removing dominated ones: a program is dominated when every
    /// front holding it also holds another surviving program (weakest removed first).
    fn non_dominated(&self) -> Vec<usize> {
        let mut alive: Vec<usize> = self.fronts.iter().flatten().copied().collect();
        alive.sort();
        alive.dedup();
        alive.sort_by(|&a, &b| self.programs[a].avg.total_cmp(&self.programs[b].avg));
        loop {
            let dominated = alive.iter().position(|&y| {
                self.fronts
                    .iter()
                    .filter(|f| f.contains(&y))
                    .all(|f| f.iter().any(|&o| o != y && alive.contains(&o)))
            });
            match dominated {
                Some(pos) if alive.len() > 1 => {
                    alive.remove(pos);
                }
                _ => return alive,
            }
        }
    }

    /// The best program by average (ties: more fronts, then the older).
    fn best(&self) -> usize {
        let coverage = |i: usize| self.fronts.iter().filter(|f| f.contains(&i)).count();
        let mut best = 0;
        for i in 1..self.programs.len() {
            let (a, b) = (self.programs[i].avg, self.programs[best].avg);
            if a > b || (a == b && coverage(i) > coverage(best)) {
                best = i;
            }
        }
        best
    }
}

/// Run upstream GEPA.
pub fn run(s: &Settings, ctx: &mut Ctx<'_, '_>) -> Result<Finish, Stopped> {
    let val_split = if ctx.split(SplitName::Validation).is_empty() {
        SplitName::Train
    } else {
        SplitName::Validation
    };
    let n_val = ctx.split(val_split).len();
    let all_val: Vec<usize> = (0..n_val).collect();
    let n_train = ctx.split(SplitName::Train).len();
    let m = s.minibatch_size.min(n_train);
    let mut sampler = EpochShuffled::new(n_train, m, ctx.rng("gepa/batches"));
    let mut rng = ctx.rng("gepa/select");
    let mut merge_rng = ctx.rng("gepa/merge");
    let components: Vec<String> = ctx
        .task
        .params()
        .iter()
        .filter(|p| p.trainable)
        .map(|p| p.name.clone())
        .collect();

    let seed_id = ctx.new_id();
    let initial = ctx.task.initial_values();
    let eval = ctx.evaluate(seed_id, &initial, val_split, &all_val)?;
    let mut state = State {
        programs: Vec::new(),
        best: vec![f64::NEG_INFINITY; n_val],
        fronts: vec![Vec::new(); n_val],
    };
    state.add(program(
        seed_id,
        initial,
        eval.examples.iter().map(|r| r.score).collect(),
        vec![],
        0,
        0,
    ));
    ctx.candidate(seed_id, None, None, Some(state.programs[0].avg), true);
    end_step(ctx, &state, Some(state.programs[0].avg))?;

    let (mut merges_due, mut merges_tested) = (0u64, 0u64);
    let mut last_found_new = false;
    let mut tried_merges: HashSet<(usize, usize, usize)> = HashSet::new();
    let mut tried_children: HashSet<String> = HashSet::new();
    // Without training examples there is nothing to reflect on.
    if m == 0 {
        return Ok(finish(&state));
    }
    loop {
        let remaining = s.max_metric_calls.saturating_sub(ctx.counters.metric_calls);
        if s.use_merge && merges_due > 0 && last_found_new {
            last_found_new = false;
            let subsample = 5.min(n_val) as u64;
            if remaining >= subsample + n_val as u64
                && let Some((i, j, child, ids)) = propose_merge(
                    &state,
                    s.merge_val_overlap_floor,
                    &mut merge_rng,
                    &mut tried_merges,
                    &mut tried_children,
                )
            {
                let id = ctx.new_id();
                let eval = ctx.evaluate(id, &child, val_split, &ids)?;
                let sum_child: f64 = eval.examples.iter().map(|r| r.score).sum();
                let sum_of = |p: usize| {
                    ids.iter()
                        .map(|&v| state.programs[p].scores[v])
                        .sum::<f64>()
                };
                let (pi, pj) = (state.programs[i].id, state.programs[j].id);
                if sum_child >= sum_of(i).max(sum_of(j)) {
                    let full = ctx.evaluate(id, &child, val_split, &all_val)?;
                    let scores = full.examples.iter().map(|r| r.score).collect();
                    let p = program(
                        id,
                        child,
                        scores,
                        vec![i, j],
                        state.programs[i]
                            .next_component
                            .max(state.programs[j].next_component),
                        ctx.step(),
                    );
                    let avg = p.avg;
                    let idx = state.add(p);
                    ctx.candidate(id, Some(pi), Some(pj), Some(avg), state.best() == idx);
                    merges_due -= 1;
                    merges_tested += 1;
                } else {
                    ctx.candidate(id, Some(pi), Some(pj), eval.score, false);
                }
                end_step(ctx, &state, None)?;
                continue;
            }
        }
        // A reflective iteration costs at most two minibatches and one full validation.
        if remaining < (2 * m + n_val) as u64 {
            break;
        }
        let parent = match s.selection {
            Selection::Pareto => pareto_parent(&state, &mut rng),
            Selection::CurrentBest => state.best(),
            Selection::EpsilonGreedy if rng.chance(0.1) => rng.below(state.programs.len()),
            Selection::EpsilonGreedy => state.best(),
        };
        let parent_id = state.programs[parent].id;
        ctx.selected(parent_id);
        let ids = sampler.next_batch();
        let parent_params = state.programs[parent].params.clone();
        let before = ctx.evaluate(parent_id, &parent_params, SplitName::Train, &ids)?;
        let parent_sum: f64 = before.examples.iter().map(|r| r.score).sum();
        if s.skip_perfect_score && before.examples.iter().all(|r| r.score >= s.perfect_score) {
            end_step(ctx, &state, before.score)?;
            continue;
        }
        let chosen: Vec<String> = if s.all_components {
            components.clone()
        } else {
            let p = &mut state.programs[parent];
            let c = components[p.next_component % components.len()].clone();
            p.next_component += 1;
            vec![c]
        };
        // One request per chosen component, all on the parent's results: asked together.
        let specs: Vec<ProposalSpec<'_>> = chosen
            .iter()
            .map(|c| ProposalSpec {
                parent: &parent_params,
                ids: &ids,
                eval: &before,
                only: Some(c),
                history: &[],
            })
            .collect();
        let mut child = parent_params.clone();
        for (c, update) in chosen.iter().zip(ctx.propose_batch(&specs)?) {
            if let Some(v) = update.as_ref().and_then(|u| u.get(c)) {
                child.insert(c.clone(), v.clone());
            }
        }
        if child == parent_params {
            end_step(ctx, &state, before.score)?;
            continue;
        }
        let id = ctx.new_id();
        let after = ctx.evaluate(id, &child, SplitName::Train, &ids)?;
        let child_sum: f64 = after.examples.iter().map(|r| r.score).sum();
        let accepted = child_sum > parent_sum || (s.accept_equal && child_sum == parent_sum);
        if accepted {
            let full = ctx.evaluate(id, &child, val_split, &all_val)?;
            let scores = full.examples.iter().map(|r| r.score).collect();
            let next = state.programs[parent].next_component;
            let p = program(id, child, scores, vec![parent], next, ctx.step());
            let avg = p.avg;
            let idx = state.add(p);
            ctx.candidate(id, Some(parent_id), None, Some(avg), state.best() == idx);
            if merges_tested < s.max_merge_invocations {
                merges_due += 1;
            }
            last_found_new = true;
        } else {
            ctx.candidate(id, Some(parent_id), None, after.score, false);
        }
        end_step(ctx, &state, max_opt(after.score, before.score))?;
    }
    Ok(finish(&state))
}

fn finish(state: &State) -> Finish {
    let best = state.best();
    Finish {
        best: state.programs[best].params.clone(),
        best_step: state.programs[best].step,
        pool: state
            .programs
            .iter()
            .map(|p| PoolEntry {
                id: p.id,
                score: Some(p.avg),
            })
            .collect(),
        ..Default::default()
    }
}

fn program(
    id: u64,
    params: Kwargs,
    scores: Vec<f64>,
    parents: Vec<usize>,
    next_component: usize,
    step: u64,
) -> Program {
    let avg = if scores.is_empty() {
        f64::NEG_INFINITY
    } else {
        scores.iter().sum::<f64>() / scores.len() as f64
    };
    Program {
        id,
        params,
        scores,
        avg,
        parents,
        next_component,
        step,
    }
}

fn end_step(ctx: &mut Ctx<'_, '_>, state: &State, score_train: Option<f64>) -> Result<(), Stopped> {
    let best = state.best();
    ctx.end_step(
        &state.programs[best].params,
        Some(state.programs[best].avg),
        score_train,
    )
}

/// Sample a parent with probability ∝ the number of fronts it is on (after pruning).
fn pareto_parent(state: &State, rng: &mut Rng) -> usize {
    let survivors = state.non_dominated();
    let mut multiset = Vec::new();
    for &p in &survivors {
        let count = state.fronts.iter().filter(|f| f.contains(&p)).count();
        multiset.extend(std::iter::repeat_n(p, count));
    }
    if multiset.is_empty() {
        return state.best();
    }
    *rng.pick(&multiset)
}

/// Find two front programs that changed different components of a common ancestor and
/// combine them; returns (i, j, merged params, validation ids to screen it on).
fn propose_merge(
    state: &State,
    overlap_floor: usize,
    rng: &mut Rng,
    tried: &mut HashSet<(usize, usize, usize)>,
    tried_children: &mut HashSet<String>,
) -> Option<(usize, usize, Kwargs, Vec<usize>)> {
    let candidates = state.non_dominated();
    if state.programs.len() < 3 || candidates.len() < 2 {
        return None;
    }
    let n_val = state.best.len();
    if n_val < overlap_floor {
        return None;
    }
    for _ in 0..10 {
        for _ in 0..10 {
            let i = *rng.pick(&candidates);
            let j = *rng.pick(&candidates);
            if i == j {
                continue;
            }
            let (ai, aj) = (state.ancestors(i), state.ancestors(j));
            if ai.contains(&j) || aj.contains(&i) {
                continue;
            }
            let (pi, pj) = (&state.programs[i], &state.programs[j]);
            let mut common: Vec<usize> = ai
                .intersection(&aj)
                .copied()
                .filter(|&a| {
                    let pa = &state.programs[a];
                    !tried.contains(&(i.min(j), i.max(j), a))
                        && pa.avg <= pi.avg
                        && pa.avg <= pj.avg
                        && pa.params.iter().any(|(k, va)| {
                            let (vi, vj) = (pi.params.get(k), pj.params.get(k));
                            (vi == Some(va)) != (vj == Some(va)) && vi != vj
                        })
                })
                .collect();
            if common.is_empty() {
                continue;
            }
            common.sort();
            // The ancestor is drawn with probability ∝ its score (shifted to be positive).
            let low = common
                .iter()
                .map(|&a| state.programs[a].avg)
                .fold(f64::INFINITY, f64::min);
            let weights: Vec<f64> = common
                .iter()
                .map(|&a| state.programs[a].avg - low + 1e-6)
                .collect();
            let mut x = rng.next_f64() * weights.iter().sum::<f64>();
            let mut a = *common.last().expect("not empty");
            for (k, w) in weights.iter().enumerate() {
                if x < *w {
                    a = common[k];
                    break;
                }
                x -= w;
            }
            tried.insert((i.min(j), i.max(j), a));
            let pa = &state.programs[a];
            let mut child = pa.params.clone();
            for (k, va) in &pa.params {
                let (vi, vj) = (pi.params.get(k), pj.params.get(k));
                let value = match (vi == Some(va), vj == Some(va)) {
                    (true, false) => vj,
                    (false, true) => vi,
                    _ if vi == vj => vi,
                    _ if pi.avg > pj.avg => vi,
                    _ if pj.avg > pi.avg => vj,
                    _ if rng.chance(0.5) => vi,
                    _ => vj,
                };
                if let Some(v) = value {
                    child.insert(k.clone(), v.clone());
                }
            }
            let key = serde_json::to_string(&child).unwrap_or_default();
            if !tried_children.insert(key) || child == pi.params || child == pj.params {
                continue;
            }
            return Some((i, j, child, stratified(state, i, j, rng)));
        }
    }
    None
}

/// Five validation ids: up to two where i is better, two where j is better, two ties,
/// topped up at random.
fn stratified(state: &State, i: usize, j: usize, rng: &mut Rng) -> Vec<usize> {
    let (si, sj) = (&state.programs[i].scores, &state.programs[j].scores);
    let n = si.len();
    let mut pick = |ids: Vec<usize>, k: usize| -> Vec<usize> {
        rng.sample_indices(ids.len(), k)
            .into_iter()
            .map(|x| ids[x])
            .collect()
    };
    let mut out = pick((0..n).filter(|&v| si[v] > sj[v]).collect(), 2);
    out.extend(pick((0..n).filter(|&v| sj[v] > si[v]).collect(), 2));
    out.extend(pick((0..n).filter(|&v| si[v] == sj[v]).collect(), 2));
    out.truncate(5);
    let rest: Vec<usize> = (0..n).filter(|v| !out.contains(v)).collect();
    let need = 5usize.min(n).saturating_sub(out.len());
    out.extend(pick(rest, need));
    out
}
