//! `summary.json` and the leaderboard, accumulated one job row at a time.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value as Json, json};

use super::row::ResultRow;
use crate::artifacts::manifest::Manifest;
use crate::events::JobStatus;

/// Statistics of one task × trainer group over its jobs (seeds and variants).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GroupStats {
    /// Task id.
    pub task_id: String,
    /// Trainer id.
    pub trainer_id: String,
    /// Jobs with a result.
    pub jobs: usize,
    /// Jobs with status ok.
    pub ok: usize,
    /// `score_val` of the ok jobs.
    #[serde(skip)]
    pub scores: Vec<f64>,
    /// Mean `score_val` over ok jobs.
    pub mean: Option<f64>,
    /// Sample standard deviation (n-1); `None` below two jobs.
    pub std: Option<f64>,
    /// Lowest.
    pub min: Option<f64>,
    /// Highest.
    pub max: Option<f64>,
    /// Job with the highest `score_val` (first in matrix order on ties).
    pub best_job_id: Option<String>,
}

impl GroupStats {
    fn finish(&mut self) {
        let n = self.scores.len();
        if n == 0 {
            return;
        }
        let mean = self.scores.iter().sum::<f64>() / n as f64;
        self.mean = Some(mean);
        self.std = (n > 1).then(|| {
            (self.scores.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        });
        self.min = self.scores.iter().copied().reduce(f64::min);
        self.max = self.scores.iter().copied().reduce(f64::max);
    }
}

/// One leaderboard line: the best ok job of a task × trainer × optimizer.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderboardEntry {
    /// Task id.
    pub task_id: String,
    /// Suite.
    pub suite: String,
    /// Best job.
    pub job_id: String,
    /// Trainer id.
    pub trainer_id: String,
    /// Prompt protocol.
    pub resolved_optimizer: String,
    /// Its score.
    pub score_val: Option<f64>,
    /// Its test score.
    pub score_test: Option<f64>,
    /// Its time.
    pub time_seconds: f64,
}

/// The run summary being accumulated.
#[derive(Debug, Clone)]
pub struct Summary {
    run_id: String,
    mode: String,
    tags: Vec<String>,
    planned: usize,
    missing: usize,
    /// Count per status.
    pub counts: BTreeMap<String, usize>,
    rows: usize,
    prompt_tokens: u64,
    completion_tokens: u64,
    llm_calls: u64,
    evaluator_calls: u64,
    time_seconds: f64,
    stub_rows: usize,
    groups: Vec<GroupStats>,
    best: Vec<LeaderboardEntry>,
}

impl Summary {
    /// An empty summary for a manifest's run.
    pub fn new(manifest: &Manifest) -> Self {
        let counts = ["ok", "failed", "skipped"]
            .iter()
            .map(|s| (s.to_string(), 0))
            .collect();
        Self {
            run_id: manifest.run_id.clone(),
            mode: manifest.mode.clone(),
            tags: manifest.tags.clone(),
            planned: manifest.jobs.len(),
            missing: 0,
            counts,
            rows: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            llm_calls: 0,
            evaluator_calls: 0,
            time_seconds: 0.0,
            stub_rows: 0,
            groups: Vec::new(),
            best: Vec::new(),
        }
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

    /// Account one job row.
    pub fn add(&mut self, row: &ResultRow) {
        self.rows += 1;
        *self
            .counts
            .entry(row.status.as_str().to_string())
            .or_insert(0) += 1;
        self.prompt_tokens += row.prompt_tokens;
        self.completion_tokens += row.completion_tokens;
        self.llm_calls += row.llm_calls;
        self.evaluator_calls += row.evaluator_calls;
        self.time_seconds += row.time_seconds;
        self.stub_rows += usize::from(row.llm_stub);
        let group = match self
            .groups
            .iter()
            .position(|g| g.task_id == row.task_id && g.trainer_id == row.trainer_id)
        {
            Some(i) => &mut self.groups[i],
            None => {
                self.groups.push(GroupStats {
                    task_id: row.task_id.clone(),
                    trainer_id: row.trainer_id.clone(),
                    ..GroupStats::default()
                });
                self.groups.last_mut().expect("pushed")
            }
        };
        group.jobs += 1;
        if row.status != JobStatus::Ok {
            return;
        }
        group.ok += 1;
        if let Some(s) = row.score_val {
            let is_best = group.scores.iter().all(|x| s > *x);
            group.scores.push(s);
            if is_best {
                group.best_job_id = Some(row.job_id.clone());
            }
        }
        self.add_to_leaderboard(row);
    }

    fn add_to_leaderboard(&mut self, row: &ResultRow) {
        let optimizer = row.resolved_optimizer.clone().unwrap_or_default();
        let entry = LeaderboardEntry {
            task_id: row.task_id.clone(),
            suite: row.suite.clone(),
            job_id: row.job_id.clone(),
            trainer_id: row.trainer_id.clone(),
            resolved_optimizer: optimizer,
            score_val: row.score_val,
            score_test: row.score_test,
            time_seconds: row.time_seconds,
        };
        let key = |e: &LeaderboardEntry| {
            (
                e.task_id.clone(),
                e.trainer_id.clone(),
                e.resolved_optimizer.clone(),
            )
        };
        let score = |e: &LeaderboardEntry| e.score_val.unwrap_or(f64::NEG_INFINITY);
        match self.best.iter_mut().find(|e| key(e) == key(&entry)) {
            Some(existing) if score(&entry) > score(existing) => *existing = entry,
            Some(_) => {}
            None => self.best.push(entry),
        }
    }

    /// Best ok job per task × trainer × optimizer, by task then score (descending).
    pub fn leaderboard(&self) -> Vec<LeaderboardEntry> {
        let mut out = self.best.clone();
        out.sort_by(|a, b| {
            a.task_id.cmp(&b.task_id).then(
                b.score_val
                    .unwrap_or(f64::NEG_INFINITY)
                    .total_cmp(&a.score_val.unwrap_or(f64::NEG_INFINITY)),
            )
        });
        out
    }

    /// Per task × trainer statistics, in first-seen (matrix) order.
    pub fn groups(&self) -> Vec<GroupStats> {
        self.groups
            .iter()
            .cloned()
            .map(|mut g| {
                g.finish();
                g
            })
            .collect()
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
            "mode": self.mode,
            "planned_jobs": self.planned,
            "jobs_without_results": self.missing,
            "llm_calls": self.llm_calls,
            "evaluator_calls": self.evaluator_calls,
            "job_seconds_total": (self.time_seconds * 1e6).round() / 1e6,
            "groups": self.groups(),
        })
    }
}
