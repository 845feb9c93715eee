//! Run summaries for the web app: every run directory under the runs dir with its live
//! status counts, read as `runner::status` reads them (the manifest's plan, each job's
//! `job_meta.json` when it finished, its directory alone while it runs), and the jobs
//! table of one run. Reading is cached by modification time so that a list of many runs
//! and a run of 10,000 jobs answer quickly on every refresh: a manifest is parsed again
//! only when it changes, a `job_meta.json` only when its mtime changes, and a finished run
//! whose manifest did not change is not looked at again; the jobs a finished run's
//! manifest gives a final status are not looked at at all.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::{Value as Json, json};

/// The statuses shown as counts, in display order (`not started` = planned, not begun).
pub const STATUS_ORDER: [&str; 7] = [
    "not started",
    "running",
    "ok",
    "failed",
    "skipped",
    "timeout",
    "cancelled",
];

#[derive(Debug, Deserialize)]
struct LightManifest {
    #[serde(default)]
    mode: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    created_at: String,
    #[serde(default)]
    finished_at: Option<String>,
    #[serde(default)]
    jobs: Vec<LightJob>,
}

#[derive(Debug, Deserialize)]
struct LightJob {
    job_id: String,
    #[serde(default)]
    task_id: String,
    #[serde(default)]
    suite: String,
    #[serde(default)]
    trainer_id: String,
    #[serde(default)]
    seed: Json,
    #[serde(default)]
    variant_index: Json,
    #[serde(default)]
    resolved_optimizer_kwargs: Json,
    #[serde(default)]
    status: String,
}

/// One planned job as the table shows it.
#[derive(Debug, Clone)]
pub struct JobRow {
    /// Its id (the job directory's name).
    pub job_id: String,
    /// Matrix position.
    pub index: usize,
    /// Task id.
    pub task_id: String,
    /// Suite.
    pub suite: String,
    /// Trainer id.
    pub trainer_id: String,
    /// Seed, as written.
    pub seed: String,
    /// Variant index, as written.
    pub variant: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Stamp(Option<SystemTime>, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp(m.modified().ok(), m.len()))
}

/// What is known of one run.
#[derive(Debug, Clone)]
struct Cached {
    manifest: Stamp,
    mode: String,
    llm: String,
    tags: Vec<String>,
    created_at: String,
    finished_at: Option<String>,
    jobs: Vec<JobRow>,
    meta_stamps: Vec<Option<Stamp>>,
    labels: Vec<&'static str>,
    /// The job's final status is the manifest's own (a finished run's manifest says ok,
    /// failed, skipped or timeout): its directory is not looked at.
    settled: Vec<bool>,
}

impl Cached {
    fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
        for l in &self.labels {
            *counts.entry(l).or_insert(0) += 1;
        }
        counts
    }

    fn all_final(&self) -> bool {
        self.labels
            .iter()
            .all(|l| !matches!(*l, "not started" | "running" | "cancelled"))
    }
}

/// The label of a finished job's status (`job_meta.json`'s `status`).
fn label_of(status: &str) -> &'static str {
    match status {
        "ok" => "ok",
        "failed" => "failed",
        "skipped" => "skipped",
        "timeout" => "timeout",
        "cancelled" => "cancelled",
        _ => "running",
    }
}

/// Why a run could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReadError(pub String);

/// Cached run summaries, shared by all requests.
#[derive(Debug, Default)]
pub struct RunCache {
    runs: Mutex<HashMap<PathBuf, Cached>>,
}

/// A run's summary, as JSON for the API.
fn summary_json(run_id: &str, c: &Cached) -> Json {
    let counts = c.counts();
    let wall = match (&c.finished_at, humantime::parse_rfc3339(&c.created_at).ok()) {
        (Some(f), Some(start)) => humantime::parse_rfc3339(f)
            .ok()
            .and_then(|end| end.duration_since(start).ok())
            .map(|d| d.as_secs_f64()),
        _ => None,
    };
    json!({
        "run_id": run_id,
        "mode": c.mode,
        "llm": c.llm,
        "tags": c.tags,
        "created_at": c.created_at,
        "finished_at": c.finished_at,
        "wall_seconds": wall,
        "planned": c.jobs.len(),
        "counts": counts,
        "complete": c.all_final(),
    })
}

impl RunCache {
    /// Bring the cache of `run_dir` up to date and apply `f` to it.
    fn with<T>(&self, run_dir: &Path, f: impl FnOnce(&Cached) -> T) -> Result<T, ReadError> {
        let manifest_path = run_dir.join("meta").join("manifest.json");
        let Some(now) = stamp(&manifest_path) else {
            return Err(ReadError(format!(
                "`{}` has no meta/manifest.json",
                run_dir.display()
            )));
        };
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = match runs.get(run_dir) {
            Some(c) if c.manifest == now => None,
            _ => Some(parse(&manifest_path, now)?),
        };
        if let Some(c) = fresh {
            runs.insert(run_dir.to_path_buf(), c);
        }
        let Some(c) = runs.get_mut(run_dir) else {
            return Err(ReadError("the cache lost a run".into()));
        };
        // A finished run whose manifest did not change is not read again (a resume
        // rewrites its manifest first).
        if !(c.finished_at.is_some() && c.all_final()) {
            refresh_jobs(run_dir, c);
        }
        Ok(f(c))
    }

    /// The summary of one run directory.
    pub fn summary(&self, run_id: &str, run_dir: &Path) -> Result<Json, ReadError> {
        self.with(run_dir, |c| summary_json(run_id, c))
    }

    /// The counts alone (what the live stream sends).
    pub fn counts(&self, run_dir: &Path) -> Result<Json, ReadError> {
        self.with(run_dir, |c| {
            json!({"planned": c.jobs.len(), "counts": c.counts(), "complete": c.all_final(),
                   "finished_at": c.finished_at})
        })
    }

    /// Filter values of the jobs table: tasks, trainers, suites, seeds, statuses.
    pub fn facets(&self, run_dir: &Path) -> Result<Json, ReadError> {
        self.with(run_dir, |c| {
            let set = |f: &dyn Fn(&JobRow) -> &str| -> Vec<String> {
                let s: BTreeSet<&str> = c.jobs.iter().map(f).collect();
                s.into_iter().map(str::to_string).collect()
            };
            let statuses: BTreeSet<&str> = c.labels.iter().copied().collect();
            json!({
                "task": set(&|j| &j.task_id),
                "trainer": set(&|j| &j.trainer_id),
                "suite": set(&|j| &j.suite),
                "seed": set(&|j| &j.seed),
                "status": STATUS_ORDER.iter().filter(|s| statuses.contains(*s)).collect::<Vec<_>>(),
            })
        })
    }

    /// One page of the jobs table, filtered (every filter an exact match; empty = any).
    pub fn jobs(
        &self,
        run_dir: &Path,
        filter: &JobFilter,
        page: usize,
        per_page: usize,
    ) -> Result<Json, ReadError> {
        let (total, rows) = self.with(run_dir, |c| {
            let matching: Vec<(JobRow, &'static str)> = c
                .jobs
                .iter()
                .zip(&c.labels)
                .filter(|(j, l)| filter.matches(j, l))
                .map(|(j, l)| (j.clone(), *l))
                .collect();
            let total = matching.len();
            let rows: Vec<(JobRow, &'static str)> = matching
                .into_iter()
                .skip(page.saturating_mul(per_page))
                .take(per_page)
                .collect();
            (total, rows)
        })?;
        let jobs: Vec<Json> = rows
            .into_iter()
            .map(|(j, label)| {
                let results: Option<Json> = (label != "running" && label != "not started")
                    .then(|| read_json(&run_dir.join("jobs").join(&j.job_id).join("results.json")))
                    .flatten();
                let field = |k: &str| results.as_ref().and_then(|r| r.get(k).cloned());
                json!({
                    "job_id": j.job_id, "index": j.index, "task_id": j.task_id,
                    "suite": j.suite, "trainer_id": j.trainer_id, "seed": j.seed,
                    "variant": j.variant, "status": label,
                    "score_val": field("score_val"), "score_test": field("score_test"),
                    "time_seconds": field("time_seconds"), "total_tokens": field("total_tokens"),
                    "error": field("error"),
                })
            })
            .collect();
        Ok(json!({"total": total, "page": page, "per_page": per_page, "jobs": jobs}))
    }

    /// The jobs that finished but not ok (failed, timeout, skipped, cancelled), with
    /// their status labels.
    pub fn not_ok(&self, run_dir: &Path) -> Result<Vec<(String, &'static str)>, ReadError> {
        self.with(run_dir, |c| {
            c.jobs
                .iter()
                .zip(&c.labels)
                .filter(|(_, l)| !matches!(**l, "ok" | "running" | "not started"))
                .map(|(j, l)| (j.job_id.clone(), *l))
                .collect()
        })
    }

    /// Whether `job_id` is a planned job of the run.
    pub fn has_job(&self, run_dir: &Path, job_id: &str) -> Result<bool, ReadError> {
        self.with(run_dir, |c| c.jobs.iter().any(|j| j.job_id == job_id))
    }
}

/// Filters of the jobs table.
#[derive(Debug, Default, Clone)]
pub struct JobFilter {
    /// Task id.
    pub task: Option<String>,
    /// Trainer id.
    pub trainer: Option<String>,
    /// Status label.
    pub status: Option<String>,
    /// Seed.
    pub seed: Option<String>,
    /// Suite.
    pub suite: Option<String>,
}

impl JobFilter {
    fn matches(&self, j: &JobRow, label: &str) -> bool {
        let ok = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        ok(&self.task, &j.task_id)
            && ok(&self.trainer, &j.trainer_id)
            && ok(&self.status, label)
            && ok(&self.seed, &j.seed)
            && ok(&self.suite, &j.suite)
    }
}

/// A JSON file, or `None` when missing or unreadable.
pub fn read_json(path: &Path) -> Option<Json> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

fn scalar(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

fn parse(manifest_path: &Path, now: Stamp) -> Result<Cached, ReadError> {
    let bytes = std::fs::read(manifest_path)
        .map_err(|e| ReadError(format!("cannot read `{}`: {e}", manifest_path.display())))?;
    let m: LightManifest = serde_json::from_slice(&bytes).map_err(|e| {
        ReadError(format!(
            "`{}` is not a manifest: {e}",
            manifest_path.display()
        ))
    })?;
    let llm = if m.mode == "stub" {
        "stub".to_string()
    } else {
        m.jobs
            .iter()
            .find_map(|j| {
                let llm = j.resolved_optimizer_kwargs.get("llm")?;
                let model = llm.get("model")?.as_str()?;
                Some(match llm.get("provider").and_then(Json::as_str) {
                    Some(p) if !p.is_empty() => format!("{p}/{model}"),
                    _ => model.to_string(),
                })
            })
            .unwrap_or_default()
    };
    let jobs: Vec<JobRow> = m
        .jobs
        .iter()
        .enumerate()
        .map(|(index, j)| JobRow {
            job_id: j.job_id.clone(),
            index,
            task_id: j.task_id.clone(),
            suite: j.suite.clone(),
            trainer_id: j.trainer_id.clone(),
            seed: scalar(&j.seed),
            variant: scalar(&j.variant_index),
        })
        .collect();
    let n = jobs.len();
    // A finished run's manifest holds each job's final status: a run of many jobs is
    // listed without reading its job directories. A resume rewrites the manifest
    // (pending, no finished_at) before any job runs again, and a job the manifest does not
    // settle (reused, cancelled, pending) is read from its directory as usual.
    let mut labels = vec!["not started"; n];
    let mut settled = vec![false; n];
    if m.finished_at.is_some() {
        for (i, j) in m.jobs.iter().enumerate() {
            if let s @ ("ok" | "failed" | "skipped" | "timeout") = j.status.as_str() {
                labels[i] = label_of(s);
                settled[i] = true;
            }
        }
    }
    Ok(Cached {
        manifest: now,
        mode: m.mode,
        llm,
        tags: m.tags,
        created_at: m.created_at,
        finished_at: m.finished_at,
        jobs,
        meta_stamps: vec![None; n],
        labels,
        settled,
    })
}

/// Re-read the `job_meta.json` files whose mtime changed; a job without one is running
/// when its directory exists, else not started.
fn refresh_jobs(run_dir: &Path, c: &mut Cached) {
    let jobs_dir = run_dir.join("jobs");
    for (i, j) in c.jobs.iter().enumerate() {
        if c.settled[i] {
            continue;
        }
        let dir = jobs_dir.join(&j.job_id);
        let meta = dir.join("job_meta.json");
        match stamp(&meta) {
            Some(s) if c.meta_stamps[i] == Some(s) => {}
            Some(s) => {
                let status = read_json(&meta).and_then(|m| m.get("status")?.as_str().map(label_of));
                // A torn or half-written file is read again next time.
                c.meta_stamps[i] = status.is_some().then_some(s);
                c.labels[i] = status.unwrap_or("running");
            }
            None => {
                c.meta_stamps[i] = None;
                c.labels[i] = if dir.is_dir() {
                    "running"
                } else {
                    "not started"
                };
            }
        }
    }
}
