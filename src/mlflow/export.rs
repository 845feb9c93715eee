//! A run directory as MLflow runs: the run's own files on a parent run, each finished job
//! (`job_meta.json` + `results.json`) on a child run — params, tags, per-step and final
//! metrics, the state files as artifacts.
//!
//! Idempotent without any local bookkeeping: runs are found by their tags, a metric point
//! is sent only when its step is above the highest step the server already has for that
//! key (every point of a job goes in step order, so that is exactly what is missing after
//! an interrupted export), params are immutable and sent with the same values, artifacts
//! are overwritten in place. A job whose files have not changed since its last complete
//! export (tag `trace_bench.export_digest`) costs no request at all beyond the search.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value as Json;

use super::MlflowError;
use super::client::{Client, Metric, RemoteRun};
use crate::artifacts::FileError;
use crate::artifacts::layout::{JobDir, RunDir, StateKind};
use crate::events::StepRecord;
use crate::results::JobResults;
use crate::results::manifest::Manifest;
use crate::vocab::canonical::sha256_hex;
use crate::vocab::{JobId, JobState, JobStatus};

/// Bumped when what is sent for a job changes, so runs exported by an older version are
/// completed (the digest differs) rather than skipped.
const FORMAT: &str = "trace-bench-mlflow-1";
/// MLflow's limits (`mlflow/utils/validation.py`): param values, tag values, key length.
pub const MAX_PARAM_VALUE_CHARS: usize = 6000;
const MAX_TAG_VALUE_CHARS: usize = 8000;
const MAX_KEY_CHARS: usize = 250;

/// Tag names.
pub const TAG_RUN_ID: &str = "trace_bench.run_id";
/// The job id of a child run.
pub const TAG_JOB_ID: &str = "trace_bench.job_id";
const TAG_DIGEST: &str = "trace_bench.export_digest";
const TAG_STARTED: &str = "trace_bench.started_at";

/// What exporting one job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobExport {
    /// Sent (`metrics` points were new to the server).
    Sent {
        /// Metric points logged.
        metrics: usize,
    },
    /// Already on the server as it is now.
    Unchanged,
    /// No final `job_meta.json` / `results.json` yet: nothing to send.
    NotFinished,
}

/// What a whole export did.
#[derive(Debug, Clone, Default)]
pub struct ExportReport {
    /// MLflow's experiment id.
    pub experiment_id: String,
    /// The parent run.
    pub parent_run_id: String,
    /// Jobs sent.
    pub sent: usize,
    /// Jobs already up to date.
    pub unchanged: usize,
    /// Jobs without a final result.
    pub not_finished: usize,
    /// Metric points logged.
    pub metrics: usize,
    /// Jobs that could not be sent, with why.
    pub failed: Vec<(JobId, String)>,
    /// The server does not proxy artifacts, so none were uploaded.
    pub artifacts_not_stored: bool,
}

/// One run directory bound to one experiment of one server.
pub struct Exporter<'a> {
    client: &'a Client,
    experiment_id: String,
    run_dir: RunDir,
    manifest: Manifest,
    git_commit: Option<String>,
    parent: Option<RemoteRun>,
    children: BTreeMap<String, RemoteRun>,
    /// Set when a run's artifact root is not served by the tracking server.
    pub artifacts_not_stored: bool,
}

impl<'a> Exporter<'a> {
    /// Read the run's manifest, find (or create) the experiment and the runs already there.
    pub fn connect(
        client: &'a Client,
        experiment: &str,
        run_dir: &RunDir,
    ) -> Result<Self, MlflowError> {
        let path = run_dir.manifest();
        if !path.is_file() {
            return Err(MlflowError::NotARunDir(run_dir.root().to_path_buf()));
        }
        let manifest: Manifest =
            crate::artifacts::atomic::read_json(&path).map_err(FileError::on("read", &path))?;
        let git_commit = crate::artifacts::atomic::read_json::<Json>(&run_dir.git_json())
            .ok()
            .and_then(|g| g["commit"].as_str().map(str::to_string));
        let experiment_id = client.experiment_id(experiment)?;
        let mut parent = None;
        let mut children = BTreeMap::new();
        for run in client.runs_tagged(&experiment_id, TAG_RUN_ID, manifest.run_id.as_str())? {
            match run.tags.get(TAG_JOB_ID) {
                Some(job) => {
                    children.entry(job.clone()).or_insert(run);
                }
                None => {
                    parent.get_or_insert(run);
                }
            }
        }
        Ok(Self {
            client,
            experiment_id,
            run_dir: run_dir.clone(),
            manifest,
            git_commit,
            parent,
            children,
            artifacts_not_stored: false,
        })
    }

    /// Export every finished job of the manifest, then the parent run. An unreachable
    /// server stops at once (every further request would fail the same way); any other
    /// failure of a job is recorded and the next job is tried.
    pub fn export_all(&mut self) -> Result<ExportReport, MlflowError> {
        let mut report = ExportReport {
            experiment_id: self.experiment_id.clone(),
            ..Default::default()
        };
        let ids: Vec<JobId> = self
            .manifest
            .jobs
            .iter()
            .map(|j| j.job.job_id.clone())
            .collect();
        for id in ids {
            match self.export_job(&id) {
                Ok(JobExport::Sent { metrics }) => {
                    report.sent += 1;
                    report.metrics += metrics;
                }
                Ok(JobExport::Unchanged) => report.unchanged += 1,
                Ok(JobExport::NotFinished) => report.not_finished += 1,
                Err(e) if e.is_unreachable() => return Err(e),
                Err(e) => report.failed.push((id, e.to_string())),
            }
        }
        report.parent_run_id = self.export_parent()?;
        report.artifacts_not_stored = self.artifacts_not_stored;
        Ok(report)
    }

    /// The parent run's id, created on first use.
    fn parent_id(&mut self) -> Result<String, MlflowError> {
        if let Some(p) = &self.parent {
            return Ok(p.run_id.clone());
        }
        let run_id = self.manifest.run_id.as_str().to_string();
        let mut tags = vec![
            ("mlflow.runName".to_string(), run_id.clone()),
            (TAG_RUN_ID.to_string(), run_id),
        ];
        tags.extend(self.common_tags());
        let start = rfc3339_ms(&self.manifest.created_at).unwrap_or_else(now_ms);
        let run = self.client.create_run(&self.experiment_id, start, &tags)?;
        let id = run.run_id.clone();
        self.parent = Some(run);
        Ok(id)
    }

    fn common_tags(&self) -> Vec<(String, String)> {
        let mut tags = vec![(
            "trace_bench.version".to_string(),
            self.manifest.tool_version.clone(),
        )];
        if let Some(c) = &self.git_commit {
            tags.push(("trace_bench.git_commit".into(), c.clone()));
            tags.push(("mlflow.source.git.commit".into(), c.clone()));
        }
        tags
    }

    /// Send the run's own files to the parent run and set its status: `FINISHED` once
    /// the manifest says the run finished, `RUNNING` before.
    pub fn export_parent(&mut self) -> Result<String, MlflowError> {
        let id = self.parent_id()?;
        let d = &self.run_dir;
        let files = [
            (d.results_csv(), "results.csv"),
            (d.iterations_csv(), "iterations.csv"),
            (d.summary_json(), "summary.json"),
            (d.leaderboard_csv(), "leaderboard.csv"),
            (d.manifest(), "meta/manifest.json"),
            (d.config_snapshot(), "meta/config.snapshot.yaml"),
        ];
        let mut digest_text = String::from(FORMAT);
        for (path, _) in &files {
            digest_text.push_str(&std::fs::read_to_string(path).unwrap_or_default());
        }
        let digest = sha256_hex(&digest_text);
        let parent = self.parent.as_ref().expect("created above");
        if parent.tags.get(TAG_DIGEST) == Some(&digest) {
            return Ok(id);
        }
        let artifact_uri = parent.artifact_uri.clone();
        let params = vec![
            ("mode".to_string(), self.manifest.mode.clone()),
            ("config_hash".to_string(), self.manifest.config_hash.clone()),
            ("jobs".to_string(), self.manifest.jobs.len().to_string()),
            ("tags".to_string(), self.manifest.tags.join(",")),
        ];
        let mut tags = self.common_tags();
        tags.push((
            "trace_bench.config_hash".into(),
            self.manifest.config_hash.clone(),
        ));
        self.client.log_batch(&id, &[], &params, &tags)?;
        for (path, rel) in &files {
            self.upload(&artifact_uri, path, rel)?;
        }
        let finished = self.manifest_finished_at();
        let (status, end) = match &finished {
            Some(t) => ("FINISHED", rfc3339_ms(t)),
            None => ("RUNNING", None),
        };
        self.client.update_run(&id, status, end)?;
        if finished.is_some() {
            self.client.set_tag(&id, TAG_DIGEST, &digest)?;
        }
        Ok(id)
    }

    /// `finished_at` of the manifest as it is on disk now (the live sink's exporter was
    /// connected while the run was still going).
    fn manifest_finished_at(&self) -> Option<String> {
        crate::artifacts::atomic::read_json::<Manifest>(&self.run_dir.manifest())
            .ok()
            .and_then(|m| m.finished_at)
    }

    /// Export one job from its directory.
    pub fn export_job(&mut self, job_id: &JobId) -> Result<JobExport, MlflowError> {
        let dir = self.run_dir.job(job_id);
        let Some(job) = FinishedJob::read(&dir)? else {
            return Ok(JobExport::NotFinished);
        };
        let digest = sha256_hex(&format!("{FORMAT}{}{}", job.meta_text, job.results_text));
        let started = job.meta["started_at"].as_str().unwrap_or("").to_string();
        if let Some(existing) = self.children.get(job_id.as_str()) {
            if existing.tags.get(TAG_DIGEST) == Some(&digest) {
                return Ok(JobExport::Unchanged);
            }
            // Another attempt of the job (a rerun after a failure): its steps would collide
            // with the old attempt's, so the old child run is retired.
            if existing.tags.get(TAG_STARTED).map(String::as_str) != Some(started.as_str()) {
                let old = existing.run_id.clone();
                self.client.delete_run(&old)?;
                self.children.remove(job_id.as_str());
            }
        }
        let start_ms = rfc3339_ms(&started).unwrap_or_else(now_ms);
        if !self.children.contains_key(job_id.as_str()) {
            let parent = self.parent_id()?;
            let row = &job.results.row;
            let tags = vec![
                (
                    "mlflow.runName".to_string(),
                    format!(
                        "{}/{}/v{}/s{}",
                        row.task_id, row.trainer_id, row.variant_index, row.seed
                    ),
                ),
                ("mlflow.parentRunId".to_string(), parent),
                (TAG_RUN_ID.to_string(), self.manifest.run_id.to_string()),
                (TAG_JOB_ID.to_string(), job_id.to_string()),
                (TAG_STARTED.to_string(), started.clone()),
            ];
            let run = self
                .client
                .create_run(&self.experiment_id, start_ms, &tags)?;
            self.children.insert(job_id.to_string(), run);
        }
        let run = self.children[job_id.as_str()].clone();
        let mut tags = self.common_tags();
        tags.push(("trace_bench.status".into(), job.status.as_str().into()));
        if let Some(kind) = &job.results.row.error_kind {
            tags.push(("trace_bench.error_kind".into(), kind.clone()));
        }
        tags.push((
            "trace_bench.feedback".into(),
            truncate(&job.results.row.feedback, MAX_TAG_VALUE_CHARS),
        ));
        let metrics: Vec<Metric> = job_metrics(&job.results, start_ms)
            .into_iter()
            .filter(|m| run.latest_steps.get(&m.key).is_none_or(|&s| m.step > s))
            .collect();
        let params: Vec<(String, String)> = job_params(&job.meta, &job.results.row.mode)
            .into_iter()
            .collect();
        self.client
            .log_batch(&run.run_id, &metrics, &params, &tags)?;
        for (path, rel) in job_artifacts(&dir) {
            if path.is_file() {
                self.upload(&run.artifact_uri, &path, &rel)?;
            }
        }
        let end_ms = job.meta["finished_at"]
            .as_str()
            .and_then(rfc3339_ms)
            .or(Some(start_ms));
        self.client
            .update_run(&run.run_id, run_status(job.status), end_ms)?;
        self.client.set_tag(&run.run_id, TAG_DIGEST, &digest)?;
        Ok(JobExport::Sent {
            metrics: metrics.len(),
        })
    }

    fn upload(&mut self, artifact_uri: &str, path: &Path, rel: &str) -> Result<(), MlflowError> {
        let Ok(bytes) = std::fs::read(path) else {
            return Ok(()); // a run-level file not written yet (a live run)
        };
        if !self.client.put_artifact(artifact_uri, rel, bytes)? {
            self.artifacts_not_stored = true;
        }
        Ok(())
    }
}

/// A job's final files, read once.
struct FinishedJob {
    meta_text: String,
    meta: Json,
    results_text: String,
    results: JobResults,
    status: JobStatus,
}

impl FinishedJob {
    /// `None` while the job has no final state (not started, running, interrupted).
    fn read(dir: &JobDir) -> Result<Option<Self>, MlflowError> {
        let read = |p: &Path| match std::fs::read_to_string(p) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(FileError::on("read", p)(e)),
        };
        let (Some(meta_text), Some(results_text)) =
            (read(&dir.job_meta())?, read(&dir.results_json())?)
        else {
            return Ok(None);
        };
        let invalid = |p: &Path, e: serde_json::Error| {
            FileError::on("read", p)(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        };
        let meta: Json =
            serde_json::from_str(&meta_text).map_err(|e| invalid(&dir.job_meta(), e))?;
        let Some(JobState::Finished(status)) = meta["status"].as_str().and_then(JobState::parse)
        else {
            return Ok(None);
        };
        let results =
            JobResults::from_json(&results_text).map_err(|e| invalid(&dir.results_json(), e))?;
        Ok(Some(Self {
            meta_text,
            meta,
            results_text,
            results,
            status,
        }))
    }
}

/// MLflow's run status for a job status.
pub fn run_status(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Ok | JobStatus::Skipped => "FINISHED",
        JobStatus::Failed | JobStatus::Timeout => "FAILED",
        JobStatus::Cancelled => "KILLED",
    }
}

/// The job's files stored as artifacts, with their paths in the run's artifact root.
fn job_artifacts(dir: &JobDir) -> Vec<(std::path::PathBuf, String)> {
    let mut out = vec![
        (dir.job_meta(), "job_meta.json".to_string()),
        (dir.results_json(), "results.json".to_string()),
        (
            dir.state_history(),
            "artifacts/state_history.jsonl".to_string(),
        ),
    ];
    for kind in [StateKind::Initial, StateKind::Best, StateKind::Final] {
        for path in [dir.state_json(kind), dir.state_yaml(kind)] {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push((path, format!("artifacts/{name}")));
        }
    }
    out
}

/// The job's params: identity, mode and model, and every resolved kwarg flattened with
/// dotted keys (`trainer_kwargs.num_iters`). Strings are sent as they are, other values
/// as compact JSON; values longer than MLflow's limit are cut to it.
pub fn job_params(meta: &Json, mode: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let scalars = [
        ("task", "task_id"),
        ("suite", "suite"),
        ("trainer", "trainer_id"),
        ("seed", "seed"),
        ("variant_index", "variant_index"),
        ("job_index", "job_index"),
        ("optimizer", "resolved_optimizer"),
        ("guide", "resolved_guide"),
        ("logger", "resolved_logger"),
    ];
    for (name, field) in scalars {
        if let Some(v) = meta.get(field).filter(|v| !v.is_null()) {
            out.insert(name.to_string(), param_value(v));
        }
    }
    out.insert("mode".into(), mode.to_string());
    for (name, field) in [("model", "llm_model"), ("provider", "llm_provider")] {
        if let Some(v) = meta["llm"].get(field).filter(|v| !v.is_null()) {
            out.insert(name.to_string(), param_value(v));
        }
    }
    let nested = [
        ("trainer_kwargs", "resolved_trainer_kwargs"),
        ("optimizer_kwargs", "resolved_optimizer_kwargs"),
        ("guide_kwargs", "resolved_guide_kwargs"),
        ("logger_kwargs", "resolved_logger_kwargs"),
        ("eval_kwargs", "eval_kwargs"),
        ("raw_params", "raw_params"),
    ];
    for (prefix, field) in nested {
        if let Some(v) = meta.get(field) {
            flatten(prefix, v, &mut out);
        }
    }
    out
}

fn flatten(prefix: &str, v: &Json, out: &mut BTreeMap<String, String>) {
    match v {
        Json::Object(map) => {
            for (k, v) in map {
                flatten(&format!("{prefix}.{k}"), v, out);
            }
        }
        other => {
            out.insert(key(prefix), param_value(other));
        }
    }
}

/// A key MLflow accepts: letters, digits, `_ - . / space`, at most 250 characters.
fn key(k: &str) -> String {
    let clean: String = k
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "_-./ ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    truncate(&clean, MAX_KEY_CHARS)
}

fn param_value(v: &Json) -> String {
    let text = match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    };
    truncate(&text, MAX_PARAM_VALUE_CHARS)
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// Per-step metrics (from the job's step history, the rows of `iterations.csv`) and the
/// final ones (from its result row, at step 0). Missing scores are left out.
pub fn job_metrics(results: &JobResults, start_ms: i64) -> Vec<Metric> {
    let mut out = Vec::new();
    let mut push = |key: &str, value: Option<f64>, step: i64, ts: i64| {
        if let Some(value) = value.filter(|v| v.is_finite()) {
            out.push(Metric {
                key: key.to_string(),
                value,
                timestamp_ms: ts,
                step,
            });
        }
    };
    for s in &results.history {
        let StepRecord { step, .. } = *s;
        let step = step as i64;
        let ts = start_ms + (s.elapsed_seconds * 1000.0) as i64;
        push("score/train", s.score_train, step, ts);
        push("score/val", s.score_val, step, ts);
        push("score/best", s.best_score, step, ts);
        push("step/tokens", Some(s.tokens as f64), step, ts);
        push("step/seconds", Some(s.step_seconds), step, ts);
        push("step/llm_calls", Some(s.llm_calls as f64), step, ts);
        push(
            "step/evaluator_calls",
            Some(s.evaluator_calls as f64),
            step,
            ts,
        );
        push("step/candidates", Some(s.candidates as f64), step, ts);
        for (name, v) in &s.metrics {
            push(&key(&format!("val/{name}")), Some(*v), step, ts);
        }
    }
    let r = &results.row;
    let ts = start_ms + (r.time_seconds * 1000.0) as i64;
    let count = |n: u64| Some(n as f64);
    let finals = [
        ("score_val_initial", r.score_val_initial),
        ("score_val_final", r.score_val_final),
        ("score_val", r.score_val),
        ("score_test", r.score_test),
        ("time_seconds", Some(r.time_seconds)),
        ("steps", count(r.steps)),
        ("best_step", r.best_step.map(|s| s as f64)),
        ("evaluator_calls", count(r.evaluator_calls)),
        ("llm_calls", count(r.llm_calls)),
        ("prompt_tokens", count(r.prompt_tokens)),
        ("completion_tokens", count(r.completion_tokens)),
        ("total_tokens", count(r.total_tokens)),
        ("cost_usd", r.cost_usd),
        ("examples_correct", r.examples_correct.map(|n| n as f64)),
        ("examples_total", r.examples_total.map(|n| n as f64)),
    ];
    for (k, v) in finals {
        push(k, v, 0, ts);
    }
    if r.agent_calls > 0 {
        push("agent_calls", count(r.agent_calls), 0, ts);
        push("agent_prompt_tokens", count(r.agent_prompt_tokens), 0, ts);
        push(
            "agent_completion_tokens",
            count(r.agent_completion_tokens),
            0,
            ts,
        );
    }
    for (name, v) in &r.metrics {
        push(&key(&format!("final/{name}")), Some(*v), 0, ts);
    }
    out
}

fn rfc3339_ms(s: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339(s).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as i64)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn params_flatten_kwargs_with_dotted_keys_and_respect_the_length_limit() {
        let meta = json!({
            "task_id": "internal:numeric_param", "trainer_id": "GEPA-Base", "seed": 2,
            "variant_index": 0, "resolved_optimizer": null,
            "llm": {"llm_model": "m", "llm_provider": "stub"},
            "resolved_trainer_kwargs": {"num_iters": 8, "lr": 1e-5, "flag": true},
            "resolved_optimizer_kwargs": {"llm": {"model": "m"}, "objective": "x".repeat(7000)},
            "eval_kwargs": {"odd key!": [1, 2]},
            "raw_params": {},
        });
        let p = job_params(&meta, "stub");
        assert_eq!(p["task"], "internal:numeric_param");
        assert_eq!(p["seed"], "2");
        assert_eq!(p["mode"], "stub");
        assert_eq!(p["model"], "m");
        assert!(!p.contains_key("optimizer"), "null values are left out");
        assert_eq!(p["trainer_kwargs.num_iters"], "8");
        assert_eq!(p["trainer_kwargs.flag"], "true");
        assert_eq!(p["optimizer_kwargs.llm.model"], "m");
        assert_eq!(
            p["optimizer_kwargs.objective"].chars().count(),
            MAX_PARAM_VALUE_CHARS
        );
        assert_eq!(p["eval_kwargs.odd key_"], "[1,2]");
        assert!(!p.keys().any(|k| k.starts_with("raw_params")));
    }

    #[test]
    fn statuses_map_to_mlflow_run_statuses() {
        assert_eq!(run_status(JobStatus::Ok), "FINISHED");
        assert_eq!(run_status(JobStatus::Skipped), "FINISHED");
        assert_eq!(run_status(JobStatus::Failed), "FAILED");
        assert_eq!(run_status(JobStatus::Timeout), "FAILED");
        assert_eq!(run_status(JobStatus::Cancelled), "KILLED");
    }
}
