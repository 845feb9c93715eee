//! What POLCA and StreamingPrioritySearch change in the PrioritySearch loop
//! (`mod.rs`; OpenTrace `opto/trainer/algorithms/polca.py` and
//! `streaming_priority_search.py`, branch `experimental`; see `docs/trainers.md`).
//!
//! POLCA, per iteration: (1) with `use_summarizer`, one LLM call summarises trajectories of
//! the memory and the explored candidates not summarised before, and `context` plus the
//! summary is shown to the optimizer with every proposal request; (2) with `epsilon > 0`,
//! the proposals pass a greedy epsilon-net: every candidate of memory ∪ exploration and
//! every proposal is embedded once (the text is the Python `str` of its parameter dict, as
//! upstream), and the proposal farthest (L2) from the growing set is kept while that
//! distance exceeds `epsilon`; the rest are dropped before validation.
//!
//! StreamingPrioritySearch: proposals are not validated and enter memory unscored (top
//! priority), so the next iteration's sampling scores them; only `K` (candidate,
//! sub-batch) pairs are improved, drawn without replacement with softmax(priority / T)
//! weights from the job's seeded stream. Upstream (`experimental`) attaches the
//! exploration rollouts two or three times and draws twice per iteration; this is the
//! intended single attach and single draw.

use super::super::core::Ctx;
use super::super::knobs::{KnobError, Knobs};
use super::{Search, Variant};
use crate::llm::{ChatRequest, Message};
use crate::rng::Rng;
use crate::stop::Stopped;
use crate::task::{Evaluation, SplitName};
use crate::vocab::Kwargs;
use crate::vocab::canonical::{python_dict_repr, python_float_repr};

/// POLCA's knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Polca {
    /// Minimum L2 distance of a kept proposal to memory ∪ exploration; 0 keeps all.
    pub epsilon: f64,
    /// One summarizer call per iteration; its summary becomes the optimizer's context.
    pub use_summarizer: bool,
    /// The fixed prefix of that context.
    pub context: String,
    /// The embedding model asked for; `None`: `llm.embedding_model`, else the chat model.
    pub embedding_model: Option<String>,
}

impl Polca {
    /// Read and check the knobs.
    pub fn read(k: &Knobs<'_>) -> Result<Self, KnobError> {
        let epsilon = k.number("epsilon")?;
        if epsilon < 0.0 {
            return Err(KnobError::Wrong {
                trainer: k.trainer().to_string(),
                knob: "epsilon".into(),
                wanted: "a non-negative number".into(),
                found: epsilon.to_string(),
            });
        }
        Ok(Self {
            epsilon,
            use_summarizer: k.flag("use_summarizer")?,
            context: k.optional_text("context")?.unwrap_or_default(),
            embedding_model: k.optional_text("embedding_model")?,
        })
    }
}

/// StreamingPrioritySearch's knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Streaming {
    /// Share of the C explored candidates' worth of pairs improved per iteration.
    pub exploration_ratio: f64,
    /// Softmax temperature of the pair draw.
    pub exploration_temperature: f64,
}

impl Streaming {
    /// Read and check the knobs (`0 < exploration_ratio <= 1`, a positive temperature).
    pub fn read(k: &Knobs<'_>) -> Result<Self, KnobError> {
        let ratio = k.number("exploration_ratio")?;
        let temperature = k.number("exploration_temperature")?;
        let wrong = |knob: &str, wanted: &str, found: f64| KnobError::Wrong {
            trainer: k.trainer().to_string(),
            knob: knob.into(),
            wanted: wanted.into(),
            found: found.to_string(),
        };
        if !(ratio > 0.0 && ratio <= 1.0) {
            return Err(wrong("exploration_ratio", "a number in (0, 1]", ratio));
        }
        if temperature <= 0.0 {
            return Err(wrong(
                "exploration_temperature",
                "a positive number",
                temperature,
            ));
        }
        Ok(Self {
            exploration_ratio: ratio,
            exploration_temperature: temperature,
        })
    }
}

/// A variant's state over the run.
pub(super) enum State {
    Plain,
    Polca {
        knobs: Polca,
        /// The summarizer's draws.
        rng: Rng,
    },
    Streaming {
        knobs: Streaming,
        /// `num_proposals` once capped (permanent, as upstream).
        num_proposals: Option<usize>,
        rng: Rng,
    },
}

impl State {
    pub fn new(variant: &Variant, ctx: &Ctx<'_, '_>) -> Self {
        match variant {
            Variant::Polca(knobs) => Self::Polca {
                knobs: knobs.clone(),
                rng: ctx.rng("polca/summarizer"),
            },
            Variant::Streaming(knobs) => Self::Streaming {
                knobs: knobs.clone(),
                num_proposals: None,
                rng: ctx.rng("streaming/pairs"),
            },
            Variant::Plain | Variant::Pareto | Variant::Regressor(_) => Self::Plain,
        }
    }

    /// POLCA's summarizer, before the iteration's proposals.
    pub fn before_proposals(
        &mut self,
        ctx: &mut Ctx<'_, '_>,
        search: &mut Search<'_>,
        explored: &[usize],
    ) -> Result<(), Stopped> {
        let Self::Polca { knobs, rng } = self else {
            return Ok(());
        };
        if !knobs.use_summarizer {
            return Ok(());
        }
        let mut members = search.memory();
        members.extend(explored);
        let summary = match summarizer_request(search, &members, rng) {
            None => Some(NO_TRAJECTORIES.to_string()),
            Some(request) => match ctx.relay("summarizer", &request, None)? {
                Ok(reply) => parse_summary(&reply.content),
                Err(_) => None,
            },
        };
        match summary {
            Some(summary) => ctx.set_context(Some(format!("{}{summary}", knobs.context))),
            None => ctx.warn(
                "POLCA summarizer: no <summary>...</summary> in the reply; the previous context is kept"
                    .into(),
            ),
        }
        Ok(())
    }

    /// The pairs to improve and the proposals per pair: all of them with `num_proposals`,
    /// or StreamingPrioritySearch's draw.
    pub fn pairs(
        &mut self,
        search: &Search<'_>,
        samples: &[(usize, Evaluation)],
        pairs: Vec<(usize, usize)>,
        explored: &[usize],
        num_proposals: usize,
    ) -> (Vec<(usize, usize)>, usize) {
        let Self::Streaming {
            knobs,
            num_proposals: capped,
            rng,
        } = self
        else {
            return (pairs, num_proposals);
        };
        let c = search_candidates(search);
        let p = *capped
            .get_or_insert_with(|| capped_proposals(c, knobs.exploration_ratio, num_proposals));
        let available = explored.len() + search.memory().len();
        let k = streaming_k(c, knobs.exploration_ratio, p, available);
        if pairs.len() <= k {
            return (pairs, p);
        }
        let priorities: Vec<f64> = pairs
            .iter()
            .map(|&(n, _)| search.priority(samples[n].0))
            .collect();
        let mut drawn = softmax_draw(&priorities, knobs.exploration_temperature, k, rng);
        drawn.sort();
        (drawn.into_iter().map(|i| pairs[i]).collect(), p)
    }

    /// POLCA's epsilon-net over the proposals (identity for the other variants): the kept
    /// proposals in pick order, each with its embedding.
    #[allow(clippy::type_complexity)]
    pub fn filter(
        &mut self,
        ctx: &mut Ctx<'_, '_>,
        search: &mut Search<'_>,
        explored: &[usize],
        fresh: Vec<(Kwargs, u64)>,
    ) -> Result<Vec<(Kwargs, u64, Option<Vec<f64>>)>, Stopped> {
        let keep_all = |fresh: Vec<(Kwargs, u64)>| {
            fresh
                .into_iter()
                .map(|(params, parent)| (params, parent, None))
                .collect()
        };
        let Self::Polca { knobs, .. } = self else {
            return Ok(keep_all(fresh));
        };
        if knobs.epsilon == 0.0 || fresh.is_empty() {
            return Ok(keep_all(fresh));
        }
        let model = knobs.embedding_model.clone();
        let trainable: Vec<String> = ctx
            .task
            .params()
            .iter()
            .filter(|p| p.trainable)
            .map(|p| p.name.clone())
            .collect();
        // Memory ∪ exploration: embed those that have no embedding yet.
        let mut members = search.memory();
        for &i in explored {
            if !members.contains(&i) {
                members.push(i);
            }
        }
        let missing: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| search.cands[i].embedding.is_none())
            .collect();
        let texts: Vec<String> = missing
            .iter()
            .map(|&i| python_dict_repr(&search.cands[i].params, &trainable))
            .collect();
        let vectors = ctx.embed(&texts, model.as_deref())?;
        for (&i, v) in missing.iter().zip(vectors) {
            search.cands[i].embedding = v;
        }
        let texts: Vec<String> = fresh
            .iter()
            .map(|(params, _)| python_dict_repr(params, &trainable))
            .collect();
        let fresh_vectors = ctx.embed(&texts, model.as_deref())?;
        let known: Vec<Vec<f64>> = members
            .iter()
            .filter_map(|&i| search.cands[i].embedding.clone())
            .collect();
        let picks = epsilon_net(known, &fresh_vectors, knobs.epsilon);
        let dropped = fresh.len() - picks.len();
        if dropped > 0 {
            ctx.warn(format!(
                "POLCA: {dropped} of {} proposal(s) within epsilon {} of memory or of each other, not validated",
                fresh.len(),
                python_float_repr(knobs.epsilon)
            ));
        }
        Ok(picks
            .into_iter()
            .map(|j| {
                let (params, parent) = fresh[j].clone();
                (params, parent, fresh_vectors[j].clone())
            })
            .collect())
    }
}

/// C, the explored candidates per iteration.
fn search_candidates(search: &Search<'_>) -> usize {
    search.settings().num_candidates()
}

/// `num_proposals`, capped at `int(C * ratio)` when it exceeds it (never below 1: upstream
/// would then divide by zero).
pub(super) fn capped_proposals(c: usize, ratio: f64, p: usize) -> usize {
    let share = c as f64 * ratio;
    if p as f64 > share {
        (share as usize).max(1)
    } else {
        p
    }
}

/// How many pairs StreamingPrioritySearch improves: `K = max(int(C·ratio/P), 1)`, raised
/// to fill C when memory and exploration hold too few candidates, capped at `int(C/P)`.
pub(super) fn streaming_k(c: usize, ratio: f64, p: usize, available: usize) -> usize {
    let mut k = ((c as f64 * ratio / p as f64) as usize).max(1);
    if k * p + available < c {
        k += (c - (k * p + available)) / p;
    }
    k.min(c / p).max(1)
}

/// `k` indices drawn without replacement, each with probability proportional to
/// `exp(s/T - max(s/T))` among those left (numpy's `choice(replace=False, p=...)`).
/// Non-finite priorities (unscored candidates at `+inf`, failures at `-inf`) are taken as
/// the largest or smallest finite weight instead of making NaN weights.
pub(super) fn softmax_draw(
    priorities: &[f64],
    temperature: f64,
    k: usize,
    rng: &mut Rng,
) -> Vec<usize> {
    let scaled: Vec<f64> = priorities.iter().map(|s| s / temperature).collect();
    let finite_max = scaled
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    let top = if finite_max.is_finite() {
        finite_max
    } else {
        0.0
    };
    let mut weights: Vec<f64> = scaled
        .iter()
        .map(|&x| match x {
            x if x == f64::INFINITY => 1.0,
            x if x.is_finite() => (x - top).exp(),
            _ => 0.0,
        })
        .collect();
    if weights.iter().all(|w| *w == 0.0) {
        weights.iter_mut().for_each(|w| *w = 1.0);
    }
    let mut out = Vec::with_capacity(k);
    for _ in 0..k.min(weights.len()) {
        let total: f64 = weights.iter().sum();
        if total <= 0.0 {
            break;
        }
        let mut r = rng.next_f64() * total;
        let mut pick = weights.iter().rposition(|w| *w > 0.0).unwrap_or(0);
        for (i, w) in weights.iter().enumerate() {
            if *w <= 0.0 {
                continue;
            }
            if r < *w {
                pick = i;
                break;
            }
            r -= w;
        }
        out.push(pick);
        weights[pick] = 0.0;
    }
    out
}

/// The greedy epsilon-net: indices of `fresh` kept, in pick order. A proposal is kept
/// while its distance to the set (memory ∪ exploration ∪ the picks so far) exceeds
/// `epsilon`; the farthest is picked first (the first on ties); one within `epsilon`
/// once is dropped for good. A proposal without an embedding (a failed request) is kept,
/// after the others, and does not join the set (upstream raises a TypeError).
pub(super) fn epsilon_net(
    mut set: Vec<Vec<f64>>,
    fresh: &[Option<Vec<f64>>],
    epsilon: f64,
) -> Vec<usize> {
    let mut left: Vec<usize> = (0..fresh.len()).filter(|&j| fresh[j].is_some()).collect();
    let mut picks = Vec::new();
    loop {
        let distances: Vec<(usize, f64)> = left
            .iter()
            .filter_map(|&j| {
                let v = fresh[j].as_ref()?;
                let d = set.iter().map(|m| l2(m, v)).fold(f64::INFINITY, f64::min);
                (d > epsilon).then_some((j, d))
            })
            .collect();
        let Some(&(pick, _)) =
            distances
                .iter()
                .fold(None, |acc: Option<&(usize, f64)>, x| match acc {
                    Some(a) if a.1 >= x.1 => Some(a),
                    _ => Some(x),
                })
        else {
            break;
        };
        left = distances
            .iter()
            .map(|&(j, _)| j)
            .filter(|&j| j != pick)
            .collect();
        if let Some(v) = &fresh[pick] {
            set.push(v.clone());
        }
        picks.push(pick);
    }
    picks.extend((0..fresh.len()).filter(|&j| fresh[j].is_none()));
    picks
}

fn l2(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| {
            let d = a.get(i).unwrap_or(&0.0) - b.get(i).unwrap_or(&0.0);
            d * d
        })
        .sum::<f64>()
        .sqrt()
}

/// What the summarizer answers when no candidate is left to summarise (upstream's
/// literal, appended to the context prefix as the new context).
const NO_TRAJECTORIES: &str = "No trajectories found for the memory.";

/// Candidates per summarizer prompt (upstream's `max_candidates_in_prompt`).
const MAX_CANDIDATES_IN_PROMPT: usize = 5;

/// The summarizer's request over the members not summarised before that have scored
/// rollouts (at most five, drawn from the job's stream; upstream draws from the global,
/// unseeded `random`): for each, one rollout with score > 0 and one with score <= 0, drawn
/// likewise. `None` when there is nothing to summarise.
fn summarizer_request(
    search: &mut Search<'_>,
    members: &[usize],
    rng: &mut Rng,
) -> Option<ChatRequest> {
    let mut unseen: Vec<usize> = members
        .iter()
        .copied()
        .filter(|&i| !search.cands[i].summarized && !search.cands[i].rollouts.is_empty())
        .collect();
    unseen.sort();
    unseen.dedup();
    if unseen.is_empty() {
        return None;
    }
    let chosen: Vec<usize> = rng
        .sample_indices(unseen.len(), MAX_CANDIDATES_IN_PROMPT.min(unseen.len()))
        .into_iter()
        .map(|k| unseen[k])
        .collect();
    let mut text = String::new();
    for &i in &chosen {
        let cand = &mut search.cands[i];
        cand.summarized = true;
        let good: Vec<usize> = (0..cand.rollouts.len())
            .filter(|&r| cand.rollouts[r].score > 0.0)
            .collect();
        let bad: Vec<usize> = (0..cand.rollouts.len())
            .filter(|&r| cand.rollouts[r].score <= 0.0)
            .collect();
        for group in [good, bad] {
            if group.is_empty() {
                continue;
            }
            let r = &cand.rollouts[group[rng.below(group.len())]];
            let split = match r.split {
                SplitName::Train => "train",
                SplitName::Validation => "validation",
                SplitName::Test => "test",
            };
            text += &format!(
                "## Task Trajectory\n\n## Module Parameters\n{}\n\n## Input\n{split} example {}\n\n## Output\n{}\n\n## Result\nScore: {}\nFeedback: {}\n\n",
                serde_json::to_string_pretty(&cand.params).unwrap_or_default(),
                r.id,
                r.output,
                python_float_repr(r.score),
                r.feedback
            );
        }
    }
    Some(ChatRequest {
        messages: vec![
            Message::new("system", SUMMARIZER_SYSTEM),
            Message::new("user", format!("{SUMMARIZER_USER}\n\n{text}")),
        ],
        temperature: None,
        max_tokens: None,
        variables: Vec::new(),
        feedback: String::new(),
        extra: Default::default(),
    })
}

/// The summarizer's system prompt.
pub const SUMMARIZER_SYSTEM: &str = "You are an expert at analyzing agent behavior patterns and providing actionable guidance for parameter optimization.";

/// The summarizer's instruction; the reply's `<summary>` block becomes the context.
pub const SUMMARIZER_USER: &str = "Analyze the following agent trajectories (parameters, inputs, outputs, scores and feedback). Identify the patterns that separate successful runs from failed ones and give concrete recommendations for better parameters. Put your answer inside <summary></summary> tags.";

/// The text inside the first `<summary>...</summary>`, trimmed.
fn parse_summary(reply: &str) -> Option<String> {
    let start = reply.find("<summary>")? + "<summary>".len();
    let end = reply[start..].find("</summary>")? + start;
    Some(reply[start..end].trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_epsilon_net_keeps_the_farthest_first_and_drops_duplicates_for_good() {
        // Memory at the origin; proposals at distance 3 (x), 0 (duplicate), 2 (y) and a
        // second copy of x. Hand-worked: pick x (3 > 2); then against {0, x}: y is
        // sqrt(13) from x and 2 from 0 -> 2 > 1, kept; the copy of x is 0 from x, and the
        // duplicate 0 from the origin: dropped.
        let v = |x: f64, y: f64| Some(vec![x, y]);
        let fresh = vec![v(3.0, 0.0), v(0.0, 0.0), v(0.0, 2.0), v(3.0, 0.0)];
        assert_eq!(epsilon_net(vec![vec![0.0, 0.0]], &fresh, 1.0), vec![0, 2]);
        // epsilon 2.5: y (2 from the origin) is dropped too.
        assert_eq!(epsilon_net(vec![vec![0.0, 0.0]], &fresh, 2.5), vec![0]);
        // A failed embedding is kept, last.
        assert_eq!(
            epsilon_net(vec![vec![0.0, 0.0]], &[None, v(0.0, 0.0)], 0.1),
            vec![0]
        );
    }

    #[test]
    fn the_embedded_text_is_pythons_dict_repr() {
        let params: Kwargs = serde_json::from_value(serde_json::json!({
            "prompt": "it's", "a": 2, "b": 0.5, "skip": true
        }))
        .unwrap();
        let names = ["prompt", "a", "b"].map(String::from);
        assert_eq!(
            python_dict_repr(&params, &names),
            "{'prompt': \"it's\", 'a': 2, 'b': 0.5}"
        );
    }

    #[test]
    fn streaming_k_follows_the_reference_formula() {
        // C=4, ratio 0.5, P=2: K = max(int(2/2), 1) = 1; 1*2 + 3 >= 4 -> 1.
        assert_eq!(streaming_k(4, 0.5, 2, 3), 1);
        // Only one candidate available: K += int((4 - (2 + 1)) / 2) = 0 -> 1.
        assert_eq!(streaming_k(4, 0.5, 2, 1), 1);
        // C=8, ratio 0.25, P=1, nothing available: K = 2, += int((8-2)/1) = 6 -> 8, cap 8.
        assert_eq!(streaming_k(8, 0.25, 1, 0), 8);
        // P capped at int(C * ratio): 3 > 2 -> 2; never 0.
        assert_eq!(capped_proposals(4, 0.5, 3), 2);
        assert_eq!(capped_proposals(1, 0.5, 2), 1);
        assert_eq!(capped_proposals(4, 0.5, 2), 2);
    }

    #[test]
    fn the_softmax_draw_is_without_replacement_and_seeded() {
        let mut a = Rng::stream(1, "t");
        let mut b = Rng::stream(1, "t");
        let p = [0.0, 1.0, f64::INFINITY, f64::NEG_INFINITY];
        let x = softmax_draw(&p, 1.0, 3, &mut a);
        assert_eq!(x, softmax_draw(&p, 1.0, 3, &mut b));
        let mut sorted = x.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 3);
        assert!(!x.contains(&3), "a -inf pair has weight 0: {x:?}");
    }

    #[test]
    fn the_summary_is_the_tagged_block() {
        assert_eq!(
            parse_summary("x <summary>\n do this \n</summary> y").as_deref(),
            Some("do this")
        );
        assert_eq!(parse_summary("no tags"), None);
    }
}
