//! Which optimizer is better, and by how much (docs/analysis.md, "Which optimizer is
//! better"): for a finished run, per task the paired comparison of every two methods over
//! their common seeds (mean difference, bootstrap interval, Wilcoxon's signed-rank test,
//! Holm-corrected within the task), across tasks the average ranks, Friedman's test and
//! Nemenyi's critical difference, and anytime aggregates on the metric-call axis: the best
//! score reached at 25/50/100% of a common budget, the normalised area under the
//! best-so-far curve, and the expected budget to reach a target (COCO's ERT, unsuccessful
//! seeds counting their whole spend), with Dolan–Moré performance profiles of that ERT.
//! Written to `stats.json` and `anytime.csv`; [`FairReport::verdicts`] says it in words.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::load::RunData;
use crate::results::JobResults;
use crate::significance::{self, Friedman, Profile, Wilcoxon};
use crate::vocab::JobStatus;

/// Significance level of every verdict.
pub const ALPHA: f64 = 0.05;

/// Budget fractions at which anytime scores are read.
pub const FRACTIONS: [f64; 3] = [0.25, 0.5, 1.0];

/// A method: a trainer (and its params variant when the trainer has several).
fn method_of(job: &JobResults, variants: &BTreeMap<(String, String), BTreeSet<usize>>) -> String {
    let r = &job.row;
    let several = variants
        .get(&(r.task_id.clone(), r.trainer_id.clone()))
        .is_some_and(|v| v.len() > 1);
    if several {
        format!("{} [v{}]", r.trainer_id, r.variant_index)
    } else {
        r.trainer_id.clone()
    }
}

/// Two methods compared on one task over their common seeds.
#[derive(Debug, Clone, Serialize)]
pub struct Pair {
    /// First method.
    pub a: String,
    /// Second method.
    pub b: String,
    /// Seeds both finished.
    pub seeds: usize,
    /// Mean of `a − b`.
    pub mean_diff: f64,
    /// Bootstrap 95% interval of that mean.
    pub ci95: Option<(f64, f64)>,
    /// Wilcoxon's signed-rank test of the differences.
    pub wilcoxon: Option<Wilcoxon>,
    /// Its p-value after Holm's correction over the task's pairs.
    pub p_holm: Option<f64>,
    /// `a`, `b` or `none`: which is significantly better at [`ALPHA`].
    pub better: String,
}

/// One task's comparisons.
#[derive(Debug, Clone, Serialize)]
pub struct TaskComparison {
    /// The task.
    pub task_id: String,
    /// `score_test` when every finished job of the task has one, else `score_val`.
    pub score: String,
    /// Mean score of each method.
    pub means: BTreeMap<String, f64>,
    /// Every two methods.
    pub pairs: Vec<Pair>,
}

/// Methods ranked over several tasks.
#[derive(Debug, Clone, Serialize)]
pub struct AcrossTasks {
    /// The methods present on every task, in the order of `friedman.average_ranks`.
    pub methods: Vec<String>,
    /// The tasks.
    pub tasks: Vec<String>,
    /// Friedman's test on the methods' mean scores per task.
    pub friedman: Friedman,
    /// Nemenyi's critical difference of average ranks at [`ALPHA`] (up to 10 methods).
    pub critical_difference: Option<f64>,
    /// Pairs whose average ranks differ by at least the critical difference.
    pub significant_pairs: Vec<(String, String)>,
    /// Performance profiles of the expected metric calls to reach each task's target.
    pub ert_profile: Profile,
}

/// A method's anytime aggregates on one task (metric-call axis).
#[derive(Debug, Clone, Serialize)]
pub struct Anytime {
    /// The task.
    pub task_id: String,
    /// The method.
    pub method: String,
    /// Seeds.
    pub jobs: usize,
    /// The common budget of the task: its `budget.max_metric_calls` when every job had one,
    /// else the most any job spent.
    pub budget: u64,
    /// Mean best-so-far validation score at 25, 50 and 100% of the budget.
    pub best_at: [Option<f64>; 3],
    /// Mean area under the best-so-far curve over [0, budget], the scores scaled to the
    /// task's range (0 = its worst score, 1 = its best).
    pub auc: Option<f64>,
    /// The task's target score (see [`FairReport::targets`]).
    pub target: Option<f64>,
    /// Seeds that reached it.
    pub successes: usize,
    /// Expected metric calls to reach it: all seeds' spend until they reached it (or their
    /// whole spend) over the successes; `None` without a success.
    pub ert: Option<f64>,
}

/// Everything `stats.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct FairReport {
    /// Significance level.
    pub alpha: f64,
    /// Per task.
    pub tasks: Vec<TaskComparison>,
    /// Across tasks (two tasks and two common methods at least).
    pub across_tasks: Option<AcrossTasks>,
    /// Anytime aggregates.
    pub anytime: Vec<Anytime>,
    /// Each task's target: the median of its jobs' final validation scores, so that about
    /// half the runs reach it.
    pub targets: BTreeMap<String, f64>,
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

/// Analyse a loaded run (with histories).
pub fn analyse(run: &RunData) -> FairReport {
    let ok: Vec<&JobResults> = run
        .jobs
        .iter()
        .filter(|j| j.row.status == JobStatus::Ok)
        .collect();
    let mut variants: BTreeMap<(String, String), BTreeSet<usize>> = BTreeMap::new();
    for j in &ok {
        variants
            .entry((j.row.task_id.clone(), j.row.trainer_id.clone()))
            .or_default()
            .insert(j.row.variant_index);
    }
    let mut by_task: BTreeMap<String, Vec<(&JobResults, String)>> = BTreeMap::new();
    for j in &ok {
        by_task
            .entry(j.row.task_id.clone())
            .or_default()
            .push((j, method_of(j, &variants)));
    }
    // Each job's metric-call budget, from the plan.
    let budgets: BTreeMap<String, Option<u64>> = run
        .manifest
        .jobs
        .iter()
        .map(|e| {
            (
                e.job.job_id.to_string(),
                e.job.resolved.budget.max_metric_calls,
            )
        })
        .collect();
    let mut tasks = Vec::new();
    let mut anytime = Vec::new();
    let mut targets = BTreeMap::new();
    for (task, jobs) in &by_task {
        let use_test = jobs.iter().all(|(j, _)| j.row.score_test.is_some());
        let score = |j: &JobResults| {
            if use_test {
                j.row.score_test
            } else {
                j.row.score_val
            }
        };
        let mut by_method: BTreeMap<String, BTreeMap<i64, f64>> = BTreeMap::new();
        for (j, m) in jobs {
            if let Some(s) = score(j).filter(|s| s.is_finite()) {
                by_method
                    .entry(m.clone())
                    .or_default()
                    .insert(j.row.seed, s);
            }
        }
        let means = by_method
            .iter()
            .map(|(m, s)| (m.clone(), mean(&s.values().copied().collect::<Vec<_>>())))
            .collect();
        let methods: Vec<&String> = by_method.keys().collect();
        let mut pairs = Vec::new();
        for (i, a) in methods.iter().enumerate() {
            for b in &methods[i + 1..] {
                let (sa, sb) = (&by_method[*a], &by_method[*b]);
                let diffs: Vec<f64> = sa
                    .iter()
                    .filter_map(|(seed, x)| sb.get(seed).map(|y| x - y))
                    .collect();
                if diffs.is_empty() {
                    continue;
                }
                let mut rng = crate::stats::bootstrap_rng(&format!("pair/{task}/{a}/{b}"));
                pairs.push(Pair {
                    a: (*a).clone(),
                    b: (*b).clone(),
                    seeds: diffs.len(),
                    mean_diff: mean(&diffs),
                    ci95: crate::stats::bootstrap_mean_ci(&diffs, 2000, 0.95, &mut rng),
                    wilcoxon: significance::wilcoxon(&diffs),
                    p_holm: None,
                    better: "none".into(),
                });
            }
        }
        let raw: Vec<f64> = pairs
            .iter()
            .map(|p| p.wilcoxon.as_ref().map_or(1.0, |w| w.p_value))
            .collect();
        for (p, adjusted) in pairs.iter_mut().zip(significance::holm(&raw)) {
            if p.wilcoxon.is_some() {
                p.p_holm = Some(adjusted);
                if adjusted < ALPHA && p.mean_diff != 0.0 {
                    p.better = if p.mean_diff > 0.0 { "a" } else { "b" }.into();
                }
            }
        }
        tasks.push(TaskComparison {
            task_id: task.clone(),
            score: if use_test { "score_test" } else { "score_val" }.into(),
            means,
            pairs,
        });
        // Anytime, on the metric-call axis.
        let finals: Vec<f64> = jobs.iter().filter_map(|(j, _)| j.row.score_val).collect();
        let target = crate::stats::median(&finals);
        if let Some(t) = target {
            targets.insert(task.clone(), t);
        }
        anytime.extend(anytime_of(task, jobs, target, &budgets));
    }
    let across_tasks = across(&tasks, &anytime);
    FairReport {
        alpha: ALPHA,
        tasks,
        across_tasks,
        anytime,
        targets,
    }
}

/// A job's best-so-far validation score as (metric calls, score) steps.
fn curve(job: &JobResults) -> Vec<(u64, f64)> {
    let mut best = f64::NEG_INFINITY;
    let mut out = Vec::new();
    for s in &job.history {
        if let Some(v) = s.score_val.filter(|v| v.is_finite()) {
            best = best.max(v);
        }
        if best.is_finite() {
            out.push((s.spent.metric_calls, best));
        }
    }
    out
}

/// The best-so-far score at `calls` (the last step at or before it).
fn at(curve: &[(u64, f64)], calls: u64) -> Option<f64> {
    curve
        .iter()
        .take_while(|(c, _)| *c <= calls)
        .last()
        .map(|(_, s)| *s)
}

/// One seed's best-so-far curve and what it spent in all.
struct SeedCurve {
    method: String,
    steps: Vec<(u64, f64)>,
    spent: u64,
}

fn anytime_of(
    task: &str,
    jobs: &[(&JobResults, String)],
    target: Option<f64>,
    budgets: &BTreeMap<String, Option<u64>>,
) -> Vec<Anytime> {
    let curves: Vec<SeedCurve> = jobs
        .iter()
        .map(|(j, m)| SeedCurve {
            method: m.clone(),
            steps: curve(j),
            spent: j
                .row
                .spent_metric_calls
                .or_else(|| j.history.last().map(|s| s.spent.metric_calls))
                .unwrap_or(0),
        })
        .collect();
    let planned: Vec<Option<u64>> = jobs
        .iter()
        .map(|(j, _)| budgets.get(j.row.job_id.as_str()).copied().flatten())
        .collect();
    let budget = match planned.iter().copied().collect::<Option<Vec<u64>>>() {
        Some(b) if !b.is_empty() => b.into_iter().max().unwrap_or(0),
        _ => curves.iter().map(|c| c.spent).max().unwrap_or(0),
    };
    let all: Vec<f64> = curves
        .iter()
        .flat_map(|c| c.steps.iter().map(|(_, s)| *s))
        .collect();
    let (lo, hi) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), s| {
            (l.min(*s), h.max(*s))
        });
    let mut methods: BTreeMap<&str, Vec<&SeedCurve>> = BTreeMap::new();
    for c in &curves {
        methods.entry(c.method.as_str()).or_default().push(c);
    }
    methods
        .into_iter()
        .map(|(method, runs)| {
            let best_at = FRACTIONS.map(|f| {
                let calls = (budget as f64 * f).floor() as u64;
                let xs: Vec<f64> = runs.iter().filter_map(|r| at(&r.steps, calls)).collect();
                (!xs.is_empty()).then(|| mean(&xs))
            });
            let auc = (budget > 0 && hi > lo).then(|| {
                let areas: Vec<f64> = runs
                    .iter()
                    .map(|r| {
                        let c = &r.steps;
                        let mut area = 0.0;
                        for (i, (calls, s)) in c.iter().enumerate() {
                            let start = (*calls).min(budget);
                            let end = c.get(i + 1).map_or(budget, |(n, _)| (*n).min(budget));
                            area += (end.saturating_sub(start)) as f64 * (s - lo) / (hi - lo);
                        }
                        area / budget as f64
                    })
                    .collect();
                mean(&areas)
            });
            let (mut spend, mut successes) = (0.0, 0);
            if let Some(t) = target {
                for r in &runs {
                    match r.steps.iter().find(|(_, s)| *s >= t) {
                        Some((calls, _)) => {
                            spend += *calls as f64;
                            successes += 1;
                        }
                        None => spend += r.spent as f64,
                    }
                }
            }
            Anytime {
                task_id: task.to_string(),
                method: method.to_string(),
                jobs: runs.len(),
                budget,
                best_at,
                auc,
                target,
                successes,
                ert: (successes > 0).then(|| spend / successes as f64),
            }
        })
        .collect()
}

fn across(tasks: &[TaskComparison], anytime: &[Anytime]) -> Option<AcrossTasks> {
    let common: Vec<String> = {
        let mut sets = tasks
            .iter()
            .map(|t| t.means.keys().cloned().collect::<BTreeSet<_>>());
        let first = sets.next()?;
        sets.fold(first, |acc, s| acc.intersection(&s).cloned().collect())
            .into_iter()
            .collect()
    };
    if tasks.len() < 2 || common.len() < 2 {
        return None;
    }
    let scores: Vec<Vec<f64>> = tasks
        .iter()
        .map(|t| common.iter().map(|m| t.means[m]).collect())
        .collect();
    let friedman = significance::friedman(&scores)?;
    let critical_difference = significance::nemenyi_cd(common.len(), tasks.len());
    let mut significant_pairs = Vec::new();
    if let Some(cd) = critical_difference {
        for i in 0..common.len() {
            for j in i + 1..common.len() {
                if (friedman.average_ranks[i] - friedman.average_ranks[j]).abs() >= cd {
                    significant_pairs.push((common[i].clone(), common[j].clone()));
                }
            }
        }
    }
    let costs: Vec<Vec<Option<f64>>> = tasks
        .iter()
        .map(|t| {
            common
                .iter()
                .map(|m| {
                    anytime
                        .iter()
                        .find(|a| a.task_id == t.task_id && &a.method == m)
                        .and_then(|a| a.ert)
                })
                .collect()
        })
        .collect();
    let ert_profile = significance::performance_profile(&costs, &[1.0, 1.5, 2.0, 4.0, 8.0]);
    Some(AcrossTasks {
        methods: common,
        tasks: tasks.iter().map(|t| t.task_id.clone()).collect(),
        friedman,
        critical_difference,
        significant_pairs,
        ert_profile,
    })
}

impl FairReport {
    /// The findings in words: which differences are significant and which are not.
    pub fn verdicts(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.tasks {
            let mut quiet = 0;
            for p in &t.pairs {
                let p_text = p
                    .p_holm
                    .map_or("no test".to_string(), |p| format!("{p:.3}"));
                let (winner, loser, by) = match p.better.as_str() {
                    "a" => (&p.a, &p.b, p.mean_diff),
                    "b" => (&p.b, &p.a, -p.mean_diff),
                    _ => {
                        quiet += 1;
                        continue;
                    }
                };
                out.push(format!(
                    "{}: {winner} beats {loser} by {by:+.4} {} on average over {} seed(s) (Wilcoxon, Holm p = {p_text})",
                    t.task_id, t.score, p.seeds
                ));
            }
            if quiet > 0 {
                let seeds = t.pairs.iter().map(|p| p.seeds).min().unwrap_or(0);
                let all = if quiet == t.pairs.len() { "" } else { "other " };
                out.push(format!(
                    "{}: the {all}{quiet} pair(s) of methods do not differ significantly ({seeds}+ seeds each; exact two-sided Wilcoxon needs 6 seeds to reach p < 0.05)",
                    t.task_id
                ));
            }
        }
        if let Some(x) = &self.across_tasks {
            let ranks: Vec<String> = x
                .methods
                .iter()
                .zip(&x.friedman.average_ranks)
                .map(|(m, r)| format!("{m} {r:.2}"))
                .collect();
            // The more conservative of χ²_F and F_F: with few tasks and perfect agreement
            // the Iman–Davenport F is infinite while χ²_F still says little.
            let p = x.friedman.p_f.max(x.friedman.p_chi2);
            out.push(format!(
                "across {} tasks: average ranks {}; Friedman p = {p:.3}{}",
                x.tasks.len(),
                ranks.join(", "),
                x.critical_difference
                    .map_or(String::new(), |cd| format!(", Nemenyi CD = {cd:.2}"))
            ));
            if p >= ALPHA {
                out.push("across tasks: no method is significantly better than another".into());
            } else {
                for (a, b) in &x.significant_pairs {
                    out.push(format!("across tasks: {a} and {b} differ significantly"));
                }
            }
        }
        out
    }

    /// `anytime.csv`: one row per task and method.
    pub fn anytime_csv(&self) -> String {
        let f = |x: Option<f64>| {
            x.map(crate::vocab::canonical::python_float_repr)
                .unwrap_or_default()
        };
        let mut out = String::from(
            "task_id,method,jobs,budget_metric_calls,best_at_25,best_at_50,best_at_100,auc_norm,target,successes,ert_metric_calls\n",
        );
        for a in &self.anytime {
            let quote = |s: &str| {
                if s.contains([',', '"']) {
                    format!("\"{}\"", s.replace('"', "\"\""))
                } else {
                    s.to_string()
                }
            };
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{}\n",
                quote(&a.task_id),
                quote(&a.method),
                a.jobs,
                a.budget,
                f(a.best_at[0]),
                f(a.best_at[1]),
                f(a.best_at[2]),
                f(a.auc),
                f(a.target),
                a.successes,
                f(a.ert)
            ));
        }
        out
    }
}

/// Analyse the run at `dir` and write `stats.json` and `anytime.csv` into it.
pub fn write(dir: &std::path::Path) -> Result<FairReport, super::LoadError> {
    let run = super::load_run(dir, true)?;
    let report = analyse(&run);
    let io = |path: std::path::PathBuf, text: String| {
        crate::artifacts::atomic::write_atomic(&path, text.as_bytes())
            .map_err(|source| super::LoadError::Read { path, source })
    };
    let mut json = serde_json::to_string_pretty(&report).unwrap_or_default();
    json.push('\n');
    io(run.dir.stats_json(), json)?;
    io(run.dir.anytime_csv(), report.anytime_csv())?;
    Ok(report)
}
