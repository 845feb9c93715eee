//! Learning curves over seeds: per task, one curve per trainer × variant with the mean and
//! a bootstrap 95% band at every step, from the jobs' step histories.
//!
//! The value of a step is `score_val` (the best-so-far parameters on the validation split)
//! and falls back to `best_score` (training) where a task has no validation split. A job
//! that stopped before the group's last step holds its last value, so the mean does not
//! jump when the shortest seed ends.

use std::collections::{BTreeMap, BTreeSet};

use crate::results::JobResults;
use crate::stats::{self, CI_LEVEL};

/// Resamples per step: curves have many points, and the band is a picture, not a verdict.
pub const CURVE_RESAMPLES: usize = 500;

/// One step of a curve.
#[derive(Debug, Clone, PartialEq)]
pub struct CurvePoint {
    /// Step (0 = initial parameters).
    pub step: u64,
    /// Jobs with a value at or before this step.
    pub n: usize,
    /// Mean over them.
    pub mean: f64,
    /// Band (the mean itself below two jobs).
    pub low: f64,
    /// Upper end.
    pub high: f64,
}

/// The curve of one trainer × variant on one task.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// Trainer.
    pub trainer_id: String,
    /// Params variant.
    pub variant_index: usize,
    /// Jobs (seeds) drawn.
    pub jobs: usize,
    /// Points by step.
    pub points: Vec<CurvePoint>,
}

/// Every curve of one task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCurves {
    /// Task.
    pub task_id: String,
    /// `score_val`, or `best_score` when no job of the task has a validation score.
    pub metric: &'static str,
    /// In matrix order.
    pub curves: Vec<Curve>,
}

type GroupKey = (String, String, usize);
/// One job's values by step (a map: steps come from files and are not trusted to be dense).
type Series = BTreeMap<u64, f64>;

/// What a curve's x-axis counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Trainer steps; the value drawn is the step's validation score.
    Step,
    /// The trainer's cumulative metric calls; the value drawn is the best validation score
    /// so far (an anytime curve).
    MetricCalls,
    /// Its cumulative LLM tokens (an anytime curve).
    Tokens,
    /// Its cumulative cost in micro-USD at the configured prices (an anytime curve).
    MicroUsd,
    /// Its cumulative milliseconds (an anytime curve).
    Millis,
}

impl Axis {
    /// The anytime axes, with their labels: the x-axes a comparison can be read on.
    pub const ANYTIME: [(Axis, &'static str); 4] = [
        (Axis::MetricCalls, "metric calls"),
        (Axis::Tokens, "tokens"),
        (Axis::MicroUsd, "cost (micro-USD)"),
        (Axis::Millis, "milliseconds"),
    ];
}

/// Build the curves of every task from finished jobs (loaded with their histories). Only
/// ok jobs are drawn.
pub fn build(jobs: &[JobResults]) -> Vec<TaskCurves> {
    build_on(jobs, Axis::Step)
}

/// [`build`] on another x-axis: `points[].step` then holds the axis value.
pub fn build_on(jobs: &[JobResults], axis: Axis) -> Vec<TaskCurves> {
    // (task, trainer, variant) → one series per job, and whether any job of the group has a
    // validation score.
    let mut groups: Vec<(GroupKey, Vec<Series>, bool)> = Vec::new();
    for job in jobs {
        let r = &job.row;
        if r.status != crate::vocab::JobStatus::Ok || job.history.is_empty() {
            continue;
        }
        let key = (r.task_id.clone(), r.trainer_id.clone(), r.variant_index);
        let has_val = job.history.iter().any(|s| s.score_val.is_some());
        let mut best = f64::NEG_INFINITY;
        let series: Series = job
            .history
            .iter()
            .filter_map(|s| {
                let v = s.score_val.or(s.best_score).filter(|x| x.is_finite())?;
                let x = match axis {
                    Axis::Step => return Some((s.step, v)),
                    Axis::MetricCalls => s.spent.metric_calls,
                    Axis::Tokens => s.spent.tokens,
                    Axis::MicroUsd => (s.spent.cost_usd * 1e6).round() as u64,
                    Axis::Millis => (s.spent.seconds * 1e3).round() as u64,
                };
                best = best.max(v);
                Some((x, best))
            })
            .collect();
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => {
                g.1.push(series);
                g.2 |= has_val;
            }
            None => groups.push((key, vec![series], has_val)),
        }
    }
    let mut tasks: Vec<TaskCurves> = Vec::new();
    for ((task, trainer, variant), series, has_val) in groups {
        let label = format!("curve/{task}/{trainer}/{variant}");
        let curve = Curve {
            trainer_id: trainer,
            variant_index: variant,
            jobs: series.len(),
            points: points(&series, &label),
        };
        match tasks.iter_mut().find(|t| t.task_id == task) {
            Some(t) => {
                if has_val {
                    t.metric = "score_val";
                }
                t.curves.push(curve);
            }
            None => tasks.push(TaskCurves {
                task_id: task,
                metric: if has_val { "score_val" } else { "best_score" },
                curves: vec![curve],
            }),
        }
    }
    tasks
}

fn points(series: &[Series], label: &str) -> Vec<CurvePoint> {
    let steps: BTreeSet<u64> = series.iter().flat_map(|s| s.keys().copied()).collect();
    let mut held: Vec<Option<f64>> = vec![None; series.len()];
    let mut out = Vec::with_capacity(steps.len());
    for step in steps {
        for (h, s) in held.iter_mut().zip(series) {
            if let Some(v) = s.get(&step) {
                *h = Some(*v);
            }
        }
        let values: Vec<f64> = held.iter().flatten().copied().collect();
        let Some(mean) = stats::mean(&values) else {
            continue;
        };
        let mut rng = stats::bootstrap_rng(&format!("{label}/{step}"));
        let (low, high) = stats::bootstrap_mean_ci(&values, CURVE_RESAMPLES, CI_LEVEL, &mut rng)
            .unwrap_or((mean, mean));
        out.push(CurvePoint {
            step,
            n: values.len(),
            mean,
            low,
            high,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::StepRecord;
    use crate::results::row::sample_row;

    fn job(trainer: &str, seed: i64, vals: &[f64], with_val: bool) -> JobResults {
        let history = vals
            .iter()
            .enumerate()
            .map(|(i, v)| StepRecord {
                step: i as u64,
                score_train: None,
                score_val: with_val.then_some(*v),
                best_score: Some(if with_val { -100.0 } else { *v }),
                step_seconds: 0.0,
                elapsed_seconds: 0.0,
                evaluator_calls: 0,
                llm_calls: 0,
                tokens: 0,
                candidates: 0,
                spent: Default::default(),
                best_params: Default::default(),
                metrics: Default::default(),
            })
            .collect();
        JobResults {
            row: sample_row("t", trainer, 0, seed, Some(0.0)),
            history,
        }
    }

    #[test]
    fn curves_average_seeds_and_hold_the_last_value() {
        let jobs = [
            job("A", 1, &[0.0, 1.0, 2.0], true),
            job("A", 2, &[2.0, 3.0], true),
            job("B", 1, &[5.0], false),
        ];
        let tasks = build(&jobs);
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].metric, "score_val");
        let a = &tasks[0].curves[0];
        assert_eq!((a.trainer_id.as_str(), a.jobs), ("A", 2));
        let means: Vec<f64> = a.points.iter().map(|p| p.mean).collect();
        assert_eq!(means, [1.0, 2.0, 2.5], "seed 2 holds 3.0 at step 2");
        assert!(a.points.iter().all(|p| p.low <= p.mean && p.mean <= p.high));
        let b = &tasks[0].curves[1];
        assert_eq!(b.points.len(), 1);
        assert_eq!((b.points[0].low, b.points[0].high), (5.0, 5.0));
        assert_eq!(build(&jobs), tasks, "deterministic");
        let only_train = build(&[job("B", 1, &[1.0, 2.0], false)]);
        assert_eq!(only_train[0].metric, "best_score");
        assert_eq!(only_train[0].curves[0].points[1].mean, 2.0);
    }

    #[test]
    fn sparse_or_huge_step_numbers_cost_nothing() {
        let mut j = job("A", 1, &[0.0, 1.0], true);
        j.history[1].step = u64::MAX;
        let tasks = build(&[j]);
        let steps: Vec<u64> = tasks[0].curves[0].points.iter().map(|p| p.step).collect();
        assert_eq!(steps, [0, u64::MAX]);
    }
}
