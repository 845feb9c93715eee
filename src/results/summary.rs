//! `summary.json` and the leaderboard, accumulated one job row at a time.
//!
//! Statistics are per task × trainer × params variant over seeds: researchers compare
//! optimizers on many seeds, so a group keeps every score (one float per job) and reports
//! mean, spread and a seeded bootstrap interval ([`crate::stats`]).

use std::cell::OnceCell;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value as Json, json};

use super::row::ResultRow;
use crate::results::manifest::{Manifest, ManifestHead};
use crate::stats::{self, Describe};
use crate::vocab::Kwargs;
use crate::vocab::{JobId, JobStatus};

/// Statistics of one task × trainer × variant group over its jobs (its seeds).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroupStats {
    /// Task id.
    pub task_id: String,
    /// Trainer id.
    pub trainer_id: String,
    /// Params variant index within the trainer entry (0-based).
    pub variant_index: usize,
    /// The variant as written (`raw_params`).
    pub params: Kwargs,
    /// The task's `eval_kwargs`: the same task listed twice with different ones (e.g. two
    /// objective modes) is two groups.
    #[serde(skip_serializing_if = "Kwargs::is_empty")]
    pub eval_kwargs: Kwargs,
    /// Suite of the task.
    pub suite: String,
    /// Prompt protocol of the first ok job.
    pub resolved_optimizer: Option<String>,
    /// Jobs with a result.
    pub jobs: usize,
    /// Jobs with status ok.
    pub ok: usize,
    /// Jobs with status failed or timeout.
    pub failed: usize,
    /// Jobs skipped by design.
    pub skipped: usize,
    /// `score_val` over ok jobs.
    pub score_val: Describe,
    /// `score_test` over ok jobs with a test split.
    pub score_test: Describe,
    /// Mean `time_seconds` over executed (not skipped) jobs.
    pub mean_time_seconds: Option<f64>,
    /// Mean `total_tokens` over executed jobs.
    pub mean_tokens: Option<f64>,
    /// Mean `cost_usd` over jobs that have one.
    pub mean_cost_usd: Option<f64>,
    /// Ok job with the highest `score_val` (first in matrix order on ties).
    pub best_job_id: Option<JobId>,
    /// Its `score_val`.
    pub best_score_val: Option<f64>,
    #[serde(skip)]
    acc: Accumulator,
}

/// Raw values kept while rows stream in.
#[derive(Debug, Clone, Default, PartialEq)]
struct Accumulator {
    score_val: Vec<f64>,
    score_test: Vec<f64>,
    time: Vec<f64>,
    tokens: Vec<f64>,
    cost: Vec<f64>,
    best: Option<BestJob>,
}

/// What the leaderboard shows of a group's best job.
#[derive(Debug, Clone, PartialEq)]
pub struct BestJob {
    /// Job id.
    pub job_id: JobId,
    /// Its `score_val`.
    pub score_val: f64,
    /// Its `score_test`.
    pub score_test: Option<f64>,
    /// Its `time_seconds`.
    pub time_seconds: f64,
}

impl GroupStats {
    /// Display name: the trainer, plus the variant when the trainer has several.
    pub fn label(&self, several_variants: bool) -> String {
        let base = if several_variants {
            format!("{} [v{}]", self.trainer_id, self.variant_index)
        } else {
            self.trainer_id.clone()
        };
        if self.eval_kwargs.is_empty() {
            base
        } else {
            let kwargs = crate::vocab::canonical::canonical_json(&serde_json::Value::Object(
                self.eval_kwargs.clone(),
            ));
            format!("{base} {kwargs}")
        }
    }

    /// The stream label of this group's bootstrap for `metric`.
    fn key(&self, metric: &str) -> String {
        format!(
            "{metric}/{}/{}/{}",
            self.task_id, self.trainer_id, self.variant_index
        )
    }

    fn finish(&mut self) {
        let a = &self.acc;
        self.score_val = Describe::of(&a.score_val, &self.key("score_val"));
        self.score_test = Describe::of(&a.score_test, &self.key("score_test"));
        self.mean_time_seconds = stats::mean(&a.time).map(round6);
        self.mean_tokens = stats::mean(&a.tokens);
        self.mean_cost_usd = stats::mean(&a.cost);
        self.best_job_id = a.best.as_ref().map(|b| b.job_id.clone());
        self.best_score_val = a.best.as_ref().map(|b| b.score_val);
    }

    /// The best ok job (ties: first in matrix order), if any job scored.
    pub fn best_job(&self) -> Option<&BestJob> {
        self.acc.best.as_ref()
    }
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// One leaderboard line: a group ranked within its task by mean `score_val`.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderboardEntry {
    /// Rank within the task (1 = best mean; equal means share a rank).
    pub rank: usize,
    /// The group.
    pub group: GroupStats,
}

/// The run summary being accumulated.
#[derive(Debug, Clone)]
pub struct Summary {
    run_id: String,
    mode: String,
    tags: Vec<String>,
    planned: usize,
    missing: usize,
    created_at: String,
    finished_at: Option<String>,
    /// Count per status.
    pub counts: BTreeMap<String, usize>,
    rows: usize,
    prompt_tokens: u64,
    completion_tokens: u64,
    cost_usd: Option<f64>,
    llm_calls: u64,
    /// The agent's and the endpoint's counts over all jobs (`llm_accounting`).
    accounting: Accounting,
    evaluator_calls: u64,
    time_seconds: f64,
    stub_rows: usize,
    groups: Vec<GroupStats>,
    /// Finished groups, computed once (the bootstrap is the costly part) and reset by `add`.
    finished: OnceCell<Vec<GroupStats>>,
}

/// Run totals of what the agent consumed and what the endpoint billed (summary.json
/// `llm_accounting`; the optimizer's consumed tokens are `token_totals`).
#[derive(Debug, Clone, Default, serde::Serialize)]
struct Accounting {
    agent_calls: u64,
    agent_prompt_tokens: u64,
    agent_completion_tokens: u64,
    billed_prompt_tokens: u64,
    billed_completion_tokens: u64,
    cached_calls: u64,
    llm_retries: u64,
    failed_llm_calls: u64,
}

impl Accounting {
    fn add(&mut self, row: &ResultRow) {
        self.agent_calls += row.agent_calls;
        self.agent_prompt_tokens += row.agent_prompt_tokens;
        self.agent_completion_tokens += row.agent_completion_tokens;
        self.billed_prompt_tokens += row.billed_prompt_tokens;
        self.billed_completion_tokens += row.billed_completion_tokens;
        self.cached_calls += row.cached_calls;
        self.llm_retries += row.llm_retries;
        self.failed_llm_calls += row.failed_llm_calls;
    }
}

impl Summary {
    /// An empty summary for a manifest's run.
    pub fn new(manifest: &Manifest) -> Self {
        let mut summary = Self::from_head(&manifest.head());
        summary.set_planned(manifest.jobs.len());
        summary
    }

    /// An empty summary of the run a manifest's head describes (its job count is set by
    /// [`Summary::set_planned`] once the jobs have streamed past).
    pub fn from_head(head: &ManifestHead) -> Self {
        let counts = ["ok", "failed", "skipped"]
            .iter()
            .map(|s| (s.to_string(), 0))
            .collect();
        Self {
            run_id: head.run_id.to_string(),
            mode: head.mode.clone(),
            tags: head.tags.clone(),
            planned: 0,
            missing: 0,
            created_at: head.created_at.clone(),
            finished_at: head.finished_at.clone(),
            counts,
            rows: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            cost_usd: None,
            llm_calls: 0,
            accounting: Accounting::default(),
            evaluator_calls: 0,
            time_seconds: 0.0,
            stub_rows: 0,
            groups: Vec::new(),
            finished: OnceCell::new(),
        }
    }

    /// The number of planned jobs.
    pub fn set_planned(&mut self, planned: usize) {
        self.planned = planned;
        self.finished = OnceCell::new();
    }

    /// The run id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// A planned job has no result.
    pub fn add_missing(&mut self) {
        self.missing += 1;
    }

    /// Jobs with a result.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Jobs whose status is failed or timeout.
    pub fn failures(&self) -> usize {
        self.counts.get("failed").copied().unwrap_or(0)
            + self.counts.get("timeout").copied().unwrap_or(0)
    }

    /// Jobs that ran at all (ok, failed or timed out): zero when every job was skipped.
    pub fn ran(&self) -> usize {
        self.counts.get("ok").copied().unwrap_or(0) + self.failures()
    }

    /// Account one job row.
    pub fn add(&mut self, row: &ResultRow) {
        self.finished = OnceCell::new();
        self.rows += 1;
        *self
            .counts
            .entry(row.status.as_str().to_string())
            .or_insert(0) += 1;
        self.prompt_tokens += row.prompt_tokens;
        self.completion_tokens += row.completion_tokens;
        if let Some(c) = row.cost_usd {
            *self.cost_usd.get_or_insert(0.0) += c;
        }
        self.llm_calls += row.llm_calls;
        self.accounting.add(row);
        self.evaluator_calls += row.evaluator_calls;
        self.time_seconds += row.time_seconds;
        self.stub_rows += usize::from(row.llm_stub);
        let g = self.group_of(row);
        g.jobs += 1;
        match row.status {
            JobStatus::Ok => g.ok += 1,
            JobStatus::Failed | JobStatus::Timeout => g.failed += 1,
            JobStatus::Skipped => g.skipped += 1,
            JobStatus::Cancelled => {}
        }
        if row.status != JobStatus::Skipped {
            g.acc.time.push(row.time_seconds);
            g.acc.tokens.push(row.total_tokens as f64);
            if let Some(c) = row.cost_usd {
                g.acc.cost.push(c);
            }
        }
        if row.status != JobStatus::Ok {
            return;
        }
        if g.resolved_optimizer.is_none() {
            g.resolved_optimizer = row.resolved_optimizer.clone();
        }
        if let Some(t) = row.score_test {
            g.acc.score_test.push(t);
        }
        if let Some(s) = row.score_val {
            g.acc.score_val.push(s);
            if g.acc.best.as_ref().is_none_or(|b| s > b.score_val) {
                g.acc.best = Some(BestJob {
                    job_id: row.job_id.clone(),
                    score_val: s,
                    score_test: row.score_test,
                    time_seconds: row.time_seconds,
                });
            }
        }
    }

    fn group_of(&mut self, row: &ResultRow) -> &mut GroupStats {
        let found = self.groups.iter().position(|g| {
            g.task_id == row.task_id
                && g.trainer_id == row.trainer_id
                && g.variant_index == row.variant_index
                && g.eval_kwargs == row.eval_kwargs
        });
        let i = found.unwrap_or_else(|| {
            self.groups.push(GroupStats {
                task_id: row.task_id.clone(),
                trainer_id: row.trainer_id.clone(),
                variant_index: row.variant_index,
                params: row.raw_params.clone(),
                eval_kwargs: row.eval_kwargs.clone(),
                suite: row.suite.clone(),
                ..GroupStats::default()
            });
            self.groups.len() - 1
        });
        &mut self.groups[i]
    }

    /// Per task × trainer × variant statistics, in first-seen (matrix) order.
    pub fn groups(&self) -> Vec<GroupStats> {
        self.finished
            .get_or_init(|| {
                self.groups
                    .iter()
                    .cloned()
                    .map(|mut g| {
                        g.finish();
                        g
                    })
                    .collect()
            })
            .clone()
    }

    /// Whether a trainer appears with more than one variant (labels then name the variant).
    pub fn several_variants(&self, trainer_id: &str) -> bool {
        let mut variants = self
            .groups
            .iter()
            .filter(|g| g.trainer_id == trainer_id)
            .map(|g| g.variant_index);
        variants
            .next()
            .is_some_and(|first| variants.any(|v| v != first))
    }

    /// Groups with a mean `score_val`, per task (ascending id) ranked by mean (descending);
    /// equal means share a rank ("1224"), and keep matrix order among themselves.
    pub fn leaderboard(&self) -> Vec<LeaderboardEntry> {
        let mut scored: Vec<GroupStats> = self
            .groups()
            .into_iter()
            .filter(|g| g.score_val.mean.is_some())
            .collect();
        let mean = |g: &GroupStats| g.score_val.mean.unwrap_or(f64::NEG_INFINITY);
        scored.sort_by(|a, b| a.task_id.cmp(&b.task_id).then(mean(b).total_cmp(&mean(a))));
        let mut out: Vec<LeaderboardEntry> = Vec::with_capacity(scored.len());
        let mut task_start = 0;
        for (i, g) in scored.into_iter().enumerate() {
            let rank = match out.last() {
                Some(prev) if prev.group.task_id == g.task_id && mean(&prev.group) == mean(&g) => {
                    prev.rank
                }
                Some(prev) if prev.group.task_id == g.task_id => i - task_start + 1,
                _ => {
                    task_start = i;
                    1
                }
            };
            out.push(LeaderboardEntry { rank, group: g });
        }
        out
    }

    /// Seconds from planning to the end of the last invocation (manifest timestamps).
    fn wall_seconds(&self) -> Option<f64> {
        let start = humantime::parse_rfc3339(&self.created_at).ok()?;
        let end = humantime::parse_rfc3339(self.finished_at.as_deref()?).ok()?;
        let d = end.duration_since(start).ok()?;
        Some(round6(d.as_secs_f64()))
    }

    /// The `summary.json` document (the reference's keys first).
    pub fn to_json(&self) -> Json {
        let scope = match (self.stub_rows, self.rows) {
            (0, _) => super::row::TOKEN_SCOPE_REAL,
            (s, r) if s == r => super::row::TOKEN_SCOPE_STUB,
            _ => "mixed",
        };
        json!({
            "counts": self.counts,
            "total_jobs": self.rows,
            "token_totals": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
            },
            "run_id": self.run_id,
            "tags": self.tags,
            "token_scope": scope,
            "cost_usd": self.cost_usd,
            "llm_accounting": self.accounting,
            "mode": self.mode,
            "planned_jobs": self.planned,
            "jobs_without_results": self.missing,
            "llm_calls": self.llm_calls,
            "evaluator_calls": self.evaluator_calls,
            "job_seconds_total": round6(self.time_seconds),
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "wall_seconds": self.wall_seconds(),
            "statistics": {
                "group_by": ["task_id", "eval_kwargs", "trainer_id", "variant_index"],
                "ci": "percentile bootstrap of the mean",
                "ci_level": stats::CI_LEVEL,
                "bootstrap_resamples": stats::BOOTSTRAP_RESAMPLES,
                "std": "sample (n-1)",
            },
            "groups": self.groups(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(task: &str, trainer: &str, variant: usize, seed: i64, score: Option<f64>) -> ResultRow {
        let mut r = super::super::row::sample_row(task, trainer, variant, seed, score);
        if score.is_none() {
            r.status = JobStatus::Failed;
        }
        r
    }

    fn manifest() -> Manifest {
        serde_json::from_value(json!({
            "run_id": "r", "tool": "trace-bench", "tool_version": "0", "config_hash": "h",
            "mode": "stub", "tags": [], "created_at": "2026-01-01T00:00:00Z",
            "generated_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:01:30.5Z",
            "jobs": []
        }))
        .unwrap()
    }

    #[test]
    fn groups_hold_hand_computed_statistics() {
        let mut s = Summary::new(&manifest());
        for (seed, score) in [(1, -1.0), (2, -3.0), (3, -2.0), (4, -6.0)] {
            s.add(&row("t", "A", 0, seed, Some(score)));
        }
        s.add(&row("t", "A", 0, 5, None));
        s.add(&row("t", "A", 1, 1, Some(0.0)));
        let groups = s.groups();
        assert_eq!(groups.len(), 2, "variants are separate groups");
        let g = &groups[0];
        assert_eq!((g.jobs, g.ok, g.failed, g.skipped), (5, 4, 1, 0));
        let d = &g.score_val;
        assert_eq!(d.n, 4);
        assert_eq!(d.mean, Some(-3.0));
        // deviations 2, 0, 1, -3 → 14 / 3
        assert!((d.std.unwrap() - (14.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!(
            (d.min, d.max, d.median),
            (Some(-6.0), Some(-1.0), Some(-2.5))
        );
        let (lo, hi) = (d.ci95_low.unwrap(), d.ci95_high.unwrap());
        assert!(lo < -3.0 && -3.0 < hi && lo >= -6.0 && hi <= -1.0);
        assert_eq!(g.best_job_id.as_ref().map(JobId::as_str), Some("t-A-0-1"));
        assert_eq!(g.best_score_val, Some(-1.0));
        assert_eq!(g.mean_time_seconds, Some(2.0));
        assert_eq!(g.mean_tokens, Some(15.0));
        assert_eq!(g.mean_cost_usd, None);
        assert_eq!(s.groups(), groups, "finishing twice gives the same numbers");
        let j = s.to_json();
        assert_eq!(j["wall_seconds"], 90.5);
        assert_eq!(j["cost_usd"], Json::Null);
        let keys: Vec<&String> = j.as_object().unwrap().keys().take(6).collect();
        assert_eq!(
            keys,
            [
                "counts",
                "total_jobs",
                "token_totals",
                "run_id",
                "tags",
                "token_scope"
            ]
        );
    }

    #[test]
    fn leaderboard_ranks_by_mean_within_each_task() {
        let mut s = Summary::new(&manifest());
        for (task, trainer, scores) in [
            ("b", "A", [1.0, 3.0]),
            ("b", "B", [2.0, 4.0]),
            ("b", "C", [3.0, 1.0]),
            ("a", "A", [0.0, 0.0]),
        ] {
            for (i, x) in scores.into_iter().enumerate() {
                let mut r = row(task, trainer, 0, i as i64, Some(x));
                r.cost_usd = Some(0.25);
                s.add(&r);
            }
        }
        s.add(&row("a", "B", 0, 1, None));
        let board: Vec<(String, String, usize)> = s
            .leaderboard()
            .into_iter()
            .map(|e| (e.group.task_id, e.group.trainer_id, e.rank))
            .collect();
        let want = [("a", "A", 1), ("b", "B", 1), ("b", "A", 2), ("b", "C", 2)];
        let want: Vec<(String, String, usize)> = want
            .iter()
            .map(|(a, b, r)| (a.to_string(), b.to_string(), *r))
            .collect();
        assert_eq!(
            board, want,
            "ties share a rank; groups without a score are left out"
        );
        assert_eq!(s.to_json()["cost_usd"], 2.0);
    }
}
