//! Multi-objective scores: an evaluator may report several metrics per example (`metrics`
//! in its verdict); a task's `objective_config` turns them into the one search score every
//! trainer optimises, while every metric is still recorded per step and per job.
//!
//! Two modes, picked per job by `eval_kwargs.objective_mode` (else the config's `mode`):
//!
//! - `weighted`: Σ wᵢ·mᵢ, with minimised metrics negated (the reference's rule);
//! - `pareto`: the weighted Chebyshev scalarisation towards the ideal point `ideal`,
//!   −maxᵢ wᵢ·dᵢ with dᵢ how far metric i is from its ideal value. Its optima are Pareto
//!   optimal, and different weights reach different points of the front — unlike a
//!   weighted sum, which misses the non-convex parts. Each job also records the
//!   non-dominated set of the candidates it evaluated ([`pareto_front`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How metrics become the search score.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectiveMode {
    /// Weighted sum.
    #[default]
    Weighted,
    /// Weighted Chebyshev distance to the ideal point.
    Pareto,
}

impl ObjectiveMode {
    /// Parse `weighted` / `pareto`.
    pub fn parse(text: &str) -> Result<Self, ObjectiveError> {
        match text {
            "weighted" => Ok(Self::Weighted),
            "pareto" => Ok(Self::Pareto),
            other => Err(ObjectiveError::UnknownMode(format!("`{other}`"))),
        }
    }
}

/// Why an objective config, or a mode asked of it, cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ObjectiveError {
    /// Not `weighted` or `pareto` (the value as written).
    #[error("objective_mode must be `weighted` or `pareto`, found {0}")]
    UnknownMode(String),
    /// No metrics.
    #[error("objective_config.metrics is empty")]
    NoMetrics,
    /// A negative or non-finite weight.
    #[error("objective_config: metric `{0}` needs a weight >= 0")]
    BadWeight(String),
    /// `pareto` with a metric that has no ideal point.
    #[error("objective mode `pareto` needs an `ideal` value for every metric; `{0}` has none")]
    NoIdeal(String),
}

/// One metric of the objective.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    /// Metric name, as the evaluator reports it.
    pub name: String,
    /// Its weight (default 1).
    #[serde(default = "one")]
    pub weight: f64,
    /// Lower is better.
    #[serde(default)]
    pub minimize: bool,
    /// Best achievable value (needed by `pareto`).
    #[serde(default)]
    pub ideal: Option<f64>,
}

fn one() -> f64 {
    1.0
}

/// A task's objective (manifest key `objective_config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveConfig {
    /// Default mode; `eval_kwargs.objective_mode` overrides it per job.
    #[serde(default)]
    pub mode: ObjectiveMode,
    /// The metrics, in reporting order.
    pub metrics: Vec<MetricSpec>,
}

impl ObjectiveConfig {
    /// Check the config once, when the task loads.
    pub fn validate(&self) -> Result<(), ObjectiveError> {
        if self.metrics.is_empty() {
            return Err(ObjectiveError::NoMetrics);
        }
        if let Some(m) = self
            .metrics
            .iter()
            .find(|m| !(m.weight.is_finite() && m.weight >= 0.0))
        {
            return Err(ObjectiveError::BadWeight(m.name.clone()));
        }
        self.supports(self.mode)
    }

    /// The mode a job's `eval_kwargs.objective_mode` value selects, if this objective
    /// can use it: the one decision the config check and the job both rely on.
    pub fn mode_for(&self, value: &serde_json::Value) -> Result<ObjectiveMode, ObjectiveError> {
        let mode = match value.as_str() {
            Some(text) => ObjectiveMode::parse(text)?,
            None => return Err(ObjectiveError::UnknownMode(value.to_string())),
        };
        self.supports(mode).map(|()| mode)
    }

    /// Whether metrics can be scored in `mode`: `pareto` needs every metric's `ideal`.
    pub fn supports(&self, mode: ObjectiveMode) -> Result<(), ObjectiveError> {
        match (mode, self.metrics.iter().find(|m| m.ideal.is_none())) {
            (ObjectiveMode::Pareto, Some(m)) => Err(ObjectiveError::NoIdeal(m.name.clone())),
            _ => Ok(()),
        }
    }

    /// The search score of one example's metrics; `None` when a metric is missing or not
    /// finite (the caller scores that as a failure), or, in `pareto` mode, a metric has no
    /// `ideal`.
    pub fn score(&self, mode: ObjectiveMode, metrics: &BTreeMap<String, f64>) -> Option<f64> {
        let mut terms = Vec::with_capacity(self.metrics.len());
        for m in &self.metrics {
            let v = *metrics.get(&m.name)?;
            if !v.is_finite() {
                return None;
            }
            terms.push(match mode {
                ObjectiveMode::Weighted => m.weight * if m.minimize { -v } else { v },
                ObjectiveMode::Pareto => {
                    let ideal = m.ideal?;
                    m.weight * if m.minimize { v - ideal } else { ideal - v }
                }
            });
        }
        Some(match mode {
            ObjectiveMode::Weighted => terms.iter().sum(),
            ObjectiveMode::Pareto => -terms.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }

    /// Whether metrics `a` dominate `b`: no worse in every metric, better in one.
    pub fn dominates(&self, a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>) -> bool {
        let mut better = false;
        for m in &self.metrics {
            let (Some(x), Some(y)) = (a.get(&m.name), b.get(&m.name)) else {
                return false;
            };
            let (x, y) = if m.minimize { (-x, -y) } else { (*x, *y) };
            if x < y {
                return false;
            }
            better |= x > y;
        }
        better
    }
}

/// The non-dominated points among `points` (id, metrics), in input order.
pub fn pareto_front<'a, T>(
    config: &ObjectiveConfig,
    points: &'a [(T, BTreeMap<String, f64>)],
) -> Vec<&'a (T, BTreeMap<String, f64>)> {
    points
        .iter()
        .filter(|(_, p)| {
            config.metrics.iter().all(|m| p.contains_key(&m.name))
                && !points.iter().any(|(_, q)| config.dominates(q, p))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ObjectiveConfig {
        ObjectiveConfig {
            mode: ObjectiveMode::Weighted,
            metrics: vec![
                MetricSpec {
                    name: "loss".into(),
                    weight: 1.0,
                    minimize: true,
                    ideal: Some(-1.0),
                },
                MetricSpec {
                    name: "acc".into(),
                    weight: 2.0,
                    minimize: false,
                    ideal: Some(1.0),
                },
            ],
        }
    }

    fn m(loss: f64, acc: f64) -> BTreeMap<String, f64> {
        [("loss".to_string(), loss), ("acc".to_string(), acc)].into()
    }

    #[test]
    fn weighted_and_chebyshev_scores_by_hand() {
        let c = config();
        // weighted: -1*0.5 + 2*0.75 = 1.0
        assert_eq!(c.score(ObjectiveMode::Weighted, &m(0.5, 0.75)), Some(1.0));
        // pareto: distances loss 0.5-(-1) = 1.5 (w1), acc 1-0.75 = 0.25 (w2 -> 0.5); -max = -1.5
        assert_eq!(c.score(ObjectiveMode::Pareto, &m(0.5, 0.75)), Some(-1.5));
        assert_eq!(c.score(ObjectiveMode::Pareto, &m(-1.0, 1.0)), Some(0.0));
        let missing: BTreeMap<String, f64> = [("loss".to_string(), 1.0)].into();
        assert_eq!(c.score(ObjectiveMode::Weighted, &missing), None);
        assert_eq!(c.score(ObjectiveMode::Weighted, &m(f64::NAN, 1.0)), None);
        assert_eq!(ObjectiveMode::parse("pareto"), Ok(ObjectiveMode::Pareto));
        let mut no_ideal = config();
        no_ideal.metrics[1].ideal = None;
        assert!(no_ideal.supports(ObjectiveMode::Weighted).is_ok());
        let e = no_ideal
            .supports(ObjectiveMode::Pareto)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`acc` has none"), "{e}");
        no_ideal.mode = ObjectiveMode::Pareto;
        assert!(no_ideal.validate().is_err());
        assert!(ObjectiveMode::parse("lexi").is_err());
    }

    #[test]
    fn the_front_keeps_exactly_the_non_dominated_points() {
        let c = config();
        let points = vec![
            (0, m(0.0, 0.5)),
            (1, m(-0.5, 0.4)), // better loss, worse acc: on the front
            (2, m(0.1, 0.5)),  // dominated by 0
            (3, m(0.0, 0.9)),  // dominates 0
            (4, m(0.0, 0.9)),  // equal to 3: both stay
        ];
        let ids: Vec<i32> = pareto_front(&c, &points).iter().map(|(i, _)| *i).collect();
        assert_eq!(ids, [1, 3, 4]);
        assert!(c.dominates(&m(0.0, 0.9), &m(0.0, 0.5)));
        assert!(!c.dominates(&m(0.0, 0.5), &m(0.0, 0.5)));
    }
}
