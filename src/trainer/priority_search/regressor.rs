//! What PrioritySearch_with_Regressor changes in the PrioritySearch loop (`mod.rs`;
//! OpenTrace `opto/features/priority_search/priority_search_with_regressor.py` and
//! `module_regressor.py`, development branches such as `dev_env`; see `docs/trainers.md`).
//!
//! Proposals are not validated: they enter memory unscored, and candidates gain rollouts
//! only when explored (the iteration's training batch). After each iteration's pushes a
//! logistic regression over embeddings of the candidates predicts their scores, and the
//! prediction is every memory entry's priority and the exploitation criterion:
//!
//! - each candidate is embedded once; the text is the `str` of its first trainable
//!   parameter's value (`base_module_parameters` for the initial candidate), as upstream
//!   (its "TODO: support for multiple parameters");
//! - training data: every long-term memory candidate with rollouts contributes
//!   `round(mean · n)` successes (Python's round, half to even; clamped to [0, n]) and the
//!   rest failures, so scores are read as success rates (upstream's assumption: tasks
//!   scored outside [0, 1] give all-failure labels);
//! - gradient descent on the L2-regularised log loss from the previous weights (warm start),
//!   the learning rate reset each time and multiplied by 0.8 every 10 iterations without a
//!   new best cost, stopping when both the cost change and the gradient norm fall under
//!   `tolerance`, after 20 iterations without a new best, or at `max_iterations`;
//! - weights start as N(0, 0.1²) draws of the job's stream (upstream: numpy's global,
//!   unseeded generator), sized to the embedding's dimension; a failed embedding is a
//!   seeded random unit vector, as upstream's fallback.

use super::super::core::Ctx;
use super::super::knobs::{KnobError, Knobs};
use super::Search;
use crate::rng::Rng;
use crate::stop::Stopped;
use crate::vocab::canonical::python_repr;
use serde_json::Value as Json;

/// Upstream's early-stopping patience (iterations without a new best cost).
const PATIENCE: u64 = 20;
/// Upstream's learning-rate decay factor.
const LR_DECAY: f64 = 0.8;
/// Upstream's weight dimension before the first embedding is seen.
const DEFAULT_DIM: usize = 768;
/// What upstream embeds for the initial candidate (its update dict is empty).
const BASE_TEXT: &str = "base_module_parameters";

/// The regressor's knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct RegressorKnobs {
    /// The embedding model asked for; `None`: `llm.embedding_model`, else the chat model.
    pub embedding_model: Option<String>,
    learning_rate: f64,
    regularization_strength: f64,
    max_iterations: u64,
    tolerance: f64,
}

impl RegressorKnobs {
    /// Read and check the knobs (a positive learning rate, non-negative regularisation
    /// and tolerance).
    pub fn read(k: &Knobs<'_>) -> Result<Self, KnobError> {
        let wrong = |knob: &str, wanted: &str, found: f64| KnobError::Wrong {
            trainer: k.trainer().to_string(),
            knob: knob.into(),
            wanted: wanted.into(),
            found: found.to_string(),
        };
        let learning_rate = k.number("regressor_learning_rate")?;
        if learning_rate <= 0.0 {
            return Err(wrong(
                "regressor_learning_rate",
                "a positive number",
                learning_rate,
            ));
        }
        let regularization_strength = k.number("regressor_regularization_strength")?;
        if regularization_strength < 0.0 {
            return Err(wrong(
                "regressor_regularization_strength",
                "a non-negative number",
                regularization_strength,
            ));
        }
        let tolerance = k.number("regressor_tolerance")?;
        if tolerance < 0.0 {
            return Err(wrong(
                "regressor_tolerance",
                "a non-negative number",
                tolerance,
            ));
        }
        Ok(Self {
            embedding_model: k.optional_text("regressor_embedding_model")?,
            learning_rate,
            regularization_strength,
            max_iterations: k.count("regressor_max_iterations")?,
            tolerance,
        })
    }
}

/// One candidate's training data: its embedding, successes and failures.
struct Row<'a> {
    x: &'a [f64],
    successes: f64,
    failures: f64,
}

/// The regression model over the run (weights persist between iterations).
pub(super) struct Regressor {
    knobs: RegressorKnobs,
    weights: Vec<f64>,
    bias: f64,
    rng: Rng,
}

impl Regressor {
    pub fn new(knobs: &RegressorKnobs, ctx: &Ctx<'_, '_>) -> Self {
        let mut rng = ctx.rng("ps-regressor/weights");
        let weights = normal_weights(&mut rng, DEFAULT_DIM);
        Self {
            knobs: knobs.clone(),
            weights,
            bias: 0.0,
            rng,
        }
    }

    /// Embed the memory's new members, train on the long-term memory when `train`, and
    /// set every memory member's predicted score.
    pub fn reprioritize(
        &mut self,
        ctx: &mut Ctx<'_, '_>,
        search: &mut Search<'_>,
        train: bool,
    ) -> Result<(), Stopped> {
        let first = ctx
            .task
            .params()
            .iter()
            .find(|p| p.trainable)
            .map(|p| p.name.clone());
        let members = search.memory();
        let missing: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&i| search.cands[i].embedding.is_none())
            .collect();
        let texts: Vec<String> = missing
            .iter()
            .map(|&i| parameter_text(&search.cands[i], first.as_deref()))
            .collect();
        let vectors = ctx.embed(&texts, self.knobs.embedding_model.as_deref())?;
        for (&i, v) in missing.iter().zip(vectors) {
            let v = v.unwrap_or_else(|| fallback_embedding(&mut self.rng, self.weights.len()));
            search.cands[i].embedding = Some(v);
        }
        if train {
            let rows: Vec<Row<'_>> = search
                .long
                .iter()
                .filter_map(|&i| {
                    let c = &search.cands[i];
                    let mean = c.mean()?;
                    let n = c.n as f64;
                    let successes = (mean * n).round_ties_even().clamp(0.0, n);
                    Some(Row {
                        x: c.embedding.as_deref()?,
                        successes,
                        failures: n - successes,
                    })
                })
                .collect();
            if let Some(dim) = rows.first().map(|r| r.x.len())
                && dim != self.weights.len()
            {
                self.weights = normal_weights(&mut self.rng, dim);
            }
            fit(&rows, &mut self.weights, &mut self.bias, &self.knobs);
        }
        for i in members {
            let p = search.cands[i]
                .embedding
                .as_deref()
                .map(|x| sigmoid(dot(x, &self.weights) + self.bias));
            search.cands[i].predicted = p;
        }
        Ok(())
    }
}

/// Upstream's `_get_parameter_text`.
fn parameter_text(cand: &super::Cand, first: Option<&str>) -> String {
    if cand.id == 0 {
        return BASE_TEXT.to_string();
    }
    match first.and_then(|name| cand.params.get(name)) {
        Some(Json::String(s)) => s.clone(),
        Some(other) => python_repr(other),
        None => BASE_TEXT.to_string(),
    }
}

fn normal_weights(rng: &mut Rng, dim: usize) -> Vec<f64> {
    (0..dim).map(|_| 0.1 * rng.gaussian()).collect()
}

fn fallback_embedding(rng: &mut Rng, dim: usize) -> Vec<f64> {
    let v: Vec<f64> = (0..dim.max(1)).map(|_| 0.01 * rng.gaussian()).collect();
    let norm = dot(&v, &v).sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// The dot product over the common length (a shorter vector counts as zero-padded).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Upstream's training loop over the binary samples the rows stand for; returns the
/// iterations run (0 without samples).
fn fit(rows: &[Row<'_>], weights: &mut [f64], bias: &mut f64, knobs: &RegressorKnobs) -> u64 {
    let m: f64 = rows.iter().map(|r| r.successes + r.failures).sum();
    if m == 0.0 {
        return 0;
    }
    const EPS: f64 = 1e-15;
    let reg = knobs.regularization_strength;
    let mut lr = knobs.learning_rate;
    let (mut prev_cost, mut best_cost) = (f64::INFINITY, f64::INFINITY);
    let mut patience = 0u64;
    let mut dw = vec![0.0; weights.len()];
    for iteration in 0..knobs.max_iterations {
        let mut log_likelihood = 0.0;
        let mut db = 0.0;
        dw.iter_mut().for_each(|g| *g = 0.0);
        for r in rows {
            let p = sigmoid(dot(r.x, weights) + *bias);
            let pc = p.clamp(EPS, 1.0 - EPS);
            log_likelihood -= r.successes * pc.ln() + r.failures * (1.0 - pc).ln();
            // Σ over the row's samples of (p - y): successes have y = 1, failures y = 0.
            let residual = (r.successes + r.failures) * p - r.successes;
            db += residual;
            for (g, x) in dw.iter_mut().zip(r.x) {
                *g += residual * x;
            }
        }
        let cost = log_likelihood / m + reg * dot(weights, weights);
        let change = (prev_cost - cost).abs();
        if cost < best_cost {
            best_cost = cost;
            patience = 0;
        } else {
            patience += 1;
        }
        for (g, w) in dw.iter_mut().zip(weights.iter()) {
            *g = *g / m + 2.0 * reg * w;
        }
        db /= m;
        let gradient_norm = dot(&dw, &dw).sqrt();
        if change < knobs.tolerance && gradient_norm < knobs.tolerance {
            return iteration + 1;
        }
        if patience >= PATIENCE {
            return iteration + 1;
        }
        if patience > 0 && patience.is_multiple_of(10) {
            lr *= LR_DECAY;
        }
        for (w, g) in weights.iter_mut().zip(&dw) {
            *w -= lr * g;
        }
        *bias -= lr * db;
        prev_cost = cost;
    }
    knobs.max_iterations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knobs(max_iterations: u64) -> RegressorKnobs {
        RegressorKnobs {
            embedding_model: None,
            learning_rate: 0.2,
            regularization_strength: 1e-4,
            max_iterations,
            tolerance: 5e-3,
        }
    }

    #[test]
    fn one_step_is_upstreams_gradient_step_worked_by_hand() {
        // Two candidates in 1-D, x = 1 (2 successes of 2) and x = -1 (0 of 1); w = 0.5,
        // b = 0. p(1) = σ(0.5) = 0.6225, p(-1) = σ(-0.5) = 0.3775; m = 3.
        // dw = (2·(0.6225 - 1)·1 + (0.3775 - 0)·(-1)) / 3 + 2·1e-4·0.5 = -0.37744
        // db = (2·(0.6225 - 1) + 0.3775) / 3 = -0.12585
        let (x1, x2) = ([1.0], [-1.0]);
        let rows = [
            Row {
                x: &x1,
                successes: 2.0,
                failures: 0.0,
            },
            Row {
                x: &x2,
                successes: 0.0,
                failures: 1.0,
            },
        ];
        let (mut w, mut b) = (vec![0.5], 0.0);
        assert_eq!(fit(&rows, &mut w, &mut b, &knobs(1)), 1);
        let p = sigmoid(0.5);
        let dw = (2.0 * (p - 1.0) - (1.0 - p)) / 3.0 + 2.0 * 1e-4 * 0.5;
        let db = (2.0 * (p - 1.0) + (1.0 - p)) / 3.0;
        assert!((w[0] - (0.5 - 0.2 * dw)).abs() < 1e-12, "{w:?}");
        assert!((b - (-0.2 * db)).abs() < 1e-12, "{b}");
        assert!((dw - -0.377_44).abs() < 1e-4 && (db - -0.125_85).abs() < 1e-4);
    }

    #[test]
    fn training_separates_successes_from_failures_and_stops() {
        let (good, bad) = ([1.0, 0.0], [0.0, 1.0]);
        let rows = [
            Row {
                x: &good,
                successes: 5.0,
                failures: 0.0,
            },
            Row {
                x: &bad,
                successes: 0.0,
                failures: 5.0,
            },
        ];
        let (mut w, mut b) = (vec![0.0, 0.0], 0.0);
        let iterations = fit(&rows, &mut w, &mut b, &knobs(20_000));
        assert!(iterations < 20_000, "stops before the cap: {iterations}");
        let (pg, pb) = (sigmoid(dot(&good, &w) + b), sigmoid(dot(&bad, &w) + b));
        assert!(pg > 0.8 && pb < 0.2, "{pg} {pb}");
        // No samples: nothing changes.
        let (mut w2, mut b2) = (vec![0.3], 0.1);
        assert_eq!(fit(&[], &mut w2, &mut b2, &knobs(10)), 0);
        assert_eq!((w2, b2), (vec![0.3], 0.1));
    }

    /// Upstream's `ModuleCandidateRegressor.update` then `predict_scores` (OpenTrace
    /// `dev_env`, run with numpy 2 on these inputs, weights set to the same start) gave
    /// these numbers; ours must match them.
    #[test]
    fn training_matches_upstreams_module_regressor() {
        /// Embeddings, (rollouts, mean) per candidate, upstream's weights, bias, predictions.
        type Case<'a> = (&'a [[f64; 4]; 3], [(f64, f64); 3], [f64; 4], f64, [f64; 3]);
        let cases: [Case<'_>; 2] = [
            (
                &[
                    [0.5, -0.5, 0.5, -0.5],
                    [0.1, 0.9, -0.3, 0.3],
                    [-0.6, 0.2, 0.7, 0.3],
                ],
                [(3.0, 2.0 / 3.0), (2.0, 0.0), (4.0, 0.5)],
                [
                    -0.7552663781642949,
                    -2.1233577084602335,
                    1.7411025629110402,
                    -0.5170687076457777,
                ],
                -1.1171622458256565,
                [0.667293454584822, 0.022288098685769614, 0.4937446316722246],
            ),
            (
                &[
                    [1.0, 0.0, 0.0, 0.0],
                    [0.0, 1.0, 0.0, 0.0],
                    [0.0, 0.0, 1.0, 0.0],
                ],
                [(5.0, 1.0), (5.0, 0.0), (2.0, 0.5)],
                [
                    4.562083971125695,
                    -4.500222170351249,
                    0.03163142623792939,
                    0.0,
                ],
                -0.0316261833516115,
                [0.9893391367705048, 0.010646206615280757, 0.5000013107215794],
            ),
        ];
        for (embeddings, rollouts, want_w, want_b, want_p) in cases {
            let rows: Vec<Row<'_>> = embeddings
                .iter()
                .zip(rollouts)
                .map(|(x, (n, mean))| {
                    let successes = (mean * n).round_ties_even().clamp(0.0, n);
                    Row {
                        x,
                        successes,
                        failures: n - successes,
                    }
                })
                .collect();
            let (mut w, mut b) = (vec![0.05, -0.02, 0.1, 0.0], 0.0);
            fit(&rows, &mut w, &mut b, &knobs(20_000));
            for (got, want) in w.iter().zip(want_w) {
                assert!((got - want).abs() < 1e-9, "{w:?} vs {want_w:?}");
            }
            assert!((b - want_b).abs() < 1e-9, "{b} vs {want_b}");
            for (x, want) in embeddings.iter().zip(want_p) {
                let p = sigmoid(dot(x, &w) + b);
                assert!((p - want).abs() < 1e-9, "{p} vs {want}");
            }
        }
    }
}
