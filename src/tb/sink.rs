//! The TensorBoard sink: one event file per job in `jobs/<id>/tb/`, one point per step
//! for every curve, flushed each step (TensorBoard shows live runs) and synced at the end.
//!
//! Tags: `score/train`, `score/val`, `score/best`, `time/step_seconds`, `llm/calls`,
//! `llm/tokens`, `param/<name>` for numeric parameters (scalars, f32); text and code
//! parameters as text summaries `param/<name>`. Exact f64 values stay in the CSV/JSON files.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value as Json;

use super::EventFileWriter;
use crate::artifacts::durability::Durability;
use crate::artifacts::layout::RunDir;
use crate::events::{Event, EventKind, EventSink, SinkError, StepRecord};
use crate::matrix::Job;
use crate::vocab::JobId;

/// Writes each job's TensorBoard event file.
pub struct TbSink {
    run_dir: RunDir,
    /// Open writers; each has its own lock (a job's steps come in order).
    writers: Mutex<HashMap<JobId, Arc<Mutex<EventFileWriter>>>>,
    durability: Durability,
}

impl TbSink {
    /// A sink writing under `run_dir` at the run's durability level.
    pub fn new(run_dir: RunDir, durability: Durability) -> Self {
        Self {
            run_dir,
            writers: Mutex::new(HashMap::new()),
            durability,
        }
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// (tag, value) pairs of one step: scalars and text summaries.
pub type StepPoints = (Vec<(String, f64)>, Vec<(String, String)>);

/// The scalars and texts of one step.
pub fn step_points(s: &StepRecord) -> StepPoints {
    let mut scalars: Vec<(String, f64)> = [
        ("score/train", s.score_train),
        ("score/val", s.score_val),
        ("score/best", s.best_score),
        ("time/step_seconds", Some(s.step_seconds)),
        ("llm/calls", Some(s.llm_calls as f64)),
        ("llm/tokens", Some(s.tokens as f64)),
    ]
    .into_iter()
    .filter_map(|(tag, v)| v.map(|v| (tag.to_string(), v)))
    .collect();
    scalars.extend(s.metrics.iter().map(|(k, v)| (format!("metric/{k}"), *v)));
    let mut texts = Vec::new();
    for (name, value) in &s.best_params {
        match value {
            Json::Number(n) => {
                scalars.push((format!("param/{name}"), n.as_f64().unwrap_or(f64::NAN)))
            }
            Json::String(text) => texts.push((format!("param/{name}"), text.clone())),
            other => texts.push((format!("param/{name}"), other.to_string())),
        }
    }
    (scalars, texts)
}

impl EventSink for TbSink {
    fn on_event(&self, job: &Job, event: &Event) -> Result<(), SinkError> {
        if !matches!(
            event.kind,
            EventKind::JobStarted { .. } | EventKind::Step(_) | EventKind::JobFinished(_)
        ) {
            return Ok(());
        }
        let io = |e| {
            let dir = self.run_dir.job(&job.job_id).tb_dir();
            SinkError::io(
                format!("cannot write TensorBoard events in `{}`", dir.display()),
                e,
            )
        };
        // The map is locked only to find a job's writer: its file I/O holds the job's own
        // lock, so workers never wait on each other's writes.
        let writers = || self.writers.lock().unwrap_or_else(|e| e.into_inner());
        match &event.kind {
            EventKind::JobStarted { .. } => {
                let dir = self.run_dir.job(&job.job_id).tb_dir();
                let writer = EventFileWriter::create(&dir, now()).map_err(io)?;
                writers().insert(job.job_id.clone(), Arc::new(Mutex::new(writer)));
            }
            EventKind::Step(step) => {
                let Some(slot) = writers().get(&job.job_id).cloned() else {
                    return Ok(());
                };
                let mut w = slot.lock().unwrap_or_else(|e| e.into_inner());
                let (scalars, texts) = step_points(step);
                let t = now();
                let s = step.step as i64;
                for (tag, v) in scalars {
                    w.add_scalar(&tag, s, v as f32, t).map_err(io)?;
                }
                for (tag, text) in texts {
                    w.add_text(&tag, s, &text, t).map_err(io)?;
                }
                w.flush().map_err(io)?;
            }
            EventKind::JobFinished(_) => {
                let slot = writers().remove(&job.job_id);
                if let Some(w) = slot.and_then(|s| Arc::try_unwrap(s).ok()) {
                    let w = w.into_inner().unwrap_or_else(|e| e.into_inner());
                    w.close(self.durability == Durability::File).map_err(io)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}
