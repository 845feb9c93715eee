//! `compare BASE NEW`: a regression gate between two runs.
//!
//! Jobs are paired by (task, trainer, params variant, seed), so a changed hyper-parameter
//! (which changes the job id) is still compared with the job it replaces. Per task ×
//! trainer × variant the gate measures the mean paired `score_val` difference with a
//! seeded paired bootstrap interval, the pass-rate change, and token and time growth, and
//! judges each against [`Thresholds`]. The result is a [`Gate`]: `gate.json`, a verdict and
//! every reason.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::{Value as Json, json};

use super::load::RunData;
use crate::config::yaml::{self, Value};
use crate::results::ResultRow;
use crate::stats::{self, BOOTSTRAP_RESAMPLES, CI_LEVEL};
use crate::vocab::JobStatus;

/// Float slack so that equal numbers never trip a limit through rounding.
const EPS: f64 = 1e-9;

/// Limits of the gate. `None` turns a check off.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Thresholds {
    /// Largest tolerated drop of the mean paired `score_val` difference (a drop fails only
    /// when it is larger than this and the paired 95% interval lies below zero).
    pub max_score_drop: Option<f64>,
    /// Largest tolerated drop of the pass rate (ok / executed jobs), as a fraction.
    pub max_pass_rate_drop: Option<f64>,
    /// Largest tolerated relative growth of mean tokens per job (0.1 = +10%).
    pub max_token_increase: Option<f64>,
    /// Largest tolerated relative growth of mean seconds per job.
    pub max_time_increase: Option<f64>,
    /// Time growth below this many seconds per job never fails (timing noise).
    pub time_grace_seconds: f64,
    /// Base jobs without a partner in the new run are a warning instead of a failure.
    pub allow_missing: bool,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            max_score_drop: Some(0.0),
            max_pass_rate_drop: Some(0.0),
            max_token_increase: Some(0.10),
            max_time_increase: Some(0.50),
            time_grace_seconds: 1.0,
            allow_missing: false,
        }
    }
}

/// The keys a thresholds file may set.
pub const THRESHOLD_KEYS: &[&str] = &[
    "max_score_drop",
    "max_pass_rate_drop",
    "max_token_increase",
    "max_time_increase",
    "time_grace_seconds",
    "allow_missing",
];

impl Thresholds {
    /// Apply a thresholds YAML file (a mapping of [`THRESHOLD_KEYS`]; `null` or `off`
    /// turns a check off). Errors name `file:line:col`.
    pub fn apply_yaml(&mut self, name: &str, text: &str) -> Result<(), String> {
        let at = |s: yaml::Span| format!("{name}:{}:{}", s.line, s.col);
        let root = yaml::parse(text).map_err(|e| format!("{name}:{e}"))?;
        let Some(root) = root else { return Ok(()) };
        let Value::Map(entries) = &root.value else {
            return Err(format!(
                "{}: expected a mapping of thresholds, found a {}",
                at(root.span),
                root.type_name()
            ));
        };
        for e in entries {
            let v = &e.value;
            let number = || -> Result<Option<f64>, String> {
                match &v.value {
                    Value::Null => Ok(None),
                    // YAML 1.1 reads a bare `off` as false.
                    Value::Bool(false) => Ok(None),
                    Value::Str(s) if s == "off" => Ok(None),
                    Value::Int(i) if *i >= 0 => Ok(Some(*i as f64)),
                    Value::Float(f) if f.is_finite() && *f >= 0.0 => Ok(Some(*f)),
                    _ => Err(format!(
                        "{}: `{}` must be a number >= 0, null or off",
                        at(v.span),
                        e.key
                    )),
                }
            };
            match e.key.as_str() {
                "max_score_drop" => self.max_score_drop = number()?,
                "max_pass_rate_drop" => self.max_pass_rate_drop = number()?,
                "max_token_increase" => self.max_token_increase = number()?,
                "max_time_increase" => self.max_time_increase = number()?,
                "time_grace_seconds" => self.time_grace_seconds = number()?.unwrap_or(0.0),
                "allow_missing" => match v.value {
                    Value::Bool(b) => self.allow_missing = b,
                    _ => {
                        return Err(format!(
                            "{}: `allow_missing` must be true or false",
                            at(v.span)
                        ));
                    }
                },
                other => {
                    let hint = THRESHOLD_KEYS
                        .iter()
                        .max_by(|a, b| {
                            strsim::jaro_winkler(other, a)
                                .total_cmp(&strsim::jaro_winkler(other, b))
                        })
                        .map(|k| format!("; did you mean `{k}`?"))
                        .unwrap_or_default();
                    return Err(format!(
                        "{}: unknown threshold `{other}`{hint} (known: {})",
                        at(e.key_span),
                        THRESHOLD_KEYS.join(", ")
                    ));
                }
            }
        }
        Ok(())
    }
}

/// How bad a reason is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Fails the gate.
    Fail,
    /// Reported, does not fail the gate.
    Warn,
}

/// One finding of the gate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    /// Fail or warn.
    pub severity: Severity,
    /// `score`, `pass_rate`, `tokens`, `time`, `missing`, `unpaired` or `ambiguous`.
    pub check: &'static str,
    /// Task.
    pub task_id: String,
    /// Trainer.
    pub trainer_id: String,
    /// Params variant.
    pub variant_index: usize,
    /// One sentence with the numbers.
    pub message: String,
    /// The measured change (score delta, pass-rate change, relative growth).
    pub value: Option<f64>,
    /// The limit it was judged against.
    pub limit: Option<f64>,
}

/// Base and new value of a per-job mean, and the change.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Change {
    /// Base run.
    pub base: Option<f64>,
    /// New run.
    pub new: Option<f64>,
    /// `new − base` (scores, pass rates) or `new / base − 1` (tokens, time).
    pub change: Option<f64>,
}

/// The comparison of one task × trainer × variant group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupDelta {
    /// Task.
    pub task_id: String,
    /// Trainer.
    pub trainer_id: String,
    /// Params variant.
    pub variant_index: usize,
    /// The task's `eval_kwargs` (canonical JSON; empty when none).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub eval_kwargs: String,
    /// Seeds present in both runs.
    pub pairs: usize,
    /// Pairs where both jobs are ok with a `score_val` (the score delta's sample).
    pub scored_pairs: usize,
    /// Pairs whose job ids differ (the resolved kwargs changed between the runs).
    pub changed_config_pairs: usize,
    /// Mean `score_val` of the scored pairs; `change` is the mean paired difference.
    pub score_val: Change,
    /// Paired bootstrap 95% interval of the mean difference (two or more scored pairs).
    pub score_delta_ci95_low: Option<f64>,
    /// Upper end.
    pub score_delta_ci95_high: Option<f64>,
    /// ok / executed jobs of the group in each run; `change` is the difference.
    pub pass_rate: Change,
    /// Mean `total_tokens` over pairs executed in both runs; `change` is relative.
    pub tokens: Change,
    /// Mean `time_seconds` over the same pairs; `change` is relative.
    pub time_seconds: Change,
    /// `pass` or `fail`.
    pub verdict: &'static str,
}

/// One run as the gate names it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRef {
    /// The directory as given.
    pub run_dir: String,
    /// Its run id.
    pub run_id: String,
    /// Jobs with a result.
    pub jobs: usize,
}

/// The gate's result: what `gate.json` holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    /// Base run.
    pub base: RunRef,
    /// New run.
    pub new: RunRef,
    /// The limits used.
    pub thresholds: Thresholds,
    /// Jobs paired across the runs.
    pub paired_jobs: usize,
    /// Base jobs with no partner in the new run.
    pub missing_in_new: usize,
    /// New jobs with no partner in the base run.
    pub only_in_new: usize,
    /// Per group, base order then new-only groups.
    pub groups: Vec<GroupDelta>,
    /// Every finding, failures first.
    pub reasons: Vec<Reason>,
}

impl Gate {
    /// No reason fails the gate.
    pub fn passed(&self) -> bool {
        self.reasons.iter().all(|r| r.severity != Severity::Fail)
    }

    /// The `gate.json` document.
    pub fn to_json(&self) -> Json {
        json!({
            "verdict": if self.passed() { "pass" } else { "fail" },
            "base": self.base,
            "new": self.new,
            "paired_by": ["task_id", "eval_kwargs", "trainer_id", "variant_index", "seed"],
            "thresholds": self.thresholds,
            "statistics": {
                "score_delta": "mean of paired differences new - base of score_val",
                "ci": "paired percentile bootstrap of the mean difference",
                "ci_level": CI_LEVEL,
                "bootstrap_resamples": BOOTSTRAP_RESAMPLES,
            },
            "paired_jobs": self.paired_jobs,
            "missing_in_new": self.missing_in_new,
            "only_in_new": self.only_in_new,
            "failed_checks": self.reasons.iter().filter(|r| r.severity == Severity::Fail).count(),
            "warnings": self.reasons.iter().filter(|r| r.severity == Severity::Warn).count(),
            "reasons": self.reasons,
            "groups": self.groups,
        })
    }
}

/// Task, trainer, variant, and the task's `eval_kwargs` (canonical JSON, empty when
/// none): the same task listed twice with different `eval_kwargs` is two experiments.
type GroupKey = (String, String, usize, String);

fn group_key(r: &ResultRow) -> GroupKey {
    let eval_kwargs = if r.eval_kwargs.is_empty() {
        String::new()
    } else {
        crate::vocab::canonical::canonical_json(&serde_json::Value::Object(r.eval_kwargs.clone()))
    };
    (
        r.task_id.clone(),
        r.trainer_id.clone(),
        r.variant_index,
        eval_kwargs,
    )
}

/// Keys (with seed) that more than one job of a run has: such jobs cannot be paired
/// (e.g. one trainer listed twice with different optimizers), so the gate must not guess.
fn ambiguous(rows: &[&ResultRow]) -> Vec<(GroupKey, i64)> {
    let mut seen = HashSet::new();
    let mut out: Vec<(GroupKey, i64)> = rows
        .iter()
        .map(|r| (group_key(r), r.seed))
        .filter(|k| !seen.insert(k.clone()))
        .collect();
    out.dedup();
    out
}

fn executed(r: &ResultRow) -> bool {
    r.status != JobStatus::Skipped
}

/// Compare two loaded runs (the caller names them in [`RunRef`]s).
pub fn compare(base: &RunData, new: &RunData, names: (String, String), th: &Thresholds) -> Gate {
    let base_rows: Vec<&ResultRow> = base.jobs.iter().map(|j| &j.row).collect();
    let new_rows: Vec<&ResultRow> = new.jobs.iter().map(|j| &j.row).collect();
    let partners = Partners::new(&base_rows, &new_rows);
    let (order, members) = groups_in_order(&base_rows, &new_rows);
    let mut reasons = ambiguity_reasons(&base_rows, &new_rows);
    let mut groups = Vec::new();
    let mut paired_jobs = 0;
    let mut missing_in_new = 0;
    let mut only_in_new = 0;
    for key in order {
        let (b_rows, n_rows) = &members[&key];
        let pairs = partners.pairs(&key, b_rows);
        let missing = b_rows.len() - pairs.len();
        let extra = partners.only_in_new(&key, n_rows);
        paired_jobs += pairs.len();
        missing_in_new += missing;
        only_in_new += extra;
        let mut found = GroupFindings::new(&key, &mut reasons);
        report_unpaired(missing, extra, th, &mut found);
        let delta = judge_group(&key, &pairs, b_rows, n_rows, th, &mut found);
        groups.push(delta);
    }
    reasons.sort_by_key(|r| r.severity != Severity::Fail);
    let run_ref = |d: &RunData, name: String| RunRef {
        run_dir: name,
        run_id: d.manifest.run_id.to_string(),
        jobs: d.jobs.len(),
    };
    Gate {
        base: run_ref(base, names.0),
        new: run_ref(new, names.1),
        thresholds: th.clone(),
        paired_jobs,
        missing_in_new,
        only_in_new,
        groups,
        reasons,
    }
}

/// Base and new rows of each group.
type Members<'a> = BTreeMap<GroupKey, (Vec<&'a ResultRow>, Vec<&'a ResultRow>)>;

/// The groups in base order, then groups only the new run has, with their rows.
fn groups_in_order<'a>(
    base_rows: &[&'a ResultRow],
    new_rows: &[&'a ResultRow],
) -> (Vec<GroupKey>, Members<'a>) {
    let mut order: Vec<GroupKey> = Vec::new();
    let mut members: Members<'a> = BTreeMap::new();
    for r in base_rows {
        let k = group_key(r);
        if !members.contains_key(&k) {
            order.push(k.clone());
        }
        members.entry(k).or_default().0.push(r);
    }
    for r in new_rows {
        let k = group_key(r);
        if !members.contains_key(&k) {
            order.push(k.clone());
        }
        members.entry(k).or_default().1.push(r);
    }
    (order, members)
}

/// One failure per key (with seed) that several jobs of one run share, base run first.
fn ambiguity_reasons(base_rows: &[&ResultRow], new_rows: &[&ResultRow]) -> Vec<Reason> {
    let mut reasons = Vec::new();
    for (which, rows) in [("base", base_rows), ("new", new_rows)] {
        for (key, seed) in ambiguous(rows) {
            GroupFindings::new(&key, &mut reasons).push(
                Severity::Fail,
                "ambiguous",
                format!(
                    "the {which} run has several jobs for seed {seed} (the same trainer listed twice?); they cannot be paired"
                ),
                None,
                None,
            );
        }
    }
    reasons
}

/// Which jobs of the two runs share a group key and seed.
struct Partners<'a> {
    new_by_key: HashMap<(GroupKey, i64), &'a ResultRow>,
    base_keys: HashSet<(GroupKey, i64)>,
}

impl<'a> Partners<'a> {
    fn new(base_rows: &[&ResultRow], new_rows: &[&'a ResultRow]) -> Self {
        Self {
            new_by_key: new_rows
                .iter()
                .map(|r| ((group_key(r), r.seed), *r))
                .collect(),
            base_keys: base_rows.iter().map(|r| (group_key(r), r.seed)).collect(),
        }
    }

    /// The base rows of group `key` that have a partner, each with it.
    fn pairs<'b>(
        &self,
        key: &GroupKey,
        b_rows: &[&'b ResultRow],
    ) -> Vec<(&'b ResultRow, &'a ResultRow)> {
        b_rows
            .iter()
            .filter_map(|b| {
                self.new_by_key
                    .get(&(key.clone(), b.seed))
                    .map(|n| (*b, *n))
            })
            .collect()
    }

    /// New rows of group `key` without a base partner.
    fn only_in_new(&self, key: &GroupKey, n_rows: &[&ResultRow]) -> usize {
        n_rows
            .iter()
            .filter(|n| !self.base_keys.contains(&(key.clone(), n.seed)))
            .count()
    }
}

/// Jobs of a group that could not be paired: missing ones fail (or warn with
/// `allow_missing`), new-only ones warn.
fn report_unpaired(missing: usize, extra: usize, th: &Thresholds, found: &mut GroupFindings<'_>) {
    if missing > 0 {
        let severity = if th.allow_missing {
            Severity::Warn
        } else {
            Severity::Fail
        };
        found.push(
            severity,
            "missing",
            format!("{missing} base job(s) have no partner (same seed) in the new run"),
            Some(missing as f64),
            None,
        );
    }
    if extra > 0 {
        found.push(
            Severity::Warn,
            "unpaired",
            format!("{extra} new job(s) have no partner in the base run; not compared"),
            Some(extra as f64),
            None,
        );
    }
}

/// Collects the reasons of one group (and whether any failed).
struct GroupFindings<'a> {
    key: &'a GroupKey,
    reasons: &'a mut Vec<Reason>,
    failed: bool,
}

impl<'a> GroupFindings<'a> {
    fn new(key: &'a GroupKey, reasons: &'a mut Vec<Reason>) -> Self {
        Self {
            key,
            reasons,
            failed: false,
        }
    }

    fn push(
        &mut self,
        severity: Severity,
        check: &'static str,
        message: String,
        value: Option<f64>,
        limit: Option<f64>,
    ) {
        self.failed |= severity == Severity::Fail;
        let (task, trainer, variant, eval_kwargs) = self.key;
        let label = if eval_kwargs.is_empty() {
            format!("{task} / {trainer} [v{variant}]")
        } else {
            format!("{task} {eval_kwargs} / {trainer} [v{variant}]")
        };
        self.reasons.push(Reason {
            severity,
            check,
            task_id: task.clone(),
            trainer_id: trainer.clone(),
            variant_index: *variant,
            message: format!("{label}: {message}"),
            value,
            limit,
        });
    }
}

fn pass_rate(rows: &[&ResultRow]) -> Option<f64> {
    let executed: Vec<_> = rows.iter().filter(|r| executed(r)).collect();
    let ok = executed
        .iter()
        .filter(|r| r.status == JobStatus::Ok)
        .count();
    (!executed.is_empty()).then(|| ok as f64 / executed.len() as f64)
}

fn relative(base: Option<f64>, new: Option<f64>) -> Option<f64> {
    match (base, new) {
        (Some(b), Some(n)) if b > 0.0 => Some(n / b - 1.0),
        (Some(_), Some(n)) if n <= 0.0 => Some(0.0),
        _ => None,
    }
}

/// The delta of one group, its checks judged in a fixed order (score, pass rate, tokens,
/// time) so the reasons keep that order.
fn judge_group(
    key: &GroupKey,
    pairs: &[(&ResultRow, &ResultRow)],
    b_rows: &[&ResultRow],
    n_rows: &[&ResultRow],
    th: &Thresholds,
    found: &mut GroupFindings<'_>,
) -> GroupDelta {
    let (task, trainer, variant, eval_kwargs) = key;
    let changed_config_pairs = pairs.iter().filter(|(b, n)| b.job_id != n.job_id).count();
    let score = judge_score(key, pairs, th, found);
    let pass = judge_pass_rate(b_rows, n_rows, th, found);
    let both = executed_in_both(pairs);
    let tokens = judge_tokens(&both, th, found);
    let time = judge_time(&both, th, found);
    GroupDelta {
        task_id: task.clone(),
        trainer_id: trainer.clone(),
        variant_index: *variant,
        eval_kwargs: eval_kwargs.clone(),
        pairs: pairs.len(),
        scored_pairs: score.scored_pairs,
        changed_config_pairs,
        score_val: score.change,
        score_delta_ci95_low: score.ci.map(|c| c.0),
        score_delta_ci95_high: score.ci.map(|c| c.1),
        pass_rate: pass,
        tokens,
        time_seconds: time,
        verdict: if found.failed { "fail" } else { "pass" },
    }
}

/// The score part of a [`GroupDelta`].
struct ScoreDelta {
    change: Change,
    ci: Option<(f64, f64)>,
    scored_pairs: usize,
}

/// Scores: paired differences of ok jobs, with a seeded bootstrap interval; a drop fails
/// only when the interval lies below zero.
fn judge_score(
    key: &GroupKey,
    pairs: &[(&ResultRow, &ResultRow)],
    th: &Thresholds,
    found: &mut GroupFindings<'_>,
) -> ScoreDelta {
    let (task, trainer, variant, eval_kwargs) = key;
    let scored: Vec<(f64, f64)> = pairs
        .iter()
        .filter(|(b, n)| b.status == JobStatus::Ok && n.status == JobStatus::Ok)
        .filter_map(|(b, n)| Some((b.score_val?, n.score_val?)))
        .filter(|(b, n)| b.is_finite() && n.is_finite())
        .collect();
    let diffs: Vec<f64> = scored.iter().map(|(b, n)| n - b).collect();
    let mut rng = stats::bootstrap_rng(&format!(
        "compare/score_val/{task}/{trainer}/{variant}{eval_kwargs}"
    ));
    let ci = stats::bootstrap_mean_ci(&diffs, BOOTSTRAP_RESAMPLES, CI_LEVEL, &mut rng);
    let score = Change {
        base: stats::mean(&scored.iter().map(|p| p.0).collect::<Vec<_>>()),
        new: stats::mean(&scored.iter().map(|p| p.1).collect::<Vec<_>>()),
        change: stats::mean(&diffs),
    };
    if let (Some(limit), Some(d)) = (th.max_score_drop, score.change)
        && d < -limit - EPS
    {
        let ci_text = ci.map_or_else(
            || "no interval with one pair".to_string(),
            |(lo, hi)| format!("95% CI [{lo:.4}, {hi:.4}]"),
        );
        let significant = ci.is_none_or(|(_, hi)| hi < 0.0);
        let (severity, verdict) = if significant {
            (Severity::Fail, "the interval lies below zero")
        } else {
            (
                Severity::Warn,
                "not significant: the interval includes zero",
            )
        };
        found.push(
            severity,
            "score",
            format!(
                "mean score_val changed by {d:+.4} over {} paired seed(s) ({ci_text}); allowed drop {limit}; {verdict}",
                diffs.len()
            ),
            Some(d),
            Some(limit),
        );
    }
    ScoreDelta {
        change: score,
        ci,
        scored_pairs: diffs.len(),
    }
}

/// Pass rate over all executed jobs of the group in each run.
fn judge_pass_rate(
    b_rows: &[&ResultRow],
    n_rows: &[&ResultRow],
    th: &Thresholds,
    found: &mut GroupFindings<'_>,
) -> Change {
    let (bp, np) = (pass_rate(b_rows), pass_rate(n_rows));
    let pass = Change {
        base: bp,
        new: np,
        change: bp.zip(np).map(|(b, n)| n - b),
    };
    if let (Some(limit), Some(c)) = (th.max_pass_rate_drop, pass.change)
        && c < -limit - EPS
    {
        found.push(
            Severity::Fail,
            "pass_rate",
            format!(
                "pass rate fell from {:.0}% to {:.0}%; allowed drop {limit}",
                bp.unwrap_or(0.0) * 100.0,
                np.unwrap_or(0.0) * 100.0
            ),
            Some(c),
            Some(limit),
        );
    }
    pass
}

/// Resources are compared over pairs executed in both runs.
fn executed_in_both<'p, 'r>(
    pairs: &'p [(&'r ResultRow, &'r ResultRow)],
) -> Vec<&'p (&'r ResultRow, &'r ResultRow)> {
    pairs
        .iter()
        .filter(|(b, n)| executed(b) && executed(n))
        .collect()
}

/// Base and new mean of `f` over `both`.
fn means(
    both: &[&(&ResultRow, &ResultRow)],
    f: &dyn Fn(&ResultRow) -> f64,
) -> (Option<f64>, Option<f64>) {
    (
        stats::mean(&both.iter().map(|(b, _)| f(b)).collect::<Vec<_>>()),
        stats::mean(&both.iter().map(|(_, n)| f(n)).collect::<Vec<_>>()),
    )
}

/// Mean tokens per job; growth beyond the limit fails.
fn judge_tokens(
    both: &[&(&ResultRow, &ResultRow)],
    th: &Thresholds,
    found: &mut GroupFindings<'_>,
) -> Change {
    let (bt, nt) = means(both, &|r| r.total_tokens as f64);
    let tokens = Change {
        base: bt,
        new: nt,
        change: relative(bt, nt),
    };
    if let (Some(limit), Some(b), Some(n)) = (th.max_token_increase, bt, nt) {
        let grew = tokens.change.is_none_or(|c| c > limit + EPS);
        if grew && n > b {
            found.push(
                Severity::Fail,
                "tokens",
                format!(
                    "mean tokens per job grew from {b:.1} to {n:.1} ({}); allowed +{:.0}%",
                    percent(tokens.change),
                    limit * 100.0
                ),
                tokens.change,
                Some(limit),
            );
        }
    }
    tokens
}

/// Mean seconds per job; growth beyond the limit fails unless within the grace seconds.
fn judge_time(
    both: &[&(&ResultRow, &ResultRow)],
    th: &Thresholds,
    found: &mut GroupFindings<'_>,
) -> Change {
    let (bs, ns) = means(both, &|r| r.time_seconds);
    let time = Change {
        base: bs,
        new: ns,
        change: relative(bs, ns),
    };
    if let (Some(limit), Some(b), Some(n)) = (th.max_time_increase, bs, ns) {
        let grew = time.change.is_none_or(|c| c > limit + EPS);
        if grew && n - b > th.time_grace_seconds + EPS {
            found.push(
                Severity::Fail,
                "time",
                format!(
                    "mean seconds per job grew from {b:.3} to {n:.3} ({}); allowed +{:.0}% beyond {} s",
                    percent(time.change),
                    limit * 100.0,
                    th.time_grace_seconds
                ),
                time.change,
                Some(limit),
            );
        }
    }
    time
}

fn percent(change: Option<f64>) -> String {
    change.map_or_else(
        || "from zero".to_string(),
        |c| format!("{:+.1}%", c * 100.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifacts::layout::RunDir;
    use crate::results::JobResults;
    use crate::results::row::sample_row;

    fn run(rows: Vec<ResultRow>) -> RunData {
        let manifest = serde_json::from_value(json!({
            "run_id": "r", "tool": "trace-bench", "tool_version": "0", "config_hash": "h",
            "mode": "stub", "tags": [], "created_at": "x", "generated_at": "x",
            "finished_at": null, "jobs": []
        }))
        .unwrap();
        RunData {
            dir: RunDir::at("r"),
            manifest,
            jobs: rows
                .into_iter()
                .map(|row| JobResults {
                    row,
                    history: Vec::new(),
                })
                .collect(),
            missing: 0,
        }
    }

    fn rows(scores: &[f64]) -> Vec<ResultRow> {
        scores
            .iter()
            .enumerate()
            .map(|(i, s)| sample_row("t", "A", 0, i as i64, Some(*s)))
            .collect()
    }

    fn gate(base: Vec<ResultRow>, new: Vec<ResultRow>, th: &Thresholds) -> Gate {
        compare(&run(base), &run(new), ("b".into(), "n".into()), th)
    }

    fn checks(g: &Gate) -> Vec<(&'static str, Severity)> {
        g.reasons.iter().map(|r| (r.check, r.severity)).collect()
    }

    #[test]
    fn a_run_against_itself_passes_with_zero_deltas() {
        let g = gate(
            rows(&[1.0, 2.0, 3.0]),
            rows(&[1.0, 2.0, 3.0]),
            &Thresholds::default(),
        );
        assert!(g.passed());
        assert!(g.reasons.is_empty());
        let d = &g.groups[0];
        assert_eq!((d.pairs, d.scored_pairs, d.changed_config_pairs), (3, 3, 0));
        assert_eq!(d.score_val.change, Some(0.0));
        assert_eq!(
            (d.score_delta_ci95_low, d.score_delta_ci95_high),
            (Some(0.0), Some(0.0))
        );
        assert_eq!(d.tokens.change, Some(0.0));
        assert_eq!(g.to_json()["verdict"], "pass");
    }

    #[test]
    fn a_consistent_score_drop_fails_and_a_noisy_one_warns() {
        let g = gate(
            rows(&[1.0, 2.0, 3.0]),
            rows(&[0.5, 1.5, 2.5]),
            &Thresholds::default(),
        );
        assert!(!g.passed());
        assert_eq!(checks(&g), [("score", Severity::Fail)]);
        let d = &g.groups[0];
        assert_eq!(d.score_val.change, Some(-0.5));
        assert_eq!(d.score_delta_ci95_high, Some(-0.5));
        assert_eq!(d.verdict, "fail");
        let json = g.to_json();
        assert_eq!(json["verdict"], "fail");
        assert_eq!(json["reasons"][0]["value"], -0.5);
        // Tolerated by a larger allowed drop.
        let lenient = Thresholds {
            max_score_drop: Some(0.6),
            ..Thresholds::default()
        };
        assert!(gate(rows(&[1.0, 2.0, 3.0]), rows(&[0.5, 1.5, 2.5]), &lenient).passed());
        // Differences -1, +0.8, -0.1: mean -0.1, the interval holds zero.
        let g = gate(
            rows(&[1.0, 1.0, 1.0]),
            rows(&[0.0, 1.8, 0.9]),
            &Thresholds::default(),
        );
        assert!(g.passed());
        assert_eq!(checks(&g), [("score", Severity::Warn)]);
    }

    #[test]
    fn pass_rate_tokens_time_and_missing_jobs_are_judged() {
        let mut new = rows(&[1.0, 2.0, 3.0]);
        new[2].status = JobStatus::Failed;
        new[0].total_tokens = 30;
        new[1].total_tokens = 30;
        new[0].time_seconds = 10.0;
        let g = gate(rows(&[1.0, 2.0, 3.0]), new.clone(), &Thresholds::default());
        assert_eq!(
            checks(&g),
            [
                ("pass_rate", Severity::Fail),
                ("tokens", Severity::Fail),
                ("time", Severity::Fail)
            ]
        );
        let d = &g.groups[0];
        assert!((d.pass_rate.change.unwrap() + 1.0 / 3.0).abs() < 1e-12);
        // (30 + 30 + 15) / 3 = 25 vs 15
        assert!((d.tokens.change.unwrap() - (25.0 / 15.0 - 1.0)).abs() < 1e-12);
        let off = Thresholds {
            max_pass_rate_drop: None,
            max_token_increase: None,
            max_time_increase: None,
            ..Thresholds::default()
        };
        assert!(gate(rows(&[1.0, 2.0, 3.0]), new, &off).passed());

        let g = gate(
            rows(&[1.0, 2.0, 3.0]),
            rows(&[1.0, 2.0]),
            &Thresholds::default(),
        );
        assert_eq!(checks(&g), [("missing", Severity::Fail)]);
        assert_eq!((g.missing_in_new, g.paired_jobs), (1, 2));
        let allow = Thresholds {
            allow_missing: true,
            ..Thresholds::default()
        };
        let g = gate(rows(&[1.0, 2.0]), rows(&[1.0, 2.0, 3.0]), &allow);
        assert!(g.passed());
        assert_eq!(checks(&g), [("unpaired", Severity::Warn)]);
    }

    #[test]
    fn thresholds_load_from_yaml_with_located_errors() {
        let mut t = Thresholds::default();
        t.apply_yaml(
            "th.yaml",
            "max_score_drop: 0.05\nmax_token_increase: off\nmax_time_increase: null\ntime_grace_seconds: 2\nallow_missing: true\n",
        )
        .unwrap();
        assert_eq!(t.max_score_drop, Some(0.05));
        assert_eq!((t.max_token_increase, t.max_time_increase), (None, None));
        assert_eq!((t.time_grace_seconds, t.allow_missing), (2.0, true));
        let err = t
            .apply_yaml("th.yaml", "max_score_drop: 0\nmax_tokens_increase: 1\n")
            .unwrap_err();
        assert!(
            err.starts_with("th.yaml:2:1: unknown threshold `max_tokens_increase`"),
            "{err}"
        );
        assert!(err.contains("did you mean `max_token_increase`"), "{err}");
        let err = t.apply_yaml("th.yaml", "max_score_drop: -1\n").unwrap_err();
        assert!(err.starts_with("th.yaml:1:17:"), "{err}");
        assert!(t.apply_yaml("th.yaml", "[1, 2]\n").is_err());
        assert!(t.apply_yaml("th.yaml", "a: [\n").is_err());
        t.apply_yaml("th.yaml", "").unwrap();
    }
}
